//! Feature `serde`: secrets deserialized straight into locked memory.
//!
//! [`LockedBox<[u8; N]>`](crate::LockedBox), [`LockedVec<u8>`](crate::LockedVec)
//! and [`LockedString`] implement [`Deserialize`]. This module adds what a
//! configuration file or a token store usually needs on top: secrets
//! written as hex or base64 text, and memory made with chosen [`Options`]
//! (packed, best effort, secret memory). Every path writes the secret from
//! what the deserializer hands over straight into the memory the secret
//! then lives in, made with the options asked for: no temporary container
//! (a `LockedVec` read from a sequence of integers grows as a `LockedVec`
//! does, in locked memory), and no byte of it in ordinary memory on the way
//! but where noted below.
//!
//! # The three types, as they are
//!
//! ```
//! use lockedmem::{LockedBox, LockedString, LockedVec};
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     password: LockedString,       // a string
//!     salt: LockedVec<u8>,          // a string's bytes, bytes, or [1, 2, 3]
//!     pin: LockedBox<[u8; 4]>,      // exactly 4 bytes, as either
//! }
//!
//! let doc = br#"{"password":"hunter2","salt":[1,2,3],"pin":"1234"}"#;
//! let c: Config = serde_json::from_slice(doc)?;
//! assert_eq!(&*c.password, "hunter2");
//! assert_eq!(&c.salt[..], [1, 2, 3]);
//! assert_eq!(*c.pin, *b"1234");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! `Option<T>` of each works as serde's own does (`null` is `None`).
//! The types ask the deserializer what it holds (`deserialize_any`), so
//! they need a self-describing format (JSON, TOML, YAML, CBOR, ...), not
//! bincode or postcard: asked for a string and given a number, a format
//! builds the error itself, and serde_json's quotes the value.
//!
//! # Give the format a slice
//!
//! What reaches locked memory is what the deserializer hands over; what it
//! keeps on the way is out of the crate's reach. With serde_json:
//!
//! - `serde_json::from_slice` and `from_str` hand over a string without
//!   escapes straight from the document: it is copied once, into the
//!   secret's memory. The document is then the only other copy, and it is
//!   yours: read it into a [`LockedVec`] (with
//!   [`LockedVec::read_from`](crate::LockedVec::read_from)) and parse that,
//!   and the document too is locked and wiped when dropped.
//! - A string *with* escapes (`\n`, `\u00e4`) is unescaped first into a
//!   scratch buffer of serde_json's own, an ordinary `Vec<u8>` it frees
//!   without wiping: write secrets without escapes (hex and base64 need
//!   none).
//! - `serde_json::from_reader` copies *every* string into that scratch
//!   buffer, escapes or not: do not use it for documents that hold secrets.
//! - A `serde_json::Value` holds its strings as ordinary `String`s.
//!   `serde_json::from_value` hands them over by value, and they are wiped
//!   once decoded, but a `Value` cloned or kept still holds them:
//!   deserialize secrets straight from the text, not through a `Value`.
//! - An untagged or internally tagged enum makes serde's derive read the
//!   value into a buffer of its own before it knows the variant. From a
//!   slice that buffer borrows the document and adds no copy; a string the
//!   format hands over by value (from a reader, from a `Value`) is kept in
//!   it, an ordinary `String` out of the crate's reach.
//!
//! # Hex and base64
//!
//! [`hex`] and [`base64`] (standard alphabet, padded, RFC 4648) are field
//! helpers for `#[serde(with = "...")]` or `deserialize_with`; [`Hex`] and
//! [`Base64`] do the same for a value that is not a field of yours, such as
//! a map's value. Both take the three types and `Option`s of them, and
//! decode with the crate's constant-time decoders (RustCrypto's `base16ct`
//! and `base64ct`, as [`LockedBox::from_hex`](crate::LockedBox::from_hex)
//! does) from the borrowed text straight into the destination (base64ct
//! decodes a last, partial block of one or two bytes through a stack array
//! it does not wipe).
//!
//! ```
//! use std::collections::HashMap;
//! use lockedmem::{LockedBox, LockedVec};
//! use lockedmem::serde::Hex;
//!
//! #[derive(serde::Deserialize)]
//! struct Service {
//!     #[serde(with = "lockedmem::serde::hex")]
//!     signing_key: LockedBox<[u8; 4]>,
//!     #[serde(with = "lockedmem::serde::base64")]
//!     api_secret: LockedVec<u8>,
//!     tokens: HashMap<String, Hex<LockedBox<[u8; 2]>>>,
//! }
//!
//! let doc = br#"{
//!     "signing_key": "DEADbeef",
//!     "api_secret": "aHVudGVyMg==",
//!     "tokens": {"alice": "0102", "bob": "ff00"}
//! }"#;
//! let s: Service = serde_json::from_slice(doc)?;
//! assert_eq!(*s.signing_key, [0xde, 0xad, 0xbe, 0xef]);
//! assert_eq!(&s.api_secret[..], b"hunter2");
//! assert_eq!(**s.tokens["bob"], [0xff, 0x00]);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Options
//!
//! [`with_options`] runs a closure in which every secret this module makes
//! on the current thread (the plain `Deserialize` impls, the field helpers,
//! [`Hex`] and [`Base64`], in derive-generated code or a map) is made with
//! the options given. For many small tokens under a tight
//! `RLIMIT_MEMLOCK`, packed and best effort:
//!
//! ```
//! use std::collections::HashMap;
//! use lockedmem::{Isolation, LockPolicy, LockedBox, Options};
//! use lockedmem::serde::{Hex, with_options};
//!
//! let doc = br#"{"alice": "00112233", "bob": "44556677"}"#;
//! let tokens: HashMap<String, Hex<LockedBox<[u8; 4]>>> = with_options(
//!     &Options::new().isolation(Isolation::Packed).lock(LockPolicy::BestEffort),
//!     || serde_json::from_slice(doc),
//! )?;
//! assert_eq!(tokens["alice"].isolation(), Isolation::Packed);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! For one value, a [`Seed`] (from [`Options::seed`]) is a
//! [`DeserializeSeed`] with its own options, and optionally hex or base64:
//! `options.seed::<LockedBox<[u8; 32]>>().hex().deserialize(&mut de)`.
//! A seed's options win over the closure's.
//!
//! # Errors and what they say
//!
//! No error message quotes the input: not a string, a number, or a byte
//! of it (a wrong length is given as a number of bytes). When decoding or
//! making the memory fails, what was written so far is wiped with the
//! memory. A string or byte buffer the deserializer hands over by value is
//! wiped once it has been copied. There is no `Serialize`.
//!
//! # What is tested
//!
//! `tests/serde.rs` checks each path from outside, in child processes: a
//! scan of the whole process's memory finds the secret's bytes once while
//! it is alive (in its locked memory, or, for best effort past the lock
//! limit, in the crate's unlocked packed pages, which are never dumped),
//! its text only in the document it came from, and neither once both are
//! gone; a string handed over by value is wiped once decoded; serde_json's
//! scratch buffer holds a string with escapes, or any string read from a
//! reader, while the deserializer lives; the options
//! of [`with_options`] reach every path, and only inside the closure; no
//! error message quotes the input. And strace counts the `mlock` calls of
//! 50,000 hex tokens loaded from one document into packed, best-effort
//! boxes under a 64 KiB `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`: fewer
//! than 100 fail (17 calls, at most one failing, no `munlock`, where it
//! was written; through a temporary `LockedString` per token the same load
//! made 196,111 calls, 98,016 failing, and 98,015 `munlock`). The same
//! load takes about twice as long as into a `HashMap<String, [u8; 32]>`:
//! `cargo bench --features serde --bench serde_tokens` prints the ratio.
#![forbid(unsafe_code)]

