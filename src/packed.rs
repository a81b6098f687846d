//! Packed boxes: small values sharing locked, guarded pages, each in a slot
//! of its own between two canaries (see `layout::PackedLayout`).
//!
//! Pages come from packed slabs: one mapping per slab, `PROT_NONE` guard
//! pages at both ends, `MADV_DONTDUMP` and the fork policy's advice on all of
//! it; a page is opened (read-write, mlocked) when a thread needs one and
//! closed again by [`trim`](crate::trim). Open neighbouring pages merge into
//! one mapping, so a slab costs about three.
//!
//! Each open page belongs to the thread that opened it, which alone claims
//! slots on it, under its shard's mutex. Any thread frees a slot, without a
//! lock: it checks the canaries, wipes the slot and then clears the slot's
//! bit, after which it touches neither the slot nor the page's metadata
//! again. Page metadata lives as long as its slab, and a slab is unmapped
//! only when none of its pages is open.
//!
//! Metadata (slot size, the bitmap of used slots) lives on the heap, outside
//! the pages: an overflow in the pages cannot rewrite it.
#![allow(unsafe_code)]

use std::io;
use std::process;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;
use crate::fork::Origin;
use crate::layout::{CANARY_LEN, PackedLayout, packed_classes};
use crate::options::{ForkPolicy, LockPolicy};
use crate::pool::{self, Pool, bump, fork_index, lock};
use crate::region::{Residency, expected_canary, process_canary, wipe};
use crate::sys::{self, Advice, Protection};

/// Pages per packed slab (between its two guard pages).
const SLAB_PAGES: usize = 256;

/// Metadata of one page of a packed slab.
pub(crate) struct PackedPage {
    addr: NonNull<u8>,
    /// The slab, whose `open` bits are only touched under the pool mutex of
    /// its fork policy.
    slab: NonNull<PackedSlab>,
    index: usize,
    /// The slab's fork policy (copied, so that nobody needs to borrow the
    /// slab to find which mutex guards it).
    fork: ForkPolicy,
    /// One bit per slot, set while the slot holds a value.
    used: Box<[AtomicU64]>,
}

// SAFETY: the metadata is atomics plus addresses; the page's bytes are only
// touched by the holder of a slot's bit.
unsafe impl Send for PackedPage {}
// SAFETY: as above; shared access goes through the atomics.
unsafe impl Sync for PackedPage {}

