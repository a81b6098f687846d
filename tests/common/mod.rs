//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod child;
#[cfg(target_os = "linux")]
pub mod cores;
// What reads Linux's /proc, traces with ptrace(2) or strace(1), installs
// seccomp filters, drops Linux capabilities or makes memfd_secret(2)
// memory: Linux only, as are the tests that use it (each says so with
// `#![cfg(target_os = "linux")]`).
#[cfg(target_os = "linux")]
pub mod memscan;
#[cfg(unix)]
pub mod process;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(unix)]
pub mod promises;
#[cfg(target_os = "linux")]
pub mod seccomp;
#[cfg(target_os = "linux")]
pub mod secretmem;
pub mod seeded;
#[cfg(target_os = "linux")]
pub mod strace;
#[cfg(target_os = "linux")]
pub mod traced;
#[cfg(windows)]
pub mod windows;

#[cfg(unix)]
pub use process::{Seen, classify, in_fork, the_childs_copy};
#[cfg(target_os = "linux")]
pub use process::{assert_no_cap_ipc_lock, become_unprivileged};
#[cfg(target_os = "linux")]
pub use promises::{
    assert_advised, assert_default_advice, crate_mapping_count, crate_mappings_since,
};
#[cfg(unix)]
pub use promises::{assert_wipe_unsupported, default_fork, other_fork, promises};

/// Options for a packed box (`Isolation::Packed`), the rest as default.
pub fn packed() -> lockedmem::Options {
    lockedmem::Options::new().isolation(lockedmem::Isolation::Packed)
}

/// Growth of a count of bytes (such as `locked_bytes()`) since `base`;
/// negative if it fell.
pub fn bytes_delta(now: usize, base: usize) -> i64 {
    i64::try_from(now).expect("a count that fits an i64")
        - i64::try_from(base).expect("a count that fits an i64")
}

/// Growth of a size in kB (such as `VmLck`) since `base_kb`, in bytes;
/// negative if it fell.
pub fn kb_delta_bytes(now_kb: u64, base_kb: u64) -> i64 {
    (i64::try_from(now_kb).expect("a size that fits an i64")
        - i64::try_from(base_kb).expect("a size that fits an i64"))
        * 1024
}

/// The address one past the last byte of `value`.
pub fn end_of<T: ?Sized>(value: &T) -> usize {
    (value as *const T).cast::<u8>() as usize + std::mem::size_of_val(value)
}

/// The address of the first byte of `value`.
pub fn start_of<T: ?Sized>(value: &T) -> usize {
    (value as *const T).cast::<u8>() as usize
}

/// For a test that cannot run on this host: outside CI it says so on stderr
/// (`SKIPPED: ...`) and the caller returns; in CI (the `CI` environment
/// variable is set, as CI services set it) a skipped proof is a failure, so
/// it panics instead.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "expected this test to run in CI (the CI environment variable is set), but it cannot: \
         {reason}"
    );
    eprintln!("SKIPPED: {reason}");
}

#[cfg(unix)]
pub fn page_size() -> usize {
    rustix::param::page_size()
}

#[cfg(windows)]
pub fn page_size() -> usize {
    windows::page_size()
}

/// The value ending at `end` (one past its last byte) sits in pages that are
/// locked (VmFlags `lo`) and advised as the platform promises for the
/// default options (`promises::assert_default_advice`: `dd` where dumps can
/// be excluded, `wf` or `dc` for the default fork policy), with a
/// `PROT_NONE` page right after it.
#[cfg(target_os = "linux")]
#[track_caller]
pub fn assert_locked_advised_guarded(end: usize) {
    let vma = procfs::vma_at(end - 1).expect("the value is mapped");
    assert!(vma.has("lo"), "lo missing from {:?}", vma.flags);
    assert_default_advice(&vma);
    assert_eq!(
        procfs::perms_at(end).as_deref(),
        Some("---p"),
        "trailing guard"
    );
}
