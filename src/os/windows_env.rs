//! Taking a variable out of the environment, on Windows: the value is
//! read with `GetEnvironmentVariableW` straight into a locked scratch
//! reservation of the crate's own, converted to UTF-8 there, handed to the
//! caller's copy, and the variable removed with `SetEnvironmentVariableW`;
//! the scratch is zeroed and released.
//!
//! What Windows keeps: the process's environment block lives in the
//! process heap, in UTF-16, and the system rewrites it when a variable is
//! removed; the memory that held the old value is freed (or the entries
//! after it moved over it), never wiped, by the system. No call reaches
//! it. A child process started afterwards gets the environment without the
//! variable.
//!
//! Not reached either: the C runtime's own copies of the environment
//! (`_environ`, and `_wenviron` once made; `getenv` reads them), taken from
//! the block when the runtime starts and never told of
//! `SetEnvironmentVariableW`: the value stays in them, in the C runtime's
//! heap, and C code in the process that calls `getenv` still finds it.
//!
//! Not checked: the result of `SetEnvironmentVariableW` removing the
//! variable just read (Microsoft documents no failure for a removal but
//! running out of memory); if it ever failed, the variable would stay in
//! the block while the value was taken all the same.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use windows_sys::Win32::Foundation::{ERROR_ENVVAR_NOT_FOUND, GetLastError, SetLastError};
use windows_sys::Win32::System::Environment::{GetEnvironmentVariableW, SetEnvironmentVariableW};

use super::cpu::zero_bytes;
use super::types::Protection;
use super::windows::{lock, map_none, page_size, protect, unlock, unmap};

/// A reservation of the crate's own, read-write and (where the quota
/// allows) locked, zeroed and released when dropped: the only place the
/// value passes through on its way into the caller's locked memory.
struct Scratch {
    addr: NonNull<u8>,
    len: usize,
    locked: bool,
}

impl Scratch {
    /// `len` bytes (whole pages), read-write; locked if the quota leaves
    /// room (the value's source, the environment block, is not locked
    /// either).
    fn new(len: usize) -> Option<Scratch> {
        let len = len.max(1).next_multiple_of(page_size());
        let addr = map_none(len).ok()?;
        // SAFETY: the reservation just made, which nothing else knows of.
        if unsafe { protect(addr, len, Protection::ReadWrite) }.is_err() {
            // Not a `Scratch` yet: its drop would write zeros over pages
            // that may not be committed (`ERROR_COMMITMENT_LIMIT`).
            // SAFETY: the whole reservation, unused.
            let _ = unsafe { unmap(addr, len) };
            return None;
        }
        let mut scratch = Scratch {
            addr,
            len,
            locked: false,
        };
        // SAFETY: as above; now read-write.
        scratch.locked = unsafe { lock(addr, len) }.is_ok();
        Some(scratch)
    }

    /// The scratch as UTF-16 units from `at` bytes on, `n` of them.
    fn units(&mut self, at: usize, n: usize) -> &mut [u16] {
        assert!(at % 2 == 0 && at + 2 * n <= self.len, "inside the scratch");
        let first = self.addr.as_ptr().wrapping_add(at).cast::<u16>();
        // SAFETY: read-write memory of ours (checked above), aligned for
        // u16 (page-aligned base, even offset), borrowed as `self` is.
        unsafe { std::slice::from_raw_parts_mut(first, n) }
    }

