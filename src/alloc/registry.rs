//! Every mapping the crate has made and not yet unmapped, for the last wipe
//! (`crate::last_wipe`) and a fork(2) child's placeholders
//! (`atfork::fork_child`): an address range per entry, registered by
//! `pages::Mapping` right after mmap(2) (before a secret can be written
//! there) and removed right before munmap(2) (after its slots were wiped).
//!
//! The wipe walks the entries from a signal handler on any thread, possibly
//! one interrupted in the middle of a registration, so a walk takes no lock
//! and allocates nothing: the entries sit in chunks of [`CHUNK`] atomics,
//! each made (and leaked) once, on the first registration that reaches it,
//! and found through a `OnceLock` whose `get` is one atomic load. There is
//! room for [`CAPACITY`] mappings, four times the kernel's default
//! `vm.max_map_count` (every mapping is at least one line of
//! /proc/self/maps, so a process under that limit cannot fill it).
//!
//! An entry's `addr` word is its state: [`FREE`], [`FILLING`] while a
//! registration writes its length and generation, the mapping's
//! (page-aligned) address, or that address with [`CLAIMED`] set once the
//! wipe took it. A claimed entry is never freed: a thread removing it finds
//! it claimed and must not unmap the range (the process is about to die; it
//! stops instead), so the wipe never touches a range someone else mapped in
//! the meantime. The state machine of one entry is model-checked with loom
//! (`RUSTFLAGS="--cfg loom"`, `loom_registry_*`).
//!
//! # Whose mapping
//!
//! A mapping advised `MADV_DONTFORK` (`ForkPolicy::Exclude`, secret memory)
//! does not exist in a fork child, whose copy of the registry still lists
//! it: the entry records the process *generation* that made it
//! (`fork::generation`, a random word drawn afresh in every fork child), and
//! [`Range::is_here`] tells the child's own entries from its ancestors'.
//! A process ID would not do: a later process (a grandchild, or a child in
//! a new PID namespace) can carry the ID of the process that made the
//! mapping.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use crate::fork;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Entries per chunk.
pub(crate) const CHUNK: usize = 1024;
/// Chunks at most.
const CHUNKS: usize = 256;
/// Mappings the registry can hold at once.
pub(crate) const CAPACITY: usize = CHUNK * CHUNKS;

const FREE: usize = 0;
const FILLING: usize = 1;
/// Set in `addr` when the wipe took the entry (addresses are page-aligned).
const CLAIMED: usize = 1;

/// The generation recorded for a mapping that every process holding the
/// registry has (inherited by fork children, or zeroed there).
pub(crate) const ANY_PROCESS: u64 = 0;

/// One mapping's range, and the process generation that may wipe it.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    addr: AtomicUsize,
    len: AtomicUsize,
    /// [`ANY_PROCESS`], or the only process generation in which the range
    /// is this mapping (see the module docs).
    generation: AtomicU64,
}

impl Entry {
    /// Takes the entry if it is free and publishes `range` in it: its
    /// length and generation first, then its address, which makes it
    /// visible to the wipe.
    fn fill(&self, range: Range) -> bool {
        debug_assert!(range.addr > FILLING && range.addr & CLAIMED == 0);
        if self.addr.load(Ordering::Relaxed) != FREE
            || self
                .addr
                .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.len.store(range.len, Ordering::Relaxed);
        self.generation.store(range.generation, Ordering::Relaxed);
        // Publishes the length and generation with the address.
        self.addr.store(range.addr, Ordering::SeqCst);
        true
    }

    /// Frees the entry of the mapping at `addr`, unless the wipe claimed it.
    fn release(&self, addr: usize) -> Result<(), Claimed> {
        match self
            .addr
            .compare_exchange(addr, FREE, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Ok(()),
            Err(now) => {
                debug_assert_eq!(
                    now,
                    addr | CLAIMED,
                    "a registration changed under its owner"
                );
                Err(Claimed)
            }
        }
    }

