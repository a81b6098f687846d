//! `LockedBox<T>`: a typed view over a [`Store`].
//!
//! Unsafe here is limited to turning the value pointer into references and
//! dropping the value in place.
#![allow(unsafe_code)]

use std::any::type_name;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

use crate::error::{Error, InitError};
use crate::fork::EXCLUDED;
use crate::os;
use crate::plain::Plain;
use crate::policy::{Isolation, LockPolicy};
use crate::store::{Request, Residency, Store};

/// One secret in locked, guarded, dump-proof memory.
///
/// ```
/// use lockedmem::LockedBox;
///
/// let mut key = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x42))?;
/// assert!(key.is_locked());
/// key[0] = 1;
/// assert_eq!(key[..2], [1, 0x42]);
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// A page-isolated box ([`Isolation::Page`], the default) has data pages of
/// its own, a slot of a guarded slab: the value's last byte is the last byte
/// of its last data page, followed by a `PROT_NONE` guard page; a random
/// canary sits right in front of the value, zero padding before that, and a
/// guard page before the data pages. A packed box ([`Isolation::Packed`]) has
/// a slot on a page shared with other small secrets, between two canaries.
/// Either way the pages are mlocked, `MADV_DONTDUMP` and (by default)
/// `MADV_WIPEONFORK`.
///
/// Dropping the box drops the value in place, checks the canaries (aborting
/// the process if one changed, also when dropping the value panics) and
/// zeroizes every byte the box can have written: the canary and the value
/// of a page-isolated box (the padding in front is never written), the
/// whole slot of a packed one. A page-isolated slot then waits, still locked
/// and guarded, in this thread's cache for the next box of its size (see
/// [`set_cache_limit`](crate::set_cache_limit)); leaving the cache it is
/// replaced by fresh `PROT_NONE` memory, which unlocks and discards it. A
/// packed slot is freed on its page, which [`trim`](crate::trim) gives back
/// once it is empty.
///
/// `Debug` prints the type, size, isolation and lock state, never a byte of
/// the value. There is no `Clone`, `Display` or `Serialize`.
pub struct LockedBox<T: ?Sized + Plain> {
    /// The value, inside `store`.
    ptr: NonNull<T>,
    store: Store,
    /// The box owns a `T`.
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its `T` and its slot exclusively; sending the box
// sends the `T`. Giving a slot back works from any thread: a page slot goes
// to the dropping thread's cache or is closed, a packed slot's bit is cleared
// atomically.
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
    /// As [`Options::zeroed`](crate::Options::zeroed).
    pub fn new(value: T) -> Result<Self, Error> {
        let mut b = Self::new_zeroed()?;
        *b = value;
        Ok(b)
    }

    /// A box holding an all-zero `T`.
    ///
    /// # Errors
    /// As [`Options::zeroed`](crate::Options::zeroed).
    pub fn new_zeroed() -> Result<Self, Error> {
        Self::zeroed_with(Request::of::<T>(1))
    }

    /// A box holding an all-zero `T`, made as `req` says.
    #[inline]
    pub(crate) fn zeroed_with(req: Request) -> Result<Self, Error> {
        Store::new(req).map(Self::from_store)
    }

