//! What secret memory (`Backing::SecretMem`) costs the process and gives
//! back, seen from outside the crate: its files are closed and unmapped once
//! nothing uses them, descriptors do not pile up, a dropped secret is gone
//! from the file before its slot is used again, `locked_bytes()` is the
//! kernel's `VmLck` through every path, the lock limit is shared with
//! anonymous boxes and all of it comes back, threads leave nothing behind,
//! and running out of descriptors is a clean error. In the portable test
//! mode, which has no secret memory, each test asserts that mode's
//! behaviour instead (`common::secretmem::available`).
// Linux only: reads /proc (common::procfs), drops CAP_IPC_LOCK
// (common::secretmem).
#![cfg(target_os = "linux")]

mod common;

use common::secretmem::{available, prefer, secret, secret_fds, secret_maps, secret_packed};
use common::{child, procfs, start_of};
use lockedmem::{Backing, Error, Isolation, LockPolicy, LockedBox, Options};

/// The crate's count of locked bytes is the kernel's, less what was locked
/// before the first box (`base`).
#[track_caller]
fn assert_counts_agree(base: usize, what: &str) {
    assert_eq!(
        lockedmem::locked_bytes(),
        procfs::vm_lck_bytes() - base,
        "{what}: locked_bytes() against VmLck"
    );
}

/// A value above 256 KiB: a mapping (and a secret file) of its own.
const SOLO: usize = 300 * 1024;

#[test]
fn secret_files_are_closed_once_nothing_is_live_and_trimmed() {
    let out = child::run(
        "secret_files_are_closed_once_nothing_is_live_and_trimmed",
        || {
            if !available() {
                return;
            }
            assert_eq!(secret_fds(), 0);
            let page = secret().zeroed::<[u8; 32]>().unwrap();
            let packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
            let solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
            let mut v = secret().vec::<u8>(0).unwrap();
            v.try_extend_from_slice(&[1; 20_000]).unwrap();
            assert!(secret_fds() >= 3, "{} secret files", secret_fds());
            drop((page, packed, solo, v));
            lockedmem::trim();
            assert_eq!(secret_maps(), 0, "every secret file unmapped");
            assert_eq!(lockedmem::locked_bytes(), 0);
            assert_eq!(
                secret_fds(),
                0,
                "every secret file closed once nothing maps it"
            );
        },
    );
    child::assert_success(&out);
}

#[test]
fn solo_secret_boxes_made_and_dropped_leave_no_descriptor_open() {
    let out = child::run(
        "solo_secret_boxes_made_and_dropped_leave_no_descriptor_open",
        || {
            if !available() {
                return;
            }
            lockedmem::set_cache_limit(0);
            // Each box above 256 KiB is a mapping and a secret file of its own,
            // unmapped when it is dropped (no cache).
            for _ in 0..64 {
                let b = secret().zeroed_slice::<u8>(SOLO).unwrap();
                drop(b);
            }
            assert_eq!(secret_maps(), 0);
            assert!(secret_fds() <= 1, "{} secret files open", secret_fds());
        },
    );
    child::assert_success(&out);
}

/// Fills a box of `opts` with `0xAA`, drops it, and returns whether the
/// next box of the same shape (likely in the same slot) reads all zero.
fn next_box_is_zero<const N: usize>(opts: &Options, sealed: bool) -> (usize, usize, bool) {
    let mut first = opts.zeroed::<[u8; N]>().unwrap();
    first.fill(0xAA);
    let a = start_of(&*first);
    if sealed {
        let s = first.seal().unwrap();
        assert!(s.borrow().iter().all(|&x| x == 0xAA));
        drop(s);
    } else {
        drop(first);
    }
    let second = opts.zeroed::<[u8; N]>().unwrap();
    let b = start_of(&*second);
    (a, b, second.iter().all(|&x| x == 0))
}

