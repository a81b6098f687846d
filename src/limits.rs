//! `RLIMIT_MEMLOCK`: reading the limit, counting the bytes this crate has
//! locked, and turning a refused lock into [`Error::MemlockLimit`].
//!
//! The crate only ever reads the limit. Raising it is the user's decision
//! (`ulimit -l`, `LimitMEMLOCK=`, `--ulimit memlock=`), never the library's.
#![forbid(unsafe_code)]

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::sys;

/// Bytes this crate currently holds locked, process-wide.
static LOCKED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of memory this crate currently holds mlocked, across all threads.
///
/// It counts whole pages: a 32-byte box locks one 4 KiB page. Boxes that
/// [`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort) could not lock
/// are not counted. The kernel's own view of the same thing, for the whole
/// process, is `VmLck` in `/proc/self/status`.
///
/// In a child made by `fork(2)` the figure starts as the parent's (memory
/// locks are not inherited, but the counter is plain memory); it falls as the
/// inherited boxes are dropped.
///
/// ```
/// let before = lockedbox::locked_bytes();
/// let key = lockedbox::LockedBox::<[u8; 32]>::new_zeroed()?;
/// assert!(lockedbox::locked_bytes() >= before + 4096);
/// drop(key);
/// # Ok::<(), lockedbox::Error>(())
/// ```
pub fn locked_bytes() -> usize {
    LOCKED.load(Ordering::Relaxed)
}

pub(crate) fn add_locked(bytes: usize) {
    LOCKED.fetch_add(bytes, Ordering::Relaxed);
}

pub(crate) fn sub_locked(bytes: usize) {
    LOCKED.fetch_sub(bytes, Ordering::Relaxed);
}

/// The process's `RLIMIT_MEMLOCK`, in bytes; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemlockLimit {
    /// The soft limit, which the kernel enforces.
    pub soft: Option<u64>,
    /// The hard limit, up to which an unprivileged process may raise the soft one.
    pub hard: Option<u64>,
}

/// Reads `RLIMIT_MEMLOCK`.
///
/// A process with `CAP_IPC_LOCK` (root, usually) is not held to it.
pub fn memlock_limit() -> MemlockLimit {
    let (soft, hard) = sys::memlock_limit();
    MemlockLimit { soft, hard }
}

/// Whether pages of `len` bytes could ever be locked here: a lock larger than
/// physical memory cannot succeed, and with `CAP_IPC_LOCK` trying it would
/// only wake the OOM killer.
pub(crate) fn lockable(len: usize) -> bool {
    static RAM: OnceLock<u64> = OnceLock::new();
    let ram = *RAM.get_or_init(sys::physical_memory);
    u64::try_from(len).is_ok_and(|len| len <= ram)
}

/// Whether an `mlock` error is the kernel enforcing `RLIMIT_MEMLOCK`:
/// `ENOMEM` when the lock would exceed a nonzero limit, `EPERM` when the limit
/// is zero and the caller lacks `CAP_IPC_LOCK` (mlock(2), ERRORS).
pub(crate) fn is_limit_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EPERM))
}

/// The error for an `mlock` of `requested` bytes that failed with `e`.
pub(crate) fn lock_error(requested: usize, e: io::Error) -> Error {
    if is_limit_error(&e) {
        let limit = memlock_limit();
        Error::MemlockLimit {
            requested,
            soft_limit: limit.soft,
            hard_limit: limit.hard,
            locked_by_crate: locked_bytes(),
        }
    } else {
        Error::os("mlock", requested, e)
    }
}
