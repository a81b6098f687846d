//! Acquiring and recycling page-isolated slots: a slot comes from the
//! thread's cache, the pool's cache of large slots, a slab, or a mapping of
//! its own; a dropped box's slot goes back into a cache or is closed.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::alloc::cache_limits::{cache_limit, large_cache_limit};
use crate::alloc::keys::{Kind, page_key};
use crate::alloc::large_cache::SHARED_CACHE_MIN;
use crate::alloc::local::{count, put_cached, take_cached, with_local};
use crate::alloc::locked_bytes::LockedBytes;
use crate::alloc::page_slot::{Home, PageSlot};
use crate::alloc::pages::{self, Mapping, OpenError};
use crate::alloc::pool::{Pool, pool};
use crate::alloc::shard::bump;
use crate::alloc::trim::{close_slot, reclaim, relock};
use crate::error::Error;
use crate::fork::Origin;
use crate::layout::{MAX_SLAB_PAGES, SlabGeometry};
use crate::os;
use crate::policy::Locking;
use crate::sync::lock_std as lock;

/// A page-isolated slot of `data_pages` pages: from this thread's cache if it
/// has one, else opened in a slab (or, above `MAX_SLAB_PAGES`, mapped on its
/// own, `map_len` bytes with its guards). Its data bytes are zero.
#[inline]
pub(crate) fn acquire_page_slot(
    data_pages: usize,
    map_len: usize,
    lock_policy: Locking,
    kind: Kind,
) -> Result<PageSlot, Error> {
    // Cached slots are locked: not for memory that is never locked. A slot
    // of a slab class is in the cache only if its geometry exists.
    if lock_policy != Locking::Never && (1..=MAX_SLAB_PAGES).contains(&data_pages) {
        if let Some(slot) = take_cached(page_key(kind, data_pages)) {
            return Ok(slot);
        }
    }
    acquire_page_slot_slow(data_pages, map_len, lock_policy, kind)
}

/// [`acquire_page_slot`] past this thread's cache (which it looks at again
/// if the thread's state had to be made first).
#[inline(never)]
fn acquire_page_slot_slow(
    data_pages: usize,
    map_len: usize,
    lock_policy: Locking,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let page = os::page_size();
    let Some(geo) = SlabGeometry::new(data_pages, page) else {
        return with_local(|local, pool| {
            // Cached slots are locked: not for memory that is never locked.
            let cached = if lock_policy == Locking::Never {
                None
            } else {
                lock(&pool.large).take(|s| s.fits(data_pages * page, kind))
            };
            let slot = match cached {
                Some(slot) => slot,
                None => open_solo(pool, data_pages * page, map_len, lock_policy, kind)?,
            };
            count(local, pool, |c| &c.page_made);
            Ok(slot)
        });
    };
    let class = page_key(kind, data_pages);
    with_local(|local, pool| {
        let cached = local
            .filter(|_| lock_policy != Locking::Never)
            .and_then(|l| {
                l.with_shard(|s| {
                    let slot = s.take(class)?;
                    bump(&s.counters.page_made);
                    Some(slot)
                })
            });
        if let Some(slot) = cached {
            return Ok(slot);
        }
        let len = geo.data_len();
        if len >= SHARED_CACHE_MIN && lock_policy != Locking::Never {
            if let Some(slot) = lock(&pool.large).take(|s| s.fits(len, kind)) {
                count(local, pool, |c| &c.page_made);
                return Ok(slot);
            }
        }
        let slot = open_slab_slot(pool, class, geo, lock_policy, kind)?;
        count(local, pool, |c| &c.page_made);
        Ok(slot)
    })
}

fn open_slab_slot(
    pool: &'static Pool,
    class: usize,
    geo: SlabGeometry,
    lock_policy: Locking,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let (id, data, file) = lock(&pool.page[class]).reserve(geo, kind.fork, kind.secret)?;
    let len = geo.data_len();
    let fork = kind.fork;
    // SAFETY: `reserve` set the slot's bit for us, so we hold the closed
    // slot exclusively; `file` is its slab's.
    let opened = unsafe {
        pages::open(
            data,
            len,
            lock_policy,
            fork,
            &pool.locked,
            &reclaim,
            file.as_ref(),
        )
    };
    match opened {
        Ok(locked) => Ok(counted_unlocked(
            pool,
            PageSlot {
                data,
                data_len: len,
                home: Home::Slab { class, id },
                locked,
                secret: kind.secret,
                origin: Origin::here(fork),
            },
        )),
        Err(OpenError { error, closed }) => {
            if closed {
                lock(&pool.page[class]).release(id);
            } // else it stays reserved: read-write, it must not be handed out
            Err(error)
        }
    }
}