mod sink;

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use ::serde::de::{Deserialize, DeserializeSeed, Deserializer, Visitor};

use crate::locked_box::LockedBox;
use crate::options::Options;
use crate::string::LockedString;
use crate::vec::LockedVec;
use sealed::Sealed as _;
use sink::{Encoding, How, Visit};

thread_local! {
    /// The options of the innermost [`with_options`] on this thread.
    static SCOPED: Cell<Option<Options>> = const { Cell::new(None) };
}

impl How {
    /// The options of the innermost [`with_options`] (the defaults outside
    /// one), for text in `encoding`.
    fn scoped(encoding: Encoding) -> How {
        let options = SCOPED
            .try_with(|s| {
                let o = s.take();
                let copy = o;
                s.set(o);
                copy
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        How { options, encoding }
    }
}

/// Runs `f`, in which every secret this module makes on the current thread
/// is made with `options`: the `Deserialize` impls of the crate's types,
/// the [`hex`] and [`base64`] field helpers and the [`Hex`] and [`Base64`]
/// wrappers, wherever they are called from (derive-generated code, map
/// values). A [`Seed`] keeps its own options. Calls nest; the previous
/// options come back when `f` returns or unwinds.
///
/// ```
/// use lockedmem::{Isolation, LockPolicy, LockedString, Options};
///
/// let pass: LockedString = lockedmem::serde::with_options(
///     &Options::new().isolation(Isolation::Packed).lock(LockPolicy::BestEffort),
///     || serde_json::from_str(r#""hunter2""#),
/// )?;
/// assert_eq!(&*pass, "hunter2");
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// # Panics
/// If called from the destructor of a thread-local, once this thread's
/// thread-locals are being torn down (the setting would not hold).
pub fn with_options<R>(options: &Options, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Options>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = SCOPED.try_with(|s| s.set(self.0.take()));
        }
    }
    let previous = SCOPED.with(|s| s.replace(Some(*options)));
    let _restore = Restore(previous);
    f()
}