    /// The scratch as bytes from `at` on, `n` of them.
    fn bytes(&mut self, at: usize, n: usize) -> &mut [u8] {
        assert!(at + n <= self.len, "inside the scratch");
        let first = self.addr.as_ptr().wrapping_add(at);
        // SAFETY: read-write memory of ours (checked above), borrowed as
        // `self` is.
        unsafe { std::slice::from_raw_parts_mut(first, n) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: read-write memory of ours that no reference points into
        // (the slices borrowed `self`).
        unsafe { zero_bytes(self.addr.as_ptr(), self.len) };
        if self.locked {
            // SAFETY: the reservation, locked above.
            let _ = unsafe { unlock(self.addr, self.len) };
        }
        // SAFETY: the whole reservation, unused from now on.
        let _ = unsafe { unmap(self.addr, self.len) };
    }
}

/// `GetEnvironmentVariableW(name, buf)`: the number of units written
/// (without the terminating NUL); or, if `buf` is too small, the number
/// needed with it; `None` if the variable is not set.
///
/// # References
/// - [GetEnvironmentVariableW](https://learn.microsoft.com/en-us/windows/win32/api/processenv/nf-processenv-getenvironmentvariablew)
#[doc(alias = "GetEnvironmentVariableW")]
fn get_var(name: &[u16], buf: &mut [u16]) -> Option<usize> {
    let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    // An empty value also gives 0, and leaves the last error as it was.
    // SAFETY: takes a number.
    unsafe { SetLastError(0) };
    // SAFETY: `name` is NUL-terminated; the call writes at most `size`
    // units into `buf`, which is borrowed for the call.
    let n = unsafe { GetEnvironmentVariableW(name.as_ptr(), buf.as_mut_ptr(), size) };
    // SAFETY: takes nothing; the error of the call above on this thread.
    if n == 0 && unsafe { GetLastError() } == ERROR_ENVVAR_NOT_FOUND {
        return None;
    }
    Some(n as usize)
}

/// Takes the variable `name` out of the environment: `copy` is given its
/// value as UTF-8 (an unpaired surrogate of the UTF-16 value as its
/// three-byte WTF-8 form, which is no UTF-8: the caller's check of the
/// text rejects it); if `copy` succeeds, the variable is removed. `None`
/// if the variable is not set (or the scratch memory cannot be had:
/// nothing was read then); `Some(Err)` from `copy` leaves it as it was.
///
/// # Safety
/// As for [`std::env::remove_var`]: no other thread reads or writes the
/// environment meanwhile.
pub(crate) unsafe fn take_env<T, E>(
    name: &str,
    copy: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<Result<T, E>> {
    let name: Vec<u16> = name.encode_utf16().chain([0]).collect();
    // The size the value needs, with its NUL; 0 for an empty value.
    let needed = get_var(&name, &mut [])?.max(1);
    // Room for the UTF-16 value and its UTF-8 form (at most three bytes a
    // unit), one after the other.
    let utf8_at = (2 * needed).next_multiple_of(8);
    let mut scratch = Scratch::new(utf8_at + 3 * needed)?;
    let n = get_var(&name, scratch.units(0, needed))?;
    if n >= needed {
        // Changed since it was measured: the caller's contract is broken.
        return None;
    }
    let mut len = 0;
    for i in 0..n {
        let unit = scratch.units(0, n)[i];
        let next = scratch.units(0, n).get(i + 1).copied();
        let prev = i.checked_sub(1).map(|p| scratch.units(0, n)[p]);
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        let c = if high && next.is_some_and(|u| (0xDC00..0xE000).contains(&u)) {
            char::decode_utf16([unit, next.unwrap_or(0)])
                .next()
                .and_then(Result::ok)
        } else if low && prev.is_some_and(|u| (0xD800..0xDC00).contains(&u)) {
            // The second half of a pair, encoded with the first.
            continue;
        } else {
            char::from_u32(u32::from(unit))
        };
        let out = scratch.bytes(utf8_at + len, 4.min(3 * needed - len));
        len += match c {
            Some(c) => c.encode_utf8(out).len(),
            None => {
                // An unpaired surrogate: its three-byte generalised UTF-8.
                let [hi, lo] = unit.to_be_bytes();
                out[0] = 0xE0 | hi >> 4;
                out[1] = 0x80 | (hi & 0x0F) << 2 | lo >> 6;
                out[2] = 0x80 | (lo & 0x3F);
                3
            }
        };
    }
    let copied = match copy(scratch.bytes(utf8_at, len)) {
        Ok(copied) => copied,
        Err(e) => return Some(Err(e)),
    };
    // SAFETY: `name` is NUL-terminated; a null value removes the variable.
    unsafe { SetEnvironmentVariableW(name.as_ptr(), std::ptr::null()) };
    drop(scratch);
    Some(Ok(copied))
}
