//! What this host offers: the limits and kernel features a box relies on.
#![forbid(unsafe_code)]

use std::io;

use crate::limits::{self, MemlockLimit};
use crate::os::{self, ForkView};

/// A report of what this host and process offer, for diagnostics (the
/// `doctor` example prints one) and for choosing options at start-up.
///
/// ```
/// let host = lockedmem::Host::probe();
/// if !host.wipe_on_fork {
///     eprintln!("this kernel cannot wipe secrets in fork children");
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Host {
    /// The system page size in bytes.
    pub page_size: usize,
    /// `RLIMIT_MEMLOCK` of this process.
    pub memlock: MemlockLimit,
    /// Whether the calling thread has `CAP_IPC_LOCK`, which lifts
    /// `RLIMIT_MEMLOCK` (`None` if capget(2) failed).
    pub cap_ipc_lock: Option<bool>,
    /// Whether `MADV_DONTDUMP` works (Linux 3.4 and later).
    pub dont_dump: bool,
    /// Whether `MADV_WIPEONFORK` works (Linux 4.14 and later).
    pub wipe_on_fork: bool,
    /// Whether `MADV_DONTFORK` works (Linux 2.6.16 and later).
    pub dont_fork: bool,
    /// Whether memfd_secret(2) works: `Ok(false)` if the kernel lacks the
    /// call, an error if it has it but refuses (booted without secretmem).
    pub memfd_secret: Result<bool, io::ErrorKind>,
    /// `RLIMIT_CORE` soft limit in bytes (`None` for unlimited); 0 means this
    /// process writes no core dump at all.
    pub core_limit: Option<u64>,
    /// Whether the process is dumpable (`PR_GET_DUMPABLE`); a non-dumpable
    /// process writes no core and cannot be ptraced by its own user.
    pub dumpable: Option<bool>,
    /// Bytes this crate holds locked now.
    pub locked_by_crate: usize,
}

impl Host {
    /// Probes the host. Makes and removes one scratch page to try each
    /// `madvise` advice, and opens and closes one memfd_secret descriptor.
    pub fn probe() -> Host {
        let page_size = os::page_size();
        Host {
            page_size,
            memlock: limits::memlock_limit(),
            cap_ipc_lock: os::has_cap_ipc_lock().ok(),
            dont_dump: os::can_exclude_from_dumps(),
            wipe_on_fork: os::can_set_fork_view(ForkView::Zeros),
            dont_fork: os::can_set_fork_view(ForkView::Absent),
            memfd_secret: os::secretmem_available().map_err(|e| e.kind()),
            core_limit: os::core_limit().0,
            dumpable: os::dumpable().ok(),
            locked_by_crate: crate::alloc::locked_bytes(),
        }
    }
}
