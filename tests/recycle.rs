//! Recycled slots: a box that takes a slot from the cache gets every
//! protection a fresh one has, and a fork child never takes its parent's.

mod common;

use common::{child, end_of, in_fork, page_size, procfs, start_of};
use lockedbox::{ForkPolicy, LockedBox, Options};

#[test]
fn a_recycled_slot_keeps_every_protection_and_starts_zeroed() {
    let mut a = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    a.fill(0x77);
    let (start, end) = (start_of(&*a), end_of(&*a));
    drop(a);
    // Same size class: the same slot comes back, wiped, with a new canary
    // in front of a value of a different size.
    let b = LockedBox::<[u8; 100]>::new_zeroed().unwrap();
    assert_eq!(end_of(&*b), end, "the slot was recycled");
    assert!(b.iter().all(|&x| x == 0), "contents reset");
    assert!(start_of(&*b) < start, "a longer value starts lower");
    assert_eq!(procfs::perms_at(end - 1).as_deref(), Some("rw-p"));
    common::assert_locked_dontdump_guarded(end);
    assert_eq!(
        procfs::perms_at(end - page_size() - 1).as_deref(),
        Some("---p"),
        "leading guard"
    );
    assert!(b.is_locked());
    drop(b); // the canary at its new place is intact: no abort
}

#[test]
fn a_slot_is_recycled_only_within_its_size_class_and_fork_policy() {
    let a = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    let end = end_of(&*a);
    drop(a);
    let two_pages = LockedBox::<[u8; 5000]>::new_zeroed().unwrap();
    assert_ne!(end_of(&*two_pages), end);
    let keep = Options::new()
        .fork(ForkPolicy::Keep)
        .zeroed::<[u8; 32]>()
        .unwrap();
    assert_ne!(
        end_of(&*keep),
        end,
        "a Wipe slot is not handed to a Keep box"
    );
    let vma = procfs::vma_at(end_of(&*keep) - 1).unwrap();
    assert!(!vma.has("wf") && !vma.has("dc"), "{:?}", vma.flags);
    let again = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    assert_eq!(end_of(&*again), end);
}

#[test]
fn a_smashed_canary_on_a_recycled_slot_aborts() {
    let out = child::run("a_smashed_canary_on_a_recycled_slot_aborts", || {
        drop(LockedBox::<[u8; 64]>::new_zeroed().unwrap());
        let b = LockedBox::<[u8; 16]>::new_zeroed().unwrap();
        assert_eq!(
            lockedbox::stats().cached_slots,
            0,
            "it took the cached slot"
        );
        let p = std::ptr::with_exposed_provenance_mut::<u8>(start_of(&*b) - 1);
        // SAFETY: the canary's last byte, inside the read-write data page.
        let old = unsafe { p.read_volatile() };
        // SAFETY: deliberately not: a one-byte underflow onto the canary,
        // flipping its random last byte (a fixed value would match it one
        // time in 256).
        unsafe { p.write_volatile(!old) };
        drop(b);
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(child::stderr(&out).contains("canary"));
}

#[test]
fn a_fork_child_never_takes_its_parents_cached_slots() {
    child::assert_success(&child::run(
        "a_fork_child_never_takes_its_parents_cached_slots",
        || {
            let a = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
            let cached_end = end_of(&*a);
            drop(a);
            assert_eq!(lockedbox::stats().cached_slots, 1);
            let seen = in_fork(|| {
                // The parent's cached slot is not locked here (locks are not
                // inherited); a box made here must get pages of its own.
                let b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
                let end = end_of(&*b);
                let locked_here = procfs::vma_at(end - 1).is_some_and(|v| v.has("lo"));
                let fresh = end != cached_end;
                let counted = lockedbox::stats().cached_slots == 0;
                drop(b);
                match (locked_here && b_is_locked_check(), fresh, counted) {
                    (true, true, true) => 0,
                    (false, _, _) => 1,
                    (_, false, _) => 2,
                    _ => 3,
                }
            });
            assert_eq!(seen, common::Seen::Exited(0));
            // The parent still has its cached slot.
            let again = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
            assert_eq!(end_of(&*again), cached_end);
        },
    ));
}

/// A box made in this process reports itself locked.
fn b_is_locked_check() -> bool {
    LockedBox::<u64>::new_zeroed().is_ok_and(|b| b.is_locked())
}
