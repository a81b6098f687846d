//! Every box's layout and page state, read back from the kernel's own view in
//! /proc/self/smaps, /proc/self/maps and /proc/self/status.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

use common::{child, end_of, page_size, procfs, start_of};
use lockedmem::{ForkPolicy, LockPolicy, LockedBox, Options};

/// The data VMA holding `value`, and the VMAs right before and after it.
fn vmas_around<T: ?Sized>(value: &T) -> (procfs::Vma, procfs::Vma, procfs::Vma) {
    // For a zero-sized value, `end_of` is the first guard byte; look at the
    // byte before it, the last data byte.
    let inside = end_of(value) - 1;
    let vmas = procfs::smaps();
    let i = vmas
        .iter()
        .position(|v| v.contains(inside))
        .expect("value is mapped");
    (vmas[i - 1].clone(), vmas[i].clone(), vmas[i + 1].clone())
}

fn assert_guard(vma: &procfs::Vma, data: &procfs::Vma) {
    assert_eq!(vma.perms, "---p", "guard {vma:?}");
    assert!(
        vma.start == data.end || vma.end == data.start,
        "guard adjoins data"
    );
    assert!(!vma.has("lo"), "guard pages are not locked: {vma:?}");
    assert_eq!(vma.rss_kb, 0, "guard pages hold no memory");
}

/// A default box: locked, one data page between guards, and advised as the
/// platform promises: `dd` (left out of core dumps) and `wf` (zeros in a
/// fork child, the default `ForkPolicy::Wipe`) on Linux; in the portable
/// test mode no `dd` and `dc` (the default there is `ForkPolicy::Exclude`).
#[test]
fn default_box_is_locked_advised_as_promised_and_guarded() {
    let key = LockedBox::<[u8; 32]>::new_with(|k| k.fill(0xA5)).unwrap();
    let (before, data, after) = vmas_around(&*key);
    assert_eq!(data.perms, "rw-p");
    assert!(data.has("lo"), "{:?}", data.flags);
    common::assert_default_advice(&data);
    assert_eq!(data.len(), page_size(), "one data page for 32 bytes");
    assert_eq!(data.locked_kb * 1024, data.len() as u64, "all of it locked");
    assert_guard(&before, &data);
    assert_guard(&after, &data);
    assert!(key.is_locked());
}

/// Each fork policy the platform offers marks the pages as it says (`wf`,
/// `dc`, or neither for `Keep`), and `Wipe` where it is not offered is
/// `Error::Unsupported` naming `MADV_WIPEONFORK`.
#[test]
fn each_fork_policy_marks_its_own_advice() {
    for policy in [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep] {
        let made = Options::new().fork(policy).zeroed::<[u8; 32]>();
        if policy == ForkPolicy::Wipe && !common::promises().fork_zeros {
            common::assert_wipe_unsupported(made);
            continue;
        }
        let b = made.unwrap();
        let (_, data, _) = vmas_around(&*b);
        assert!(data.has("lo"), "{policy:?}: {:?}", data.flags);
        common::assert_advised(&data, policy);
    }
}

#[test]
fn value_ends_flush_against_the_trailing_guard() {
    let page = page_size();
    fn check<T: ?Sized>(value: &T, page: usize) {
        let end = end_of(value);
        assert_eq!(end % page, 0, "value ends on a page boundary");
        assert_eq!(
            procfs::perms_at(end).as_deref(),
            Some("---p"),
            "next byte is guard"
        );
        assert_eq!(
            procfs::perms_at(end - 1).as_deref(),
            Some("rw-p"),
            "last byte is data"
        );
    }
    check(&*LockedBox::<[u8; 1]>::new_zeroed().unwrap(), page);
    check(&*LockedBox::<[u64; 5]>::new_zeroed().unwrap(), page);
    check(&*LockedBox::<u128>::new(7).unwrap(), page);
    for len in [1, 15, 16, 17, page - 16, page - 15, page, 3 * page + 1] {
        let b = LockedBox::<[u8]>::new_zeroed_slice(len).unwrap();
        assert_eq!(b.len(), len);
        check(&*b, page);
        let (before, data, after) = vmas_around(&*b);
        assert_eq!(data.len(), (len + 16).div_ceil(page) * page, "len {len}");
        assert!(start_of(&*b) - data.start >= 16, "room for the canary");
        assert_guard(&before, &data);
        assert_guard(&after, &data);
    }
}

#[test]
fn multi_page_box_is_locked_and_resident_throughout() {
    let page = page_size();
    let b = LockedBox::<[u8]>::new_zeroed_slice(5 * page).unwrap();
    let (_, data, _) = vmas_around(&*b);
    assert_eq!(data.len(), 6 * page);
    assert_eq!(data.locked_kb * 1024, 6 * page as u64);
    let r = b.residency().unwrap();
    assert_eq!((r.resident, r.total), (6, 6));
    assert!(r.all_resident());
}

