//! Bearer tokens: secrets of any length that go with the signatures.

use std::fmt;
use std::io::Read;

use lockedmem::{Backing, LockedString, LockedVec, SealedBox};
use subtle::ConstantTimeEq;

use crate::{KeyError, KeyOptions};

/// A bearer token of any length (an API secret a service presents next to
/// its signatures), in locked memory, compared in constant time.
pub struct Token {
    bytes: LockedVec<u8>,
}

impl Token {
    /// `len` random bytes.
    ///
    /// # Errors
    /// [`KeyError::OutOfLockedMemory`] if they cannot be locked.
    pub fn generate(len: usize) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: LockedVec::random(len)?,
        })
    }

    /// `len` random bytes, in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate`](Self::generate); [`KeyError::Unsupported`].
    pub fn generate_with(options: &KeyOptions, len: usize) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: options.lockedmem().vec_random(len)?,
        })
    }

    /// The token written in hex.
    ///
    /// # Errors
    /// [`KeyError::Malformed`]; as [`generate`](Self::generate).
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: LockedVec::from_hex(hex)?,
        })
    }

    /// As [`from_hex`](Self::from_hex), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`from_hex`](Self::from_hex) and [`generate_with`](Self::generate_with).
    pub fn from_hex_with(options: &KeyOptions, hex: &str) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: options.lockedmem().vec_from_hex(hex)?,
        })
    }

    /// The token written in padded base64.
    ///
    /// # Errors
    /// [`KeyError::Malformed`]; as [`generate`](Self::generate).
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: LockedVec::from_base64(b64)?,
        })
    }

    /// As [`from_base64`](Self::from_base64), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`from_base64`](Self::from_base64) and [`generate_with`](Self::generate_with).
    pub fn from_base64_with(options: &KeyOptions, b64: &str) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: options.lockedmem().vec_from_base64(b64)?,
        })
    }

    /// The raw bytes `reader` holds, up to `max_len`.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] past `max_len`; [`KeyError::Io`]; as
    /// [`generate`](Self::generate).
    pub fn read_from(reader: impl Read, max_len: usize) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: LockedVec::read_from(reader, max_len)?,
        })
    }

    /// The bytes of a text token the program already holds in locked memory
    /// (a copy: `text` stays the caller's).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn from_text(text: &LockedString) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: text.try_clone()?.into_bytes(),
        })
    }

    /// The token of the bytes `bytes` yields, pushed one at a time into
    /// locked memory (growth wipes what it leaves).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn collect(bytes: impl IntoIterator<Item = u8>) -> Result<Self, KeyError> {
        let bytes = bytes.into_iter();
        let mut vec = LockedVec::new();
        vec.try_reserve(bytes.size_hint().0)?;
        Self::push_all(vec, bytes)
    }

    /// As [`collect`](Self::collect), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`generate_with`](Self::generate_with).
    pub fn collect_with(
        options: &KeyOptions,
        bytes: impl IntoIterator<Item = u8>,
    ) -> Result<Self, KeyError> {
        let bytes = bytes.into_iter();
        let vec = options.lockedmem().vec::<u8>(bytes.size_hint().0)?;
        Self::push_all(vec, bytes)
    }

    fn push_all(mut vec: LockedVec<u8>, bytes: impl Iterator<Item = u8>) -> Result<Self, KeyError> {
        for b in bytes {
            vec.try_push(b)?;
        }
        debug_assert!(vec.capacity() >= vec.len());
        Ok(Token { bytes: vec })
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty (a revoked token is).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `presented` is this token, in a time that depends on the
    /// lengths only.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.bytes == presented
    }

    /// A copy in new memory made like this token's.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn try_clone(&self) -> Result<Self, KeyError> {
        Ok(Token {
            bytes: self.bytes.try_clone()?,
        })
    }

    /// Wipes the token now; it then matches nothing but an empty token.
    pub fn revoke(&mut self) {
        self.bytes.clear();
    }

    /// Whether its memory is locked, and what memory it is (`None` for an
    /// empty token, which has none).
    pub fn memory(&self) -> (bool, Option<Backing>) {
        (self.bytes.is_locked(), self.bytes.backing())
    }

    /// Seals the token at rest: unreadable while not borrowed.
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn seal(self) -> Result<SealedBox<[u8]>, KeyError> {
        Ok(self.bytes.seal()?)
    }
}

/// Constant-time, as [`Token::matches`].
impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("bytes", &self.bytes).finish()
    }
}
