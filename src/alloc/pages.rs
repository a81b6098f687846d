//! Runs of pages and their transitions: map and advise a reservation, open a
//! run (read-write, locked), close it again. The one place that mlocks.
//!
//! A reservation is mapped `PROT_NONE` and advised `MADV_DONTDUMP` and its
//! fork policy's advice once. Opening a run of it takes mprotect and mlock;
//! closing it *replaces* the run with fresh `PROT_NONE` memory (mmap with
//! `MAP_FIXED`, which also unlocks and discards it) and advises it again, so
//! that the kernel forgets the run was ever touched and merges it back with
//! its neighbours: a reservation costs the same number of mappings whatever
//! its history.
//!
//! Reclaiming locked memory under `RLIMIT_MEMLOCK` pressure belongs to the
//! layer above (it knows the caches); it is handed down as a callback.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::limits;
use crate::policy::{ForkPolicy, LockPolicy};
use crate::sys::{self, Advice, Protection};

/// One mapping this crate made, owned: unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: a `Mapping` is an address range it owns; nothing in it is tied to
// the thread that made it.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only reads the address and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes `PROT_NONE` and advises them `MADV_DONTDUMP` and
    /// `fork`'s advice; unmaps them again on failure.
    pub(crate) fn new(len: usize, fork: ForkPolicy) -> Result<Self, Error> {
        let addr = sys::map_none(len).map_err(|e| Error::os("mmap", len, e))?;
        let map = Mapping { addr, len };
        // SAFETY: the mapping was just made and holds nothing; nothing else
        // knows of it.
        unsafe { advise_fresh(addr, len, fork) }?;
        Ok(map)
    }

    /// Where `offset` bytes into the mapping are.
    pub(crate) fn at(&self, offset: usize) -> NonNull<u8> {
        assert!(offset < self.len, "offset inside the mapping");
        // SAFETY: `offset < len`: inside the mapping.
        unsafe { self.addr.add(offset) }
    }

    /// Leaves the address range alone: for a mapping a fork(2) child
    /// inherited under `MADV_DONTFORK`, which does not exist there (the
    /// range may since hold someone else's mapping).
    pub(crate) fn abandon(self) {
        std::mem::forget(self);
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; its owner drops it only when no slot
        // of it is open, so nothing refers into it.
        let r = unsafe { sys::unmap(self.addr, self.len) };
        // Unmapping a whole mapping needs no split, so it has no documented
        // way to fail; should it, the address space stays reserved.
        debug_assert!(r.is_ok(), "munmap: {r:?}");
    }
}

/// Advises a fresh or freshly replaced range `MADV_DONTDUMP` and `fork`'s
/// advice, turning `EINVAL` into [`Error::Unsupported`].
///
/// # Safety
/// `addr..addr + len` is a range of this crate's mappings that holds no
/// value and that nothing else uses.
unsafe fn advise_fresh(addr: NonNull<u8>, len: usize, fork: ForkPolicy) -> Result<(), Error> {
    let fork_advice = match fork {
        ForkPolicy::Wipe => Some(Advice::WipeOnFork),
        ForkPolicy::Exclude => Some(Advice::DontFork),
        ForkPolicy::Keep => None,
    };
    for advice in std::iter::once(Advice::DontDump).chain(fork_advice) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { sys::advise(addr, len, advice) }.map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                Error::Unsupported {
                    call: advice.name(),
                    source: e,
                }
            } else {
                Error::os(advice.name(), len, e)
            }
        })?;
    }
    Ok(())
}

/// Bytes a process generation of the crate holds mlocked.
#[derive(Debug, Default)]
pub(crate) struct LockedBytes(AtomicUsize);

impl LockedBytes {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Counts off `n` bytes whose mapping was unmapped whole (which unlocks
    /// it) rather than closed here.
    pub(crate) fn unlocked(&self, n: usize) {
        self.sub(n);
    }
}

/// Makes the closed run `data..data + len` read-write and, as `lock` asks,
/// mlocked; returns whether it is locked. An mlock refused for
/// `RLIMIT_MEMLOCK` calls `reclaim` (which gives locked memory back and says
/// how many bytes) and tries once more. On error the run is left as it was
/// found: `PROT_NONE`, unlocked, uncounted (should undoing fail, that error
/// comes back instead, and the run is read-write and unlocked). `fork` is
/// the advice the run's reservation carries.
///
/// # Safety
/// The run is a closed part of this crate's mappings that the caller holds
/// exclusively.
pub(crate) unsafe fn open(
    data: NonNull<u8>,
    len: usize,
    lock: LockPolicy,
    fork: ForkPolicy,
    count: &LockedBytes,
    reclaim: &dyn Fn() -> usize,
) -> Result<bool, Error> {
    // SAFETY: forwarded: the caller holds the closed run exclusively.
    unsafe { sys::protect(data, len, Protection::ReadWrite) }
        .map_err(|e| Error::os("mprotect", len, e))?;
    // SAFETY: as above; the pages are readable now.
    let mut locked = unsafe { sys::lock(data, len) };
    if let Err(e) = &locked {
        if limits::is_limit_error(e) && reclaim() > 0 {
            // SAFETY: as above.
            locked = unsafe { sys::lock(data, len) };
        }
    }
    match locked {
        Ok(()) => {
            count.add(len);
            Ok(true)
        }
        Err(e) => {
            if lock == LockPolicy::BestEffort {
                // Keep it read-write and unlocked; a failed mlock may have
                // locked a part, so unlock all of it.
                // SAFETY: as above.
                unsafe { sys::unlock(data, len) }.map_err(|e| Error::os("munlock", len, e))?;
                return Ok(false);
            }
            // Undo: nothing locked, nothing read-write, and merged back.
            // SAFETY: as above; no value was placed there, and nothing was
            // counted.
            unsafe { close(data, len, false, fork, count) }?;
            Err(limits::lock_error(len, count.get(), e))
        }
    }
}

/// Closes an open run that holds nothing any more: replaces it with fresh
/// `PROT_NONE` memory (which unlocks and discards it) and advises it as its
/// reservation was. On error (`ENOMEM` at `vm.max_map_count`, when the run
/// is part of a larger mapping) the run stays open, locked and counted, for
/// the caller to keep and try again later.
///
/// # Safety
/// The run is an open part of this crate's mappings, wiped, held
/// exclusively by the caller, with no reference into it; `locked` says
/// whether it is mlocked and counted in `count`.
pub(crate) unsafe fn close(
    data: NonNull<u8>,
    len: usize,
    locked: bool,
    fork: ForkPolicy,
    count: &LockedBytes,
) -> Result<(), Error> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { sys::replace_none(data, len) }.map_err(|e| Error::os("mmap(MAP_FIXED)", len, e))?;
    if locked {
        count.sub(len);
    }
    // The run is closed now, whatever the advice does: a failure here (none
    // is documented on a range that took it before) only costs a mapping.
    // SAFETY: the run was just replaced and holds nothing.
    let advised = unsafe { advise_fresh(data, len, fork) };
    debug_assert!(advised.is_ok(), "{advised:?}");
    Ok(())
}
