//! Where page-isolated slots and packed pages come from and go back to:
//! guarded slabs, per-thread caches of ready slots, `trim`, and the counters.
//!
//! # Page-isolated slots
//!
//! A slot of `k` data pages is carved from a slab of slots of `k` pages
//! (`layout::SlabGeometry`); neighbouring slots share a guard page. A closed
//! slot is `PROT_NONE` and unlocked, indistinguishable from guard space. The
//! whole slab is advised `MADV_DONTDUMP` and its fork policy once, when it is
//! mapped, so opening a slot takes only mprotect and mlock.
//!
//! A dropped box's slot is wiped by its owner and then, if it is locked and
//! the thread's cache has room, kept as it is (read-write, locked, advised)
//! in the cache of the thread that dropped it; the next box of the same size
//! class and fork policy on that thread takes it without a system call. A
//! slot leaving the cache is munlocked, discarded (`MADV_DONTNEED`) and made
//! `PROT_NONE` again; a slab whose last slot closes is unmapped (one empty
//! slab per class is kept until [`trim`]). Values above
//! `layout::MAX_SLAB_PAGES` pages get a mapping of their own and are never
//! cached.
//!
//! # Locks, and the threads that take them
//!
//! Each thread has a [`Shard`] (its cache, its packed pages, its counters)
//! behind a mutex that only it takes in the steady state; `trim` and
//! `stats` take every shard's mutex in turn. Slabs of one size class and
//! fork policy share a mutex, taken only on the cold path. No code holds a
//! shard mutex while taking a slab mutex or making a system call, so `trim`
//! (which takes them in the other order) cannot deadlock, and an mlock
//! refused for `RLIMIT_MEMLOCK` can call `trim` and try again.
//!
//! # fork(2)
//!
//! Everything here belongs to one process *generation* (`fork::generation`).
//! A fork child finds the pool, and each thread's shard, stamped with its
//! parent's generation and starts afresh, without touching (or locking) the
//! inherited ones: their mutexes may have been held by threads that do not
//! exist in the child, and their pages are not locked there (or, under
//! `ForkPolicy::Exclude`, not mapped). What they hold is leaked in the child.
//!
//! The few process-wide values made once on first use (the canary, the
//! fork-detection page, the physical memory size) sit in `OnceLock`s: a
//! fork child of a process whose thread was making one of them at that
//! instant would wait forever for it. Make a box before forking from a
//! multi-threaded process to rule that out.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Error;
use crate::fork::{self, Origin};
use crate::layout::{MAX_SLAB_PAGES, SlabGeometry, packed_classes};
use crate::limits;
use crate::options::{ForkPolicy, LockPolicy};
use crate::packed::{PackedPage, PackedSlabs, ShardPacked};
use crate::sys::{self, Advice, Protection};

/// Default for [`set_cache_limit`]: bytes of ready slots each thread keeps.
pub const DEFAULT_CACHE_LIMIT: usize = 256 * 1024;

static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_CACHE_LIMIT);

/// Sets how many bytes of recycled, ready-to-use page-isolated slots each
/// thread may keep (default [`DEFAULT_CACHE_LIMIT`], 256 KiB: 64 one-page
/// slots). Cached slots stay mlocked and count against `RLIMIT_MEMLOCK`; the
/// crate gives them back before it would refuse a lock for that limit. `0`
/// turns caching off: every drop then unlocks and closes its slot.
///
/// Lowering the limit does not shrink caches at once; call [`trim`] for that.
pub fn set_cache_limit(bytes: usize) {
    CACHE_LIMIT.store(bytes, Ordering::Relaxed);
}

/// The current per-thread cache limit in bytes; see [`set_cache_limit`].
pub fn cache_limit() -> usize {
    CACHE_LIMIT.load(Ordering::Relaxed)
}

/// Index of a fork policy in per-policy tables.
pub(crate) fn fork_index(fork: ForkPolicy) -> usize {
    match fork {
        ForkPolicy::Wipe => 0,
        ForkPolicy::Exclude => 1,
        ForkPolicy::Keep => 2,
    }
}

const FORKS: usize = 3;

/// Locks a mutex, ignoring poison: every critical section here leaves its
/// data consistent before anything in it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Page slabs

