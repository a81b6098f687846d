//! Shielded secrets (feature `shield`) seen from outside the crate: a scan
//! of the whole process finds a secret's plaintext nowhere while it is not
//! borrowed, exactly once (in locked memory) during a borrow and nowhere
//! after (where the derived key is not is tested inside the crate, which
//! alone can name it: `src/shield/key_tests.rs`); a fork child cannot
//! unshield; `rekey` while threads borrow and write; a changed ciphertext
//! is `Error::Tampered`, never wrong plaintext.
// Linux only: scans its own memory through /proc/self/mem, reads smaps.
#![cfg(all(target_os = "linux", feature = "shield"))]

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::memscan::{self, Masked};
use common::seeded::{byte, fill, is};
use common::{Seen, child, in_fork, procfs};
use lockedmem::{Backing, Error, Options, ShieldedBox};

fn needle(seed: u8) -> Masked {
    Masked::from_fn(32, |i| byte(seed, i))
}

/// Options for a shielded secret whose key is in secret memory where the
/// kernel has it, or derived for each use.
fn shield_opts(backing: Backing) -> Options {
    Options::new().backing(backing)
}

/// How often the needle occurs in the process: where the key may be in
/// secret memory, outside it (the plaintext never goes there).
fn count(n: &Masked, backing: Backing) -> usize {
    match backing {
        Backing::Anonymous => memscan::count(n),
        _ => memscan::count_outside_secret_memory(n),
    }
}

/// Plaintext nowhere at rest, once during a borrow (in locked memory),
/// nowhere after, for `borrow` and `borrow_mut`.
fn plaintext_only_while_borrowed(backing: Backing) {
    let (seed, written, control_seed) = (7, 8, 9);
    // The control: a heap copy the scan must find.
    let control: Vec<u8> = (0..32).map(|i| black_box(byte(control_seed, i))).collect();
    // Kept: the optimiser must not drop a buffer nothing reads.
    black_box(&control);
    let mut b = shield_opts(backing)
        .shielded_with::<[u8; 32]>(|k| fill(k, seed))
        .unwrap();
    assert_eq!(
        count(&needle(control_seed), backing),
        1,
        "the control is found"
    );
    assert_eq!(count(&needle(seed), backing), 0, "at rest: nowhere");
    {
        let r = b.borrow().unwrap();
        assert!(is(&r, seed));
        assert_eq!(count(&needle(seed), backing), 1, "borrowed: once");
        let vma = procfs::vma_at(r.as_ptr() as usize).unwrap();
        assert!(vma.has("lo"), "the plaintext is in locked memory: {vma:?}");
        // Not dumped, where the platform can keep memory out of cores (not
        // in the portable test mode).
        assert_eq!(
            vma.has("dd"),
            common::promises().dump_exclusion,
            "dump advice: {vma:?}"
        );
    }
    assert_eq!(count(&needle(seed), backing), 0, "after the guard: nowhere");
    {
        let mut w = b.borrow_mut().unwrap();
        assert_eq!(count(&needle(seed), backing), 1, "borrowed to write: once");
        fill(&mut w, written);
        assert_eq!(count(&needle(seed), backing), 0);
        assert_eq!(count(&needle(written), backing), 1);
    }
    assert_eq!(count(&needle(written), backing), 0, "written back: nowhere");
    assert!(is(&b.borrow().unwrap(), written), "the write was kept");
    assert_eq!(count(&needle(written), backing), 0);
    drop(b);
    assert_eq!(count(&needle(written), backing), 0);
    black_box(&control);
    drop(control);
}

#[test]
fn plaintext_only_while_borrowed_key_derived_for_each_use() {
    let out = child::run(
        "plaintext_only_while_borrowed_key_derived_for_each_use",
        || plaintext_only_while_borrowed(Backing::Anonymous),
    );
    child::assert_success(&out);
}

