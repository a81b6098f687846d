//! The visitors behind [`crate::serde`]: each takes what a deserializer
//! hands over (a string, bytes or a sequence of integers) and writes it,
//! decoded if asked, straight into the destination's locked memory, made
//! with the options asked for. No destination is built through a temporary
//! container.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Unexpected, Visitor};
use zeroize::Zeroize;

use crate::decode;
use crate::error::Error;
use crate::locked_box::LockedBox;
use crate::options::Options;
use crate::string::LockedString;
use crate::vec::LockedVec;

/// How the text of a value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The string's own bytes, bytes, or a sequence of integers.
    Raw,
    /// Hex digits, upper or lower case.
    Hex,
    /// Standard, padded base64 (RFC 4648).
    Base64,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }
}

/// What to make a value with: its options and how its text is read.
///
/// Public only because the sealed trait behind
/// [`Destination`](crate::serde::Destination) names it; nothing outside the
/// crate can make or see one.
#[derive(Debug, Clone)]
pub struct How {
    pub(crate) options: Options,
    pub(crate) encoding: Encoding,
}

pub(crate) fn to_de<E: de::Error>(e: Error) -> E {
    E::custom(e)
}

/// A destination: how each shape of input becomes one, in locked memory
/// made with the options given.
pub(crate) trait Sink: Sized {
    /// Whether the destination is text (UTF-8, no integer sequences).
    const TEXT: bool;

    /// What raw input it takes, for `expecting`.
    fn expecting_raw(f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Decoded length, if fixed.
    fn fixed_len() -> Option<usize>;

    /// From a string's or a byte string's bytes, read as `encoding` says
    /// (raw: as they are, UTF-8 already checked if `TEXT`).
    fn text<E: de::Error>(text: &[u8], encoding: Encoding, o: &Options) -> Result<Self, E>;

    /// From a sequence of integers, each a byte.
    fn seq<'de, A: SeqAccess<'de>>(seq: A, o: &Options) -> Result<Self, A::Error>;
}

impl<const N: usize> Sink for LockedBox<[u8; N]> {
    const TEXT: bool = false;

    fn expecting_raw(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes (a string, bytes or integers)")
    }

    fn fixed_len() -> Option<usize> {
        Some(N)
    }

    fn text<E: de::Error>(text: &[u8], encoding: Encoding, o: &Options) -> Result<Self, E> {
        // The length is checked before any memory is made for it.
        let fits = match encoding {
            Encoding::Raw => text.len() == N,
            Encoding::Hex => decode::hex_fits(text, N),
            Encoding::Base64 => decode::base64_fits(text, N),
        };
        if !fits {
            return Err(match encoding {
                Encoding::Raw => E::invalid_length(text.len(), &LenN::<N>),
                _ => to_de(Error::Decode {
                    encoding: encoding.name(),
                }),
            });
        }
        o.try_new_with::<[u8; N], Error>(|k| match encoding {
            Encoding::Raw => {
                k.copy_from_slice(text);
                Ok(())
            }
            Encoding::Hex => decode::hex_exact(text, k),
            Encoding::Base64 => decode::base64_exact(text, k),
        })
        .map_err(|e| to_de(Error::from(e))) // a box that failed is wiped
    }

    fn seq<'de, A: SeqAccess<'de>>(mut seq: A, o: &Options) -> Result<Self, A::Error> {
        let mut b = o.zeroed::<[u8; N]>().map_err(to_de)?;
        let mut n = 0;
        while let Some(byte) = seq.next_element_seed(Byte)? {
            let Some(slot) = b.get_mut(n) else {
                return Err(de::Error::invalid_length(n + 1, &LenN::<N>)); // `b` wiped
            };
            *slot = byte;
            n += 1;
        }
        if n != N {
            return Err(de::Error::invalid_length(n, &LenN::<N>));
        }
        Ok(b)
    }
}

impl Sink for LockedVec<u8> {
    const TEXT: bool = false;

    fn expecting_raw(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes (a string, bytes or integers)")
    }

    fn fixed_len() -> Option<usize> {
        None
    }

    fn text<E: de::Error>(text: &[u8], encoding: Encoding, o: &Options) -> Result<Self, E> {
        match encoding {
            Encoding::Raw => o.vec::<u8>(text.len()).and_then(|mut v| {
                v.try_extend_from_slice(text)?;
                Ok(v)
            }),
            Encoding::Hex => o.vec::<u8>(0).and_then(|v| decode::hex_vec(text, v)),
            Encoding::Base64 => o.vec::<u8>(0).and_then(|v| decode::base64_vec(text, v)),
        }
        .map_err(to_de)
    }

