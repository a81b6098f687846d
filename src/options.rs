//! `Options`, the builder for boxes that need more than the defaults: plain
//! data that hands a store request to the box.
#![forbid(unsafe_code)]

use std::mem;

use crate::error::{Error, InitError};
use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::policy::{Backing, ForkPolicy, Isolation, LockPolicy};
use crate::store::Request;
use crate::vec::LockedVec;

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
    fork: Option<ForkPolicy>,
    isolation: Isolation,
    backing: Backing,
}

impl Options {
    /// The defaults: [`LockPolicy::Require`], [`ForkPolicy::Wipe`] (or
    /// `Exclude` for secret memory), [`Isolation::Page`],
    /// [`Backing::Anonymous`].
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
        self.fork = Some(policy);
        self
    }

    /// Sets what memory the pages are made of; see [`Backing`].
    pub fn backing(&mut self, backing: Backing) -> &mut Self {
        self.backing = backing;
        self
    }

    /// Sets how the box is kept apart from other memory.
    pub fn isolation(&mut self, isolation: Isolation) -> &mut Self {
        self.isolation = isolation;
        self
    }

    fn request<T>(&self, len: usize) -> Request {
        Request {
            len,
            elem_size: mem::size_of::<T>(),
            align: mem::align_of::<T>(),
            lock: self.lock,
            fork: self.fork.unwrap_or_default(),
            fork_chosen: self.fork.is_some(),
            isolation: self.isolation,
            backing: self.backing,
        }
    }

    /// Makes a box holding an all-zero `T`. Writing the secret through the
    /// box afterwards (`DerefMut`) writes it in place, in the locked pages,
    /// as [`LockedBox::new_with`] does.
    ///
    /// # Errors
    /// [`Error::MemlockLimit`] if `RLIMIT_MEMLOCK` refuses the lock under
    /// [`LockPolicy::Require`]; [`Error::Alignment`] if `T` is aligned to more
    /// than a page; [`Error::TooLarge`] if `T` with its guard pages does not
    /// fit in the address space, or is larger than physical memory (under
    /// either lock policy); [`Error::Unsupported`] if the kernel lacks an
    /// advice the fork policy needs; [`Error::Os`] if a system call fails
    /// otherwise.
    pub fn zeroed<T: Plain>(&self) -> Result<LockedBox<T>, Error> {
        LockedBox::zeroed_with(self.request::<T>(1))
    }

    /// Makes a box whose value `init` writes in place, as
    /// [`LockedBox::new_with`] does.
    ///
    /// # Errors
    /// As [`Options::zeroed`]; `init` is not called then.
    pub fn new_with<T: Plain>(&self, init: impl FnOnce(&mut T)) -> Result<LockedBox<T>, Error> {
        let mut b = self.zeroed::<T>()?;
        init(&mut b);
        Ok(b)
    }

    /// Makes a box whose value a fallible `init` writes in place, as
    /// [`LockedBox::try_new_with`] does.
    ///
    /// ```
    /// use lockedbox::{Isolation, Options};
    ///
    /// #[derive(Debug)]
    /// struct NotAKey;
    ///
    /// let key = Options::new()
    ///     .isolation(Isolation::Packed)
    ///     .try_new_with::<[u8; 16], _>(|k| {
    ///         k.fill(1);
    ///         Ok::<(), NotAKey>(())
    ///     })
    ///     .unwrap();
    /// assert_eq!(key[0], 1);
    /// ```
    ///
    /// # Errors
    /// As [`LockedBox::try_new_with`].
    pub fn try_new_with<T: Plain, E>(
        &self,
        init: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<LockedBox<T>, InitError<E>> {
        LockedBox::try_init(self.request::<T>(1), init)
    }

    /// Makes a box holding a copy of `src`, as [`LockedBox::from_slice`]
    /// does.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn from_slice<T: Plain + Copy>(&self, src: &[T]) -> Result<LockedBox<[T]>, Error> {
        let mut b = self.zeroed_slice::<T>(src.len())?;
        b.copy_from_slice(src);
        Ok(b)
    }

    /// Makes an empty [`LockedVec`] with room for `capacity` elements, whose
    /// memory, and every growth of it, is made as these options say.
    ///
    /// ```
    /// use lockedbox::{Isolation, Options};
    ///
    /// let mut token = Options::new().isolation(Isolation::Packed).vec::<u8>(32)?;
    /// token.try_extend_from_slice(&[7; 32])?;
    /// assert!(token.is_locked());
    /// # Ok::<(), lockedbox::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn vec<T: Plain>(&self, capacity: usize) -> Result<LockedVec<T>, Error> {
        let mut v = LockedVec::with_request(self.request::<T>(0));
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Makes a box holding `len` all-zero `T`s. `len == 0` is allowed.
    ///
    /// # Errors
    /// As [`Options::zeroed`]; [`Error::TooLarge`] also when
    /// `len * size_of::<T>()` overflows.
    pub fn zeroed_slice<T: Plain>(&self, len: usize) -> Result<LockedBox<[T]>, Error> {
        LockedBox::zeroed_slice_with(self.request::<T>(len))
    }
}
