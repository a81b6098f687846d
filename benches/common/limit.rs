//! The lock limit a bench's child runs under (Unix): shared by the benches
//! that measure the crate at a user machine's 64 KiB limit.

use rustix::process::{Resource, Rlimit, setrlimit};
#[cfg(target_os = "linux")]
use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

/// Drops CAP_IPC_LOCK (Linux; no privilege exempts a process from the
/// limit elsewhere) and sets RLIMIT_MEMLOCK to 64 KiB, for this process
/// only. Call it from the process's one thread: capabilities are per
/// thread.
pub(crate) fn limit_to_64_kib() {
    #[cfg(target_os = "linux")]
    {
        let mut caps = capabilities(None).expect("capget");
        for set in [
            &mut caps.effective,
            &mut caps.permitted,
            &mut caps.inheritable,
        ] {
            set.remove(CapabilitySet::IPC_LOCK);
        }
        set_capabilities(None, caps).expect("capset");
    }
    let limit = Some(64 * 1024);
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: limit,
            maximum: limit,
        },
    )
    .expect("setrlimit");
}
