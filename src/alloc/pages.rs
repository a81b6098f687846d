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
//! layer above (it knows the caches); it is handed down as a callback. What
//! is locked is counted in a [`LockedBytes`] (`locked_bytes`); the runs of a
//! secret mapping come from its [`SecretFile`] (`secret_files`), mapped
//! under the fork gate (`atfork`).
//!
//! Every mapping is entered in the `registry` right after mmap(2), before
//! anything is written to it, and leaves it right before munmap(2), after
//! its owner wiped it: the last wipe finds the crate's memory there.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;

use crate::alloc::atfork::{ForkGate, watch_forks};
use crate::alloc::locked_bytes::LockedBytes;
use crate::alloc::registry::{self, Range, Slot};
use crate::alloc::secret_files::SecretFile;
use crate::error::Error;
use crate::limits;
use crate::os::{self, Protection};
use crate::policy::{ForkPolicy, Locking};

/// One mapping this crate made, owned: unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: NonNull<u8>,
    len: usize,
    /// For a mapping whose runs are opened from a memfd_secret(2) file: the
    /// file, as long as the mapping (a run's offset in the file is its
    /// offset in the mapping).
    secret: Option<SecretFile>,
    /// Its entry in the registry the last wipe walks.
    entry: Slot,
    /// What the entry says: the range, and which process generation has it.
    range: Range,
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
        if fork == ForkPolicy::Exclude {
            watch_forks(); // a fork child gets placeholders there
        }
        let addr = os::map_none(len).map_err(|e| Error::os("mmap", len, e))?;
        let at = addr.as_ptr() as usize;
        let range = match fork {
            ForkPolicy::Exclude => Range::this_process_only(at, len),
            ForkPolicy::Wipe | ForkPolicy::Keep => Range::inherited_by_forks(at, len),
        };
        let Some(entry) = registry::register(range) else {
            // SAFETY: the mapping was just made; nothing else knows of it.
            let _ = unsafe { os::unmap(addr, len) };
            return Err(Error::os(
                "mmap",
                len,
                io::Error::from(io::ErrorKind::OutOfMemory),
            ));
        };
        let map = Mapping {
            addr,
            len,
            secret: None,
            entry,
            range,
        };
        // SAFETY: the mapping was just made and holds nothing; nothing else
        // knows of it.
        unsafe { advise_fresh(addr, len, fork) }?;
        Ok(map)
    }

    /// A reservation as [`new`](Mapping::new) makes, under
    /// [`ForkPolicy::Exclude`] (the only policy secret memory can honour),
    /// whose runs [`open`] maps from a new memfd_secret(2) file of the
    /// same length. Guard pages and closed runs stay anonymous `PROT_NONE`
    /// memory, which `RLIMIT_MEMLOCK` does not charge.
    pub(crate) fn new_secret(len: usize) -> Result<Self, Error> {
        let mut map = Mapping::new(len, ForkPolicy::Exclude)?;
        map.secret = Some(SecretFile::new(map.addr, len)?);
        Ok(map)
    }

    /// The secret file behind the mapping's runs, if it has one.
    pub(crate) fn secret_file(&self) -> Option<&SecretFile> {
        self.secret.as_ref()
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
        // Not this mapping here any more: out of the registry, or the last
        // wipe could change whatever this process mapped there since.
        self.deregister();
        std::mem::forget(self);
    }

    /// Takes the mapping out of the registry, before it is unmapped. If the
    /// last wipe has claimed it, the process is about to die: the range
    /// must stay as the wipe found it, so the calling thread stops here.
    fn deregister(&self) {
        if registry::deregister(self.entry, self.addr.as_ptr() as usize).is_err() {
            os::stop_for_good();
        }
    }

    /// Unmaps the mapping, or hands it back if munmap(2) fails: the kernel
    /// may have merged its `PROT_NONE` ends with a neighbouring mapping of
    /// the crate's that carries the same advice, and then unmapping it
    /// needs a split, which fails with `ENOMEM` at `vm.max_map_count`. The
    /// caller keeps it (still counted) and tries again later.
    ///
    /// The owner calls this only when no slot of the mapping is open, so
    /// nothing refers into it.
    pub(crate) fn unmap(self) -> Result<(), Mapping> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: the mapping is ours and, by the owner's contract above,
        // unreferenced; on success `this` is forgotten, so it is not
        // unmapped twice.
        match unsafe { os::unmap(this.addr, this.len) } {
            Ok(()) => {
                // Forgetting `this` must not forget its secret file: the
                // last mapping of it is gone, and dropping the last handle
                // closes the descriptor (and frees the file's pages).
                drop(this.secret.take());
                Ok(())
            }
            Err(_) => {
                // Kept: back into the registry (an entry was freed just now,
                // so there is room, short of a race filling 262,144 entries).
                match registry::register(this.range) {
                    Some(entry) => this.entry = entry,
                    None => {
                        eprintln!(
                            "lockedmem: no room to keep a mapping in the registry of the last \
                             wipe; aborting rather than leaving memory it would miss"
                        );
                        std::process::abort();
                    }
                }
                Err(std::mem::ManuallyDrop::into_inner(this))
            }
        }
    }
}

