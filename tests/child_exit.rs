//! How a test's child process ends (`common::child::exit`): with the status
//! it chose, also while libtest's main thread is inside a signal handler
//! that runs on its alternate stack, where `std::process::exit` on the
//! test's thread kills the child with `SIGSEGV` instead.
//!
//! That is how tests/hardening.rs's reader once died of a signal in CI
//! after printing its correct verdict: `setresuid` (glibc sends
//! `SIGSETXID` to every other thread, handled `SA_ONSTACK`) and at once
//! `std::process::exit` on the test's thread, which unmaps the main
//! thread's alternate stack before exit_group(2). A main thread preempted
//! at the end of that handler and run again in between faults. Here the
//! main thread is held in a handler of the test's own, so the order is
//! certain.
// Linux only: signals threads with tgkill(2).
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::child;

/// The main thread is in the handler, on its alternate stack.
static IN_HANDLER: AtomicBool = AtomicBool::new(false);
/// The exiting thread is past std's cleanup, inside exit(3).
static PAST_CLEANUP: AtomicBool = AtomicBool::new(false);

/// Waits (at most 20 s, sleeping) until `flag` is set.
fn wait_for(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A `SIGUSR1` handler (`SA_ONSTACK`, so it runs on the main thread's
/// alternate stack, as glibc's `SIGSETXID` handler does) that returns only
/// once the other thread is inside exit(3).
extern "C" fn hold(_: libc::c_int) {
    IN_HANDLER.store(true, Ordering::SeqCst);
    wait_for(&PAST_CLEANUP);
}

/// Registered with atexit(3): runs inside exit(3), after std's cleanup;
/// lets the main thread return from its handler and gives it time to.
extern "C" fn past_cleanup() {
    PAST_CLEANUP.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
}

/// In a child: the main thread (libtest's, waiting for this test) is sent
/// into `hold`; once it is there, this thread ends the process through
/// `end` with status 3.
fn end_while_the_main_thread_is_in_a_handler(end: fn(i32) -> !) {
    // SAFETY: all-zero bytes are a valid `struct sigaction` (no handler,
    // empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = hold as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = libc::SA_ONSTACK;
    // SAFETY: sigaction(2) for SIGUSR1 with a handler that touches only
    // atomics and sleeps; nothing else in this child uses SIGUSR1.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &raw const sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction");
    // SAFETY: atexit(3) of a function that touches an atomic and sleeps.
    assert_eq!(unsafe { libc::atexit(past_cleanup) }, 0);
    // libtest's main thread is the one whose thread id is the process id.
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: tgkill(2) to a thread of this process, integers only.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGUSR1) };
    assert_eq!(rc, 0, "tgkill");
    wait_for(&IN_HANDLER);
    assert!(
        IN_HANDLER.load(Ordering::SeqCst),
        "the main thread never ran the handler"
    );
    end(3);
}

#[test]
fn child_exit_ends_with_its_status_while_the_main_thread_is_in_a_handler() {
    const NAME: &str = "child_exit_ends_with_its_status_while_the_main_thread_is_in_a_handler";
    let out = child::run(NAME, || {
        end_while_the_main_thread_is_in_a_handler(child::exit)
    });
    assert_eq!(out.status.code(), Some(3), "{}", child::describe(&out));
}

/// The control: the same with `std::process::exit`, which the child did
/// not survive.
#[test]
fn std_process_exit_there_kills_the_child_with_sigsegv() {
    const NAME: &str = "std_process_exit_there_kills_the_child_with_sigsegv";
    let out = child::run(NAME, || {
        // No core file of this death in the working directory.
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Core).maximum;
        setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: hard,
            },
        )
        .expect("setrlimit(RLIMIT_CORE)");
        end_while_the_main_thread_is_in_a_handler(|code| std::process::exit(code));
    });
    child::assert_signal(&out, libc::SIGSEGV);
}
