//! `Options`, the builder for boxes that need more than the defaults: plain
//! data that hands a store request to the box.
#![forbid(unsafe_code)]

use std::io;
use std::mem;

use crate::error::{Error, InitError};
use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::policy::{Backing, DumpPolicy, ForkPolicy, Isolation, LockPolicy};
use crate::store::Request;
use crate::string::LockedString;
use crate::vec::LockedVec;

/// Settings for making a box, a vector or a string, in the style of
/// [`std::fs::OpenOptions`].
///
/// ```
/// use lockedmem::{ForkPolicy, Isolation, LockPolicy, Options};
///
/// let token = Options::new()
///     .lock(LockPolicy::BestEffort)
///     .fork(ForkPolicy::Exclude)
///     .zeroed_slice::<u8>(64)?;
/// assert_eq!(token.len(), 64);
///
/// // Options are plain `Copy` data: keep them in a binding, or a `const`.
/// const PACKED: Options = Options::new().isolation(Isolation::Packed);
/// let o = Options::new().isolation(Isolation::Packed);
/// let key = o.random::<32>()?;
/// let tag = PACKED.from_hex::<4>("deadbeef")?;
/// assert_eq!((key.isolation(), tag.isolation()), (Isolation::Packed, Isolation::Packed));
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// # Why the setters take and return `Options` by value
///
/// Every setter is a `const fn(self, ..) -> Self`. That makes both forms
/// people write compile: the chain on a temporary
/// (`let o = Options::new().isolation(..);`, which `&mut self` setters
/// refuse with E0716, the temporary dropped while borrowed) and a `const`.
/// The price is that a setter does not change a binding in place: write
/// `o = o.lock(..)`. Calling one as a statement (`o.lock(..);`) would be a
/// no-op, so every setter is `#[must_use]` and that line is a compiler
/// warning that says what to write instead, never a silent no-op:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use lockedmem::{Isolation, Options};
///
/// let mut o = Options::new();
/// o.isolation(Isolation::Packed); // warning: unused return value; write `o = o.isolation(..)`
/// # let _ = o;
/// ```
///
/// No single setter can do both: a `(&mut self) -> Self` setter on a `Copy`
/// type compiles for the temporary and mutates a binding, but
/// `o.isolation(a).lock(b);` on a binding then changes `o`'s isolation and
/// drops the lock policy silently (the second call acts on a copy), with no
/// warning to point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    lock: LockPolicy,
    fork: Option<ForkPolicy>,
    isolation: Isolation,
    backing: Backing,
    dumps: DumpPolicy,
}

