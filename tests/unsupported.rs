//! A protection the platform or the kernel lacks is `Error::Unsupported`
//! naming the mechanism, for every shape of memory (a page-isolated box, a
//! packed one, a large one of its own mapping, a vector, a string, an
//! allocator block), and a refusal leaves nothing behind: the kernel's
//! count of mappings and locked memory, and the crate's counts, are where
//! they were.
//!
//! Two kinds of refusal: the platform's own (the portable test mode, as
//! macOS, has no `MADV_DONTDUMP` for `DumpPolicy::Exclude` and no
//! `MADV_WIPEONFORK` for `ForkPolicy::Wipe`; Linux lacks neither), and the
//! kernel's, made here by a seccomp filter answering madvise(2) with
//! `EINVAL` as a kernel without the advice does: on Linux every box is then
//! refused at its first advice (`MADV_DONTDUMP`), in the portable test
//! mode every fork policy but `Keep`, which needs no advice there.
// Linux only: reads /proc (common::procfs) and installs a seccomp filter.
#![cfg(target_os = "linux")]

mod common;

use common::{child, procfs};
use lockedmem::{DumpPolicy, Error, ForkPolicy, Isolation, LockedBox, Options};

/// The kernel's and the crate's counts that a refusal must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    maps: usize,
    vm_lck_kb: u64,
    locked_bytes: usize,
    crate_mappings: usize,
    boxes: (usize, usize),
}

fn counts() -> Counts {
    let st = lockedmem::stats();
    Counts {
        maps: procfs::mapping_count(),
        vm_lck_kb: procfs::vm_lck_kb(),
        locked_bytes: lockedmem::locked_bytes(),
        crate_mappings: st.mappings,
        boxes: (st.page_boxes, st.packed_boxes),
    }
}

/// What one attempt gave: made (and dropped at once), or refused with the
/// crate's error (`None` for the allocator, whose `AllocError` carries
/// nothing).
type Made = Result<(), Option<Error>>;

/// Every shape of memory that options of `fork` and `dumps` can make, each
/// made and dropped at once: what each attempt gave, by name. (The
/// allocator, which takes no dump policy, is tried under `BestEffort`.)
fn attempts(fork: ForkPolicy, dumps: DumpPolicy) -> Vec<(&'static str, Made)> {
    let opts = Options::new().fork(fork).dumps(dumps);
    let made = |r: Result<(), Error>| r.map_err(Some);
    #[allow(unused_mut)]
    let mut all = vec![
        ("page", made(opts.zeroed::<[u8; 32]>().map(drop))),
        (
            "packed",
            made(
                opts.isolation(Isolation::Packed)
                    .zeroed::<[u8; 32]>()
                    .map(drop),
            ),
        ),
        ("large", made(opts.zeroed_slice::<u8>(600_000).map(drop))),
        ("vector", made(opts.vec::<u8>(100).map(drop))),
        ("string", made(opts.string(100).map(drop))),
    ];
    #[cfg(feature = "allocator-api2")]
    if dumps == DumpPolicy::BestEffort {
        use allocator_api2::alloc::{Allocator, Layout};
        let alloc =
            lockedmem::LockedAlloc::with(lockedmem::LockPolicy::Require, fork, Isolation::Page);
        let layout = Layout::from_size_align(100, 8).unwrap();
        let block = alloc.allocate(layout).map(|block| {
            // SAFETY: allocated just above with this layout, freed once.
            unsafe { alloc.deallocate(block.cast(), layout) };
        });
        all.push(("allocator", block.map_err(|_| None)));
    }
    all
}

