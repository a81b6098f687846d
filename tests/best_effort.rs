//! The large-slot cache and best-effort packed pages at the lock limit,
//! seen from outside: each test in a child process of its own, against the
//! kernel's view (VmLck, smaps, maps) where it can.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, procfs};
use lockedmem::{Error, Isolation, LockPolicy, LockedBox, Options};

fn best_effort(isolation: Isolation) -> Options {
    Options::new()
        .lock(LockPolicy::BestEffort)
        .isolation(isolation)
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
            let st = lockedmem::stats();
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
                lockedmem::stats()
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
            let locked = Options::new()
                .isolation(Isolation::Packed)
                .fork(lockedmem::ForkPolicy::Keep);
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
            assert!(lockedmem::stats().mappings >= common::crate_mapping_count());
            // The last locked page empties; `trim` closes it and locks the
            // first best-effort page in its place.
            live.truncate(1024 - 64);
            lockedmem::trim();
            assert!(boxes[0].is_locked() && !boxes[64].is_locked());
            let st = lockedmem::stats();
            let ours = common::crate_mapping_count();
            assert!(
                st.mappings >= ours,
                "stats().mappings = {} but the kernel shows {ours} of the crate's mappings",
                st.mappings
            );
        },
    );
    child::assert_success(&out);
}

/// `locked_bytes()` against the kernel's `VmLck`, in bytes.
fn assert_vm_lck(base_kb: u64, what: &str) {
    let kernel = (procfs::vm_lck_kb() - base_kb) * 1024;
    let ours = lockedmem::locked_bytes() as u64;
    assert_eq!(kernel, ours, "VmLck against locked_bytes(), {what}");
}

// Checks that passed on the reviewed code too (kept as regression tests).

/// VmLck equals `locked_bytes()` through large slots cached and evicted,
/// best-effort packed boxes over a 1 MiB limit, a Require box refused
/// there, drops that relock, `trim`, and threads that exit.
#[test]
fn vm_lck_follows_large_slots_relocks_trims_and_thread_exits() {
    let out = child::run(
        "vm_lck_follows_large_slots_relocks_trims_and_thread_exits",
        || {
            common::become_unprivileged(1024 * 1024);
            let base = procfs::vm_lck_kb();
            assert_eq!(lockedmem::locked_bytes(), 0);
            // Large slots: solo and slab, cached, evicted, trimmed.
            for len in [70_000usize, 300_000, 400_000, 300_000, 70_000] {
                drop(LockedBox::<[u8]>::new_zeroed_slice(len).unwrap());
                assert_vm_lck(base, &format!("after a {len}-byte box"));
            }
            assert!(lockedmem::stats().cached_slots > 0);
            // Fill with best-effort packed boxes over the limit.
            let opts = best_effort(Isolation::Packed);
            let mut boxes: Vec<_> = (0..20_000)
                .map(|_| opts.zeroed::<[u8; 32]>().unwrap())
                .collect();
            assert_vm_lck(base, "over the limit");
            assert!(boxes.iter().any(|b| !b.is_locked()));
            let st = lockedmem::stats();
            assert!(st.packed_pages_unlocked > 0, "{st:?}");
            // A Require multi-page box: fails or not, counts agree.
            let r = LockedBox::<[u8]>::new_zeroed_slice(100_000);
            assert_vm_lck(base, "after a Require box at the limit");
            drop(r);
            assert_vm_lck(base, "after its drop");
            // Free the first half: trim closes and relocks.
            boxes.drain(..10_000);
            assert_vm_lck(base, "after the drops");
            lockedmem::trim();
            assert_vm_lck(base, "after trim");
            // Threads that make and drop boxes and exit.
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let v: Vec<_> = (0..200)
                            .map(|_| LockedBox::<[u8; 32]>::new_zeroed())
                            .collect();
                        drop(v);
                        let w: Vec<_> = (0..200)
                            .map(|_| opts.zeroed::<[u8; 100]>().unwrap())
                            .collect();
                        drop(w);
                    });
                }
            });
            assert_vm_lck(base, "after threads exited");
            lockedmem::trim();
            assert_vm_lck(base, "after trim again");
            drop(boxes);
            lockedmem::trim();
            assert_vm_lck(base, "after all");
            assert_eq!(lockedmem::locked_bytes(), 0);
            let st = lockedmem::stats();
            assert_eq!(st.packed_pages, 0, "{st:?}");
            assert_eq!(st.packed_pages_unlocked, 0, "{st:?}");
            assert_eq!(st.mappings, 0, "{st:?}");
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

