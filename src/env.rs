//! Taking a secret out of the environment: copied straight from the
//! process's environment block into locked memory, then removed from the
//! block whole (what `/proc/PID/environ` shows) and from `environ`.
//!
//! Unsafe here is limited to reading and rewriting the C `environ` array
//! and the environment block, under the contract of
//! [`std::env::remove_var`] and a little more (see `from_env`).
#![allow(unsafe_code)]

use std::ffi::CStr;

use crate::canary::wipe_bytes;
use crate::error::Error;
use crate::os;
use crate::string::LockedString;

impl LockedString {
    /// Moves the environment variable `name` into a new locked string: its
    /// value is copied from the environment block straight into locked
    /// memory (never into an ordinary `String`), then the variable is
    /// removed, and its whole entry (`NAME=value`) is taken out of the
    /// environment block that `/proc/PID/environ` shows.
    ///
    /// # What `/proc/PID/environ` shows afterwards
    ///
    /// The entries after it in the block are moved down over it (with the
    /// `environ` pointers to them) and the bytes freed at the end are
    /// zeroed; then the kernel is asked to end the block there
    /// (`prctl(PR_SET_MM, PR_SET_MM_ENV_END)` with `CAP_SYS_RESOURCE`;
    /// without it, `PR_SET_MM_MAP`, which needs no capability but is used
    /// only while the calling thread is the process's only one, since it
    /// rewrites the whole memory layout record, `brk` included).
    ///
    /// - Called before other threads start (as recommended below), or with
    ///   `CAP_SYS_RESOURCE`: `/proc/PID/environ` is exactly the other
    ///   entries, and `env_end` in `/proc/PID/stat` moved down. What still
    ///   tells the entry's length, to whoever may read those files: the
    ///   executable's path, which execve(2) put right after the block,
    ///   stays where it was, so `AT_EXECFN` in `/proc/PID/auxv` lies that
    ///   many bytes past `env_end`.
    /// - With other threads running and without `CAP_SYS_RESOURCE` (or a
    ///   kernel without `CONFIG_CHECKPOINT_RESTORE`): the block keeps its
    ///   size, so `/proc/PID/environ` shows the other entries followed by
    ///   as many zero bytes as the entry had: the length is visible.
    ///
    /// (`tests/env_block.rs` shows both, the first without
    /// `CAP_SYS_RESOURCE`; the `PR_SET_MM_ENV_END` path is not tested here,
    /// where even root lacks that capability.) Without `/proc`, the value
    /// is overwritten with zeros in place, as a value set after start-up
    /// (outside the block, on the heap) always is.
    ///
    /// ```
    /// // SAFETY: no other thread reads or writes the environment meanwhile.
    /// unsafe { std::env::set_var("DOC_API_TOKEN", "t0ken") };
    /// // SAFETY: as above.
    /// let token = unsafe { lockedmem::LockedString::from_env("DOC_API_TOKEN") }?;
    /// assert_eq!(&*token, "t0ken");
    /// assert!(std::env::var_os("DOC_API_TOKEN").is_none());
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// Copies the crate cannot reach remain: a parent process (a shell, a
    /// service manager) that set the variable keeps its own, and a value set
    /// with `set_var` after start-up may have left copies in freed heap
    /// memory.
    ///
    /// # Safety
    /// As for [`std::env::remove_var`]: no other thread may read or write
    /// the environment while this runs, except through `std::env`'s own
    /// functions (which take its lock) — and this function reads the C
    /// `environ` array directly, so not even those may run concurrently.
    /// Call it early in `main`, before other threads start. Every entry of
    /// the variable must be writable memory: a string some C code added
    /// with putenv(3) from read-only memory (a literal) would fault.
    /// Entries of the environment block move: a pointer that C code got
    /// from getenv(3) earlier and still uses may then point at another
    /// variable's text (Rust's `std::env` copies, so Rust code is not
    /// affected).
    ///
    /// # Errors
    /// [`Error::EnvVarNotSet`]; [`Error::InvalidUtf8`] (the variable is
    /// wiped and removed all the same); what making the memory can return
    /// (the variable is then left as it was).
    pub unsafe fn from_env(name: &str) -> Result<LockedString, Error> {
        let not_set = || Error::EnvVarNotSet {
            name: name.to_owned(),
        };
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(not_set());
        }
        // SAFETY: the caller's contract: nobody changes the environment
        // while we read it.
        let values = unsafe { find_all(name.as_bytes()) };
        // The first entry is what getenv(3) and `std::env` would give.
        let Some(value) = values.first() else {
            return Err(not_set());
        };
        // Copy into locked memory before anything is wiped: if this fails,
        // the variable is left as it was.
        let mut bytes = crate::vec::LockedVec::<u8>::with_capacity(value.to_bytes().len())?;
        bytes.try_extend_from_slice(value.to_bytes())?;
        // Where the kernel's record of the initial block is readable, the
        // entries in it are removed whole (below); the others (set after
        // start-up, on the heap) and, without that record, all of them
        // have their values wiped in place.
        let block = os::env_block().ok();
        let in_block = |v: &&CStr| block.is_some_and(|(s, e)| (s..e).contains(&v.as_ptr().addr()));
        for value in values.iter().filter(|v| !in_block(v)) {
            let at = value.as_ptr().cast_mut().cast::<u8>();
            // SAFETY: the value's bytes, which libc keeps writable (`setenv`
            // strings on the heap, the initial block on the stack; see
            // `# Safety` for `putenv`); nobody reads them meanwhile (the
            // caller's contract).
            unsafe { wipe_bytes(at, value.to_bytes().len()) };
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
        LockedString::from_utf8(bytes)
    }
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
/// block `start..end` ([`os::env_block`]), the bytes `/proc/PID/environ`
/// shows: the entries after each are moved down over it (and the `environ`
/// pointers to them moved with them), the bytes freed at the end are
/// zeroed, so that every byte the entries had is overwritten, and the block
/// is shrunk to what remains where the kernel allows
/// ([`os::shrink_env_block`]).
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
    unsafe { wipe_bytes(base.wrapping_add(to), len - to) };
    // SAFETY: the caller's contract.
    unsafe { move_pointers(start, end, &entries) };
    if os::shrink_env_block(start + to).is_ok() {
        Block::Shrunk
    } else {
        Block::ZeroTail
    }
}

/// Points each `environ` entry that points into the block
/// `start..end` at the same text after the move `entries` describe.
///
/// # Safety
/// As [`remove_from_block`]'s.
unsafe fn move_pointers(start: usize, end: usize, entries: &[(usize, usize, Option<usize>)]) {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: libc's array of entries, ended by a null pointer (or itself
    // null); nobody changes it meanwhile (the caller's contract).
    let mut slot = unsafe { environ };
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
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is libc's array of `NAME=value` C strings, ended by
    // a null pointer (or itself null); the caller's contract keeps it still.
    let mut entry = unsafe { environ };
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
