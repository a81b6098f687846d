//! `SealedBox<T>`: a box whose pages are `PROT_NONE` while no borrow is out.
//!
//! Unsafe here is limited to changing the pages' protection (always under
//! the rules below) and turning the value pointer into references while a
//! guard proves the protection allows it.
//!
//! # How concurrent borrows stay race-free
//!
//! `readers` counts live [`Ref`]s. Two rules hold at every instant:
//!
//! - **(S1)** `readers > 0` implies the pages are at least readable.
//! - **(S2)** Every change of protection, and every change of `readers` to or
//!   from zero, happens with `gate` held.
//!
//! A borrow that finds `readers > 0` increments it with a compare-and-swap
//! from that nonzero value, without a system call: by (S1) the pages are
//! readable, and they stay so, because only the guard that moves the count
//! from 1 to 0 may seal them, and that move fails if the count changed. A
//! borrow that finds zero takes `gate`, makes the pages readable *then*
//! publishes `readers = 1`. The last guard out takes `gate`, moves the count
//! from 1 to 0 *then* makes the pages `PROT_NONE`; a borrower arriving in
//! between sees zero and waits for `gate`. So no `Ref` ever points at
//! `PROT_NONE` pages, and once the last guard's drop returns the pages are
//! sealed again. The count is capped at `isize::MAX` (the process aborts
//! beyond it, as `Arc` does), so it cannot wrap to zero under a live `Ref`.
//!
//! # fork(2)
//!
//! `gate` is not a `std` mutex but a word holding the fork *generation*
//! (`fork::generation`) of its holder: a fork child that finds it held by its
//! parent's generation (a thread that does not exist in the child) takes it
//! over instead of waiting forever. `readers` counts the guards of one
//! generation, `epoch`; the first slow-path borrow in a fork child *adopts*
//! the box for the child's generation. If guards were out at the fork, copies
//! of them may live on in the child (on the forking thread's stack), so the
//! pages stay as they were, readable, for the child's life (`frozen`): no
//! guard there ever points at `PROT_NONE` pages. Guards remember the
//! generation they were counted in, and a guard dropped in another generation
//! changes nothing. A `borrow_mut` (which proves no guard is alive) returns a
//! frozen box to normal sealing.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::error::Error;
use crate::fork;
use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::region::{Region, Residency};
use crate::sys::Protection;

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
/// use lockedbox::LockedBox;
///
/// let sealed = LockedBox::<[u8; 32]>::new_with(|k| k.fill(7))?.seal()?;
/// {
///     let key = sealed.borrow();        // pages read-only while `key` lives
///     assert_eq!(key[0], 7);
/// }                                     // PROT_NONE again
/// let unsealed = sealed.unseal();
/// assert_eq!(unsealed[31], 7);
/// # Ok::<(), lockedbox::Error>(())
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
    /// Live `Ref`s of generation `epoch`; see the module docs for the
    /// rules (S1, S2).
    readers: AtomicUsize,
    /// The fork generation whose guards `readers` counts.
    epoch: AtomicU64,
    /// In this `epoch`, leave the protection alone and count nothing (a fork
    /// child that may hold copies of its parent's guards).
    frozen: AtomicBool,
    /// Serialises protection changes and moves of `readers` to or from zero.
    gate: Gate,
    /// The box owns a `T`.
    _owns: PhantomData<T>,
}

/// Most `Ref`s out at once; beyond it the process aborts.
const MAX_READERS: usize = isize::MAX as usize;

/// A lock word: 0 when free, else the fork generation of its holder. A
/// holder of another generation is a thread of a parent process, which does
/// not exist here: the lock is taken over.
struct Gate(AtomicU64);

/// Holds a [`Gate`]; frees it when dropped.
struct GateGuard<'a>(&'a Gate);

impl Gate {
    #[inline(always)]
    fn lock(&self, generation: u64) -> GateGuard<'_> {
        let mut spins = 0u32;
        loop {
            let held = self.0.load(Ordering::Relaxed);
            if held != generation
                && self
                    .0
                    .compare_exchange_weak(held, generation, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return GateGuard(self);
            }
            // Held by this generation: wait. The holder only makes one
            // mprotect call before it lets go.
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for GateGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.0.store(0, Ordering::Release);
    }
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
        let (ptr, region) = self.into_page_region(NonNull::cast)?;
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
        let (ptr, region) =
            self.into_page_region(|p| NonNull::slice_from_raw_parts(p.cast::<T>(), len))?;
        SealedBox::seal_parts(ptr, region)
    }
}

impl<T: ?Sized + Plain> SealedBox<T> {
    fn seal_parts(ptr: NonNull<T>, region: Region) -> Result<Self, Error> {
        // SAFETY: the box was moved in, so no reference into the value is
        // alive, and none is made until a guard makes the pages accessible.
        if let Err(e) = unsafe { region.protect(Protection::None) } {
            let len = region.data_len();
            drop(LockedBox::from_page_region(ptr, region));
            return Err(Error::os("mprotect", len, e));
        }
        Ok(SealedBox {
            ptr,
            region: ManuallyDrop::new(region),
            readers: AtomicUsize::new(0),
            epoch: AtomicU64::new(fork::generation()),
            frozen: AtomicBool::new(false),
            gate: Gate(AtomicU64::new(0)),
            _owns: PhantomData,
        })
    }

