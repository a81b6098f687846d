//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod child;
pub mod memscan;
pub mod process;
pub mod procfs;
pub mod seccomp;
pub mod traced;

pub use process::{Seen, become_unprivileged, classify, in_fork, the_childs_copy};

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

pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// The value ending at `end` (one past its last byte) sits in pages that are
/// locked, left out of core dumps and wiped in fork children (VmFlags `lo`,
/// `dd`, `wf`), with a `PROT_NONE` page right after it.
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