impl PackedPage {
    /// Claims a free slot; `slots` is the number of slots on the page.
    fn claim(&self, slots: usize) -> Option<usize> {
        for (w, word) in self.used.iter().enumerate() {
            let base = w * 64;
            if base >= slots {
                break;
            }
            let mask = if slots - base >= 64 {
                u64::MAX
            } else {
                (1u64 << (slots - base)) - 1
            };
            let mut cur = word.load(Ordering::Acquire);
            loop {
                let free = !cur & mask;
                if free == 0 {
                    break;
                }
                let bit = free.trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    cur,
                    cur | 1 << bit,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Some(base + bit),
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.used.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }
}

/// One packed slab.
pub(crate) struct PackedSlab {
    map: NonNull<u8>,
    map_len: usize,
    /// Bit per page: open (or being opened or closed by whoever set it).
    open: Vec<u64>,
    /// Boxed so that page metadata never moves while the slab lives.
    pages: Box<[PackedPage]>,
}

impl PackedSlab {
    fn open_count(&self) -> usize {
        self.open.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Runs of consecutive open pages: each splits the slab's mapping in two
    /// more.
    fn open_runs(&self) -> usize {
        (0..SLAB_PAGES)
            .filter(|&i| self.is_open(i) && (i == 0 || !self.is_open(i - 1)))
            .count()
    }

    fn is_open(&self, i: usize) -> bool {
        self.open[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The packed slabs of one fork policy, and pages whose thread has exited.
///
/// Each slab is a `Box` turned into a raw pointer, freed when the slab is
/// unmapped (only when none of its pages is open), so that the pointers page
/// metadata and slot handles keep stay valid; every access to a slab's
/// `open` bits happens under this struct's mutex.
#[derive(Default)]
pub(crate) struct PackedSlabs {
    slabs: Vec<NonNull<PackedSlab>>,
    /// Open pages whose owner thread exited while they still held values.
    orphans: Vec<NonNull<PackedPage>>,
}

// SAFETY: the slab pointers are owned (from `Box::leak`) and, like the
// orphan pointers into their pages, only followed under this struct's mutex
// or through the atomics of page metadata.
unsafe impl Send for PackedSlabs {}

/// A thread's open packed pages, per fork policy and size class.
#[derive(Default)]
pub(crate) struct ShardPacked {
    classes: Vec<ClassPages>,
}

// SAFETY: the pointers point at page metadata that outlives their presence
// in these lists (a page is only closed after it is taken out of them).
unsafe impl Send for ShardPacked {}

#[derive(Default)]
struct ClassPages {
    pages: Vec<NonNull<PackedPage>>,
    /// Where the next claim starts looking.
    cursor: usize,
}

impl ShardPacked {
    pub(crate) fn new(classes: usize) -> Self {
        ShardPacked {
            classes: (0..classes).map(|_| ClassPages::default()).collect(),
        }
    }

    /// Claims a slot on one of the class's pages, trying each page once,
    /// from the cursor on: a new page is opened (and locked) only when every
    /// page of the class is full. In the steady state the cursor's page has
    /// the slot freed last.
    fn claim(&mut self, class: usize, slots: usize) -> Option<(NonNull<PackedPage>, usize)> {
        let cp = &mut self.classes[class];
        let n = cp.pages.len();
        for step in 0..n {
            let i = (cp.cursor + step) % n;
            let page = cp.pages[i];
            // SAFETY: pages in the list are open and their metadata alive.
            if let Some(slot) = unsafe { page.as_ref() }.claim(slots) {
                cp.cursor = i;
                return Some((page, slot));
            }
        }
        None
    }

    fn push(&mut self, class: usize, page: NonNull<PackedPage>) {
        let cp = &mut self.classes[class];
        cp.pages.push(page);
        cp.cursor = cp.pages.len() - 1;
    }

    /// Removes and returns the pages that hold no value.
    pub(crate) fn take_empty(&mut self) -> Vec<NonNull<PackedPage>> {
        let mut empty = Vec::new();
        for cp in &mut self.classes {
            cp.pages.retain(|p| {
                // SAFETY: as in `claim`. A page found empty here stays empty:
                // only this shard claims slots on it, and we hold its mutex.
                let keep = !unsafe { p.as_ref() }.is_empty();
                if !keep {
                    empty.push(*p);
                }
                keep
            });
            cp.cursor = cp.cursor.min(cp.pages.len().saturating_sub(1));
        }
        empty
    }

    /// Removes and returns every page.
    pub(crate) fn take_all(&mut self) -> Vec<NonNull<PackedPage>> {
        self.classes
            .iter_mut()
            .flat_map(|cp| std::mem::take(&mut cp.pages))
            .collect()
    }
}

/// A packed box's slot.
pub(crate) struct PackedSlot {
    page: NonNull<PackedPage>,
    index: usize,
    /// First byte of the slot.
    slot: NonNull<u8>,
    pub(crate) layout: PackedLayout,
    origin: Origin,
}

// SAFETY: the slot's bytes belong to this handle alone; the page metadata is
// touched through atomics only.
unsafe impl Send for PackedSlot {}
// SAFETY: `&PackedSlot` only reads.
unsafe impl Sync for PackedSlot {}

/// Makes a packed slot for `layout`, its canaries written and its value
/// bytes zero.
///
/// `Ok(None)` if the slot's page could not be locked under
/// [`LockPolicy::BestEffort`]: the caller then makes a page-isolated box
/// (packed pages are always locked, so no unlocked value shares a page with
/// locked ones).
pub(crate) fn alloc(
    layout: PackedLayout,
    lock_policy: LockPolicy,
    fork: ForkPolicy,
) -> Result<Option<PackedSlot>, Error> {
    let page_size = sys::page_size();
    let class = fork_index(fork) * packed_classes(page_size) + layout.class();
    let slots = layout.slots_per_page(page_size);
    let claimed = pool::with_shard(|shard| {
        let claimed = lock(&shard?.state).packed.claim(class, slots);
        if claimed.is_some() {
            bump(&shard?.counters.packed_made);
        }
        claimed
    });
    let (page, index) = match claimed {
        Some(c) => c,
        None => {
            let page = match open_page(fork) {
                Ok(p) => p,
                Err(Error::MemlockLimit { .. }) if lock_policy == LockPolicy::BestEffort => {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            // SAFETY: the page was just opened for us; its metadata is alive.
            let index = unsafe { page.as_ref() }
                .claim(slots)
                .expect("a fresh page has free slots");
            let owned = pool::with_shard(|shard| match shard {
                Some(shard) => {
                    lock(&shard.state).packed.push(class, page);
                    true
                }
                None => false,
            });
            if !owned {
                // The thread is exiting: the page goes to the pool's orphans.
                lock(&pool::pool().packed[fork_index(fork)])
                    .orphans
                    .push(page);
            }
            pool::count(|c| &c.packed_made);
            (page, index)
        }
    };
    // SAFETY: the page is open and its metadata alive.
    let addr = unsafe { page.as_ref() }.addr;
    // SAFETY: `index < slots`, so the slot lies inside the page.
    let slot = unsafe { addr.add(index * layout.slot_size) };
    let s = PackedSlot {
        page,
        index,
        slot,
        layout,
        origin: Origin::here(fork),
    };
    let canary = process_canary();
    // SAFETY: we hold the slot's bit, so its bytes are ours; both canaries
    // lie inside the slot (see `PackedLayout`); `[u8; N]` has alignment 1.
    unsafe { s.front().write(*canary) };
    // SAFETY: as above.
    unsafe { s.back().write(*canary) };
    Ok(Some(s))
}

/// Opens a page in one of the fork policy's packed slabs.
fn open_page(fork: ForkPolicy) -> Result<NonNull<PackedPage>, Error> {
    let page_size = sys::page_size();
    let pool = pool::pool();
    let page = {
        let mut slabs = lock(&pool.packed[fork_index(fork)]);
        reserve_page(&mut slabs, fork)?
    };
    // SAFETY: metadata of a page we reserved; alive while the slab lives.
    let meta = unsafe { page.as_ref() };
    // SAFETY: `reserve_page` set the page's open bit for us: we hold the
    // closed page exclusively.
    let opened = unsafe { pool::open_pages(meta.addr, page_size, LockPolicy::Require) };
    match opened {
        Ok(_) => Ok(page),
        Err(e) => {
            let _slabs = lock(&pool.packed[fork_index(fork)]);
            // SAFETY: under the pool mutex, which guards `open`; the slab
            // outlives the bit we still hold.
            unsafe { clear_open(meta) };
            Err(e)
        }
    }
}

/// Reserves a closed page, mapping a new slab if every page is open.
fn reserve_page(slabs: &mut PackedSlabs, fork: ForkPolicy) -> Result<NonNull<PackedPage>, Error> {
    let page_size = sys::page_size();
    let found = slabs.slabs.iter().copied().find(|s| {
        // SAFETY: listed slabs are live, and we hold the mutex that guards
        // their `open` bits.
        unsafe { s.as_ref() }.open_count() < SLAB_PAGES
    });
    let slab = match found {
        Some(s) => s,
        None => {
            let map_len = (SLAB_PAGES + 2) * page_size;
            let map = pool::map_advised(map_len, fork)?;
            let used_words = (page_size / crate::layout::PACKED_MIN_SLOT).div_ceil(64);
            let slab = NonNull::from(Box::leak(Box::new(PackedSlab {
                map,
                map_len,
                open: vec![0; SLAB_PAGES.div_ceil(64)],
                pages: Box::new([]),
            })));
            let pages: Box<[PackedPage]> = (0..SLAB_PAGES)
                .map(|i| PackedPage {
                    // SAFETY: page `i` starts `(i + 1)` pages into the
                    // mapping (after the leading guard), inside it.
                    addr: unsafe { map.add((i + 1) * page_size) },
                    slab,
                    index: i,
                    fork,
                    used: (0..used_words).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect();
            // SAFETY: the slab was just allocated; nothing else refers to it.
            unsafe { (*slab.as_ptr()).pages = pages };
            slabs.slabs.push(slab);
            slab
        }
    };
    // SAFETY: see above; no other reference to this slab's fields is alive
    // while we hold the mutex (page metadata lives in a separate allocation).
    let s = unsafe { &mut *slab.as_ptr() };
    let i = (0..SLAB_PAGES)
        .find(|&i| !s.is_open(i))
        .expect("a slab with a closed page");
    s.open[i / 64] |= 1 << (i % 64);
    Ok(NonNull::from(&s.pages[i]))
}

/// Clears a page's open bit in its slab.
///
/// # Safety
/// The caller holds the pool mutex of the page's fork policy, and the page's
/// slab is alive (it is, while the bit is set).
unsafe fn clear_open(meta: &PackedPage) {
    // SAFETY: forwarded; only the `open` field is borrowed, so page metadata
    // read concurrently by other threads is not aliased.
    let open = unsafe { &mut (*meta.slab.as_ptr()).open };
    open[meta.index / 64] &= !(1 << (meta.index % 64));
}

/// Closes pages that hold no value and that no shard lists any more.
pub(crate) fn close_pages_of(pool: &Pool, pages: Vec<NonNull<PackedPage>>) {
    let page_size = sys::page_size();
    for page in pages {
        // SAFETY: the page's metadata is alive until its slab is unmapped,
        // which needs this page closed first.
        let meta = unsafe { page.as_ref() };
        debug_assert!(meta.is_empty());
        // SAFETY: every slot is free and wiped, no shard can claim one (the
        // page is in no list), so the page is ours alone and unreferenced.
        unsafe { close_page_memory(meta.addr, page_size) };
        let _slabs = lock(&pool.packed[fork_index(meta.fork)]);
        // SAFETY: under the pool mutex, which guards `open`; the slab
        // outlives its open pages.
        unsafe { clear_open(meta) };
    }
}

/// munlock, `MADV_DONTNEED`, `PROT_NONE` for one packed page.
///
/// # Safety
/// The page is open, locked, holds no value and is referenced by nobody.
unsafe fn close_page_memory(addr: NonNull<u8>, len: usize) {
    // SAFETY: forwarded from the caller's contract.
    let r = unsafe { sys::unlock(addr, len) };
    debug_assert!(r.is_ok(), "munlock: {r:?}");
    crate::limits::sub_locked(len);
    // SAFETY: as above.
    let r = unsafe { sys::advise(addr, len, Advice::DontNeed) };
    debug_assert!(r.is_ok(), "madvise(MADV_DONTNEED): {r:?}");
    // SAFETY: as above.
    let r = unsafe { sys::protect(addr, len, Protection::None) };
    debug_assert!(r.is_ok(), "mprotect(PROT_NONE): {r:?}");
}

/// Hands pages of an exiting thread to the pool.
pub(crate) fn orphan(pool: &Pool, pages: Vec<NonNull<PackedPage>>) {
    for page in pages {
        // SAFETY: as in `close_pages_of`.
        let fork = unsafe { page.as_ref() }.fork;
        lock(&pool.packed[fork_index(fork)]).orphans.push(page);
    }
}

/// Closes orphaned pages that have emptied and unmaps slabs with no open page.
pub(crate) fn trim(pool: &Pool) {
    for slabs in &pool.packed {
        let empty: Vec<_> = {
            let mut s = lock(slabs);
            let mut empty = Vec::new();
            s.orphans.retain(|p| {
                // SAFETY: orphan metadata is alive (its page is open). No
                // shard claims slots on an orphan: once empty it stays empty.
                let keep = !unsafe { p.as_ref() }.is_empty();
                if !keep {
                    empty.push(*p);
                }
                keep
            });
            empty
        };
        close_pages_of(pool, empty);
        let mut s = lock(slabs);
        s.slabs.retain(|&p| {
            // SAFETY: listed slabs are live; we hold their mutex.
            let slab = unsafe { p.as_ref() };
            if slab.open_count() > 0 {
                return true;
            }
            // SAFETY: no page of the slab is open: nothing refers into its
            // mapping, and no handle or list points at its metadata.
            let r = unsafe { sys::unmap(slab.map, slab.map_len) };
            debug_assert!(r.is_ok(), "munmap: {r:?}");
            // SAFETY: the slab came from `Box::leak`, leaves the list here
            // and is referred to by nobody.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
            false
        });
    }
}

/// Mappings the packed slabs account for.
pub(crate) fn mappings(pool: &Pool) -> usize {
    pool.packed
        .iter()
        .map(|s| {
            lock(s)
                .slabs
                .iter()
                // SAFETY: listed slabs are live; we hold their mutex.
                .map(|slab| 1 + 2 * unsafe { slab.as_ref() }.open_runs())
                .sum::<usize>()
        })
        .sum()
}

impl PackedSlot {
    /// The first byte of the value.
    pub(crate) fn value_ptr(&self) -> NonNull<u8> {
        // SAFETY: `value_offset <= slot_size`: inside the slot (or one past
        // its value area for a zero-sized value, still inside the slot).
        unsafe { self.slot.add(self.layout.value_offset) }
    }

    fn front(&self) -> NonNull<[u8; CANARY_LEN]> {
        self.slot.cast()
    }

    fn back(&self) -> NonNull<[u8; CANARY_LEN]> {
        // SAFETY: the back canary lies inside the slot.
        unsafe { self.slot.add(self.layout.back_canary_offset) }.cast()
    }

    /// The fork policy the slot's page was advised with.
    pub(crate) fn fork(&self) -> ForkPolicy {
        self.origin.fork
    }

    /// Whether the slot's page exists in this process.
    #[inline]
    pub(crate) fn present(&self) -> bool {
        self.origin.present()
    }

    /// Whether the slot's page is mlocked in this process (packed pages
    /// always are, but not in a fork child).
    pub(crate) fn is_locked(&self) -> bool {
        !self.origin.inherited()
    }

    pub(crate) fn residency(&self) -> io::Result<Residency> {
        // SAFETY: the page metadata is alive while this slot holds its bit.
        let addr = unsafe { self.page.as_ref() }.addr;
        let pages = sys::residency(addr, sys::page_size())?;
        Ok(Residency {
            resident: pages.iter().filter(|&&r| r).count(),
            total: pages.len(),
        })
    }

    /// Aborts, with one line on stderr, unless both canaries and the zero
    /// padding between the front canary and the value are intact.
    pub(crate) fn verify(&self) {
        let expected = expected_canary(&self.origin);
        // SAFETY: the slot's bytes are ours and readable (packed pages are
        // never sealed); `[u8; N]` has alignment 1.
        let front = unsafe { self.front().read() };
        // SAFETY: as above.
        let back = unsafe { self.back().read() };
        let pad_len = self.layout.value_offset - CANARY_LEN;
        // SAFETY: the padding starts right after the front canary, inside
        // the slot.
        let pad_start = unsafe { self.slot.add(CANARY_LEN) };
        // SAFETY: the padding's `pad_len` bytes lie between the front canary
        // and the value, readable and ours; bytes have alignment 1.
        let padding = unsafe { std::slice::from_raw_parts(pad_start.as_ptr(), pad_len) };
        let which = if front != *expected || padding.iter().any(|&b| b != 0) {
            "before"
        } else if back != *expected {
            "after"
        } else {
            return;
        };
        // SAFETY: metadata alive while we hold the bit.
        let page = unsafe { self.page.as_ref() }.addr;
        eprintln!(
            "lockedbox: the canary {which} a {}-byte packed secret (slot {} of {}-byte slots in \
             the page at {:p}) was overwritten ({}); aborting",
            self.layout.size,
            self.index,
            self.layout.slot_size,
            page,
            if which == "before" {
                "buffer underflow or stray write"
            } else {
                "buffer overflow"
            },
        );
        process::abort();
    }
}

impl Drop for PackedSlot {
    /// Wipes the whole slot (canaries included) and frees it. The owner has
    /// dropped the value and verified the canaries.
    fn drop(&mut self) {
        if !self.present() {
            return;
        }
        // SAFETY: the slot's bytes are ours, readable and writable, and the
        // value in them has been dropped; the slot is 64-byte aligned (its
        // power-of-two size divides the page) and a multiple of 64 bytes.
        unsafe { wipe(self.slot, self.layout.slot_size) };
        if self.origin.inherited() {
            return; // the metadata belongs to the parent's pool
        }
        // SAFETY: metadata alive while we hold the bit; after this store we
        // touch neither the slot nor the metadata again.
        let page = unsafe { self.page.as_ref() };
        page.used[self.index / 64].fetch_and(!(1 << (self.index % 64)), Ordering::Release);
        pool::count(|c| &c.packed_dropped);
    }
}
