//! What a child made by fork(2) sees of a box, per fork policy.
//!
//! Each test runs in a child process of its own (the test binary run again),
//! which forks a grandchild. The grandchild only reads the box, drops it and
//! calls `_exit`; it reports through its exit status.
#![cfg(target_os = "linux")] // Linux's /proc, signals, fork or capabilities

mod common;

use common::{Seen, child, in_fork, packed, start_of, the_childs_copy};
use std::panic::{AssertUnwindSafe, catch_unwind};

use lockedmem::{ForkPolicy, Isolation, LockedBox, Options};

const SECRET: u8 = 0xA5;

fn secret_box(policy: ForkPolicy) -> LockedBox<[u8; 64]> {
    let mut b = Options::new().fork(policy).zeroed::<[u8; 64]>().unwrap();
    b.fill(SECRET);
    b
}

/// Whether the platform offers `ForkPolicy::Wipe` (`Host::fork_zeros`).
/// Where it does not (the portable test mode, as macOS), asserts that
/// asking for it is `Error::Unsupported` naming `MADV_WIPEONFORK`, for a
/// page-isolated box, a packed one and a vector, and that the default
/// policy is `Exclude` instead: the caller then checks what that gives a
/// fork child.
fn wipe_offered() -> bool {
    if common::promises().fork_zeros {
        return true;
    }
    let wipe = Options::new().fork(ForkPolicy::Wipe);
    common::assert_wipe_unsupported(wipe.zeroed::<[u8; 64]>());
    common::assert_wipe_unsupported(wipe.isolation(Isolation::Packed).zeroed::<[u8; 64]>());
    common::assert_wipe_unsupported(wipe.vec::<u8>(64));
    assert_eq!(common::default_fork(), ForkPolicy::Exclude);
    false
}

/// Where `Wipe` is offered, the child reads zeros and drops its copy; where
/// not, `Wipe` is refused and a box of the default policy (`Exclude`)
/// faults when the child reads it and is dropped there touching nothing.
#[test]
fn wipe_child_sees_zeros_and_drops_cleanly() {
    child::assert_success(&child::run(
        "wipe_child_sees_zeros_and_drops_cleanly",
        || {
            if !wipe_offered() {
                let b = secret_box(common::default_fork());
                let addr = start_of(&*b);
                let read = in_fork(|| common::classify(addr, 64, SECRET));
                // The child's placeholder there is `PROT_NONE`.
                assert_eq!(
                    read,
                    Seen::Signal(child::GUARD_FAULT),
                    "the child has no pages"
                );
                let dropped = in_fork(move || {
                    let locked = b.is_locked();
                    drop(b);
                    if locked { 13 } else { 0 }
                });
                assert_eq!(dropped, Seen::Exited(0), "the child dropped its copy");
                return;
            }
            let b = secret_box(ForkPolicy::Wipe);
            let addr = start_of(&*b);
            let seen = in_fork(move || {
                let code = common::classify(addr, 64, SECRET);
                let locked = b.is_locked();
                // Dropping in the child must neither fault nor abort.
                drop(b);
                if locked { 13 } else { code }
            });
            assert_eq!(
                seen,
                Seen::Exited(10),
                "the child saw zeros and dropped the box"
            );
        },
    ));
}

