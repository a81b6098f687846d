//! What shielding costs (feature `shield`). Candidates, each one call of a
//! function that returns (as `benches/sealed.rs` times them), interleaved
//! in every repetition in a rotating order; ratios are medians of
//! per-repetition ratios:
//!
//! - `shielded, key kept`: `borrow()`, read 32 bytes, drop, on a
//!   `ShieldedBox::new_with` secret (key in secret memory where the kernel
//!   has it: the run says whether it did);
//! - `shielded, key derived`: the same with the key derived from its 16 KiB
//!   prekey for each use (`Backing::Anonymous`);
//! - `sealed borrow`: `borrow()`, read, drop, on a `SealedBox` (two
//!   mprotect calls);
//! - `raw mprotect pair`: mprotect(PROT_READ) and mprotect(PROT_NONE) of a
//!   locked page between guards, in a function;
//! - `BLAKE2b of 16 KiB`: the hash a derivation adds;
//! - `2 x SHA-512 of 16 KiB`: what OpenSSH's shielding costs per use.
//!
//! Then `rekey()` over 1,000,000 shielded 32-byte secrets (key kept), three
//! times, while a thread borrows secrets at random: the time per secret, and
//! the quantiles of the borrows' times during the rekeys against the same
//! thread's with the main thread spinning instead (no rekey): a rekey that
//! held borrows back for more than one secret's re-encryption would show
//! in the upper quantiles.
//!
//! `cargo bench --features shield --bench shield`

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "shield compares against raw mprotect(2) pairs, which only Unix has: nothing to run on this platform"
    );
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(unix)]
#[path = "common/raw_page.rs"]
mod raw_page;

/// The bench itself (Unix).
#[cfg(unix)]
mod bench {
    use super::raw_page::RawPage;
    use std::hint::black_box;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use blake2::Blake2b512;
    use lockedmem::{Backing, LockedBox, Options, SealedBox, ShieldedBox};
    use sha2::{Digest, Sha512};

    fn sum(bytes: &[u8; 32]) -> u32 {
        bytes.iter().map(|&b| u32::from(b)).sum()
    }

    /// Nanoseconds per call of `f`, over `n` calls.
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