/// Each attempt was refused as `Error::Unsupported` naming `call` (the
/// allocator, whose error carries nothing, was refused).
#[track_caller]
fn assert_refused(what: &str, made: &[(&'static str, Made)], call: &str) {
    for (shape, result) in made {
        match result {
            Err(Some(Error::Unsupported { call: named, .. })) => {
                assert_eq!(*named, call, "{what}, {shape}");
            }
            Err(None) => assert_eq!(*shape, "allocator"),
            other => panic!("{what}, {shape}: expected Unsupported naming {call}, got {other:?}"),
        }
    }
}

/// A first box of each shape and policy, made and dropped, then `trim`:
/// what the crate sets up once (its thread's cache, the registry, the fork
/// detector) is in place before the counts are taken.
fn warm_up(policies: &[ForkPolicy]) {
    for &fork in policies {
        for (shape, result) in attempts(fork, DumpPolicy::BestEffort) {
            result.unwrap_or_else(|e| panic!("warm-up, {fork:?}, {shape}: {e:?}"));
        }
    }
    lockedmem::trim();
}

#[test]
fn what_the_platform_lacks_is_unsupported_and_leaves_nothing_behind() {
    let out = child::run(
        "what_the_platform_lacks_is_unsupported_and_leaves_nothing_behind",
        || {
            lockedmem::set_cache_limit(0);
            let promises = common::promises();
            warm_up(&[common::default_fork()]);
            let base = counts();
            let mut refused = 0;
            if !promises.fork_zeros {
                let made = attempts(ForkPolicy::Wipe, DumpPolicy::BestEffort);
                assert_refused("ForkPolicy::Wipe", &made, "madvise(MADV_WIPEONFORK)");
                refused += made.len();
            }
            if !promises.dump_exclusion {
                let made = attempts(common::default_fork(), DumpPolicy::Exclude);
                assert_refused("DumpPolicy::Exclude", &made, "madvise(MADV_DONTDUMP)");
                refused += made.len();
            }
            lockedmem::trim();
            assert_eq!(counts(), base, "after {refused} refusals");
            println!("{refused} refusals of what the platform lacks, nothing left behind");
            // Linux lacks neither; the portable test mode lacks both.
            assert_eq!(
                refused > 0,
                !promises.fork_zeros || !promises.dump_exclusion
            );
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

/// What a refusal of madvise(2) (`EINVAL`, seccomp) does to each fork
/// policy: the call it is refused at, or `None` where the policy needs no
/// advice on this platform (`Keep` without dump exclusion).
fn refused_at(fork: ForkPolicy) -> Option<&'static str> {
    if common::promises().dump_exclusion {
        return Some("madvise(MADV_DONTDUMP)");
    }
    match fork {
        ForkPolicy::Wipe => Some("madvise(MADV_WIPEONFORK)"),
        ForkPolicy::Exclude => Some("madvise(MADV_DONTFORK)"),
        _ => None,
    }
}

#[test]
fn advice_the_kernel_refuses_is_unsupported_and_leaves_nothing_behind() {
    let out = child::run(
        "advice_the_kernel_refuses_is_unsupported_and_leaves_nothing_behind",
        || {
            lockedmem::set_cache_limit(0);
            let policies: Vec<ForkPolicy> =
                [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep]
                    .into_iter()
                    .filter(|&p| p != ForkPolicy::Wipe || common::promises().fork_zeros)
                    .collect();
            warm_up(&policies);
            let base = counts();
            // Boxes and a vector made before the filter, to be dropped and
            // grown under it: a slot closed there cannot be advised again.
            // (Two pages each: a size class of their own, so that the
            // attempts below need slabs of their own, which need advice.)
            let held: Vec<LockedBox<[u8; 5000]>> =
                (0..3).map(|i| LockedBox::new([i; 5000]).unwrap()).collect();
            let mut v = Options::new().vec::<u8>(5000).unwrap();
            v.try_extend_from_slice(&[0x5A; 5000]).unwrap();

            let held_at: Vec<usize> = held
                .iter()
                .map(|b| common::start_of(&**b))
                .chain([v.as_ptr() as usize])
                .collect();
            let with_held = counts();

            common::seccomp::fail_syscall(libc::SYS_madvise, libc::EINVAL);
            let mut refusals = 0;
            for fork in [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep] {
                let made = attempts(fork, DumpPolicy::BestEffort);
                let call = if fork == ForkPolicy::Wipe && !common::promises().fork_zeros {
                    Some("madvise(MADV_WIPEONFORK)")
                } else {
                    refused_at(fork)
                };
                match call {
                    Some(call) => {
                        assert_refused(&format!("{fork:?}"), &made, call);
                        refusals += made.len();
                    }
                    None => {
                        for (shape, result) in made {
                            result.unwrap_or_else(|e| panic!("{fork:?}, {shape}: {e:?}"));
                        }
                    }
                }
            }
            // Growth past the vector's pages needs new ones: refused, the
            // vector as it was.
            let grown = v.try_extend_from_slice(&[0x5A; 20_000]);
            if let Some(call) = refused_at(common::default_fork()) {
                match grown {
                    Err(Error::Unsupported { call: named, .. }) => assert_eq!(named, call),
                    other => panic!("expected the growth refused: {other:?}"),
                }
                assert!(
                    v.len() == 5000 && v.iter().all(|&x| x == 0x5A),
                    "the vector as it was"
                );
                refusals += 1;
            }
            lockedmem::trim();
            assert_eq!(counts(), with_held, "after {refusals} refusals");
            println!("{refusals} refusals under a filter refusing madvise, nothing left behind");
            assert!(refusals > 0);

            // The held memory, dropped under the filter: each slot is wiped,
            // unlocked and discarded, but cannot be advised again, so it
            // stays reserved for good (`PROT_NONE`, holding nothing) rather
            // than be opened again without its advice.
            drop(v);
            drop(held);
            lockedmem::trim();
            let after = counts();
            assert_eq!(
                (after.vm_lck_kb, after.locked_bytes, after.boxes),
                (base.vm_lck_kb, base.locked_bytes, base.boxes),
                "{after:?}"
            );
            for addr in held_at {
                let vma = procfs::vma_at(addr).expect("reserved");
                assert_eq!(vma.perms, "---p", "{vma:?}");
                assert!(!vma.has("lo") && vma.rss_kb == 0, "{vma:?}");
            }
            println!(
                "dropped under the filter: {} of the crate's mappings stay reserved",
                after.crate_mappings
            );
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}
