//! Feature `serde`: `Deserialize` for `LockedBox<[u8; N]>`, `LockedVec<u8>`
//! and `LockedString`, whose visitors write straight into locked memory.
//!
//! Borrowed strings and bytes (what `serde_json::from_slice` hands out for
//! a string without escapes) are copied once, from the input into locked
//! memory; owned ones (`String`, `Vec<u8>`, which a deserializer makes when
//! it had to unescape) are copied and then wiped; sequences of integers are
//! pushed one at a time. The input document itself is the caller's to wipe.
//! Error messages never contain the input. There is no `Serialize`.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.text {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut out =
            LockedVec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16)).map_err(to_de)?;
        while let Some(b) = seq.next_element::<u8>()? {
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
        let bytes = d.deserialize_str(BytesVisitor {
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

/// "N bytes", for length errors.
struct LenN<const N: usize>(PhantomData<()>);

impl<const N: usize> de::Expected for LenN<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }
}
