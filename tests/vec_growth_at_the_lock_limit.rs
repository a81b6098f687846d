//! How far a `LockedVec` grows one element at a time under a tight
//! `RLIMIT_MEMLOCK`, without `CAP_IPC_LOCK`: growth holds the old and the
//! new memory locked at once, and the docs promise at least two thirds of
//! the room the limit leaves (16 KiB or more).
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, procfs};
use lockedmem::{Error, LockedVec};

/// Pushes bytes until the vector is refused for the limit; its length then.
fn grow_until_refused() -> usize {
    let mut v = LockedVec::<u8>::new();
    loop {
        match v.try_push(0x5a) {
            Ok(()) => {}
            Err(Error::MemlockLimit { .. }) => return v.len(),
            Err(e) => panic!("expected growth or MemlockLimit, got {e:?}"),
        }
        assert!(v.len() <= 1 << 20, "expected a refusal under the limit");
    }
}

fn reaches_two_thirds_of(limit: u64) {
    common::become_unprivileged(limit);
    assert_eq!(procfs::vm_lck_kb(), 0, "nothing locked before");
    let len = grow_until_refused();
    let share = len as f64 / limit as f64;
    println!(
        "RLIMIT_MEMLOCK {} KiB: {len} bytes ({:.1} %)",
        limit / 1024,
        share * 100.0
    );
    assert!(
        3 * len as u64 >= 2 * limit,
        "expected a LockedVec grown byte by byte to reach at least two thirds of the {limit}-byte \
         limit; it reached {len} bytes ({:.1} %)",
        share * 100.0
    );
}

/// Runs `reaches_two_thirds_of(limit)` in a child (this test, `name`,
/// again) and passes on the line it measured.
fn in_child_at(name: &str, limit: u64) {
    let out = child::run(name, || reaches_two_thirds_of(limit));
    child::assert_success(&out);
    print!(
        "{}",
        child::stdout(&out)
            .lines()
            .filter(|l| l.contains("KiB"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_vector_reaches_two_thirds_of_a_16_kib_limit() {
    in_child_at("a_vector_reaches_two_thirds_of_a_16_kib_limit", 16 * 1024);
}

#[test]
fn a_vector_reaches_two_thirds_of_a_64_kib_limit() {
    in_child_at("a_vector_reaches_two_thirds_of_a_64_kib_limit", 64 * 1024);
}
