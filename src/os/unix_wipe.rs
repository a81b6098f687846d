//! The last wipe's part that is Unix's: the handlers of the fatal signals
//! (`wipe_on_signals`) and of the faults of stopped threads, stopping the
//! other threads (`SIGSEGV` sent to each), and the descriptor kept in
//! reserve for a process that ran out of them. The wipe itself, which is
//! the same everywhere, is `crate::last_wipe`'s; it is handed down here as
//! a function to call ([`on_fatal_signal`]).
//!
//! Everything here is async-signal-safe: atomics, system calls, stack
//! memory.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
use super::bsd::{each_other_thread, file_id, open_own_memory, reserve_descriptor, signal_thread};
use super::cpu::clear_vector_registers;
#[cfg(target_os = "freebsd")]
use super::freebsd::scrub_context;
#[cfg(target_os = "linux")]
use super::linux::{
    each_other_thread, file_id, open_own_memory, reserve_descriptor, scrub_context, signal_thread,
};
#[cfg(target_os = "macos")]
use super::macos::scrub_context;
#[cfg(target_os = "openbsd")]
use super::openbsd::scrub_context;
use super::thread::thread_id;
use super::unix::{
    HandlerStack, close_raw, errno, is_last_wiper, monotonic_ns, nap, raise_signal,
    set_default_action, set_exclusive_handler, sleep_forever, unblock_signal,
};
use crate::dying;

/// The wipe the fatal-signal handler runs (`crate::last_wipe`'s), set once.
static WIPE: OnceLock<fn()> = OnceLock::new();

/// Makes `sig` run `wipe` (scrubbing the handler's own frame first) and
/// then end the process by `sig`'s default action: the process dies of
/// that signal.
///
/// # Errors
/// sigaction(2)'s.
pub(crate) fn on_fatal_signal(sig: i32, wipe: fn()) -> io::Result<()> {
    let _ = WIPE.set(wipe);
    // SAFETY: `on_signal` is async-signal-safe (see its docs), and runs on
    // the interrupted thread's own stack, where the wipe fits.
    unsafe { set_exclusive_handler(sig, on_signal, HandlerStack::Interrupted) }
}

/// Installs the handler that stops, for good, a thread that faults on the
/// crate's memory once the wipe has closed it, or that the wipe tells to
/// stop ([`stop_all_and_wait`]).
pub(crate) fn catch_faults() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: `on_fault` is async-signal-safe (atomics, sigaction,
        // gettid, pause, writes to its own signal frame) and small enough
        // for an alternate signal stack.
        let _ = unsafe { set_exclusive_handler(sig, on_fault, HandlerStack::Alternate) };
    }
}

/// `/proc/self/mem` for the wipe to zero through, with the reserve given
/// back if the process is out of descriptors (see [`with_reserve`]).
pub(crate) fn own_memory_for_wipe() -> Option<libc::c_int> {
    with_reserve(open_own_memory)
}

/// The handler [`on_fatal_signal`] installs: the registers the kernel
/// saved in this handler's frame are scrubbed first (the signal may have
/// interrupted this very thread in the middle of copying a secret), then
/// the wipe ([`WIPE`]), then the signal's default action. Async-signal-safe: atomics,
/// the syscalls named in the module docs, stack memory.
///
/// It runs on the interrupted thread's own stack, not on its alternate
/// signal stack: the kernel's frame and the wipe do not fit in the 8 KiB
/// one Rust's standard library gives a thread on x86-64 without AMX (it
/// died there of `SIGSEGV` before wiping anything). And there its frame is
/// written where the frame of a handler that ran just before it lies (the
/// one of the prompt (`unix_tty`), which puts this handler back and raises
/// the signal again), which it then scrubs.
extern "C" fn on_signal(sig: libc::c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the context the kernel passed to this handler, which never
    // returns: it ends the process below, or stops for good in the wipe.
    unsafe { scrub_context(context) };
    clear_vector_registers();
    if let Some(wipe) = WIPE.get() {
        wipe();
    }
    clear_vector_registers();
    set_default_action(sig);
    raise_signal(sig);
    // Every other signal stays blocked (the handler's mask); `sig`, pending
    // now, ends the process as this returns.
    unblock_signal(sig);
    // Not reached: every accepted signal's default action ends the process.
    std::process::abort();
}

