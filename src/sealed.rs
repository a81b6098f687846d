//! `SealedBox<T>`: a box whose pages are `PROT_NONE` while no borrow is out.
//!
//! Unsafe here is limited to changing the pages' protection (always under
//! the rules below) and turning the value pointer into references while a
//! guard proves the protection allows it.
//!
//! The concurrency (a reader count, the fork generation it counts in, a
//! gate) lives in `seal_state`, with its rules and its loom model; this
//! module supplies the protection changes.
//!
//! The borrow and release paths are `#[inline(always)]` so that the mprotect
//! call lands in the caller's own code. On CPUs whose kernels mitigate
//! return-stack attacks (AMD's SRSO "Safe RET"), the first function return
//! after a system call costs a few hundred nanoseconds; every function layer
//! between the caller and the system call would add one such return.
#![allow(unsafe_code)]

use std::any::type_name;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::error::Error;
use crate::fork::{self, EXCLUDED};
use crate::locked_box::LockedBox;
use crate::os::Protection;
use crate::plain::Plain;
use crate::region::Region;
use crate::residency::Residency;
use crate::seal_state::SealState;
use crate::store::Store;

/// A box whose data pages are `PROT_NONE` while no borrow is out: a stray
/// read anywhere in the process faults instead of finding the secret.
///
/// Made by [`LockedBox::seal`]. [`borrow`](SealedBox::borrow) lends `&T` over
/// read-only pages, from any number of threads at once;
/// [`borrow_mut`](SealedBox::borrow_mut) lends `&mut T` over read-write pages;
/// [`unseal`](SealedBox::unseal) gives the `LockedBox` back. When the last
/// guard drops, the pages are `PROT_NONE` again.
///
/// ```
/// use lockedmem::LockedBox;
///
/// let sealed = LockedBox::<[u8; 32]>::new_with(|k| k.fill(7))?.seal()?;
/// {
///     let key = sealed.borrow();        // pages read-only while `key` lives
///     assert_eq!(key[0], 7);
/// }                                     // PROT_NONE again
/// let unsealed = sealed.unseal();
/// assert_eq!(unsealed[31], 7);
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// Sealing guards against reads that do not go through a guard: an
/// over-read in another library, a format-string bug, a memory scraper inside
/// the process. While a guard is out, every thread of the process can read
/// the pages.
pub struct SealedBox<T: ?Sized + Plain> {
    /// The value, inside `region`'s data pages.
    ptr: NonNull<T>,
    /// Taken out only by `Drop` and `unseal`.
    region: ManuallyDrop<Region>,
    /// Who may change the protection, and when.
    state: SealState,
    /// The box owns a `T`.
    _owns: PhantomData<T>,
}

// SAFETY: a sealed box owns its `T` and its pages exclusively, like a
// `LockedBox`; its counter and mutex are `Send`.
unsafe impl<T: ?Sized + Plain + Send> Send for SealedBox<T> {}
// SAFETY: through `&SealedBox<T>` threads get `&T` (several at once, which
// needs `T: Sync`) and serialised protection changes; nothing else.
unsafe impl<T: ?Sized + Plain + Sync> Sync for SealedBox<T> {}

impl<T: Plain> LockedBox<T> {
    /// Seals the box: its data pages become `PROT_NONE` until borrowed. A
    /// packed box first moves its value into data pages of its own (wiping
    /// its old slot), since page protection cannot single out a slot.
    ///
    /// # Errors
    /// [`Error::Os`] if mprotect fails (it has no documented way to on pages
    /// of the box's own); for a packed box, also what making the new pages
    /// can return (as [`Options::zeroed`](crate::Options::zeroed)). The box
    /// is then dropped, and its secret wiped, rather than handed back
    /// half-sealed.
    pub fn seal(self) -> Result<SealedBox<T>, Error> {
        let align = std::mem::align_of::<T>();
        let (ptr, region) = into_region(self, align, |p| p.cast())?;
        SealedBox::seal_parts(ptr, region)
    }
}

impl<T: Plain> LockedBox<[T]> {
    /// Seals the box; see [`LockedBox::seal`](LockedBox#method.seal) for a
    /// sized value.
    ///
    /// # Errors
    /// As for a sized value.
    pub fn seal(self) -> Result<SealedBox<[T]>, Error> {
        let len = self.len();
        let align = std::mem::align_of::<T>();
        let (ptr, region) = into_region(self, align, |p| {
            NonNull::slice_from_raw_parts(p.cast::<T>(), len)
        })?;
        SealedBox::seal_parts(ptr, region)
    }
}

