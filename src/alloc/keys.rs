//! The pool's class keys: what memory a class holds ([`Kind`]), and the
//! dense index of each page-isolated and packed class of each kind in the
//! pool's tables.
#![forbid(unsafe_code)]

use crate::layout::{MAX_SLAB_PAGES, PACKED_CLASSES};
use crate::policy::{FORKS, ForkPolicy};

/// What memory a class holds: anonymous memory advised for a fork policy,
/// or secret memory (memfd_secret(2)), which is always under
/// [`ForkPolicy::Exclude`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) fork: ForkPolicy,
    pub(crate) secret: bool,
}

/// Kinds of memory: anonymous under each fork policy, and secret.
pub(super) const KINDS: usize = FORKS + 1;

impl Kind {
    /// Anonymous memory under `fork`.
    pub(crate) const fn anonymous(fork: ForkPolicy) -> Self {
        Kind {
            fork,
            secret: false,
        }
    }

    /// Secret memory.
    pub(crate) const SECRET: Kind = Kind {
        fork: ForkPolicy::Exclude,
        secret: true,
    };

    /// Every kind, by index.
    pub(super) const ALL: [Kind; KINDS] = [
        Kind::anonymous(ForkPolicy::Wipe),
        Kind::anonymous(ForkPolicy::Exclude),
        Kind::anonymous(ForkPolicy::Keep),
        Kind::SECRET,
    ];

    #[inline]
    pub(super) fn index(self) -> usize {
        if self.secret {
            FORKS
        } else {
            self.fork.index()
        }
    }
}

/// The pool's index for page-isolated slots of `data_pages` pages (1 to
/// `MAX_SLAB_PAGES`) of `kind`.
#[inline]
pub(super) fn page_key(kind: Kind, data_pages: usize) -> usize {
    debug_assert!((1..=MAX_SLAB_PAGES).contains(&data_pages));
    kind.index() * MAX_SLAB_PAGES + data_pages - 1
}

/// The pool's index for packed size class `class` of `kind`, on locked
/// pages.
#[inline]
pub(super) fn packed_key(kind: Kind, class: usize) -> usize {
    debug_assert!(class < PACKED_CLASSES);
    kind.index() * PACKED_CLASSES + class
}

/// Packed classes of each kind: locked pages, and best-effort pages.
pub(super) const PACKED_KEYS: usize = KINDS * PACKED_CLASSES;

/// The index of the best-effort twin of the locked class `key`: its pages
/// are opened without a lock when `RLIMIT_MEMLOCK` leaves no room, and
/// locked later when it does (`relock`).
#[inline]
pub(super) fn unlocked_key(key: usize) -> usize {
    debug_assert!(key < PACKED_KEYS);
    key + PACKED_KEYS
}

/// Whether `key` names a class of best-effort pages.
pub(super) fn is_unlocked_key(key: usize) -> bool {
    key >= PACKED_KEYS
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn class_keys_are_dense_and_distinct() {
        let mut seen = [false; KINDS * MAX_SLAB_PAGES];
        for kind in Kind::ALL {
            for pages in 1..=MAX_SLAB_PAGES {
                let k = page_key(kind, pages);
                assert!(!seen[k], "page key {k} twice");
                seen[k] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        let mut seen = [false; 2 * PACKED_KEYS];
        for kind in Kind::ALL {
            for class in 0..PACKED_CLASSES {
                for k in [
                    packed_key(kind, class),
                    unlocked_key(packed_key(kind, class)),
                ] {
                    assert!(!seen[k], "packed key {k} twice");
                    seen[k] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }
}
