//! `LockedString`: UTF-8 text in a [`LockedVec<u8>`].
//!
//! Unsafe here is limited to viewing the bytes as `str`, which the type's
//! one invariant allows: its bytes are always valid UTF-8.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::ops::Deref;

use crate::error::Error;
use crate::store::Request;
use crate::vec::LockedVec;

/// UTF-8 text whose every byte lives in locked, guarded, dump-proof memory.
///
/// ```
/// use lockedmem::LockedString;
///
/// let mut pass = LockedString::new();
/// pass.try_push_str("correct horse")?;
/// pass.try_push('!')?;
/// assert_eq!(&*pass, "correct horse!");
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// Invariant: the bytes are valid UTF-8. `Debug` shows the length only.
#[derive(Default)]
pub struct LockedString {
    bytes: LockedVec<u8>,
}

impl LockedString {
    /// An empty string; allocates nothing until the first character.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `s`, growing if needed.
    ///
    /// # Errors
    /// As [`LockedVec::try_reserve`]; the string is unchanged then.
    pub fn try_push_str(&mut self, s: &str) -> Result<(), Error> {
        // Valid UTF-8 followed by valid UTF-8 is valid UTF-8.
        self.bytes.try_extend_from_slice(s.as_bytes())
    }

    /// Appends `c`, encoded straight into locked memory.
    ///
    /// # Errors
    /// As [`LockedVec::try_reserve`]; the string is unchanged then.
    pub fn try_push(&mut self, c: char) -> Result<(), Error> {
        self.bytes.try_reserve(c.len_utf8())?;
        let n = c.encode_utf8(self.bytes.spare()).len();
        self.bytes.set_len_within(n);
        Ok(())
    }

    /// Bytes of text.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the string's memory is mlocked (`true` while it has none).
    pub fn is_locked(&self) -> bool {
        self.bytes.is_locked()
    }

    /// Removes the text, wiping its bytes at once; the memory is kept.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// An empty string whose memory is made as `req` says, with room for
    /// `capacity` bytes.
    pub(crate) fn with_request(req: Request, capacity: usize) -> Result<Self, Error> {
        let mut bytes = LockedVec::with_request(req);
        bytes.try_reserve(capacity)?;
        // No bytes: valid UTF-8.
        Ok(LockedString { bytes })
    }

    /// A copy of the string in new locked memory made as this string's is,
    /// as [`LockedVec::try_clone`] does.
    ///
    /// ```
    /// let mut pass = lockedmem::LockedString::new();
    /// pass.try_push_str("hunter2")?;
    /// assert!(pass.try_clone()? == "hunter2");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LockedVec::try_reserve`]; nothing is made then.
    ///
    /// # Panics
    /// As [`LockedVec::try_clone`].
    pub fn try_clone(&self) -> Result<Self, Error> {
        // A copy of valid UTF-8.
        self.bytes.try_clone().map(|bytes| LockedString { bytes })
    }

    /// The bytes, as a locked vector.
    pub fn into_bytes(self) -> LockedVec<u8> {
        self.bytes
    }

    /// Takes `bytes` as text if they are UTF-8.
    ///
    /// # Errors
    /// [`Error::InvalidUtf8`]; `bytes` are wiped then.
    pub fn from_utf8(bytes: LockedVec<u8>) -> Result<Self, Error> {
        if std::str::from_utf8(&bytes).is_err() {
            return Err(Error::InvalidUtf8); // `bytes` dropped: wiped
        }
        Ok(LockedString { bytes })
    }

    /// Reads one line from `reader` straight into locked memory, without its
    /// terminator (`\n`, or `\r\n`), reading one byte at a time so that no
    /// byte past the terminator is consumed: a raw descriptor or a pipe that
    /// the rest of the program reads afterwards is left where the line ended.
    /// (Wrap a slow reader in nothing: a `BufReader` would keep a copy of the
    /// secret in its own buffer. For standard input use
    /// [`raw_stdin`](crate::raw_stdin), not [`std::io::stdin`], which reads
    /// ahead into a buffer of its own that nobody wipes.)
    ///
    /// ```
    /// let mut input = &b"s3cret\nnext line\n"[..];
    /// let line = lockedmem::LockedString::read_line(&mut input, 64)?;
    /// assert_eq!(&*line, "s3cret");
    /// assert_eq!(input, b"next line\n");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InputTooLong`] if the line is longer than `max_len` bytes;
    /// [`Error::InvalidUtf8`]; [`Error::Io`] if the reader fails, or with
    /// [`io::ErrorKind::UnexpectedEof`] if the input ends before any byte;
    /// what making the memory can return. What was read is wiped in every
    /// case. A line that ends with the input rather than a terminator is
    /// returned as it is.
    pub fn read_line(reader: impl io::Read, max_len: usize) -> Result<Self, Error> {
        Self::read_line_with(Request::of::<u8>(0), reader, max_len)
    }

    /// [`read_line`](Self::read_line), the memory made as `req` says.
    pub(crate) fn read_line_with(
        req: Request,
        mut reader: impl io::Read,
        max_len: usize,
    ) -> Result<Self, Error> {
        let mut v = LockedVec::<u8>::with_request(req);
        let mut ended = false;
        loop {
            if v.len() == v.capacity() {
                v.try_reserve(1)?;
            }
            match reader.read(&mut v.spare()[..1]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(Error::Io { source }),
            }
            // The byte is in locked memory; look at it there.
            if v.spare()[0] == b'\n' {
                v.spare()[0] = 0;
                ended = true;
                break;
            }
            let byte = v.spare()[0];
            v.set_len_within(1);
            // A `\r` one past the limit may still be the first half of the
            // terminator: the next byte tells.
            let maybe_crlf = byte == b'\r' && v.len() == max_len.saturating_add(1);
            if v.len() > max_len && !maybe_crlf {
                return Err(Error::InputTooLong { max_len });
            }
        }
        if !ended && v.len() > max_len {
            return Err(Error::InputTooLong { max_len }); // a `\r` at the end
        }
        if !ended && v.is_empty() {
            return Err(Error::Io {
                source: io::ErrorKind::UnexpectedEof.into(),
            });
        }
        if ended && v.last() == Some(&b'\r') {
            v.truncate(v.len() - 1);
        }
        Self::from_utf8(v)
    }
}

impl Deref for LockedString {
    type Target = str;

    fn deref(&self) -> &str {
        // SAFETY: the type's invariant: the bytes are valid UTF-8 (every
        // constructor and every append keeps them so).
        unsafe { std::str::from_utf8_unchecked(&self.bytes) }
    }
}

impl fmt::Debug for LockedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedString")
            .field("len", &self.len())
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}
