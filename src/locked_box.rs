//! `LockedBox<T>`: a typed view over a [`Region`].
//!
//! Unsafe here is limited to turning the region's value pointer into
//! references and dropping the value in place.
#![allow(unsafe_code)]

use std::any::type_name;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

use crate::error::Error;
use crate::options::Options;
use crate::plain::Plain;
use crate::region::{Region, Residency};

/// One secret in its own guarded, locked, dump-proof mapping.
///
/// ```
/// use lockedbox::LockedBox;
///
/// let mut key = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x42))?;
/// assert!(key.is_locked());
/// key[0] = 1;
/// assert_eq!(key[..2], [1, 0x42]);
/// # Ok::<(), lockedbox::Error>(())
/// ```
///
/// The value's last byte is the last byte of its last data page, followed by
/// a `PROT_NONE` guard page; a random canary sits right in front of it,
/// another guard page before that. The data pages are mlocked,
/// `MADV_DONTDUMP` and (by default) `MADV_WIPEONFORK`. Dropping the box drops
/// the value in place, checks the canary (aborting the process if it
/// changed), zeroizes every data byte, then munlocks, discards and unmaps the
/// pages.
///
/// `Debug` prints the type and size, never a byte of the value. There is no
/// `Clone`, `Display` or `Serialize`.
pub struct LockedBox<T: ?Sized + Plain> {
    /// The value, inside `region`'s data pages.
    ptr: NonNull<T>,
    region: Region,
    /// The box owns a `T`.
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its `T` and its mapping exclusively; sending the box
// sends the `T`, and the mapping's system calls work from any thread.
unsafe impl<T: ?Sized + Plain + Send> Send for LockedBox<T> {}
// SAFETY: through `&LockedBox<T>` one gets only `&T` and read-only queries
// (`is_locked`, `residency`), so sharing the box is sharing a `&T`.
unsafe impl<T: ?Sized + Plain + Sync> Sync for LockedBox<T> {}

impl<T: Plain> LockedBox<T> {
    /// Moves `value` into a new box.
    ///
    /// The value passes through the stack (and registers) on its way in; the
    /// caller's copy is not wiped. Prefer [`LockedBox::new_with`], which
    /// writes the secret straight into the locked pages.
    ///
    /// # Errors
    /// As [`Options::zeroed`].
    pub fn new(value: T) -> Result<Self, Error> {
        let mut b = Self::new_zeroed()?;
        *b = value;
        Ok(b)
    }

    /// A box holding an all-zero `T`.
    ///
    /// # Errors
    /// As [`Options::zeroed`].
    pub fn new_zeroed() -> Result<Self, Error> {
        Options::new().zeroed()
    }

    /// A box whose value `init` writes in place, into memory that is already
    /// locked and zeroed, so the secret never passes through the stack.
    ///
    /// If `init` panics, the box is dropped (and wiped) while unwinding.
    ///
    /// ```
    /// # fn read_key_from_somewhere(out: &mut [u8]) { out.fill(9) }
    /// let key = lockedbox::LockedBox::<[u8; 32]>::new_with(|k| read_key_from_somewhere(k))?;
    /// # Ok::<(), lockedbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed`]; `init` is not called then.
    pub fn new_with(init: impl FnOnce(&mut T)) -> Result<Self, Error> {
        let mut b = Self::new_zeroed()?;
        init(&mut b);
        Ok(b)
    }
}

impl<T: Plain> LockedBox<[T]> {
    /// A box holding `len` all-zero elements. `len == 0` is allowed.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn new_zeroed_slice(len: usize) -> Result<Self, Error> {
        Options::new().zeroed_slice(len)
    }

    /// A box holding a copy of `src`.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn from_slice(src: &[T]) -> Result<Self, Error>
    where
        T: Copy,
    {
        let mut b = Self::new_zeroed_slice(src.len())?;
        b.copy_from_slice(src);
        Ok(b)
    }
}

