//! Requests that cannot be met come back as errors, never as a panic or an
//! abort, and leave nothing behind.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

use common::{child, page_size, procfs};
use lockedmem::{Error, LockPolicy, LockedBox, Options};

#[test]
fn byte_size_overflow_is_an_error() {
    let e = LockedBox::<[u64]>::new_zeroed_slice(usize::MAX / 4).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { len, elem_size: 8 } if len == usize::MAX / 4),
        "{e:?}"
    );
    assert!(e.to_string().contains("fewer elements"), "{e}");
    let e = LockedBox::<[u8]>::new_zeroed_slice(usize::MAX).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
}

#[test]
fn sizes_beyond_isize_or_the_address_space_are_errors() {
    for len in [
        isize::MAX as usize,
        isize::MAX as usize - 2 * page_size(),
        1 << 47,
        1 << 52,
    ] {
        for lock in [LockPolicy::Require, LockPolicy::BestEffort] {
            let r = Options::new().lock(lock).zeroed_slice::<u8>(len);
            let e = r.expect_err("cannot map that much");
            assert!(
                matches!(e, Error::TooLarge { .. } | Error::Os { .. }),
                "{len}: {e:?}"
            );
        }
    }
}

#[test]
fn larger_than_physical_memory_is_refused_before_locking() {
    // 64 TiB fits in the address space but in no machine's RAM; locking it as
    // root would only wake the OOM killer.
    let e = LockedBox::<[u8]>::new_zeroed_slice(1 << 46).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { len, elem_size: 1 } if len == 1 << 46),
        "{e:?}"
    );
}

#[test]
fn alignment_above_a_page_is_an_error() {
    #[repr(C, align(16384))]
    struct Huge([u8; 16384]);
    // SAFETY: a byte array, valid as zeros, no pointers, no interior mutability.
    unsafe impl lockedmem::Plain for Huge {}
    let e = LockedBox::<Huge>::new_zeroed().unwrap_err();
    assert!(matches!(e, Error::Alignment { align: 16384, .. }), "{e:?}");
}

#[test]
fn failures_leave_no_mapping_and_no_lock() {
    child::assert_success(&child::run("failures_leave_no_mapping_and_no_lock", || {
        drop(LockedBox::<u8>::new_zeroed().unwrap()); // maps the fork detector
        lockedmem::trim();
        let maps = procfs::mapping_count();
        let lck = procfs::vm_lck_kb();
        for len in [usize::MAX, 1 << 46, 1 << 52] {
            assert!(LockedBox::<[u8]>::new_zeroed_slice(len).is_err());
        }
        assert_eq!(procfs::mapping_count(), maps);
        assert_eq!(procfs::vm_lck_kb(), lck);
        assert_eq!(lockedmem::locked_bytes(), 0);
    }));
}

#[test]
fn a_panicking_initialiser_drops_the_box() {
    child::assert_success(&child::run("a_panicking_initialiser_drops_the_box", || {
        // The first panic of a process sets up unwinding state of its own
        // (which may map memory); get that out of the way first.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let _ = std::panic::catch_unwind(|| panic!("warm-up"));
        std::panic::set_hook(hook);
        drop(LockedBox::<u8>::new_zeroed().unwrap()); // maps the fork detector
        lockedmem::trim();
        let maps = procfs::mapping_count();
        let r = std::panic::catch_unwind(|| {
            LockedBox::<[u8; 32]>::new_with(|k| {
                k.fill(1);
                panic!("init failed");
            })
        });
        assert!(r.is_err());
        assert_eq!(lockedmem::stats().page_boxes, 0, "dropped while unwinding");
        lockedmem::trim();
        assert_eq!(procfs::mapping_count(), maps, "and its slot given back");
        assert_eq!(lockedmem::locked_bytes(), 0);
    }));
}
