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
/// if !host.fork_zeros {
///     eprintln!("this platform cannot wipe secrets in fork children");
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Host {
    /// The platform the crate was built for, and which mechanisms it uses:
    /// `"linux"`, `"linux (portable test mode)"`, `"freebsd"`, `"openbsd"`,
    /// `"macos"`, `"windows"`.
    pub platform: &'static str,
    /// The system page size in bytes.
    pub page_size: usize,
    /// The limit on locked memory: `RLIMIT_MEMLOCK` on Unix (on FreeBSD
    /// and macOS capped by the kernel's wired-memory limits, see
    /// [`MemlockLimit`]).
    pub memlock: MemlockLimit,
    /// Whether the calling thread is exempt from that limit (Linux:
    /// `CAP_IPC_LOCK`); `None` where that cannot be asked.
    pub lock_exempt: Option<bool>,
    /// Whether memory can be left out of core dumps (Linux
    /// `MADV_DONTDUMP`, FreeBSD `MADV_NOCORE`, OpenBSD `MAP_CONCEAL`,
    /// Windows Error Reporting's excluded blocks); never on macOS, which
    /// writes no core unless `RLIMIT_CORE` allows it
    /// ([`Hardening::no_core_dumps`](crate::Hardening::no_core_dumps)).
    pub dump_exclusion: bool,
    /// Whether a fork(2) child can be given zeros in place of a box (Linux
    /// `MADV_WIPEONFORK`, the BSDs' `INHERIT_ZERO`): `ForkPolicy::Wipe`.
    pub fork_zeros: bool,
    /// Whether a fork(2) child can be given nothing in place of a box
    /// (Linux `MADV_DONTFORK`, `INHERIT_NONE`): `ForkPolicy::Exclude`.
    pub fork_exclusion: bool,
    /// Whether memory out of the kernel's direct map can be made
    /// (memfd_secret(2), Linux only): `Ok(false)` if the system lacks the
    /// call, an error if it has it but refuses (booted without secretmem).
    pub secret_memory: Result<bool, io::ErrorKind>,
    /// `RLIMIT_CORE` soft limit in bytes (`None` for unlimited); 0 means this
    /// process writes no core dump at all.
    pub core_limit: Option<u64>,
    /// Whether other processes of the same user may attach to this one and
    /// read its memory, and it may dump core (Linux `PR_GET_DUMPABLE`,
    /// FreeBSD `PROC_TRACE_STATUS`); `None` where that cannot be asked
    /// (macOS, OpenBSD).
    pub inspectable: Option<bool>,
    /// Bytes this crate holds locked now.
    pub locked_by_crate: usize,
}

impl Host {
    /// Probes the host. Makes and removes scratch pages to try each
    /// mechanism, and opens and closes one secret-memory descriptor where
    /// the platform has them.
    pub fn probe() -> Host {
        let page_size = os::page_size();
        Host {
            platform: os::PLATFORM,
            page_size,
            memlock: limits::memlock_limit(),
            lock_exempt: os::has_cap_ipc_lock().ok(),
            dump_exclusion: os::can_exclude_from_dumps(),
            fork_zeros: os::can_set_fork_view(ForkView::Zeros),
            fork_exclusion: os::can_set_fork_view(ForkView::Absent),
            secret_memory: os::secretmem_available().map_err(|e| e.kind()),
            core_limit: os::core_limit().0,
            inspectable: os::dumpable().ok(),
            locked_by_crate: crate::alloc::locked_bytes(),
        }
    }
}
