//! Giving locked memory back: a slot closed ([`close_slot`]), the caches
//! emptied, [`trim`], and the reclaim callback `pages::open` calls when
//! `RLIMIT_MEMLOCK` refuses a lock; and, once room is back, locking
//! best-effort packed pages again ([`relock`]).
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::alloc::keys::PACKED_KEYS;
use crate::alloc::page_slot::{Home, PageSlot};
use crate::alloc::pages::{self, Closed, Reclaim};
use crate::alloc::pool::{Pool, pool};
use crate::alloc::room::room_under_limit;
use crate::sync::lock_std as lock;

/// Gives back every cached slot and every empty packed page, in every
/// thread, and unmaps every slab left empty; tries again to close slots
/// and unmap slabs that could not be closed or unmapped before (at
/// `vm.max_map_count`). Afterwards, with no box alive and the mapping limit
/// not reached, the process's `VmLck` and mapping count are back where they
/// were before the first box (but for one page the crate keeps to detect
/// fork(2)). In a fork child, slabs inherited from the parent are not given
/// back.
///
/// The crate calls it itself before it would refuse an mlock for
/// `RLIMIT_MEMLOCK`, and tries the lock again, repeatedly while that frees
/// memory: a cache causes [`Error::MemlockLimit`](crate::Error::MemlockLimit)
/// only if other threads refill their caches faster than the retries take
/// them back.
pub fn trim() {
    let pool = pool();
    trim_pool(pool);
    // Room kept for required locks (taken from best-effort pages) goes
    // back to them now.
    pool.locked.release_kept();
    relock(pool);
}

/// Locks best-effort packed pages that were opened without a lock, first
/// opened first, while `RLIMIT_MEMLOCK` leaves room beside the room kept
/// for required locks (see `locked_bytes::LockedBytes::kept`): after [`trim`], and
/// after a dropped box gave locked memory back. Not part of `trim_pool`,
/// which reclaims room for a lock and must not take it again.
pub(super) fn relock(pool: &'static Pool) {
    if pool.unlocked_pages.load(Ordering::Relaxed) == 0 {
        return;
    }
    let page_size = pool.page_size;
    // Pages the limit leaves room for, as far as the crate can tell; no
    // bound where no limit binds (a refused mlock still stops the loop).
    let mut budget = room_under_limit(pool).map(|room| room / page_size);
    if budget == Some(0) {
        return;
    }
    for class in &pool.packed[PACKED_KEYS..] {
        let mut c = lock(class);
        let mut refused = false;
        let locked = c.relock(&mut |page| {
            if budget == Some(0) {
                refused = true;
                return false;
            }
            // SAFETY: an open page of the class, unlocked and uncounted; it
            // stays open while we hold the class mutex.
            let ok = unsafe { pages::relock(page.addr(), page_size, &pool.locked) };
            refused = !ok;
            budget = budget.map(|b| b - 1);
            ok
        });
        pool.unlocked_pages.fetch_sub(locked, Ordering::Relaxed);
        if refused {
            return;
        }
    }
}

/// `trim` for `pool`; returns the locked bytes it gave back.
fn trim_pool(pool: &'static Pool) -> usize {
    let mut unlocked = close_cached(pool);
    let stuck = std::mem::take(&mut *lock(&pool.stuck));
    for slot in stuck {
        unlocked += close_slot(pool, slot);
    }
    for class in pool.packed.iter() {
        let mut c = lock(class);
        let fork = c.fork();
        let page_size = pool.page_size;
        c.close_empty(&mut |page| {
            let locked = page.is_locked();
            // SAFETY: `close_empty` took every slot of the page, so it is
            // empty (wiped by each slot's last owner) and ours alone; it is
            // locked and counted iff its flag says so.
            let closed =
                unsafe { pages::close(page.addr(), page_size, locked, fork, &pool.locked) };
            if closed != Closed::No {
                page.set_locked(false);
                if locked {
                    unlocked += page_size;
                } else {
                    pool.unlocked_pages.fetch_sub(1, Ordering::Relaxed);
                }
            }
            closed
        });
    }
    for class in pool.page.iter() {
        lock(class).unmap_empty(0);
    }
    unlocked
}

