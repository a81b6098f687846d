//! Running part of a test in a child process: the test binary re-runs itself
//! with `--exact <test>` and an environment variable that tells the test it
//! is the child. Death tests, and tests that change process-wide state
//! (rlimits, capabilities) or measure it (VmLck, mapping counts), run there.
//!
//! A child that ran no test proves nothing, yet exits 0: libtest runs zero
//! tests when the name given to `--exact` names none (a typo, a test moved
//! into a module, a renamed test). So `run` checks that the child started
//! the body (a marker line it prints first), and `assert_success` and
//! `assert_signal` check that libtest ran exactly one test.
#![allow(dead_code, unreachable_pub)]

#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

const VAR: &str = "LOCKEDMEM_TEST_CHILD";

/// The line a child prints on stdout before it runs the body.
const STARTED: &str = "lockedmem-test-child: the body starts";

/// libtest's first line on stdout when the filter selected exactly one test.
const RAN_ONE: &str = "running 1 test\n";

/// In the child for `test`: runs `body` and exits with status 0 (a panic in
/// `body` exits nonzero). In the parent: runs the child and returns what it
/// did, once it has checked that the child ran `body` at all.
///
/// # Panics
///
/// In the parent, if the child never started `body`: `test` does not name
/// the test that calls `run`.
pub fn run(test: &str, body: impl FnOnce()) -> Output {
    if std::env::var(VAR).as_deref() == Ok(test) {
        // On a line of its own, flushed (stdout is line-buffered) before the
        // body can die.
        println!("\n{STARTED}");
        body();
        exit(0);
    }
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, test)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the test binary again");
    assert!(
        stdout(&out).lines().any(|l| l == STARTED),
        "the child never started the body: `{test}` names no test of this binary (it must be \
         the name of the test that calls child::run)\n{}",
        describe(&out)
    );
    out
}

/// Ends this process at once with status `code`, from any thread, after
/// flushing stdout: `_exit(2)` (on Windows `TerminateProcess`), never
/// `std::process::exit`.
///
/// A child ends on the test's thread, not on libtest's main thread. There,
/// `std::process::exit` first runs std's cleanup, which unmaps the *main*
/// thread's alternate signal stack (std's `stack_overflow::cleanup`; see
/// rust-lang/rust#111272), and only then exit_group(2). A main thread that
/// is still returning from a handler that runs on that stack (glibc's
/// `SIGSETXID` handler, which `setresuid` and friends run on every thread,
/// is `SA_ONSTACK`) and gets the CPU in between faults on the unmapped stack
/// and kills the process with `SIGSEGV`, after the child did everything
/// right. `_exit` ends every thread at once and unmaps nothing first.
pub fn exit(code: i32) -> ! {
    use std::io::Write;
    // Nothing to do about a failed flush in a process about to end: the
    // parent sees the output missing.
    let _ = std::io::stdout().flush();
    #[cfg(unix)]
    // SAFETY: _exit(2) takes an integer, runs no handler of this process
    // and does not return.
    unsafe {
        libc::_exit(code)
    }
    #[cfg(windows)]
    super::windows::terminate(super::windows::ntstatus(code))
}

/// Whether this process is a child run for some test.
pub fn is_child() -> bool {
    std::env::var_os(VAR).is_some()
}

pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// libtest in the child selected exactly one test (its stdout was captured).
fn assert_ran_one_test(out: &Output) {
    assert!(
        stdout(out).starts_with(&format!("\n{RAN_ONE}")),
        "the child did not run exactly one test: the name it was given matches none, so its \
         status proves nothing\n{}",
        describe(out)
    );
}

/// The child ran its one test to the end.
pub fn assert_success(out: &Output) {
    assert_ran_one_test(out);
    assert!(out.status.success(), "child failed\n{}", describe(out));
}

/// The child ran its one test to the end; `expected` says what that proves,
/// for the message when it did not.
pub fn expect_success(out: &Output, expected: &str) {
    assert_ran_one_test(out);
    assert!(
        out.status.success(),
        "expected {expected}; the child failed\n{}",
        describe(out)
    );
}

/// The signal an access to a `PROT_NONE` page (a guard page) raises:
/// `SIGSEGV`, but `SIGBUS` on macOS, which reports a protection fault on a
/// mapped page that way (`KERN_PROTECTION_FAILURE`).
#[cfg(all(unix, not(target_os = "macos")))]
pub const GUARD_FAULT: i32 = libc::SIGSEGV;
/// See the other platforms' `GUARD_FAULT`.
#[cfg(target_os = "macos")]
pub const GUARD_FAULT: i32 = libc::SIGBUS;

/// The child, running its one test, was killed by `signal`.
#[cfg(unix)]
pub fn assert_signal(out: &Output, signal: i32) {
    assert_ran_one_test(out);
    assert_eq!(
        out.status.signal(),
        Some(signal),
        "child was not killed by signal {signal}\n{}",
        describe(out)
    );
}

/// The child, running its one test, ended with the exit code `code`: on
/// Windows, the status (`NTSTATUS`) of the exception that ended it, such as
/// `STATUS_ACCESS_VIOLATION` (`0xC0000005`).
#[cfg(windows)]
pub fn assert_exit_code(out: &Output, code: u32) {
    assert_ran_one_test(out);
    assert_eq!(
        super::windows::exit_code(out),
        Some(code),
        "child did not end with {code:#x}\n{}",
        describe(out)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
