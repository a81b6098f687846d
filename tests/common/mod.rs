//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod child;
// What reads Linux's /proc, forks, or drops Linux capabilities.
#[cfg(target_os = "linux")]
pub mod memscan;
#[cfg(target_os = "linux")]
pub mod process;
#[cfg(target_os = "linux")]
pub mod procfs;
#[cfg(target_os = "linux")]
pub mod seccomp;
#[cfg(target_os = "linux")]
pub mod secretmem;
#[cfg(target_os = "linux")]
pub mod traced;
#[cfg(windows)]
pub mod windows;

#[cfg(target_os = "linux")]
pub use process::{
    Seen, assert_no_cap_ipc_lock, become_unprivileged, classify, in_fork, the_childs_copy,
};

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
/// locked, left out of core dumps and wiped in fork children (VmFlags `lo`,
/// `dd`, `wf`), with a `PROT_NONE` page right after it.
#[cfg(target_os = "linux")]
pub fn assert_locked_dontdump_guarded(end: usize) {
    let vma = procfs::vma_at(end - 1).expect("the value is mapped");
    for flag in ["lo", "dd", "wf"] {
        assert!(vma.has(flag), "{flag} missing from {:?}", vma.flags);
    }
    assert_eq!(
        procfs::perms_at(end).as_deref(),
        Some("---p"),
        "trailing guard"
    );
}
