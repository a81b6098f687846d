//! What sealing costs. Criterion measures each candidate; then an interleaved
//! run compares them within each repetition, on a machine that may be noisy:
//!
//! - `raw mprotect pair`: mprotect(PROT_READ) then mprotect(PROT_NONE) on a
//!   page set up like a box's data page (own VMA between guards, mlocked):
//!   the floor for a sealed borrow; criterion inlines it into its timing
//!   loop, so no function return follows either system call;
//! - `raw mprotect pair in a function`: the same inside a function that
//!   returns, as application code has it (on this kind of CPU the first
//!   return after a system call is expensive: see `time` below);
//! - `sealed borrow`: `borrow()`, read 32 bytes, drop, on a sealed box;
//! - `nested borrow`: the same while another `Ref` is out (no system call);
//! - `unsealed read`: reading 32 bytes of a plain `LockedBox` (the ceiling).
//!
//! `cargo bench --bench sealed`; the last table is the one benches/README.md quotes.

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "sealed compares against raw mprotect(2) pairs, which only Unix has: nothing to run on this platform"
    );
}

#[cfg(unix)]
#[path = "common/raw_page.rs"]
mod raw_page;

#[cfg(unix)]
fn main() {
    bench::main();
}

/// The bench itself (Unix).
#[cfg(unix)]
mod bench {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use super::raw_page::RawPage;
    use criterion::Criterion;
    use lockedmem::{LockedBox, SealedBox};

    fn sealed_secret() -> SealedBox<[u8; 32]> {
        LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A))
            .unwrap()
            .seal()
            .unwrap()
    }

    fn sum(bytes: &[u8; 32]) -> u32 {
        bytes.iter().map(|&b| u32::from(b)).sum()
    }

    fn criterion_benches(c: &mut Criterion) {
        let raw = RawPage::new();
        let sealed = sealed_secret();
        let unsealed = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)).unwrap();
        let mut g = c.benchmark_group("sealed 32-byte secret");
        g.bench_function("raw mprotect pair", |b| b.iter(|| black_box(raw.cycle())));
        g.bench_function("raw mprotect pair in a function", |b| {
            b.iter(|| black_box(raw.cycle_in_fn()))
        });
        g.bench_function("sealed borrow", |b| b.iter(|| sum(&sealed.borrow())));
        {
            let _outer = sealed.borrow();
            g.bench_function("nested borrow", |b| b.iter(|| sum(&sealed.borrow())));
        }
        g.bench_function("unsealed read", |b| b.iter(|| sum(black_box(&unsealed))));
        g.finish();
    }

    /// Nanoseconds per call of `f`, over `n` calls.
    ///
    /// Every candidate is called the same way, through a `dyn FnMut`: one
    /// operation is one function call that returns, as in an application where a
    /// borrow sits in some function. This matters on CPUs whose kernels mitigate
    /// return-stack attacks (AMD's SRSO "Safe RET", for one): there the first
    /// function return after a system call costs a few hundred nanoseconds, and
    /// a raw loop inlined into the timing loop would never pay it.
    fn time(n: u32, f: &mut dyn FnMut() -> u32) -> f64 {
        let start = Instant::now();
        let mut acc = 0u32;
        for _ in 0..n {
            acc = acc.wrapping_add(black_box(&mut *f)());
        }
        black_box(acc);
        start.elapsed().as_nanos() as f64 / f64::from(n)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// Every candidate once per repetition, in alternating order; ratios are
    /// taken within a repetition, then their median across repetitions.
    fn interleaved() {
        const REPS: usize = 41;
        let raw = RawPage::new();
        let sealed = sealed_secret();
        let unsealed = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)).unwrap();
        let (mut floor, mut cycle, mut nested, mut ceiling) = (vec![], vec![], vec![], vec![]);
        let (mut cycle_ratio, mut nested_ratio) = (vec![], vec![]);
        for rep in 0..REPS {
            let raw_ns = || time(2_000, &mut || u32::from(raw.cycle()));
            let sealed_ns = || time(2_000, &mut || sum(&sealed.borrow()));
            let (r, s) = if rep % 2 == 0 {
                let r = raw_ns();
                (r, sealed_ns())
            } else {
                let s = sealed_ns();
                (raw_ns(), s)
            };
            let n = {
                let _outer = sealed.borrow();
                time(200_000, &mut || sum(&sealed.borrow()))
            };
            let u = time(200_000, &mut || sum(black_box(&unsealed)));
            floor.push(r);
            cycle.push(s);
            nested.push(n);
            ceiling.push(u);
            cycle_ratio.push(s / r);
            nested_ratio.push(n / u);
        }
        println!();
        println!("interleaved, {REPS} repetitions, medians (ns per operation):");
        println!("| operation | median ns | ratio (median of per-repetition ratios) |");
        println!("| --- | ---: | ---: |");
        println!(
            "| raw mprotect(PROT_READ) + mprotect(PROT_NONE) pair | {:.0} | 1.00 (floor) |",
            median(floor)
        );
        println!(
            "| sealed borrow, read 32 bytes, drop | {:.0} | {:.3} x floor |",
            median(cycle),
            median(cycle_ratio)
        );
        println!(
            "| nested borrow (another Ref out), read, drop | {:.1} | {:.1} x ceiling |",
            median(nested),
            median(nested_ratio)
        );
        println!(
            "| unsealed LockedBox read 32 bytes (ceiling) | {:.1} | 1.0 |",
            median(ceiling)
        );
    }

    pub(super) fn main() {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
        interleaved();
    }
}
