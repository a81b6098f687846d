//! The last wipe in a process that has run out of file descriptors
//! (`EMFILE`: a leak, or a peer opening connections until the limit): it
//! needs one, for `/proc/self/task` (to stop the other threads) and for
//! `/proc/self/mem` (to zero memory while it stays `PROT_NONE`).
//! `wipe_on_signals` keeps one in reserve, which the wipe gives back to the
//! process first thing.
//!
//! The child (this test binary again) has a thread inside read(2) into a
//! box in a loop, as in `tests/last_wipe_races.rs`: the kernel writes into
//! the box whenever it is writable and gets `EFAULT` while it is not, so
//! only a signal stops that thread, and only zeroing through
//! `/proc/self/mem` keeps the box closed while it is zeroed. Then the
//! child uses up its descriptors and gets `SIGTERM`; at the point of death
//! (`common::traced`) nothing of what was read may be left. Without the
//! reserve, the wipe could do neither, and the data read after the zeros
//! was found there.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::memscan::Masked;
use common::traced::{
    CONTROL, LEN, assert_clean_death, can_trace, in_child, leave_control, needle, random_seed,
    ready, rest_forever, secret_in_a_pipe, seed, spawn, wait_for_go,
};
use lockedmem::{LockedBox, Signal};

/// The secret's kind.
const SECRET: u64 = 0x91;

/// The present `SIGSEGV` handler.
fn segv_handler() -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is valid; it only receives the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the disposition only; `old` is ours.
    unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &raw mut old) };
    old.sa_sigaction
}

#[test]
fn a_process_out_of_descriptors_is_still_wiped_whole() {
    const NAME: &str = "a_process_out_of_descriptors_is_still_wiped_whole";
    const BOX: usize = 1 << 20;
    if in_child(NAME) {
        let seed = seed();
        lockedmem::wipe_on_signals(&[Signal::TERM]).unwrap();
        leave_control(seed);
        // The secret waits in a pipe (kernel memory).
        let pipe = secret_in_a_pipe(seed, SECRET, 60_000);
        let before = segv_handler();
        let mut boxed = LockedBox::<[u8]>::new_zeroed_slice(BOX).unwrap();
        // Every page resident, so that the wipe zeroes all of it.
        boxed.fill(1);
        let at = boxed.as_mut_ptr() as usize;
        std::mem::forget(boxed);
        std::thread::spawn(move || {
            // The wipe installs its own SIGSEGV handler first thing.
            while segv_handler() == before {
                std::hint::spin_loop();
            }
            loop {
                // SAFETY: reads into the box (the kernel checks the
                // protection: `EFAULT` while it is not writable).
                unsafe { libc::read(pipe, at as *mut libc::c_void, LEN) };
            }
        });
        ready();
        wait_for_go();
        // Every descriptor taken.
        // SAFETY: dup of standard input; the copies are kept for good.
        while unsafe { libc::dup(0) } >= 0 {}
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EMFILE)
        );
        println!("OUT-OF-DESCRIPTORS");
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    for run in 0..3 {
        let seed = random_seed();
        let needles = [needle(seed, SECRET), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        child.go();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !child
            .output()
            .iter()
            .any(|l| l.contains("OUT-OF-DESCRIPTORS"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: the child did not use up its descriptors: {:?}",
                child.output()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill(libc::SIGTERM);
        let death = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("run {run}: {e}"));
        let what = format!("run {run}: out of descriptors, data read into a box behind the wipe");
        assert_clean_death(&death, &[0], 1, &[], libc::SIGTERM, &what);
    }
}
