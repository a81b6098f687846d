//! The last wipe, proved from outside: each test runs a child (this test
//! binary again) that holds secrets of every kind on several threads; the
//! parent attaches to every thread of it with ptrace, makes it die
//! (SIGTERM, a panic, a direct call), and at the point of death (the exit
//! stop of the thread that ends the process, its memory still whole) reads
//! all of the child's memory (`common::traced`). The secrets must be gone,
//! whole and in 16-byte fragments, and every signal frame's saved registers
//! scrubbed, while a pattern the child left in ordinary heap memory on
//! purpose must still be there (the scan sees the dying process), and
//! every secret must have been found before the death (the needles are
//! right). Then the child must die of the expected signal.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced).
#![cfg(target_os = "linux")]

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::memscan::Masked;
use common::traced::{
    CONTROL, LEN, Traced, assert_clean_death, can_trace, fill, in_child, leave_control, needle,
    no_core, random_seed, ready, rest_forever, secret_byte, seed, spawn, wait_for_go,
};
use lockedmem::{Isolation, LockedBox, LockedVec, Options};

/// What each secret is, per thread `t`: kind `t * 16 + k`.
const PAGE: u64 = 1;
const PACKED: u64 = 2;
const VEC: u64 = 3;
const ALLOC: u64 = 4;
const SEALED: u64 = 5;

/// Threads holding secrets in each child.
const THREADS: u64 = 3;

/// In the child: secrets of every kind on `THREADS` threads and the main
/// one, a sealed box held borrowed (a live `Ref`) by thread 0; returns once
/// all are made.
fn hold_secrets(seed: u64) {
    let sealed = Arc::new(
        LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, THREADS * 16 + SEALED))
            .unwrap()
            .seal()
            .unwrap(),
    );
    let made = Arc::new(Barrier::new(usize::try_from(THREADS).unwrap() + 1));
    for t in 0..THREADS {
        let (made, sealed) = (Arc::clone(&made), Arc::clone(&sealed));
        std::thread::spawn(move || {
            let k = t * 16;
            let page = Options::new()
                .isolation(Isolation::Page)
                .new_with(fill::<LEN>(seed, k + PAGE))
                .unwrap();
            let packed = Options::new()
                .isolation(Isolation::Packed)
                .new_with(fill::<LEN>(seed, k + PACKED))
                .unwrap();
            let mut vec = LockedVec::<u8>::new();
            for i in 0..LEN {
                vec.try_push(std::hint::black_box(secret_byte(seed, k + VEC, i)))
                    .unwrap();
            }
            #[cfg(feature = "allocator-api2")]
            let alloc = {
                let mut v =
                    allocator_api2::vec::Vec::with_capacity_in(LEN, lockedmem::LockedAlloc::new());
                for i in 0..LEN {
                    v.push(std::hint::black_box(secret_byte(seed, k + ALLOC, i)));
                }
                v
            };
            let own_sealed = LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, k + SEALED))
                .unwrap()
                .seal()
                .unwrap();
            let borrowed = (t == 0).then(|| sealed.borrow());
            made.wait();
            let _keep = (&page, &packed, &vec, &own_sealed, &borrowed);
            #[cfg(feature = "allocator-api2")]
            let _keep_alloc = &alloc;
            rest_forever();
        });
    }
    made.wait();
    std::mem::forget(sealed);
}

/// Every secret `hold_secrets` makes.
fn held_kinds() -> Vec<u64> {
    let mut kinds = vec![THREADS * 16 + SEALED];
    for t in 0..THREADS {
        let mut per = vec![PAGE, PACKED, VEC, SEALED];
        if cfg!(feature = "allocator-api2") {
            per.push(ALLOC);
        }
        kinds.extend(per.into_iter().map(|k| t * 16 + k));
    }
    kinds
}

/// The parent's side of a death test of a child holding `hold_secrets`:
/// checks that every secret is there before, none at the point of death,
/// the control pattern both times, and the signal the child died of.
fn prove(test: &str, seed: u64, death: impl FnOnce(&mut Traced), signal: i32) {
    let kinds = held_kinds();
    let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
    needles.push(needle(seed, CONTROL));
    let refs: Vec<&Masked> = needles.iter().collect();
    let mut child = spawn(test, seed, &[]);
    child.assert_present(&refs, "the living child");
    death(&mut child);
    let death = child.until_death(&refs, Duration::from_secs(20)).unwrap();
    let secrets: Vec<usize> = (0..kinds.len()).collect();
    assert_clean_death(&death, &secrets, kinds.len(), &[], signal, test);
}

