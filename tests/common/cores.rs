//! Core files a child process writes, read back by its test: where they
//! go (a directory per test, the same path in parent and child), letting a
//! child write one, finding it, and the files a child hands its secrets
//! over in (written with write(2) from the buffer itself, so no copy is
//! made on the way).
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::child;

/// Where the cores go, if set (else a directory under the temporary one
/// named after the test process).
pub const DIR_VAR: &str = "LOCKEDMEM_CORE_DIR";

/// Writes `bytes` to a new file with write(2) from the buffer itself.
pub fn dump_raw(path: &Path, bytes: &[u8]) {
    let file = fs::File::create(path).unwrap();
    let n = rustix::io::write(&file, bytes).unwrap();
    assert_eq!(n, bytes.len());
}

pub fn random_into(buf: &mut [u8]) {
    let len = buf.len();
    let n = rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty()).unwrap();
    assert_eq!(n, len);
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The directory `test`'s child writes its core and files into: the same
/// path in the parent (the test process) and in its child, which names the
/// parent by its process ID.
pub fn core_dir(test: &str) -> PathBuf {
    let test_process = if child::is_child() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    let base = std::env::var_os(DIR_VAR).map_or_else(
        || std::env::temp_dir().join(format!("lockedmem-core-{test_process}")),
        PathBuf::from,
    );
    base.join(test)
}

/// Removes `dir`, and the directory of the test process's cores if it is
/// empty then (the other test may still be using it).
pub fn remove(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    if let Some(base) = dir.parent() {
        let _ = fs::remove_dir(base);
    }
}

/// The core pattern, or `None` (said, and a failure in CI) where cores go
/// to a helper (systemd-coredump, apport) that this test cannot read back.
pub fn core_pattern() -> Option<String> {
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if std::env::var_os(DIR_VAR).is_none() && pattern.starts_with('|') {
        super::skip(&format!(
            "core_pattern pipes cores to {pattern:?}; cannot inspect a core here"
        ));
        return None;
    }
    Some(pattern)
}

/// In the child: moves into `dir`, lets the process write a core as large
/// as the hard limit allows, and makes sure anonymous private memory goes
/// into it (`coredump_filter` bit 0, on by default), so that what keeps a
/// box out is the box's own advice and nothing else.
pub fn allow_cores(dir: &Path) {
    std::env::set_current_dir(dir).unwrap();
    let hard = getrlimit(Resource::Core).maximum;
    assert_ne!(hard, Some(0), "the hard RLIMIT_CORE allows no core");
    setrlimit(
        Resource::Core,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .unwrap();
    fs::write("/proc/self/coredump_filter", "0x33").unwrap();
}

/// The core file the child left in `dir`, if any.
pub fn core_file(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
}