#[test]
fn a_dropped_secret_is_gone_from_the_file_when_its_slot_is_reused() {
    let out = child::run(
        "a_dropped_secret_is_gone_from_the_file_when_its_slot_is_reused",
        || {
            if !available() {
                return;
            }
            for cache in [0, lockedmem::DEFAULT_CACHE_LIMIT] {
                lockedmem::set_cache_limit(cache);
                for sealed in [false, true] {
                    let (a, b, zero) = next_box_is_zero::<4000>(&secret(), sealed);
                    assert_eq!(a, b, "cache {cache}: the same slot again");
                    assert!(zero, "cache {cache} sealed {sealed}: page slot");
                    let (a, b, zero) = next_box_is_zero::<32>(&secret_packed(), sealed);
                    assert_eq!(a, b, "cache {cache}: the same packed slot again");
                    assert!(zero, "cache {cache} sealed {sealed}: packed slot");
                    let (_, _, zero) = next_box_is_zero::<SOLO>(&secret(), sealed);
                    assert!(zero, "cache {cache} sealed {sealed}: solo slot");
                }
                // A vector's old buffers, left behind as it grows.
                let mut v = secret().vec::<u8>(0).unwrap();
                for _ in 0..200_000 {
                    v.try_push(0xBB).unwrap();
                }
                drop(v);
                for len in [16, 100, 1000, 5000, 20_000, 70_000, 150_000] {
                    let b = secret().zeroed_slice::<u8>(len).unwrap();
                    assert!(b.iter().all(|&x| x == 0), "cache {cache}: {len} bytes");
                    let b = secret_packed().zeroed_slice::<u8>(len).unwrap();
                    assert!(b.iter().all(|&x| x == 0), "cache {cache}: {len} bytes");
                }
                lockedmem::trim();
            }
        },
    );
    child::assert_success(&out);
}

#[test]
fn locked_bytes_is_vm_lck_through_every_secret_path() {
    let out = child::run("locked_bytes_is_vm_lck_through_every_secret_path", || {
        if !available() {
            return;
        }
        let base = procfs::vm_lck_bytes() - lockedmem::locked_bytes();
        let page = secret().zeroed::<[u8; 32]>().unwrap();
        assert_counts_agree(base, "page");
        let packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
        assert_counts_agree(base, "packed");
        let solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
        assert_counts_agree(base, "solo");
        let big = secret().zeroed_slice::<u8>(100_000).unwrap();
        assert_counts_agree(base, "100 kB slab slot");
        let mut v = secret().vec::<u8>(0).unwrap();
        v.try_extend_from_slice(&[3; 200_000]).unwrap();
        assert_counts_agree(base, "vec");
        let sealed = secret().zeroed::<[u8; 64]>().unwrap().seal().unwrap();
        assert_counts_agree(base, "sealed");
        drop(sealed.borrow());
        let anon = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        assert_counts_agree(base, "anonymous beside");
        drop((page, packed, solo, big, v, sealed, anon));
        assert_counts_agree(base, "dropped, cached");
        std::thread::spawn(|| {
            let b = secret().zeroed::<[u8; 32]>().unwrap();
            let s = secret().zeroed_slice::<u8>(SOLO).unwrap();
            drop((b, s));
        })
        .join()
        .unwrap();
        assert_counts_agree(base, "a thread exited");
        lockedmem::trim();
        assert_counts_agree(base, "trimmed");
        assert_eq!(lockedmem::locked_bytes(), 0);
        assert_eq!(secret_maps(), 0);
    });
    child::assert_success(&out);
}

