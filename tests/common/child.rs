//! Running part of a test in a child process: the test binary re-runs itself
//! with `--exact <test>` and an environment variable that tells the test it
//! is the child. Death tests, and tests that change process-wide state
//! (rlimits, capabilities) or measure it (VmLck, mapping counts), run there.
#![allow(dead_code, unreachable_pub)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

const VAR: &str = "LOCKEDBOX_TEST_CHILD";

/// In the child for `test`: runs `body` and exits with status 0 (a panic in
/// `body` exits nonzero). In the parent: runs the child and returns what it
/// did.
pub fn run(test: &str, body: impl FnOnce()) -> Output {
    if std::env::var(VAR).as_deref() == Ok(test) {
        body();
        std::process::exit(0);
    }
    Command::new(std::env::current_exe().expect("current_exe"))
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, test)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the test binary again")
}

/// Whether this process is a child run for some test.
pub fn is_child() -> bool {
    std::env::var_os(VAR).is_some()
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The child ran its body to the end.
pub fn assert_success(out: &Output) {
    assert!(out.status.success(), "child failed\n{}", describe(out));
}

/// The child was killed by `signal`.
pub fn assert_signal(out: &Output, signal: i32) {
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "child was not killed by signal {signal}\n{}",
        describe(out)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
