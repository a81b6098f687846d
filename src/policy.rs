//! The vocabulary every layer shares: what to do when a lock is refused,
//! what a fork(2) child gets, how a box is kept apart from other memory.
#![forbid(unsafe_code)]

/// What to do when the data pages cannot be mlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockPolicy {
    /// No lock, no box: the constructor returns the error
    /// ([`Error::MemlockLimit`](crate::Error::MemlockLimit) when
    /// `RLIMIT_MEMLOCK` refused).
    #[default]
    Require,
    /// Make the box anyway, unlocked;
    /// [`LockedBox::is_locked`](crate::LockedBox::is_locked) then says
    /// `false`. Every other protection still applies. A packed box that
    /// cannot be locked stays packed, on a packed page kept apart for such
    /// boxes (guarded, `MADV_DONTDUMP`, the fork policy's advice: only the
    /// lock is missing). Such pages are locked later, first opened first,
    /// when the limit leaves room: after [`trim`](crate::trim), or after a
    /// dropped box gave locked memory back. Until then no mlock is even
    /// tried for them, so a million of them cost no more to make than
    /// locked ones ([`stats`](crate::stats) counts them apart). Boxes that
    /// require the lock come first: to make one at the limit, the crate
    /// takes as many such later locks back as it needs (those boxes then
    /// say `is_locked() == false` again), and that room stays kept for
    /// boxes that require the lock until [`trim`](crate::trim): a
    /// temporary that requires its lock, made and dropped once per
    /// best-effort box, then costs no unlock and relock each time. A box
    /// larger than physical memory is still refused
    /// ([`Error::TooLarge`](crate::Error::TooLarge)).
    BestEffort,
}

/// What a child made by fork(2) gets of the box's pages.
///
/// Options that name no fork policy get `Wipe` where the platform can give
/// a child zeros (Linux, FreeBSD, OpenBSD; Windows has no fork at all), and
/// `Exclude` where it cannot (macOS), and for secret memory. Windows has no
/// fork(2): every policy is accepted there and none does anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForkPolicy {
    /// `MADV_WIPEONFORK`: the child sees zeros where the secret was. Its copy
    /// of the box stays usable and can be dropped normally.
    #[default]
    Wipe,
    /// `MADV_DONTFORK`: the pages do not exist in the child. Dereferencing,
    /// borrowing or sealing the child's copy of the box panics (the crate
    /// checks before it touches the pages; the address range may hold
    /// another mapping there). Dropping the child's copy is safe and touches
    /// nothing.
    Exclude,
    /// Neither: the child gets a copy-on-write copy of the secret, as with
    /// ordinary memory. Its copy is not locked (locks are not inherited).
    Keep,
}

/// Whether the box's pages must be left out of core dumps.
///
/// Linux (`MADV_DONTDUMP`), FreeBSD (`MADV_NOCORE`), OpenBSD
/// (`MAP_CONCEAL`) and Windows (`WerRegisterExcludedMemoryBlock`, for
/// Windows Error Reporting's dumps) have a mechanism; macOS has none: there
/// a process writes no core unless `RLIMIT_CORE` allows it, and
/// [`Hardening::no_core_dumps`](crate::Hardening::no_core_dumps) makes sure
/// it does not. [`Host::dump_exclusion`](crate::Host::dump_exclusion) says
/// which holds at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DumpPolicy {
    /// Leave the pages out of core dumps where the platform can (everywhere
    /// but macOS), and make the box all the same where it cannot.
    #[default]
    BestEffort,
    /// Leave the pages out of core dumps, or fail with
    /// [`Error::Unsupported`](crate::Error::Unsupported) naming the missing
    /// mechanism.
    Exclude,
}

/// How a box is kept apart from other memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Data pages of its own, the value flush against a `PROT_NONE` guard
    /// page: a linear overflow faults at once. Costs at least one locked
    /// page per box (4 KiB on most machines).
    #[default]
    Page,
    /// A slot of 64 bytes to 4 KiB on a locked, guarded page shared with
    /// other small secrets, with a canary on each side: an overflow is
    /// caught when the box is dropped, not when it happens. A 32-byte secret
    /// costs a 64-byte slot of locked memory, so 1,024 of them fit in the
    /// 64 KiB `RLIMIT_MEMLOCK` of many hosts. Applies to values of up to
    /// 2 KiB aligned to at most 16 bytes (a 2 KiB value, with its canaries,
    /// takes a whole 4 KiB slot); others are page-isolated. Sealing a packed
    /// box moves it to pages of its own. Under
    /// [`LockPolicy::BestEffort`], a packed box whose page cannot be locked
    /// goes to an unlocked packed page (never to a page shared with boxes
    /// that asked for the lock), which is locked later if room appears.
    Packed,
}