impl Drop for Mapping {
    /// Reached for a mapping that holds no live value: a fresh one whose
    /// advice or opening failed, or the wiped mapping of a solo slot a fork
    /// child inherited. Unmaps it; should that fail, the address range
    /// stays reserved (and, in the cases above, holds no secret).
    fn drop(&mut self) {
        self.deregister();
        // SAFETY: the mapping is ours and holds no live value; nothing
        // refers into it.
        let _ = unsafe { os::unmap(self.addr, self.len) };
    }
}

/// Makes a fresh or freshly replaced range what every piece of the crate's
/// memory is: out of core dumps where the platform can do it, and seen by
/// a fork(2) child as `fork` says. A refusal for want of the mechanism is
/// [`Error::Unsupported`] naming the call.
///
/// # Safety
/// `addr..addr + len` is a range of this crate's mappings that holds no
/// value and that nothing else uses.
unsafe fn advise_fresh(addr: NonNull<u8>, len: usize, fork: ForkPolicy) -> Result<(), Error> {
    if os::dumps_excludable() {
        // SAFETY: forwarded from the caller's contract.
        unsafe { os::exclude_from_dumps(addr, len) }.map_err(|r| limits::refused(r, len))?;
    }
    // SAFETY: as above; with `Absent`, nothing a child runs uses the range
    // (a fork child finds the memory absent: `fork::Origin::present`).
    unsafe { os::set_fork_view(addr, len, fork_view(fork)) }.map_err(|r| limits::refused(r, len))
}

/// What a fork(2) child gets of memory under `fork`.
fn fork_view(fork: ForkPolicy) -> os::ForkView {
    match fork {
        ForkPolicy::Wipe => os::ForkView::Zeros,
        ForkPolicy::Exclude => os::ForkView::Absent,
        ForkPolicy::Keep => os::ForkView::Copy,
    }
}

/// Why a run could not be opened, and whether it is closed again.
#[derive(Debug)]
pub(crate) struct OpenError {
    pub(crate) error: Error,
    /// The run is as it was found: closed, unlocked, uncounted. If not,
    /// undoing failed and the run is read-write (unlocked, uncounted): the
    /// caller must not hand it out as closed.
    pub(crate) closed: bool,
}

/// What a reclaim callback handed to [`open`] gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// The ready slots the caches hold: cheap, whatever else is open.
    Caches,
    /// Everything `trim` gives back (empty packed pages too).
    All,
    /// The locks of best-effort pages that were locked after the fact:
    /// taken back (the pages stay open, unlocked) for a run of this many
    /// bytes that requires its lock, when nothing else is left to give;
    /// only as many pages as that needs.
    BestEffortLocks(usize),
}

/// Gives back room for a lock `lock` asks for: everything `trim` would,
/// and, for a required lock, the later locks of best-effort pages.
/// Room taken back from best-effort pages is kept for required locks from
/// then on (see [`LockedBytes::kept`]).
fn free_room(
    reclaim: &dyn Fn(Reclaim) -> usize,
    lock: Locking,
    len: usize,
    count: &LockedBytes,
) -> usize {
    match reclaim(Reclaim::All) {
        0 if lock == Locking::Require => {
            let freed = reclaim(Reclaim::BestEffortLocks(len));
            count.keep_for_required(freed);
            freed
        }
        freed => freed,
    }
}

