//! A second reader's attacks on `Backing::SecretMem`, from outside the crate:
//! what is left of secret files after their boxes are gone, whether the
//! bytes of a dropped box survive into the next one, the count of locked
//! bytes against the kernel's, fork(2) (also from a second thread, racing
//! the crate while it makes secret memory), the lock and descriptor limits,
//! and threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{child, procfs, start_of};
use lockedbox::{Backing, Error, Isolation, LockPolicy, LockedBox, Options};

fn secret() -> Options {
    Options::new().backing(Backing::SecretMem)
}

fn secret_packed() -> Options {
    secret().isolation(Isolation::Packed)
}

fn prefer() -> Options {
    Options::new().backing(Backing::PreferSecretMem)
}

fn available() -> bool {
    match lockedbox::Host::probe().memfd_secret {
        Ok(true) => true,
        other => {
            common::skip(&format!("memfd_secret(2) unavailable here: {other:?}"));
            false
        }
    }
}

/// Descriptors of this process that name a secret memory file.
fn secret_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/secretmem"))
        .count()
}

/// Mappings of this process of a secret memory file.
fn secret_maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" /secretmem"))
        .count()
}

/// `VmLck` in bytes.
fn vm_lck() -> usize {
    usize::try_from(procfs::vm_lck_kb()).unwrap() * 1024
}

