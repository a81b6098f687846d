//! The signing key, its options, and where its bytes come from.

use std::fmt;
use std::io::Read;

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use lockedmem::{
    Backing, ForkPolicy, Isolation, LockPolicy, LockedBox, LockedString, LockedVec, Options, Plain,
    Ref, RefMut, Residency, SealedBox,
};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{KeyError, SEED_LEN};

/// The longest key text read from a reader or a terminal: 64 hex digits and
/// a line end.
const HEX_LINE_MAX: usize = 2 * SEED_LEN + 2;

/// What a fork(2) child of the process sees of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkView {
    /// Zeros (the default).
    Zeros,
    /// Nothing: the key's pages do not exist in the child.
    Nothing,
    /// A copy of the key, as with ordinary memory.
    Copy,
}

/// The memory keys are made in. Plain data: `const` works.
///
/// ```
/// use lockedmem_dependent::{KeyOptions, SigningKey};
///
/// // Many short-lived keys under a tight lock limit.
/// const SESSION: KeyOptions = KeyOptions::new().packed().best_effort();
/// let key = SigningKey::generate_with(&SESSION)?;
/// # drop(key);
/// # Ok::<(), lockedmem_dependent::KeyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyOptions {
    inner: Options,
}

impl KeyOptions {
    /// Locked (or refused), page-isolated, anonymous memory, zeros in fork
    /// children.
    pub const fn new() -> Self {
        KeyOptions {
            inner: Options::new(),
        }
    }

    /// Make the key even where it cannot be locked ([`KeyMemory::locked`]
    /// says so) instead of failing.
    pub const fn best_effort(self) -> Self {
        KeyOptions {
            inner: self.inner.lock(LockPolicy::BestEffort),
        }
    }

    /// Refuse a key that cannot be locked (the default).
    pub const fn require_lock(self) -> Self {
        KeyOptions {
            inner: self.inner.lock(LockPolicy::Require),
        }
    }

    /// Pack the key on a locked page shared with other small secrets: 1,024
    /// keys in 64 KiB, an overflow found when the key is dropped.
    pub const fn packed(self) -> Self {
        KeyOptions {
            inner: self.inner.isolation(Isolation::Packed),
        }
    }

    /// Give the key pages of its own, between guard pages (the default).
    pub const fn page_isolated(self) -> Self {
        KeyOptions {
            inner: self.inner.isolation(Isolation::Page),
        }
    }

    /// Keep the key in secret memory, out of the kernel's direct map and out
    /// of other processes' reach: `required` refuses a key where the host
    /// has none, else ordinary locked memory stands in. Fork children then
    /// see nothing of the key.
    pub const fn secret_memory(self, required: bool) -> Self {
        let backing = if required {
            Backing::SecretMem
        } else {
            Backing::PreferSecretMem
        };
        KeyOptions {
            inner: self.inner.backing(backing),
        }
    }

    /// Ordinary anonymous memory, locked (the default).
    pub const fn anonymous_memory(self) -> Self {
        KeyOptions {
            inner: self.inner.backing(Backing::Anonymous),
        }
    }

    /// What a fork child sees of keys made with these options.
    pub const fn fork_children_see(self, view: ForkView) -> Self {
        let policy = match view {
            ForkView::Zeros => ForkPolicy::Wipe,
            ForkView::Nothing => ForkPolicy::Exclude,
            ForkView::Copy => ForkPolicy::Keep,
        };
        KeyOptions {
            inner: self.inner.fork(policy),
        }
    }

    /// The lockedmem options underneath, for secrets of the program's own
    /// made like its keys.
    pub const fn lockedmem(&self) -> Options {
        self.inner
    }
}

/// Where a key's memory is: for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMemory {
    /// Whether the key's pages are locked in RAM.
    pub locked: bool,
    /// What memory holds it.
    pub backing: Backing,
    /// How many of its pages are in RAM (`None` if the kernel would not say).
    pub resident: Option<Residency>,
}

impl fmt::Display for KeyMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locked = if self.locked { "locked" } else { "NOT locked" };
        write!(f, "{locked}, {:?} memory", self.backing)?;
        match self.resident {
            Some(r) if r.all_resident() => write!(f, ", all {} pages in RAM", r.total),
            Some(r) => write!(f, ", {} of {} pages in RAM", r.resident, r.total),
            None => Ok(()),
        }
    }
}

