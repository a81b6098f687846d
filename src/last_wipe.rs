//! The last wipe: before the process dies, zero every byte of memory the
//! crate holds, on every thread, and leave it inaccessible.
//!
//! The crate's memory is found in the registry of its mappings
//! (`alloc::registry`), which every mapping enters right after mmap(2) and
//! leaves right before munmap(2). The wipe runs on one thread, the first to
//! start it; a second thread starting it stops for good, since the first
//! ends the process. It takes no lock and allocates nothing, so it can run
//! in a signal handler that interrupted any code of the crate, on any
//! thread; its only tools are mprotect(2), mincore(2), sigaction(2),
//! tgkill(2), getdents64(2) of `/proc/self/task`, open(2)/pwrite(2)/close(2)
//! of `/proc/self/mem` (a process out of descriptors gets back the one
//! `wipe_on_signals` and `wipe_on_panic` keep in reserve, checked with
//! fstat(2) and closed first) (zeros written by the kernel into memory that stays
//! `PROT_NONE`, see `os::zero_forced`), process_vm_readv(2) (zeros copied
//! in by the kernel, see `os::zero_checked`), clock_gettime(2) and
//! nanosleep(2).
//!
//! 1. It marks the process as dying (`crate::dying`): from then on a thread
//!    that changes the protection or existence of the crate's memory
//!    (opening a slot, unsealing, closing, unmapping) stops inside that
//!    call, before it returns to use what it changed, and a thread that
//!    unmaps a mapping the wipe has claimed stops before unmapping it.
//! 2. It installs a `SIGSEGV`/`SIGBUS` handler ([`on_fault`]) and sends
//!    `SIGSEGV` to every other thread of the process (tgkill(2), the list
//!    read from /proc/self/task, again until no new thread shows up): each
//!    stops at once in that handler, which zeroes the registers the kernel
//!    saved in its signal frame (`os::scrub_context`: a thread stopped in
//!    the middle of copying a secret holds pieces of it in vector
//!    registers, which the frame would otherwise keep), clears its own
//!    vector registers and sleeps with every signal blocked. A thread that
//!    faults on the crate's memory later lands in the same handler. It runs
//!    on the thread's alternate signal stack, so a thread that overflowed
//!    its own stack runs it too.
//! 3. It claims every registered mapping and makes it `PROT_NONE` whole: a
//!    thread that touches the crate's memory from then on faults and stops,
//!    so nothing is copied from one box into another behind the wipe.
//! 4. For each mapping, it asks mincore(2) which pages are in RAM; each run
//!    of them is zeroed through `/proc/self/mem`, which the kernel writes
//!    with `FOLL_FORCE` while the run stays `PROT_NONE`: no other thread
//!    gets at it while it is zeroed (one off the CPU since the claim, or
//!    inside a read(2) into a box, which gets `EFAULT` rather than a fault,
//!    would otherwise write there after the zeros). Where the kernel does
//!    not force the write (secret memory, which is shared;
//!    `proc_mem.force_override`; no /proc), the run is made read-write,
//!    zeroed, and made `PROT_NONE` again, a window in which such a thread
//!    can still write. Pages never touched (guard pages, closed runs) are
//!    not faulted in. If a zeroing fails because another thread's call
//!    changed the protection in between, the mapping is done again.
//! 5. It tells threads started meanwhile to stop too, and waits (at most
//!    [`STOP_WAIT_NS`]) until every other thread of the process, however
//!    many, has scrubbed its frame and recorded itself stopped (or was
//!    counted, past the record's 1,024 places), or exited, and no thread is
//!    between entering the fault handler and scrubbing.
//!
//! Then the caller clears its own vector registers and ends the process:
//! abort(3), or the signal's default action. A handler of the crate's that
//! starts the wipe (`wipe_on_signals`) scrubs its own frame first; it runs
//! on the interrupted thread's own stack, where the wipe fits (an alternate
//! signal stack may have 8 KiB), and where its frame covers the one a
//! handler that ran just before it left (`prompt_password`'s).
//!
//! Not reached: the frame a handler of the program's own saved on a thread
//! the wipe stops inside it (the crate's handler scrubs only the frame it
//! was given), a thread that sleeps uninterruptibly for longer than the
//! wait, and whatever the threads' stacks hold besides signal frames
//! (copies the program made). A thread that blocks `SIGSEGV` is not
//! stopped, and if it touches the crate's memory once step 3 has closed it,
//! the kernel ends the process at once by `SIGSEGV` (a fault's signal
//! cannot stay blocked), before the wipe is done.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use crate::alloc::registry::{self, Range};
use crate::error::Error;
use crate::os::{self, Protection};
use crate::signal::Signal;

