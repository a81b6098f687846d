//! `SealedBox`: the pages' protection in every state, read back from
//! /proc/self/maps; faults in children; concurrent borrows; system calls.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status);
// installs a seccomp filter.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use common::{child, end_of, procfs, seccomp, start_of};
use lockedmem::{ForkPolicy, LockedBox, Options, SealedBox};

/// Permissions of the data pages of the box whose value ends at `end`.
fn perms(end: usize) -> String {
    procfs::perms_at(end - 1).expect("mapped")
}

fn sealed_secret() -> (SealedBox<[u8; 32]>, usize) {
    let b = LockedBox::<[u8; 32]>::new_with(|k| k.copy_from_slice(&[0xC3; 32])).unwrap();
    let end = end_of(&*b);
    (b.seal().unwrap(), end)
}

#[test]
fn protection_follows_the_guards() {
    let (mut sealed, end) = sealed_secret();
    assert_eq!(perms(end), "---p");
    {
        let a = sealed.borrow();
        assert_eq!(perms(end), "r--p");
        let b = sealed.borrow();
        assert_eq!(a[0], 0xC3);
        drop(a);
        assert_eq!(perms(end), "r--p", "one guard still out");
        assert_eq!(b[31], 0xC3);
    }
    assert_eq!(perms(end), "---p", "sealed again after the last guard");
    {
        let mut m = sealed.borrow_mut();
        assert_eq!(perms(end), "rw-p");
        m[0] = 1;
    }
    assert_eq!(perms(end), "---p");
    common::assert_locked_advised_guarded(end);
    assert!(sealed.is_locked());
    assert!(sealed.residency().unwrap().all_resident());

    let unsealed = sealed.unseal();
    assert_eq!(perms(end), "rw-p");
    assert_eq!(unsealed[0], 1);
    assert!(
        unsealed[1..].iter().all(|&x| x == 0xC3),
        "contents unchanged"
    );
}

#[test]
fn debug_of_sealed_box_and_guards_shows_no_secret() {
    let (mut sealed, _) = sealed_secret();
    let text = format!("{sealed:?} {:?}", sealed.borrow());
    assert!(
        text.contains("SealedBox") && !text.contains("195") && !text.contains("c3"),
        "{text}"
    );
    let text = format!("{:?}", sealed.borrow_mut());
    assert!(text.contains("RefMut") && !text.contains("195"), "{text}");
}

#[test]
fn reading_a_sealed_box_faults() {
    let out = child::run("reading_a_sealed_box_faults", || {
        let (sealed, _) = sealed_secret();
        let addr = {
            let r = sealed.borrow();
            start_of(&*r)
        };
        let p = std::ptr::with_exposed_provenance::<u8>(addr);
        // SAFETY: deliberately not: the pages are PROT_NONE and the read
        // must fault; the test is that this child dies of SIGSEGV.
        println!("read {}", unsafe { p.read_volatile() });
    });
    child::assert_signal(&out, libc::SIGSEGV);
}

#[test]
fn reading_during_a_borrow_succeeds() {
    let out = child::run("reading_during_a_borrow_succeeds", || {
        let (sealed, _) = sealed_secret();
        let r = sealed.borrow();
        let p = std::ptr::with_exposed_provenance::<u8>(start_of(&*r));
        // SAFETY: a `Ref` is alive, so the pages are readable: the control
        // for `reading_a_sealed_box_faults`.
        assert_eq!(unsafe { p.read_volatile() }, 0xC3);
        println!("read ok");
    });
    child::assert_success(&out);
    assert!(child::stdout(&out).contains("read ok"));
}

#[test]
fn two_threads_hold_borrows_at_once() {
    let (sealed, end) = sealed_secret();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let r = sealed.borrow();
                barrier.wait(); // both guards are out now
                assert_eq!(perms(end), "r--p");
                assert_eq!(r[5], 0xC3);
                barrier.wait();
            });
        }
    });
    assert_eq!(perms(end), "---p");
}