#[test]
fn zero_length_slice_works() {
    let mut b = LockedBox::<[u64]>::new_zeroed_slice(0).unwrap();
    assert!(b.is_empty());
    assert!(b.iter_mut().next().is_none());
    assert!(b.is_locked());
    assert_eq!(end_of(&*b) % page_size(), 0);
    let from = LockedBox::from_slice(&[] as &[u8]).unwrap();
    assert!(from.is_empty());
}

#[test]
fn contents_round_trip() {
    let mut b = LockedBox::from_slice(b"correct horse battery staple").unwrap();
    assert_eq!(&b[..], b"correct horse battery staple");
    b[0] = b'C';
    assert_eq!(&b[..7], b"Correct");
    let n = LockedBox::new(0xDEAD_BEEF_u32).unwrap();
    assert_eq!(*n, 0xDEAD_BEEF);
    let z = LockedBox::<[u32; 8]>::new_zeroed().unwrap();
    assert_eq!(*z, [0; 8]);
}

#[test]
fn debug_shows_no_secret_byte() {
    let secret: [u8; 16] = *b"\x8f\x13SECRETSECRET\x01\x02";
    let b = LockedBox::new(secret).unwrap();
    let s = LockedBox::from_slice(&secret).unwrap();
    for text in [format!("{b:?}"), format!("{b:#?}"), format!("{s:?}")] {
        assert!(text.contains("LockedBox") && text.contains("16"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(!text.contains("143") && !text.contains("8f"), "{text}");
    }
}

#[test]
fn send_and_sync_follow_the_value() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LockedBox<[u8; 32]>>();
    send_sync::<LockedBox<[u64]>>();
}

#[test]
fn vm_lck_rises_and_falls_with_live_boxes() {
    child::assert_success(&child::run(
        "vm_lck_rises_and_falls_with_live_boxes",
        || {
            let page_bytes = page_size();
            let page = page_bytes as u64;
            // The first box of a process also maps the crate's one-page fork
            // detector, for good; make it before taking the baseline.
            drop(LockedBox::<u8>::new_zeroed().unwrap());
            lockedmem::trim();
            let base_kb = procfs::vm_lck_kb();
            let base_maps = procfs::mapping_count();
            let base_crate = lockedmem::locked_bytes();
            let boxes: Vec<_> = (0..10)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().unwrap())
                .collect();
            let big = LockedBox::<[u8]>::new_zeroed_slice(3 * page_bytes).unwrap();
            assert_eq!(procfs::vm_lck_kb(), base_kb + (10 + 4) * page / 1024);
            assert_eq!(
                lockedmem::locked_bytes() as u64,
                base_crate as u64 + (10 + 4) * page
            );
            // Neighbouring slots of a slab share guard pages: two mappings a box
            // (its data pages and the guard after them), plus one a slab.
            let live = procfs::mapping_count() - base_maps;
            assert!(live <= 2 * 11 + 2, "{live} mappings for 11 boxes");
            drop(boxes);
            // Dropped slots wait, wiped but locked, in this thread's cache...
            assert_eq!(procfs::vm_lck_kb(), base_kb + (10 + 4) * page / 1024);
            assert_eq!(lockedmem::stats().cached_slots, 10);
            drop(big);
            // ...until trim gives them back.
            lockedmem::trim();
            assert_eq!(procfs::vm_lck_kb(), base_kb);
            assert_eq!(lockedmem::locked_bytes(), base_crate);
            assert_eq!(procfs::mapping_count(), base_maps, "no mapping left behind");
        },
    ));
}

#[test]
fn best_effort_box_keeps_every_other_protection() {
    // With CAP_IPC_LOCK the lock succeeds; the refused case is in memlock.rs.
    let b = Options::new()
        .lock(LockPolicy::BestEffort)
        .zeroed::<[u8; 64]>()
        .unwrap();
    let (before, data, after) = vmas_around(&*b);
    common::assert_default_advice(&data);
    assert_eq!(b.is_locked(), data.has("lo"));
    assert_guard(&before, &data);
    assert_guard(&after, &data);
}

#[test]
fn without_a_cache_vm_lck_falls_at_each_drop() {
    child::assert_success(&child::run(
        "without_a_cache_vm_lck_falls_at_each_drop",
        || {
            lockedmem::set_cache_limit(0);
            drop(LockedBox::<u8>::new_zeroed().unwrap());
            lockedmem::trim();
            let base_kb = procfs::vm_lck_kb();
            let page_kb = page_size() as u64 / 1024;
            let mut boxes: Vec<_> = (0..5)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().unwrap())
                .collect();
            for n in (0..5u64).rev() {
                boxes.pop();
                assert_eq!(procfs::vm_lck_kb(), base_kb + n * page_kb);
            }
            assert_eq!(lockedmem::stats().cached_slots, 0);
        },
    ));
}
