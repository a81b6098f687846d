//! A thread's state in the allocator, in a thread-local: its shard (cache
//! and counters), its token, and the packed page it holds per class. Made
//! afresh for each process generation; when the thread exits, its cache is
//! closed and what it held goes back to the pool.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::alloc::keys::{KINDS, PACKED_KEYS};
use crate::alloc::packed_slab::PageMeta;
use crate::alloc::page_slot::PageSlot;
use crate::alloc::pool::{Pool, note_partial, pool};
use crate::alloc::shard::{Counters, Shard, bump};
use crate::alloc::trim::{close_slot, relock};
use crate::fork;
use crate::layout::MAX_SLAB_PAGES;
use crate::sync::{AtomicU64, lock_std as lock};

/// A thread's state: its shard, its token, and the packed page it holds per
/// class (see `packed_slab`).
pub(super) struct Local {
    /// The generation the rest was made in; 0 before first use.
    generation: Cell<u64>,
    shard: RefCell<Option<Arc<Shard<PageSlot>>>>,
    pub(super) token: Cell<u64>,
    pub(super) held: [Cell<Option<&'static PageMeta>>; 2 * PACKED_KEYS],
}

impl Local {
    const fn new() -> Self {
        Local {
            generation: Cell::new(0),
            shard: RefCell::new(None),
            token: Cell::new(0),
            held: [const { Cell::new(None) }; 2 * PACKED_KEYS],
        }
    }

    /// Makes the state current for `pool`'s generation: afresh on first
    /// use and in a fork child (a parent's state is forgotten, not dropped).
    #[inline]
    fn ready(&self, pool: &'static Pool) -> Option<&Self> {
        if self.generation.get() == pool.generation {
            return Some(self);
        }
        self.start(pool)
    }

    #[cold]
    fn start(&self, pool: &'static Pool) -> Option<&Self> {
        let mut shard = self.shard.try_borrow_mut().ok()?;
        if let Some(old) = shard.take() {
            std::mem::forget(old); // the parent's: see `alloc`'s module docs
        }
        let fresh = Arc::new(Shard::new(KINDS * MAX_SLAB_PAGES));
        lock(&pool.shards).push(Arc::clone(&fresh));
        *shard = Some(fresh);
        for h in &self.held {
            h.set(None);
        }
        self.token.set(pool.tokens.fetch_add(1, Ordering::Relaxed));
        self.generation.set(pool.generation);
        Some(self)
    }

    #[inline]
    pub(super) fn with_shard<R>(&self, f: impl FnOnce(&Shard<PageSlot>) -> R) -> R {
        let shard = self.shard.borrow();
        f(shard.as_ref().expect("made by `ready`"))
    }
}

impl Drop for Local {
    /// The thread exits: its cache is closed, the packed pages it held go to
    /// the partial lists for other threads, its counters to the pool.
    fn drop(&mut self) {
        let pool = pool();
        if self.generation.get() != pool.generation {
            return; // never used, or a parent's state in a fork child
        }
        let Some(shard) = self.shard.get_mut().take() else {
            return;
        };
        let freed: usize = shard
            .drain()
            .into_iter()
            .map(|slot| close_slot(pool, slot))
            .sum();
        let me = self.token.get();
        for held in &self.held {
            if let Some(page) = held.take() {
                let mut c = lock(&pool.packed[page.class]);
                c.unhold(page, me);
                note_partial(pool, page.class, &c);
            }
        }
        // Under the registry's mutex, so that `stats` sees the counters
        // either in the shard or in `retired`, never in both or neither.
        let mut shards = lock(&pool.shards);
        shard.counters.add_into(&pool.retired);
        shards.retain(|s| !Arc::ptr_eq(s, &shard));
        drop(shards);
        if freed > 0 {
            relock(pool); // the room the closed cache gave back
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

/// Runs `f` with this thread's state, or with `None` while the thread is
/// being torn down.
#[inline]
pub(super) fn with_local<R>(f: impl FnOnce(Option<&Local>, &'static Pool) -> R) -> R {
    let pool = pool();
    let mut f = Some(f);
    let r = LOCAL.try_with(|l| {
        l.ready(pool)
            .map(|l| (f.take().expect("called once"))(Some(l), pool))
    });
    match r {
        Ok(Some(r)) => r,
        _ => (f.take().expect("not called yet"))(None, pool),
    }
}

/// The page this thread holds for packed class `key`, if its state is of
/// this process generation: the fast path's only look at thread-locals.
#[inline]
pub(super) fn held_page(key: usize) -> Option<&'static PageMeta> {
    let generation = fork::generation();
    LOCAL
        .try_with(|l| {
            if l.generation.get() == generation {
                l.held[key].get()
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

/// A ready slot of page class `class` from this thread's cache, if its state
/// is of this process generation and the cache has one (counted as made):
/// the page-isolated fast path's only look at thread-locals. `None` sends
/// the caller down the slow path, which makes the state if need be.
#[inline]
pub(super) fn take_cached(class: usize) -> Option<PageSlot> {
    let generation = fork::generation();
    LOCAL
        .try_with(|l| {
            if l.generation.get() != generation {
                return None;
            }
            let shard = l.shard.try_borrow().ok()?;
            let s = shard.as_ref()?;
            let slot = s.take(class)?;
            bump(&s.counters.page_made);
            Some(slot)
        })
        .ok()
        .flatten()
}

/// Puts `slot`, wiped, locked and of page class `class`, into this thread's
/// cache if its state is of this process generation and the cache stays
/// within `limit` bytes (counted as dropped); hands it back otherwise, for
/// the slow path.
#[inline]
pub(super) fn put_cached(class: usize, slot: PageSlot, limit: usize) -> Result<(), PageSlot> {
    let generation = fork::generation();
    let mut slot = Some(slot);
    let put = LOCAL.try_with(|l| {
        if l.generation.get() != generation {
            return false;
        }
        let Ok(shard) = l.shard.try_borrow() else {
            return false;
        };
        let Some(s) = shard.as_ref() else {
            return false;
        };
        let item = slot.take().expect("taken once");
        match s.put(class, item, limit) {
            Ok(()) => {
                bump(&s.counters.page_dropped);
                true
            }
            Err(back) => {
                slot = Some(back);
                false
            }
        }
    });
    match (put, slot) {
        (Ok(true), None) => Ok(()),
        (_, Some(back)) => Err(back),
        (_, None) => unreachable!("a slot not put is handed back"),
    }
}

/// Adds one to this thread's counter `which`, or to the pool's shared one
/// while the thread is being torn down.
#[inline]
pub(super) fn count(local: Option<&Local>, pool: &Pool, which: fn(&Counters) -> &AtomicU64) {
    match local {
        Some(l) => l.with_shard(|s| bump(which(&s.counters))),
        None => {
            which(&pool.retired).fetch_add(1, Ordering::Relaxed);
        }
    }
}