#[test]
fn plaintext_only_while_borrowed_key_in_secret_memory() {
    let out = child::run("plaintext_only_while_borrowed_key_in_secret_memory", || {
        plaintext_only_while_borrowed(Backing::PreferSecretMem);
    });
    child::assert_success(&out);
}

#[test]
fn secret_memory_backing_is_honoured_or_refused() {
    let got = Options::new()
        .backing(Backing::SecretMem)
        .shielded_with::<[u8; 32]>(|k| fill(k, 4));
    match got {
        Ok(b) => {
            assert!(lockedmem::Host::probe().secret_memory == Ok(true));
            assert!(is(&b.borrow().unwrap(), 4));
        }
        Err(Error::Unsupported { call, .. }) => assert_eq!(call, "memfd_secret"),
        Err(e) => panic!("{e:#?}"),
    }
}

#[test]
fn a_fork_child_cannot_unshield() {
    let out = child::run("a_fork_child_cannot_unshield", || {
        for backing in [Backing::Anonymous, Backing::PreferSecretMem] {
            let b = shield_opts(backing)
                .shielded_with::<[u8; 32]>(|k| fill(k, 5))
                .unwrap();
            assert!(is(&b.borrow().unwrap(), 5));
            // A panic in the fork child must not look like success: the
            // child's only thread would end and the process exit with 0.
            // Success is 42, a panic 99.
            let seen = in_fork(|| {
                let body = || {
                    let read = match b.borrow() {
                        Err(Error::ShieldKeyAbsent) => 0,
                        Err(_) => 1,
                        Ok(r) if is(&r, 5) => 2,
                        Ok(_) => 3,
                    };
                    let made = match ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(1)) {
                        Err(Error::ShieldKeyAbsent) => 0,
                        _ => 10,
                    };
                    let rekeyed = match lockedmem::rekey() {
                        Err(Error::ShieldKeyAbsent) => 0,
                        _ => 20,
                    };
                    drop(common::the_childs_copy(&b)); // touches nothing
                    42 + read + made + rekeyed
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(99)
            });
            assert_eq!(seen, Seen::Exited(42), "{backing:?}");
            assert!(is(&b.borrow().unwrap(), 5), "the parent still reads it");
        }
    });
    child::assert_success(&out);
}

#[test]
fn a_changed_ciphertext_is_tampered_never_wrong_plaintext() {
    // The box is a pointer to its slot: header (8), nonce (24), ciphertext
    // (32), tag (16), as the module docs lay it out.
    assert_eq!(std::mem::size_of::<ShieldedBox<[u8; 32]>>(), 8);
    for backing in [Backing::Anonymous, Backing::PreferSecretMem] {
        let a = shield_opts(backing)
            .shielded_with::<[u8; 32]>(|k| fill(k, 6))
            .unwrap();
        let b = shield_opts(backing)
            .shielded_with::<[u8; 32]>(|k| fill(k, 7))
            .unwrap();
        // SAFETY: reads the box's one word, its slot's address.
        let slot = |x: &ShieldedBox<[u8; 32]>| unsafe {
            std::ptr::from_ref(x).cast::<usize>().read() as *mut u8
        };
        let (sa, sb) = (slot(&a), slot(&b));
        for off in 8..80 {
            for bit in [0, 7] {
                // SAFETY: byte `off` of the slot (80 bytes), not borrowed now.
                unsafe { flip(sa.wrapping_add(off), bit) };
                match a.borrow() {
                    Err(Error::Tampered) => {}
                    Err(e) => panic!("{backing:?} byte {off} bit {bit}: {e:#?}"),
                    Ok(_) => panic!("{backing:?} byte {off} bit {bit}: plaintext lent"),
                }
                // SAFETY: as above: back as it was.
                unsafe { flip(sa.wrapping_add(off), bit) };
                assert!(is(&a.borrow().unwrap(), 6));
            }
        }
        // A whole ciphertext copied from another slot does not open there.
        let mut saved = [0u8; 72];
        let (ca, cb) = (sa.wrapping_add(8), sb.wrapping_add(8));
        // SAFETY: bytes 8..80 of an 80-byte slot, not borrowed now.
        unsafe { std::ptr::copy_nonoverlapping(cb, saved.as_mut_ptr(), 72) };
        // SAFETY: as above, for both slots (distinct).
        unsafe { std::ptr::copy_nonoverlapping(ca, cb, 72) };
        assert!(matches!(b.borrow(), Err(Error::Tampered)), "{backing:?}");
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(saved.as_ptr(), cb, 72) };
        assert!(is(&b.borrow().unwrap(), 7));
    }
}

