// Links to items that exist only with a feature come first (a link
// definition cannot follow a paragraph line): built without the feature
// they point at docs.rs, which documents every feature, rather than fail
// `cargo doc`.
#![cfg_attr(
    feature = "allocator-api2",
    doc = "[`LockedAlloc`]: crate::LockedAlloc"
)]
#![cfg_attr(
    not(feature = "allocator-api2"),
    doc = "[`LockedAlloc`]: https://docs.rs/lockedmem/latest/lockedmem/struct.LockedAlloc.html"
)]
//! Guides: how to use the crate and what it promises, one page per topic,
//! next to the API they describe. No items; every code block here runs as
//! a doctest.
//!
//! | guide | what it covers |
//! | --- | --- |
//! | [`secrets`] | secrets of any length ([`LockedVec`](crate::LockedVec), [`LockedString`](crate::LockedString)) and every way in: readers, standard input, the terminal, the environment, hex and base64, random keys, serde, [`LockedAlloc`]; comparing and copying; the copies the crate cannot prevent |
//! | [`boxes`] | what a box is in memory, how it is made and dropped, [`Plain`](crate::Plain), and every [`Options`](crate::Options) policy |
//! | [`packed`] | packed boxes: when to choose them, and what they give up |
//! | [`sealing`] | [`SealedBox`](crate::SealedBox): pages `PROT_NONE` while no borrow is out |
//! | [`memlock`] | `RLIMIT_MEMLOCK`, the caches, [`trim`](crate::trim) and [`stats`](crate::stats) |
//! | [`hardening`] | [`Hardening`](crate::Hardening): no core dumps, not dumpable, every page locked, for the whole process |
//! | [`last_wipe`] | wiping every secret before the process dies of a signal or a panic |
//! | [`threat_model`] | what the crate protects against, how each defence is tested, and what it does not protect against (SECURITY.md has it in full) |
//! | [`dependencies`] | the crates it uses and why, the kernel features it needs, the toolchains it is tested with |
//!
//! The feature-gated parts have their own docs: the `serde` module
//! (feature `serde`) and [`LockedAlloc`] (feature `allocator-api2`).
#![forbid(unsafe_code)]

// The same links, first for the same reason.
#[cfg_attr(feature = "serde", doc = "[`lockedmem::serde`]: crate::serde")]
#[cfg_attr(
    not(feature = "serde"),
    doc = "[`lockedmem::serde`]: https://docs.rs/lockedmem/latest/lockedmem/serde/index.html"
)]
#[cfg_attr(
    feature = "allocator-api2",
    doc = "[`LockedAlloc`]: crate::LockedAlloc"
)]
#[cfg_attr(
    not(feature = "allocator-api2"),
    doc = "[`LockedAlloc`]: https://docs.rs/lockedmem/latest/lockedmem/struct.LockedAlloc.html"
)]
#[doc = include_str!("../docs/guide/secrets.md")]
pub mod secrets {}

#[doc = include_str!("../docs/guide/boxes.md")]
pub mod boxes {}

#[doc = include_str!("../docs/guide/packed.md")]
pub mod packed {}

#[doc = include_str!("../docs/guide/sealing.md")]
pub mod sealing {}

#[doc = include_str!("../docs/guide/memlock.md")]
pub mod memlock {}

#[doc = include_str!("../docs/guide/hardening.md")]
pub mod hardening {}

#[doc = include_str!("../docs/guide/last_wipe.md")]
pub mod last_wipe {}

#[doc = include_str!("../docs/guide/threat_model.md")]
pub mod threat_model {}

#[doc = include_str!("../docs/guide/dependencies.md")]
pub mod dependencies {}