    /// Panics in a fork child whose parent made this box with
    /// `ForkPolicy::Exclude`; see `LockedBox::assert_present`.
    #[inline]
    fn assert_present(&self) {
        assert!(self.region.present(), "{}", crate::locked_box::EXCLUDED);
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
        let generation = fork::generation();
        if self.epoch.load(Ordering::Acquire) == generation {
            let mut n = self.readers.load(Ordering::Acquire);
            while n > 0 {
                check_readers(n);
                // (S1): the pages are readable while the count is nonzero,
                // and only the move from 1 to 0 may seal them, which this CAS
                // races.
                match self.readers.compare_exchange_weak(
                    n,
                    n + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        return Ref {
                            sealed: self,
                            counted: generation,
                        };
                    }
                    Err(now) => n = now,
                }
            }
        }
        let _gate = self.gate.lock(generation);
        self.adopt(generation);
        self.assert_present();
        if self.frozen.load(Ordering::Relaxed) {
            // The pages stay as the fork left them: readable.
            return Ref {
                sealed: self,
                counted: 0,
            };
        }
        let n = self.readers.load(Ordering::Acquire);
        if n == 0 {
            // SAFETY: no `Ref` of this generation is alive (the count is zero
            // and may only leave zero under `gate`, which we hold), none of
            // another (the box is not frozen), and no `RefMut` (it needs
            // `&mut self`); widening to read-only invalidates nothing.
            if let Err(e) = unsafe { self.region.protect(Protection::Read) } {
                panic!("lockedbox: mprotect(PROT_READ) of a sealed box failed: {e}");
            }
        }
        check_readers(n);
        // Under `gate`, nobody else moves the count to or from zero; other
        // borrowers may still increment a nonzero count, hence fetch_add.
        self.readers.fetch_add(1, Ordering::AcqRel);
        Ref {
            sealed: self,
            counted: generation,
        }
    }

    /// On the first slow-path use in a new fork generation, with `gate`
    /// held: start counting afresh, frozen if guards were out at the fork.
    #[inline(always)]
    fn adopt(&self, generation: u64) {
        if self.epoch.load(Ordering::Acquire) == generation {
            return;
        }
        let inherited_guards = self.readers.load(Ordering::Acquire) != 0;
        self.frozen.store(inherited_guards, Ordering::Relaxed);
        self.readers.store(0, Ordering::Relaxed);
        self.epoch.store(generation, Ordering::Release);
    }

    /// Lends the value read-write; the pages are read-write while the
    /// `RefMut` lives and `PROT_NONE` again when it drops.
    ///
    /// # Panics
    /// As [`borrow`](SealedBox::borrow), for mprotect(`PROT_READ | PROT_WRITE`).
    pub fn borrow_mut(&mut self) -> RefMut<'_, T> {
        self.assert_present();
        // `&mut self`: no guard is alive, of any generation. A nonzero count
        // can only be left by `Ref`s passed to `mem::forget`, or copied by a
        // fork; their borrows have ended. Start afresh, unfrozen.
        *self.readers.get_mut() = 0;
        *self.frozen.get_mut() = false;
        *self.epoch.get_mut() = fork::generation();
        // SAFETY: exclusive access (`&mut self`), so no reference into the
        // value is alive; widening access invalidates nothing.
        if let Err(e) = unsafe { self.region.protect(Protection::ReadWrite) } {
            panic!("lockedbox: mprotect(PROT_READ | PROT_WRITE) of a sealed box failed: {e}");
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
        LockedBox::from_page_region(ptr, region)
    }

    /// Whether the data pages are mlocked; see [`LockedBox::is_locked`].
    pub fn is_locked(&self) -> bool {
        self.region.is_locked()
    }

    /// Residency of the data pages; see [`LockedBox::residency`]. Works
    /// while sealed: mincore(2) reads no byte.
    ///
    /// # Errors
    /// As [`LockedBox::residency`].
    pub fn residency(&self) -> io::Result<Residency> {
        if !self.region.present() {
            return Err(io::Error::other(crate::locked_box::EXCLUDED));
        }
        self.region.residency()
    }

    /// Ends one `Ref` counted in `generation`; the last one out seals the
    /// pages again.
    #[inline(always)]
    fn release_reader(&self, generation: u64) {
        let mut n = self.readers.load(Ordering::Acquire);
        while n > 1 {
            match self
                .readers
                .compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
        let _gate = self.gate.lock(generation);
        // Under `gate` the count cannot leave or reach zero behind our back,
        // but fast-path borrowers may still move it between nonzero values.
        let mut n = self.readers.load(Ordering::Acquire);
        loop {
            debug_assert!(n > 0, "a Ref is alive");
            let last = n == 1;
            match self
                .readers
                .compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if last => break,
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
        // The count is zero: no `Ref` is alive and none can appear before
        // we release `gate` (a borrower that sees zero waits for it).
        self.seal_again();
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
            eprintln!("lockedbox: cannot seal a box again (mprotect(PROT_NONE): {e}); aborting");
            std::process::abort();
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
        drop(LockedBox::from_page_region(self.ptr, region));
    }
}

impl<T: ?Sized + Plain> fmt::Debug for SealedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBox")
            .field("type", &type_name::<T>())
            .field("bytes", &self.region.size())
            .field("locked", &self.is_locked())
            .field("readers", &self.readers.load(Ordering::Relaxed))
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
        if self.counted == fork::generation() {
            self.sealed.release_reader(self.counted);
        }
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

/// Aborts when the count of `Ref`s would pass [`MAX_READERS`]: wrapping to
/// zero would let the pages be sealed under live guards.
#[inline(always)]
fn check_readers(n: usize) {
    if n >= MAX_READERS {
        std::process::abort();
    }
}
