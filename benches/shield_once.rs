//! One repetition of the shield's borrow cycles, for `benches/memguard/
//! run.sh`, which interleaves it with memguard's `Enclave.Open` (a Go
//! process) and takes the medians of per-repetition ratios; alone, it
//! compares nothing. Each cycle is `borrow()`, read 32 bytes, drop, timed
//! over `n` calls after a warm-up, as `benches/shield.rs` times them:
//!
//! - a `ShieldedBox::new_with` secret (key kept: in secret memory where the
//!   kernel has it, which the line on standard error says);
//! - the same with the key derived from its 16 KiB prekey for each use
//!   (`Backing::Anonymous`);
//! - a `SealedBox` (two mprotect calls).
//!
//! Prints one line, `kept_ns derived_ns sealed_ns`. `LOCKEDMEM_BENCH_REP`
//! (a repetition number) rotates the order of the three.
//!
//! `cargo bench --features shield --bench shield_once`

use std::hint::black_box;
use std::time::Instant;

use lockedmem::{Backing, LockedBox, Options, SealedBox, ShieldedBox};

fn sum(bytes: &[u8; 32]) -> u32 {
    bytes.iter().map(|&b| u32::from(b)).sum()
}

/// Nanoseconds per call of `f`, over `n` calls, after `n / 10` untimed.
fn time(n: u32, f: &mut dyn FnMut() -> u32) -> f64 {
    let mut acc = 0u32;
    for _ in 0..n / 10 {
        acc = acc.wrapping_add(black_box(&mut *f)());
    }
    let start = Instant::now();
    for _ in 0..n {
        acc = acc.wrapping_add(black_box(&mut *f)());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    black_box(acc);
    ns
}

fn main() {
    let rep: usize = std::env::var("LOCKEDMEM_BENCH_REP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
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
    assert_eq!(sum(&kept.borrow().unwrap()), 32 * 0x5A);
    assert_eq!(sum(&derived.borrow().unwrap()), 32 * 0x5A);
    assert_eq!(sum(&sealed.borrow()), 32 * 0x5A);
    let mut t = [0.0f64; 3];
    for k in 0..3 {
        let i = (k + rep) % 3;
        t[i] = match i {
            0 => time(20_000, &mut || sum(&kept.borrow().unwrap())),
            1 => time(2_000, &mut || sum(&derived.borrow().unwrap())),
            _ => time(5_000, &mut || sum(&sealed.borrow())),
        };
    }
    eprintln!(
        "shield_once: the kept key is in {}",
        if in_secret {
            "secret memory"
        } else {
            "anonymous memory (no secret memory here)"
        }
    );
    println!("{:.1} {:.1} {:.1}", t[0], t[1], t[2]);
}