/// An Ed25519 seed and its public key side by side, one value in locked
/// memory (see [`SigningKey::to_keypair`]).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct KeyPair {
    /// The secret seed.
    pub seed: [u8; SEED_LEN],
    /// The public key.
    pub public: [u8; 32],
}

// SAFETY: two byte arrays, `repr(C)`, no padding: every byte is inline and
// all zeros is a valid value, which is what `Plain` asks.
unsafe impl Plain for KeyPair {}

/// An Ed25519 signing key whose seed lives sealed in locked memory: its
/// pages are unreadable while no signature is being made. Dropping it wipes
/// the seed.
pub struct SigningKey {
    seed: SealedBox<[u8; SEED_LEN]>,
    public: VerifyingKey,
}

// The seed is wiped on drop by the `SealedBox`, which promises it.
impl ZeroizeOnDrop for SigningKey {}
const _: () = {
    const fn zeroizes_on_drop<T: ZeroizeOnDrop>() {}
    zeroizes_on_drop::<SealedBox<[u8; SEED_LEN]>>();
};

/// The public key of a seed. The expanded secret lives on the stack for the
/// call (ed25519-dalek wipes its own copy when it drops it).
fn public_of(seed: &[u8; SEED_LEN]) -> VerifyingKey {
    ed25519_dalek::SigningKey::from_bytes(seed).verifying_key()
}

/// 64 hex digits out of a line, with its line end cut.
fn hex_line(mut text: LockedVec<u8>) -> Result<LockedString, KeyError> {
    while matches!(text.last(), Some(b'\n' | b'\r')) {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return Err(KeyError::Malformed { why: "empty" });
    }
    Ok(LockedString::from_utf8(text)?)
}

