//! `RLIMIT_MEMLOCK`: reading the limit, telling a refused lock from other
//! failures, and turning it into [`Error::MemlockLimit`].
//!
//! The crate only ever reads the limit. Raising it is the user's decision
//! (`ulimit -l`, `LimitMEMLOCK=`, `--ulimit memlock=`), never the library's.
//! The count of bytes the crate holds locked belongs to the allocator's
//! process generation (`alloc`), so that a fork(2) child starts from zero.
#![forbid(unsafe_code)]

use std::io;
use std::sync::OnceLock;

use crate::error::{Error, MemlockCall};
use crate::os;

/// The process's `RLIMIT_MEMLOCK`, in bytes; `None` means unlimited. On
/// FreeBSD each is capped by `vm.max_user_wired`, the system-wide limit
/// mlock(2) also enforces there; on macOS by the smaller of
/// `vm.user_wire_limit` and `vm.global_user_wire_limit`, the kernel's
/// per-task and system-wide caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemlockLimit {
    /// The soft limit, which the kernel enforces.
    pub soft: Option<u64>,
    /// The hard limit, up to which an unprivileged process may raise the soft one.
    pub hard: Option<u64>,
}

/// Reads `RLIMIT_MEMLOCK` (on FreeBSD and macOS, capped by the kernel's
/// wired-memory limits: see [`MemlockLimit`]).
///
/// On Linux a process with `CAP_IPC_LOCK` (root, usually) is not held to
/// it; on macOS and the BSDs no privilege exempts a process.
pub fn memlock_limit() -> MemlockLimit {
    let (soft, hard) = os::memlock_limit();
    MemlockLimit { soft, hard }
}

/// Whether `len` bytes fit in physical memory: a box larger than that can
/// never be locked, and unlocked it could only be backed by swap or the OOM
/// killer. The one check behind [`Error::TooLarge`] for size.
pub(crate) fn fits_in_ram(len: usize) -> bool {
    static RAM: OnceLock<u64> = OnceLock::new();
    let ram = *RAM.get_or_init(os::physical_memory);
    u64::try_from(len).is_ok_and(|len| len <= ram)
}

/// The error for a call the system refused on `len` bytes: `Unsupported`
/// where the mechanism is missing, `Os` otherwise (a refusal by the lock
/// limit is the caller's to report, with its count of locked bytes, by
/// [`lock_error`]).
pub(crate) fn refused(r: os::Refused, len: usize) -> Error {
    match r.why {
        os::Why::Unsupported => Error::Unsupported {
            call: r.call,
            source: r.source,
        },
        _ => Error::os(r.call, len, r.source),
    }
}

/// Whether an error from a lock (mlock(2), or the platform's) is the
/// system enforcing the lock limit (`RLIMIT_MEMLOCK`, or the working-set
/// quota).
pub(crate) fn is_limit_error(e: &io::Error) -> bool {
    os::trouble(e, true) == os::Trouble::LockLimit
}

/// The error for an `mlock` of `requested` bytes that failed with `e`, while
/// the crate held `locked_by_crate` bytes locked.
pub(crate) fn lock_error(requested: usize, locked_by_crate: usize, e: io::Error) -> Error {
    if is_limit_error(&e) {
        limit_error(requested, locked_by_crate)
    } else {
        Error::os(os::LOCK_CALL, requested, e)
    }
}

/// [`Error::MemlockLimit`] for a lock of `requested` bytes the limit
/// refused, while the crate held `locked_by_crate` bytes locked.
pub(crate) fn limit_error(requested: usize, locked_by_crate: usize) -> Error {
    let limit = memlock_limit();
    Error::MemlockLimit {
        call: MemlockCall::Secret,
        requested,
        soft_limit: limit.soft,
        hard_limit: limit.hard,
        locked_by_crate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_bounds_sizes() {
        assert!(fits_in_ram(4096));
        assert!(!fits_in_ram(usize::MAX));
    }

    #[test]
    fn limit_errors_are_the_platforms_lock_limit() {
        assert!(is_limit_error(&os::error_for(os::Trouble::LockLimit)));
        assert!(!is_limit_error(&os::error_for(os::Trouble::Other)));
        let e = lock_error(4096, 8192, os::error_for(os::Trouble::LockLimit));
        assert!(matches!(
            e,
            Error::MemlockLimit {
                call: MemlockCall::Secret,
                requested: 4096,
                locked_by_crate: 8192,
                ..
            }
        ));
    }
}