impl<T: Plain> LockedBox<T> {
    /// Wraps a fresh region whose value bytes are zero and sized for one `T`.
    pub(crate) fn from_region(region: Region) -> Self {
        debug_assert_eq!(region.layout().size, mem::size_of::<T>());
        debug_assert_eq!(
            region
                .value_ptr()
                .as_ptr()
                .align_offset(mem::align_of::<T>()),
            0
        );
        LockedBox {
            ptr: region.value_ptr().cast::<T>(),
            region,
            _owns: PhantomData,
        }
    }
}

impl<T: Plain> LockedBox<[T]> {
    /// Wraps a fresh region whose value bytes are zero and sized for `len` `T`s.
    pub(crate) fn from_region_slice(region: Region, len: usize) -> Self {
        debug_assert_eq!(
            Some(region.layout().size),
            len.checked_mul(mem::size_of::<T>())
        );
        debug_assert_eq!(
            region
                .value_ptr()
                .as_ptr()
                .align_offset(mem::align_of::<T>()),
            0
        );
        LockedBox {
            ptr: NonNull::slice_from_raw_parts(region.value_ptr().cast::<T>(), len),
            region,
            _owns: PhantomData,
        }
    }
}

impl<T: ?Sized + Plain> LockedBox<T> {
    /// Whether the data pages are really mlocked in this process.
    ///
    /// `false` for a box made under [`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort)
    /// whose lock was refused, and for a box inherited by a fork(2) child
    /// (memory locks are not inherited).
    pub fn is_locked(&self) -> bool {
        self.region.is_locked()
    }

    /// How many of the box's data pages are resident in RAM, as mincore(2)
    /// reports them. A locked box has all of them resident.
    ///
    /// # Errors
    /// The error of mincore(2); an error also in a fork child for a box its
    /// parent made with [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude),
    /// whose pages do not exist there.
    pub fn residency(&self) -> io::Result<Residency> {
        if !self.region.present() {
            return Err(io::Error::other(EXCLUDED));
        }
        self.region.residency()
    }

    /// Panics in a fork child whose parent made this box with
    /// `ForkPolicy::Exclude`: the pages do not exist here, and the address
    /// range may since hold another mapping.
    #[inline]
    pub(crate) fn assert_present(&self) {
        assert!(self.region.present(), "{EXCLUDED}");
    }

    /// The region holding the value.
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// Where the value lives. Dereferencing it is only valid while the
    /// region's protection allows it.
    pub(crate) fn value_ptr(&self) -> NonNull<T> {
        self.ptr
    }
}

/// What touching a box whose pages were excluded from this fork child says.
const EXCLUDED: &str = "lockedbox: this box was made with ForkPolicy::Exclude by the parent of \
                        this fork(2) child; its pages do not exist here";

impl<T: ?Sized + Plain> Deref for LockedBox<T> {
    type Target = T;

    /// # Panics
    /// In a fork(2) child, for a box its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude): the pages do not
    /// exist there, and the address range may since hold another mapping.
    fn deref(&self) -> &T {
        self.assert_present();
        // SAFETY: `ptr` points at an initialised `T` (zeros, valid by `Plain`,
        // or what was written since) inside data pages that stay mapped and
        // read-write for the life of the box (region invariants R1, R3); the
        // returned borrow is tied to `&self`, so Rust's aliasing rules for the
        // box carry over to the value.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized + Plain> DerefMut for LockedBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.assert_present();
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized + Plain> Drop for LockedBox<T> {
    fn drop(&mut self) {
        if self.region.present() {
            // A sealed box may have left the pages PROT_NONE.
            self.region.open();
            // SAFETY: `ptr` points at a valid `T` that nothing else will use:
            // the box is being dropped and no borrow of it can be alive.
            unsafe { ptr::drop_in_place(self.ptr.as_ptr()) };
            self.region.verify_canary();
        }
        // `region` is dropped next: wipe, munlock, DONTNEED, munmap.
    }
}

impl<T: ?Sized + Plain> fmt::Debug for LockedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedBox")
            .field("type", &type_name::<T>())
            .field("bytes", &self.region.layout().size)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}
