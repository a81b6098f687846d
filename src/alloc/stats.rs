//! What the crate holds, process-wide: [`locked_bytes`] and a [`Stats`]
//! snapshot.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::alloc::pool::pool;
use crate::alloc::shard::Counters;
use crate::sync::lock_std as lock;

/// Bytes of memory this crate currently holds mlocked, across all threads.
///
/// It counts whole pages: a 32-byte page-isolated box locks one 4 KiB page.
/// Boxes that [`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort)
/// could not lock are not counted. The kernel's own view of the same thing,
/// for the whole process, is `VmLck` in `/proc/self/status`; where the crate
/// is the only thing that locks memory, the two agree.
///
/// In a child made by `fork(2)` the figure starts at zero: memory locks are
/// not inherited, and boxes the child inherited are not counted there.
///
/// ```
/// let key = lockedmem::LockedBox::<[u8; 32]>::new_zeroed()?;
/// // This box's page is among the bytes counted (pages are 4 KiB or more);
/// // other threads' boxes come and go meanwhile, so no difference is exact.
/// assert!(lockedmem::locked_bytes() >= 4096);
/// drop(key);
/// # Ok::<(), lockedmem::Error>(())
/// ```
pub fn locked_bytes() -> usize {
    pool().locked.get()
}

/// A snapshot of what the crate holds, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Live page-isolated boxes (sealed ones included).
    pub page_boxes: usize,
    /// Of `page_boxes`, those not locked
    /// ([`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort) at the lock
    /// limit).
    pub page_boxes_unlocked: usize,
    /// Live packed boxes.
    pub packed_boxes: usize,
    /// Of `packed_boxes`, those on pages not locked (yet): see
    /// [`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort).
    pub packed_boxes_unlocked: usize,
    /// Bytes this crate holds mlocked: live boxes, cached slots, packed pages.
    pub locked_bytes: usize,
    /// Ready page-isolated slots in the threads' caches and the cache of
    /// large slots.
    pub cached_slots: usize,
    /// Bytes in those slots.
    pub cached_bytes: usize,
    /// Open packed pages (each holding up to 64 slots; locked ones and
    /// best-effort ones not locked yet).
    pub packed_pages: usize,
    /// Of `packed_pages`, those not locked.
    pub packed_pages_unlocked: usize,
    /// Memory mappings (lines of /proc/self/maps) the crate's pages account
    /// for: never fewer than the kernel shows for them.
    pub mappings: usize,
}

/// Takes a [`Stats`] snapshot. It locks each thread's cache in turn, so the
/// figures are consistent per thread, not across threads that are busy
/// making or dropping boxes meanwhile.
pub fn stats() -> Stats {
    let pool = pool();
    let totals = Counters::default();
    let mut st = Stats {
        locked_bytes: pool.locked.get(),
        ..Stats::default()
    };
    {
        let shards = lock(&pool.shards);
        pool.retired.add_into(&totals);
        for shard in shards.iter() {
            shard.counters.add_into(&totals);
            let (slots, bytes) = shard.cached();
            st.cached_slots += slots;
            st.cached_bytes += bytes;
        }
    }
    {
        let large = lock(&pool.large);
        st.cached_slots += large.slots.len();
        st.cached_bytes += large.bytes;
    }
    let made = totals.page_made.load(Ordering::Relaxed);
    let dropped = totals.page_dropped.load(Ordering::Relaxed);
    st.page_boxes = usize::try_from(made.wrapping_sub(dropped)).unwrap_or(0);
    st.page_boxes_unlocked = pool.unlocked_page_boxes.load(Ordering::Relaxed);
    st.packed_pages_unlocked = pool.unlocked_pages.load(Ordering::Relaxed);

    st.mappings = 3 * pool.solo.load(Ordering::Relaxed);
    for class in pool.page.iter() {
        st.mappings += lock(class).mappings();
    }
    for class in pool.packed.iter() {
        let c = lock(class);
        st.mappings += c.mappings();
        st.packed_pages += c.open_pages();
        st.packed_boxes += c.live_slots();
        st.packed_boxes_unlocked += c.live_unlocked_slots();
    }
    st
}