/// The crate's count of locked bytes is the kernel's, less what was locked
/// before the first box (`base`).
#[track_caller]
fn assert_counts_agree(base: usize, what: &str) {
    assert_eq!(
        lockedbox::locked_bytes(),
        vm_lck() - base,
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
            lockedbox::trim();
            assert_eq!(secret_maps(), 0, "every secret file unmapped");
            assert_eq!(lockedbox::locked_bytes(), 0);
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
fn descriptors_do_not_pile_up_with_solo_secret_boxes() {
    let out = child::run("descriptors_do_not_pile_up_with_solo_secret_boxes", || {
        if !available() {
            return;
        }
        lockedbox::set_cache_limit(0);
        // Each box above 256 KiB is a mapping and a secret file of its own,
        // unmapped when it is dropped (no cache).
        for _ in 0..64 {
            let b = secret().zeroed_slice::<u8>(SOLO).unwrap();
            drop(b);
        }
        assert_eq!(secret_maps(), 0);
        assert!(secret_fds() <= 1, "{} secret files open", secret_fds());
    });
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
            for cache in [0, lockedbox::DEFAULT_CACHE_LIMIT] {
                lockedbox::set_cache_limit(cache);
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
                lockedbox::trim();
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
        let base = vm_lck() - lockedbox::locked_bytes();
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
        lockedbox::trim();
        assert_counts_agree(base, "trimmed");
        assert_eq!(lockedbox::locked_bytes(), 0);
        assert_eq!(secret_maps(), 0);
    });
    child::assert_success(&out);
}

#[test]
fn sixteen_secret_pages_fit_in_64_kib_and_all_come_back() {
    let out = child::run(
        "sixteen_secret_pages_fit_in_64_kib_and_all_come_back",
        || {
            if !available() {
                return;
            }
            let base = vm_lck();
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
            lockedbox::trim();
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
            lockedbox::trim();
            assert_eq!(lockedbox::locked_bytes(), 0);
            assert_eq!(vm_lck(), base);
            assert_eq!(secret_maps(), 0);
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_fork_child_drops_inherited_secret_boxes_and_makes_its_own() {
    let out = child::run(
        "a_fork_child_drops_inherited_secret_boxes_and_makes_its_own",
        || {
            if !available() {
                return;
            }
            let mut page = secret().zeroed::<[u8; 32]>().unwrap();
            page.fill(1);
            let mut packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
            packed.fill(2);
            let mut solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
            solo.fill(3);
            let sealed = secret().new_with(|x: &mut [u8; 32]| x.fill(4)).unwrap();
            let sealed = sealed.seal().unwrap();
            let mut v = secret().vec::<u8>(0).unwrap();
            v.try_extend_from_slice(&[5; 10_000]).unwrap();
            let parent_fds = secret_fds();
            let seen = common::in_fork(|| {
                if secret_fds() != 0 {
                    return 20;
                }
                // Own secret boxes first, so that numbers are reused.
                let mut mine = secret().zeroed::<[u8; 32]>().unwrap();
                mine.fill(9);
                let mut mine_packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
                mine_packed.fill(9);
                let mine_solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
                let fds = secret_fds();
                drop(common::the_childs_copy(&page));
                drop(common::the_childs_copy(&packed));
                drop(common::the_childs_copy(&solo));
                drop(common::the_childs_copy(&sealed));
                drop(common::the_childs_copy(&v));
                if secret_fds() != fds {
                    return 21; // dropping inherited boxes closed a descriptor
                }
                if mine.iter().any(|&x| x != 9) || mine_packed.iter().any(|&x| x != 9) {
                    return 22;
                }
                if lockedbox::locked_bytes() != vm_lck() {
                    return 23;
                }
                drop((mine, mine_packed, mine_solo));
                lockedbox::trim();
                if secret_fds() != 0 || lockedbox::locked_bytes() != 0 {
                    return 24;
                }
                10
            });
            assert_eq!(seen, common::Seen::Exited(10));
            assert!(page.iter().all(|&x| x == 1));
            assert!(packed.iter().all(|&x| x == 2));
            assert!(solo.iter().all(|&x| x == 3));
            assert!(sealed.borrow().iter().all(|&x| x == 4));
            assert!(v.iter().all(|&x| x == 5));
            assert_eq!(secret_fds(), parent_fds);
        },
    );
    child::assert_success(&out);
}

/// Forks `rounds` times while `work` runs on another thread; each fork child
/// reports whether it holds a secret file's descriptor (11) or mapping
/// (12). Returns how many children did.
fn fork_while(rounds: usize, work: impl Fn() + Send + Sync + 'static) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                work();
            }
        })
    };
    let (mut fds, mut maps) = (0, 0);
    for _ in 0..rounds {
        // SAFETY: the child only reads /proc (glibc's malloc is fork-safe)
        // and `_exit`s; it touches no lock the worker may hold but malloc's.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if secret_fds() != 0 {
                11
            } else if secret_maps() != 0 {
                12
            } else {
                10
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        match libc::WEXITSTATUS(status) {
            10 => {}
            11 => fds += 1,
            12 => maps += 1,
            s => panic!("child status {s}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    (fds, maps)
}

#[test]
fn a_fork_racing_a_new_secret_file_does_not_inherit_its_descriptor() {
    let out = child::run(
        "a_fork_racing_a_new_secret_file_does_not_inherit_its_descriptor",
        || {
            if !available() {
                return;
            }
            lockedbox::set_cache_limit(0);
            // Each box is a new secret file (a mapping of its own,
            // unmapped and closed again when it is dropped).
            let (fds, maps) = fork_while(3000, || {
                drop(secret().zeroed_slice::<u8>(SOLO).unwrap());
            });
            assert_eq!(
                (fds, maps),
                (0, 0),
                "fork children holding a secret file's descriptor, a mapping"
            );
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_fork_racing_a_secret_run_being_mapped_does_not_inherit_it() {
    let out = child::run(
        "a_fork_racing_a_secret_run_being_mapped_does_not_inherit_it",
        || {
            if !available() {
                return;
            }
            lockedbox::set_cache_limit(0);
            // One slab (and file) stays; each box maps a run of it anew.
            let _keep = secret().zeroed::<[u8; 32]>().unwrap();
            let (fds, maps) = fork_while(3000, || {
                drop(secret().zeroed::<[u8; 32]>().unwrap());
            });
            assert_eq!(
                (fds, maps),
                (0, 0),
                "fork children holding a secret file's descriptor, a mapping"
            );
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
            let base = vm_lck() - lockedbox::locked_bytes();
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
            lockedbox::trim();
            assert_counts_agree(base, "trimmed");
            assert_eq!(lockedbox::locked_bytes(), 0);
            assert_eq!(secret_maps(), 0);
            assert_eq!(secret_fds(), 0);
        },
    );
    child::assert_success(&out);
}

#[test]
fn out_of_descriptors_secret_memory_fails_cleanly() {
    let out = child::run("out_of_descriptors_secret_memory_fails_cleanly", || {
        if !available() {
            return;
        }
        let base = vm_lck() - lockedbox::locked_bytes();
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
        lockedbox::trim();
        assert_eq!(lockedbox::locked_bytes(), 0);
        assert_eq!(secret_fds(), 0);
    });
    child::assert_success(&out);
}

#[test]
fn debug_and_errors_show_no_secret_bytes() {
    if !available() {
        return;
    }
    let mut b = secret().zeroed::<[u8; 8]>().unwrap();
    b.copy_from_slice(b"Zq7!Zq7!");
    let text = format!("{b:?}");
    assert!(!text.contains("Zq7") && !text.contains("90, 113"), "{text}");
    let s = b.seal().unwrap();
    let text = format!("{s:?}");
    assert!(!text.contains("Zq7") && !text.contains("90, 113"), "{text}");
}