/// Six threads make and drop best-effort packed boxes (and a few locked
/// page boxes, whose drops relock) under a 64 KiB limit, spawning threads
/// that exit holding pages, while another calls `trim` and `stats`: no
/// panic, no hang, and at the end nothing is left and VmLck agrees.
#[test]
fn best_effort_packed_stress_with_trim_under_64_kib() {
    let out = child::run("best_effort_packed_stress_with_trim_under_64_kib", || {
        common::become_unprivileged(64 * 1024);
        let base = procfs::vm_lck_kb();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..6u8 {
                let stop = &stop;
                s.spawn(move || {
                    let opts = best_effort(Isolation::Packed);
                    let mut keep = Vec::new();
                    let mut pages = Vec::new();
                    let mut i = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        let mut b = opts.zeroed::<[u8; 32]>().unwrap();
                        b[0] = t;
                        keep.push(b);
                        if i % 3 == 0 {
                            keep.swap_remove((i * 7) % keep.len());
                        }
                        if keep.len() > 3000 {
                            keep.drain(..1500);
                        }
                        if i % 50 == 0 {
                            if let Ok(p) = LockedBox::<[u8; 32]>::new_zeroed() {
                                pages.push(p);
                            }
                            if pages.len() > 3 {
                                pages.remove(0);
                            }
                        }
                        if i % 5000 == 0 {
                            // A thread that exits holding pages.
                            std::thread::spawn(move || {
                                let v: Vec<_> = (0..100)
                                    .map(|_| {
                                        best_effort(Isolation::Packed).zeroed::<[u8; 64]>().unwrap()
                                    })
                                    .collect();
                                assert!(v.iter().all(|b| b[0] == 0));
                            })
                            .join()
                            .unwrap();
                        }
                    }
                    assert!(keep.iter().all(|b| b[0] == t));
                });
            }
            s.spawn(|| {
                for _ in 0..300 {
                    lockedmem::trim();
                    let _ = lockedmem::stats();
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
        });
        let st = lockedmem::stats();
        assert_eq!(st.packed_boxes, 0, "{st:?}");
        assert_eq!(st.page_boxes, 0, "{st:?}");
        assert_eq!(st.page_boxes_unlocked, 0, "{st:?}");
        assert_vm_lck(base, "after the stress");
        lockedmem::trim();
        assert_vm_lck(base, "after trim");
        let st = lockedmem::stats();
        assert_eq!(
            (st.packed_pages, st.packed_pages_unlocked, st.locked_bytes),
            (0, 0, 0),
            "{st:?}"
        );
        assert_eq!(common::crate_mapping_count(), 0);
    });
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

/// A fork child of a process with cached large slots, unlocked twin pages
/// and unlocked page boxes: it starts at zero locked bytes, dropping its
/// inherited boxes leaves its unlocked counts at zero, and `read_from` and
/// `trim` there keep VmLck and `locked_bytes()` equal.
#[test]
fn a_fork_child_counts_from_zero_with_inherited_best_effort_boxes() {
    let out = child::run(
        "a_fork_child_counts_from_zero_with_inherited_best_effort_boxes",
        || {
            common::become_unprivileged(256 * 1024);
            // Large slots cached in the parent, unlocked twin pages.
            drop(LockedBox::<[u8]>::new_zeroed_slice(100_000).unwrap());
            let opts = best_effort(Isolation::Packed);
            let boxes: Vec<_> = (0..5000)
                .map(|_| opts.zeroed::<[u8; 32]>().unwrap())
                .collect();
            let page_be: Vec<_> = (0..10)
                .map(|_| best_effort(Isolation::Page).zeroed::<[u8; 5000]>().unwrap())
                .collect();
            let seen = common::in_fork(|| {
                let st = lockedmem::stats();
                if lockedmem::locked_bytes() != 0 || procfs::vm_lck_kb() != 0 {
                    return 20;
                }
                for b in &boxes {
                    drop(common::the_childs_copy(b));
                }
                for b in &page_be {
                    drop(common::the_childs_copy(b));
                }
                let st2 = lockedmem::stats();
                if st2.page_boxes_unlocked != 0 || st2.packed_pages_unlocked != 0 {
                    eprintln!("{st:?} {st2:?}");
                    return 21;
                }
                let data = vec![7u8; 100_000];
                let v = match lockedmem::LockedVec::read_from(&data[..], 2 << 20) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("{e}");
                        return 22;
                    }
                };
                if v.len() != 100_000 || v.iter().any(|&b| b != 7) {
                    return 23;
                }
                if procfs::vm_lck_kb() * 1024 != lockedmem::locked_bytes() as u64 {
                    eprintln!("{} {}", procfs::vm_lck_kb(), lockedmem::locked_bytes());
                    return 24;
                }
                drop(v);
                lockedmem::trim();
                if procfs::vm_lck_kb() != 0 || lockedmem::locked_bytes() != 0 {
                    return 25;
                }
                0
            });
            assert_eq!(seen, common::Seen::Exited(0));
            drop(boxes);
            drop(page_be);
            lockedmem::trim();
            assert_eq!(lockedmem::locked_bytes(), 0);
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

// Not fixed: a design question for the maintainers.

/// A dropped box's locked page goes to the first unlocked best-effort packed
/// page (`relock` from `recycle_page_slot`); a `Require` box made again
/// under the limit takes it back (reclaim unlocks best-effort pages locked
/// after the fact) rather than being refused: boxes that require the lock
/// come first.
#[test]
fn a_require_box_dropped_and_made_again_is_not_refused_for_best_effort_pages() {
    let out = child::run(
        "a_require_box_dropped_and_made_again_is_not_refused_for_best_effort_pages",
        || {
            common::become_unprivileged(64 * 1024);
            let r = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
            let opts = best_effort(Isolation::Packed);
            let boxes: Vec<_> = (0..2000)
                .map(|_| opts.zeroed::<[u8; 32]>().unwrap())
                .collect();
            assert!(boxes.iter().any(|b| !b.is_locked()));
            assert!(r.is_locked());
            drop(r);
            let again = LockedBox::<[u8; 32]>::new_zeroed();
            assert!(
                again.as_ref().is_ok_and(LockedBox::is_locked),
                "the page it gave back went to a best-effort page: {:?}, {:?}",
                again.err(),
                lockedmem::stats()
            );
            // The best-effort page that had taken it is unlocked again.
            let locked = boxes.iter().filter(|b| b.is_locked()).count();
            assert_eq!(
                locked,
                1024 - 64,
                "one page fewer of best-effort boxes locked"
            );
            assert_eq!(procfs::vm_lck_kb(), lockedmem::locked_bytes() as u64 / 1024);
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("expected to read /proc/meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("expected MemTotal in /proc/meminfo")
        * 1024
}

#[test]
fn a_best_effort_box_larger_than_ram_is_too_large() {
    let out = child::run("a_best_effort_box_larger_than_ram_is_too_large", || {
        let len = (64u64 << 30).max(4 * mem_total());
        let len = usize::try_from(len).expect("expected a 64-bit target");
        let made = Options::new()
            .lock(LockPolicy::BestEffort)
            .zeroed_slice::<u8>(len);
        let verdict = match &made {
            Err(Error::TooLarge { .. }) => None,
            Err(e) => Some(format!("Err({e:?})")),
            Ok(b) => Some(format!("Ok({b:?})")),
        };
        if let Ok(b) = made {
            // Dropping it would wipe (touch) every page.
            std::mem::forget(b);
        }
        if let Some(got) = verdict {
            panic!(
                "expected Err(TooLarge) for a BestEffort box of {len} bytes, larger than physical \
                 memory ({} bytes), got {got}",
                mem_total()
            );
        }
    });
    child::expect_success(&out, "Err(TooLarge) for a BestEffort box larger than RAM");
}

/// Dropping a box wipes it; the wipe of an unlocked box must not fault in
/// pages that were never touched (peak RSS, VmHWM, stays far below it).
#[test]
fn dropping_an_untouched_unlocked_box_does_not_fault_its_pages_in() {
    let out = child::run(
        "dropping_an_untouched_unlocked_box_does_not_fault_its_pages_in",
        || {
            // mlock is refused, so BestEffort makes the box unlocked and
            // nothing faults its pages in.
            common::become_unprivileged(64 * 1024);
            let before = procfs::status_kb("VmHWM:");
            let b = Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed_slice::<u8>(1 << 30)
                .expect("expected an unlocked 1 GiB BestEffort box");
            assert!(!b.is_locked(), "expected the 1 GiB box to be unlocked");
            let resident = b.residency().expect("expected mincore to work");
            drop(b);
            let after = procfs::status_kb("VmHWM:");
            println!(
                "VmHWM {before} kB -> {after} kB; {} of {} pages resident before the drop",
                resident.resident, resident.total
            );
            assert!(
                after - before < 64 * 1024,
                "expected peak RSS (VmHWM) to grow by far less than 1 GiB (< 64 MiB) through \
                 making and dropping an untouched 1 GiB box; it grew by {} MiB",
                (after - before) / 1024
            );
        },
    );
    child::expect_success(
        &out,
        "dropping an untouched unlocked 1 GiB box not to fault in its pages",
    );
}