/// Where `Wipe` is offered, the child writes and reads its own copy while
/// the parent keeps the secret; where not, `Wipe` is refused and the
/// child's use of a box of the default policy (`Exclude`) panics naming
/// it, while the parent keeps the secret, locked.
#[test]
fn wipe_child_can_use_its_copy_and_the_parent_keeps_the_secret() {
    child::assert_success(&child::run(
        "wipe_child_can_use_its_copy_and_the_parent_keeps_the_secret",
        || {
            let offered = wipe_offered();
            let b = secret_box(if offered {
                ForkPolicy::Wipe
            } else {
                common::default_fork()
            });
            let seen = in_fork(|| {
                let mut b = the_childs_copy(&b);
                if !offered {
                    let hook = std::panic::take_hook();
                    std::panic::set_hook(Box::new(|_| {}));
                    let used = catch_unwind(AssertUnwindSafe(|| b.fill(1)));
                    std::panic::set_hook(hook);
                    let names_it = used
                        .err()
                        .and_then(|p| p.downcast::<String>().ok())
                        .is_some_and(|m| m.contains("ForkPolicy::Exclude"));
                    drop(b);
                    return if names_it { 0 } else { 2 };
                }
                b.fill(1);
                let ok = b.iter().all(|&x| x == 1);
                drop(b);
                if ok { 0 } else { 1 }
            });
            assert_eq!(seen, Seen::Exited(0));
            assert!(
                b.iter().all(|&x| x == SECRET),
                "the parent's copy is untouched"
            );
            assert!(b.is_locked());
        },
    ));
}

#[test]
fn exclude_child_faults_on_the_pages() {
    child::assert_success(&child::run("exclude_child_faults_on_the_pages", || {
        let b = secret_box(ForkPolicy::Exclude);
        let addr = start_of(&*b);
        let seen = in_fork(|| common::classify(addr, 64, SECRET));
        // The child's placeholder there is `PROT_NONE`.
        assert_eq!(seen, Seen::Signal(child::GUARD_FAULT));
        assert!(b.iter().all(|&x| x == SECRET), "the parent still has it");
    }));
}

#[test]
fn exclude_child_drops_its_copy_without_touching_the_range() {
    child::assert_success(&child::run(
        "exclude_child_drops_its_copy_without_touching_the_range",
        || {
            let b = secret_box(ForkPolicy::Exclude);
            let seen = in_fork(move || {
                let locked = b.is_locked();
                let residency_fails = b.residency().is_err();
                drop(b);
                if !locked && residency_fails { 0 } else { 1 }
            });
            assert_eq!(seen, Seen::Exited(0));
        },
    ));
}

/// The pages of an `Exclude` box do not exist in the child: reading the
/// box, a vector or a string made so there panics (naming the policy)
/// instead of touching whatever is mapped at that address now.
#[test]
fn exclude_child_panics_on_access() {
    child::assert_success(&child::run("exclude_child_panics_on_access", || {
        let exclude = Options::new().fork(ForkPolicy::Exclude);
        let b = secret_box(ForkPolicy::Exclude);
        let mut v = exclude.vec::<u8>(64).unwrap();
        v.try_extend_from_slice(&[SECRET; 64]).unwrap();
        let mut s = exclude.string(64).unwrap();
        s.try_push_str("an excluded secret").unwrap();
        let seen = in_fork(|| {
            let names_the_policy = |r: std::thread::Result<u8>| {
                r.err()
                    .and_then(|p| p.downcast::<String>().ok())
                    .is_some_and(|m| m.contains("ForkPolicy::Exclude"))
            };
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let boxed = catch_unwind(AssertUnwindSafe(|| b[0]));
            let vec = catch_unwind(AssertUnwindSafe(|| v[0]));
            let string = catch_unwind(AssertUnwindSafe(|| s.as_bytes()[0]));
            std::panic::set_hook(hook);
            match (
                names_the_policy(boxed),
                names_the_policy(vec),
                names_the_policy(string),
            ) {
                (true, true, true) => 0,
                (false, _, _) => 1,
                (_, false, _) => 2,
                _ => 3,
            }
        });
        assert_eq!(seen, Seen::Exited(0), "1: box, 2: vector, 3: string");
        assert!(b.iter().all(|&x| x == SECRET), "the parent still has it");
    }));
}

#[test]
fn keep_child_sees_the_secret() {
    child::assert_success(&child::run("keep_child_sees_the_secret", || {
        let b = secret_box(ForkPolicy::Keep);
        let addr = start_of(&*b);
        let seen = in_fork(move || {
            let code = common::classify(addr, 64, SECRET);
            drop(b);
            code
        });
        assert_eq!(seen, Seen::Exited(11));
    }));
}