/// How many times an mlock refused for `RLIMIT_MEMLOCK` is tried again after
/// `reclaim` gave memory back (other threads may take what it freed).
const RECLAIM_ROUNDS: usize = 8;

/// Makes the closed run `data..data + len` read-write and, as `lock` asks,
/// mlocked; returns whether it is locked. An mlock refused for
/// `RLIMIT_MEMLOCK` calls `reclaim` (which gives locked memory back and says
/// how many bytes it freed itself) and tries again, as long as that frees
/// something, up to [`RECLAIM_ROUNDS`] times. A best-effort lock at the
/// limit (see [`LockedBytes::at_limit`]) is tried only if the caches gave
/// something back: the crate's locked bytes may be slots it keeps ready,
/// which a lock must get before it is given up. On error the run is left as it
/// was found (see [`OpenError`]). `fork` is the advice the run's reservation
/// carries.
///
/// # Safety
/// The run is a closed part of this crate's mappings that the caller holds
/// exclusively.
pub(crate) unsafe fn open(
    data: NonNull<u8>,
    len: usize,
    lock: Locking,
    fork: ForkPolicy,
    count: &LockedBytes,
    reclaim: &dyn Fn(Reclaim) -> usize,
    file: Option<&SecretFile>,
) -> Result<bool, OpenError> {
    if let Some(file) = file {
        // SAFETY: forwarded.
        return unsafe { open_secret(data, len, fork, count, reclaim, file) };
    }
    // SAFETY: forwarded: the caller holds the closed run exclusively.
    unsafe { os::protect(data, len, Protection::ReadWrite) }.map_err(|e| OpenError {
        error: Error::os("mprotect", len, e),
        closed: true,
    })?;
    if lock == Locking::Never {
        return Ok(false);
    }
    // At the limit, a best-effort lock may take the caches' ready slots,
    // but not room kept for required locks (which may be such a slot).
    if lock == Locking::BestEffort
        && count.at_limit()
        && (count.kept() > 0 || reclaim(Reclaim::Caches) == 0)
    {
        return Ok(false);
    }
    // SAFETY: as above; the pages are readable now.
    let mut locked = unsafe { os::lock(data, len) };
    if matches!(&locked, Err(e) if limits::is_limit_error(e)) {
        count.refused();
    }
    for _ in 0..RECLAIM_ROUNDS {
        match &locked {
            Err(e) if limits::is_limit_error(e) && free_room(reclaim, lock, len, count) > 0 => {
                // SAFETY: as above.
                locked = unsafe { os::lock(data, len) };
            }
            _ => break,
        }
    }
    let e = match locked {
        Ok(()) => {
            count.add(len);
            return Ok(true);
        }
        Err(e) => e,
    };
    let error = limits::lock_error(len, count.get(), e);
    if lock == Locking::BestEffort {
        // Keep it read-write and unlocked; a failed mlock may have locked a
        // part, so unlock all of it.
        // SAFETY: as above.
        return match unsafe { os::undo_failed_lock(data, len) } {
            Ok(()) => Ok(false),
            Err(e) => Err(OpenError {
                error: Error::os("munlock", len, e),
                closed: false,
            }),
        };
    }
    // Undo: nothing locked, nothing read-write, and merged back.
    // SAFETY: as above; no value was placed there, and nothing was counted.
    let closed = unsafe { close(data, len, false, fork, count) } == Closed::Yes;
    Err(OpenError { error, closed })
}

