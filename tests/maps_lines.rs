//! The lines of /proc/self/maps the crate's memory takes, against the
//! crate's own count (`stats().mappings`).
//!
//! The rule: a slab costs at most 3 + 2 × (open slots) lines of
//! /proc/self/maps, whatever its history (closed slots merge back), and
//! `stats().mappings` is never below the lines the crate's memory takes
//! there, also when many threads open packed pages at the same moment. The
//! crate's lines are counted independently of it: mappings carrying the mark
//! every mapping made under the default options carries
//! (`common::crate_mark`: VmFlags `dd` for `MADV_DONTDUMP`, not the
//! kernel's own `pf`; in the portable test mode, which has no dump
//! exclusion, `dc` for the default `ForkPolicy::Exclude`).
//!
//! Each test counts mappings, so each runs in a child process of its own.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

use common::{child, packed};
use lockedmem::LockedBox;

#[test]
fn a_slab_whose_slots_all_closed_takes_at_most_three_lines() {
    let out = child::run(
        "a_slab_whose_slots_all_closed_takes_at_most_three_lines",
        || {
            lockedmem::set_cache_limit(0);
            let base = common::crate_mapping_count();
            println!("marked mappings before the first box: {base}");
            let boxes: Vec<_> = (0..64)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
                .collect();
            let open = common::crate_mappings_since(base);
            let stats = lockedmem::stats();
            assert!(
                open >= 64,
                "expected at least one line per open slot (64), counted {open}"
            );
            assert!(
                stats.mappings >= open,
                "expected stats().mappings ({}) >= the {open} lines counted with 64 boxes live",
                stats.mappings
            );
            drop(boxes);
            let closed = common::crate_mappings_since(base);
            let stats = lockedmem::stats();
            println!(
                "lines: {open} with 64 live boxes, {closed} after dropping them \
                 (stats().mappings {})",
                stats.mappings
            );
            assert!(
                closed <= 3,
                "expected the slab that held the 64 boxes (README: one slab holds 64 one-page \
                 slots) to take at most 3 lines of /proc/self/maps once all its slots closed, \
                 counted {closed}"
            );
            assert!(
                stats.mappings >= closed,
                "expected stats().mappings ({}) never below the {closed} lines the crate's \
                 memory takes in /proc/self/maps",
                stats.mappings
            );
            lockedmem::trim();
            assert_eq!(
                common::crate_mappings_since(base),
                0,
                "expected no line of the crate's left after trim with no box alive"
            );
        },
    );
    child::expect_success(
        &out,
        "a slab with every slot closed again to take at most 3 lines",
    );
}

#[test]
fn a_hundred_churned_slabs_take_at_most_five_lines_each() {
    let out = child::run(
        "a_hundred_churned_slabs_take_at_most_five_lines_each",
        || {
            lockedmem::set_cache_limit(0);
            let base = common::crate_mapping_count();
            // 100 slabs of 64 slots, every slot opened, then all but one per
            // slab closed again.
            let mut boxes: Vec<_> = (0..100 * 64)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
                .collect();
            let mut i = 0;
            boxes.retain(|_| {
                i += 1;
                (i - 1) % 64 == 0
            });
            assert_eq!(boxes.len(), 100, "expected one box kept per 64");
            let lines = common::crate_mappings_since(base);
            let stats = lockedmem::stats();
            println!(
                "lines with 100 live boxes after the churn: {lines} \
                 (stats().mappings {})",
                stats.mappings
            );
            assert_eq!(stats.page_boxes, 100, "expected 100 live page boxes");
            let bound = 100 * (3 + 2) + 3;
            assert!(
                lines <= bound,
                "expected at most 3 + 2 lines per slab with one open slot (at most {bound} \
                 lines for 100 slabs, and one empty slab), counted {lines}"
            );
            assert!(
                stats.mappings >= lines,
                "expected stats().mappings ({}) never below the {lines} lines the crate's \
                 memory takes in /proc/self/maps",
                stats.mappings
            );
        },
    );
    child::expect_success(
        &out,
        "100 churned slabs with one open slot each to take at most 5 lines each",
    );
}
/// Packed pages of one class opened at the same moment by several threads
/// can leave seams the kernel does not merge; `stats().mappings` must count
/// them too.
#[test]
fn packed_pages_opened_by_many_threads_at_once_stay_counted_in_stats_mappings() {
    let out = child::run(
        "packed_pages_opened_by_many_threads_at_once_stay_counted_in_stats_mappings",
        || {
            use std::sync::{Arc, Barrier};
            let base = common::crate_mapping_count();
            let threads = 16;
            let made = Arc::new(Barrier::new(threads + 1));
            let checked = Arc::new(Barrier::new(threads + 1));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (made, checked) = (Arc::clone(&made), Arc::clone(&checked));
                    std::thread::spawn(move || {
                        let boxes: Vec<_> = (0..3000)
                            .map(|_| packed().zeroed::<[u8; 16]>().expect("a packed box"))
                            .collect();
                        made.wait();
                        checked.wait();
                        drop(boxes);
                    })
                })
                .collect();
            made.wait();
            let lines = common::crate_mappings_since(base);
            let counted = lockedmem::stats().mappings;
            checked.wait();
            for w in workers {
                w.join().expect("a worker");
            }
            println!("{lines} lines, stats().mappings {counted}");
            assert!(
                counted >= lines,
                "expected stats().mappings ({counted}) never below the crate's lines of \
                 /proc/self/maps ({lines})"
            );
        },
    );
    child::expect_success(&out, "concurrent packed opens stay counted");
}