    fn seq<'de, A: SeqAccess<'de>>(mut seq: A, o: &Options) -> Result<Self, A::Error> {
        // A size hint is the input's word, not a promise: believe it up to
        // 64 KiB.
        let hint = seq.size_hint().unwrap_or(0).min(1 << 16);
        let mut v = o.vec::<u8>(hint).map_err(to_de)?;
        while let Some(b) = seq.next_element_seed(Byte)? {
            v.try_push(b).map_err(to_de)?;
        }
        Ok(v)
    }
}

impl Sink for LockedString {
    const TEXT: bool = true;

    fn expecting_raw(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn fixed_len() -> Option<usize> {
        None
    }

    fn text<E: de::Error>(text: &[u8], encoding: Encoding, o: &Options) -> Result<Self, E> {
        let v = <LockedVec<u8> as Sink>::text(text, encoding, o)?;
        LockedString::from_utf8(v).map_err(to_de) // wiped if not UTF-8
    }

    fn seq<'de, A: SeqAccess<'de>>(_: A, _: &Options) -> Result<Self, A::Error> {
        Err(de::Error::invalid_type(Unexpected::Seq, &"a string"))
    }
}

/// The visitor for a [`Sink`], made with the options and encoding of `how`.
pub(crate) struct Visit<T> {
    how: How,
    _makes: PhantomData<fn() -> T>,
}

impl<T> Visit<T> {
    pub(crate) fn new(how: How) -> Self {
        Visit {
            how,
            _makes: PhantomData,
        }
    }
}

impl<'de, T: Sink> Visitor<'de> for Visit<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = self.how.encoding;
        match (enc, T::fixed_len(), T::TEXT) {
            (Encoding::Raw, ..) => T::expecting_raw(f),
            (_, Some(n), _) => write!(f, "{} text of {n} bytes", enc.name()),
            (_, None, true) => write!(f, "{} of UTF-8 text", enc.name()),
            (_, None, false) => write!(f, "{} text", enc.name()),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_string<E: de::Error>(self, mut v: String) -> Result<T, E> {
        let r = self.visit_str(&v);
        v.zeroize();
        r
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
        let encoding = self.how.encoding;
        if T::TEXT && encoding == Encoding::Raw && std::str::from_utf8(v).is_err() {
            return Err(to_de(Error::InvalidUtf8));
        }
        T::text(v, encoding, &self.how.options)
    }

    fn visit_byte_buf<E: de::Error>(self, mut v: Vec<u8>) -> Result<T, E> {
        let r = self.visit_bytes(&v);
        v.zeroize();
        r
    }

    fn visit_char<E: de::Error>(self, c: char) -> Result<T, E> {
        self.visit_str(c.encode_utf8(&mut [0; 4]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        if self.how.encoding != Encoding::Raw {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        T::seq(seq, &self.how.options)
    }

    // Serde's own messages for these quote the value: say only its kind.

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a boolean"), &self))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Err(E::invalid_type(Unexpected::Other("a number"), &self))
    }
}

/// One byte of an integer sequence, whose errors do not show the value
/// (serde's own `u8` says "invalid value: integer `300`").
struct Byte;

impl<'de> DeserializeSeed<'de> for Byte {
    type Value = u8;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u8, D::Error> {
        // `deserialize_any`, not `deserialize_u8`: given a string, serde_json
        // would build its own error, quoting the string.
        d.deserialize_any(self)
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

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<u8, E> {
        Err(E::invalid_value(
            Unexpected::Other("a larger integer"),
            &self,
        ))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<u8, E> {
        Err(E::invalid_value(
            Unexpected::Other("another integer"),
            &self,
        ))
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

    fn visit_string<E: de::Error>(self, mut v: String) -> Result<u8, E> {
        v.zeroize();
        self.visit_str("")
    }

    fn visit_byte_buf<E: de::Error>(self, mut v: Vec<u8>) -> Result<u8, E> {
        v.zeroize();
        self.visit_bytes(&[])
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<u8, E> {
        Err(E::invalid_type(Unexpected::Other("bytes"), &self))
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<u8, E> {
        Err(E::invalid_type(Unexpected::Other("a character"), &self))
    }
}

/// "N bytes", for length errors.
struct LenN<const N: usize>;

impl<const N: usize> de::Expected for LenN<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{N} bytes")
    }
}