#[test]
fn a_box_made_in_the_child_after_fork_works_normally() {
    child::assert_success(&child::run(
        "a_box_made_in_the_child_after_fork_works_normally",
        || {
            // (`Wipe` where offered; else the default, `Exclude`: either
            // way the parent's box is not locked in the child.)
            let parent_box = secret_box(common::default_fork());
            let seen = in_fork(move || {
                let Ok(mut mine) = LockedBox::<[u8; 16]>::new_zeroed() else {
                    return 1;
                };
                mine.fill(3);
                let ok = mine.is_locked() && !parent_box.is_locked();
                // Both drops check canaries: the child's own (the process
                // canary) and, under Wipe, the parent's wiped one (zeros);
                // under Exclude the parent's copy is dropped untouched.
                drop(mine);
                drop(parent_box);
                if ok { 0 } else { 2 }
            });
            assert_eq!(seen, Seen::Exited(0));
        },
    ));
}

// Nothing is locked in a fork child (locks are not inherited); once its
// copies are dropped and trim() has run, locked_bytes() is 0 there.

/// In a fork child: exit 0 if locked_bytes() is 0, else report it on stderr
/// and exit 1.
fn fork_child_verdict() -> i32 {
    let n = lockedmem::locked_bytes();
    if n == 0 {
        return 0;
    }
    let msg = format!("fork child: locked_bytes() = {n} after trim(), expected 0\n");
    // SAFETY: write(2) of a buffer we own to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    1
}

#[test]
fn locked_bytes_is_zero_in_a_fork_child_after_trim() {
    let out = child::run("locked_bytes_is_zero_in_a_fork_child_after_trim", || {
        let pages: Vec<_> = (0..10)
            .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
            .collect();
        let packs: Vec<_> = (0..10)
            .map(|_| {
                packed()
                    .zeroed::<[u8; 32]>()
                    .expect("expected a packed box")
            })
            .collect();
        drop(pages); // cached, still locked
        drop(packs); // an empty packed page, still open
        println!("parent: locked_bytes() = {}", lockedmem::locked_bytes());
        let seen = in_fork(|| {
            lockedmem::trim();
            fork_child_verdict()
        });
        assert_eq!(
            seen,
            Seen::Exited(0),
            "expected locked_bytes() == 0 in a fork child after trim()"
        );
    });
    child::expect_success(&out, "locked_bytes() == 0 in a fork child after trim()");
}

#[test]
fn locked_bytes_is_zero_in_a_fork_child_that_dropped_its_copies_and_trimmed() {
    let out = child::run(
        "locked_bytes_is_zero_in_a_fork_child_that_dropped_its_copies_and_trimmed",
        || {
            let page_box = LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box");
            let packed_box = packed()
                .zeroed::<[u8; 32]>()
                .expect("expected a packed box");
            println!("parent: locked_bytes() = {}", lockedmem::locked_bytes());
            let seen = in_fork(|| {
                drop(the_childs_copy(&page_box));
                drop(the_childs_copy(&packed_box));
                lockedmem::trim();
                fork_child_verdict()
            });
            assert_eq!(
                seen,
                Seen::Exited(0),
                "expected locked_bytes() == 0 in a fork child that dropped its copies of the \
                 boxes alive at the fork and called trim()"
            );
            assert!(
                page_box.is_locked() && packed_box.is_locked(),
                "expected the parent's boxes still locked"
            );
        },
    );
    child::expect_success(
        &out,
        "locked_bytes() == 0 in a fork child after dropping its copies and trim()",
    );
}

/// The harness itself: a panic in a fork child is `PANICKED`, never the
/// exit status 0 that the child's last thread ending would otherwise give.
#[test]
fn a_panic_in_a_fork_child_is_not_success() {
    let seen = common::in_fork(|| panic!("on purpose, in the fork child"));
    assert_eq!(seen, common::Seen::Exited(common::process::PANICKED));
}
