//! `Options`, the builder for boxes that need more than the defaults, and the
//! policies it sets.
#![forbid(unsafe_code)]

use std::mem;

use crate::error::Error;
use crate::layout::{Layout, LayoutError, PackedLayout};
use crate::limits;
use crate::locked_box::{LockedBox, Store};
use crate::packed;
use crate::plain::Plain;
use crate::region::Region;
use crate::sys;

/// What to do when the data pages cannot be mlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockPolicy {
    /// No lock, no box: the constructor returns the error
    /// ([`Error::MemlockLimit`] when `RLIMIT_MEMLOCK` refused).
    #[default]
    Require,
    /// Make the box anyway, unlocked; [`LockedBox::is_locked`] then says
    /// `false`. Every other protection still applies.
    BestEffort,
}

/// What a child made by fork(2) gets of the box's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForkPolicy {
    /// `MADV_WIPEONFORK`: the child sees zeros where the secret was. Its copy
    /// of the box stays usable and can be dropped normally.
    #[default]
    Wipe,
    /// `MADV_DONTFORK`: the pages do not exist in the child; touching the
    /// box there faults. Dropping the child's copy is safe and does nothing.
    Exclude,
    /// Neither: the child gets a copy-on-write copy of the secret, as with
    /// ordinary memory. Its copy is not locked (locks are not inherited).
    Keep,
}

/// How a box is kept apart from other memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Data pages of its own, the value flush against a `PROT_NONE` guard
    /// page: a linear overflow faults at once. Costs at least one locked
    /// page per box (4 KiB on most machines).
    #[default]
    Page,
    /// A slot of 64 bytes to 4 KiB on a locked, guarded page shared with
    /// other small secrets, with a canary on each side: an overflow is
    /// caught when the box is dropped, not when it happens. A 32-byte secret
    /// costs a 64-byte slot of locked memory, so 1,024 of them fit in the
    /// 64 KiB `RLIMIT_MEMLOCK` of many hosts. Applies to values of up to
    /// 2 KiB aligned to at most 16 bytes (a 2 KiB value, with its canaries,
    /// takes a whole 4 KiB slot); others are page-isolated. Sealing a packed
    /// box moves it to pages of its own.
    Packed,
}

/// Settings for making a box, in the style of [`std::fs::OpenOptions`].
///
/// ```
/// use lockedbox::{ForkPolicy, LockPolicy, Options};
///
/// let token = Options::new()
///     .lock(LockPolicy::BestEffort)
///     .fork(ForkPolicy::Exclude)
///     .zeroed_slice::<u8>(64)?;
/// assert_eq!(token.len(), 64);
/// # Ok::<(), lockedbox::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    lock: LockPolicy,
    fork: ForkPolicy,
    isolation: Isolation,
}

impl Options {
    /// The defaults: [`LockPolicy::Require`], [`ForkPolicy::Wipe`],
    /// [`Isolation::Page`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what happens when the pages cannot be locked.
    pub fn lock(&mut self, policy: LockPolicy) -> &mut Self {
        self.lock = policy;
        self
    }

    /// Sets what a fork(2) child gets of the pages.
    pub fn fork(&mut self, policy: ForkPolicy) -> &mut Self {
        self.fork = policy;
        self
    }

    /// Sets how the box is kept apart from other memory.
    pub fn isolation(&mut self, isolation: Isolation) -> &mut Self {
        self.isolation = isolation;
        self
    }

    /// Makes a box holding an all-zero `T`. Writing the secret through the
    /// box afterwards (`DerefMut`) writes it in place, in the locked pages,
    /// as [`LockedBox::new_with`] does.
    ///
    /// # Errors
    /// [`Error::MemlockLimit`] if `RLIMIT_MEMLOCK` refuses the lock under
    /// [`LockPolicy::Require`]; [`Error::Alignment`] if `T` is aligned to more
    /// than a page; [`Error::TooLarge`] if `T` with its guard pages does not
    /// fit; [`Error::Unsupported`] if the kernel lacks an advice the fork
    /// policy needs; [`Error::Os`] if a system call fails otherwise.
    pub fn zeroed<T: Plain>(&self) -> Result<LockedBox<T>, Error> {
        let store = self.store(1, mem::size_of::<T>(), mem::align_of::<T>())?;
        Ok(LockedBox::from_store(store))
    }

    /// Makes a box holding `len` all-zero `T`s. `len == 0` is allowed.
    ///
    /// # Errors
    /// As [`Options::zeroed`]; [`Error::TooLarge`] also when
    /// `len * size_of::<T>()` overflows.
    pub fn zeroed_slice<T: Plain>(&self, len: usize) -> Result<LockedBox<[T]>, Error> {
        let store = self.store(len, mem::size_of::<T>(), mem::align_of::<T>())?;
        Ok(LockedBox::from_store_slice(store, len))
    }

    /// Memory for `len` elements of `elem_size` bytes aligned to `align`.
    fn store(&self, len: usize, elem_size: usize, align: usize) -> Result<Store, Error> {
        let size = len
            .checked_mul(elem_size)
            .ok_or(Error::TooLarge { len, elem_size })?;
        let page_size = sys::page_size();
        if self.isolation == Isolation::Packed {
            if let Some(layout) = PackedLayout::new(size, align, page_size) {
                if let Some(slot) = packed::alloc(layout, self.lock, self.fork)? {
                    return Ok(Store::Packed(slot));
                }
                // BestEffort and the page could not be locked: fall through
                // to an (unlocked) page-isolated box.
            }
        }
        let layout = Layout::new(size, align, page_size).map_err(|e| match e {
            LayoutError::AlignTooLarge => Error::Alignment { align, page_size },
            LayoutError::TooLarge | LayoutError::BadAlign | LayoutError::BadPageSize => {
                Error::TooLarge { len, elem_size }
            }
        })?;
        if self.lock == LockPolicy::Require && !limits::lockable(layout.data_len) {
            return Err(Error::TooLarge { len, elem_size });
        }
        Region::create(layout, self.lock, self.fork).map(Store::Page)
    }
}