mod sealed {
    use ::serde::de::Deserializer;

    use super::How;

    /// What [`Destination`](super::Destination) hides: deserializing with
    /// given options and encoding.
    pub trait Sealed: Sized {
        fn deserialize_how<'de, D: Deserializer<'de>>(d: D, how: How) -> Result<Self, D::Error>;
    }
}

/// The types this module deserializes into: [`LockedBox<[u8; N]>`],
/// [`LockedVec<u8>`], [`LockedString`], and `Option`s of them. Sealed.
pub trait Destination: sealed::Sealed {}

impl<const N: usize> sealed::Sealed for LockedBox<[u8; N]> {
    fn deserialize_how<'de, D: Deserializer<'de>>(d: D, how: How) -> Result<Self, D::Error> {
        d.deserialize_any(Visit::<Self>::new(how))
    }
}
impl<const N: usize> Destination for LockedBox<[u8; N]> {}

impl sealed::Sealed for LockedVec<u8> {
    fn deserialize_how<'de, D: Deserializer<'de>>(d: D, how: How) -> Result<Self, D::Error> {
        d.deserialize_any(Visit::<Self>::new(how))
    }
}
impl Destination for LockedVec<u8> {}

impl sealed::Sealed for LockedString {
    fn deserialize_how<'de, D: Deserializer<'de>>(d: D, how: How) -> Result<Self, D::Error> {
        // `deserialize_any`, not `deserialize_str`: given another type,
        // serde_json would otherwise build its own error, quoting the value.
        d.deserialize_any(Visit::<Self>::new(how))
    }
}
impl Destination for LockedString {}

impl<T: Destination> sealed::Sealed for Option<T> {
    fn deserialize_how<'de, D: Deserializer<'de>>(d: D, how: How) -> Result<Self, D::Error> {
        d.deserialize_option(VisitOption::<T> {
            how,
            _makes: PhantomData,
        })
    }
}
impl<T: Destination> Destination for Option<T> {}

/// The visitor for `Option<T>`: `null` (or a missing value, in formats that
/// have one) is `None`, anything else is `T`'s.
struct VisitOption<T> {
    how: How,
    _makes: PhantomData<fn() -> T>,
}

impl<'de, T: Destination> Visitor<'de> for VisitOption<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret or null")
    }

    fn visit_none<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        T::deserialize_how(d, self.how).map(Some)
    }
}

/// From exactly `N` bytes: a string's bytes, bytes, or a sequence of
/// integers, copied once into locked memory made with the options of the
/// enclosing [`with_options`] (the defaults outside one). For hex or base64
/// text, other options, and what a format keeps of the input, see
/// [`lockedmem::serde`](crate::serde).
impl<'de, const N: usize> Deserialize<'de> for LockedBox<[u8; N]> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_how(d, How::scoped(Encoding::Raw))
    }
}