/// A slot in a mapping of its own: guard, data, guard.
fn open_solo(
    pool: &'static Pool,
    data_len: usize,
    map_len: usize,
    lock_policy: Locking,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let fork = kind.fork;
    let mapping = if kind.secret {
        Mapping::new_secret(map_len)?
    } else {
        Mapping::new(map_len, fork)?
    };
    let data = mapping.at(pool.page_size);
    // SAFETY: the data pages of a fresh mapping that is ours alone. On
    // error, dropping `mapping` unmaps it, open or not.
    let locked = unsafe {
        pages::open(
            data,
            data_len,
            lock_policy,
            fork,
            &pool.locked,
            &reclaim,
            mapping.secret_file(),
        )
    }
    .map_err(|e| e.error)?;
    pool.solo.fetch_add(1, Ordering::Relaxed);
    Ok(counted_unlocked(
        pool,
        PageSlot {
            data,
            data_len,
            home: Home::Solo(Box::new(mapping)),
            locked,
            secret: kind.secret,
            origin: Origin::here(fork),
        },
    ))
}

/// Counts a new slot among the live unlocked page boxes if it is unlocked.
fn counted_unlocked(pool: &Pool, slot: PageSlot) -> PageSlot {
    if !slot.locked {
        pool.unlocked_page_boxes.fetch_add(1, Ordering::Relaxed);
    }
    slot
}

/// Takes back a wiped slot whose box is gone: into this thread's cache if it
/// is locked and there is room, else closed.
#[inline]
pub(crate) fn recycle_page_slot(slot: PageSlot) {
    if slot.origin.inherited() {
        release_inherited(slot);
        return;
    }
    // One drop, counted once against the pressure window.
    let keep = slot.locked && !pool().locked.under_pressure();
    let slot = match slot.home {
        Home::Slab { class, .. } if keep => match put_cached(class, slot, cache_limit()) {
            Ok(()) => return,
            Err(back) => back,
        },
        _ => slot,
    };
    recycle_page_slot_slow(slot, keep);
}

/// [`recycle_page_slot`] past this thread's cache (which it tries again if
/// the thread's state had to be made first): `keep` says whether the slot
/// may be kept in a cache.
#[inline(never)]
fn recycle_page_slot_slow(slot: PageSlot, keep: bool) {
    with_local(|local, pool| {
        count(local, pool, |c| &c.page_dropped);
        if !slot.locked {
            pool.unlocked_page_boxes.fetch_sub(1, Ordering::Relaxed);
        }
        let slot = match (local, &slot.home) {
            (Some(l), &Home::Slab { class, .. }) if keep => {
                match l.with_shard(|s| s.put(class, slot, cache_limit())) {
                    Ok(()) => return,
                    Err(back) => back,
                }
            }
            _ => slot,
        };
        // Large slots the thread's cache has no room for (solo ones are
        // never in it) go to the pool's.
        let slot = if keep && slot.data_len >= SHARED_CACHE_MIN {
            let kept = lock(&pool.large).put(slot, large_cache_limit());
            match kept {
                Ok(evicted) => {
                    let freed: usize = evicted.into_iter().map(|old| close_slot(pool, old)).sum();
                    if freed > 0 {
                        relock(pool); // the room the evicted slots gave back
                    }
                    return;
                }
                Err(back) => back,
            }
        } else {
            slot
        };
        if close_slot(pool, slot) > 0 {
            relock(pool); // the room it gave back
        }
    });
}

/// A slot inherited from the parent of this fork child: its slab belongs to
/// the parent's pool, which is not touched here, and it was never counted
/// in this process.
fn release_inherited(slot: PageSlot) {
    let present = slot.origin.present();
    match slot.home {
        // `Exclude`: the pages do not exist here; the range may since hold
        // someone else's mapping.
        Home::Solo(mapping) if !present => (*mapping).abandon(),
        Home::Solo(mapping) => drop(mapping),
        Home::Slab { .. } if !present => {}
        Home::Slab { .. } => {
            // SAFETY: the slot's pages are this process's private copy,
            // wiped, unreferenced; it is not counted here (`false`).
            let _ = unsafe {
                pages::close(
                    slot.data,
                    slot.data_len,
                    false,
                    slot.origin.fork,
                    &LockedBytes::default(),
                )
            };
        }
    }
}

/// The data length of the largest slot in the pool's cache of large slots
/// that is at most `max_data_len` bytes and of `kind`, if any: memory
/// a growing buffer can move to at no cost in locking.
pub(crate) fn largest_ready(max_data_len: usize, kind: Kind) -> Option<usize> {
    let large = lock(&pool().large);
    large
        .slots
        .iter()
        .filter(|s| s.fits(s.data_len, kind) && s.data_len <= max_data_len)
        .map(|s| s.data_len)
        .max()
}