/// Pages asked about per mincore(2) call (the buffer is on the stack).
const MINCORE_PAGES: usize = 512;

/// Times a mapping is wiped again when another thread changed its
/// protection while it was being zeroed.
const ROUNDS: usize = 4;

/// Zeroes every byte of every live box, vector and allocator block of every
/// thread — sealed ones and ones borrowed at this moment included — and
/// then aborts the process (`SIGABRT`).
///
/// Every other thread is stopped at once, where it is (a `SIGSEGV` sent to
/// it lands in the crate's handler, which zeroes the registers the kernel
/// saved for it and sleeps for good), so none gets at the crate's memory
/// again; the wipe waits (at most a second) until each has scrubbed those
/// registers, and clears this thread's vector registers before it aborts.
/// See the [crate docs](crate#the-last-wipe) for what the wipe covers and
/// what it does not (copies the program made outside the crate's memory).
///
/// A process that has run out of file descriptors needs one for the wipe
/// to stop the other threads and zero memory that stays inaccessible:
/// [`wipe_on_signals`] and [`wipe_on_panic`] keep one in reserve, which
/// this uses too; without either, at `EMFILE` the other threads are not
/// stopped and the memory is zeroed read-write, where a thread inside a
/// read(2) into a box can still write.
///
/// A thread that blocks `SIGSEGV` cannot be stopped: if it touches the
/// crate's memory while the wipe runs, the kernel ends the process at once
/// by `SIGSEGV`, before the wipe is done (see `SECURITY.md`).
///
/// Safe to call from anywhere, a panic hook included; it blocks every
/// signal on the calling thread first, so that no handler interrupts it. If
/// another thread is already wiping, this thread stops and that one ends
/// the process.
///
/// ```no_run
/// let key = lockedmem::LockedBox::<[u8; 32]>::random()?;
/// if tampering_detected() {
///     lockedmem::wipe_all_and_abort();
/// }
/// # fn tampering_detected() -> bool { true }
/// # Ok::<(), lockedmem::Error>(())
/// ```
pub fn wipe_all_and_abort() -> ! {
    os::block_all_signals();
    last_wipe();
    os::clear_vector_registers();
    std::process::abort()
}

/// Installs a panic hook that runs the hook installed before it, then does
/// [`wipe_all_and_abort`]: from then on any panic, on any thread, ends the
/// process by `SIGABRT` with the crate's memory wiped, and nothing unwinds
/// (no `Drop` runs, `catch_unwind` catches nothing, a panicking thread's
/// `join` never returns).
///
/// The previous hook runs first, so the message and location are printed
/// as usual (and a backtrace, as `RUST_BACKTRACE` says): it runs while no
/// thread is stopped yet, so it cannot wait forever for a lock a stopped
/// thread holds. No secret byte of the crate's types is printed: their
/// `Debug` is redacted. A message the program formatted from a copy of a
/// secret is the program's own. If the previous hook itself panics, Rust
/// aborts at once, before the wipe: install this hook after any other.
/// Nothing runs after the wipe. It keeps one file descriptor open for the
/// wipe, as [`wipe_on_signals`] does.
///
/// ```no_run
/// lockedmem::wipe_on_panic();
/// let key = lockedmem::LockedBox::<[u8; 32]>::random()?;
/// panic!("this ends the process with the key wiped");
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// # Panics
/// If called while the thread is panicking (as `std::panic::set_hook`).
pub fn wipe_on_panic() {
    os::keep_reserve();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        wipe_all_and_abort();
    }));
}

/// The signals [`wipe_on_signals`] takes, besides the real-time ones: every
/// named constant of [`Signal`].
const SIGNALS: [Signal; 12] = [
    Signal::HUP,
    Signal::INT,
    Signal::QUIT,
    Signal::TERM,
    Signal::USR1,
    Signal::USR2,
    Signal::ALRM,
    Signal::VTALRM,
    Signal::PROF,
    Signal::XCPU,
    Signal::XFSZ,
    Signal::PWR,
];

/// Whether [`wipe_on_signals`] takes `sig`.
fn accepted(sig: Signal) -> bool {
    (SIGNALS.contains(&sig) && os::signal_exists(sig.as_raw()))
        || os::realtime_signals().contains(&sig.as_raw())
}

