//! Every mapping the crate has made and not yet unmapped, for the last wipe
//! (`crate::last_wipe`): an address range per entry, registered by
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
//! registration writes its length, the mapping's (page-aligned) address, or
//! that address with [`CLAIMED`] set once the wipe took it. A claimed entry
//! is never freed: a thread removing it finds it claimed and must not unmap
//! the range (the process is about to die; it stops instead), so the wipe
//! never touches a range someone else mapped in the meantime.
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

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

/// One mapping's range, and the process that may wipe it.
#[derive(Debug, Default)]
struct Entry {
    addr: AtomicUsize,
    len: AtomicUsize,
    /// 0: whichever process holds the registry (the mapping is inherited
    /// by fork children, or zeroed there); else the only process in which
    /// the range is this mapping (`MADV_DONTFORK`: a fork child has no
    /// mapping there, and may since have mapped something else).
    pid: AtomicU32,
}

static TABLE: [OnceLock<Box<[Entry]>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];

/// The lowest index that may be free (a hint: registration starts there).
static HINT: AtomicUsize = AtomicUsize::new(0);

/// Where a mapping is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

fn chunk(i: usize) -> &'static [Entry] {
    TABLE[i].get_or_init(|| (0..CHUNK).map(|_| Entry::default()).collect())
}

fn entry(slot: Slot) -> &'static Entry {
    &chunk(slot.0 / CHUNK)[slot.0 % CHUNK]
}

/// Registers the mapping `addr..addr + len` (`addr` page-aligned and not
/// null); `pid` as [`Entry::pid`]. `None` if the registry is full.
pub(crate) fn register(addr: usize, len: usize, pid: u32) -> Option<Slot> {
    debug_assert!(addr > FILLING && addr & CLAIMED == 0);
    let start = HINT.load(Ordering::Relaxed).min(CAPACITY - 1);
    for i in (start..CAPACITY).chain(0..start) {
        let e = &chunk(i / CHUNK)[i % CHUNK];
        if e.addr.load(Ordering::Relaxed) != FREE
            || e.addr
                .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        e.len.store(len, Ordering::Relaxed);
        e.pid.store(pid, Ordering::Relaxed);
        // Publishes the length and pid with the address.
        e.addr.store(addr, Ordering::SeqCst);
        let _ = HINT.compare_exchange(start, i + 1, Ordering::Relaxed, Ordering::Relaxed);
        return Some(Slot(i));
    }
    None
}

/// The wipe has claimed the entry: the range must stay as it is.
#[derive(Debug)]
pub(crate) struct Claimed;

/// Removes the registration of the mapping at `addr`, unless the wipe has
/// claimed it.
pub(crate) fn deregister(slot: Slot, addr: usize) -> Result<(), Claimed> {
    let e = entry(slot);
    match e
        .addr
        .compare_exchange(addr, FREE, Ordering::SeqCst, Ordering::SeqCst)
    {
        Ok(_) => {
            HINT.fetch_min(slot.0, Ordering::Relaxed);
            Ok(())
        }
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

/// A registered mapping, as the wipe sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub(crate) addr: usize,
    pub(crate) len: usize,
    /// See [`Entry::pid`].
    pub(crate) pid: u32,
}

/// Claims every registered entry not claimed yet and calls `f` on it.
/// Lock-free and allocation-free: for the last wipe only, which never
/// gives a claim back.
pub(crate) fn claim_all(mut f: impl FnMut(Range)) {
    for e in TABLE
        .iter()
        .filter_map(OnceLock::get)
        .flat_map(|c| c.iter())
    {
        let addr = e.addr.load(Ordering::SeqCst);
        if addr <= FILLING || addr & CLAIMED != 0 {
            continue;
        }
        if e.addr
            .compare_exchange(addr, addr | CLAIMED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            f(Range {
                addr,
                len: e.len.load(Ordering::Acquire),
                pid: e.pid.load(Ordering::Acquire),
            });
        }
    }
}

/// Calls `f` on every claimed entry. Lock-free and allocation-free.
pub(crate) fn each_claimed(mut f: impl FnMut(Range)) {
    for e in TABLE
        .iter()
        .filter_map(OnceLock::get)
        .flat_map(|c| c.iter())
    {
        let addr = e.addr.load(Ordering::SeqCst);
        if addr > FILLING && addr & CLAIMED != 0 {
            f(Range {
                addr: addr & !CLAIMED,
                len: e.len.load(Ordering::Acquire),
                pid: e.pid.load(Ordering::Acquire),
            });
        }
    }
}

/// How many mappings are registered now (claimed ones included).
#[cfg(test)]
pub(crate) fn registered() -> usize {
    TABLE
        .iter()
        .filter_map(OnceLock::get)
        .flat_map(|c| c.iter())
        .filter(|e| e.addr.load(Ordering::SeqCst) > FILLING)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_and_deregister() {
        // Addresses no mapping of this test process uses as its own.
        let base = 0x7000_0000_0000usize;
        let slots: Vec<Slot> = (0..3 * CHUNK / 2)
            .map(|i| register(base + i * 4096, 4096, 0).expect("room"))
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
        let again = register(base, 4096, 7).expect("room");
        assert_eq!(entry(again).pid.load(Ordering::Relaxed), 7);
        deregister(again, base).unwrap();
    }
}
