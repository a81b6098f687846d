//! Claiming and freeing packed slots: on the page this thread holds for the
//! class (no lock), else through the class (`packed_slab::claim_slow`), on
//! a locked page or, under [`LockPolicy::BestEffort`] when no page can be
//! locked, on a best-effort page of the class's unlocked twin.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::alloc::keys::{Kind, is_unlocked_key, packed_key, unlocked_key};
use crate::alloc::local::{Local, held_page, with_local};
use crate::alloc::packed_slab::{self, PageMeta, SlowClaim};
use crate::alloc::pages;
use crate::alloc::pool::{Pool, note_partial, pool};
use crate::alloc::room::locked_memory_is_scarce;
use crate::alloc::secret_files::SecretFile;
use crate::alloc::trim::reclaim;
use crate::error::Error;
use crate::policy::LockPolicy;
use crate::sync::lock_std as lock;

/// A claimed packed slot: slot `index` of `page`.
pub(crate) struct PackedClaim {
    pub(crate) page: &'static PageMeta,
    pub(crate) index: usize,
}

/// Claims a slot of size class `class` (see `layout::PackedLayout::class`)
/// on a locked packed page; under [`LockPolicy::BestEffort`], if no page can
/// be locked, on a best-effort page of the class's unlocked twin (see
/// [`unlocked_key`]), which the claim's page reports.
#[inline]
pub(crate) fn claim_packed(
    class: usize,
    lock_policy: LockPolicy,
    kind: Kind,
) -> Result<PackedClaim, Error> {
    let key = packed_key(kind, class);
    if let Some(page) = held_page(key) {
        if let Some(index) = page.claim() {
            return Ok(PackedClaim { page, index });
        }
    }
    // Secret memory is locked, or not at all.
    let lock_policy = if kind.secret {
        LockPolicy::Require
    } else {
        lock_policy
    };
    if lock_policy == LockPolicy::BestEffort {
        let pool = pool();
        // At the limit, with no locked page of the class known to have room,
        // trying to lock would only fail (after a `trim`).
        if pool.locked.at_limit() && !pool.partial_hint[key].load(Ordering::Relaxed) {
            return claim_unlocked(key);
        }
    }
    match with_local(|local, pool| claim_packed_slow(pool, key, local, lock_policy))? {
        Some(claim) => Ok(claim),
        None => claim_unlocked(key),
    }
}

/// Claims a slot on a best-effort page of the locked class `key`'s twin.
fn claim_unlocked(key: usize) -> Result<PackedClaim, Error> {
    let twin = unlocked_key(key);
    if let Some(page) = held_page(twin) {
        if let Some(index) = page.claim() {
            return Ok(PackedClaim { page, index });
        }
    }
    let claim =
        with_local(|local, pool| claim_packed_slow(pool, twin, local, LockPolicy::BestEffort))?;
    Ok(claim.expect("only a locked class gives up on a best-effort claim"))
}

#[cold]
fn claim_packed_slow(
    pool: &'static Pool,
    key: usize,
    local: Option<&Local>,
    lock_policy: LockPolicy,
) -> Result<Option<PackedClaim>, Error> {
    let me = local.map_or(0, |l| l.token.get());
    let held = local.map(|l| &l.held[key]);
    let class = &pool.packed[key];
    let unlocked = is_unlocked_key(key);
    // A page of the best-effort twin is locked if the limit leaves room,
    // else opened without the lock.
    let open_policy = if unlocked {
        LockPolicy::BestEffort
    } else {
        LockPolicy::Require
    };
    let mut open = |page: &'static PageMeta, fork, file: Option<&SecretFile>| {
        // SAFETY: `reserve` marked the closed page open for us alone (its
        // bits stay full, so nobody claims on it or closes it meanwhile);
        // `file` is its slab's.
        let opened = unsafe {
            pages::open(
                page.addr(),
                pool.page_size,
                open_policy.into(),
                fork,
                &pool.locked,
                &reclaim,
                file,
            )
        };
        if matches!(opened, Ok(false)) {
            pool.unlocked_pages.fetch_add(1, Ordering::Relaxed);
        }
        opened
    };
    let claimed = packed_slab::claim_slow(
        &|| lock(class),
        me,
        held.and_then(Cell::take),
        &|| locked_memory_is_scarce(pool),
        &mut open,
        &|c| note_partial(pool, key, c),
    );
    match claimed {
        Ok(SlowClaim { page, index, holds }) => {
            if holds {
                match held {
                    Some(h) => h.set(Some(page)),
                    // The thread is being torn down: give the page up.
                    None => {
                        let mut c = lock(class);
                        c.unhold(page, me);
                        note_partial(pool, key, &c);
                    }
                }
            }
            Ok(Some(PackedClaim { page, index }))
        }
        Err(_) if lock_policy == LockPolicy::BestEffort && !unlocked => {
            Ok(None) // the caller claims on the twin
        }
        Err(error) => Err(error),
    }
}

/// Frees slot `index` of `page`, whose bytes the caller has wiped; the slot
/// was claimed in this process generation. Takes no lock unless the slot's
/// word was full (the page may need listing as partial).
#[inline]
pub(crate) fn free_packed(page: &'static PageMeta, index: usize) {
    if page.free(index) {
        freed_on_full(page);
    }
}

#[cold]
fn freed_on_full(page: &'static PageMeta) {
    let pool = pool();
    let mut c = lock(&pool.packed[page.class]);
    c.freed_on_full(page);
    note_partial(pool, page.class, &c);
}
