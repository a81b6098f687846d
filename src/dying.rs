//! The dying gate of the last wipe (`crate::last_wipe`): which thread wipes,
//! and which threads have stopped for good, in atomics alone.
//!
//! No system call and no allocation, so that every function here can run in
//! a signal handler on any thread. The system-call layer asks [`must_stop`]
//! around every call that changes the protection or existence of the
//! crate's memory; the wipe records here each thread it waits for.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The thread ID of the thread running the last wipe, 0 until one starts.
static WIPER: AtomicI32 = AtomicI32::new(0);

/// Makes thread `me` the one that runs the last wipe; `false` if another
/// thread already is (it will end the process).
pub(crate) fn begin(me: i32) -> bool {
    match WIPER.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(wiper) => wiper == me,
    }
}

/// Whether thread `me` runs the last wipe.
pub(crate) fn is_wiper(me: i32) -> bool {
    let wiper = WIPER.load(Ordering::SeqCst);
    wiper != 0 && wiper == me
}

/// Whether the last wipe has started on a thread other than the caller,
/// whose ID `me` gives: the caller must then stop for good before it uses
/// any memory of the crate's again. `me` is asked only once a wipe has
/// started (on Linux it is a system call, and this check brackets every
/// mprotect of a sealed borrow).
#[inline]
pub(crate) fn must_stop(me: impl FnOnce() -> i32) -> bool {
    let wiper = WIPER.load(Ordering::SeqCst);
    wiper != 0 && wiper != me()
}

/// Threads that have stopped for good, by ID (0: a free place). A thread
/// records itself once it holds nothing the wipe must still reach: a
/// handler has scrubbed the registers saved in its signal frame.
const STOPPED_MAX: usize = 1024;
static STOPPED: [AtomicI32; STOPPED_MAX] = [const { AtomicI32::new(0) }; STOPPED_MAX];

/// Threads that stopped for good when every place of [`STOPPED`] was
/// taken: the wipe counts them instead of looking them up.
static UNRECORDED: AtomicUsize = AtomicUsize::new(0);

/// Threads that entered the fault handler and have not yet recorded
/// themselves stopped: their saved registers are not scrubbed yet.
static SCRUBBING: AtomicUsize = AtomicUsize::new(0);

/// Records that thread `tid` has stopped for good; a thread calls it once,
/// as it stops. `false` if the record is full (more than 1,024 threads
/// stopped): the thread is then counted ([`unrecorded`]), so that the wipe
/// still knows how many of the threads it lists have stopped.
pub(crate) fn record_stopped(tid: i32) -> bool {
    if is_stopped(tid) {
        return true;
    }
    let recorded = STOPPED.iter().any(|slot| {
        slot.compare_exchange(0, tid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if !recorded {
        UNRECORDED.fetch_add(1, Ordering::SeqCst);
    }
    recorded
}

/// How many threads stopped for good without a place in the record; they
/// never run again, so every one of them is still a thread of the process.
#[cfg_attr(
    all(not(unix), not(test)),
    expect(dead_code, reason = "a wipe that suspends threads itself counts none")
)]
pub(crate) fn unrecorded() -> usize {
    UNRECORDED.load(Ordering::SeqCst)
}

/// Whether thread `tid` recorded itself stopped.
pub(crate) fn is_stopped(tid: i32) -> bool {
    STOPPED
        .iter()
        .any(|slot| slot.load(Ordering::SeqCst) == tid)
}

/// A thread entered the fault handler: its saved registers are about to
/// be scrubbed ([`left_fault_handler`] follows).
pub(crate) fn entered_fault_handler() {
    SCRUBBING.fetch_add(1, Ordering::SeqCst);
}

/// A thread in the fault handler scrubbed its saved registers.
pub(crate) fn left_fault_handler() {
    SCRUBBING.fetch_sub(1, Ordering::SeqCst);
}

/// Whether some thread is between [`entered_fault_handler`] and
/// [`left_fault_handler`].
pub(crate) fn scrubbing() -> bool {
    SCRUBBING.load(Ordering::SeqCst) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_threads_are_recorded_once() {
        // IDs no thread of this test process has (negative).
        assert!(!is_stopped(-7));
        assert!(record_stopped(-7));
        assert!(record_stopped(-7));
        assert!(is_stopped(-7));
        assert_eq!(
            STOPPED
                .iter()
                .filter(|s| s.load(Ordering::SeqCst) == -7)
                .count(),
            1
        );
    }

    /// Past the record's last place, threads are counted: the wipe still
    /// knows how many of those it lists have stopped. In a child process
    /// (this test binary again), since it fills the process's record.
    #[test]
    fn threads_past_the_record_are_counted() {
        const TEST: &str = "dying::tests::threads_past_the_record_are_counted";
        const VAR: &str = "LOCKEDMEM_UNIT_CHILD";
        if std::env::var(VAR).as_deref() == Ok(TEST) {
            let before = unrecorded();
            // IDs no thread has (negative), one per place and three more.
            for tid in 1..=i32::try_from(STOPPED_MAX).unwrap() {
                record_stopped(-100 - tid);
            }
            assert_eq!(unrecorded(), before, "room for every one of them");
            for tid in 1..=3 {
                assert!(!record_stopped(-1 - tid));
            }
            assert_eq!(unrecorded(), before + 3);
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--test-threads=1"])
            .env(VAR, TEST)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}