#[test]
fn dropping_a_sealed_box_wipes_and_unmaps_without_faulting() {
    child::assert_success(&child::run(
        "dropping_a_sealed_box_wipes_and_unmaps_without_faulting",
        || {
            lockedmem::set_cache_limit(0);
            drop(LockedBox::<u8>::new_zeroed().unwrap()); // fork detector
            lockedmem::trim();
            let (maps, lck) = (procfs::mapping_count(), procfs::vm_lck_kb());
            let (sealed, end) = sealed_secret();
            assert_eq!(perms(end), "---p");
            drop(sealed);
            assert_eq!(perms(end), "---p", "closed: guard space again");
            lockedmem::trim();
            assert_eq!(procfs::perms_at(end - 1), None, "unmapped");
            assert_eq!((procfs::mapping_count(), procfs::vm_lck_kb()), (maps, lck));
            // And with a read guard forgotten: pages left readable, still fine.
            let (sealed, end) = sealed_secret();
            std::mem::forget(sealed.borrow());
            assert_eq!(
                perms(end),
                "r--p",
                "a forgotten guard leaves the pages readable"
            );
            drop(sealed);
            lockedmem::trim();
            assert_eq!((procfs::mapping_count(), procfs::vm_lck_kb()), (maps, lck));
        },
    ));
}

#[test]
fn borrow_mut_recovers_from_a_forgotten_ref() {
    let (mut sealed, end) = sealed_secret();
    std::mem::forget(sealed.borrow());
    assert_eq!(perms(end), "r--p");
    drop(sealed.borrow_mut());
    assert_eq!(perms(end), "---p");
    assert_eq!(
        sealed.borrow()[0],
        0xC3,
        "the count was reset: borrowing works"
    );
    assert_eq!(perms(end), "---p");
}

#[test]
fn unseal_catches_a_smashed_canary() {
    let out = child::run("unseal_catches_a_smashed_canary", || {
        let (mut sealed, _) = sealed_secret();
        {
            let m = sealed.borrow_mut();
            let p = std::ptr::with_exposed_provenance_mut::<u8>(start_of(&*m) - 1);
            // SAFETY: the canary's last byte, readable while the `RefMut`
            // lives.
            let old = unsafe { p.read_volatile() };
            // SAFETY: deliberately not: a one-byte underflow onto the canary,
            // flipping its (random) last byte.
            unsafe { p.write_volatile(!old) };
        }
        let _ = sealed.unseal();
        println!("unseal returned");
    });
    child::assert_signal(&out, libc::SIGABRT);
    let err = child::stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("lockedmem:") && l.contains("canary")),
        "{err}"
    );
    assert!(!child::stdout(&out).contains("unseal returned"));
}

#[test]
fn a_nested_borrow_makes_no_mprotect_call() {
    // Once one guard is out, any further mprotect on this thread fails; a
    // nested borrow that made one would panic.
    let out = child::run("a_nested_borrow_makes_no_mprotect_call", || {
        let (sealed, end) = sealed_secret();
        let _outer = sealed.borrow();
        seccomp::fail_mprotect(None, libc::EPERM);
        let mut sum = 0u32;
        for _ in 0..10_000 {
            let inner = sealed.borrow();
            sum += u32::from(inner[0]);
        }
        assert_eq!(sum, 10_000 * 0xC3);
        assert_eq!(perms(end), "r--p");
        println!("nested borrows ok");
        // Dropping `_outer` or the box needs mprotect; leave without either.
        common::child::exit(0);
    });
    child::assert_success(&out);
    assert!(child::stdout(&out).contains("nested borrows ok"));
}

#[test]
fn a_first_borrow_does_make_the_call() {
    // The control for the test above: with nothing out, borrowing needs
    // mprotect, so the same filter makes it fail, with a message naming the
    // call and no byte of the secret.
    let out = child::run("a_first_borrow_does_make_the_call", || {
        let (sealed, _) = sealed_secret();
        seccomp::fail_mprotect(Some(libc::PROT_READ), libc::ENOMEM);
        let r = sealed.borrow();
        println!("borrowed {}", r[0]);
    });
    assert!(!out.status.success());
    let err = child::stderr(&out);
    assert!(
        err.contains("lockedmem: mprotect(PROT_READ) of a sealed box failed"),
        "{err}"
    );
    assert!(err.contains("Cannot allocate memory"), "{err}");
    assert!(!child::stdout(&out).contains("borrowed"));
}

