//! Taking a variable out of the environment, on Unix: the C `environ`
//! array and the environment block the kernel copied at execve(2), which
//! `/proc/PID/environ` shows.
//!
//! Unsafe here is limited to reading and rewriting the C `environ` array
//! and the environment block, under the contract of
//! [`std::env::remove_var`] and a little more (see [`take_env`]).
#![allow(unsafe_code)]

use std::ffi::CStr;

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
use super::bsd::{env_block, shrink_env_block};
use super::cpu::zero_bytes;
#[cfg(target_os = "linux")]
use super::linux::{env_block, shrink_env_block};

/// Takes the variable `name` out of the environment: `copy` is given the
/// value of its first entry (what getenv(3) gives); if it succeeds, every
/// entry's value is wiped, the variable removed, and its entries taken out
/// of the initial environment block whole (the entries after them moved
/// down, the `environ` pointers with them, the freed end zeroed, and the
/// block shrunk where the kernel allows). `None` if the variable is not
/// set; `Some(Err)` from `copy` leaves the variable as it was.
///
/// # Safety
/// As for [`std::env::remove_var`]: no other thread may read or write the
/// environment while this runs (not even through `std::env`, since this
/// reads the C `environ` array directly). Every entry of the variable is
/// writable memory. C code that kept a pointer from getenv(3) into the
/// block may find another variable's text there afterwards.
pub(crate) unsafe fn take_env<T, E>(
    name: &str,
    copy: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<Result<T, E>> {
    // SAFETY: the caller's contract: nobody changes the environment while
    // we read it.
    let values = unsafe { find_all(name.as_bytes()) };
    let copied = match copy(values.first()?.to_bytes()) {
        Ok(copied) => copied,
        Err(e) => return Some(Err(e)),
    };
    // Where the kernel's record of the initial block is readable, the
    // entries in it are removed whole (below); the others (set after
    // start-up, on the heap) and, without that record, all of them have
    // their values wiped in place.
    let block = env_block().ok();
    let in_block = |v: &&CStr| block.is_some_and(|(s, e)| (s..e).contains(&v.as_ptr().addr()));
    for value in values.iter().filter(|v| !in_block(v)) {
        let at = value.as_ptr().cast_mut().cast::<u8>();
        // SAFETY: the value's bytes, which libc keeps writable (`setenv`
        // strings on the heap, the initial block on the stack; see
        // `# Safety` for `putenv`); nobody reads them meanwhile (the
        // caller's contract).
        unsafe { zero_bytes(at, value.to_bytes().len()) };
    }
    drop(values);
    // SAFETY: the caller's contract is `remove_var`'s.
    unsafe { std::env::remove_var(name) };
    if let Some((start, end)) = block {
        // SAFETY: the caller's contract: nobody reads or writes the
        // environment meanwhile, and no reference into the block is
        // alive (`values` is gone).
        unsafe { remove_from_block(start, end, name.as_bytes()) };
    }
    Some(Ok(copied))
}

/// What `/proc/PID/environ` shows after [`remove_from_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// No entry was in the block, or the block could not be found.
    Untouched,
    /// The entries were removed and the block shrunk: nothing tells their
    /// length.
    Shrunk,
    /// The entries were removed, and their bytes are zeros at the end of a
    /// block that could not be shrunk.
    ZeroTail,
}

/// Removes every `name=` entry from the process's initial environment
/// block `start..end` ([`env_block`]), the bytes `/proc/PID/environ`
/// shows: the entries after each are moved down over it (and the `environ`
/// pointers to them moved with them), the bytes freed at the end are
/// zeroed, so that every byte the entries had is overwritten, and the block
/// is shrunk to what remains where the kernel allows
/// ([`shrink_env_block`]).
///
/// # Safety
/// Nobody reads or writes the environment while this runs, no reference
/// into the block is alive, and every pointer into the block that is used
/// later is one of `environ`'s (C code that kept a pointer from getenv(3)
/// into it would find another variable's text there).
unsafe fn remove_from_block(start: usize, end: usize, name: &[u8]) -> Block {
    let len = end - start;
    let base = std::ptr::with_exposed_provenance_mut::<u8>(start);
    // SAFETY: the kernel's own record of the block it copied the
    // environment into at execve(2), on this process's stack, which stays
    // mapped read-write; nobody else uses it meanwhile (the caller's
    // contract).
    let block = unsafe { std::slice::from_raw_parts_mut(base, len) };
    // The entries, each with its terminating NUL: (old offset, length,
    // new offset if kept).
    let mut entries = Vec::new();
    let mut removed = false;
    let mut at = 0;
    let mut to = 0;
    while at < len {
        let n = block[at..]
            .iter()
            .position(|&b| b == 0)
            .map_or(len - at, |i| i + 1);
        let entry = &block[at..at + n];
        let gone = entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'=';
        if gone {
            entries.push((at, n, None));
            removed = true;
        } else {
            entries.push((at, n, Some(to)));
            to += n;
        }
        at += n;
    }
    if !removed {
        return Block::Untouched;
    }
    for &(from, n, new) in &entries {
        if let Some(new) = new {
            block.copy_within(from..from + n, new);
        }
    }
    // SAFETY: the end of the block, inside it (`to <= len`).
    unsafe { zero_bytes(base.wrapping_add(to), len - to) };
    // SAFETY: the caller's contract.
    unsafe { move_pointers(start, end, &entries) };
    if shrink_env_block(start + to).is_ok() {
        Block::Shrunk
    } else {
        Block::ZeroTail
    }
}