/// Makes each of `signals` do the last wipe before it ends the process:
/// the handler zeroes the crate's memory as [`wipe_all_and_abort`] does,
/// then puts back the signal's default action (`SIG_DFL`), raises it again
/// and unblocks it, so the process dies *of that signal* (a parent's
/// `waitpid` sees `SIGTERM`, a shell prints what it always prints).
///
/// Signals are [`Signal`]s (`Signal::TERM`), or numbers a program already
/// has (`i32`, such as `libc::SIGTERM`). Accepted: `SIGHUP`, `SIGINT`,
/// `SIGQUIT`, `SIGTERM`, `SIGUSR1`, `SIGUSR2`, `SIGALRM`, `SIGVTALRM`,
/// `SIGPROF`, `SIGXCPU`, `SIGXFSZ`, `SIGPWR` (each a constant of
/// [`Signal`]) and the real-time signals `SIGRTMIN..=SIGRTMAX`
/// ([`Signal::realtime`]): signals that arrive from outside and whose
/// default action ends the process. Each replaces the
/// signal's current disposition (a handler of the program's is not called;
/// an ignored signal is no longer ignored). Calling again adds signals.
/// [`prompt_password`](crate::prompt_password) puts this handler back
/// after its own, as it does any previous one.
///
/// The first call keeps one file descriptor open for good (an empty
/// `memfd:lockedmem-reserve`, closed on exec): the wipe gives it back to a
/// process that has run out of them, so that it can still open
/// `/proc/self/task` and `/proc/self/mem`.
///
/// The handler is async-signal-safe: it takes no lock and allocates
/// nothing, whatever the interrupted thread was doing (in the middle of an
/// allocation, holding a [`Ref`](crate::Ref) of a sealed box). It runs on
/// the interrupted thread's own stack, not on an alternate signal stack
/// (`sigaltstack`), which is too small for the wipe.
///
/// Not covered: `SIGKILL` (the OOM killer's too), a power loss, a kernel
/// crash; copies of secrets outside the crate's memory.
///
/// ```no_run
/// use lockedmem::Signal;
///
/// lockedmem::wipe_on_signals(&[Signal::TERM, Signal::INT, Signal::HUP])?;
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// # Errors
/// [`Error::UnsupportedSignal`] for a signal outside the accepted set
/// (nothing is installed then); [`Error::Os`] if sigaction(2) fails (the
/// signals before it stay installed).
pub fn wipe_on_signals<S: Copy + Into<Signal>>(signals: &[S]) -> Result<(), Error> {
    let signals = signals.iter().map(|&s| s.into());
    if let Some(signal) = signals.clone().find(|&s| !accepted(s)) {
        return Err(Error::UnsupportedSignal {
            signal: signal.as_raw(),
        });
    }
    os::keep_reserve();
    for sig in signals.map(Signal::as_raw) {
        os::on_fatal_signal(sig, last_wipe).map_err(|e| Error::os("sigaction", 0, e))?;
    }
    Ok(())
}

/// The wipe itself (module docs); returns on the wiping thread only.
fn last_wipe() {
    if !os::begin_last_wipe() {
        os::stop_for_good();
    }
    os::catch_faults();
    // Every other thread is told now; those started meanwhile, at the end.
    let _ = os::signal_unstopped();
    let here = |r: &Range| r.is_here();
    // Zeroing through the kernel keeps every mapping `PROT_NONE` while it
    // is zeroed; without it, a run is opened read-write for its zeroing,
    // and a thread that did not touch it since the claim (off the CPU, or
    // inside a read(2) into it, which gets `EFAULT` rather than a fault)
    // could write there after the zeros.
    let mem = os::own_memory_for_wipe();
    registry::claim_all(|r| {
        if let (true, Some(addr)) = (here(&r), NonNull::new(r.addr as *mut u8)) {
            // SAFETY: a registered mapping of the crate's, claimed, so never
            // unmapped meanwhile; the process is dying, and any thread that
            // touches it from now on stops.
            let _ = unsafe { os::protect(addr, r.len, Protection::None) };
        }
    });
    registry::each_claimed(|r| {
        if let (true, Some(addr)) = (here(&r), NonNull::new(r.addr as *mut u8)) {
            for _ in 0..ROUNDS {
                // SAFETY: as above.
                if unsafe { wipe_mapping(addr, r.len, mem) } {
                    break;
                }
            }
            // SAFETY: as above.
            let _ = unsafe { os::protect(addr, r.len, Protection::None) };
        }
    });
    if let Some(fd) = mem {
        os::close_raw(fd);
    }
    // Threads started while the wipe ran are told too; then every thread
    // has its frame scrubbed before the process dies.
    os::stop_all_and_wait();
}