#[test]
fn failing_to_seal_again_aborts() {
    let out = child::run("failing_to_seal_again_aborts", || {
        let (sealed, _) = sealed_secret();
        let r = sealed.borrow();
        seccomp::fail_mprotect(Some(libc::PROT_NONE), libc::ENOMEM);
        drop(r);
        println!("still readable");
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(child::stderr(&out).contains("cannot seal a box again"));
}

/// Many threads borrow and drop in random order. At quiescent points (every
/// worker has dropped all its guards and waits at a barrier) the pages must
/// be `---p`; at loaded points (every worker holds a guard) `r--p`. A thread
/// that read through a guard over sealed pages would kill the process.
#[test]
fn concurrent_borrows_never_leave_the_pages_open_or_closed_wrongly() {
    const WORKERS: usize = 6;
    const ROUNDS: usize = 150;
    let sealed = Arc::new(sealed_secret());
    let end = sealed.1;
    let barrier = Arc::new(Barrier::new(WORKERS + 1));
    let reads = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (sealed, barrier, reads) = (sealed.clone(), barrier.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ (w as u64 + 1);
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                for _ in 0..ROUNDS {
                    let mut held = Vec::new();
                    for _ in 0..(next() % 64) {
                        if next() % 3 == 0 && !held.is_empty() {
                            let i = usize::try_from(next() % held.len() as u64).unwrap();
                            held.swap_remove(i);
                        } else {
                            let r = sealed.0.borrow();
                            assert_eq!(r[(next() % 32) as usize], 0xC3);
                            reads.fetch_add(1, Ordering::Relaxed);
                            held.push(r);
                        }
                        if next() % 8 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    drop(held);
                    barrier.wait(); // quiescent: no guard anywhere
                    barrier.wait(); // checked
                    let r = sealed.0.borrow();
                    barrier.wait(); // loaded: every worker holds one
                    barrier.wait(); // checked
                    drop(r);
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        barrier.wait();
        assert_eq!(
            perms(end),
            "---p",
            "round {round}: readable with no guard out"
        );
        barrier.wait();
        barrier.wait();
        assert_eq!(
            perms(end),
            "r--p",
            "round {round}: guards out over sealed pages"
        );
        barrier.wait();
    }
    for w in workers {
        w.join().expect("no worker panicked");
    }
    done.store(true, Ordering::Relaxed);
    assert!(reads.load(Ordering::Relaxed) > 1000);
    assert_eq!(perms(end), "---p");
}

#[test]
fn a_fork_child_never_changes_pages_it_does_not_have() {
    // An Exclude box's pages do not exist in a fork child, and the child's
    // own new slab may land at the same address: seal, unseal and dropping
    // an inherited guard must not mprotect whatever lives there now.
    child::assert_success(&child::run(
        "a_fork_child_never_changes_pages_it_does_not_have",
        || {
            let plain = Options::new()
                .fork(ForkPolicy::Exclude)
                .zeroed::<[u8; 32]>()
                .unwrap();
            let sealed = Options::new()
                .fork(ForkPolicy::Exclude)
                .zeroed::<[u8; 32]>()
                .unwrap()
                .seal()
                .unwrap();
            let guard = sealed.borrow();
            let seen = common::in_fork(|| {
                // The child's own box, probably where the parent's slab was.
                let mut mine = Options::new()
                    .fork(ForkPolicy::Exclude)
                    .zeroed::<[u8; 32]>()
                    .unwrap();
                mine.fill(9);
                let hook = std::panic::take_hook();
                std::panic::set_hook(Box::new(|_| {}));
                let seal = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    common::the_childs_copy(&plain).seal().map(drop)
                }));
                let unseal = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    drop(common::the_childs_copy(&sealed).unseal())
                }));
                std::panic::set_hook(hook);
                drop(common::the_childs_copy(&guard));
                let untouched = procfs::perms_at(end_of(&*mine) - 1).as_deref() == Some("rw-p")
                    && mine.iter().all(|&x| x == 9);
                match (seal.is_err(), unseal.is_err(), untouched) {
                    (true, true, true) => 0,
                    (false, _, _) => 1,
                    (_, false, _) => 2,
                    _ => 3,
                }
            });
            assert_eq!(seen, common::Seen::Exited(0));
            drop(guard);
        },
    ));
}