/// From a string's bytes, bytes, or a sequence of integers, copied once
/// into locked memory made with the options of the enclosing
/// [`with_options`] (the defaults outside one). For hex or base64 text,
/// other options, and what a format keeps of the input, see
/// [`lockedmem::serde`](crate::serde).
impl<'de> Deserialize<'de> for LockedVec<u8> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_how(d, How::scoped(Encoding::Raw))
    }
}

/// From a string (or UTF-8 bytes), copied once into locked memory made with
/// the options of the enclosing [`with_options`] (the defaults outside
/// one). For base64 or hex text, other options, and what a format keeps of
/// the input, see [`lockedmem::serde`](crate::serde).
impl<'de> Deserialize<'de> for LockedString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_how(d, How::scoped(Encoding::Raw))
    }
}

/// A field helper for secrets written as hex (upper or lower case):
/// `#[serde(with = "lockedmem::serde::hex")]`.
///
/// For a [`LockedBox<[u8; N]>`](crate::LockedBox) (exactly `2 * N` digits),
/// a [`LockedVec<u8>`](crate::LockedVec), a
/// [`LockedString`] (the bytes must be UTF-8) or an
/// `Option` of one (`null` is `None`; add `#[serde(default)]` to let the
/// field be missing). Made with the options of the enclosing
/// [`with_options`].
///
/// ```
/// use lockedmem::LockedBox;
///
/// #[derive(serde::Deserialize)]
/// struct Peer {
///     #[serde(with = "lockedmem::serde::hex")]
///     psk: LockedBox<[u8; 4]>,
///     #[serde(default, with = "lockedmem::serde::hex")]
///     old_psk: Option<LockedBox<[u8; 4]>>,
/// }
///
/// let p: Peer = serde_json::from_str(r#"{"psk": "c0ffee00"}"#)?;
/// assert_eq!(*p.psk, [0xc0, 0xff, 0xee, 0x00]);
/// assert!(p.old_psk.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub mod hex {
    use ::serde::de::Deserializer;

    use super::{Destination, Encoding, How};

    /// Deserializes a `T` from hex text.
    ///
    /// ```
    /// let key: lockedmem::LockedVec<u8> =
    ///     lockedmem::serde::hex::deserialize(&mut serde_json::Deserializer::from_str(r#""00ff""#))?;
    /// assert_eq!(&key[..], [0x00, 0xff]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// The deserializer's error, made from [`Error::Decode`](crate::Error::Decode)
    /// for text that is not hex or has the wrong length, and from the
    /// crate's errors for memory that cannot be made. None quotes the text.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Destination>(d: D) -> Result<T, D::Error> {
        T::deserialize_how(d, How::scoped(Encoding::Hex))
    }
}

/// A field helper for secrets written as standard, padded base64 (RFC
/// 4648): `#[serde(with = "lockedmem::serde::base64")]`. The same types
/// and options as [`hex`].
///
/// ```
/// use lockedmem::LockedString;
///
/// #[derive(serde::Deserialize)]
/// struct Secret {
///     #[serde(with = "lockedmem::serde::base64")]
///     password: LockedString,
/// }
///
/// let s: Secret = serde_json::from_str(r#"{"password": "aHVudGVyMg=="}"#)?;
/// assert_eq!(&*s.password, "hunter2");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub mod base64 {
    use ::serde::de::Deserializer;

    use super::{Destination, Encoding, How};

    /// Deserializes a `T` from base64 text.
    ///
    /// ```
    /// let key: lockedmem::LockedBox<[u8; 2]> =
    ///     lockedmem::serde::base64::deserialize(&mut serde_json::Deserializer::from_str(r#""AP8=""#))?;
    /// assert_eq!(*key, [0x00, 0xff]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`hex::deserialize`](super::hex::deserialize), for base64.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Destination>(d: D) -> Result<T, D::Error> {
        T::deserialize_how(d, How::scoped(Encoding::Base64))
    }
}