/// [`open`] for a run of a secret mapping: maps the run's pages of `file`
/// in its place (no mlock: the kernel charges secret memory to
/// `RLIMIT_MEMLOCK` when it is mapped, refuses it with `EAGAIN` at the
/// limit, and keeps it in memory; `VmFlags` show `lo`), then advises the new
/// mapping as the reservation was. Always locked, or an error.
///
/// # Safety
/// As [`open`]'s; `file` is the file of the mapping the run is part of.
unsafe fn open_secret(
    data: NonNull<u8>,
    len: usize,
    fork: ForkPolicy,
    count: &LockedBytes,
    reclaim: &dyn Fn(Reclaim) -> usize,
    file: &SecretFile,
) -> Result<bool, OpenError> {
    let offset = file.offset_of(data);
    // Maps the run and advises it, with no fork(2) in between (a child
    // would share the pages: see `ForkGate`); `Err` is mmap's error, `Ok`
    // holds the outcome of the advice (the run closed again if it failed).
    let map = || {
        let _gate = ForkGate::enter();
        // SAFETY: forwarded: the caller holds the closed run exclusively.
        unsafe { file.map_fixed(data, len, offset) }?;
        count.add(len);
        // SAFETY: the run now holds our secret pages (wiped) and no value.
        Ok(match unsafe { advise_fresh(data, len, fork) } {
            Ok(()) => Ok(()),
            Err(error) => {
                // SAFETY: as above; it was counted just now.
                let closed = unsafe { close(data, len, true, fork, count) } == Closed::Yes;
                Err(OpenError { error, closed })
            }
        })
    };
    let mut mapped = map();
    type Mapped = Result<Result<(), OpenError>, os::Refused>;
    let at_limit = |r: &Mapped| matches!(r, Err(e) if e.why == os::Why::Limit);
    if at_limit(&mapped) {
        count.refused();
    }
    for _ in 0..RECLAIM_ROUNDS {
        if at_limit(&mapped) && free_room(reclaim, Locking::Require, len, count) > 0 {
            mapped = map();
        } else {
            break;
        }
    }
    let error = match mapped {
        Ok(advised) => return advised.map(|()| true),
        Err(r) if r.why == os::Why::Limit => limits::limit_error(len, count.get()),
        Err(r) => limits::refused(r, len),
    };
    // A failed mmap with MAP_FIXED may have unmapped the run: put the
    // reservation back.
    // SAFETY: as above; nothing was placed or counted.
    let closed = unsafe { close(data, len, false, fork, count) } == Closed::Yes;
    Err(OpenError { error, closed })
}

/// Locks an open, unlocked run (values may live in it: mlock changes no
/// byte) if `RLIMIT_MEMLOCK` leaves room, without reclaiming anything for
/// it; returns whether it is now locked and counted.
///
/// # Safety
/// The run is an open, unlocked, uncounted part of this crate's mappings
/// that stays open meanwhile (the caller holds its class's mutex).
pub(crate) unsafe fn relock(data: NonNull<u8>, len: usize, count: &LockedBytes) -> bool {
    // SAFETY: forwarded: open, so mapped read-write.
    match unsafe { os::lock(data, len) } {
        Ok(()) => {
            count.add(len);
            true
        }
        Err(e) => {
            if limits::is_limit_error(&e) {
                count.limit_seen();
            }
            // A failed mlock may have locked a part: unlock it all (an
            // error here leaves at most that part locked and uncounted).
            // SAFETY: as above.
            let _ = unsafe { os::undo_failed_lock(data, len) };
            false
        }
    }
}

/// Unlocks an open, locked run of a best-effort page (values may live in
/// it: munlock changes no byte) and counts it off; whether that worked.
///
/// # Safety
/// The run is an open, locked, counted part of this crate's mappings that
/// stays open meanwhile (the caller holds its class's mutex).
pub(crate) unsafe fn unlock_open(data: NonNull<u8>, len: usize, count: &LockedBytes) -> bool {
    // SAFETY: forwarded: open, so mapped.
    let ok = unsafe { os::unlock(data, len) }.is_ok();
    if ok {
        count.sub(len);
    }
    ok
}

/// What [`close`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Closed and advised as its reservation: ready to be opened again.
    Yes,
    /// Still open, locked and counted (`ENOMEM` at `vm.max_map_count`):
    /// keep it and try again later.
    No,
    /// Closed (unlocked, discarded, counted off) but its advice could not be
    /// set again: it must never be opened again, or a secret would sit in
    /// memory without `MADV_DONTDUMP` or its fork advice.
    Unadvised,
}

/// Closes an open run that holds nothing any more: replaces it with fresh
/// `PROT_NONE` memory (which unlocks and discards it) and advises it as its
/// reservation was. See [`Closed`] for what can go wrong and what the caller
/// must do then.
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
) -> Closed {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { os::replace_none(data, len) }.is_err() {
        return Closed::No;
    }
    if locked {
        count.sub(len);
    }
    // SAFETY: the run was just replaced and holds nothing.
    match unsafe { advise_fresh(data, len, fork) } {
        Ok(()) => Closed::Yes,
        Err(_) => Closed::Unadvised,
    }
}