/// Zeroes the resident pages of the mapping `addr..addr + len`, run by run:
/// through `mem` (`/proc/self/mem`) where the kernel allows, the run left
/// `PROT_NONE`; else read-write, zero, `PROT_NONE`. Whether every zeroing
/// succeeded.
///
/// # Safety
/// The mapping is a claimed entry of the registry, and the process is
/// dying (the wipe has begun): no value in it is used again.
unsafe fn wipe_mapping(addr: NonNull<u8>, len: usize, mem: Option<os::OwnMemory>) -> bool {
    let page = os::page_size();
    let pages = len / page;
    let mut resident = [0u8; MINCORE_PAGES];
    let mut clean = true;
    let mut first = 0;
    while first < pages {
        let n = (pages - first).min(MINCORE_PAGES);
        let at = addr.as_ptr().wrapping_add(first * page);
        let at = NonNull::new(at).unwrap_or(addr);
        if os::residency_into(at, n * page, &mut resident[..n]).is_err() {
            // Part of the range is not mapped (it cannot be, short of a
            // bug): ask page by page.
            for (i, r) in resident[..n].iter_mut().enumerate() {
                let p = NonNull::new(at.as_ptr().wrapping_add(i * page)).unwrap_or(at);
                if os::residency_into(p, page, std::slice::from_mut(r)).is_err() {
                    *r = 0;
                }
            }
        }
        let mut i = 0;
        while i < n {
            if resident[i] & 1 == 0 {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && resident[i] & 1 == 1 {
                i += 1;
            }
            let run = NonNull::new(at.as_ptr().wrapping_add(start * page)).unwrap_or(at);
            let run_len = (i - start) * page;
            // SAFETY: the run is inside the mapping (the caller's contract).
            let forced = mem.is_some_and(|fd| unsafe { os::zero_forced(fd, run, run_len) }.is_ok());
            // SAFETY: as above.
            clean &= forced || unsafe { wipe_run(addr, len, run, run_len) };
        }
        first += n;
    }
    clean
}

/// Makes `run` read-write (or, if that fails, its whole mapping), zeroes it
/// and makes it `PROT_NONE`; whether the zeroing succeeded.
///
/// # Safety
/// As [`wipe_mapping`]'s; `run` lies inside `addr..addr + len`.
unsafe fn wipe_run(addr: NonNull<u8>, len: usize, run: NonNull<u8>, run_len: usize) -> bool {
    // SAFETY: the caller's contract: the crate's dying memory.
    let opened = unsafe { os::protect(run, run_len, Protection::ReadWrite) };
    if opened.is_err() {
        // Splitting the mapping may fail at vm.max_map_count: make all of
        // it read-write (no split), closed again by the caller.
        // SAFETY: as above.
        let _ = unsafe { os::protect(addr, len, Protection::ReadWrite) };
    }
    // SAFETY: as above.
    let zeroed = unsafe { os::zero_checked(run, run_len) }.is_ok();
    // SAFETY: as above.
    let _ = unsafe { os::protect(run, run_len, Protection::None) };
    zeroed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_taken_and_refused() {
        for sig in SIGNALS
            .into_iter()
            .filter(|s| os::signal_exists(s.as_raw()))
        {
            assert!(accepted(sig), "{sig:?}");
        }
        for sig in [os::sig::TERM, os::sig::INT, os::sig::HUP]
            .into_iter()
            .filter(|&s| os::signal_exists(s))
        {
            assert!(accepted(sig.into()), "{sig}");
        }
        let realtime = os::realtime_signals();
        if !realtime.is_empty() {
            let last = u8::try_from(realtime.end() - realtime.start()).unwrap();
            for n in [0, 1, last] {
                assert!(accepted(Signal::realtime(n)), "SIGRTMIN+{n}");
            }
            let past = last + 1;
            assert!(!accepted(Signal::realtime(past)));
            assert!(matches!(
                wipe_on_signals(&[Signal::realtime(past)]),
                Err(Error::UnsupportedSignal { signal }) if signal == realtime.end() + 1
            ));
        }
        for sig in os::sig::REFUSED.into_iter().chain([1000]) {
            assert!(!accepted(sig.into()), "{sig}");
            assert!(matches!(
                wipe_on_signals(&[os::sig::TERM, sig]),
                Err(Error::UnsupportedSignal { signal }) if signal == sig
            ));
        }
    }
}
