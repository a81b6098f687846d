//! Second reading of the large-slot cache and the best-effort packed twins
//! (b8f9d8f, 82b2b79): each test shows one problem from outside, in a child
//! process of its own, against the kernel's view where it can.

mod common;

use common::{child, procfs};
use lockedbox::{Isolation, LockPolicy, LockedBox, Options};

fn best_effort(isolation: Isolation) -> Options {
    let mut o = Options::new();
    o.lock(LockPolicy::BestEffort).isolation(isolation);
    o
}

/// Fills the limit with locked one-page boxes, until one is refused.
fn fill_the_limit() -> Vec<LockedBox<[u8; 32]>> {
    let boxes: Vec<_> = std::iter::from_fn(|| LockedBox::<[u8; 32]>::new_zeroed().ok())
        .take(10_000)
        .collect();
    assert!(boxes.len() < 10_000, "the limit was reached");
    boxes
}

/// A lock refused for the limit makes the crate stop even trying best-effort
/// locks while it holds as many locked bytes as then (`at_limit`). But the
/// bytes it holds may by then be slots in its caches, which it promises to
/// give back before refusing a lock: a best-effort box is then made unlocked
/// although `trim` would have left room for it.
#[test]
fn a_best_effort_box_is_not_left_unlocked_while_the_cache_holds_the_room() {
    let out = child::run(
        "a_best_effort_box_is_not_left_unlocked_while_the_cache_holds_the_room",
        || {
            common::become_unprivileged(64 * 1024);
            let mut live = fill_the_limit(); // one lock refused at the limit
            let n = live.len();
            // A refusal closes the next 1,024 dropped slots rather than
            // caching them; let that pass, one box at a time.
            live.pop();
            for _ in 0..1100 {
                drop(LockedBox::<[u8; 32]>::new_zeroed().unwrap());
            }
            live.push(LockedBox::<[u8; 32]>::new_zeroed().unwrap());
            assert_eq!(live.len(), n);
            // Every locked byte the crate holds is now in its cache.
            drop(live);
            let st = lockedbox::stats();
            assert_eq!(st.cached_slots, n, "{st:?}");
            assert_eq!(st.locked_bytes, st.cached_bytes, "{st:?}");

            // A size class the cache holds no slot of.
            let page = best_effort(Isolation::Page).zeroed::<[u8; 5000]>().unwrap();
            let packed = best_effort(Isolation::Packed).zeroed::<[u8; 32]>().unwrap();
            assert!(
                page.is_locked() && packed.is_locked(),
                "a best-effort box left unlocked (page: {}, packed: {}) while the cache held \
                 every locked byte: {:?}",
                page.is_locked(),
                packed.is_locked(),
                lockedbox::stats()
            );
        },
    );
    child::assert_success(&out);
}

/// `Stats::mappings` promises never fewer than the kernel shows. Open pages
/// of a packed slab merge into one mapping per run, which `mappings` counts;
/// but in a best-effort class a run can hold locked and unlocked pages (a
/// page relocked by `trim`, next to pages still unlocked), and the kernel
/// keeps those apart (`VM_LOCKED` differs).
#[test]
fn stats_count_the_mappings_of_a_partly_relocked_best_effort_slab() {
    let out = child::run(
        "stats_count_the_mappings_of_a_partly_relocked_best_effort_slab",
        || {
            common::become_unprivileged(64 * 1024);
            // (Under another fork policy, so that the kernel does not merge
            // the guard pages of its slab with the best-effort one's.)
            let mut locked = Options::new();
            locked
                .isolation(Isolation::Packed)
                .fork(lockedbox::ForkPolicy::Keep);
            // 16 locked packed pages: the whole limit.
            let mut live: Vec<_> = (0..1024)
                .map(|_| locked.zeroed::<[u8; 32]>().unwrap())
                .collect();
            assert!(live.iter().all(LockedBox::is_locked));
            let opts = best_effort(Isolation::Packed);
            // Three unlocked best-effort pages of 64 slots, side by side.
            let boxes: Vec<_> = (0..3 * 64)
                .map(|_| opts.zeroed::<[u8; 32]>().unwrap())
                .collect();
            assert!(boxes.iter().all(|b| !b.is_locked()));
            assert!(lockedbox::stats().mappings >= procfs::dontdump_mapping_count());
            // The last locked page empties; `trim` closes it and locks the
            // first best-effort page in its place.
            live.truncate(1024 - 64);
            lockedbox::trim();
            assert!(boxes[0].is_locked() && !boxes[64].is_locked());
            let st = lockedbox::stats();
            let ours = procfs::dontdump_mapping_count();
            assert!(
                st.mappings >= ours,
                "stats().mappings = {} but the kernel shows {ours} of the crate's mappings",
                st.mappings
            );
        },
    );
    child::assert_success(&out);
}
