//! The count of bytes a process generation of the crate holds mlocked, and
//! what it remembers of `RLIMIT_MEMLOCK` refusals: the pressure window after
//! one, where the limit stood, and the room kept for required locks.
//! `pages` counts locks and unlocks here; the layers above read it.
#![forbid(unsafe_code)]

use crate::sync::{AtomicUsize, Ordering};

/// Bytes a process generation of the crate holds mlocked, and whether it is
/// under `RLIMIT_MEMLOCK` pressure.
///
/// Only `pages`, which locks and unlocks, changes the count and records
/// refusals (`add`, `sub`, `refused`, `limit_seen`, `keep_for_required`).
#[derive(Debug)]
pub(crate) struct LockedBytes {
    bytes: AtomicUsize,
    /// Slots still to be closed rather than cached since a lock was refused
    /// for the limit; 0 when there is no pressure.
    pressure: AtomicUsize,
    /// `bytes` when a lock was last refused for the limit; `usize::MAX` if
    /// none was, or a lock succeeded above it since (the limit moved).
    refused_at: AtomicUsize,
    /// Room that required locks took back from best-effort pages, kept for
    /// required locks: best-effort locks do not take it again (see
    /// [`LockedBytes::kept`]).
    kept: AtomicUsize,
}

impl Default for LockedBytes {
    fn default() -> Self {
        LockedBytes {
            bytes: AtomicUsize::new(0),
            pressure: AtomicUsize::new(0),
            refused_at: AtomicUsize::new(usize::MAX),
            kept: AtomicUsize::new(0),
        }
    }
}

/// Dropped slots closed rather than cached after a refusal: enough to let a
/// burst of retries succeed, few enough that a process which once touched
/// the limit caches again soon.
const PRESSURE_DROPS: usize = 1024;

impl LockedBytes {
    pub(crate) fn get(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, n: usize) {
        let now = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.refused_at.load(Ordering::Relaxed) {
            // The limit moved: there is room again.
            self.refused_at.store(usize::MAX, Ordering::Relaxed);
            self.kept.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the crate holds as much locked memory as it did when a lock
    /// was last refused for `RLIMIT_MEMLOCK`: a best-effort lock then is
    /// not even tried (it would fail, and reclaiming for it would cost a
    /// `trim` each time). Room kept for required locks counts as held.
    #[inline]
    pub(crate) fn at_limit(&self) -> bool {
        let refused_at = self.refused_at.load(Ordering::Relaxed);
        refused_at != usize::MAX && self.get() + self.kept() >= refused_at
    }

    /// Bytes of room kept for required locks: room a required lock had to
    /// take back from best-effort pages. Without it, each required box
    /// made and dropped in turn (a temporary) would unlock a best-effort
    /// page and have it locked again at the drop, two system calls and a
    /// refused mlock each time. Best-effort locks (opening a page at the
    /// limit, locking best-effort pages again after a drop) leave it free;
    /// `trim` gives it back to them, and so does the limit moving up.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// `n` more bytes of room are kept for required locks.
    pub(super) fn keep_for_required(&self, n: usize) {
        self.kept.fetch_add(n, Ordering::Relaxed);
    }

    /// The room kept for required locks is free for any lock again.
    pub(crate) fn release_kept(&self) {
        self.kept.store(0, Ordering::Relaxed);
    }

    pub(super) fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Whether a dropped slot should be closed rather than cached: for the
    /// next [`PRESSURE_DROPS`] drops after a lock was refused for the limit,
    /// so that memory reclaimed for a lock is not taken again at once by
    /// other threads refilling their caches. Each call while under pressure
    /// counts one drop.
    #[inline]
    pub(crate) fn under_pressure(&self) -> bool {
        if self.pressure.load(Ordering::Relaxed) == 0 {
            return false;
        }
        // Racing decrements may end the pressure a few drops early or late.
        let left = self.pressure.load(Ordering::Relaxed);
        self.pressure
            .store(left.saturating_sub(1), Ordering::Relaxed);
        true
    }

    /// A lock was refused for the limit.
    #[cold]
    pub(super) fn refused(&self) {
        self.pressure.store(PRESSURE_DROPS, Ordering::Relaxed);
        self.limit_seen();
    }

    /// Records where the limit stood, without starting a pressure window:
    /// for a later lock of a best-effort page, which no box waits for (so
    /// no cache needs to stay empty for it).
    #[cold]
    pub(super) fn limit_seen(&self) {
        self.refused_at.store(self.get(), Ordering::Relaxed);
    }

    /// Counts off `n` bytes whose mapping was unmapped whole (which unlocks
    /// it) rather than closed here.
    pub(crate) fn unlocked(&self, n: usize) {
        self.sub(n);
    }
}