/// A secret deserialized from hex text, for a value that is not a field of
/// yours (a map's value, a list's element): `HashMap<String,
/// Hex<LockedBox<[u8; 32]>>>`. Dereferences to the secret; made with the
/// options of the enclosing [`with_options`]. The same types as [`hex`].
///
/// ```
/// use std::collections::HashMap;
/// use lockedmem::LockedBox;
/// use lockedmem::serde::Hex;
///
/// let keys: HashMap<String, Hex<LockedBox<[u8; 2]>>> =
///     serde_json::from_str(r#"{"a": "0001", "b": "beef"}"#)?;
/// let b: LockedBox<[u8; 2]> = keys.into_iter().find(|(k, _)| k == "b").unwrap().1.into_inner();
/// assert_eq!(*b, [0xbe, 0xef]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug)]
pub struct Hex<T>(pub T);

/// A secret deserialized from standard, padded base64 text, as [`Hex`] is
/// from hex.
///
/// ```
/// use lockedmem::LockedVec;
/// use lockedmem::serde::Base64;
///
/// let keys: Vec<Base64<LockedVec<u8>>> = serde_json::from_str(r#"["aGk=", "AAEC"]"#)?;
/// assert_eq!(&keys[0][..], b"hi");
/// assert_eq!(&keys[1][..], [0, 1, 2]);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug)]
pub struct Base64<T>(pub T);

macro_rules! wrapper {
    ($name:ident, $encoding:expr) => {
        impl<T> $name<T> {
            /// The secret.
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> From<T> for $name<T> {
            fn from(secret: T) -> Self {
                $name(secret)
            }
        }

        impl<T> Deref for $name<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }

        impl<'de, T: Destination> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                T::deserialize_how(d, How::scoped($encoding)).map($name)
            }
        }
    };
}

wrapper!(Hex, Encoding::Hex);
wrapper!(Base64, Encoding::Base64);

/// A [`DeserializeSeed`] that makes one `T` with the options it was made
/// with, whatever [`with_options`] says, from raw text by default or from
/// hex or base64. Made by [`Options::seed`] or [`Seed::new`].
///
/// ```
/// use serde::de::DeserializeSeed;
/// use lockedmem::{Backing, LockedBox, Options};
///
/// let mut de = serde_json::Deserializer::from_str(r#""00010203""#);
/// let key = Options::new()
///     .backing(Backing::PreferSecretMem)
///     .seed::<LockedBox<[u8; 4]>>()
///     .hex()
///     .deserialize(&mut de)?;
/// assert_eq!(*key, [0, 1, 2, 3]);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct Seed<T> {
    how: How,
    _makes: PhantomData<fn() -> T>,
}

impl<T: Destination> Seed<T> {
    /// A seed for a `T` made with `options`, from raw text (as `T`'s
    /// `Deserialize` reads it).
    pub fn new(options: &Options) -> Self {
        Seed {
            how: How {
                options: *options,
                encoding: Encoding::Raw,
            },
            _makes: PhantomData,
        }
    }

    /// Reads hex text instead, as [`hex`] does.
    pub fn hex(mut self) -> Self {
        self.how.encoding = Encoding::Hex;
        self
    }

    /// Reads standard, padded base64 text instead, as [`base64`] does.
    pub fn base64(mut self) -> Self {
        self.how.encoding = Encoding::Base64;
        self
    }
}

impl<T> Clone for Seed<T> {
    fn clone(&self) -> Self {
        Seed {
            how: self.how.clone(),
            _makes: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Seed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seed")
            .field("type", &std::any::type_name::<T>())
            .field("options", &self.how.options)
            .field("encoding", &self.how.encoding)
            .finish()
    }
}

impl<'de, T: Destination> DeserializeSeed<'de> for Seed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize_how(d, self.how)
    }
}

impl Options {
    /// A [`DeserializeSeed`] for one `T` made with these options (feature
    /// `serde`); see [`Seed`] and [`lockedmem::serde`](crate::serde).
    ///
    /// ```
    /// use serde::de::DeserializeSeed;
    /// use lockedmem::{Isolation, LockedString, Options};
    ///
    /// let mut de = serde_json::Deserializer::from_str(r#""hunter2""#);
    /// let pass = Options::new()
    ///     .isolation(Isolation::Packed)
    ///     .seed::<LockedString>()
    ///     .deserialize(&mut de)?;
    /// assert_eq!(&*pass, "hunter2");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn seed<T: Destination>(&self) -> Seed<T> {
        Seed::new(self)
    }
}
