//! Counting a child's system calls with strace(1): the test binary re-runs
//! one test under `strace -f`, which writes the trace to a file.
//!
//! strace is required in CI (`LOCKEDMEM_REQUIRE_STRACE`, which `.ci/run`
//! sets): there a missing strace fails the test; elsewhere it is skipped
//! with a message (`super::skip`, itself a failure when `CI` is set).
#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output};

/// Runs test `test` of this binary again under `strace -f -e trace=calls`,
/// with `LOCKEDMEM_TEST_CHILD` set to `child` (what the test checks to
/// know it is the child); the child's output and the text of the trace.
/// `None` if strace is missing and not required (the test is skipped).
pub fn trace_child(test: &str, child: &str, calls: &str) -> Option<(Output, String)> {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("LOCKEDMEM_REQUIRE_STRACE").is_none(),
            "strace is required (LOCKEDMEM_REQUIRE_STRACE is set) but not installed"
        );
        super::skip("strace is not installed; install it to count system calls");
        return None;
    }
    let file = std::env::temp_dir().join(format!("lockedmem-strace-{}-{test}", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-o"])
        .arg(&file)
        .args(["-e", &format!("trace={calls}")])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env("LOCKEDMEM_TEST_CHILD", child)
        .output()
        .expect("run strace");
    let trace = std::fs::read_to_string(&file).expect("read the trace");
    let _ = std::fs::remove_file(&file);
    Some((out, trace))
}