/// What memory a box's pages are made of.
///
/// ```no_run
/// use lockedmem::{Backing, Options};
///
/// // Secret memory where the kernel offers it, anonymous memory elsewhere.
/// let key = Options::new()
///     .backing(Backing::PreferSecretMem)
///     .zeroed::<[u8; 32]>()?;
/// if key.backing() == Backing::Anonymous {
///     eprintln!("memfd_secret(2) is not available here");
/// }
/// # Ok::<(), lockedmem::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backing {
    /// Private anonymous memory, mlocked (the default).
    #[default]
    Anonymous,
    /// Pages of a memfd_secret(2) file (Linux 5.14 and later; on by default
    /// since 6.5): removed from the kernel's direct map while they exist,
    /// so no other process (root included, through `/proc/PID/mem`,
    /// `process_vm_readv` or ptrace) and no kernel code tricked into
    /// reading memory can reach them; the process reads them itself only
    /// through its own mapping. Always locked: the kernel charges them to
    /// `RLIMIT_MEMLOCK` when they are mapped, so
    /// [`LockPolicy::BestEffort`] cannot make an unlocked one
    /// ([`Error::MemlockLimit`](crate::Error::MemlockLimit) at the limit).
    /// Only [`ForkPolicy::Exclude`] can be honoured (a fork child would
    /// share the pages, and the kernel cannot wipe them in it): it is the
    /// default fork policy here, and asking for another is
    /// [`Error::Unsupported`](crate::Error::Unsupported). Where the kernel
    /// lacks the call, has secret memory disabled or a seccomp filter
    /// refuses it, making the box is `Error::Unsupported` naming the reason.
    ///
    /// Costs: while any secret memory exists, the whole machine cannot
    /// hibernate; the first touch of a fresh page costs about 15 times an
    /// anonymous locked page (the kernel splits its direct map), so the
    /// crate keeps the pages pooled, one file per slab, and reuses them.
    SecretMem,
    /// [`SecretMem`](Backing::SecretMem) where it can be had, else
    /// [`Anonymous`](Backing::Anonymous) (also when the fork policy asked
    /// for is not `Exclude`, or the lock limit leaves no room for secret
    /// memory); [`LockedBox::backing`](crate::LockedBox::backing) says which
    /// a box got. Its default fork policy is `Exclude` either way.
    PreferSecretMem,
}

/// How the crate locks a run of pages: as a [`LockPolicy`] says, or never.
/// `Never` is for memory that holds no secret in the clear (the shield's
/// ciphertext): it is guarded and advised like the rest, but not locked,
/// never counted against `RLIMIT_MEMLOCK` and never relocked later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locking {
    /// [`LockPolicy::Require`].
    Require,
    /// [`LockPolicy::BestEffort`].
    BestEffort,
    /// No mlock is even tried.
    #[cfg_attr(not(feature = "shield"), allow(dead_code))]
    Never,
}

impl From<LockPolicy> for Locking {
    fn from(p: LockPolicy) -> Self {
        match p {
            LockPolicy::Require => Locking::Require,
            LockPolicy::BestEffort => Locking::BestEffort,
        }
    }
}

/// Number of fork policies, for per-policy tables.
pub(crate) const FORKS: usize = 3;

impl ForkPolicy {
    /// Index of the policy in per-policy tables (`0..FORKS`).
    #[inline]
    pub(crate) fn index(self) -> usize {
        match self {
            ForkPolicy::Wipe => 0,
            ForkPolicy::Exclude => 1,
            ForkPolicy::Keep => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_indices_are_distinct_and_dense() {
        let mut seen = [false; FORKS];
        for f in [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep] {
            assert!(!seen[f.index()]);
            seen[f.index()] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
