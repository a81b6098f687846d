//! Feature `serde`: `Deserialize` for `LockedBox<[u8; N]>`, `LockedVec<u8>`
//! and `LockedString`, whose visitors write straight into locked memory.
//!
//! Strings and bytes a deserializer hands over are copied once into locked
//! memory (borrowed ones straight from the document: what
//! `serde_json::from_slice` gives for a string without escapes); owned
//! `String`s and `Vec<u8>`s handed over are copied and then wiped; integer
//! sequences are pushed one at a time. What the crate cannot reach: the
//! document (the caller's to wipe) and a deserializer's own buffers —
//! `serde_json` unescapes a string with escapes, and reads every string
//! from a `Read`er, into a scratch buffer of its own that it frees without
//! wiping. Error messages never contain the input (no number, string or
//! byte of it). The three types ask the deserializer what it holds
//! (`deserialize_any`), so they need a self-describing format (JSON, TOML,
//! YAML, CBOR, ...). There is no `Serialize`.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, SeqAccess, Unexpected, Visitor};
use zeroize::Zeroize;

use crate::error::Error;
use crate::locked_box::LockedBox;
use crate::string::LockedString;
use crate::vec::LockedVec;

fn to_de<E: de::Error>(e: Error) -> E {
    E::custom(e)
}

/// Collects bytes (from strings, byte strings or integer sequences) into a
/// locked vector; `text` asks for UTF-8.
struct BytesVisitor {
    text: bool,
    max: Option<usize>,
}

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = LockedVec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.text, self.max) {
            (true, _) => f.write_str("a string"),
            (false, Some(n)) => write!(f, "{n} bytes (a string, bytes or integers)"),
            (false, None) => f.write_str("bytes (a string, bytes or integers)"),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_string<E: de::Error>(self, mut v: String) -> Result<Self::Value, E> {
        let r = self.visit_str(&v);
        v.zeroize();
        r
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        if self.text && std::str::from_utf8(v).is_err() {
            return Err(to_de(Error::InvalidUtf8));
        }
        let mut out = LockedVec::with_capacity(v.len()).map_err(to_de)?;
        out.try_extend_from_slice(v).map_err(to_de)?;
        Ok(out)
    }

    fn visit_byte_buf<E: de::Error>(self, mut v: Vec<u8>) -> Result<Self::Value, E> {
        let r = self.visit_bytes(&v);
        v.zeroize();
        r
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a boolean"), &self))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_char<E: de::Error>(self, c: char) -> Result<Self::Value, E> {
        self.visit_str(c.encode_utf8(&mut [0; 4]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.text {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        let mut out =
            LockedVec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16)).map_err(to_de)?;
        while let Some(b) = seq.next_element_seed(Byte)? {
            if self.max.is_some_and(|n| out.len() >= n) {
                return Err(de::Error::invalid_length(out.len() + 1, &self));
            }
            out.try_push(b).map_err(to_de)?;
        }
        Ok(out)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for LockedVec<u8> {
    /// From a string, bytes, or a sequence of integers.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor {
            text: false,
            max: None,
        })
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for LockedString {
    /// From a string (or UTF-8 bytes).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_any`, not `deserialize_str`: given another type,
        // serde_json would otherwise build its own error, quoting the value.
        let bytes = d.deserialize_any(BytesVisitor {
            text: true,
            max: None,
        })?;
        LockedString::from_utf8(bytes).map_err(to_de)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de, const N: usize> Deserialize<'de> for LockedBox<[u8; N]> {
    /// From exactly `N` bytes: a string, bytes, or a sequence of integers.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(BytesVisitor {
            text: false,
            max: Some(N),
        })?;
        if v.len() != N {
            return Err(de::Error::invalid_length(v.len(), &LenN::<N>(PhantomData)));
        }
        LockedBox::<[u8; N]>::new_with(|k| k.copy_from_slice(&v)).map_err(to_de)
    }
}

/// One byte of an integer sequence, whose errors do not show the value
/// (serde's own `u8` says "invalid value: integer `300`").
struct Byte;

impl<'de> DeserializeSeed<'de> for Byte {
    type Value = u8;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u8, D::Error> {
        d.deserialize_u8(self)
    }
}

impl Visitor<'_> for Byte {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte (an integer from 0 to 255)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u8, E> {
        u8::try_from(v).map_err(|_| E::invalid_value(Unexpected::Other("a larger integer"), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
        u8::try_from(v).map_err(|_| E::invalid_value(Unexpected::Other("another integer"), &self))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u8, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u8, E> {
        Err(E::invalid_type(Unexpected::Other("a boolean"), &self))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<u8, E> {
        Err(E::invalid_type(Unexpected::Other("a string"), &self))
    }
}

/// "N bytes", for length errors.
struct LenN<const N: usize>(PhantomData<()>);

impl<const N: usize> de::Expected for LenN<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }
}
