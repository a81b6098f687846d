//! A million packed 32-byte secrets under `LockPolicy::BestEffort`, made in
//! a process without CAP_IPC_LOCK under a 64 KiB RLIMIT_MEMLOCK (1,024 are
//! locked, the rest go to unlocked packed pages), against the same million
//! in a process where the limit does not bind (CAP_IPC_LOCK kept, so every
//! page is locked).
//!
//! Each measurement is a fresh child process (this binary run again with
//! `LOCKEDMEM_BENCH_CHILD` set), so that each starts from an empty
//! allocator; the two kinds alternate, in an order that rotates, and each
//! child times only the loop that makes the boxes and reports it on stdout.
//! The ratio is the median of the per-repetition ratios.
//!
//! `cargo bench --bench best_effort`.

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "best_effort measures the lock limit of Unix (RLIMIT_MEMLOCK): nothing to run on this platform"
    );
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(unix)]
#[path = "common/limit.rs"]
mod limit;

/// The bench itself (Unix).
#[cfg(unix)]
mod bench {
    use std::hint::black_box;
    use std::process::Command;
    use std::time::Instant;

    use super::limit::limit_to_64_kib;
    use lockedmem::{Isolation, LockPolicy, Options};

    const N: usize = 1_000_000;
    const REPS: usize = 9;
    const VAR: &str = "LOCKEDMEM_BENCH_CHILD";

    /// Makes the million boxes; prints the nanoseconds and how many are locked.
    fn child(limited: bool) {
        if limited {
            limit_to_64_kib();
        }
        // One box first, so process-wide set-up is not timed.
        drop(Options::new().zeroed::<[u8; 32]>().expect("a first box"));
        let opts = Options::new()
            .isolation(Isolation::Packed)
            .lock(LockPolicy::BestEffort);
        let mut boxes = Vec::with_capacity(N);
        let start = Instant::now();
        for _ in 0..N {
            boxes.push(opts.zeroed::<[u8; 32]>().expect("box"));
        }
        let ns = start.elapsed().as_nanos();
        let locked = boxes.iter().filter(|b| b.is_locked()).count();
        black_box(&boxes);
        println!("{ns} {locked}");
    }

    /// Runs one child; its nanoseconds and locked count.
    fn run(limited: bool) -> (f64, usize) {
        let exe = std::env::current_exe().expect("current_exe");
        let kind = if limited { "limited" } else { "lifted" };
        let out = Command::new(exe)
            .env(VAR, kind)
            .output()
            .expect("run the bench again");
        assert!(out.status.success(), "{kind} child: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut words = text.split_whitespace();
        let ns = words.next().and_then(|w| w.parse().ok()).expect("ns");
        let locked = words.next().and_then(|w| w.parse().ok()).expect("locked");
        (ns, locked)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub(super) fn main() {
        match std::env::var(VAR).as_deref() {
            Ok("limited") => return child(true),
            Ok("lifted") => return child(false),
            _ => {}
        }
        if std::env::args().any(|a| a == "--list") {
            return; // cargo bench --list
        }
        let (mut limited, mut lifted, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut locked = (0, 0);
        for rep in 0..REPS {
            let ((a, la), (b, lb)) = if rep % 2 == 0 {
                let a = run(true);
                (a, run(false))
            } else {
                let b = run(false);
                (run(true), b)
            };
            limited.push(a / 1e6);
            lifted.push(b / 1e6);
            ratios.push(a / b);
            locked = (la, lb);
        }
        let ratio = median(ratios);
        let verdict = if ratio <= 2.0 { "met" } else { "**missed**" };
        println!();
        println!(
            "{N} packed 32-byte secrets, BestEffort, {REPS} alternating child processes, medians"
        );
        println!();
        println!("| process | time to make them (ms) | locked | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        println!(
            "| 64 KiB RLIMIT_MEMLOCK, no CAP_IPC_LOCK | {:.0} | {} | {ratio:.2} x (target <= 2 x: {verdict}) |",
            median(limited),
            locked.0
        );
        println!(
            "| limit lifted (CAP_IPC_LOCK) | {:.0} | {} | 1.00 (baseline) |",
            median(lifted),
            locked.1
        );
    }
}
