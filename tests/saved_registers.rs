//! The last wipe leaves no secret in saved registers. A thread that copies
//! a secret between two boxes holds parts of it in vector registers for the
//! whole copy (glibc's `memcpy` keeps the first 64 bytes of its source in
//! `zmm16` during a `rep movsb` on CPUs with AVX-512, and 16-byte pieces in
//! `xmm` registers elsewhere); when a signal lands on it, the kernel saves
//! those registers into the signal frame on the thread's stack. The crate's
//! handlers scrub that frame before anything else, and the wipe waits until
//! every thread it stopped has done so.
//!
//! Each test runs a child (this test binary again) in which one thread
//! copies a 1,024-byte secret from one box into another in a loop, and
//! another thread, stopped for good inside a signal handler of the
//! program's own while it copied a control pattern between two ordinary
//! buffers, keeps that pattern in its (foreign, unscrubbed) frame: the scan
//! at the point of death must find that frame and the pattern in it, or it
//! cannot see saved registers at all. Then the child dies by
//! `wipe_all_and_abort()` or by a `SIGTERM` aimed at the copying thread
//! itself, and the scan (`common::traced`) must find no 16-byte fragment of
//! the secret anywhere and every other signal frame scrubbed.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::memscan::Masked;
use common::traced::{
    CONTROL, assert_clean_death, can_trace, copy_in_a_loop, fill, in_child, leave_control, needle,
    needle_of, random_seed, ready, rest_forever, secret_byte, seed, spawn, wait_for_go,
};
use lockedmem::LockedBox;

/// Bytes of the secret copied between boxes.
const BIG: usize = common::traced::COPIED;
/// The secret's kind.
const SECRET: u64 = 0x51;
/// The pattern the foreign-handler thread copies.
const FOREIGN: u64 = 0x52;

static IN_HANDLER: AtomicBool = AtomicBool::new(false);

/// A handler of the program's own that never returns: the frame the kernel
/// saved for it stays as it is.
extern "C" fn park_in_handler(_sig: libc::c_int) {
    IN_HANDLER.store(true, Ordering::SeqCst);
    loop {
        // SAFETY: pause takes nothing.
        unsafe { libc::pause() };
    }
}

/// A handler of the program's own for `SIGABRT` that returns at once (a
/// crash reporter's would do its work there): `abort(3)` then ends the
/// process all the same, but the kernel first saves the registers of the
/// aborting thread in a frame on its stack.
extern "C" fn return_at_once(_sig: libc::c_int) {}

/// How the child dies.
#[derive(Clone, Copy)]
enum Death {
    /// The main thread calls `wipe_all_and_abort()` on the parent's word.
    Abort,
    /// The parent sends `SIGTERM` to the copying thread, which does the
    /// wipe in `wipe_on_signals`'s handler, on top of its own copy.
    SigtermOnCopier,
}

fn copying_child(death: Death) -> ! {
    let seed = seed();
    if let Death::SigtermOnCopier = death {
        lockedmem::wipe_on_signals(&[libc::SIGTERM]).unwrap();
    }
    leave_control(seed);
    // The foreign frame: a thread copying the control pattern between two
    // ordinary buffers, stopped inside the program's own SIGUSR1 handler.
    // SAFETY: an all-zero sigaction is valid; the handler only stores an
    // atomic and pauses.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = park_in_handler as *const () as libc::sighandler_t;
    // SAFETY: installs the handler above; no old action asked for.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &raw const act, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let from: Vec<u8> = (0..BIG)
            .map(|i| std::hint::black_box(secret_byte(seed, FOREIGN, i)))
            .collect();
        let mut to = vec![0u8; BIG];
        tid_tx.send(rustix::thread::gettid()).unwrap();
        loop {
            to.copy_from_slice(&from);
            std::hint::black_box(&mut to);
        }
    });
    let foreign = tid_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: signals a thread of this process.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            pid,
            foreign.as_raw_nonzero().get(),
            libc::SIGUSR1,
        )
    };
    while !IN_HANDLER.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // The copy the issue found: box to box, in a loop.
    copy_in_a_loop(seed, SECRET, || {});
    std::thread::sleep(Duration::from_millis(5));
    ready();
    match death {
        Death::Abort => {
            wait_for_go();
            lockedmem::wipe_all_and_abort();
        }
        Death::SigtermOnCopier => rest_forever(),
    }
}

fn prove(name: &str, death: Death, runs: usize) {
    for run in 0..runs {
        let seed = random_seed();
        let needles: Vec<Masked> = vec![
            needle_of(seed, SECRET, BIG),
            needle(seed, CONTROL),
            needle_of(seed, FOREIGN, BIG),
        ];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(name, seed, &[]);
        let what = format!("{name} run {run}");
        child.assert_present(&refs, &what);
        let signal = match death {
            Death::Abort => {
                child.go();
                libc::SIGABRT
            }
            Death::SigtermOnCopier => {
                let copier = child.workers[0];
                child.tkill(copier, libc::SIGTERM);
                libc::SIGTERM
            }
        };
        let death = child.until_death(&refs, Duration::from_secs(20)).unwrap();
        let seen: Vec<_> = death
            .report
            .frames
            .iter()
            .filter(|f| f.holds.contains(&2))
            .collect();
        assert!(
            !seen.is_empty(),
            "{what}: the control pattern saved in the registers of a thread stopped in the \
             program's own handler was not found in any signal frame: the scan cannot see \
             saved registers (frames: {:#?})",
            death.report.frames
        );
        assert_clean_death(&death, &[0], 1, &[2], signal, &what);
    }
}

