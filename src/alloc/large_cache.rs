//! The pool's cache of large ready slots: a list, oldest first, kept
//! within a byte limit, from which the newest slot that fits a request is
//! taken.
#![forbid(unsafe_code)]

use crate::alloc::shard::Cached;

/// Slots of at least this many data bytes that a thread's cache has no room
/// for go to the pool's cache of large slots.
pub(super) const SHARED_CACHE_MIN: usize = 64 * 1024;

/// Large slots (solo, or from slabs of `SHARED_CACHE_MIN` bytes or more)
/// ready for reuse, oldest first.
pub(super) struct LargeCache<S> {
    pub(super) slots: Vec<S>,
    pub(super) bytes: usize,
}

impl<S> Default for LargeCache<S> {
    fn default() -> Self {
        LargeCache {
            slots: Vec::new(),
            bytes: 0,
        }
    }
}

impl<S: Cached> LargeCache<S> {
    /// The newest cached slot that `fits`.
    pub(super) fn take(&mut self, fits: impl Fn(&S) -> bool) -> Option<S> {
        let at = self.slots.iter().rposition(fits)?;
        let slot = self.slots.remove(at);
        self.bytes -= slot.bytes();
        Some(slot)
    }

    /// Keeps `slot`, first taking out the oldest slots until it fits in
    /// `limit` bytes (they are returned, for the caller to close outside
    /// the lock); `Err` gives the slot back if it alone is over the limit.
    pub(super) fn put(&mut self, slot: S, limit: usize) -> Result<Vec<S>, S> {
        if slot.bytes() > limit {
            return Err(slot);
        }
        let mut evicted = Vec::new();
        while self.bytes + slot.bytes() > limit {
            let old = self.slots.remove(0);
            self.bytes -= old.bytes();
            evicted.push(old);
        }
        self.bytes += slot.bytes();
        self.slots.push(slot);
        Ok(evicted)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Item(usize);
    impl Cached for Item {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_large_cache_gives_back_the_oldest_first_and_keeps_its_limit() {
        let mut c = LargeCache::default();
        assert!(c.put(Item(300), 1000).unwrap().is_empty());
        assert!(c.put(Item(400), 1000).unwrap().is_empty());
        assert_eq!(c.bytes, 700);
        let evicted = c.put(Item(500), 1000).unwrap();
        assert_eq!(evicted.iter().map(|i| i.0).collect::<Vec<_>>(), [300]);
        assert_eq!(c.bytes, 900);
        assert!(c.put(Item(1001), 1000).is_err(), "alone over the limit");
        assert_eq!(c.take(|i| i.0 == 300).map(|i| i.0), None);
        assert_eq!(c.take(|i| i.0 == 400).map(|i| i.0), Some(400));
        assert_eq!(c.bytes, 500);
        let evicted = c.put(Item(1000), 1000).unwrap();
        assert_eq!(evicted.iter().map(|i| i.0).collect::<Vec<_>>(), [500]);
        assert_eq!((c.slots.len(), c.bytes), (1, 1000));
    }
}