    /// Claims the entry for the wipe if it holds a mapping not claimed yet.
    fn claim(&self) -> Option<Range> {
        let addr = self.addr.load(Ordering::SeqCst);
        if addr <= FILLING || addr & CLAIMED != 0 {
            return None;
        }
        self.addr
            .compare_exchange(addr, addr | CLAIMED, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(self.range(addr))
    }

    /// The entry's range if the wipe claimed it.
    fn claimed(&self) -> Option<Range> {
        let addr = self.addr.load(Ordering::SeqCst);
        (addr > FILLING && addr & CLAIMED != 0).then(|| self.range(addr & !CLAIMED))
    }

    /// The entry's range if it holds one (claimed or not).
    fn registered(&self) -> Option<Range> {
        let addr = self.addr.load(Ordering::Acquire);
        (addr > FILLING).then(|| self.range(addr & !CLAIMED))
    }

    /// The range at `addr`, read after a load of `addr` that saw it (which
    /// synchronizes with the store that published the length).
    fn range(&self, addr: usize) -> Range {
        Range {
            addr,
            len: self.len.load(Ordering::Acquire),
            generation: self.generation.load(Ordering::Acquire),
        }
    }
}

static TABLE: [OnceLock<Box<[Entry]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

/// The lowest index that may be free (a hint: registration starts there).
static HINT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Where a mapping is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

fn chunk(i: usize) -> &'static [Entry] {
    TABLE[i].get_or_init(|| (0..CHUNK).map(|_| Entry::default()).collect())
}

fn entry(slot: Slot) -> &'static Entry {
    &chunk(slot.0 / CHUNK)[slot.0 % CHUNK]
}

/// Every entry made so far, without making any: what the lock-free walks
/// see.
fn made() -> impl Iterator<Item = &'static Entry> {
    TABLE
        .iter()
        .filter_map(OnceLock::get)
        .flat_map(|c| c.iter())
}

/// Registers `range` (`addr` page-aligned and not null). `None` if the
/// registry is full.
pub(crate) fn register(range: Range) -> Option<Slot> {
    let start = HINT.load(Ordering::Relaxed).min(CAPACITY - 1);
    for i in (start..CAPACITY).chain(0..start) {
        if chunk(i / CHUNK)[i % CHUNK].fill(range) {
            let _ = HINT.compare_exchange(start, i + 1, Ordering::Relaxed, Ordering::Relaxed);
            return Some(Slot(i));
        }
    }
    None
}

/// The wipe has claimed the entry: the range must stay as it is.
#[derive(Debug)]
pub(crate) struct Claimed;

/// Removes the registration of the mapping at `addr`, unless the wipe has
/// claimed it.
pub(crate) fn deregister(slot: Slot, addr: usize) -> Result<(), Claimed> {
    entry(slot).release(addr)?;
    HINT.fetch_min(slot.0, Ordering::Relaxed);
    Ok(())
}

/// A registered mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) addr: usize,
    pub(crate) len: usize,
    /// See [`Entry::generation`].
    pub(crate) generation: u64,
}

impl Range {
    /// A range of a mapping that fork(2) children inherit (or see zeroed):
    /// whichever process holds the registry may wipe it.
    pub(crate) fn inherited_by_forks(addr: usize, len: usize) -> Self {
        Range {
            addr,
            len,
            generation: ANY_PROCESS,
        }
    }

    /// A range of a mapping advised `MADV_DONTFORK`, made by this process
    /// generation, which alone has it.
    pub(crate) fn this_process_only(addr: usize, len: usize) -> Self {
        Range {
            addr,
            len,
            generation: fork::generation(),
        }
    }

    /// Whether the range is this process's mapping: one that fork children
    /// inherit, or one this process generation made. Async-signal-safe
    /// (atomics, and at most one getrandom(2) in a fork child that never
    /// asked for its generation).
    #[inline]
    pub(crate) fn is_here(&self) -> bool {
        self.generation == ANY_PROCESS || self.generation == fork::generation()
    }

    /// Whether the range is a `MADV_DONTFORK` mapping that some process
    /// generation made: in a fork child right after fork(2), before the
    /// child made one of its own, a range the child does not have.
    pub(crate) fn excluded_from_forks(&self) -> bool {
        self.generation != ANY_PROCESS
    }
}

/// Claims every registered entry not claimed yet and calls `f` on it.
/// Lock-free and allocation-free: for the last wipe only, which never
/// gives a claim back.
pub(crate) fn claim_all(mut f: impl FnMut(Range)) {
    made().filter_map(Entry::claim).for_each(&mut f);
}

/// Calls `f` on every claimed entry. Lock-free and allocation-free.
pub(crate) fn each_claimed(mut f: impl FnMut(Range)) {
    made().filter_map(Entry::claimed).for_each(&mut f);
}