/// Takes a box apart into a pointer to its value and data pages of its own,
/// moving a packed value into a new page-isolated region first (`retarget`
/// makes the pointer to the value's new address). On error the box is
/// dropped, and its secret wiped.
fn into_region<T: ?Sized + Plain>(
    b: LockedBox<T>,
    align: usize,
    retarget: impl FnOnce(NonNull<u8>) -> NonNull<T>,
) -> Result<(NonNull<T>, Region), Error> {
    // The pages must exist here before anything is moved or protected.
    b.assert_present();
    let (ptr, store) = b.into_parts();
    let moved = matches!(store, Store::Packed(_));
    match store.into_region(align) {
        Ok(region) if moved => Ok((retarget(region.value_ptr()), region)),
        Ok(region) => Ok((ptr, region)),
        Err(failed) => {
            let (store, e) = *failed;
            drop(LockedBox::from_parts(ptr, store));
            Err(e)
        }
    }
}

impl<T: ?Sized + Plain> SealedBox<T> {
    fn seal_parts(ptr: NonNull<T>, region: Region) -> Result<Self, Error> {
        let len = region.data_len();
        if let Err(e) = region.keep_apart() {
            drop(LockedBox::from_parts(ptr, Store::Page(region)));
            return Err(Error::os("madvise(MADV_RANDOM)", len, e));
        }
        // SAFETY: the box was moved in, so no reference into the value is
        // alive, and none is made until a guard makes the pages accessible.
        if let Err(e) = unsafe { region.protect(Protection::None) } {
            drop(LockedBox::from_parts(ptr, Store::Page(region)));
            return Err(Error::os("mprotect", len, e));
        }
        Ok(SealedBox {
            ptr,
            region: ManuallyDrop::new(region),
            state: SealState::new(fork::generation()),
            _owns: PhantomData,
        })
    }

    /// Panics in a fork child whose parent made this box with
    /// `ForkPolicy::Exclude`; see `LockedBox::assert_present`.
    #[inline]
    fn assert_present(&self) {
        assert!(self.region.present(), "{}", EXCLUDED);
    }

    /// Lends the value read-only. The pages turn readable when the first
    /// `Ref` appears and `PROT_NONE` when the last one drops; a borrow while
    /// another is out costs no system call.
    ///
    /// # Panics
    /// If mprotect fails to make the pages readable (there is no reference to
    /// hand out then), with a message naming the call and the error, never
    /// the contents. Also in a fork(2) child, for a box its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude).
    #[inline(always)]
    pub fn borrow(&self) -> Ref<'_, T> {
        self.assert_present();
        let counted = self.state.acquire(fork::generation(), || {
            // SAFETY: `acquire` calls this under the gate with no guard
            // alive, of this generation or another, and no `RefMut` (it needs
            // `&mut self`); widening to read-only invalidates nothing.
            if let Err(e) = unsafe { self.region.protect(Protection::Read) } {
                protect_failed("PROT_READ", e);
            }
        });
        Ref {
            sealed: self,
            counted,
        }
    }

    /// Lends the value read-write; the pages are read-write while the
    /// `RefMut` lives and `PROT_NONE` again when it drops.
    ///
    /// # Panics
    /// As [`borrow`](SealedBox::borrow), for mprotect(`PROT_READ | PROT_WRITE`).
    pub fn borrow_mut(&mut self) -> RefMut<'_, T> {
        self.assert_present();
        // `&mut self`: no guard is alive, of any generation.
        self.state.reset(fork::generation());
        // SAFETY: exclusive access (`&mut self`), so no reference into the
        // value is alive; widening access invalidates nothing.
        if let Err(e) = unsafe { self.region.protect(Protection::ReadWrite) } {
            protect_failed("PROT_READ | PROT_WRITE", e);
        }
        RefMut { sealed: self }
    }

    /// Gives the `LockedBox` back, read-write, after checking the canary.
    ///
    /// Aborts the process, with one line on stderr, if the canary changed
    /// (as dropping does), or if the pages cannot be made writable again.
    ///
    /// # Panics
    /// In a fork(2) child, for a box its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude); the box is then
    /// dropped (which touches nothing there).
    pub fn unseal(self) -> LockedBox<T> {
        self.assert_present();
        let mut this = ManuallyDrop::new(self);
        let ptr = this.ptr;
        // SAFETY: `this` is never dropped or used again (its other fields
        // have no drop glue); `region` is taken out exactly once.
        let region = unsafe { ManuallyDrop::take(&mut this.region) };
        region.open();
        region.verify_canary();
        LockedBox::from_parts(ptr, Store::Page(region))
    }

    /// Whether the data pages are mlocked; see [`LockedBox::is_locked`].
    pub fn is_locked(&self) -> bool {
        self.region.is_locked()
    }

    /// What memory the box really got; see [`LockedBox::backing`].
    pub fn backing(&self) -> crate::Backing {
        if self.region.kind().secret {
            crate::Backing::SecretMem
        } else {
            crate::Backing::Anonymous
        }
    }

    /// Residency of the data pages; see [`LockedBox::residency`]. Works
    /// while sealed: mincore(2) reads no byte.
    ///
    /// # Errors
    /// As [`LockedBox::residency`].
    pub fn residency(&self) -> io::Result<Residency> {
        if !self.region.present() {
            return Err(io::Error::other(EXCLUDED));
        }
        self.region.residency()
    }

    /// Makes the pages `PROT_NONE` again, or aborts: a secret that should be
    /// sealed must not silently stay readable.
    #[inline(always)]
    fn seal_again(&self) {
        if !self.region.present() {
            return; // a fork child's copy of an Exclude box: nothing here
        }
        // SAFETY: called with no guard alive (the count is zero under
        // `gate`, or the only `RefMut` is being dropped).
        if let Err(e) = unsafe { self.region.protect(Protection::None) } {
            reseal_failed(e);
        }
    }
}