/// The C library's `environ`, the array of the environment's entries:
/// read through `_NSGetEnviron()` on macOS, the way environ(7) gives there
/// (the `environ` symbol is not available to a shared library), and as the
/// `environ` symbol elsewhere.
///
/// # References
/// - [environ(7) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man7/environ.7.html)
fn environ() -> *mut *mut libc::c_char {
    #[cfg(target_os = "macos")]
    {
        // SAFETY: takes nothing and returns the address of the process's
        // `environ` variable, valid for the process's life.
        let at = unsafe { libc::_NSGetEnviron() };
        // SAFETY: that address, read once.
        unsafe { *at }
    }
    #[cfg(not(target_os = "macos"))]
    {
        unsafe extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: the C library's variable, read once (a copy of the
        // pointer; no reference to the static is made).
        unsafe { environ }
    }
}

/// Points each `environ` entry that points into the block
/// `start..end` at the same text after the move `entries` describe.
///
/// # Safety
/// As [`remove_from_block`]'s.
unsafe fn move_pointers(start: usize, end: usize, entries: &[(usize, usize, Option<usize>)]) {
    // libc's array of entries, ended by a null pointer (or itself null);
    // nobody changes it meanwhile (the caller's contract).
    let mut slot = environ();
    if slot.is_null() {
        return;
    }
    loop {
        // SAFETY: inside the array, which ends with a null pointer.
        let p = unsafe { *slot };
        if p.is_null() {
            return;
        }
        let addr = p.addr();
        if (start..end).contains(&addr) {
            let off = addr - start;
            let i = entries.partition_point(|&(from, _, _)| from <= off) - 1;
            if let (from, _, Some(new)) = entries[i] {
                // SAFETY: the array's slot, writable as putenv(3) writes
                // it; the new pointer keeps the block's provenance.
                unsafe { *slot = p.wrapping_sub(off).wrapping_add(new + (off - from)) };
            }
        }
        // SAFETY: not at the end yet, so the next slot is in the array.
        slot = unsafe { slot.add(1) };
    }
}

/// The values of every `name=` entry of the C environment (usually one;
/// `execve` accepts duplicates), as borrowed C strings, in order.
///
/// # Safety
/// Nobody changes the environment while the results are used.
unsafe fn find_all(name: &[u8]) -> Vec<&'static CStr> {
    let mut found = Vec::new();
    // libc's array of `NAME=value` C strings, ended by a null pointer (or
    // itself null); the caller's contract keeps it still.
    let mut entry = environ().cast::<*const libc::c_char>().cast_const();
    if entry.is_null() {
        return found;
    }
    loop {
        // SAFETY: inside the array, which ends with a null pointer.
        let p = unsafe { *entry };
        if p.is_null() {
            return found;
        }
        // SAFETY: each entry is a valid C string that lives as long as the
        // environment is not changed (the caller's contract).
        let s: &'static CStr = unsafe { CStr::from_ptr(p) };
        let bytes = s.to_bytes();
        if bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'=' {
            // SAFETY: just after `=`, inside the same C string.
            let value = unsafe { p.add(name.len() + 1) };
            // SAFETY: the value runs to the entry's terminating NUL.
            found.push(unsafe { CStr::from_ptr(value) });
        }
        // SAFETY: not at the end yet, so the next slot is inside the array.
        entry = unsafe { entry.add(1) };
    }
}
