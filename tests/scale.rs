//! Scale: many live boxes within RLIMIT_MEMLOCK and vm.max_map_count.
//! Each test runs in a child process, so that its mappings and locks are
//! counted alone.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "indices become byte patterns and u32 tags on purpose"
)]

mod common;

use common::{child, packed, procfs};
use lockedmem::{Error, Isolation, LockedBox};

#[test]
fn a_thousand_packed_secrets_fit_in_64_kib_of_locked_memory() {
    let out = child::run(
        "a_thousand_packed_secrets_fit_in_64_kib_of_locked_memory",
        || {
            common::become_unprivileged(64 * 1024);
            let base_kb = procfs::vm_lck_kb();
            let boxes: Vec<_> = (0..1000)
                .map(|i| {
                    let mut b = packed()
                        .zeroed::<[u8; 32]>()
                        .unwrap_or_else(|e| panic!("box {i}: {e}"));
                    b.fill(i as u8);
                    b
                })
                .collect();
            assert!(
                boxes
                    .iter()
                    .all(|b| b.is_locked() && b.isolation() == Isolation::Packed)
            );
            // 64 slots of 64 bytes a page: 16 pages, every one locked.
            let locked_kb = procfs::vm_lck_kb() - base_kb;
            assert_eq!(locked_kb, 64, "VmLck says every page is locked");
            for (i, b) in boxes.iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8));
                assert!(b.residency().unwrap().all_resident());
            }
            // The 1,001st, of whatever kind, is locked or refused: never
            // silently unlocked under LockPolicy::Require.
            let packed_one = packed().zeroed::<[u8; 32]>();
            assert!(
                packed_one.as_ref().is_ok_and(|b| b.is_locked()),
                "{packed_one:?}"
            );
            let page_one = LockedBox::<[u8; 32]>::new_zeroed();
            match &page_one {
                Ok(b) => assert!(b.is_locked()),
                Err(e) => assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}"),
            }
            // Filling the 16 pages: 1,024 slots; the next page is refused.
            let rest: Vec<_> = (1001..1024)
                .map(|_| packed().zeroed::<[u8; 32]>().unwrap())
                .collect();
            let e = packed().zeroed::<[u8; 32]>().unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::MemlockLimit {
                        soft_limit: Some(65536),
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_eq!(lockedmem::stats().packed_boxes, 1024);
            drop((boxes, rest, packed_one, page_one));
            lockedmem::trim();
            assert_eq!(procfs::vm_lck_kb(), base_kb);
            println!("1,024 packed 32-byte secrets in 64 KiB of locked memory");
        },
    );
    child::assert_success(&out);
}

#[test]
fn the_cache_gives_way_to_new_locks_under_the_limit() {
    // 16 pages locked by 16 boxes, all dropped into the cache; a packed page
    // then needs one of them back.
    let out = child::run("the_cache_gives_way_to_new_locks_under_the_limit", || {
        common::become_unprivileged(64 * 1024);
        let boxes: Vec<_> = (0..16)
            .map(|_| LockedBox::<[u8; 32]>::new_zeroed().unwrap())
            .collect();
        drop(boxes);
        assert_eq!(lockedmem::stats().cached_slots, 16);
        let b = packed()
            .zeroed::<[u8; 32]>()
            .expect("the cache gave its locked pages back");
        assert!(b.is_locked());
        assert_eq!(lockedmem::stats().cached_slots, 0);
    });
    child::assert_success(&out);
}

