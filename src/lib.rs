// The README links its guides to docs.rs, for crates.io; in rustdoc, these
// definitions come first and so win, pointing the same links at the
// `guide` modules of the docs being built.
#![doc = include_str!("../docs/readme-links.md")]
#![doc = include_str!("../README.md")]
//!
//! # Crate layout
//!
//! - [`LockedBox`], made by its constructors or by [`Options`];
//! - [`LockedVec`] and [`LockedString`], secrets of any length, and
//!   [`raw_stdin`], standard input without a buffer to leave them in;
//! - [`guide`], the guides: one page per topic, no items;
//! - with the `shield` feature, `ShieldedBox`, a secret kept encrypted in
//!   unlocked memory under a key in locked or secret memory, and `rekey`;
//! - [`Plain`], the marker for the types a box may hold;
//! - [`Error`], whose messages say what to do;
//! - with the `serde` feature, `Deserialize` for the byte and string
//!   secrets, and the `serde` module: hex and base64 text, chosen
//!   [`Options`], and what a format keeps of the input;
//! - [`locked_bytes`], [`memlock_limit`] and [`Host`] for what the process
//!   and the host allow;
//! - [`Hardening`], the opt-in process-wide steps (no core dumps, not
//!   dumpable, every page locked), each reported in a [`Report`];
//! - [`wipe_on_signals`] (with [`Signal`]), [`wipe_on_panic`] and
//!   [`wipe_all_and_abort`], the last wipe of every secret before the
//!   process dies.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alloc;
mod canary;
mod decode;
mod dying;
mod env;
mod error;
mod fork;
pub mod guide;
mod hardening;
mod host;
mod last_wipe;
mod layout;
mod limits;
#[cfg(feature = "allocator-api2")]
mod locked_alloc;
mod locked_box;
mod options;
mod os;
mod packed;
mod plain;
mod policy;
mod prompt;
mod region;
mod residency;
mod seal_state;
mod sealed;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod serde;
#[cfg(feature = "shield")]
mod shield;
// The unit tests that share the integration tests' helpers
// (`tests/common`, which names the crate `lockedmem`).
#[cfg(all(test, feature = "shield", target_os = "linux"))]
extern crate self as lockedmem;
mod signal;
mod stdin;
mod store;
mod string;
mod sync;
mod traits;
mod vec;

/// Entry points for the cargo-fuzz targets in `fuzz/`; not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Lays out a value of `size` bytes aligned to `align` for pages of
    /// `page` bytes, and panics if the layout breaks an invariant or a
    /// refusal was not justified.
    pub fn layout(size: usize, align: usize, page: usize) {
        crate::layout::fuzz(size, align, page);
    }

    /// The shield's XChaCha20-Poly1305: encrypts `buf` in place and
    /// returns the tag.
    #[cfg(feature = "shield")]
    pub fn shield_seal(key: &[u8; 32], nonce: &[u8; 24], ad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        crate::shield::aead::seal(key, nonce, ad, buf)
    }

    /// The shield's XChaCha20-Poly1305: decrypts `buf` in place if `tag`
    /// checks, else leaves it and returns `false`.
    #[cfg(feature = "shield")]
    pub fn shield_open(
        key: &[u8; 32],
        nonce: &[u8; 24],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> bool {
        crate::shield::aead::open(key, nonce, ad, buf, tag).is_ok()
    }
}

pub use alloc::{
    DEFAULT_CACHE_LIMIT, Stats, cache_limit, large_cache_limit, locked_bytes, set_cache_limit,
    stats, trim,
};
pub use error::{Error, InitError, MemlockCall};
pub use hardening::{Hardening, LockAll, ProcessState, Report, Step};
pub use host::Host;
pub use last_wipe::{wipe_all_and_abort, wipe_on_panic, wipe_on_signals};
pub use limits::{MemlockLimit, memlock_limit};
#[cfg(feature = "allocator-api2")]
pub use locked_alloc::LockedAlloc;
pub use locked_box::LockedBox;
pub use options::Options;
pub use plain::Plain;
pub use policy::{Backing, DumpPolicy, ForkPolicy, Isolation, LockPolicy};
pub use prompt::{MAX_PASSWORD_LEN, prompt_password};
pub use residency::Residency;
pub use sealed::{Ref, RefMut, SealedBox};
#[cfg(feature = "shield")]
#[cfg_attr(docsrs, doc(cfg(feature = "shield")))]
pub use shield::{ShieldRef, ShieldRefMut, ShieldedBox, rekey};
pub use signal::Signal;
pub use stdin::{RawStdin, raw_stdin};
pub use string::LockedString;
pub use vec::LockedVec;