    fn interleaved() {
        const REPS: usize = 31;
        let raw = RawPage::new();
        let sealed: SealedBox<[u8; 32]> = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A))
            .unwrap()
            .seal()
            .unwrap();
        let kept = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)).unwrap();
        let derived = Options::new()
            .backing(Backing::Anonymous)
            .shielded_with::<[u8; 32]>(|k| k.fill(0x5A))
            .unwrap();
        let in_secret = Options::new()
            .backing(Backing::SecretMem)
            .shielded_with::<[u8; 32]>(|k| k.fill(1))
            .is_ok();
        let prekey = vec![0x33u8; 16 * 1024];
        let names = [
            "shielded borrow, read 32 bytes, drop; key kept",
            "shielded borrow, read, drop; key derived for each use",
            "sealed borrow, read 32 bytes, drop",
            "raw mprotect pair, in a function",
            "BLAKE2b-512 of 16 KiB",
            "2 x SHA-512 of 16 KiB (OpenSSH, per use)",
        ];
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut ratios: Vec<(&str, Vec<f64>)> = vec![
            ("key kept / sealed borrow", Vec::new()),
            ("key kept / raw mprotect pair", Vec::new()),
            ("key derived / sealed borrow", Vec::new()),
            ("(key derived - key kept) / BLAKE2b of 16 KiB", Vec::new()),
            ("key derived / 2 x SHA-512 of 16 KiB", Vec::new()),
        ];
        for rep in 0..REPS {
            let mut t = [0.0f64; 6];
            for k in 0..names.len() {
                let i = (k + rep) % names.len();
                t[i] = match i {
                    0 => time(20_000, &mut || sum(&kept.borrow().unwrap())),
                    1 => time(2_000, &mut || sum(&derived.borrow().unwrap())),
                    2 => time(5_000, &mut || {
                        let r = sealed.borrow();
                        sum(&r)
                    }),
                    3 => time(5_000, &mut || u32::from(raw.cycle_in_fn())),
                    4 => time(2_000, &mut || {
                        u32::from(Blake2b512::digest(black_box(&prekey[..]))[0])
                    }),
                    _ => time(1_000, &mut || {
                        let a = Sha512::digest(black_box(&prekey[..]));
                        u32::from(a[0]) + u32::from(Sha512::digest(black_box(&prekey[..]))[0])
                    }),
                };
            }
            for (i, v) in t.iter().enumerate() {
                ns[i].push(*v);
            }
            ratios[0].1.push(t[0] / t[2]);
            ratios[1].1.push(t[0] / t[3]);
            ratios[2].1.push(t[1] / t[2]);
            ratios[3].1.push((t[1] - t[0]) / t[4]);
            ratios[4].1.push(t[1] / t[5]);
        }
        println!();
        println!(
            "interleaved, {REPS} repetitions; the kept key is in {}:",
            if in_secret {
                "secret memory"
            } else {
                "anonymous memory (no secret memory here)"
            }
        );
        println!("| operation | median ns (this run, for scale) |");
        println!("| --- | ---: |");
        for (name, v) in names.iter().zip(ns) {
            println!("| {name} | {:.0} |", median(v));
        }
        println!();
        println!("| ratio | median of per-repetition ratios |");
        println!("| --- | ---: |");
        for (name, v) in ratios {
            println!("| {name} | {:.2} |", median(v));
        }
    }

    fn rekey_million() {
        const N: usize = 1_000_000;
        let secrets: Arc<Vec<ShieldedBox<[u8; 32]>>> = Arc::new(
            (0..N)
                .map(|i| {
                    ShieldedBox::<[u8; 32]>::new_with(|k| k[..8].copy_from_slice(&i.to_le_bytes()))
                        .unwrap()
                })
                .collect(),
        );
        // Borrows alone, for the median.
        let mut alone = Vec::with_capacity(100_000);
        for i in 0..100_000 {
            let s = &secrets[(i * 7919) % N];
            let t = Instant::now();
            black_box(sum(&s.borrow().unwrap()));
            alone.push(t.elapsed().as_nanos() as f64);
        }
        let borrow_median = median(alone);
        // A thread borrowing at random while the main thread rekeys, or (for
        // the baseline: the borrows on this machine without a rekey,
        // preemption included) while the main thread spins as long.
        let borrowing = |rekeying: bool| {
            let stop = Arc::new(AtomicBool::new(false));
            let borrower = {
                let (secrets, stop) = (secrets.clone(), stop.clone());
                std::thread::spawn(move || {
                    // Every borrow's time, in ns (saturated at 4 s).
                    let mut times: Vec<u32> = Vec::with_capacity(8 << 20);
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let s = &secrets[(i * 7919) % N];
                        let t = Instant::now();
                        black_box(sum(&s.borrow().unwrap()));
                        times.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                        i += 1;
                    }
                    times.sort_unstable();
                    times
                })
            };
            let mut per_secret = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                if rekeying {
                    lockedmem::rekey().unwrap();
                } else {
                    while t.elapsed().as_secs_f64() < 2.0 {
                        std::hint::spin_loop();
                    }
                }
                per_secret.push(t.elapsed().as_nanos() as f64 / N as f64);
            }
            stop.store(true, Ordering::Relaxed);
            (per_secret, borrower.join().unwrap())
        };
        let (_, alone) = borrowing(false);
        let (per_secret, during) = borrowing(true);
        // The borrow time at quantile `q`, over a borrow's median alone.
        // The quantiles are fixed fractions of a count below 2^32.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let at = |times: &[u32], q: f64| {
            let i = ((times.len() - 1) as f64 * q) as usize;
            f64::from(times[i]) / borrow_median
        };
        println!();
        println!(
            "rekey() over {N} shielded 32-byte secrets (key kept), 3 runs, a thread borrowing:"
        );
        println!("| figure | value |");
        println!("| --- | ---: |");
        println!(
            "| rekey, median ns per secret (this run) | {:.0} |",
            median(per_secret.clone())
        );
        println!(
            "| rekey per secret / a borrow's median | {:.2} |",
            median(per_secret) / borrow_median
        );
        println!("| borrows during the rekeys | {} |", during.len());
        println!();
        println!(
            "the borrowing thread's borrow times over a borrow's median (alone), while the main \
             thread rekeys, and while it spins as long (no rekey: what preemption alone costs):"
        );
        println!("| quantile | during rekey() | no rekey |");
        println!("| --- | ---: | ---: |");
        for (name, q) in [
            ("median", 0.5),
            ("99 %", 0.99),
            ("99.9 %", 0.999),
            ("99.99 %", 0.9999),
            ("longest", 1.0),
        ] {
            println!("| {name} | {:.1} | {:.1} |", at(&during, q), at(&alone, q));
        }
    }

    pub(super) fn main() {
        interleaved();
        rekey_million();
    }
}
