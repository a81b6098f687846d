//! `raw_stdin`: standard input with no buffer of its own, for reading a
//! secret from a pipe or a redirected file into locked memory.
#![forbid(unsafe_code)]

use std::io;

use crate::os;

/// Standard input (descriptor 0), read with one read(2) per call straight
/// into the caller's buffer: nothing is read ahead and nothing is kept.
///
/// Read a secret from standard input with this, not with
/// [`std::io::stdin`]: std's `Stdin` reads ahead into a buffer of its own
/// (8 KiB), in ordinary memory that nobody wipes, so the secret stays
/// there after the [`LockedString`](crate::LockedString) it was read into
/// is dropped. With `RawStdin`,
/// [`LockedString::read_line`](crate::LockedString::read_line) reads one
/// byte at a time and stops at the end of the line: the rest of the input
/// stays unread, for the program to read afterwards (with `RawStdin`, or
/// with `std::io::stdin()`).
///
/// ```no_run
/// use lockedmem::LockedString;
///
/// // `echo "$TOKEN" | program`, or `program < token-file`:
/// let token = LockedString::read_line(lockedmem::raw_stdin(), 1024)?;
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// Do not mix it with `std::io::stdin()` while std holds buffered input:
/// bytes std has read ahead are in its buffer, not in the descriptor, so
/// `RawStdin` does not see them. (Read the secret first, with `RawStdin`.)
#[derive(Debug)]
pub struct RawStdin {
    _private: (),
}

/// Standard input without a buffer: see [`RawStdin`].
///
/// ```
/// use std::io::Read;
///
/// let mut nothing = [0u8; 0];
/// assert_eq!(lockedmem::raw_stdin().read(&mut nothing)?, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raw_stdin() -> RawStdin {
    RawStdin { _private: () }
}

impl io::Read for RawStdin {
    /// One read(2) of at most `buf.len()` bytes from descriptor 0; `Ok(0)`
    /// at the end of the input (or for an empty `buf`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        os::read_stdin(buf)
    }
}