/// What a setter's `#[must_use]` tells a caller who used it in place.
macro_rules! setter_must_use {
    () => {
        "a setter returns the changed options and leaves `self` as it was: \
         write `opts = opts.setter(..)`, or chain it before the constructor"
    };
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl Options {
    /// The defaults: [`LockPolicy::Require`], [`ForkPolicy::Wipe`] (or
    /// `Exclude` for secret memory, and where the platform cannot give a
    /// fork child zeros), [`Isolation::Page`], [`Backing::Anonymous`],
    /// [`DumpPolicy::BestEffort`].
    pub const fn new() -> Self {
        Options {
            lock: LockPolicy::Require,
            fork: None,
            isolation: Isolation::Page,
            backing: Backing::Anonymous,
            dumps: DumpPolicy::BestEffort,
        }
    }

    /// These options with `policy` for when the pages cannot be locked.
    #[must_use = setter_must_use!()]
    pub const fn lock(self, policy: LockPolicy) -> Self {
        Options {
            lock: policy,
            ..self
        }
    }

    /// These options with `policy` for what a fork(2) child gets of the
    /// pages.
    #[must_use = setter_must_use!()]
    pub const fn fork(self, policy: ForkPolicy) -> Self {
        Options {
            fork: Some(policy),
            ..self
        }
    }

    /// These options with `policy` for whether the pages must be left out
    /// of core dumps; see [`DumpPolicy`].
    #[must_use = setter_must_use!()]
    pub const fn dumps(self, policy: DumpPolicy) -> Self {
        Options {
            dumps: policy,
            ..self
        }
    }

    /// These options with pages made of `backing`; see [`Backing`].
    #[must_use = setter_must_use!()]
    pub const fn backing(self, backing: Backing) -> Self {
        Options { backing, ..self }
    }

    /// These options with `isolation` for how the memory is kept apart from
    /// other memory.
    #[must_use = setter_must_use!()]
    pub const fn isolation(self, isolation: Isolation) -> Self {
        Options { isolation, ..self }
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
            dumps: self.dumps,
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
    /// use lockedmem::{Isolation, Options};
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

    /// Makes a box holding a copy of `src`, as [`LockedBox::from_array`]
    /// does.
    ///
    /// # Errors
    /// As [`Options::zeroed`].
    pub fn from_array<T: Plain + Copy, const N: usize>(
        &self,
        src: &[T; N],
    ) -> Result<LockedBox<[T; N]>, Error> {
        let mut b = self.zeroed::<[T; N]>()?;
        b.copy_from_slice(src);
        Ok(b)
    }

    /// Makes a box of `N` random bytes, as [`LockedBox::random`] does.
    ///
    /// ```
    /// use lockedmem::{Isolation, Options};
    ///
    /// let key = Options::new().isolation(Isolation::Packed).random::<32>()?;
    /// assert_eq!(key.isolation(), Isolation::Packed);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LockedBox::random`].
    pub fn random<const N: usize>(&self) -> Result<LockedBox<[u8; N]>, Error> {
        LockedBox::random_with(self.request::<[u8; N]>(1))
    }

    /// Decodes `hex` into a box of `N` bytes, as [`LockedBox::from_hex`]
    /// does.
    ///
    /// ```
    /// use lockedmem::{LockPolicy, Options};
    ///
    /// let key = Options::new().lock(LockPolicy::BestEffort).from_hex::<2>("00ff")?;
    /// assert_eq!(*key, [0x00, 0xff]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LockedBox::from_hex`].
    pub fn from_hex<const N: usize>(&self, hex: &str) -> Result<LockedBox<[u8; N]>, Error> {
        LockedBox::from_hex_with(self.request::<[u8; N]>(1), hex)
    }

    /// Decodes base64 into a box of `N` bytes, as
    /// [`LockedBox::from_base64`] does.
    ///
    /// # Errors
    /// As [`LockedBox::from_base64`].
    pub fn from_base64<const N: usize>(&self, b64: &str) -> Result<LockedBox<[u8; N]>, Error> {
        LockedBox::from_base64_with(self.request::<[u8; N]>(1), b64)
    }

    /// Makes a vector of `len` random bytes, as [`LockedVec::random`] does;
    /// its memory, and every growth of it, is made as these options say.
    ///
    /// # Errors
    /// As [`LockedVec::random`].
    pub fn vec_random(&self, len: usize) -> Result<LockedVec<u8>, Error> {
        LockedVec::random_with(self.request::<u8>(0), len)
    }

    /// Decodes `hex` into a vector, as [`LockedVec::from_hex`] does.
    ///
    /// # Errors
    /// As [`LockedVec::from_hex`].
    pub fn vec_from_hex(&self, hex: &str) -> Result<LockedVec<u8>, Error> {
        LockedVec::from_hex_with(self.request::<u8>(0), hex)
    }

    /// Decodes base64 into a vector, as [`LockedVec::from_base64`] does.
    ///
    /// # Errors
    /// As [`LockedVec::from_base64`].
    pub fn vec_from_base64(&self, b64: &str) -> Result<LockedVec<u8>, Error> {
        LockedVec::from_base64_with(self.request::<u8>(0), b64)
    }

    /// Reads `reader` to its end into a vector, as [`LockedVec::read_from`]
    /// does.
    ///
    /// ```
    /// use lockedmem::{LockPolicy, Options};
    ///
    /// let key = Options::new().lock(LockPolicy::BestEffort).read_from(&b"k3y"[..], 64)?;
    /// assert_eq!(&key[..], b"k3y");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LockedVec::read_from`].
    pub fn read_from(&self, reader: impl io::Read, max_len: usize) -> Result<LockedVec<u8>, Error> {
        LockedVec::read_from_with(self.request::<u8>(0), reader, max_len)
    }

    /// Reads one line into a string, as [`LockedString::read_line`] does.
    ///
    /// ```
    /// use lockedmem::{Isolation, Options};
    ///
    /// let mut input = &b"s3cret\nrest"[..];
    /// let line = Options::new().isolation(Isolation::Packed).read_line(&mut input, 64)?;
    /// assert_eq!((&*line, input), ("s3cret", &b"rest"[..]));
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LockedString::read_line`].
    pub fn read_line(&self, reader: impl io::Read, max_len: usize) -> Result<LockedString, Error> {
        LockedString::read_line_with(self.request::<u8>(0), reader, max_len)
    }

    /// Makes an empty [`LockedString`] with room for `capacity` bytes, whose
    /// memory, and every growth of it, is made as these options say.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn string(&self, capacity: usize) -> Result<LockedString, Error> {
        LockedString::with_request(self.request::<u8>(0), capacity)
    }

    /// Makes an empty [`LockedVec`] with room for `capacity` elements, whose
    /// memory, and every growth of it, is made as these options say.
    ///
    /// ```
    /// use lockedmem::{Isolation, Options};
    ///
    /// let mut token = Options::new().isolation(Isolation::Packed).vec::<u8>(32)?;
    /// token.try_extend_from_slice(&[7; 32])?;
    /// assert!(token.is_locked());
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`].
    pub fn vec<T: Plain>(&self, capacity: usize) -> Result<LockedVec<T>, Error> {
        let mut v = LockedVec::with_request(self.request::<T>(0));
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Makes a shielded secret whose value `init` writes in place, as
    /// [`ShieldedBox::new_with`](crate::ShieldedBox::new_with) does, with
    /// the options that apply to it: the backing of the key
    /// ([`Backing::Anonymous`], the default here: the key is derived from
    /// its prekey for each use; `PreferSecretMem`: prekey and key in secret
    /// memory where it exists, as `ShieldedBox::new_with` has it;
    /// `SecretMem`: the same, or [`Error::Unsupported`]), and the lock
    /// policy of the scratch memory the value is decrypted into. Isolation,
    /// fork and dump policies do not apply (the ciphertext's memory and the
    /// key have their own).
    ///
    /// ```
    /// # #[cfg(feature = "shield")] {
    /// use lockedmem::{Backing, LockPolicy, Options};
    ///
    /// let key = Options::new()
    ///     .backing(Backing::PreferSecretMem)
    ///     .lock(LockPolicy::BestEffort)
    ///     .shielded_with::<[u8; 32]>(|k| k.fill(3))?;
    /// assert_eq!(key.borrow()?[0], 3);
    /// # }
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ShieldedBox::new_with`](crate::ShieldedBox::new_with);
    /// [`Error::Unsupported`] for `Backing::SecretMem` where the key could
    /// not be had in secret memory.
    ///
    /// # Panics
    /// As [`ShieldedBox::new_with`](crate::ShieldedBox::new_with).
    #[cfg(feature = "shield")]
    #[cfg_attr(docsrs, doc(cfg(feature = "shield")))]
    pub fn shielded_with<T: Plain>(
        &self,
        init: impl FnOnce(&mut T),
    ) -> Result<crate::ShieldedBox<T>, Error> {
        let best_effort = self.lock == LockPolicy::BestEffort;
        let ring = crate::shield::ring_of(self.backing);
        let b = crate::ShieldedBox::try_init(ring, best_effort, |v| {
            init(v);
            Ok::<(), Error>(())
        })?;
        if self.backing == Backing::SecretMem && !crate::shield::key_in_secret_memory(ring) {
            return Err(Error::Unsupported {
                call: "memfd_secret",
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the shield's key could not be had in secret memory",
                ),
            });
        }
        Ok(b)
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