#[test]
fn thirty_thousand_page_isolated_boxes_fit_under_the_default_map_count() {
    let out = child::run(
        "thirty_thousand_page_isolated_boxes_fit_under_the_default_map_count",
        || {
            let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(
                max >= 65_530,
                "this test assumes the default vm.max_map_count or more"
            );
            drop(LockedBox::<u8>::new_zeroed().unwrap()); // fork detector
            lockedmem::trim();
            let boxes: Vec<_> = (0..30_000)
                .map(|i| {
                    LockedBox::<[u8; 32]>::new_zeroed().unwrap_or_else(|e| panic!("box {i}: {e}"))
                })
                .collect();
            let live = common::crate_mapping_count();
            println!(
                "30,000 page-isolated boxes: {live} mappings ({:.3} a box)",
                live as f64 / 30_000.0
            );
            assert!(live as f64 / 30_000.0 <= 2.02, "{live} mappings");
            assert!(
                lockedmem::stats().mappings >= live,
                "stats() bounds the mappings"
            );
            assert!(procfs::mapping_count() < 65_530);
            // Spot-check that each still sits between guards.
            for b in boxes.iter().step_by(997) {
                let end = common::end_of(&**b);
                assert_eq!(procfs::perms_at(end).as_deref(), Some("---p"));
                assert_eq!(procfs::perms_at(end - 1).as_deref(), Some("rw-p"));
                assert_eq!(procfs::perms_at(end - 4097).as_deref(), Some("---p"));
            }
            assert_eq!(lockedmem::stats().page_boxes, 30_000);
            drop(boxes);
            lockedmem::trim();
            assert_eq!(common::crate_mapping_count(), 0, "every slab unmapped");
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_million_packed_secrets_in_one_process() {
    let out = child::run("a_million_packed_secrets_in_one_process", || {
        let base_kb = procfs::vm_lck_kb();
        let mut boxes = Vec::with_capacity(1_000_000);
        for i in 0..1_000_000u32 {
            let mut b = packed()
                .zeroed::<[u8; 32]>()
                .unwrap_or_else(|e| panic!("box {i}: {e}"));
            b[..4].copy_from_slice(&i.to_ne_bytes());
            boxes.push(b);
        }
        let pages = 1_000_000_u64.div_ceil(64);
        assert_eq!(
            procfs::vm_lck_kb() - base_kb,
            pages * 4,
            "every page locked"
        );
        let maps = common::crate_mapping_count();
        println!("1,000,000 packed secrets: {pages} locked pages, {maps} mappings");
        assert!(maps < 1_000, "{maps} mappings");
        assert!(
            lockedmem::stats().mappings >= maps,
            "stats() bounds the mappings"
        );
        for (i, b) in boxes.iter().enumerate().step_by(9_973) {
            assert_eq!(b[..4], (i as u32).to_ne_bytes());
        }
        assert_eq!(lockedmem::stats().packed_boxes, 1_000_000);
        drop(boxes);
        lockedmem::trim();
        assert_eq!(procfs::vm_lck_kb(), base_kb);
        assert_eq!(common::crate_mapping_count(), 0, "every slab unmapped");
    });
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

/// Without CAP_IPC_LOCK, under a 64 KiB limit: a million best-effort packed
/// secrets stay packed; exactly the first 1,024 are locked (the whole
/// limit), the rest sit on unlocked packed pages in few mappings, and the
/// locked share grows back when `trim` frees room.
#[test]
fn a_million_best_effort_packed_secrets_under_64_kib() {
    let out = child::run("a_million_best_effort_packed_secrets_under_64_kib", || {
        common::become_unprivileged(64 * 1024);
        let base_kb = procfs::vm_lck_kb();
        let base_maps = procfs::mapping_count();
        let opts = packed().lock(lockedmem::LockPolicy::BestEffort);
        let mut boxes = Vec::with_capacity(1_000_000);
        for i in 0..1_000_000u32 {
            let mut b = opts
                .zeroed::<[u8; 32]>()
                .unwrap_or_else(|e| panic!("box {i}: {e}"));
            b[..4].copy_from_slice(&i.to_ne_bytes());
            boxes.push(b);
        }
        assert_eq!(procfs::vm_lck_kb() - base_kb, 64, "the whole limit");
        let locked: Vec<bool> = boxes.iter().map(LockedBox::is_locked).collect();
        assert!(locked[..1024].iter().all(|&l| l), "the first 1,024 locked");
        assert!(!locked[1024..].iter().any(|&l| l), "the rest not");
        assert!(boxes.iter().all(|b| b.isolation() == Isolation::Packed));
        let maps = procfs::mapping_count() - base_maps;
        println!("1,000,000 best-effort packed secrets under 64 KiB: {maps} new mappings");
        assert!(maps <= 300, "{maps} mappings");
        let st = lockedmem::stats();
        assert_eq!(st.packed_boxes, 1_000_000);
        assert_eq!(st.packed_boxes_unlocked, 1_000_000 - 1024);
        assert_eq!(st.page_boxes, 0, "none fell back to a page of its own");
        for (i, b) in boxes.iter().enumerate().step_by(9_973) {
            assert_eq!(b[..4], (i as u32).to_ne_bytes());
        }
        // The locked pages empty out; `trim` closes them and locks the
        // first 16 unlocked pages in their place.
        let rest = boxes.split_off(1024);
        drop(boxes);
        lockedmem::trim();
        assert_eq!(
            procfs::vm_lck_kb() - base_kb,
            64,
            "the room was taken again"
        );
        let now_locked = rest.iter().filter(|b| b.is_locked()).count();
        assert_eq!(now_locked, 1024, "16 pages of 64 slots locked in order");
        assert!(
            rest[..1024].iter().all(LockedBox::is_locked),
            "first come first served"
        );
        assert_eq!(lockedmem::stats().packed_boxes_unlocked, rest.len() - 1024);
        drop(rest);
        lockedmem::trim();
        assert_eq!(procfs::vm_lck_kb(), base_kb);
        assert_eq!(common::crate_mapping_count(), 0, "every slab unmapped");
    });
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

/// A dropped page-isolated box gives its locked page back, and a best-effort
/// packed page takes it at once.
#[test]
fn a_dropped_box_lets_an_unlocked_packed_page_lock() {
    let out = child::run("a_dropped_box_lets_an_unlocked_packed_page_lock", || {
        common::become_unprivileged(64 * 1024);
        lockedmem::set_cache_limit(0);
        let mut pages: Vec<_> = std::iter::from_fn(|| LockedBox::<[u8; 32]>::new_zeroed().ok())
            .take(100)
            .collect();
        assert!(pages.len() < 100, "the limit was reached");
        let opts = packed().lock(lockedmem::LockPolicy::BestEffort);
        let b = opts.zeroed::<[u8; 32]>().unwrap();
        assert!(!b.is_locked());
        let vma = procfs::vma_at(b.as_ptr() as usize).unwrap();
        assert!(!vma.has("lo"));
        pages.pop();
        assert!(b.is_locked(), "locked once room was given back");
        let vma = procfs::vma_at(b.as_ptr() as usize).unwrap();
        assert!(vma.has("lo"), "{:?}", vma.flags);
        assert_eq!(lockedmem::stats().packed_boxes_unlocked, 0);
    });
    child::assert_success(&out);
}