/// One slab of page-isolated slots.
pub(crate) struct PageSlab {
    map: NonNull<u8>,
    geo: SlabGeometry,
    /// Bit `i` set: slot `i` is open (read-write, in a box or a cache) or
    /// being opened or closed by whoever set it.
    open: u64,
}

/// The slabs of one size class and fork policy.
///
/// Each slab is a `Box` turned into a raw pointer (`Box::into_raw`), so that
/// the pointers slot handles keep are never invalidated by a borrow of the
/// box; it is freed with `Box::from_raw` when the slab is unmapped, which
/// happens only when no slot of it is open. Every access to a slab's fields
/// happens under the class mutex.
#[derive(Default)]
struct ClassSlabs {
    slabs: Vec<NonNull<PageSlab>>,
}

// SAFETY: the pointers are owned (from `Box::into_raw`) and only followed
// under the class mutex.
unsafe impl Send for ClassSlabs {}

/// Where a page-isolated slot's pages came from.
pub(crate) enum Home {
    /// A mapping of its own (values above `MAX_SLAB_PAGES` pages).
    Solo { map: NonNull<u8>, map_len: usize },
    /// Slot `index` of a slab.
    Slab {
        slab: NonNull<PageSlab>,
        index: usize,
    },
}

/// Data pages of a page-isolated box, with guard pages on both sides.
///
/// Invariants: `data..data + data_len` is mapped read-write (unless a sealed
/// box changed that, see `Region`), holds no value when the slot is in a
/// cache, and is zero there; it is locked iff `locked`; nobody else holds
/// the same slot.
pub(crate) struct PageSlot {
    pub(crate) data: NonNull<u8>,
    pub(crate) data_len: usize,
    home: Home,
    pub(crate) locked: bool,
    pub(crate) origin: Origin,
}

// SAFETY: the slot owns its pages exclusively; the slab pointer is only
// followed under the class mutex (and the slab outlives every open slot).
unsafe impl Send for PageSlot {}
// SAFETY: `&PageSlot` allows reading its fields only.
unsafe impl Sync for PageSlot {}

