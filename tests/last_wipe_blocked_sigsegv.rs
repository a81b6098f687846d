//! What the last wipe cannot do with a thread that blocks `SIGSEGV` (a
//! thread started under `sigfillset` + `pthread_sigmask`, as programs that
//! take their signals with sigwait(2) start every thread): the `SIGSEGV`
//! the wipe sends to stop it stays pending, so it runs on; and when it
//! touches the crate's memory after the wipe made it `PROT_NONE`, the
//! kernel cannot hold back the fault's signal: it puts back `SIGSEGV`'s
//! default action and the whole process dies of it at once, whatever the
//! wipe was doing (a process nobody traces is killed on the spot; this
//! test's tracer delays that death, so it shows the signal, not how much
//! was wiped). SECURITY.md says so.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::memscan::Masked;
use common::traced::{
    CONTROL, can_trace, copy_in_a_loop, in_child, leave_control, needle, needle_of, random_seed,
    ready, seed, spawn, wait_for_go,
};

/// Bytes of the secret copied between boxes.
const BIG: usize = common::traced::COPIED;
/// The secret's kind.
const SECRET: u64 = 0x71;

#[test]
fn a_thread_blocking_sigsegv_that_touches_a_box_during_the_wipe_ends_the_process_by_sigsegv() {
    const NAME: &str =
        "a_thread_blocking_sigsegv_that_touches_a_box_during_the_wipe_ends_the_process_by_sigsegv";
    if in_child(NAME) {
        let seed = seed();
        leave_control(seed);
        copy_in_a_loop(seed, SECRET, || {
            let mut all = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            // SAFETY: `all` is a sigset_t to fill.
            unsafe { libc::sigfillset(all.as_mut_ptr()) };
            // SAFETY: `all` was filled above; no old mask asked for.
            let rc = unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), std::ptr::null_mut())
            };
            assert_eq!(rc, 0);
        });
        ready();
        wait_for_go();
        lockedmem::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    for run in 0..3 {
        let seed = random_seed();
        let needles: Vec<Masked> = vec![needle_of(seed, SECRET, BIG), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        child.assert_present(&refs, &format!("run {run}"));
        child.go();
        let death = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert_eq!(
            death.signal,
            Some(libc::SIGSEGV),
            "run {run}: the thread blocking SIGSEGV faulted on a box the wipe closed"
        );
    }
}
