//! An Ed25519 signing key kept in [`lockedmem`] memory: the small library a
//! new user of lockedmem would write, and lockedmem's check that such a
//! library builds wherever lockedmem does, with no `cfg` of its own.
//!
//! Between them the modules use every public type and function of
//! lockedmem (features `serde` and `allocator-api2` on):
//!
//! - [`SigningKey`]: the seed sealed at rest ([`lockedmem::SealedBox`]),
//!   made from bytes, hex, base64, a reader, standard input, the terminal,
//!   the environment or at random, borrowed for each signature;
//!   [`HotSigningKey`], the same seed unsealed for tight signing loops;
//!   [`KeyOptions`], the memory it lives in; [`KeyPair`], both halves in
//!   one locked value.
//! - [`Keyring`]: many seeds in one [`lockedmem::LockedAlloc`] vector;
//!   [`Token`], a bearer token of any length ([`lockedmem::LockedVec`]).
//! - [`config`]: keys from a configuration file, through serde.
//! - [`process`]: diagnostics, hardening the process, the last wipe and
//!   the caches.
//! - [`KeyError`]: lockedmem's errors mapped into this library's own.
//!
//! ```
//! use lockedmem_dependent::SigningKey;
//!
//! let key = SigningKey::generate()?;
//! let signature = key.sign(b"a message");
//! assert!(key.verifying_key().verify_strict(b"a message", &signature).is_ok());
//! # Ok::<(), lockedmem_dependent::KeyError>(())
//! ```

pub mod config;
mod error;
mod key;
mod keyring;
pub mod process;
mod token;

pub use ed25519_dalek::{Signature, VerifyingKey};
pub use error::KeyError;
pub use key::{ForkView, HotSigningKey, KeyMemory, KeyOptions, KeyPair, RevokedKey, SigningKey};
pub use keyring::Keyring;
pub use token::Token;

/// Bytes in an Ed25519 seed (the secret key).
pub const SEED_LEN: usize = 32;