/// The process's pool; see the module docs.
pub(crate) struct Pool {
    generation: u64,
    /// Indexed by `fork_index * MAX_SLAB_PAGES + data_pages - 1`.
    classes: Box<[Mutex<ClassSlabs>]>,
    pub(crate) packed: [Mutex<PackedSlabs>; FORKS],
    /// Every live thread's shard, for `trim` and `stats`.
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Counters of threads that have exited.
    retired: Counters,
    /// Solo mappings currently open.
    solo: AtomicUsize,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(ptr::null_mut());

/// This process generation's pool, made on first use (and afresh in a fork
/// child). Pools are never freed: a fork child leaks its parent's.
pub(crate) fn pool() -> &'static Pool {
    let generation = fork::generation();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null POOL always points at a leaked, never-freed Pool.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.generation == generation {
            return p;
        }
    }
    let fresh = Box::into_raw(Box::new(Pool::new(generation)));
    match POOL.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` was just leaked from a Box and is never freed.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never shared; take it back and free it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: as for `current` above; another thread installed it,
            // for this generation (only a fork child changes generation, and
            // it starts with one thread).
            unsafe { &*winner }
        }
    }
}

impl Pool {
    fn new(generation: u64) -> Self {
        Pool {
            generation,
            classes: (0..FORKS * MAX_SLAB_PAGES)
                .map(|_| Mutex::default())
                .collect(),
            packed: Default::default(),
            shards: Mutex::default(),
            retired: Counters::default(),
            solo: AtomicUsize::new(0),
        }
    }

    fn class(&self, fork: ForkPolicy, data_pages: usize) -> &Mutex<ClassSlabs> {
        &self.classes[fork_index(fork) * MAX_SLAB_PAGES + data_pages - 1]
    }
}

/// Advises a fresh mapping, turning `EINVAL` into [`Error::Unsupported`].
///
/// # Safety
/// `map..map + len` is a fresh mapping from `sys::map_none` that holds no
/// value and that nothing else uses yet.
pub(crate) unsafe fn advise_fresh(
    map: NonNull<u8>,
    len: usize,
    advice: Advice,
) -> Result<(), Error> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { sys::advise(map, len, advice) }.map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            Error::Unsupported {
                call: advice.name(),
                source: e,
            }
        } else {
            Error::os(advice.name(), len, e)
        }
    })
}

/// Maps `len` bytes `PROT_NONE` and advises them `MADV_DONTDUMP` and `fork`'s
/// advice; unmaps them again on failure.
pub(crate) fn map_advised(len: usize, fork: ForkPolicy) -> Result<NonNull<u8>, Error> {
    let map = sys::map_none(len).map_err(|e| Error::os("mmap", len, e))?;
    let advised = (|| {
        // SAFETY: the mapping was just made and holds nothing.
        unsafe { advise_fresh(map, len, Advice::DontDump) }?;
        match fork {
            // SAFETY: as above.
            ForkPolicy::Wipe => unsafe { advise_fresh(map, len, Advice::WipeOnFork) },
            // SAFETY: as above.
            ForkPolicy::Exclude => unsafe { advise_fresh(map, len, Advice::DontFork) },
            ForkPolicy::Keep => Ok(()),
        }
    })();
    if let Err(e) = advised {
        // SAFETY: as above; nothing refers into it.
        let _ = unsafe { sys::unmap(map, len) };
        return Err(e);
    }
    Ok(map)
}

/// Makes `data_len` bytes at `data` read-write and, as `lock` asks, locked.
/// Returns whether they are locked. On error the pages are left as they
/// were found (`PROT_NONE`, unlocked).
///
/// # Safety
/// The range is a closed slot (or the data pages of a fresh solo mapping)
/// that the caller holds exclusively.
pub(crate) unsafe fn open_pages(
    data: NonNull<u8>,
    data_len: usize,
    lock: LockPolicy,
) -> Result<bool, Error> {
    // SAFETY: forwarded: the caller holds the range exclusively.
    unsafe { sys::protect(data, data_len, Protection::ReadWrite) }
        .map_err(|e| Error::os("mprotect", data_len, e))?;
    // SAFETY: as above; the pages are readable now.
    match unsafe { lock_pages(data, data_len) } {
        Ok(()) => Ok(true),
        Err(e) => {
            // Leave none of it locked (a failed mlock may lock part).
            // SAFETY: as above.
            let _ = unsafe { sys::unlock(data, data_len) };
            if lock == LockPolicy::BestEffort {
                return Ok(false);
            }
            // SAFETY: as above; no value was placed there.
            let _ = unsafe { sys::protect(data, data_len, Protection::None) };
            Err(e)
        }
    }
}

/// mlocks pages, giving every cache's locked memory back and trying again if
/// `RLIMIT_MEMLOCK` refuses, and refusing up front what could never be
/// locked. Counts what it locked.
///
/// # Safety
/// The range is readable pages the caller holds exclusively.
pub(crate) unsafe fn lock_pages(data: NonNull<u8>, len: usize) -> Result<(), Error> {
    if !limits::lockable(len) {
        return Err(Error::os(
            "mlock",
            len,
            std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "larger than physical memory",
            ),
        ));
    }
    // SAFETY: forwarded from the caller's contract.
    let mut r = unsafe { sys::lock(data, len) };
    if let Err(e) = &r {
        if limits::is_limit_error(e) && trim_counted() > 0 {
            // SAFETY: as above.
            r = unsafe { sys::lock(data, len) };
        }
    }
    match r {
        Ok(()) => {
            limits::add_locked(len);
            Ok(())
        }
        Err(e) => Err(limits::lock_error(len, e)),
    }
}

/// Unlocks, discards and closes pages that hold nothing any more.
///
/// # Safety
/// The range is a slot's data pages, wiped, held exclusively by the caller,
/// with no reference into them.
unsafe fn close_pages(data: NonNull<u8>, len: usize, locked: bool) {
    if locked {
        // SAFETY: forwarded from the caller's contract.
        let r = unsafe { sys::unlock(data, len) };
        debug_assert!(r.is_ok(), "munlock: {r:?}");
        limits::sub_locked(len);
    }
    // SAFETY: as above; the contents are no longer needed.
    let r = unsafe { sys::advise(data, len, Advice::DontNeed) };
    debug_assert!(r.is_ok(), "madvise(MADV_DONTNEED): {r:?}");
    // SAFETY: as above; no reference into the range remains.
    let r = unsafe { sys::protect(data, len, Protection::None) };
    // Should this fail, the closed slot stays read-write but wiped and
    // discarded; its neighbours keep their guard pages, which are separate
    // pages that are never opened.
    debug_assert!(r.is_ok(), "mprotect(PROT_NONE): {r:?}");
}

/// A page-isolated slot of `data_pages` pages: from this thread's cache if it
/// has one, else opened in a slab (or, above `MAX_SLAB_PAGES`, mapped on its
/// own). Its data bytes are zero.
pub(crate) fn acquire_page_slot(
    data_pages: usize,
    map_len: usize,
    lock_policy: LockPolicy,
    fork: ForkPolicy,
) -> Result<PageSlot, Error> {
    let page = sys::page_size();
    let Some(geo) = SlabGeometry::new(data_pages, page) else {
        return open_solo(data_pages * page, map_len, lock_policy, fork);
    };
    if let Some(slot) = with_shard(|s| s.and_then(|s| s.take_cached(fork, data_pages))) {
        count(|c| &c.page_made);
        return Ok(slot);
    }
    let pool = pool();
    let (slab, index, data) = {
        let mut class = lock(pool.class(fork, data_pages));
        reserve_slot(&mut class, geo, fork)?
    };
    // SAFETY: `reserve_slot` set the slot's bit for us, so we hold it
    // exclusively; it is closed.
    match unsafe { open_pages(data, geo.data_len(), lock_policy) } {
        Ok(locked) => {
            count(|c| &c.page_made);
            Ok(PageSlot {
                data,
                data_len: geo.data_len(),
                home: Home::Slab { slab, index },
                locked,
                origin: Origin::here(fork),
            })
        }
        Err(e) => {
            let _class = lock(pool.class(fork, data_pages));
            // SAFETY: the slab outlives its open bit, which we still hold;
            // the class mutex guards `open`.
            unsafe { (*slab.as_ptr()).open &= !(1 << index) };
            Err(e)
        }
    }
}

/// Reserves a closed slot in the class's slabs, mapping a new slab if all
/// are full. Returns the slab, the slot index and its data address.
fn reserve_slot(
    class: &mut ClassSlabs,
    geo: SlabGeometry,
    fork: ForkPolicy,
) -> Result<(NonNull<PageSlab>, usize, NonNull<u8>), Error> {
    let full = geo.all_slots();
    // SAFETY: the class's slabs are live (freed only when unmapped, which
    // removes them from the list), and we hold the class mutex.
    let found = class
        .slabs
        .iter()
        .copied()
        .find(|s| unsafe { s.as_ref() }.open != full);
    let slab = match found {
        Some(s) => s,
        None => {
            let map = map_advised(geo.map_len, fork)?;
            let slab = NonNull::from(Box::leak(Box::new(PageSlab { map, geo, open: 0 })));
            class.slabs.push(slab);
            slab
        }
    };
    // SAFETY: as above; no other reference to this slab exists while we hold
    // the class mutex.
    let s = unsafe { &mut *slab.as_ptr() };
    let index = s.open.trailing_ones() as usize;
    s.open |= 1 << index;
    // SAFETY: `slot_offset(index) < map_len`: inside the slab mapping.
    let data = unsafe { s.map.add(geo.slot_offset(index)) };
    Ok((slab, index, data))
}

/// A slot in a mapping of its own: guard, data, guard.
fn open_solo(
    data_len: usize,
    map_len: usize,
    lock: LockPolicy,
    fork: ForkPolicy,
) -> Result<PageSlot, Error> {
    let page = sys::page_size();
    let map = map_advised(map_len, fork)?;
    // SAFETY: the data pages start one guard page into the fresh mapping.
    let data = unsafe { map.add(page) };
    // SAFETY: the fresh mapping is ours alone.
    match unsafe { open_pages(data, data_len, lock) } {
        Ok(locked) => {
            let pool = pool();
            pool.solo.fetch_add(1, Ordering::Relaxed);
            count(|c| &c.page_made);
            Ok(PageSlot {
                data,
                data_len,
                home: Home::Solo { map, map_len },
                locked,
                origin: Origin::here(fork),
            })
        }
        Err(e) => {
            // SAFETY: as above; nothing refers into it.
            let _ = unsafe { sys::unmap(map, map_len) };
            Err(e)
        }
    }
}

/// Takes back a wiped slot whose box is gone: into this thread's cache if it
/// is locked and there is room, else closed.
pub(crate) fn recycle_page_slot(slot: PageSlot) {
    if slot.origin.inherited() {
        release_inherited(slot);
        return;
    }
    count(|c| &c.page_dropped);
    let cacheable = slot.locked && matches!(slot.home, Home::Slab { .. });
    let slot = if cacheable {
        // No shard (the thread is being torn down): close it.
        match with_shard(|s| match s {
            Some(s) => s.put_cached(slot),
            None => Some(slot),
        }) {
            None => return,
            Some(back) => back,
        }
    } else {
        slot
    };
    close_slot(slot);
}

/// Closes a slot of this generation: unlock, discard, `PROT_NONE`, and give
/// it back to its slab (unmapping a slab left empty if another empty one
/// remains) or unmap a solo mapping.
fn close_slot(slot: PageSlot) {
    // SAFETY: the slot is wiped, held by us alone, and no reference into it
    // remains (its box is gone).
    unsafe { close_pages(slot.data, slot.data_len, slot.locked) };
    match slot.home {
        Home::Solo { map, map_len } => {
            // SAFETY: the solo mapping is ours alone and closed.
            let r = unsafe { sys::unmap(map, map_len) };
            debug_assert!(r.is_ok(), "munmap: {r:?}");
            pool().solo.fetch_sub(1, Ordering::Relaxed);
        }
        Home::Slab { slab, index } => {
            let pool = pool();
            let data_pages = slot.data_len / sys::page_size();
            let mut class = lock(pool.class(slot.origin.fork, data_pages));
            // SAFETY: the slab outlives its open bit, which we still hold;
            // the class mutex guards `open`.
            unsafe { (*slab.as_ptr()).open &= !(1 << index) };
            unmap_empty_slabs(&mut class, 1);
        }
    }
}

/// Unmaps empty slabs of a class beyond the first `keep`.
fn unmap_empty_slabs(class: &mut ClassSlabs, keep: usize) -> usize {
    let mut kept = 0;
    let mut unmapped = 0;
    class.slabs.retain(|&p| {
        // SAFETY: listed slabs are live; we hold the class mutex.
        let s = unsafe { p.as_ref() };
        if s.open != 0 {
            return true;
        }
        if kept < keep {
            kept += 1;
            return true;
        }
        // SAFETY: no slot of the slab is open, so nothing refers into its
        // mapping and no handle points at the slab.
        let r = unsafe { sys::unmap(s.map, s.geo.map_len) };
        debug_assert!(r.is_ok(), "munmap: {r:?}");
        // SAFETY: the slab came from `Box::into_raw` (via `Box::leak`), is
        // dropped from the list here and referred to by nobody.
        drop(unsafe { Box::from_raw(p.as_ptr()) });
        unmapped += 1;
        false
    });
    unmapped
}

/// A slot inherited from the parent of this fork child: its slab and cache
/// belong to the parent's pool, which is not touched here.
fn release_inherited(slot: PageSlot) {
    if !slot.origin.present() {
        // `Exclude`: the pages do not exist here; the range may since hold
        // someone else's mapping. Only the copied counter is adjusted.
        if slot.locked {
            limits::sub_locked(slot.data_len);
        }
        return;
    }
    // SAFETY: the slot's pages are ours in this process (a private copy),
    // wiped, unreferenced.
    unsafe { close_pages(slot.data, slot.data_len, slot.locked) };
    if let Home::Solo { map, map_len } = slot.home {
        // SAFETY: as above.
        let _ = unsafe { sys::unmap(map, map_len) };
    }
}

// ---------------------------------------------------------------------------
// Shards: per-thread caches and counters

/// Per-thread counters, written only by their thread (plain loads and
/// stores), read by `stats` from any thread.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) page_made: AtomicU64,
    pub(crate) page_dropped: AtomicU64,
    pub(crate) packed_made: AtomicU64,
    pub(crate) packed_dropped: AtomicU64,
}

/// Adds one to a counter that only the calling thread writes.
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Adds one to this thread's counter `which`, or to the pool's shared one
/// while the thread is being torn down.
pub(crate) fn count(which: impl Fn(&Counters) -> &AtomicU64) {
    with_shard(|s| match s {
        Some(s) => bump(which(&s.counters)),
        None => {
            which(&pool().retired).fetch_add(1, Ordering::Relaxed);
        }
    });
}

impl Counters {
    fn add_into(&self, other: &Counters) {
        for (mine, theirs) in [
            (&self.page_made, &other.page_made),
            (&self.page_dropped, &other.page_dropped),
            (&self.packed_made, &other.packed_made),
            (&self.packed_dropped, &other.packed_dropped),
        ] {
            theirs.fetch_add(mine.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// One thread's cache, packed pages and counters.
pub(crate) struct Shard {
    generation: u64,
    pub(crate) state: Mutex<ShardState>,
    pub(crate) counters: Counters,
}

#[derive(Default)]
pub(crate) struct ShardState {
    /// Ready slots, indexed like `Pool::classes`.
    cache: Vec<Vec<PageSlot>>,
    cached_bytes: usize,
    pub(crate) packed: ShardPacked,
}

impl Shard {
    fn new(generation: u64) -> Self {
        let page = sys::page_size();
        Shard {
            generation,
            state: Mutex::new(ShardState {
                cache: (0..FORKS * MAX_SLAB_PAGES).map(|_| Vec::new()).collect(),
                cached_bytes: 0,
                packed: ShardPacked::new(FORKS * packed_classes(page)),
            }),
            counters: Counters::default(),
        }
    }

    fn take_cached(&self, fork: ForkPolicy, data_pages: usize) -> Option<PageSlot> {
        let mut st = lock(&self.state);
        let slot = st.cache[fork_index(fork) * MAX_SLAB_PAGES + data_pages - 1].pop()?;
        st.cached_bytes -= slot.data_len;
        Some(slot)
    }

    /// Caches `slot`, or hands it back if the cache is full.
    fn put_cached(&self, slot: PageSlot) -> Option<PageSlot> {
        let mut st = lock(&self.state);
        if st.cached_bytes + slot.data_len > cache_limit() {
            return Some(slot);
        }
        st.cached_bytes += slot.data_len;
        let data_pages = slot.data_len / sys::page_size();
        st.cache[fork_index(slot.origin.fork) * MAX_SLAB_PAGES + data_pages - 1].push(slot);
        None
    }

    /// Takes everything out of the cache, and the packed pages that are
    /// empty, for the caller to close without holding the shard's mutex.
    fn drain(&self) -> (Vec<PageSlot>, Vec<NonNull<PackedPage>>) {
        let mut st = lock(&self.state);
        st.cached_bytes = 0;
        let slots = st.cache.iter_mut().flat_map(std::mem::take).collect();
        let pages = st.packed.take_empty();
        (slots, pages)
    }
}

/// This thread's handle on its shard; on thread exit it gives the cache
/// back and leaves its packed pages to the pool.
struct ShardHandle(Arc<Shard>);

impl Drop for ShardHandle {
    fn drop(&mut self) {
        let shard = &self.0;
        if shard.generation != fork::generation() {
            return; // a parent's shard in a fork child: leave it alone
        }
        let pool = pool();
        let (slots, empty) = shard.drain();
        for slot in slots {
            close_slot(slot);
        }
        crate::packed::close_pages_of(pool, empty);
        let in_use = lock(&shard.state).packed.take_all();
        crate::packed::orphan(pool, in_use);
        // Under the registry's mutex, so that `stats` sees the counters
        // either in the shard or in `retired`, never in both or neither.
        let mut shards = lock(&pool.shards);
        shard.counters.add_into(&pool.retired);
        shards.retain(|s| !Arc::ptr_eq(s, shard));
    }
}

thread_local! {
    static SHARD: RefCell<Option<ShardHandle>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's shard (made on first use, and afresh in a fork
/// child), or on `None` if the thread is being torn down and has none.
/// `f` must not call `with_shard` itself.
pub(crate) fn with_shard<R>(f: impl FnOnce(Option<&Shard>) -> R) -> R {
    let mut f = Some(f);
    let r = SHARD.try_with(|cell| {
        let Ok(mut handle) = cell.try_borrow_mut() else {
            return None;
        };
        let generation = fork::generation();
        if handle.as_ref().is_none_or(|h| h.0.generation != generation) {
            // A parent's shard is forgotten, never dropped: see the module docs.
            if let Some(old) = handle.take() {
                std::mem::forget(old);
            }
            let shard = Arc::new(Shard::new(generation));
            lock(&pool().shards).push(Arc::clone(&shard));
            *handle = Some(ShardHandle(shard));
        }
        let shard = &handle.as_ref().expect("set above").0;
        Some((f.take().expect("called once"))(Some(shard)))
    });
    match r {
        Ok(Some(r)) => r,
        _ => (f.take().expect("not called yet"))(None),
    }
}

// ---------------------------------------------------------------------------
// trim and stats

/// Gives back every cached slot and every empty packed page, in every
/// thread, and unmaps every slab left empty. Afterwards, with no box alive,
/// the process's `VmLck` and mapping count are back where they were before
/// the first box (but for one page the crate keeps to detect fork(2)).
///
/// The crate calls it itself before it would refuse an mlock for
/// `RLIMIT_MEMLOCK`, so a cache never causes [`Error::MemlockLimit`].
pub fn trim() {
    trim_counted();
}

/// `trim`, returning how many bytes of locked memory it gave back.
fn trim_counted() -> usize {
    let before = limits::locked_bytes();
    let pool = pool();
    let shards: Vec<Arc<Shard>> = lock(&pool.shards).clone();
    for shard in shards {
        let (slots, pages) = shard.drain();
        for slot in slots {
            close_slot(slot);
        }
        crate::packed::close_pages_of(pool, pages);
    }
    crate::packed::trim(pool);
    for class in pool.classes.iter() {
        unmap_empty_slabs(&mut lock(class), 0);
    }
    before.saturating_sub(limits::locked_bytes())
}

/// A snapshot of what the crate holds, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Live page-isolated boxes (sealed ones included).
    pub page_boxes: usize,
    /// Live packed boxes.
    pub packed_boxes: usize,
    /// Bytes this crate holds mlocked: live boxes, cached slots, packed pages.
    pub locked_bytes: usize,
    /// Ready page-isolated slots in the threads' caches.
    pub cached_slots: usize,
    /// Bytes in those slots.
    pub cached_bytes: usize,
    /// Memory mappings (VMAs) the crate's pages account for, at most: the
    /// kernel merges some of them with neighbours, so /proc/self/maps may
    /// show fewer.
    pub mappings: usize,
}

/// Takes a [`Stats`] snapshot. It locks each thread's cache in turn, so the
/// figures are consistent per thread, not across threads that are busy
/// making or dropping boxes meanwhile.
pub fn stats() -> Stats {
    let pool = pool();
    let totals = Counters::default();
    let mut st = Stats {
        locked_bytes: limits::locked_bytes(),
        ..Stats::default()
    };
    let shards = lock(&pool.shards);
    pool.retired.add_into(&totals);
    for shard in shards.iter() {
        shard.counters.add_into(&totals);
        let state = lock(&shard.state);
        st.cached_slots += state.cache.iter().map(Vec::len).sum::<usize>();
        st.cached_bytes += state.cached_bytes;
    }
    let live = |made: &AtomicU64, dropped: &AtomicU64| {
        let n = made
            .load(Ordering::Relaxed)
            .wrapping_sub(dropped.load(Ordering::Relaxed));
        usize::try_from(n).unwrap_or(0)
    };
    st.page_boxes = live(&totals.page_made, &totals.page_dropped);
    st.packed_boxes = live(&totals.packed_made, &totals.packed_dropped);
    // A slab is one mapping, split in two more by each open slot.
    for class in pool.classes.iter() {
        st.mappings += lock(class)
            .slabs
            .iter()
            // SAFETY: listed slabs are live; we hold the class mutex.
            .map(|s| 1 + 2 * unsafe { s.as_ref() }.open.count_ones() as usize)
            .sum::<usize>();
    }
    st.mappings += 3 * pool.solo.load(Ordering::Relaxed);
    st.mappings += crate::packed::mappings(pool);
    st
}
