//! A thread's shard: its cache of ready page-isolated slots and its
//! counters.
//!
//! Only its own thread puts slots into and takes them out of a shard's
//! cache; `trim` (from any thread) and the thread's exit drain it. All three
//! go through one lock (a spin lock: one atomic swap to take it), which in
//! the steady state only the owner takes.
//! The handoff is model-checked with loom (`RUSTFLAGS="--cfg loom"`).
#![forbid(unsafe_code)]

use crate::sync::{AtomicU64, Ordering, SpinLock};

/// What a cache holds: something that knows its size.
pub(crate) trait Cached {
    /// Bytes the item counts against the cache limit.
    fn bytes(&self) -> usize;
}

/// Page-isolated boxes made and dropped (packed boxes are counted from
/// their pages' bitmaps instead): counters written only by their thread (plain loads and stores), read by
/// `stats` from any thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) page_made: AtomicU64,
    pub(crate) page_dropped: AtomicU64,
}

impl Counters {
    /// Adds these counters into `other` (any thread).
    pub(crate) fn add_into(&self, other: &Counters) {
        for (mine, theirs) in [
            (&self.page_made, &other.page_made),
            (&self.page_dropped, &other.page_dropped),
        ] {
            theirs.fetch_add(mine.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// Adds one to a counter that only the calling thread writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// One thread's cache and counters (of one process generation), on cache
/// lines of its own so that threads do not slow each other down.
#[repr(align(128))]
pub(crate) struct Shard<S> {
    cache: SpinLock<Cache<S>>,
    pub(crate) counters: Counters,
}

struct Cache<S> {
    /// Ready items per class.
    lists: Vec<Vec<S>>,
    bytes: usize,
}

impl<S: Cached> Shard<S> {
    /// An empty shard with `classes` cache classes.
    pub(crate) fn new(classes: usize) -> Self {
        Shard {
            cache: SpinLock::new(Cache {
                lists: (0..classes).map(|_| Vec::new()).collect(),
                bytes: 0,
            }),
            counters: Counters::default(),
        }
    }

    /// A ready item of `class`, if the cache has one.
    #[inline]
    pub(crate) fn take(&self, class: usize) -> Option<S> {
        let mut c = self.cache.lock();
        let item = c.lists[class].pop()?;
        c.bytes -= item.bytes();
        Some(item)
    }

    /// Caches `item` under `class` if the cache stays within `limit` bytes;
    /// hands it back otherwise.
    #[inline]
    pub(crate) fn put(&self, class: usize, item: S, limit: usize) -> Result<(), S> {
        let mut c = self.cache.lock();
        let bytes = c.bytes + item.bytes();
        if bytes > limit {
            return Err(item);
        }
        c.bytes = bytes;
        c.lists[class].push(item);
        Ok(())
    }

    /// Takes everything out of the cache, for the caller to close without
    /// holding the shard's lock.
    pub(crate) fn drain(&self) -> Vec<S> {
        let mut c = self.cache.lock();
        c.bytes = 0;
        c.lists.iter_mut().flat_map(std::mem::take).collect()
    }

    /// Items and bytes in the cache.
    pub(crate) fn cached(&self) -> (usize, usize) {
        let c = self.cache.lock();
        (c.lists.iter().map(Vec::len).sum(), c.bytes)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Item(usize);
    impl Cached for Item {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn cache_respects_the_limit_and_drains() {
        let shard = Shard::new(2);
        assert!(shard.put(0, Item(4096), 8192).is_ok());
        assert!(shard.put(1, Item(4096), 8192).is_ok());
        assert!(shard.put(1, Item(1), 8192).is_err(), "over the limit");
        assert_eq!(shard.cached(), (2, 8192));
        assert_eq!(shard.take(0).map(|i| i.0), Some(4096));
        assert!(shard.take(0).is_none());
        assert_eq!(shard.drain().len(), 1);
        assert_eq!(shard.cached(), (0, 0));
    }
}

/// The handoff between a thread's cache, `trim` on another thread and the
/// thread's exit, model-checked: every item put in comes out exactly once.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, AtomicUsize};

    struct Item(Arc<AtomicUsize>);
    impl Cached for Item {
        fn bytes(&self) -> usize {
            1
        }
    }
    impl Drop for Item {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn loom_cache_trim_and_exit() {
        loom::model(|| {
            let closed = Arc::new(AtomicUsize::new(0));
            let shard = Arc::new(Shard::<Item>::new(1));
            let owner = {
                let shard = Arc::clone(&shard);
                let closed = Arc::clone(&closed);
                loom::thread::spawn(move || {
                    // Drop two boxes into the cache, take one back for a new
                    // box and drop that too, then exit (drain).
                    for _ in 0..2 {
                        if let Err(back) = shard.put(0, Item(Arc::clone(&closed)), 2) {
                            drop(back);
                        }
                    }
                    let reused = shard.take(0);
                    if let Some(item) = reused {
                        if let Err(back) = shard.put(0, item, 2) {
                            drop(back);
                        }
                    }
                    drop(shard.drain());
                })
            };
            // trim from another thread
            drop(shard.drain());
            owner.join().unwrap();
            assert_eq!(shard.cached(), (0, 0), "nothing left behind");
            assert_eq!(closed.load(Ordering::Relaxed), 2, "each item closed once");
        });
    }
}
