//! The last wipe waits for every thread it stopped, however many the
//! process has: each child (this test binary again) starts hundreds of idle
//! threads, then one that copies a 1 KiB secret from box to box in a loop,
//! and calls `wipe_all_and_abort()`. The tracer (`common::traced`) holds
//! the copying thread's `SIGSEGV` (the wipe's word to stop) back for a
//! moment, as a scheduler may: the process must not begin to die before
//! that thread has had it, scrubbed its frame and stopped; and at the
//! point of death nothing of the secret is left and every frame is
//! scrubbed.
//!
//! Three hundred threads are more than the 256 the wipe once kept a list
//! of (it waited for those only); 1,100 are more than the 1,024 it can
//! record as stopped.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::memscan::Masked;
use common::traced::{
    CONTROL, assert_clean_death, can_trace, copy_in_a_loop, in_child, leave_control, needle,
    needle_of, random_seed, ready, rest_forever, seed, spawn, wait_for_go,
};

/// Bytes of the secret copied between boxes.
const BIG: usize = common::traced::COPIED;
/// The secret's kind.
const SECRET: u64 = 0x81;
/// How long the tracer holds the copying thread's `SIGSEGV` back (well
/// within the wipe's one-second bound).
const HOLD: Duration = Duration::from_millis(200);

/// In the child: `idle` parked threads, then the copying one (listed
/// after them), then the wipe on the parent's word.
fn child(idle: usize) -> ! {
    let seed = seed();
    leave_control(seed);
    let started = Arc::new(Barrier::new(idle + 1));
    for _ in 0..idle {
        let started = Arc::clone(&started);
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                started.wait();
                rest_forever()
            })
            .unwrap();
    }
    started.wait();
    copy_in_a_loop(seed, SECRET, || {});
    ready();
    wait_for_go();
    lockedmem::wipe_all_and_abort();
}

fn prove(name: &str, runs: usize) {
    for run in 0..runs {
        let seed = random_seed();
        let needles: Vec<Masked> = vec![needle_of(seed, SECRET, BIG), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(name, seed, &[]);
        let what = format!("{name} run {run}");
        child.assert_present(&refs, &what);
        let copier = *child.workers.last().expect("the copying thread announced");
        child.delay(copier, libc::SIGSEGV, HOLD);
        child.go();
        let death = child
            .until_death(&refs, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            !death.blow_before_delayed,
            "{what}: the process began to die before the copying thread had its SIGSEGV: \
             the wipe did not wait for it"
        );
        assert_clean_death(&death, &[0], 1, &[], libc::SIGABRT, &what);
    }
}

#[test]
fn the_wipe_waits_for_a_thread_listed_after_300_others() {
    const NAME: &str = "the_wipe_waits_for_a_thread_listed_after_300_others";
    if in_child(NAME) {
        child(300);
    }
    if can_trace() {
        prove(NAME, 3);
    }
}

#[test]
fn the_wipe_waits_for_a_thread_listed_after_1100_others() {
    const NAME: &str = "the_wipe_waits_for_a_thread_listed_after_1100_others";
    if in_child(NAME) {
        child(1100);
    }
    if can_trace() {
        prove(NAME, 2);
    }
}