impl<T: ?Sized + Plain> Drop for SealedBox<T> {
    /// Drops as the unsealed box would: the pages are made writable again
    /// (`Region::open`), then the value is dropped, the canary checked and
    /// the pages wiped and given back.
    fn drop(&mut self) {
        // SAFETY: `region` is taken exactly once, here.
        let region = unsafe { ManuallyDrop::take(&mut self.region) };
        drop(LockedBox::from_parts(self.ptr, Store::Page(region)));
    }
}

impl<T: ?Sized + Plain> fmt::Debug for SealedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBox")
            .field("type", &type_name::<T>())
            .field("bytes", &self.region.size())
            .field("locked", &self.is_locked())
            .field("readers", &self.state.readers())
            .finish_non_exhaustive()
    }
}

/// A shared borrow of a [`SealedBox`]'s value; the pages stay readable while
/// any `Ref` of the box lives.
///
/// Passing a `Ref` to [`std::mem::forget`] leaves the pages readable until
/// the box is next borrowed mutably, unsealed or dropped.
pub struct Ref<'a, T: ?Sized + Plain> {
    sealed: &'a SealedBox<T>,
    /// The generation this guard was counted in; 0 if it was not counted
    /// (a frozen box in a fork child).
    counted: u64,
}

impl<T: ?Sized + Plain> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.sealed.assert_present();
        // SAFETY: this `Ref` is counted in `readers` (S1: the pages are
        // readable until it drops), or it lives in a fork child where the box
        // is frozen readable, or it was counted by the parent of this fork
        // child, which froze the box at its first use here (and until then
        // the pages are as the parent left them, readable). The value is
        // initialised, and only shared borrows exist (a `RefMut` needs
        // `&mut SealedBox`).
        unsafe { self.sealed.ptr.as_ref() }
    }
}

impl<T: ?Sized + Plain> Drop for Ref<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // A guard counted by a parent process (its copy lives on in this
        // fork child) or not counted at all changes nothing here.
        let sealed = self.sealed;
        sealed
            .state
            .release(self.counted, fork::generation(), || sealed.seal_again());
    }
}

impl<T: ?Sized + Plain> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ref")
            .field("type", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// An exclusive borrow of a [`SealedBox`]'s value; the pages stay read-write
/// while it lives.
///
/// Passing a `RefMut` to [`std::mem::forget`] leaves the pages read-write
/// until the box is next borrowed, unsealed or dropped.
pub struct RefMut<'a, T: ?Sized + Plain> {
    sealed: &'a mut SealedBox<T>,
}

impl<T: ?Sized + Plain> Deref for RefMut<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.sealed.assert_present();
        // SAFETY: the pages are read-write while this `RefMut` lives (made
        // so by `borrow_mut`, sealed again only by its drop), and it holds
        // the box exclusively.
        unsafe { self.sealed.ptr.as_ref() }
    }
}

impl<T: ?Sized + Plain> DerefMut for RefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.sealed.assert_present();
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { self.sealed.ptr.as_mut() }
    }
}

impl<T: ?Sized + Plain> Drop for RefMut<'_, T> {
    fn drop(&mut self) {
        self.sealed.seal_again();
    }
}

impl<T: ?Sized + Plain> fmt::Debug for RefMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefMut")
            .field("type", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Panics for an mprotect that failed to open a sealed box's pages; out of
/// line, so that the borrow path stays small enough to inline into the
/// caller (see the module docs on SRSO).
#[cold]
#[inline(never)]
fn protect_failed(prot: &str, e: std::io::Error) -> ! {
    panic!("lockedmem: mprotect({prot}) of a sealed box failed: {e}");
}

/// Aborts when a sealed box's pages cannot be sealed again: a secret that
/// should be sealed must not silently stay readable.
#[cold]
#[inline(never)]
fn reseal_failed(e: std::io::Error) -> ! {
    eprintln!("lockedmem: cannot seal a box again (mprotect(PROT_NONE): {e}); aborting");
    std::process::abort();
}
