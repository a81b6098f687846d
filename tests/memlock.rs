//! RLIMIT_MEMLOCK, tested where it applies: in a child process that has
//! dropped CAP_IPC_LOCK (with which the kernel ignores the limit) and lowered
//! the limit to 64 KiB, as on many hosts and containers.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, end_of, procfs};
use lockedmem::{Error, LockPolicy, LockedBox, MemlockCall, Options};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const LIMIT: u64 = 64 * 1024;

fn become_unprivileged() {
    common::become_unprivileged(LIMIT);
}

#[test]
fn the_limit_is_respected_and_reported() {
    let out = child::run("the_limit_is_respected_and_reported", || {
        become_unprivileged();
        drop(
            Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed::<u8>()
                .unwrap(),
        ); // fork detector
        lockedmem::trim();
        let base_lck = procfs::vm_lck_kb();
        let base_maps = procfs::mapping_count();

        let mut boxes = Vec::new();
        let err = loop {
            match LockedBox::<[u8; 32]>::new_zeroed() {
                Ok(b) => boxes.push(b),
                Err(e) => break e,
            }
            assert!(boxes.len() <= 16, "64 KiB holds at most 16 one-page locks");
        };
        assert!(!boxes.is_empty());
        assert!(boxes.iter().all(|b| b.is_locked()));
        let n = boxes.len() as u64;
        assert_eq!(procfs::vm_lck_kb(), base_lck + n * 4);

        let Error::MemlockLimit {
            call: MemlockCall::Secret,
            requested,
            soft_limit,
            hard_limit,
            locked_by_crate,
        } = &err
        else {
            panic!("expected MemlockLimit, got {err:?}");
        };
        assert_eq!(
            (*requested, *soft_limit, *hard_limit),
            (4096, Some(LIMIT), Some(LIMIT))
        );
        assert_eq!(*locked_by_crate as u64, n * 4096);
        let msg = err.to_string();
        for needle in [
            "RLIMIT_MEMLOCK",
            "4096 bytes",
            "65536 bytes",
            "LockPolicy::BestEffort",
        ] {
            assert!(msg.contains(needle), "{needle} not in {msg}");
        }
        assert_eq!(format!("{err:?}"), msg, "Debug carries the advice");

        // The refused attempt left no mapping behind, and nobody raised the limit.
        let live_maps = procfs::mapping_count();
        assert!(LockedBox::<[u8; 32]>::new_zeroed().is_err());
        assert_eq!(
            procfs::mapping_count(),
            live_maps,
            "a refused box leaks no mapping"
        );
        assert_eq!(getrlimit(Resource::Memlock).current, Some(LIMIT));

        // BestEffort goes on, unlocked but otherwise protected.
        let loose = Options::new()
            .lock(LockPolicy::BestEffort)
            .zeroed::<[u8; 32]>()
            .unwrap();
        assert!(!loose.is_locked());
        let vma = procfs::vma_at(end_of(&*loose) - 1).unwrap();
        assert!(!vma.has("lo"), "{:?}", vma.flags);
        common::assert_default_advice(&vma);
        assert_eq!(procfs::perms_at(end_of(&*loose)).as_deref(), Some("---p"));
        assert_eq!(
            procfs::vm_lck_kb(),
            base_lck + n * 4,
            "BestEffort locked nothing"
        );

        drop(boxes);
        drop(loose);
        lockedmem::trim();
        assert_eq!(procfs::vm_lck_kb(), base_lck, "VmLck back at its baseline");
        assert_eq!(procfs::mapping_count(), base_maps);
        assert_eq!(lockedmem::locked_bytes(), 0);
        println!("locked boxes before the refusal: {n}");
    });
    child::assert_success(&out);
}

#[test]
fn a_multi_page_request_over_the_limit_is_refused_whole() {
    let out = child::run(
        "a_multi_page_request_over_the_limit_is_refused_whole",
        || {
            become_unprivileged();
            let base_lck = procfs::vm_lck_kb();
            let e = LockedBox::<[u8]>::new_zeroed_slice(100_000).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::MemlockLimit {
                        requested: 102_400,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_eq!(procfs::vm_lck_kb(), base_lck, "no page of it stayed locked");
            // Exactly at the limit is fine.
            let b = LockedBox::<[u8]>::new_zeroed_slice(64 * 1024 - 16).unwrap();
            assert!(b.is_locked());
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_zero_limit_is_reported_as_the_limit_too() {
    // With RLIMIT_MEMLOCK = 0, mlock fails with EPERM rather than ENOMEM.
    let out = child::run("a_zero_limit_is_reported_as_the_limit_too", || {
        become_unprivileged();
        setrlimit(
            Resource::Memlock,
            Rlimit {
                current: Some(0),
                maximum: Some(0),
            },
        )
        .unwrap();
        let e = LockedBox::<u64>::new_zeroed().unwrap_err();
        assert!(
            matches!(
                e,
                Error::MemlockLimit {
                    soft_limit: Some(0),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            !Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed::<u64>()
                .unwrap()
                .is_locked()
        );
    });
    child::assert_success(&out);
}
