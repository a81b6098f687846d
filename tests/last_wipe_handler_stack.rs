//! The handler `wipe_on_signals` installs does the whole wipe, so it runs
//! on the stack of the thread the signal interrupted, not on that thread's
//! alternate signal stack, and its frame lands where a handler that ran
//! just before it on that stack left its own.
//!
//! - An alternate signal stack is small: Rust's standard library gives each
//!   thread one of `max(SIGSTKSZ, AT_MINSIGSTKSZ)` bytes, 8 KiB on every
//!   x86-64 CPU without AMX, and programs that set their own commonly use
//!   `SIGSTKSZ` too. The kernel's frame (3 KiB and more with AVX-512) and
//!   the wipe (buffers for the thread list and the mincore(2) answers, and
//!   its calls) do not fit there: the handler overflowed into the guard
//!   page and the process died of `SIGSEGV` before anything was wiped.
//!   This host may have AMX (its alternate stacks are then larger), so the
//!   test gives the signalled thread an 8 KiB one itself.
//! - `prompt_password` catches `SIGTERM` while it waits (to put the
//!   terminal back), then puts the wipe's handler back and raises the
//!   signal again: its own handler has returned by then, but its frame, with
//!   the registers of the code it interrupted, stays on that thread's stack
//!   below the stack pointer. The wipe's handler, given the same stack
//!   pointer, writes its frame over it and scrubs it; on the alternate
//!   stack, it left that frame as it was (a thread copying a box held 64
//!   bytes of it in `zmm16`).
//!
//! Each test runs a child (this test binary again), traced to the point of
//! death (`common::traced`): nothing of the secret may be left, whole or in
//! 16-byte fragments, and every signal frame must be scrubbed.
// Linux only: opens a pseudo-terminal with Linux calls; scans its own memory
// through /proc/self/mem (common::memscan); traces a child with Linux
// ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::time::Duration;

use common::memscan::Masked;
use common::traced::{
    CONTROL, assert_clean_death, can_trace, copy_in_a_loop, in_child, leave_control, needle,
    needle_of, random_seed, ready, rest_forever, seed, spawn,
};
use lockedmem::Signal;

/// Bytes of the secret copied between boxes.
const BIG: usize = common::traced::COPIED;
/// The secret's kind.
const SECRET: u64 = 0x61;
/// Where the parent passes the pseudo-terminal's path.
const PTY_VAR: &str = "LOCKEDMEM_TEST_PTY";

/// Gives the calling thread an alternate signal stack of `size` bytes with
/// an inaccessible page right below it, as Rust's standard library makes
/// them: a handler that needs more dies on that page.
fn small_alternate_stack(size: usize) {
    let page = common::page_size();
    let len = size.next_multiple_of(page) + page;
    // SAFETY: a new private anonymous mapping; nothing else knows of it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    // SAFETY: the first page of the mapping just made.
    assert_eq!(unsafe { libc::mprotect(base, page, libc::PROT_NONE) }, 0);
    let stack = libc::stack_t {
        ss_sp: base.cast::<u8>().wrapping_add(page).cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `stack` lies inside the mapping, which is never unmapped.
    let rc = unsafe { libc::sigaltstack(&raw const stack, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaltstack: {}", std::io::Error::last_os_error());
}

/// The parent: the child is ready (after `before`, given the child), its
/// copying thread gets `SIGTERM`, and it must die of it with nothing left.
fn prove(name: &str, env: &[(&str, String)], before: impl Fn(&common::traced::Traced)) {
    for run in 0..3 {
        let seed = random_seed();
        let needles: Vec<Masked> = vec![needle_of(seed, SECRET, BIG), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(name, seed, env);
        before(&child);
        let what = format!("{name} run {run}");
        child.assert_present(&refs, &what);
        let copier = *child.workers.last().expect("the copying thread announced");
        child.tkill(copier, libc::SIGTERM);
        let death = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_clean_death(&death, &[0], 1, &[], libc::SIGTERM, &what);
    }
}

#[test]
fn sigterm_on_a_thread_with_an_8_kib_alternate_stack_wipes_and_dies_of_it() {
    const NAME: &str = "sigterm_on_a_thread_with_an_8_kib_alternate_stack_wipes_and_dies_of_it";
    if in_child(NAME) {
        let seed = seed();
        lockedmem::wipe_on_signals(&[Signal::TERM]).unwrap();
        leave_control(seed);
        copy_in_a_loop(seed, SECRET, || small_alternate_stack(libc::SIGSTKSZ));
        ready();
        rest_forever();
    }
    if can_trace() {
        prove(NAME, &[], |_| {});
    }
}

/// A new pseudo-terminal: its master and the slave's path.
fn open_pty() -> (std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let m = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(m >= 0, "posix_openpt");
    // SAFETY: `m` is a new descriptor owned here only.
    let master = unsafe { std::fs::File::from_raw_fd(m) };
    // SAFETY: grantpt takes the master's descriptor.
    assert_eq!(unsafe { libc::grantpt(m) }, 0);
    // SAFETY: unlockpt takes the master's descriptor.
    assert_eq!(unsafe { libc::unlockpt(m) }, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` has room for the path and its NUL.
    let rc = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
    assert_eq!(rc, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated path.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    (master, path.to_str().unwrap().to_owned())
}

#[test]
fn sigterm_caught_first_by_prompt_password_leaves_no_frame_behind() {
    const NAME: &str = "sigterm_caught_first_by_prompt_password_leaves_no_frame_behind";
    const PROMPT: &str = "Passphrase (the test types nothing): ";
    if in_child(NAME) {
        let seed = seed();
        lockedmem::wipe_on_signals(&[Signal::TERM]).unwrap();
        leave_control(seed);
        // A new session with the pseudo-terminal as controlling terminal.
        // SAFETY: setsid takes no argument; the child is no group leader.
        assert!(unsafe { libc::setsid() } >= 0, "setsid");
        let path = std::ffi::CString::new(std::env::var(PTY_VAR).unwrap()).unwrap();
        // SAFETY: a valid path; the descriptor stays open for good.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
        assert!(fd >= 0, "open the terminal");
        // SAFETY: makes it the controlling terminal.
        unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
        std::thread::spawn(|| {
            let _ = lockedmem::prompt_password(PROMPT);
        });
        copy_in_a_loop(seed, SECRET, || {});
        ready();
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    let (master, path) = open_pty();
    prove(NAME, &[(PTY_VAR, path)], |_| {
        // The prompt's handlers are in once its prompt is on the terminal.
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains(PROMPT) {
            let n = (&master).read(&mut buf).expect("read the terminal");
            assert_ne!(n, 0, "the terminal closed before the prompt");
            seen.extend_from_slice(&buf[..n]);
        }
    });
}