    /// A box whose value `init` writes in place, into memory that is already
    /// locked and zeroed, so the secret never passes through the stack.
    ///
    /// If `init` panics, the box is dropped (and wiped) while unwinding.
    ///
    /// ```
    /// # fn read_key_from_somewhere(out: &mut [u8]) { out.fill(9) }
    /// let key = lockedmem::LockedBox::<[u8; 32]>::new_with(|k| read_key_from_somewhere(k))?;
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed`](crate::Options::zeroed); `init` is not called then.
    pub fn new_with(init: impl FnOnce(&mut T)) -> Result<Self, Error> {
        let mut b = Self::new_zeroed()?;
        init(&mut b);
        Ok(b)
    }

    /// Like [`new_with`](LockedBox::new_with), for an initialiser that can
    /// fail, such as reading the key from a file. On error the half-written
    /// box is dropped (and wiped) and the error comes back.
    ///
    /// ```
    /// use std::io::Read;
    /// # let dir = std::env::temp_dir().join(format!("lockedmem-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let path = dir.join("key.bin");
    /// # std::fs::write(&path, [7u8; 32])?;
    ///
    /// let mut file = std::fs::File::open(&path)?;
    /// // read(2) writes straight into the locked page: no copy on the stack.
    /// let key = lockedmem::LockedBox::<[u8; 32]>::try_new_with(|k| file.read_exact(k))?;
    /// assert_eq!(key[31], 7);
    /// # drop(file); // Windows removes no directory holding an open file
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// The initialiser returns its own error type; no conversion from
    /// [`Error`] is needed.
    ///
    /// # Errors
    /// [`InitError::Init`] with what `init` returns, or
    /// [`InitError::Alloc`] with what [`Options::zeroed`](crate::Options::zeroed)
    /// returns. `io::Error` and [`Error`] convert from an `InitError` of
    /// themselves, so `?` works in functions returning either.
    pub fn try_new_with<E>(
        init: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<Self, InitError<E>> {
        Self::try_init(Request::of::<T>(1), init)
    }

    /// A box made as `req` says, initialised by `init` (on error, dropped
    /// and so wiped).
    pub(crate) fn try_init<E>(
        req: Request,
        init: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<Self, InitError<E>> {
        let mut b = Self::zeroed_with(req).map_err(InitError::Alloc)?;
        init(&mut b).map_err(InitError::Init)?;
        Ok(b)
    }
}

impl<const N: usize> LockedBox<[u8; N]> {
    /// A box of `N` random bytes, drawn by getrandom(2) straight into the
    /// locked pages.
    ///
    /// ```
    /// let key = lockedmem::LockedBox::<[u8; 32]>::random()?;
    /// assert_ne!(*key, [0; 32]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed`](crate::Options::zeroed); [`Error::Os`] if
    /// getrandom(2) fails (the box is wiped then).
    pub fn random() -> Result<Self, Error> {
        Self::random_with(Request::of::<[u8; N]>(1))
    }

    /// [`random`](Self::random), the box made as `req` says.
    pub(crate) fn random_with(req: Request) -> Result<Self, Error> {
        Self::try_init(req, |k| {
            os::random(k).map_err(|e| Error::os("getrandom", N, e))
        })
        .map_err(Error::from)
    }
}

impl<T: Plain + Copy, const N: usize> LockedBox<[T; N]> {
    /// A box holding a copy of the array `src`, copied straight into the
    /// locked pages. The array's type says `N`, so a `let` with the box's
    /// type is not needed, and nothing has to be inferred from a closure.
    ///
    /// ```
    /// use lockedmem::LockedBox;
    ///
    /// let x = [7u8; 32];
    /// let k = LockedBox::from_array(&x)?;
    /// assert_eq!(*k, x);
    ///
    /// // `new_with` needs the closure's argument type: behind `?` the
    /// // box's type cannot reach the closure, whose body calls a method.
    /// let k: LockedBox<[u8; 32]> = LockedBox::new_with(|k: &mut [u8; 32]| k.copy_from_slice(&x))?;
    /// # assert_eq!(*k, x);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// ```compile_fail,E0282
    /// # use lockedmem::LockedBox;
    /// # let x = [7u8; 32];
    /// // Without it: E0282, type annotations needed.
    /// let k: LockedBox<[u8; 32]> = LockedBox::new_with(|k| k.copy_from_slice(&x))?;
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// The caller's `src` is not wiped; prefer [`new_with`](LockedBox::new_with)
    /// or [`try_new_with`](LockedBox::try_new_with) where the secret can be
    /// written straight into the box.
    ///
    /// # Errors
    /// As [`Options::zeroed`](crate::Options::zeroed).
    pub fn from_array(src: &[T; N]) -> Result<Self, Error> {
        let mut b = Self::new_zeroed()?;
        b.copy_from_slice(src);
        Ok(b)
    }
}

impl<T: Plain> LockedBox<[T]> {
    /// A box holding `len` all-zero elements. `len == 0` is allowed.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`](crate::Options::zeroed_slice).
    pub fn new_zeroed_slice(len: usize) -> Result<Self, Error> {
        Self::zeroed_slice_with(Request::of::<T>(len))
    }

    /// A box holding `req.len` all-zero `T`s, made as `req` says.
    pub(crate) fn zeroed_slice_with(req: Request) -> Result<Self, Error> {
        let len = req.len;
        Store::new(req).map(|store| Self::from_store_slice(store, len))
    }

    /// A page-isolated box of `req.len` zero elements whose pages are never
    /// locked (see `Store::never_locked`).
    #[cfg(feature = "shield")]
    pub(crate) fn zeroed_slice_never_locked(req: Request) -> Result<Self, Error> {
        let len = req.len;
        Store::never_locked(req).map(|store| Self::from_store_slice(store, len))
    }

    /// A box holding a copy of `src`.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`](crate::Options::zeroed_slice).
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
    /// Wraps a fresh store whose value bytes are zero and sized for one `T`.
    fn from_store(store: Store) -> Self {
        debug_assert_eq!(store.size(), mem::size_of::<T>());
        debug_assert_eq!(
            store
                .value_ptr()
                .as_ptr()
                .align_offset(mem::align_of::<T>()),
            0
        );
        LockedBox {
            ptr: store.value_ptr().cast::<T>(),
            store,
            _owns: PhantomData,
        }
    }
}

impl<T: Plain> LockedBox<[T]> {
    /// Wraps a fresh store whose value bytes are zero and sized for `len` `T`s.
    fn from_store_slice(store: Store, len: usize) -> Self {
        debug_assert_eq!(Some(store.size()), len.checked_mul(mem::size_of::<T>()));
        debug_assert_eq!(
            store
                .value_ptr()
                .as_ptr()
                .align_offset(mem::align_of::<T>()),
            0
        );
        LockedBox {
            ptr: NonNull::slice_from_raw_parts(store.value_ptr().cast::<T>(), len),
            store,
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
        self.store.is_locked()
    }

    /// What memory the box really got: [`Backing::SecretMem`] or
    /// [`Backing::Anonymous`] (never `PreferSecretMem`, which resolves to one
    /// of them when the box is made).
    ///
    /// [`Backing::SecretMem`]: crate::Backing::SecretMem
    /// [`Backing::Anonymous`]: crate::Backing::Anonymous
    pub fn backing(&self) -> crate::Backing {
        self.store.backing()
    }

    /// How the box is isolated: [`Isolation::Page`] for a box with data pages
    /// of its own (and every sealed box), [`Isolation::Packed`] for one
    /// sharing a page with other small secrets.
    pub fn isolation(&self) -> Isolation {
        self.store.isolation()
    }

    /// How many of the box's data pages are resident in RAM, as mincore(2)
    /// reports them. A locked box has all of them resident.
    ///
    /// # Errors
    /// The error of mincore(2); an error also in a fork child for a box its
    /// parent made with [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude),
    /// whose pages do not exist there.
    pub fn residency(&self) -> io::Result<Residency> {
        self.store.residency()
    }

    /// Whether the box's memory exists in this process: not in a fork
    /// child whose parent made it with `ForkPolicy::Exclude`.
    #[inline]
    pub(crate) fn present(&self) -> bool {
        self.store.present()
    }

    /// Panics in a fork child whose parent made this box with
    /// `ForkPolicy::Exclude`: the pages do not exist here, and the address
    /// range may since hold another mapping.
    #[inline(always)]
    pub(crate) fn assert_present(&self) {
        if !self.store.present() {
            not_present();
        }
    }

    /// Takes the box apart into its value pointer and its store, without
    /// dropping the value: the caller takes over both.
    pub(crate) fn into_parts(self) -> (NonNull<T>, Store) {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again after this point, so
        // its store is moved out exactly once.
        let store = unsafe { ptr::read(&raw const this.store) };
        (this.ptr, store)
    }

    /// Frees the box's memory without dropping its value (for an owner that
    /// moved the value out, or dropped it, itself): the canaries are checked
    /// and the memory wiped and given back, as dropping the box would.
    pub(crate) fn free_without_drop(self) {
        self.into_parts().1.free();
    }

    /// Reassembles a box from `into_parts`' parts (the pointer retargeted if
    /// the value moved to another store).
    pub(crate) fn from_parts(ptr: NonNull<T>, store: Store) -> Self {
        LockedBox {
            ptr,
            store,
            _owns: PhantomData,
        }
    }
}

impl<T: ?Sized + Plain> LockedBox<T> {
    /// A request for `len` elements of `U` with the options this box's
    /// memory shows it was made with: its isolation, its backing (as
    /// resolved), its fork policy, and the lock it holds now (required if
    /// locked, best effort if not).
    fn same_options<U>(&self, len: usize) -> Request {
        let kind = match &self.store {
            Store::Page(r) => r.kind(),
            Store::Packed(p) => p.kind(),
        };
        Request {
            lock: if self.is_locked() {
                LockPolicy::Require
            } else {
                LockPolicy::BestEffort
            },
            fork: kind.fork,
            fork_chosen: true,
            isolation: self.isolation(),
            backing: self.backing(),
            ..Request::of::<U>(len)
        }
    }
}

impl<T: Plain + Copy> LockedBox<T> {
    /// A copy of the box in new locked memory made like this box's: the
    /// same isolation, backing and fork policy, and locked if this box is
    /// locked ([`LockPolicy::Require`]; [`LockPolicy::BestEffort`] for a
    /// box that is not locked now). The value is copied from box to box,
    /// never through ordinary memory. There is no `Clone`: a copy of a
    /// secret is one more place to find it, and making one can fail.
    ///
    /// ```
    /// let key = lockedmem::LockedBox::<[u8; 32]>::random()?;
    /// let copy = key.try_clone()?;
    /// assert!(copy == key && copy.is_locked());
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed`](crate::Options::zeroed), for instance
    /// [`Error::MemlockLimit`] when the lock limit has no room for the
    /// copy. Nothing is made then: no mapping, no locked page.
    ///
    /// # Panics
    /// In a fork(2) child, for a box its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude), as
    /// dereferencing it does.
    pub fn try_clone(&self) -> Result<Self, Error> {
        self.assert_present();
        let mut copy = Self::zeroed_with(self.same_options::<T>(1))?;
        std::slice::from_mut(&mut *copy).copy_from_slice(std::slice::from_ref(&**self));
        Ok(copy)
    }
}

impl<T: Plain + Copy> LockedBox<[T]> {
    /// A copy of the box in new locked memory made like this box's, as
    /// [`LockedBox::try_clone`] for a sized value says.
    ///
    /// ```
    /// let token = lockedmem::LockedBox::<[u8]>::from_slice(b"t0ken")?;
    /// assert!(token.try_clone()? == &b"t0ken"[..]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`](crate::Options::zeroed_slice); nothing
    /// is made then.
    ///
    /// # Panics
    /// As [`LockedBox::try_clone`].
    pub fn try_clone(&self) -> Result<Self, Error> {
        self.assert_present();
        let mut copy = Self::zeroed_slice_with(self.same_options::<T>(self.len()))?;
        copy.copy_from_slice(self);
        Ok(copy)
    }
}

impl<T: ?Sized + Plain> Deref for LockedBox<T> {
    type Target = T;

    /// # Panics
    /// In a fork(2) child, for a box its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude): the pages do not
    /// exist there, and the address range may since hold another mapping.
    #[inline]
    fn deref(&self) -> &T {
        self.assert_present();
        // SAFETY: `ptr` points at an initialised `T` (zeros, valid by `Plain`,
        // or what was written since) inside memory that is mapped read-write
        // and the box's alone for its whole life: a page region's data pages
        // (region invariants R1, R3; only a `SealedBox` changes their
        // protection, and a `LockedBox` is never sealed), or a packed slot,
        // whose page stays open while the slot's bit is set. `assert_present`
        // rules out the one place where neither holds (an Exclude box in a
        // fork child). The borrow is tied to `&self`, so Rust's aliasing
        // rules for the box carry over to the value.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized + Plain> DerefMut for LockedBox<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.assert_present();
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized + Plain> Drop for LockedBox<T> {
    fn drop(&mut self) {
        if self.store.present() {
            // A sealed box may have left the pages PROT_NONE.
            self.store.open();
            // The canaries are checked when `check` goes out of scope, also
            // if dropping `T` panics and unwinds through here.
            let check = VerifyOnExit(&self.store);
            // SAFETY: `ptr` points at a valid `T` that nothing else will use:
            // the box is being dropped and no borrow of it can be alive.
            unsafe { ptr::drop_in_place(self.ptr.as_ptr()) };
            drop(check);
        }
        // `store` is dropped next: wipe, then cache or close.
    }
}

/// The panic of [`LockedBox::assert_present`], out of line so that the check
/// inlines into every dereference.
#[cold]
#[inline(never)]
#[track_caller]
fn not_present() -> ! {
    panic!("{EXCLUDED}");
}

/// Checks a store's canaries when dropped (aborting if one changed).
struct VerifyOnExit<'a>(&'a Store);

impl Drop for VerifyOnExit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.verify();
    }
}

impl<T: ?Sized + Plain> fmt::Debug for LockedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedBox")
            .field("type", &type_name::<T>())
            .field("bytes", &self.store.size())
            .field("isolation", &self.isolation())
            .field("locked", &self.is_locked())
            .field("backing", &self.backing())
            .finish_non_exhaustive()
    }
}