/// Calls `f` on every registered entry, claimed or not. Lock-free and
/// allocation-free: for a fork child's atfork handler, where the registry
/// is the parent's copy and no other thread runs.
pub(crate) fn each_registered(mut f: impl FnMut(Range)) {
    made().filter_map(Entry::registered).for_each(&mut f);
}

/// How many mappings are registered now (claimed ones included).
#[cfg(all(test, not(loom)))]
pub(crate) fn registered() -> usize {
    made().filter(|e| e.registered().is_some()).count()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn register_and_deregister() {
        // Addresses no mapping of this test process uses as its own.
        let base = 0x7000_0000_0000usize;
        let slots: Vec<Slot> = (0..3 * CHUNK / 2)
            .map(|i| register(Range::inherited_by_forks(base + i * 4096, 4096)).expect("room"))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for s in &slots {
            assert!(seen.insert(s.0), "each registration has its own entry");
        }
        assert!(registered() >= slots.len());
        for (i, s) in slots.iter().enumerate() {
            deregister(*s, base + i * 4096).expect("not claimed");
        }
        // A freed entry is found again.
        let again = register(Range::this_process_only(base, 4096)).expect("room");
        let r = entry(again).registered().expect("registered");
        assert!(r.is_here() && r.excluded_from_forks());
        assert_eq!(r.generation, fork::generation());
        deregister(again, base).unwrap();
    }

    #[test]
    fn a_range_of_another_generation_is_not_here() {
        let r = Range {
            addr: 0x7000_0000_0000,
            len: 4096,
            generation: fork::generation() ^ 1,
        };
        assert!(!r.is_here());
        assert!(Range::inherited_by_forks(0x7000_0000_0000, 4096).is_here());
    }
}

/// The registry's entry protocol, model-checked: the owner's registration
/// and removal against the last wipe's claim and walk.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, AtomicBool};

    const A: Range = Range {
        addr: 0x1000,
        len: 0x3000,
        generation: 7,
    };
    /// At A's address (the kernel may reuse it), with another length.
    const B: Range = Range {
        addr: 0x1000,
        len: 0x5000,
        generation: ANY_PROCESS,
    };

    /// An owner registers a mapping, removes it and registers another at the
    /// same address in the same entry, unmapping a range only if the removal
    /// succeeded; the
    /// wipe claims whatever it finds. The wipe must see a range exactly as
    /// registered (length and generation with the address), and a range it
    /// claimed must still be mapped: its owner cannot have unmapped it.
    #[test]
    fn loom_registry_claim_races_removal_and_reuse() {
        loom::model(|| {
            let entry = Arc::new(Entry::default());
            // Whether A and B are mapped (the owner unmaps only after a
            // successful release).
            let mapped = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
            let owner = {
                let (entry, mapped) = (Arc::clone(&entry), Arc::clone(&mapped));
                loom::thread::spawn(move || {
                    for (i, r) in [A, B].into_iter().enumerate() {
                        mapped[i].store(true, Ordering::SeqCst);
                        assert!(entry.fill(r), "the owner's entry is free");
                        if entry.release(r.addr).is_err() {
                            return; // claimed: the range stays, we stop
                        }
                        mapped[i].store(false, Ordering::SeqCst);
                    }
                })
            };
            // The wipe, on a thread of its own (loom explores the orders
            // of spawned threads' first steps; the model's main thread
            // would run first).
            let wipe = loom::thread::spawn(move || {
                if let Some(r) = entry.claim() {
                    let i = usize::from(r.len == B.len);
                    assert_eq!(r, [A, B][i], "the wipe saw a torn registration");
                    assert!(
                        mapped[i].load(Ordering::SeqCst),
                        "a claimed range was unmapped by its owner"
                    );
                    assert_eq!(entry.claimed(), Some(r), "a claim is for good");
                }
            });
            wipe.join().unwrap();
            owner.join().unwrap();
        });
    }

    /// Two registrations race for one free entry: exactly one gets it.
    #[test]
    fn loom_registry_one_entry_one_owner() {
        loom::model(|| {
            let entry = Arc::new(Entry::default());
            let other = {
                let entry = Arc::clone(&entry);
                loom::thread::spawn(move || entry.fill(B))
            };
            let mine = entry.fill(A);
            let theirs = other.join().unwrap();
            assert!(mine != theirs, "exactly one registration wins the entry");
            let want = if mine { A } else { B };
            assert_eq!(entry.registered(), Some(want));
        });
    }
}