/// The handler for `SIGSEGV` and `SIGBUS` while the wipe runs, on a
/// thread that faults on memory the wipe made inaccessible or that the wipe
/// told to stop (`SIGSEGV` by tgkill(2)): it scrubs the registers the
/// kernel saved in its frame (and its own vector registers), records itself
/// stopped and stops for good, with every signal blocked (the handler's
/// mask), so no later frame is ever written on it. A fault of the wiping
/// thread itself is fatal, as it would have been without the wipe.
extern "C" fn on_fault(sig: libc::c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    if is_last_wiper() {
        // Returning retries the access, which faults again and now kills.
        set_default_action(sig);
        return;
    }
    dying::entered_fault_handler();
    // SAFETY: the context the kernel passed to this handler, which never
    // returns.
    unsafe { scrub_context(context) };
    clear_vector_registers();
    let _ = dying::record_stopped(thread_id());
    dying::left_fault_handler();
    sleep_forever();
}

/// The descriptor kept for the wipe (-1: none; -2: being made), and the
/// identity of its file (`reserve_descriptor`), stored before the
/// descriptor is.
static RESERVE: AtomicI32 = AtomicI32::new(-1);
static RESERVE_DEV: AtomicU64 = AtomicU64::new(0);
static RESERVE_INO: AtomicU64 = AtomicU64::new(0);

/// Keeps one descriptor in reserve for the wipe, once per process (a fork
/// child shares it; exec(2) closes it): a process that runs out of them
/// (`EMFILE`) gets this one back when the wipe needs to open
/// `/proc/self/task` or `/proc/self/mem` ([`with_reserve`]).
pub(crate) fn keep_reserve() {
    if RESERVE
        .compare_exchange(-1, -2, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // Kept already, or being kept by another thread.
        return;
    }
    let Ok((fd, (dev, ino))) = reserve_descriptor() else {
        RESERVE.store(-1, Ordering::SeqCst);
        return;
    };
    RESERVE_DEV.store(dev, Ordering::SeqCst);
    RESERVE_INO.store(ino, Ordering::SeqCst);
    RESERVE.store(fd, Ordering::SeqCst);
}

/// Runs `open`, a step of the wipe that opens a descriptor and says
/// whether it could; if it could not because the process is out of them
/// (`EMFILE`, or `ENFILE` for the whole system), closes the reserve (if the
/// number is still the crate's file: the program may have closed it and
/// opened another under it) and runs `open` again. Async-signal-safe.
fn with_reserve<T>(mut open: impl FnMut() -> Option<T>) -> Option<T> {
    if let Some(done) = open() {
        return Some(done);
    }
    if !matches!(errno(), libc::EMFILE | libc::ENFILE) {
        return None;
    }
    let fd = RESERVE.swap(-1, Ordering::SeqCst);
    let ours = (
        RESERVE_DEV.load(Ordering::SeqCst),
        RESERVE_INO.load(Ordering::SeqCst),
    );
    if fd < 0 || file_id(fd).ok() != Some(ours) {
        return None;
    }
    close_raw(fd);
    open()
}

/// How long the wipe waits, at most, for the other threads to stop and
/// scrub their frames: one that has `SIGSEGV` blocked, or that sleeps in
/// the kernel uninterruptibly, is not waited for longer.
const STOP_WAIT_NS: u64 = 1_000_000_000;

/// Sends `SIGSEGV` to every other thread of the process that has not
/// recorded itself stopped (again, to one told before: a signal already
/// pending is not queued twice). The number of threads it was sent to,
/// or `None` if the threads could not be listed.
pub(crate) fn signal_unstopped() -> Option<usize> {
    with_reserve(|| {
        let mut sent = 0;
        let listed = each_other_thread(|tid| {
            if !dying::is_stopped(tid) && signal_thread(tid, libc::SIGSEGV).is_ok() {
                sent += 1;
            }
        });
        listed.then_some(sent)
    })
}

/// Tells every other thread to stop, and waits (at most [`STOP_WAIT_NS`])
/// until each, however many there are and whenever it started, has
/// stopped (and scrubbed its frame) or exited, and no thread is inside the
/// fault handler with its frame not yet scrubbed. The threads are listed
/// anew each round; those that stopped past the record's end
/// ([`dying::unrecorded`]) are counted, as they are listed but not found.
pub(crate) fn stop_all_and_wait() {
    let deadline = monotonic_ns().saturating_add(STOP_WAIT_NS);
    loop {
        let others_stopped = signal_unstopped().is_none_or(|left| left <= dying::unrecorded());
        if (others_stopped && !dying::scrubbing()) || monotonic_ns() > deadline {
            return;
        }
        nap(100_000);
    }
}