/// Closes the ready slots of every thread's cache and of the cache of large
/// slots; returns the locked bytes it gave back.
fn close_cached(pool: &'static Pool) -> usize {
    let mut unlocked = 0;
    let shards: Vec<_> = lock(&pool.shards).clone();
    for shard in shards {
        for slot in shard.drain() {
            unlocked += close_slot(pool, slot);
        }
    }
    let large = std::mem::take(&mut *lock(&pool.large));
    for slot in large.slots {
        unlocked += close_slot(pool, slot);
    }
    unlocked
}

/// Closes a wiped slot of this generation and gives it back to its slab (or
/// unmaps its own mapping). Returns the locked bytes it gave back. A slot
/// that cannot be closed goes to the pool's `stuck` list, still open and
/// counted; one closed but not advised again stays reserved for good.
pub(super) fn close_slot(pool: &'static Pool, slot: PageSlot) -> usize {
    let unlocked = if slot.locked { slot.data_len } else { 0 };
    match slot.home {
        Home::Solo(mapping) => match (*mapping).unmap() {
            // munmap unlocks and discards too.
            Ok(()) => {
                pool.locked.unlocked(unlocked);
                pool.solo.fetch_sub(1, Ordering::Relaxed);
                unlocked
            }
            Err(mapping) => {
                lock(&pool.stuck).push(PageSlot {
                    home: Home::Solo(Box::new(mapping)),
                    ..slot
                });
                0
            }
        },
        Home::Slab { class, id } => {
            let fork = slot.origin.fork;
            // SAFETY: the slot is wiped, ours alone, and no reference into
            // it remains (its box is gone).
            let closed =
                unsafe { pages::close(slot.data, slot.data_len, slot.locked, fork, &pool.locked) };
            match closed {
                Closed::Yes => {
                    let mut class = lock(&pool.page[class]);
                    class.release(id);
                    class.unmap_empty(1);
                    unlocked
                }
                Closed::No => {
                    lock(&pool.stuck).push(slot);
                    0
                }
                Closed::Unadvised => unlocked,
            }
        }
    }
}

/// `trim` (or, for [`Reclaim::Caches`], its part that closes the caches'
/// ready slots), returning how many bytes of locked memory it gave back
/// itself (what other threads lock or unlock meanwhile does not count); the
/// reclaim callback handed to `pages::open`.
pub(super) fn reclaim(what: Reclaim) -> usize {
    match what {
        Reclaim::Caches => close_cached(pool()),
        Reclaim::All => trim_pool(pool()),
        Reclaim::BestEffortLocks(len) => unlock_best_effort(pool(), len),
    }
}

/// Takes back the locks of best-effort packed pages locked after the fact
/// (see `relock`), for a lock of `want` bytes that is required: as many
/// pages as that needs, newest first; returns the bytes unlocked. Their
/// boxes stay where they are and say `is_locked() == false` until room
/// appears again (`trim`: the room stays kept for required locks until
/// then, see `locked_bytes::LockedBytes::kept`).
fn unlock_best_effort(pool: &'static Pool, want: usize) -> usize {
    let page_size = pool.page_size;
    let mut unlocked = 0;
    for class in pool.packed[PACKED_KEYS..].iter().rev() {
        if unlocked >= want {
            break;
        }
        let pages = lock(class).unlock_some((want - unlocked).div_ceil(page_size), &mut |page| {
            // SAFETY: an open, locked page of the class, counted; it stays
            // open while `unlock_some` holds the class mutex.
            unsafe { pages::unlock_open(page.addr(), page_size, &pool.locked) }
        });
        pool.unlocked_pages.fetch_add(pages, Ordering::Relaxed);
        unlocked += pages * page_size;
    }
    unlocked
}
