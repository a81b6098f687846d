//! The process generation's pool: the classes of page slabs and packed
//! pages, every thread's shard, the cache of large slots, the slots that
//! could not be closed, and the counts beside them (locked bytes, what is
//! not locked, solo mappings). One per process generation, made on first
//! use (and afresh in a fork child), never freed.
#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::alloc::keys::{KINDS, Kind, PACKED_KEYS, packed_key, unlocked_key};
use crate::alloc::large_cache::LargeCache;
use crate::alloc::locked_bytes::LockedBytes;
use crate::alloc::packed_slab::PackedClass;
use crate::alloc::page_slab::PageClass;
use crate::alloc::page_slot::PageSlot;
use crate::alloc::shard::{Counters, Shard};
use crate::fork;
use crate::layout::{MAX_SLAB_PAGES, PACKED_CLASSES, PACKED_MIN_SLOT};
use crate::os;

/// The process generation's pool; see `alloc`'s module docs.
pub(super) struct Pool {
    pub(super) generation: u64,
    pub(super) page_size: usize,
    /// Bytes this generation holds locked.
    pub(super) locked: LockedBytes,
    /// Indexed by [`page_key`](crate::alloc::keys::page_key).
    pub(super) page: Box<[Mutex<PageClass>]>,
    /// Indexed by [`packed_key`] (locked pages) and [`unlocked_key`]
    /// (best-effort pages).
    pub(super) packed: Box<[Mutex<PackedClass>]>,
    /// Per locked packed class: whether a page may have a free slot for a
    /// thread that holds none (on the partial list, or held by another
    /// thread; set and cleared under the class mutex, read without it by
    /// best-effort claims at the lock limit).
    pub(super) partial_hint: Box<[AtomicBool]>,
    /// Best-effort packed pages open and not locked.
    pub(super) unlocked_pages: AtomicUsize,
    /// Live page-isolated boxes that are not locked.
    pub(super) unlocked_page_boxes: AtomicUsize,
    /// Every live thread's shard, for `trim` and `stats`.
    pub(super) shards: Mutex<Vec<Arc<Shard<PageSlot>>>>,
    /// Counters of threads that have exited.
    pub(super) retired: Counters,
    /// Solo mappings currently open (cached ones included).
    pub(super) solo: AtomicUsize,
    /// Wiped, locked solo slots kept for reuse; see
    /// [`large_cache_limit`](crate::large_cache_limit).
    pub(super) large: Mutex<LargeCache<PageSlot>>,
    /// Slots that could not be closed; `trim` tries again.
    pub(super) stuck: Mutex<Vec<PageSlot>>,
    /// Source of thread tokens (nonzero).
    pub(super) tokens: std::sync::atomic::AtomicU64,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(ptr::null_mut());

/// This process generation's pool, made on first use (and afresh in a fork
/// child). Pools are never freed: a fork child leaks its parent's.
#[inline]
pub(super) fn pool() -> &'static Pool {
    let generation = fork::generation();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null POOL always points at a leaked, never-freed Pool.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.generation == generation {
            return p;
        }
    }
    install_pool(current, generation)
}

#[cold]
fn install_pool(current: *mut Pool, generation: u64) -> &'static Pool {
    let fresh: &'static mut Pool = Box::leak(Box::new(Pool::new(generation)));
    let fresh_ptr: *mut Pool = fresh;
    match POOL.compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => {
            // Another thread of this generation installed one first (only a
            // fork child changes generation, and it starts with one
            // thread); ours was never shared and stays leaked, unused.
            // SAFETY: as in `pool`: non-null POOL values are leaked Pools.
            unsafe { &*winner }
        }
    }
}

impl Pool {
    fn new(generation: u64) -> Self {
        let page_size = os::page_size();
        debug_assert!(Kind::ALL.iter().enumerate().all(|(i, k)| k.index() == i));
        let classes = Kind::ALL
            .iter()
            .flat_map(|&kind| (0..PACKED_CLASSES).map(move |class| (kind, class)));
        let packed = classes
            .clone()
            .map(|(kind, class)| packed_key(kind, class))
            .chain(classes.map(|(kind, class)| unlocked_key(packed_key(kind, class))))
            .enumerate()
            .map(|(key, k)| {
                debug_assert_eq!(key, k);
                let class = key % PACKED_CLASSES;
                let kind = Kind::ALL[(key % PACKED_KEYS) / PACKED_CLASSES];
                let slots = page_size / (PACKED_MIN_SLOT << class);
                Mutex::new(PackedClass::new(
                    key,
                    kind.fork,
                    kind.secret,
                    page_size,
                    slots,
                ))
            })
            .collect();
        Pool {
            generation,
            page_size,
            locked: LockedBytes::default(),
            page: (0..KINDS * MAX_SLAB_PAGES)
                .map(|_| Mutex::default())
                .collect(),
            packed,
            partial_hint: (0..PACKED_KEYS).map(|_| AtomicBool::new(false)).collect(),
            unlocked_pages: AtomicUsize::new(0),
            unlocked_page_boxes: AtomicUsize::new(0),
            shards: Mutex::default(),
            retired: Counters::default(),
            solo: AtomicUsize::new(0),
            large: Mutex::default(),
            stuck: Mutex::default(),
            tokens: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

/// Records in the pool whether the locked class `key` may have a page with
/// a free slot for a thread that holds none (partial, or held by another
/// thread); called under the class mutex after that may have changed.
pub(super) fn note_partial(pool: &Pool, key: usize, c: &PackedClass) {
    if let Some(hint) = pool.partial_hint.get(key) {
        hint.store(c.may_have_room(), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::lock_std as lock;

    #[test]
    fn pool_classes_know_their_keys() {
        let pool = pool();
        for kind in Kind::ALL {
            for class in 0..PACKED_CLASSES {
                for key in [
                    packed_key(kind, class),
                    unlocked_key(packed_key(kind, class)),
                ] {
                    let c = lock(&pool.packed[key]);
                    assert_eq!(c.fork(), kind.fork);
                }
            }
        }
    }
}