#[test]
fn a_fork_child_is_not_stuck_behind_its_parents_gate() {
    // One thread borrows and drops in a loop (taking the gate around every
    // mprotect) while the main thread forks; each child borrows once. A
    // child that inherited the gate held must take it over, not hang. The
    // child sees zeros where the platform wipes fork children
    // (`ForkPolicy::Wipe`), else (the portable test mode) a copy
    // (`ForkPolicy::Keep`): either way it borrows.
    child::assert_success(&child::run(
        "a_fork_child_is_not_stuck_behind_its_parents_gate",
        || {
            let wipe = lockedmem::Host::probe().fork_zeros;
            let fork = if wipe {
                ForkPolicy::Wipe
            } else {
                ForkPolicy::Keep
            };
            let sealed = Options::new()
                .fork(fork)
                .new_with(|k: &mut [u8; 32]| k.copy_from_slice(&[0xC3; 32]))
                .unwrap()
                .seal()
                .unwrap();
            let stop = AtomicBool::new(false);
            let seen: Vec<common::Seen> = std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::black_box(sealed.borrow()[0]);
                    }
                });
                let seen = (0..200)
                    .map(|_| {
                        common::in_fork(|| {
                            // SAFETY: alarm only arms a timer: a hung child
                            // dies of SIGALRM instead of hanging the test.
                            unsafe { libc::alarm(10) };
                            let expected = if wipe { 0 } else { 0xC3 };
                            let same = sealed.borrow().iter().all(|&x| x == expected);
                            if same { 0 } else { 1 }
                        })
                    })
                    .collect();
                stop.store(true, Ordering::Relaxed);
                seen
            });
            for s in seen {
                assert_eq!(
                    s,
                    common::Seen::Exited(0),
                    "the child saw zeros (Wipe) or the copy (Keep) without hanging"
                );
            }
        },
    ));
}

#[test]
fn a_guard_held_across_fork_freezes_the_childs_copy_readable() {
    child::assert_success(&child::run(
        "a_guard_held_across_fork_freezes_the_childs_copy_readable",
        || {
            let (mut sealed, end) = {
                let b = Options::new()
                    .fork(ForkPolicy::Keep)
                    .zeroed::<[u8; 32]>()
                    .unwrap();
                let end = end_of(&*b);
                (b.seal().unwrap(), end)
            };
            let guard = sealed.borrow();
            let seen = common::in_fork(|| {
                let inherited = common::the_childs_copy(&guard);
                // The inherited guard stays valid, and so do new ones.
                let ok = inherited[0] == 0 && sealed.borrow()[1] == 0;
                drop(inherited);
                // Frozen: still readable with no guard out in this child.
                let frozen = procfs::perms_at(end - 1).as_deref() == Some("r--p");
                if ok && frozen { 0 } else { 1 }
            });
            assert_eq!(seen, common::Seen::Exited(0));
            drop(guard);
            assert_eq!(perms(end), "---p", "the parent seals as usual");
            // A borrow_mut proves no guard is alive and unfreezes.
            let seen = common::in_fork(|| {
                let mut copy = common::the_childs_copy(&sealed);
                drop(copy.borrow_mut());
                let sealed_again = procfs::perms_at(end - 1).as_deref() == Some("---p");
                std::mem::forget(copy);
                if sealed_again { 0 } else { 1 }
            });
            assert_eq!(seen, common::Seen::Exited(0));
            drop(sealed.borrow_mut());
        },
    ));
}
