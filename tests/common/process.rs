//! Process-level helpers: dropping privileges in a child, and forking a
//! grandchild that reports what it saw through its exit status.
#![allow(dead_code, unreachable_pub)]

#[cfg(target_os = "linux")]
use rustix::process::{Resource, Rlimit, setrlimit};
#[cfg(target_os = "linux")]
use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

/// Drops CAP_IPC_LOCK from this thread (the one that will call mlock) and
/// sets RLIMIT_MEMLOCK to `limit` bytes, soft and hard. Only for a child
/// process: the change cannot be undone. Linux only (capabilities).
#[cfg(target_os = "linux")]
pub fn become_unprivileged(limit: u64) {
    let mut caps = capabilities(None).expect("capget");
    caps.effective.remove(CapabilitySet::IPC_LOCK);
    caps.permitted.remove(CapabilitySet::IPC_LOCK);
    caps.inheritable.remove(CapabilitySet::IPC_LOCK);
    set_capabilities(None, caps).expect("capset");
    assert_eq!(lockedmem::Host::probe().lock_exempt, Some(false));
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .expect("setrlimit");
}

/// What a fork child did.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Seen {
    /// It exited with this status (see `classify`).
    Exited(i32),
    /// A signal killed it.
    Signal(i32),
}

/// The status a fork child of [`in_fork`] exits with when `f` panics: no
/// caller expects it. (Without the catch, the panic would unwind out of the
/// child's copy of the test and end its only thread, and a process whose
/// last thread ends exits 0, which a test could read as success.)
pub const PANICKED: i32 = 101;

/// Forks; the child runs `f` and `_exit`s with its result, or with
/// [`PANICKED`] if `f` panics.
pub fn in_fork(f: impl FnOnce() -> i32) -> Seen {
    // SAFETY: fork in a process whose only other thread (libtest's main
    // thread) is blocked waiting for this one; the child runs `f`, which
    // only reads memory, drops boxes and makes system calls, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(PANICKED);
        // SAFETY: `_exit` ends the child without running the parent's
        // atexit handlers or flushing its copied stdio buffers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just made.
    let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(r, pid);
    if libc::WIFSIGNALED(status) {
        Seen::Signal(libc::WTERMSIG(status))
    } else {
        Seen::Exited(libc::WEXITSTATUS(status))
    }
}

/// Asserts that the calling thread has no `CAP_IPC_LOCK`, in a thread of a
/// child that called `become_unprivileged` before spawning it (threads take
/// the capabilities of the thread that spawned them): `RLIMIT_MEMLOCK`
/// applies to its locks too. Linux only (capabilities).
#[cfg(target_os = "linux")]
pub fn assert_no_cap_ipc_lock() {
    let caps = capabilities(None).expect("capget");
    assert!(
        !caps.effective.contains(CapabilitySet::IPC_LOCK),
        "expected a thread spawned after become_unprivileged to lack CAP_IPC_LOCK"
    );
}

/// Reads `len` bytes at `addr` (volatile, byte by byte): 10 if all are zero,
/// 11 if all are `secret`, 12 otherwise; 13, which no caller expects, if
/// `len` is 0 or `secret` is 0 (no bytes, or a secret of zeros, would read
/// as "wiped" and as "the secret" at once). Runs in fork children, so it
/// answers instead of panicking.
pub fn classify(addr: usize, len: usize, secret: u8) -> i32 {
    if len == 0 || secret == 0 {
        return 13;
    }
    let bytes: Vec<u8> = (0..len)
        .map(|i| {
            let p = std::ptr::with_exposed_provenance::<u8>(addr + i);
            // SAFETY: `addr..addr + len` held a box's value in the parent;
            // whether it is readable here is what the caller finds out.
            unsafe { p.read_volatile() }
        })
        .collect();
    if bytes.iter().all(|&b| b == 0) {
        10
    } else if bytes.iter().all(|&b| b == secret) {
        11
    } else {
        12
    }
}

/// In a fork child, takes ownership of the child's copy of `value`, so that
/// the child can drop it while the parent keeps using its own.
pub fn the_childs_copy<T>(value: &T) -> T {
    // SAFETY: called only in the fork child, which `_exit`s after its
    // closure returns and so never uses or drops its original of `value`:
    // the copy is the only owner in this address space.
    unsafe { std::ptr::read(value) }
}