/// Flips bit `bit` of the byte at `p`.
///
/// # Safety
/// `p` is valid for reads and writes, and nothing else accesses it now.
unsafe fn flip(p: *mut u8, bit: u8) {
    // SAFETY: forwarded.
    let v = unsafe { p.read_volatile() };
    // SAFETY: forwarded.
    unsafe { p.write_volatile(v ^ (1 << bit)) };
}

#[test]
fn rekey_while_threads_borrow_and_write() {
    const READERS: usize = 3;
    const ROUNDS: usize = 20;
    for backing in [Backing::Anonymous, Backing::PreferSecretMem] {
        let shared: Arc<Vec<ShieldedBox<[u8; 32]>>> = Arc::new(
            (0..64u8)
                .map(|s| {
                    shield_opts(backing)
                        .shielded_with::<[u8; 32]>(|k| fill(k, s))
                        .unwrap()
                })
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for t in 0..READERS {
            let (shared, stop, reads) = (shared.clone(), stop.clone(), reads.clone());
            threads.push(std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let s = i % 64;
                    let r = shared[s].borrow().unwrap();
                    assert!(is(&r, s.to_le_bytes()[0]), "secret {s} read wrong");
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            }));
        }
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut own = shield_opts(backing)
                    .shielded_with::<[u8; 32]>(|k| fill(k, 200))
                    .unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let seed = 200 + (n % 50) as u8;
                    assert!(is(&own.borrow().unwrap(), seed));
                    fill(
                        &mut own.borrow_mut().unwrap(),
                        seed.wrapping_add(1).max(200),
                    );
                    n += 1;
                    if seed == 249 {
                        fill(&mut own.borrow_mut().unwrap(), 200);
                        n = 0;
                    }
                }
            })
        };
        for _ in 0..ROUNDS {
            let before = reads.load(Ordering::Relaxed);
            lockedmem::rekey().unwrap();
            // Let the readers run between rekeys (a reader that panicked
            // ends the wait: its join below fails the test).
            while reads.load(Ordering::Relaxed) < before + 10
                && !threads.iter().any(std::thread::JoinHandle::is_finished)
            {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        writer.join().unwrap();
        for (s, b) in shared.iter().enumerate() {
            assert!(is(&b.borrow().unwrap(), s.to_le_bytes()[0]));
        }
    }
}

#[test]
fn slices_and_debug() {
    let t = ShieldedBox::<[u8]>::from_slice(b"a token of some length").unwrap();
    assert_eq!(t.len(), 22);
    assert_eq!(&t.borrow().unwrap()[..], b"a token of some length");
    let dbg = format!("{t:?} {:?}", t.borrow().unwrap());
    assert!(!dbg.contains("token") && !dbg.contains("97,"), "{dbg}");
    let mut big = ShieldedBox::<[u8]>::from_slice(&[5u8; 10_000]).unwrap();
    big.borrow_mut().unwrap()[9_999] = 6;
    let r = big.borrow().unwrap();
    assert!(r[..9_999].iter().all(|&b| b == 5) && r[9_999] == 6);
    let empty = ShieldedBox::<[u8]>::from_slice(&[]).unwrap();
    assert!(empty.is_empty() && empty.borrow().unwrap().is_empty());
}
