//! Recycled slots: a box that takes a slot from the cache gets every
//! protection a fresh one has, and a fork child never takes its parent's.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, end_of, in_fork, page_size, procfs, start_of};
use lockedmem::{ForkPolicy, LockedBox, Options};

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
    common::assert_locked_advised_guarded(end);
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
    // (`Keep` is never the default: `Wipe` on Linux, `Exclude` in the
    // portable test mode.)
    let keep = Options::new()
        .fork(ForkPolicy::Keep)
        .zeroed::<[u8; 32]>()
        .unwrap();
    assert_ne!(
        end_of(&*keep),
        end,
        "a slot of the default fork policy is not handed to a Keep box"
    );
    let vma = procfs::vma_at(end_of(&*keep) - 1).unwrap();
    common::assert_advised(&vma, ForkPolicy::Keep);
    let again = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    assert_eq!(end_of(&*again), end);
}

#[test]
fn a_smashed_canary_on_a_recycled_slot_aborts() {
    let out = child::run("a_smashed_canary_on_a_recycled_slot_aborts", || {
        drop(LockedBox::<[u8; 64]>::new_zeroed().unwrap());
        let b = LockedBox::<[u8; 16]>::new_zeroed().unwrap();
        assert_eq!(
            lockedmem::stats().cached_slots,
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
            assert_eq!(lockedmem::stats().cached_slots, 1);
            let seen = in_fork(|| {
                // The parent's cached slot is not locked here (locks are not
                // inherited); a box made here must get pages of its own.
                let b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
                let end = end_of(&*b);
                let locked_here = procfs::vma_at(end - 1).is_some_and(|v| v.has("lo"));
                let fresh = end != cached_end;
                let counted = lockedmem::stats().cached_slots == 0;
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

/// A dropped value above 256 KiB keeps its mapping, wiped and locked, for
/// the next one of the same size; `trim` gives it back.
#[test]
fn a_large_slot_is_kept_wiped_and_given_back_by_trim() {
    let out = child::run("a_large_slot_is_kept_wiped_and_given_back_by_trim", || {
        const LEN: usize = 600_000;
        let lck_before = procfs::vm_lck_kb();
        let mut a = LockedBox::<[u8]>::new_zeroed_slice(LEN).unwrap();
        a.fill(0x5A);
        let end = end_of(&*a);
        let locked_kb = procfs::vm_lck_kb() - lck_before;
        assert!(locked_kb * 1024 >= LEN as u64, "{locked_kb} KiB locked");
        drop(a);
        assert!(lockedmem::stats().cached_bytes >= LEN);
        assert_eq!(procfs::vm_lck_kb() - lck_before, locked_kb, "still locked");
        common::assert_locked_advised_guarded(end);
        let b = LockedBox::<[u8]>::new_zeroed_slice(LEN).unwrap();
        assert_eq!(end_of(&*b), end, "the same mapping came back");
        assert!(b.iter().all(|&x| x == 0), "wiped");
        drop(b);
        lockedmem::trim();
        assert_eq!(procfs::perms_at(end - 1), None, "unmapped by trim");
        assert_eq!(procfs::vm_lck_kb(), lck_before, "unlocked by trim");
    });
    child::assert_success(&out);
}

#[test]
fn with_caching_off_a_large_slot_is_unmapped_at_once() {
    let out = child::run("with_caching_off_a_large_slot_is_unmapped_at_once", || {
        lockedmem::set_cache_limit(0);
        assert_eq!(lockedmem::large_cache_limit(), 0);
        let a = LockedBox::<[u8]>::new_zeroed_slice(600_000).unwrap();
        let end = end_of(&*a);
        drop(a);
        assert_eq!(procfs::perms_at(end - 1), None);
    });
    child::assert_success(&out);
}

/// Without CAP_IPC_LOCK, under a 1 MiB limit: a cached 600 KB slot is given
/// back when a 700 KB box of another size needs the room.
#[test]
fn a_cached_large_slot_yields_to_a_box_that_needs_the_lock() {
    let out = child::run(
        "a_cached_large_slot_yields_to_a_box_that_needs_the_lock",
        || {
            common::process::become_unprivileged(1 << 20);
            let a = LockedBox::<[u8]>::new_zeroed_slice(600_000).unwrap();
            assert!(a.is_locked());
            drop(a);
            assert!(lockedmem::stats().cached_bytes >= 600_000, "kept");
            let b = Options::new().zeroed_slice::<u8>(700_000).unwrap();
            assert!(b.is_locked());
            assert!(procfs::vm_lck_kb() <= 1024);
            assert!(lockedmem::stats().cached_bytes < 600_000, "given back");
        },
    );
    child::assert_success(&out);
}

/// After a burst to the lock limit (the crate reclaims its cache, then
/// refuses), dropped slots are cached again once the pressure has passed,
/// even while the crate holds more than half the limit.
#[test]
fn caching_resumes_once_memlock_pressure_has_passed() {
    let out = child::run("caching_resumes_once_memlock_pressure_has_passed", || {
        common::become_unprivileged(64 * 1024);
        let live: Vec<_> = (0..10)
            .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("a box"))
            .collect();
        // A burst to the limit: the crate reclaims, then refuses.
        let mut burst = Vec::new();
        while let Ok(b) = LockedBox::<[u8; 32]>::new_zeroed() {
            burst.push(b);
        }
        drop(burst);
        for _ in 0..5_000 {
            drop(LockedBox::<[u8; 32]>::new_zeroed().expect("a box"));
        }
        let st = lockedmem::stats();
        assert!(
            st.cached_slots > 0,
            "expected dropped slots cached again after the pressure passed, with 10 of 16 \
             pages live: {st:?}"
        );
        drop(live);
    });
    child::expect_success(&out, "caching resumes after a refusal");
}