#[test]
fn sigterm_wipes_every_secret_then_kills_by_sigterm() {
    const NAME: &str = "sigterm_wipes_every_secret_then_kills_by_sigterm";
    if in_child(NAME) {
        let seed = seed();
        lockedmem::wipe_on_signals(&[libc::SIGTERM]).unwrap();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    prove(
        NAME,
        random_seed(),
        |c| c.kill(libc::SIGTERM),
        libc::SIGTERM,
    );
}

#[test]
fn a_panic_wipes_every_secret_then_aborts() {
    const NAME: &str = "a_panic_wipes_every_secret_then_aborts";
    if in_child(NAME) {
        let seed = seed();
        no_core();
        lockedmem::wipe_on_panic();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        wait_for_go();
        panic!("the test's panic");
    }
    if !can_trace() {
        return;
    }
    prove(NAME, random_seed(), Traced::go, libc::SIGABRT);
}

#[test]
fn wipe_all_and_abort_wipes_every_secret() {
    const NAME: &str = "wipe_all_and_abort_wipes_every_secret";
    if in_child(NAME) {
        let seed = seed();
        no_core();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        wait_for_go();
        lockedmem::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    prove(NAME, random_seed(), Traced::go, libc::SIGABRT);
}

/// One secret of each kind of thread `t` (a page box, a packed box, a
/// vector and a sealed box).
type Four = (
    LockedBox<[u8; LEN]>,
    LockedBox<[u8; LEN]>,
    LockedVec<u8>,
    lockedmem::SealedBox<[u8; LEN]>,
);

fn make_four(seed: u64, t: u64) -> Four {
    let k = t * 16;
    let page = Options::new()
        .isolation(Isolation::Page)
        .new_with(fill::<LEN>(seed, k + PAGE))
        .unwrap();
    let packed = Options::new()
        .isolation(Isolation::Packed)
        .new_with(fill::<LEN>(seed, k + PACKED))
        .unwrap();
    let mut vec = LockedVec::<u8>::new();
    for i in 0..LEN {
        vec.try_push(std::hint::black_box(secret_byte(seed, k + VEC, i)))
            .unwrap();
    }
    let sealed = LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, k + SEALED))
        .unwrap()
        .seal()
        .unwrap();
    (page, packed, vec, sealed)
}

/// A thread of the stress child: keeps one secret of each of its kinds for
/// good (so that each is there to be found before the signal), then makes,
/// borrows and drops more of them in a loop.
fn churn(seed: u64, t: u64, made: &Barrier) -> ! {
    let _witness = make_four(seed, t);
    made.wait();
    let mut n = 0u64;
    loop {
        let (page, packed, vec, sealed) = make_four(seed, t);
        {
            let r = sealed.borrow();
            // Two bytes, not a copy: a vector register saved in a signal
            // frame would be a copy outside the crate's memory.
            n = n.wrapping_add(u64::from(r[0] ^ r[LEN - 1]));
        }
        if n % 3 == 0 {
            drop(page);
            drop(sealed);
        } else {
            drop(vec);
            drop(packed);
        }
        std::hint::black_box(n);
    }
}

#[test]
fn sigterm_at_random_moments_under_churn() {
    const NAME: &str = "sigterm_at_random_moments_under_churn";
    if in_child(NAME) {
        let seed = seed();
        lockedmem::wipe_on_signals(&[libc::SIGTERM]).unwrap();
        leave_control(seed);
        let made = Arc::new(Barrier::new(usize::try_from(THREADS).unwrap() + 1));
        for t in 0..THREADS {
            let made = Arc::clone(&made);
            std::thread::spawn(move || churn(seed, t, &made));
        }
        made.wait();
        ready();
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    let runs = 10;
    let mut took = Vec::new();
    for run in 0..runs {
        let seed = random_seed();
        let kinds: Vec<u64> = (0..THREADS)
            .flat_map(|t| [PAGE, PACKED, VEC, SEALED].map(|k| t * 16 + k))
            .collect();
        let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
        needles.push(needle(seed, CONTROL));
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        let what = format!("run {run}");
        child.assert_present(&refs, &what);
        let delay = Duration::from_micros(seed % 50_000);
        std::thread::sleep(delay);
        let sent = Instant::now();
        child.kill(libc::SIGTERM);
        let death = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("run {run} (delay {delay:?}): {e}"));
        took.push(sent.elapsed());
        let secrets: Vec<usize> = (0..kinds.len()).collect();
        let what = format!("run {run} (delay {delay:?})");
        assert_clean_death(&death, &secrets, kinds.len(), &[], libc::SIGTERM, &what);
    }
    eprintln!("SIGTERM to death (scan included): {took:?}");
}
