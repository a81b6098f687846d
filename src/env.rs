//! Taking a secret out of the environment: copied straight from the
//! process's environment into locked memory, then removed from it
//! (`os::take_env` does the platform's part).
//!
//! Unsafe here is only `from_env`'s own contract, forwarded to
//! `os::take_env`.
#![allow(unsafe_code)]

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
        // Copied into locked memory before anything is wiped: if that
        // fails, the variable is left as it was.
        let copy = |value: &[u8]| -> Result<crate::vec::LockedVec<u8>, Error> {
            let mut bytes = crate::vec::LockedVec::<u8>::with_capacity(value.len())?;
            bytes.try_extend_from_slice(value)?;
            Ok(bytes)
        };
        // SAFETY: the caller's contract is `os::take_env`'s.
        let bytes = unsafe { os::take_env(name, copy) }.ok_or_else(not_set)??;
        LockedString::from_utf8(bytes)
    }
}
