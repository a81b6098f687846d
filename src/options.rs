//! `Options`, the builder for boxes that need more than the defaults, and the
//! policies it sets.
#![forbid(unsafe_code)]

use std::mem;

use crate::error::Error;
use crate::layout::{Layout, LayoutError};
use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::region::{self, Region};
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
}

impl Options {
    /// The defaults: [`LockPolicy::Require`], [`ForkPolicy::Wipe`].
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

    /// Makes a box holding an all-zero `T`.
    ///
    /// # Errors
    /// [`Error::MemlockLimit`] if `RLIMIT_MEMLOCK` refuses the lock under
    /// [`LockPolicy::Require`]; [`Error::Alignment`] if `T` is aligned to more
    /// than a page; [`Error::TooLarge`] if `T` with its guard pages does not
    /// fit; [`Error::Unsupported`] if the kernel lacks an advice the fork
    /// policy needs; [`Error::Os`] if a system call fails otherwise.
    pub fn zeroed<T: Plain>(&self) -> Result<LockedBox<T>, Error> {
        let region = self.region(1, mem::size_of::<T>(), mem::align_of::<T>())?;
        Ok(LockedBox::from_region(region))
    }

    /// Makes a box holding `len` all-zero `T`s. `len == 0` is allowed.
    ///
    /// # Errors
    /// As [`Options::zeroed`]; [`Error::TooLarge`] also when
    /// `len * size_of::<T>()` overflows.
    pub fn zeroed_slice<T: Plain>(&self, len: usize) -> Result<LockedBox<[T]>, Error> {
        let region = self.region(len, mem::size_of::<T>(), mem::align_of::<T>())?;
        Ok(LockedBox::from_region_slice(region, len))
    }

    /// A region for `len` elements of `elem_size` bytes aligned to `align`.
    fn region(&self, len: usize, elem_size: usize, align: usize) -> Result<Region, Error> {
        let too_large = Error::TooLarge { len, elem_size };
        let size = len.checked_mul(elem_size).ok_or(too_large)?;
        let page_size = sys::page_size();
        let layout = Layout::new(size, align, page_size).map_err(|e| match e {
            LayoutError::AlignTooLarge => Error::Alignment { align, page_size },
            LayoutError::TooLarge | LayoutError::BadAlign | LayoutError::BadPageSize => {
                Error::TooLarge { len, elem_size }
            }
        })?;
        if self.lock == LockPolicy::Require && !region::lockable(layout.data_len) {
            return Err(Error::TooLarge { len, elem_size });
        }
        Region::create(layout, self.lock, self.fork)
    }
}