impl SigningKey {
    /// A new random key, in the default memory.
    ///
    /// # Errors
    /// [`KeyError::OutOfLockedMemory`] if it cannot be locked.
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_seed(LockedBox::<[u8; SEED_LEN]>::random()?)
    }

    /// A new random key, in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate`](Self::generate); [`KeyError::Unsupported`] if the
    /// host lacks what the options ask for.
    pub fn generate_with(options: &KeyOptions) -> Result<Self, KeyError> {
        Self::from_seed(options.inner.random::<SEED_LEN>()?)
    }

    /// The key of a seed the caller holds (that copy stays the caller's to
    /// wipe).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn from_bytes(seed: &[u8; SEED_LEN]) -> Result<Self, KeyError> {
        Self::from_seed(LockedBox::from_array(seed)?)
    }

    /// As [`from_bytes`](Self::from_bytes), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate_with`](Self::generate_with).
    pub fn from_bytes_with(options: &KeyOptions, seed: &[u8; SEED_LEN]) -> Result<Self, KeyError> {
        Self::from_seed(options.inner.from_array(seed)?)
    }

    /// The key whose seed `fill` writes, in place in the locked page.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn from_fn(fill: impl FnOnce(&mut [u8; SEED_LEN])) -> Result<Self, KeyError> {
        Self::from_seed(LockedBox::new_with(fill)?)
    }

    /// As [`from_fn`](Self::from_fn), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate_with`](Self::generate_with).
    pub fn from_fn_with(
        options: &KeyOptions,
        fill: impl FnOnce(&mut [u8; SEED_LEN]),
    ) -> Result<Self, KeyError> {
        Self::from_seed(options.inner.new_with(fill)?)
    }

    /// The key whose seed is 64 hex digits (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`KeyError::Malformed`] if it is not; as [`generate`](Self::generate).
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        Self::from_seed(LockedBox::<[u8; SEED_LEN]>::from_hex(hex.trim())?)
    }

    /// As [`from_hex`](Self::from_hex), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`from_hex`](Self::from_hex) and [`generate_with`](Self::generate_with).
    pub fn from_hex_with(options: &KeyOptions, hex: &str) -> Result<Self, KeyError> {
        Self::from_seed(options.inner.from_hex(hex.trim())?)
    }

    /// The key whose seed is padded base64 (RFC 4648).
    ///
    /// # Errors
    /// [`KeyError::Malformed`] if it is not; as [`generate`](Self::generate).
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        Self::from_seed(LockedBox::<[u8; SEED_LEN]>::from_base64(b64.trim())?)
    }

    /// As [`from_base64`](Self::from_base64), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`from_base64`](Self::from_base64) and [`generate_with`](Self::generate_with).
    pub fn from_base64_with(options: &KeyOptions, b64: &str) -> Result<Self, KeyError> {
        Self::from_seed(options.inner.from_base64(b64.trim())?)
    }

    /// The key whose 32 raw bytes `reader` holds (a key file, a pipe),
    /// read straight into the locked page.
    ///
    /// # Errors
    /// [`KeyError::Io`] if fewer than 32 bytes can be read; as
    /// [`generate`](Self::generate).
    pub fn from_raw_reader(mut reader: impl Read) -> Result<Self, KeyError> {
        let seed = LockedBox::<[u8; SEED_LEN]>::try_new_with(|s| reader.read_exact(s))?;
        Self::from_seed(seed)
    }

    /// As [`from_raw_reader`](Self::from_raw_reader), in memory made as
    /// `options` say.
    ///
    /// # Errors
    /// As [`from_raw_reader`](Self::from_raw_reader) and
    /// [`generate_with`](Self::generate_with).
    pub fn from_raw_reader_with(
        options: &KeyOptions,
        mut reader: impl Read,
    ) -> Result<Self, KeyError> {
        Self::from_seed(
            options
                .inner
                .try_new_with(|s: &mut [u8; SEED_LEN]| reader.read_exact(s))?,
        )
    }

    /// The key written as one line of 64 hex digits in `reader` (a key
    /// file), read and decoded in locked memory only.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] for anything but 64 hex digits and a line end;
    /// [`KeyError::Io`]; as [`generate_with`](Self::generate_with).
    pub fn from_hex_reader(options: &KeyOptions, reader: impl Read) -> Result<Self, KeyError> {
        let text = options.inner.read_from(reader, HEX_LINE_MAX)?;
        Self::from_hex_with(options, &hex_line(text)?)
    }

    /// The key written as a line of hex on standard input, read without a
    /// buffer that would keep it.
    ///
    /// # Errors
    /// As [`from_hex_reader`](Self::from_hex_reader).
    pub fn from_stdin() -> Result<Self, KeyError> {
        let line = LockedString::read_line(lockedmem::raw_stdin(), HEX_LINE_MAX)?;
        Self::from_hex(&line)
    }

    /// As [`from_stdin`](Self::from_stdin), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`from_stdin`](Self::from_stdin) and [`generate_with`](Self::generate_with).
    pub fn from_stdin_with(options: &KeyOptions) -> Result<Self, KeyError> {
        let stdin: lockedmem::RawStdin = lockedmem::raw_stdin();
        let line = options.inner.read_line(stdin, HEX_LINE_MAX)?;
        Self::from_hex_with(options, &line)
    }

    /// The key typed in hex at the terminal, echo off.
    ///
    /// # Errors
    /// [`KeyError::NoTerminal`]; [`KeyError::Malformed`]; as
    /// [`generate`](Self::generate).
    pub fn from_prompt(prompt: &str) -> Result<Self, KeyError> {
        const _: () = assert!(HEX_LINE_MAX <= lockedmem::MAX_PASSWORD_LEN);
        let mut typed = lockedmem::prompt_password(prompt)?;
        let key = Self::from_hex(&typed);
        typed.clear(); // wiped now, not at the end of the scope
        key
    }

    /// The key in hex in the environment variable `name`, which is removed
    /// from the process's environment.
    ///
    /// # Errors
    /// [`KeyError::NotInEnvironment`]; [`KeyError::Malformed`]; as
    /// [`generate`](Self::generate).
    ///
    /// # Safety
    /// As [`std::env::remove_var`]: no other thread may read or write the
    /// environment meanwhile (call it before starting threads).
    pub unsafe fn from_env(name: &str) -> Result<Self, KeyError> {
        // SAFETY: the caller keeps other threads away from the environment.
        let value = unsafe { LockedString::from_env(name) }?;
        Self::from_hex(&value)
    }

    /// The key of 64 keypair bytes (seed, then public key), checked.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] for another length,
    /// [`KeyError::PublicKeyMismatch`]; as [`generate`](Self::generate).
    pub fn from_keypair_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 2 * SEED_LEN {
            return Err(KeyError::Malformed {
                why: "keypair bytes are 64 bytes",
            });
        }
        let pair: LockedBox<[u8]> = LockedBox::from_slice(bytes)?;
        let key = Self::from_fn(|s| s.copy_from_slice(&pair[..SEED_LEN]))?;
        if key.public.as_bytes()[..] != pair[SEED_LEN..] {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(key)
    }

    /// As [`from_keypair_bytes`](Self::from_keypair_bytes), the copy it
    /// checks made as `options` say.
    ///
    /// # Errors
    /// As [`from_keypair_bytes`](Self::from_keypair_bytes) and
    /// [`generate_with`](Self::generate_with).
    pub fn from_keypair_bytes_with(options: &KeyOptions, bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 2 * SEED_LEN {
            return Err(KeyError::Malformed {
                why: "keypair bytes are 64 bytes",
            });
        }
        let pair = options.inner.from_slice(bytes)?;
        let key = Self::from_fn_with(options, |s| s.copy_from_slice(&pair[..SEED_LEN]))?;
        if key.public.as_bytes()[..] != pair[SEED_LEN..] {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(key)
    }

    /// The key of a [`KeyPair`] value, checked. The value moves through the
    /// stack on its way: prefer [`from_keypair_bytes`](Self::from_keypair_bytes)
    /// or a `LockedBox<KeyPair>` from [`to_keypair`](Self::to_keypair).
    ///
    /// # Errors
    /// [`KeyError::PublicKeyMismatch`]; as [`generate`](Self::generate).
    pub fn from_keypair(pair: KeyPair) -> Result<Self, KeyError> {
        let pair = LockedBox::new(pair)?;
        let key = Self::from_bytes(&pair.seed)?;
        if key.public.as_bytes() != &pair.public {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(key)
    }

    fn from_seed(seed: LockedBox<[u8; SEED_LEN]>) -> Result<Self, KeyError> {
        let public = public_of(&seed);
        Ok(SigningKey {
            seed: seed.seal()?,
            public,
        })
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public
    }

    /// Signs `message`. The seed is readable for the call only.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let seed: Ref<'_, [u8; SEED_LEN]> = self.seed.borrow();
        ed25519_dalek::SigningKey::from_bytes(&seed).sign(message)
    }

    /// Runs `f` on the seed (readable meanwhile), for code that needs the
    /// raw seed, such as an export.
    pub fn with_seed<R>(&self, f: impl FnOnce(&[u8; SEED_LEN]) -> R) -> R {
        f(&self.seed.borrow())
    }

    /// Whether `seed` is this key's seed, in constant time.
    pub fn has_seed(&self, seed: &[u8]) -> bool {
        let mine = self.seed.borrow();
        bool::from(mine[..].ct_eq(seed))
    }

    /// Replaces the seed with a new random one, in place (the old one is
    /// overwritten where it lay), and returns the new public key.
    ///
    /// # Errors
    /// As [`generate`](Self::generate), for the new seed's temporary box.
    pub fn rotate(&mut self) -> Result<VerifyingKey, KeyError> {
        let fresh = LockedBox::<[u8; SEED_LEN]>::random()?;
        {
            let mut seed: RefMut<'_, [u8; SEED_LEN]> = self.seed.borrow_mut();
            seed.copy_from_slice(fresh.as_ref());
        }
        self.public = public_of(&self.seed.borrow());
        Ok(self.public)
    }

    /// A copy of the key, in new locked memory.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn try_clone(&self) -> Result<Self, KeyError> {
        let seed = self.with_seed(LockedBox::from_array)?;
        Self::from_seed(seed)
    }

    /// The seed and the public key as 64 bytes in locked memory (the layout
    /// of [`from_keypair_bytes`](Self::from_keypair_bytes)).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn to_keypair_bytes(&self) -> Result<LockedVec<u8>, KeyError> {
        let mut bytes = LockedVec::with_capacity(2 * SEED_LEN)?;
        self.with_seed(|s| bytes.try_extend_from_slice(s))?;
        bytes.try_extend_from_slice(self.public.as_bytes())?;
        Ok(bytes)
    }

    /// The seed and the public key as one [`KeyPair`] in locked memory.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn to_keypair(&self) -> Result<LockedBox<KeyPair>, KeyError> {
        let mut pair = LockedBox::<KeyPair>::new_zeroed()?;
        self.with_seed(|s| pair.seed.copy_from_slice(s));
        pair.public = self.public.to_bytes();
        Ok(pair)
    }

    /// As [`to_keypair`](Self::to_keypair), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate_with`](Self::generate_with).
    pub fn to_keypair_with(&self, options: &KeyOptions) -> Result<LockedBox<KeyPair>, KeyError> {
        let mut pair = options.inner.zeroed::<KeyPair>()?;
        self.with_seed(|s| pair.seed.copy_from_slice(s));
        pair.public = self.public.to_bytes();
        Ok(pair)
    }

    /// The seed as 64 lowercase hex digits, in locked memory, with a line
    /// end if `line` (the format [`from_hex_reader`](Self::from_hex_reader)
    /// reads).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn to_hex(&self, line: bool) -> Result<LockedString, KeyError> {
        self.write_hex(LockedString::new(), line)
    }

    /// As [`to_hex`](Self::to_hex), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate_with`](Self::generate_with).
    pub fn to_hex_with(&self, options: &KeyOptions, line: bool) -> Result<LockedString, KeyError> {
        self.write_hex(options.inner.string(HEX_LINE_MAX)?, line)
    }

    fn write_hex(&self, mut text: LockedString, line: bool) -> Result<LockedString, KeyError> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.with_seed(|s| {
            s.iter().try_for_each(|&b| {
                text.try_push(char::from(DIGITS[usize::from(b >> 4)]))?;
                text.try_push(char::from(DIGITS[usize::from(b & 15)]))
            })
        })?;
        if line {
            text.try_push_str("\n")?;
        }
        debug_assert_eq!(text.len(), 2 * SEED_LEN + usize::from(line));
        Ok(text)
    }

    /// Unseals the key for a tight signing loop.
    pub fn into_hot(self) -> HotSigningKey {
        HotSigningKey {
            seed: self.seed.unseal(),
            public: self.public,
        }
    }

    /// Where the seed's memory is.
    pub fn memory(&self) -> KeyMemory {
        KeyMemory {
            locked: self.seed.is_locked(),
            backing: self.seed.backing(),
            resident: self.seed.residency().ok(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .field("seed", &self.seed)
            .finish()
    }
}

/// A signing key whose seed stays readable (locked, guarded, not sealed):
/// no mprotect per signature, for a loop that signs many messages. Back to
/// [`SigningKey`] with [`seal`](Self::seal).
pub struct HotSigningKey {
    seed: LockedBox<[u8; SEED_LEN]>,
    public: VerifyingKey,
}

impl ZeroizeOnDrop for HotSigningKey {}

impl HotSigningKey {
    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        ed25519_dalek::SigningKey::from_bytes(&self.seed).sign(message)
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public
    }

    /// Whether `seed` is this key's seed, in constant time.
    pub fn has_seed(&self, seed: &[u8]) -> bool {
        self.seed == *seed
    }

    /// A copy in new memory made like this key's.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn try_clone(&self) -> Result<Self, KeyError> {
        Ok(HotSigningKey {
            seed: self.seed.try_clone()?,
            public: self.public,
        })
    }

    /// Seals the key again.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn seal(self) -> Result<SigningKey, KeyError> {
        Ok(SigningKey {
            seed: self.seed.seal()?,
            public: self.public,
        })
    }

    /// Wipes the seed now, before the key is dropped, and leaves a key that
    /// signs nothing: for a key revoked while the program still holds it.
    pub fn revoke(mut self) -> RevokedKey {
        self.seed.zeroize();
        RevokedKey {
            public: self.public,
            memory: self.memory(),
            isolation: self.seed.isolation(),
        }
    }

    /// Where the seed's memory is.
    pub fn memory(&self) -> KeyMemory {
        KeyMemory {
            locked: self.seed.is_locked(),
            backing: self.seed.backing(),
            resident: self.seed.residency().ok(),
        }
    }
}

/// What is left of a revoked key: its public half, and where its wiped
/// memory was.
#[derive(Debug, Clone, Copy)]
pub struct RevokedKey {
    /// The public key, to tell others it is revoked.
    pub public: VerifyingKey,
    /// Where the seed was.
    pub memory: KeyMemory,
    /// Whether it had pages of its own or shared a packed page.
    pub isolation: Isolation,
}

/// Two hot keys are equal when their seeds are, compared in constant time.
impl PartialEq for HotSigningKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.seed.ct_eq(&other.seed))
    }
}

impl fmt::Debug for HotSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotSigningKey")
            .field("public", &self.public)
            .field("seed", &self.seed)
            .finish()
    }
}
