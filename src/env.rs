//! Taking a secret out of the environment: copied straight from the
//! process's environment block into locked memory, then overwritten there
//! (what `/proc/PID/environ` shows) and removed.
//!
//! Unsafe here is limited to reading the C `environ` array, and writing
//! zeros over the variable's value in it, under the same contract as
//! [`std::env::remove_var`].
#![allow(unsafe_code)]

use std::ffi::CStr;

use crate::canary::wipe_bytes;
use crate::error::Error;
use crate::string::LockedString;

impl LockedString {
    /// Moves the environment variable `name` into a new locked string: its
    /// value is copied from the environment block straight into locked
    /// memory (never into an ordinary `String`), then overwritten with
    /// zeros in the block (so `/proc/PID/environ` no longer shows it) and
    /// the variable is removed.
    ///
    /// ```
    /// // SAFETY: no other thread reads or writes the environment meanwhile.
    /// unsafe { std::env::set_var("DOC_API_TOKEN", "t0ken") };
    /// // SAFETY: as above.
    /// let token = unsafe { lockedbox::LockedString::from_env("DOC_API_TOKEN") }?;
    /// assert_eq!(&*token, "t0ken");
    /// assert!(std::env::var_os("DOC_API_TOKEN").is_none());
    /// # Ok::<(), lockedbox::Error>(())
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
        // Every entry of the name is wiped: `remove_var` drops them all
        // from the array, but their bytes would stay in the block.
        for value in values {
            let at = value.as_ptr().cast_mut().cast::<u8>();
            // SAFETY: the value's bytes in the environment block, which libc
            // keeps writable (the initial block is on the stack, `setenv`
            // strings on the heap; see `# Safety` for `putenv`); nobody reads
            // them meanwhile (the caller's contract).
            unsafe { wipe_bytes(at, value.to_bytes().len()) };
        }
        // SAFETY: the caller's contract is `remove_var`'s.
        unsafe { std::env::remove_var(name) };
        LockedString::from_utf8(bytes)
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
