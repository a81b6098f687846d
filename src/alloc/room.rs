//! Room under `RLIMIT_MEMLOCK` as the pool sees it: what the limit leaves
//! beside the crate's locked bytes, the room a required lock can count on
//! (the caches' ready slots included), and whether locked memory is scarce.
#![forbid(unsafe_code)]

use crate::alloc::pool::{Pool, pool};
use crate::os;
use crate::sync::lock_std as lock;

/// Bytes `RLIMIT_MEMLOCK` leaves beside what this crate holds locked and
/// the room it keeps for required locks; `None` where no limit binds
/// (unlimited, or the process has `CAP_IPC_LOCK`). Memory others in the
/// process lock is not seen (a refused mlock tells).
pub(super) fn room_under_limit(pool: &Pool) -> Option<usize> {
    let soft = crate::limits::memlock_limit().soft?;
    if os::has_cap_ipc_lock().unwrap_or(false) {
        return None;
    }
    let held = pool.locked.get() + pool.locked.kept();
    Some(
        usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(held),
    )
}

/// Bytes more the crate can lock for a lock it requires before
/// `RLIMIT_MEMLOCK` refuses: the room the limit leaves (the room kept for
/// required locks included), with the ready slots of the caches counted as
/// room (they are given back before a lock is refused). `None` where no
/// limit binds. Takes each thread's cache lock in turn, and the large
/// cache's.
pub(crate) fn lock_room() -> Option<usize> {
    let pool = pool();
    let room = room_under_limit(pool)?.saturating_add(pool.locked.kept());
    let shards: Vec<_> = lock(&pool.shards).clone();
    let cached: usize =
        shards.iter().map(|s| s.cached().1).sum::<usize>() + lock(&pool.large).bytes;
    Some(room.saturating_add(cached))
}

/// Room under `RLIMIT_MEMLOCK`, in pages, below which a thread takes free
/// packed slots on pages other threads hold before it opens a page of its
/// own (see `packed_slab`): 64 pages, 256 KiB with 4 KiB pages. Under a
/// limit that small, every packed page is shared; under a larger one, only
/// the last 256 KiB are.
const SHARE_BELOW_PAGES: usize = 64;

/// Whether locked memory is scarce: a lock was refused at the crate's
/// present count of locked bytes, or `RLIMIT_MEMLOCK` (which binds a
/// process without `CAP_IPC_LOCK`) leaves room for fewer than
/// [`SHARE_BELOW_PAGES`] pages above the crate's locked bytes. Costs a
/// getrlimit(2), and a capget(2) near the limit: asked only before a packed
/// page would be opened while another thread's page of its class has room.
pub(super) fn locked_memory_is_scarce(pool: &Pool) -> bool {
    if pool.locked.at_limit() {
        return true;
    }
    let Some(soft) = crate::limits::memlock_limit().soft else {
        return false;
    };
    let room = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(pool.locked.get());
    room < SHARE_BELOW_PAGES * pool.page_size && !os::has_cap_ipc_lock().unwrap_or(false)
}
