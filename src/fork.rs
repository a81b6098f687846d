//! Telling whether this process is a fork(2) child of the one that made a box.
//!
//! Each box records the *generation* of the process that made it. The
//! generation is a random nonzero word kept in a page marked
//! `MADV_WIPEONFORK`: a child made by fork(2) finds it zeroed and draws a new
//! one the first time it asks. Reading it costs one load, no system call. On
//! kernels without `MADV_WIPEONFORK` the process ID stands in, at the cost of
//! a `getpid` per query.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::os;
use crate::policy::ForkPolicy;

/// What touching a box whose pages were excluded from this fork child says.
pub(crate) const EXCLUDED: &str = "lockedmem: this box was made with ForkPolicy::Exclude by the \
                                   parent of this fork(2) child; its pages do not exist here";

/// Where a slot was made: the fork policy its pages were advised with and
/// the generation of the process that made it. What a slot may do in a fork
/// child follows from these two, for page-isolated and packed slots alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) fork: ForkPolicy,
    generation: u64,
}

impl Origin {
    /// A slot made now, in this process.
    #[inline]
    pub(crate) fn here(fork: ForkPolicy) -> Self {
        Origin {
            fork,
            generation: generation(),
        }
    }

    /// Whether this process was made by fork(2) after the slot was.
    #[inline]
    pub(crate) fn inherited(&self) -> bool {
        self.generation != generation()
    }

    /// Whether the slot's pages exist in this process: not in a fork child
    /// of the maker of a [`ForkPolicy::Exclude`] slot.
    #[inline(always)]
    pub(crate) fn present(&self) -> bool {
        !(self.fork == ForkPolicy::Exclude && self.inherited())
    }

    /// Whether the kernel zeroed the slot's pages in this process: a fork
    /// child of the maker of a [`ForkPolicy::Wipe`] slot.
    #[inline]
    pub(crate) fn wiped_by_fork(&self) -> bool {
        self.fork == ForkPolicy::Wipe && self.inherited()
    }
}

/// The current process's generation: equal for every call in one process,
/// different (with overwhelming probability) in any child made by fork(2).
#[inline]
pub(crate) fn generation() -> u64 {
    let Some(word) = os::fork_wiped_word() else {
        return u64::from(os::process_id());
    };
    let current = word.load(Ordering::Acquire);
    if current != 0 {
        return current;
    }
    first_generation(word)
}

/// Draws this process's generation into `word`, which reads zero (the first
/// query in this process, or the first in a fork child): out of line, so
/// that the query above inlines into every check.
#[cold]
#[inline(never)]
fn first_generation(word: &AtomicU64) -> u64 {
    let fresh = fresh_generation();
    match word.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => winner,
    }
}

/// A random nonzero word; falls back to the process ID should the kernel's
/// random source fail.
fn fresh_generation() -> u64 {
    let mut bytes = [0u8; 8];
    let random = os::random(&mut bytes).map(|()| u64::from_ne_bytes(bytes));
    match random {
        Ok(v) if v != 0 => v,
        _ => u64::from(os::process_id()) | 1 << 63,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_within_a_process() {
        let g = generation();
        assert_ne!(g, 0);
        assert_eq!(g, generation());
        let other = std::thread::spawn(generation).join().unwrap();
        assert_eq!(g, other, "threads share the generation");
    }
}