#[test]
fn no_fragment_of_a_copied_secret_is_left_after_wipe_all_and_abort() {
    const NAME: &str = "no_fragment_of_a_copied_secret_is_left_after_wipe_all_and_abort";
    if in_child(NAME) {
        copying_child(Death::Abort);
    }
    if can_trace() {
        prove(NAME, Death::Abort, 3);
    }
}

#[test]
fn no_fragment_of_a_copied_secret_is_left_after_a_sigterm_on_the_copying_thread() {
    const NAME: &str =
        "no_fragment_of_a_copied_secret_is_left_after_a_sigterm_on_the_copying_thread";
    if in_child(NAME) {
        copying_child(Death::SigtermOnCopier);
    }
    if can_trace() {
        prove(NAME, Death::SigtermOnCopier, 3);
    }
}

/// The wiping thread's own registers: it copies the secret between two
/// boxes, then calls `wipe_all_and_abort()` itself, with a `SIGABRT`
/// handler of the program's own installed, so that the kernel saves the
/// registers it has at `abort(3)` in a frame (a crash reporter would then
/// send that stack away). The wipe clears them before it aborts: no
/// fragment of the secret may be in that frame.
#[test]
fn the_wiping_thread_leaves_no_fragment_in_its_own_registers() {
    const NAME: &str = "the_wiping_thread_leaves_no_fragment_in_its_own_registers";
    if in_child(NAME) {
        let seed = seed();
        leave_control(seed);
        // SAFETY: an all-zero sigaction is valid; the handler does nothing.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = return_at_once as *const () as libc::sighandler_t;
        // SAFETY: installs the handler above; no old action asked for.
        let rc = unsafe { libc::sigaction(libc::SIGABRT, &raw const act, std::ptr::null_mut()) };
        assert_eq!(rc, 0);
        let from = LockedBox::<[u8; BIG]>::new_with(fill::<BIG>(seed, SECRET)).unwrap();
        let mut to = LockedBox::<[u8; BIG]>::new_zeroed().unwrap();
        ready();
        wait_for_go();
        for _ in 0..1000 {
            to.copy_from_slice(&from[..]);
            std::hint::black_box(&mut *to);
        }
        // The copy's own registers are overwritten by the wipe's code
        // (glibc's memset and memcpy use the same ones); registers nothing
        // in the wipe touches are loaded with the secret on purpose, as
        // other code (a cipher) may leave them.
        load_registers(&from[..]);
        lockedmem::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    for run in 0..3 {
        let seed = random_seed();
        let needles = [needle_of(seed, SECRET, BIG), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        let what = format!("{NAME} run {run}");
        child.assert_present(&refs, &what);
        child.go();
        let death = child.until_death(&refs, Duration::from_secs(20)).unwrap();
        assert_clean_death(&death, &[0], 1, &[], libc::SIGABRT, &what);
    }
}

/// Loads 512 bytes of `secret` into `zmm24`-`zmm31` (with AVX-512), or 128
/// into `xmm8`-`xmm15`: registers glibc's string functions and the wipe's
/// own code leave alone.
fn load_registers(secret: &[u8]) {
    assert!(secret.len() >= 512);
    let at = secret.as_ptr();
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present; reads 512 bytes of `secret`; the
        // registers are not used by the compiled code (no AVX-512 there).
        unsafe {
            std::arch::asm!(
                "vmovdqu64 zmm24, [{p}]", "vmovdqu64 zmm25, [{p} + 64]",
                "vmovdqu64 zmm26, [{p} + 128]", "vmovdqu64 zmm27, [{p} + 192]",
                "vmovdqu64 zmm28, [{p} + 256]", "vmovdqu64 zmm29, [{p} + 320]",
                "vmovdqu64 zmm30, [{p} + 384]", "vmovdqu64 zmm31, [{p} + 448]",
                p = in(reg) at,
                options(nostack, readonly, preserves_flags),
            );
        }
    } else {
        // SAFETY: SSE2 is part of x86-64; reads 128 bytes of `secret`.
        unsafe {
            std::arch::asm!(
                "movdqu xmm8, [{p}]", "movdqu xmm9, [{p} + 16]",
                "movdqu xmm10, [{p} + 32]", "movdqu xmm11, [{p} + 48]",
                "movdqu xmm12, [{p} + 64]", "movdqu xmm13, [{p} + 80]",
                "movdqu xmm14, [{p} + 96]", "movdqu xmm15, [{p} + 112]",
                p = in(reg) at,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
}