#[test]
fn sixteen_secret_pages_fit_in_64_kib_shared_with_anonymous_boxes_and_all_come_back() {
    let out = child::run(
        "sixteen_secret_pages_fit_in_64_kib_shared_with_anonymous_boxes_and_all_come_back",
        || {
            if !available() {
                return;
            }
            let base = procfs::vm_lck_bytes();
            common::process::become_unprivileged(64 * 1024 + base as u64);
            let mut boxes = Vec::new();
            let e = loop {
                match secret().zeroed::<[u8; 32]>() {
                    Ok(b) => boxes.push(b),
                    Err(e) => break e,
                }
            };
            assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
            assert_eq!(boxes.len(), 16);
            assert_counts_agree(base, "at the limit");
            // Anonymous memory is refused too, with Require...
            let e = prefer().zeroed::<[u8; 32]>().unwrap_err();
            assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
            let e = LockedBox::<[u8; 32]>::new_zeroed().unwrap_err();
            assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
            // ...and secret memory under BestEffort is an error, not an
            // unlocked secret box.
            let e = secret()
                .lock(LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .unwrap_err();
            assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
            let b = prefer()
                .lock(LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .unwrap();
            assert_eq!(b.backing(), Backing::Anonymous);
            assert!(!b.is_locked());
            let vma = procfs::vma_at(start_of(&*b)).unwrap();
            assert!(!vma.path.contains("secretmem"), "{vma:?}");
            drop(b);
            // Half back: anonymous and secret boxes share the room.
            boxes.truncate(8);
            lockedmem::trim();
            assert_counts_agree(base, "half");
            let mut anon = Vec::new();
            for _ in 0..4 {
                anon.push(LockedBox::<[u8; 32]>::new_zeroed().unwrap());
            }
            for _ in 0..4 {
                let b = prefer().zeroed::<[u8; 32]>().unwrap();
                assert_eq!(b.backing(), Backing::SecretMem);
                assert!(
                    procfs::vma_at(start_of(&*b))
                        .unwrap()
                        .path
                        .contains("secretmem")
                );
                boxes.push(b);
            }
            assert_counts_agree(base, "full again, mixed");
            let b = prefer().zeroed::<[u8; 32]>();
            assert!(matches!(b, Err(Error::MemlockLimit { .. })), "{b:?}");
            drop((boxes, anon));
            lockedmem::trim();
            assert_eq!(lockedmem::locked_bytes(), 0);
            assert_eq!(procfs::vm_lck_bytes(), base);
            assert_eq!(secret_maps(), 0);
        },
    );
    child::assert_success(&out);
}

#[test]
fn threads_making_and_dropping_secret_boxes_leave_nothing_behind() {
    let out = child::run(
        "threads_making_and_dropping_secret_boxes_leave_nothing_behind",
        || {
            if !available() {
                return;
            }
            let base = procfs::vm_lck_bytes() - lockedmem::locked_bytes();
            let threads: Vec<_> = (0..8u8)
                .map(|t| {
                    std::thread::spawn(move || {
                        let mut keep = Vec::new();
                        for i in 0..300usize {
                            let len = [16, 200, 3000, 9000, 70_000, SOLO][i % 6];
                            let opts = if i % 2 == 0 {
                                secret()
                            } else {
                                secret_packed()
                            };
                            let mut b = opts.zeroed_slice::<u8>(len).unwrap();
                            assert!(b.iter().all(|&x| x == 0), "fresh box not zero");
                            b.fill(t);
                            if i % 7 == 0 {
                                keep.push(b);
                            }
                        }
                        assert!(keep.iter().all(|b| b.iter().all(|&x| x == t)));
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_counts_agree(base, "threads gone");
            lockedmem::trim();
            assert_counts_agree(base, "trimmed");
            assert_eq!(lockedmem::locked_bytes(), 0);
            assert_eq!(secret_maps(), 0);
            assert_eq!(secret_fds(), 0);
        },
    );
    child::assert_success(&out);
}

#[test]
fn out_of_descriptors_secret_memory_is_an_error_naming_the_call_and_prefer_uses_anonymous_memory() {
    let out = child::run(
        "out_of_descriptors_secret_memory_is_an_error_naming_the_call_and_prefer_uses_anonymous_memory",
        || {
            if !available() {
                return;
            }
            let base = procfs::vm_lck_bytes() - lockedmem::locked_bytes();
            let nofile = |cur: u64| {
                let lim = libc::rlimit {
                    rlim_cur: cur,
                    rlim_max: 4096,
                };
                // SAFETY: plain setrlimit on this process.
                let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
                assert_eq!(rc, 0);
            };
            nofile(24);
            let mut boxes = Vec::new();
            let mut err = None;
            // Different classes, each its own slab and file.
            for pages in 1..=64usize {
                let opts = secret();
                match opts.zeroed_slice::<u8>(pages * 4096 - 200) {
                    Ok(b) => boxes.push(b),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            let e = err.expect("the descriptor limit was reached");
            let text = format!("{e} {e:?}");
            assert!(text.contains("memfd_secret"), "{text}");
            nofile(4096);
            assert_counts_agree(base, "at EMFILE");
            assert!(boxes.iter().all(|b| b.iter().all(|&x| x == 0)));
            nofile(24);
            // PreferSecretMem stands in anonymous memory, which needs no
            // descriptor.
            let b = prefer().zeroed_slice::<u8>(200 * 4096).unwrap();
            assert_eq!(b.backing(), Backing::Anonymous);
            assert!(b.is_locked());
            let b2 = prefer()
                .isolation(Isolation::Packed)
                .zeroed_slice::<u8>(100)
                .unwrap();
            assert!(b2.is_locked());
            drop(b2);
            drop((boxes, b));
            lockedmem::trim();
            assert_eq!(lockedmem::locked_bytes(), 0);
            assert_eq!(secret_fds(), 0);
        },
    );
    child::assert_success(&out);
}
