//! Packed slabs: pages shared by small slots of one size class, and the
//! bookkeeping that hands their slots out across threads.
//!
//! A slab is one mapping of [`SLAB_PAGES`] pages between two guard pages,
//! advised once; a page is opened (read-write, mlocked) when some thread
//! needs one and closed again by `trim`. A class of best-effort pages (the
//! twin of a locked class, for `LockPolicy::BestEffort` boxes at the lock
//! limit) opens its pages without the lock when there is no room, and each
//! page records whether it is locked. Every page of a slab has the slab's
//! size class, so a page's slot size never changes.
//!
//! # Page metadata is type-stable
//!
//! Each page has a [`PageMeta`]: a bitmap of used slots and its address,
//! all atomics, allocated once with its slab's bookkeeping and never freed
//! (a slab whose mapping is unmapped keeps its metadata for the next
//! mapping of that class). Any thread may therefore hold a
//! `&'static PageMeta` and try to claim a slot on it without a lock: a page
//! that is closed, or being opened or closed, has every bit set, so no claim
//! succeeds on it. To close a page, its closer claims every slot at once
//! ([`PageMeta::claim_all`]), which succeeds only on an empty page and
//! leaves it full for everyone else.
//!
//! # Which thread claims where
//!
//! Each thread claims on a page it *holds* (its current page for the class),
//! without a lock; pages of different threads keep their bitmaps on
//! different cache lines. When its page is full, a thread takes, under the
//! class mutex, a page that nobody holds and that has a free slot (the
//! *partial* list: pages given up by their holder, or by a thread that
//! exited, and pages that a free made non-full), else it opens a closed
//! page. Only if that lock is refused does it claim on pages other threads
//! hold. So a lock is refused only when no open page of the class, of any
//! thread living or gone, has a free slot; and pages left by exited threads
//! are used again rather than piling up.
//!
//! Where locked memory is scarce (the caller decides: near
//! `RLIMIT_MEMLOCK`), a page of one's own is a luxury: every thread's
//! half-empty page of every class holds a locked page that another class
//! may need. There a thread first takes a free slot on a page another
//! thread holds (the class keeps a list of held pages), and opens a page
//! only when no open page of the class has a free slot; a thread that finds
//! a page being opened waits for it and then takes a slot there. So the
//! pages of a class are as few as its live slots need, whichever thread
//! made them, and a lock is refused only when that many pages of every
//! class do not fit. [`claim_slow`] is that path, model-checked with loom
//! (`loom_packed_*`) together with the bitmaps.
//!
//! # Mappings
//!
//! Open neighbouring pages merge into one mapping, and closed ones merge
//! back with the guard pages (`pages::close` replaces them with fresh
//! memory). Opening a page whose two neighbours are both open could leave a
//! seam the kernel does not merge, so such single-page holes are never
//! reopened: a slab costs `1 + 2 × (runs of open pages)` mappings.
// No unsafe code, but for the loom models' cells (which stand for the
// pages' bytes).
#![cfg_attr(not(loom), forbid(unsafe_code))]
#![cfg_attr(loom, deny(unsafe_code))]

use std::ops::DerefMut;
use std::ptr::{self, NonNull};

use crate::alloc::pages::{Closed, Mapping, OpenError};
use crate::alloc::secret_files::SecretFile;
use crate::error::Error;
use crate::policy::ForkPolicy;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// Pages per packed slab (between its two guard pages).
pub(crate) const SLAB_PAGES: usize = 256;

/// Bitmap words of one page, on cache lines of their own.
#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; 8]);

/// Metadata of one packed page; see the module docs for why it is never
/// freed.
pub(crate) struct PageMeta {
    /// One bit per slot, set while the slot is claimed. Bits at or beyond
    /// `slots` are never set. All set: the page is closed (or in transit).
    used: Box<[Line]>,
    /// Slots on the page.
    slots: usize,
    /// The page's first byte while its slab is mapped.
    addr: AtomicPtr<u8>,
    /// Whether the open page is mlocked (always, in a class of locked
    /// pages; in a class of best-effort pages, if the limit left room).
    locked: AtomicBool,
    /// Which class this page belongs to (an index into the pool's classes).
    pub(crate) class: usize,
    /// Where the page is in its class: slab and page index.
    slab: usize,
    index: usize,
}

/// The bits of word `w` that stand for slots of a page of `slots` slots.
pub(crate) fn word_mask(slots: usize, w: usize) -> u64 {
    let base = w * 64;
    match slots.saturating_sub(base) {
        0 => 0,
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

/// The lowest slot bit that is free in `word` among `mask`.
pub(crate) fn free_bit(word: u64, mask: u64) -> Option<usize> {
    let free = !word & mask;
    (free != 0).then(|| free.trailing_zeros() as usize)
}

impl PageMeta {
    fn new(slots: usize, class: usize, slab: usize, index: usize) -> Self {
        let words = slots.div_ceil(64);
        let meta = PageMeta {
            used: (0..words.div_ceil(8)).map(|_| Line::default()).collect(),
            slots,
            addr: AtomicPtr::new(ptr::null_mut()),
            locked: AtomicBool::new(false),
            class,
            slab,
            index,
        };
        meta.fill(); // closed
        meta
    }

    fn words(&self) -> usize {
        self.slots.div_ceil(64)
    }

    fn word(&self, w: usize) -> &AtomicU64 {
        &self.used[w / 8].0[w % 8]
    }

    /// Marks every slot used: how a closed page looks to claimers.
    fn fill(&self) {
        for w in 0..self.words() {
            self.word(w)
                .store(word_mask(self.slots, w), Ordering::Release);
        }
    }

    /// Claims a free slot, without a lock.
    #[inline]
    pub(crate) fn claim(&self) -> Option<usize> {
        for w in 0..self.words() {
            let word = self.word(w);
            let mask = word_mask(self.slots, w);
            let mut cur = word.load(Ordering::Relaxed);
            while let Some(bit) = free_bit(cur, mask) {
                match word.compare_exchange_weak(
                    cur,
                    cur | 1 << bit,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(w * 64 + bit),
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    /// Frees slot `i`, whose bytes its holder has wiped; after this the
    /// holder touches neither the slot nor the page's bytes. Returns whether
    /// the slot's word was full, so the page may have just stopped being
    /// full.
    #[inline]
    pub(crate) fn free(&self, i: usize) -> bool {
        let mask = word_mask(self.slots, i / 64);
        let before = self
            .word(i / 64)
            .fetch_and(!(1 << (i % 64)), Ordering::Release);
        debug_assert!(before & 1 << (i % 64) != 0, "the slot was claimed");
        before == mask
    }

    /// Claims every slot at once if the page is empty, for its closer:
    /// afterwards nobody else can claim on it. On failure, nothing changed.
    fn claim_all(&self) -> bool {
        for w in 0..self.words() {
            let mask = word_mask(self.slots, w);
            if self
                .word(w)
                .compare_exchange(0, mask, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                for taken in 0..w {
                    self.word(taken).store(0, Ordering::Release);
                }
                return false;
            }
        }
        true
    }

    /// Frees every slot: the page, just opened (or failing to close), is
    /// open for claims.
    fn clear(&self) {
        for w in 0..self.words() {
            self.word(w).store(0, Ordering::Release);
        }
    }

    /// Slots claimed now.
    fn claimed(&self) -> usize {
        (0..self.words())
            .map(|w| self.word(w).load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    fn is_full(&self) -> bool {
        (0..self.words()).all(|w| self.word(w).load(Ordering::Acquire) == word_mask(self.slots, w))
    }

    /// The page's first byte. Meaningful while the caller holds a slot's bit
    /// (or the page is open): it is set before the page's bits are cleared.
    pub(crate) fn addr(&self) -> NonNull<u8> {
        NonNull::new(self.addr.load(Ordering::Acquire)).expect("an open page has an address")
    }

    /// Slots on the page.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// Whether the page is mlocked. Meaningful while the caller holds a
    /// slot's bit (or the class mutex).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Records whether the page is mlocked: by its opener before its bits
    /// are cleared, and under the class mutex after that.
    pub(crate) fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::Release);
    }
}

/// A page's state in its class, changed only under the class mutex.
#[derive(Debug, Clone, Copy, Default)]
struct PageState {
    /// Open (read-write, locked), or being opened or closed.
    open: bool,
    /// Reserved and being opened (its bits are all set, none claimed).
    opening: bool,
    /// The thread token of the thread whose current page it is, 0 if none.
    holder: u64,
    /// On the partial list.
    listed: bool,
    /// On the list of held pages (iff `holder` is nonzero).
    on_held: bool,
}

/// One slab of a class.
struct Slab {
    /// Type-stable metadata of its pages.
    meta: &'static [PageMeta],
    /// `None` while unmapped (every page closed).
    mapping: Option<Mapping>,
    pages: Vec<PageState>,
    /// Pages open (or in transit).
    open: usize,
    /// No page below this index is closed and reopenable: where the search
    /// for one starts.
    first_closed: usize,
}

impl Slab {
    /// `Some` while the slab is mapped (under loom, a model's slab of
    /// metadata alone always counts as mapped).
    fn mapped(&self) -> Option<()> {
        if cfg!(loom) {
            return Some(());
        }
        self.mapping.as_ref().map(|_| ())
    }

    fn open_pages(&self) -> usize {
        self.open
    }

    fn set_open(&mut self, i: usize, open: bool) {
        if self.pages[i].open != open {
            if open {
                self.open += 1;
            } else {
                self.open -= 1;
                self.first_closed = self.first_closed.min(i.saturating_sub(1));
            }
        }
        self.pages[i].open = open;
    }

    /// Runs of consecutive open pages.
    fn open_runs(&self) -> usize {
        (0..self.pages.len())
            .filter(|&i| self.pages[i].open && (i == 0 || !self.pages[i - 1].open))
            .count()
    }

    /// Places inside runs of open pages where the kernel keeps two
    /// neighbouring pages in different mappings: one is locked and the other
    /// not (a best-effort class), or either is in transit (being opened or
    /// closed, or left unadvised), whose flags may differ from anything.
    fn seams(&self) -> usize {
        (1..self.pages.len())
            .filter(|&i| {
                let (a, b) = (&self.pages[i - 1], &self.pages[i]);
                a.open
                    && b.open
                    && (a.opening
                        || b.opening
                        || self.meta[i - 1].is_locked() != self.meta[i].is_locked())
            })
            .count()
    }

    /// A closed page that is not a single-page hole between open ones.
    fn closed_page(&mut self) -> Option<usize> {
        if self.open == self.pages.len() {
            return None;
        }
        let open = |i: usize| self.pages.get(i).is_some_and(|p| p.open);
        let found = (self.first_closed..self.pages.len()).find(|&i| {
            let hole = i > 0 && open(i - 1) && open(i + 1);
            !self.pages[i].open && !hole
        });
        // Everything below the closed page found is open or a hole.
        self.first_closed = found.unwrap_or(self.pages.len());
        found
    }
}

/// The packed slabs of one size class and fork policy; always used under
/// its mutex.
pub(crate) struct PackedClass {
    /// This class's index among the pool's classes.
    key: usize,
    fork: ForkPolicy,
    /// Pages of secret memory (memfd_secret(2)).
    secret: bool,
    page_size: usize,
    slots: usize,
    slabs: Vec<Slab>,
    /// Pages that nobody holds and that may have a free slot. May hold
    /// stale entries (`PageState::listed` decides).
    partial: Vec<&'static PageMeta>,
    /// The pages some thread holds (`PageState::holder` nonzero): as many
    /// as there are threads with a current page of the class.
    held: Vec<&'static PageMeta>,
    /// A page is being opened (see [`PackedClass::opening_any`]).
    in_flight: bool,
}

impl PackedClass {
    /// An empty class of pages of `page_size` bytes cut into `slots` slots.
    pub(crate) fn new(
        key: usize,
        fork: ForkPolicy,
        secret: bool,
        page_size: usize,
        slots: usize,
    ) -> Self {
        PackedClass {
            key,
            fork,
            secret,
            page_size,
            slots,
            slabs: Vec::new(),
            partial: Vec::new(),
            held: Vec::new(),
            in_flight: false,
        }
    }

    /// The secret file behind `page`'s slab, if the class is of secret
    /// memory.
    pub(crate) fn file_of(&self, page: &PageMeta) -> Option<SecretFile> {
        let slab = &self.slabs[page.slab];
        slab.mapping.as_ref()?.secret_file().cloned()
    }

    /// The fork policy the class's slabs are advised with.
    pub(crate) fn fork(&self) -> ForkPolicy {
        self.fork
    }

    fn state(&mut self, page: &PageMeta) -> &mut PageState {
        debug_assert_eq!(page.class, self.key);
        &mut self.slabs[page.slab].pages[page.index]
    }

    /// Takes a page nobody holds that has a free slot, and claims one on it
    /// for `me`, who now holds the page.
    pub(crate) fn take_partial(&mut self, me: u64) -> Option<(&'static PageMeta, usize)> {
        while let Some(page) = self.partial.pop() {
            let st = self.state(page);
            if !st.listed {
                continue; // stale entry
            }
            st.listed = false;
            debug_assert!(st.open && st.holder == 0);
            if let Some(slot) = page.claim() {
                self.set_holder(page, me);
                return Some((page, slot));
            }
            // Full: a free will list it again.
        }
        None
    }

    /// Gives up `me`'s hold on `page`: listed as partial if it is open and
    /// not full.
    pub(crate) fn unhold(&mut self, page: &'static PageMeta, me: u64) {
        let st = self.state(page);
        if st.holder != me {
            return;
        }
        st.holder = 0;
        if st.open && !st.listed && !page.is_full() {
            st.listed = true;
            self.partial.push(page);
        }
        self.drop_held(page);
    }

    /// Takes `page`, which nobody holds any more, off the list of held
    /// pages.
    fn drop_held(&mut self, page: &'static PageMeta) {
        let st = self.state(page);
        if st.on_held {
            st.on_held = false;
            if let Some(i) = self.held.iter().position(|p| ptr::eq(*p, page)) {
                self.held.swap_remove(i);
            }
        }
    }

    /// A slot of `page` was freed when its word was full: list the page if
    /// nobody holds it.
    pub(crate) fn freed_on_full(&mut self, page: &'static PageMeta) {
        let st = self.state(page);
        if st.open && st.holder == 0 && !st.listed {
            st.listed = true;
            self.partial.push(page);
        }
    }

    /// Whether a page of the class is being opened (reserved, not yet
    /// [`opened`](PackedClass::opened) or [`unreserve`](PackedClass::unreserve)d).
    /// Callers open one page of a class at a time: a page opened next to
    /// one still being opened could end up between two mappings the kernel
    /// cannot merge, a seam `mappings()` would not count.
    pub(crate) fn opening_any(&self) -> bool {
        self.in_flight
    }

    /// Reserves a closed page to open (mapping a slab if needed); it stays
    /// full (unclaimable) until [`PackedClass::opened`].
    pub(crate) fn reserve(&mut self) -> Result<&'static PageMeta, Error> {
        let found = self.slabs.iter_mut().enumerate().find_map(|(s, slab)| {
            slab.mapped()?;
            slab.closed_page().map(|i| (s, i))
        });
        let (s, i) = match found {
            Some(f) => f,
            None => {
                let s = self.map_slab()?;
                (s, 0)
            }
        };
        let slab = &mut self.slabs[s];
        slab.set_open(i, true);
        slab.pages[i].opening = true;
        self.in_flight = true;
        Ok(&slab.meta[i])
    }

    /// Maps a slab: into an entry whose mapping was unmapped, or a new one.
    fn map_slab(&mut self) -> Result<usize, Error> {
        let len = (SLAB_PAGES + 2) * self.page_size;
        let mapping = if self.secret {
            Mapping::new_secret(len)?
        } else {
            Mapping::new(len, self.fork)?
        };
        let s = match self.slabs.iter().position(|s| s.mapping.is_none()) {
            Some(s) => s,
            None => {
                let s = self.slabs.len();
                let meta: Vec<PageMeta> = (0..SLAB_PAGES)
                    .map(|i| PageMeta::new(self.slots, self.key, s, i))
                    .collect();
                self.slabs.push(Slab {
                    meta: Box::leak(meta.into_boxed_slice()),
                    mapping: None,
                    pages: vec![PageState::default(); SLAB_PAGES],
                    open: 0,
                    first_closed: 0,
                });
                s
            }
        };
        let slab = &mut self.slabs[s];
        for (i, meta) in slab.meta.iter().enumerate() {
            // Page `i` starts after the leading guard page.
            let addr = mapping.at((i + 1) * self.page_size);
            meta.addr.store(addr.as_ptr(), Ordering::Relaxed);
        }
        slab.mapping = Some(mapping);
        Ok(s)
    }

    /// `page`, reserved, was opened: `me` holds it, and it takes claims.
    pub(crate) fn opened(&mut self, page: &'static PageMeta, me: u64) {
        self.set_holder(page, me);
        self.state(page).opening = false;
        self.in_flight = false;
        page.clear();
    }

    /// `me` holds `page` now (`me` nonzero: a thread's token).
    fn set_holder(&mut self, page: &'static PageMeta, me: u64) {
        let st = self.state(page);
        st.holder = me;
        if me != 0 && !st.on_held {
            st.on_held = true;
            self.held.push(page);
        }
    }

    /// Claims a free slot on an open page another thread holds, without
    /// taking the page over: where locked memory is scarce, before a page
    /// is opened.
    pub(crate) fn claim_held(&mut self, me: u64) -> Option<(&'static PageMeta, usize)> {
        for i in 0..self.held.len() {
            let page = self.held[i];
            let st = *self.state(page);
            debug_assert!(st.holder != 0 && st.on_held);
            if st.holder == me || st.opening || !st.open {
                continue;
            }
            if let Some(slot) = page.claim() {
                return Some((page, slot));
            }
        }
        None
    }

    /// Whether a page another thread than `me` holds has a free slot now.
    fn held_has_room(&self, me: u64) -> bool {
        self.held.iter().any(|page| {
            let st = &self.slabs[page.slab].pages[page.index];
            st.holder != 0 && st.holder != me && st.open && !st.opening && !page.is_full()
        })
    }

    /// `page`, reserved, could not be opened: it is closed again.
    pub(crate) fn unreserve(&mut self, page: &'static PageMeta) {
        self.in_flight = false;
        debug_assert!(!self.state(page).on_held, "a reserved page has no holder");
        *self.state(page) = PageState {
            open: true,
            ..PageState::default()
        };
        self.slabs[page.slab].set_open(page.index, false);
    }

    /// `page`, reserved, could be neither opened nor closed again: it stays
    /// reserved (full, in transit) for good, and the next page may be opened.
    pub(crate) fn leave_reserved(&mut self, page: &'static PageMeta) {
        debug_assert!(self.state(page).opening);
        self.in_flight = false;
    }

    /// Claims a slot on any open page, held by any thread: the last resort
    /// when no page can be opened.
    pub(crate) fn claim_anywhere(&mut self) -> Option<(&'static PageMeta, usize)> {
        self.slabs
            .iter()
            .flat_map(|slab| slab.meta.iter().zip(&slab.pages))
            .filter(|(_, st)| st.open)
            .find_map(|(meta, _)| meta.claim().map(|slot| (meta, slot)))
    }

    /// Closes every open page that is empty, with `close` (which unlocks and
    /// discards it), then unmaps slabs with no open page. A page that cannot
    /// be closed stays open, for next time; one closed but not advised again
    /// stays reserved (full) for good, and so does its slab. Returns the
    /// pages unlocked.
    pub(crate) fn close_empty(&mut self, close: &mut dyn FnMut(&PageMeta) -> Closed) -> usize {
        let mut closed = 0;
        for slab in &mut self.slabs {
            if slab.mapping.is_none() {
                continue;
            }
            for i in 0..slab.pages.len() {
                let meta = &slab.meta[i];
                if !slab.pages[i].open || !meta.claim_all() {
                    continue; // closed, in transit, or holding slots
                }
                let closed_now = close(meta);
                if closed_now != Closed::No && slab.pages[i].on_held {
                    // Closed under its holder, which finds it full and
                    // gives it up (a no-op then): nobody holds it now.
                    if let Some(at) = self.held.iter().position(|p| ptr::eq(*p, meta)) {
                        self.held.swap_remove(at);
                    }
                }
                match closed_now {
                    Closed::Yes => {
                        slab.pages[i] = PageState {
                            open: true,
                            ..PageState::default()
                        };
                        slab.set_open(i, false);
                        closed += 1;
                    }
                    Closed::No => meta.clear(),
                    Closed::Unadvised => {
                        // Unlocked, but never to be opened again: it stays
                        // marked open (in transit) with every bit set.
                        slab.pages[i].opening = true;
                        slab.pages[i].holder = 0;
                        slab.pages[i].on_held = false;
                        closed += 1;
                    }
                }
            }
            if slab.open_pages() == 0 {
                // The metadata stays, full, for the slab's next mapping.
                if let Some(Err(kept)) = slab.mapping.take().map(Mapping::unmap) {
                    slab.mapping = Some(kept); // try again at the next trim
                }
            }
        }
        closed
    }

    /// Slots claimed on the class's open pages: its live boxes (a box being
    /// made or dropped right now may or may not be counted).
    /// Calls `lock` on each open page that is not locked (and not in
    /// transit), until it returns `false`; returns how many it locked.
    pub(crate) fn relock(&mut self, lock: &mut dyn FnMut(&PageMeta) -> bool) -> usize {
        let mut locked = 0;
        let pages = self
            .slabs
            .iter()
            .flat_map(|slab| slab.meta.iter().zip(&slab.pages))
            .filter(|(meta, st)| st.open && !st.opening && !meta.is_locked());
        for (meta, _) in pages {
            if !lock(meta) {
                break;
            }
            meta.set_locked(true);
            locked += 1;
        }
        locked
    }

    /// Calls `unlock` on open pages that are locked (and not in transit),
    /// the last first, until `want` of them are unlocked; marks those it
    /// unlocked; returns how many.
    pub(crate) fn unlock_some(
        &mut self,
        want: usize,
        unlock: &mut dyn FnMut(&PageMeta) -> bool,
    ) -> usize {
        let mut unlocked = 0;
        let pages = self
            .slabs
            .iter()
            .rev()
            .flat_map(|slab| slab.meta.iter().zip(&slab.pages).rev())
            .filter(|(meta, st)| st.open && !st.opening && meta.is_locked());
        for (meta, _) in pages {
            if unlocked >= want {
                break;
            }
            if unlock(meta) {
                meta.set_locked(false);
                unlocked += 1;
            }
        }
        unlocked
    }

    /// Slots claimed on open pages that are not locked.
    pub(crate) fn live_unlocked_slots(&self) -> usize {
        self.slabs
            .iter()
            .flat_map(|slab| slab.meta.iter().zip(&slab.pages))
            .filter(|(meta, st)| st.open && !st.opening && !meta.is_locked())
            .map(|(meta, _)| meta.claimed())
            .sum()
    }

    /// Whether a page of the class may have a free slot for a thread that
    /// holds none: one on the partial list, or a held page (claims and
    /// frees on held pages take no lock, so this is a hint).
    pub(crate) fn may_have_room(&self) -> bool {
        !self.partial.is_empty() || self.held_has_room(0)
    }

    pub(crate) fn live_slots(&self) -> usize {
        self.slabs
            .iter()
            .flat_map(|slab| slab.meta.iter().zip(&slab.pages))
            .filter(|(_, st)| st.open && !st.opening)
            .map(|(meta, _)| meta.claimed())
            .sum()
    }

    /// Open pages in the class.
    pub(crate) fn open_pages(&self) -> usize {
        self.slabs.iter().map(Slab::open_pages).sum()
    }

    /// Mappings (lines of /proc/self/maps) the class's slabs cost: for each,
    /// its closed pages and guards, and each run of open pages, split where
    /// neighbours differ in lock or are in transit.
    pub(crate) fn mappings(&self) -> usize {
        self.slabs
            .iter()
            .filter(|s| s.mapping.is_some())
            .map(|s| 1 + 2 * s.open_runs() + s.seams())
            .sum()
    }
}

/// A slot claimed on the slow path: slot `index` of `page`, which the
/// claimer now holds if `holds` (else it claimed on someone else's page).
pub(crate) struct SlowClaim {
    pub(crate) page: &'static PageMeta,
    pub(crate) index: usize,
    pub(crate) holds: bool,
}

/// A page opener for [`claim_slow`]: opens the reserved page (read-write,
/// locked as the class asks) with the class's fork advice and secret file;
/// whether it is locked.
pub(crate) type Opener<'a> =
    dyn FnMut(&'static PageMeta, ForkPolicy, Option<&SecretFile>) -> Result<bool, OpenError> + 'a;

/// The slow path of a claim by the thread whose token is `me`, whose held
/// page `old` (if any) had no free slot: under the class mutex (`class`
/// takes it), gives `old` up, then takes a page from the partial list; else,
/// if another thread's page has a free slot and `scarce()` says locked
/// memory is scarce, a slot there; else, unless another thread is opening a
/// page of the class (then it waits and looks again), reserves a closed page
/// and opens it with `open` outside the mutex. If that fails, a free slot
/// on any open page of the class, else the opener's error. `noted` sees the
/// class after each change to what it has free.
///
/// # Errors
/// The error of `reserve` (mapping a slab) or of `open` (a lock refused),
/// when no open page of the class has a free slot.
pub(crate) fn claim_slow<G: DerefMut<Target = PackedClass>>(
    class: &dyn Fn() -> G,
    me: u64,
    mut old: Option<&'static PageMeta>,
    scarce: &dyn Fn() -> bool,
    open: &mut Opener<'_>,
    noted: &dyn Fn(&PackedClass),
) -> Result<SlowClaim, Error> {
    let mut spins = 0;
    let mut share: Option<bool> = None;
    let (page, fork, file) = loop {
        let mut c = class();
        if let Some(old) = old.take() {
            c.unhold(old, me);
        }
        if let Some((page, index)) = c.take_partial(me) {
            noted(&c);
            return Ok(SlowClaim {
                page,
                index,
                holds: true,
            });
        }
        if c.held_has_room(me) && *share.get_or_insert_with(scarce) {
            if let Some((page, index)) = c.claim_held(me) {
                noted(&c);
                return Ok(SlowClaim {
                    page,
                    index,
                    holds: false,
                });
            }
        }
        noted(&c);
        // One page of a class is opened at a time, so that where the next
        // one goes is chosen among settled neighbours (see the module
        // docs), and so that a thread that finds one being opened can take
        // a slot there once it is open.
        if !c.opening_any() {
            let page = c.reserve()?;
            break (page, c.fork(), c.file_of(page));
        }
        drop(c);
        crate::sync::backoff(&mut spins);
    };
    let opened = open(page, fork, file.as_ref());
    let mut c = class();
    match opened {
        Ok(locked) => {
            page.set_locked(locked);
            c.opened(page, me);
            let index = page.claim().expect("a fresh page has free slots");
            noted(&c);
            Ok(SlowClaim {
                page,
                index,
                holds: true,
            })
        }
        Err(OpenError { error, closed }) => {
            if closed {
                c.unreserve(page);
            } else {
                // Read-write but not closed again: never handed out.
                c.leave_reserved(page);
            }
            // No page could be opened: take a free slot wherever one is.
            let anywhere = c.claim_anywhere();
            noted(&c);
            match anywhere {
                Some((page, index)) => Ok(SlowClaim {
                    page,
                    index,
                    holds: false,
                }),
                None => Err(error),
            }
        }
    }
}

#[cfg(loom)]
impl PackedClass {
    /// A class with one slab of `pages` pages of metadata and no memory,
    /// for the models.
    fn for_model(key: usize, pages: usize, slots: usize) -> Self {
        let mut c = PackedClass::new(key, ForkPolicy::Keep, false, 4096, slots);
        let meta: Vec<PageMeta> = (0..pages)
            .map(|i| PageMeta::new(slots, key, 0, i))
            .collect();
        c.slabs.push(Slab {
            meta: Box::leak(meta.into_boxed_slice()),
            mapping: None,
            pages: vec![PageState::default(); pages],
            open: 0,
            first_closed: 0,
        });
        c
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_masks() {
        assert_eq!(word_mask(64, 0), u64::MAX);
        assert_eq!(word_mask(64, 1), 0);
        assert_eq!(word_mask(1, 0), 1);
        assert_eq!(word_mask(32, 0), 0xffff_ffff);
        assert_eq!(word_mask(100, 1), (1 << 36) - 1);
    }

    #[test]
    fn free_bits() {
        assert_eq!(free_bit(0, u64::MAX), Some(0));
        assert_eq!(free_bit(0b0111, u64::MAX), Some(3));
        assert_eq!(free_bit(0b1111, 0b1111), None);
        assert_eq!(free_bit(u64::MAX, u64::MAX), None);
    }

    #[test]
    fn claiming_freeing_and_closing_a_page() {
        let page = PageMeta::new(100, 0, 0, 0);
        assert!(page.is_full(), "a new page is closed");
        assert_eq!(page.claim(), None);
        assert!(
            !page.claim_all(),
            "a closed page cannot be taken for closing"
        );
        page.clear();
        let got: Vec<_> = (0..100).map(|_| page.claim().unwrap()).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>(), "lowest free slot first");
        assert_eq!(page.claim(), None);
        assert!(page.is_full());
        assert!(page.free(5), "word 0 was full");
        assert_eq!(page.claim(), Some(5));
        assert!(page.free(99), "word 1 was full");
        for i in 0..99 {
            page.free(i);
        }
        assert!(page.claim_all(), "an empty page can be taken for closing");
        assert_eq!(page.claim(), None, "nobody claims on a page being closed");
        page.clear();
        assert!(page.claim().is_some());
        assert!(!page.claim_all(), "a page with a used slot cannot");
        assert_eq!(
            page.claim(),
            Some(1),
            "and a failed claim_all changed nothing"
        );
    }

    #[test]
    fn the_held_list_holds_exactly_the_held_pages() {
        let page_size = crate::os::page_size();
        let mut c = PackedClass::new(0, ForkPolicy::Keep, false, page_size, 64);
        let a = c.reserve().expect("a slab");
        c.opened(a, 1);
        assert_eq!(c.held.len(), 1);
        assert_eq!(a.claim(), Some(0));
        // Another thread, where memory is scarce, takes a slot there.
        assert!(c.held_has_room(2) && !c.held_has_room(1));
        assert_eq!(c.claim_held(2).map(|(_, i)| i), Some(1));
        // The holder gives it up: partial, off the held list.
        c.unhold(a, 1);
        assert!(c.held.is_empty() && c.may_have_room());
        let (again, _) = c.take_partial(2).expect("the partial page");
        assert!(ptr::eq(again, a) && c.held.len() == 1);
        for i in 0..3 {
            a.free(i);
        }
        // Closed (empty) under its holder: nobody holds it any more.
        assert_eq!(c.close_empty(&mut |_| Closed::Yes), 1);
        assert!(c.held.is_empty());
        c.unhold(a, 2); // the holder finds it closed: nothing to do
        assert!(c.held.is_empty() && !c.may_have_room());
    }

    #[test]
    fn holes_are_not_reopened() {
        let mut slab = Slab {
            meta: Box::leak(Vec::new().into_boxed_slice()),
            mapping: None,
            pages: vec![PageState::default(); 5],
            open: 0,
            first_closed: 0,
        };
        for i in [0, 2, 3] {
            slab.set_open(i, true);
        }
        // Page 1 is a hole between open pages 0 and 2; page 4 is not.
        assert_eq!(slab.closed_page(), Some(4));
        assert_eq!(slab.open_runs(), 2);
        slab.set_open(4, true);
        assert_eq!(slab.closed_page(), None);
        slab.set_open(2, false);
        assert_eq!(
            slab.closed_page(),
            Some(1),
            "page 1 is no hole once page 2 closed"
        );
    }
}

/// The packed pages' lock-free bitmaps and the slow path's hand-over,
/// model-checked.
#[cfg(all(test, loom))]
#[allow(unsafe_code)]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, AtomicUsize, Mutex, lock};
    use loom::cell::UnsafeCell;

    /// A page's bytes: one cell per slot, so that loom reports two owners
    /// touching a slot at once.
    struct Bytes([UnsafeCell<u8>; 2]);

    /// A holder claims a slot, writes it and frees it; another thread
    /// claims a slot and writes it; a closer takes the page for closing
    /// (every slot at once) and, if it got it, wipes every slot and opens
    /// it again. Loom reports a race if a slot can have two owners, or if a
    /// closer's wipe is not ordered after the last owner's writes.
    #[test]
    fn loom_packed_bitmap_claim_free_and_close() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let page: &'static PageMeta = Box::leak(Box::new(PageMeta::new(2, 0, 0, 0)));
            page.clear(); // open
            let bytes = Arc::new(Bytes([UnsafeCell::new(0), UnsafeCell::new(0)]));
            let user = |b: Arc<Bytes>| {
                move || {
                    if let Some(i) = page.claim() {
                        // SAFETY (model): the claim makes the slot ours.
                        b.0[i].with_mut(|p| unsafe { *p = 1 });
                        // SAFETY (model): as above.
                        b.0[i].with_mut(|p| unsafe { *p = 0 }); // the wipe
                        page.free(i);
                    }
                }
            };
            let a = loom::thread::spawn(user(Arc::clone(&bytes)));
            let b = loom::thread::spawn(user(Arc::clone(&bytes)));
            let closer = {
                let bytes = Arc::clone(&bytes);
                loom::thread::spawn(move || {
                    if page.claim_all() {
                        for cell in &bytes.0 {
                            // SAFETY (model): every slot is the closer's.
                            cell.with(|p| assert_eq!(unsafe { *p }, 0, "wiped"));
                            // SAFETY (model): as above (close: fresh memory).
                            cell.with_mut(|p| unsafe { *p = 0 });
                        }
                        page.clear(); // opened again
                    }
                })
            };
            a.join().unwrap();
            b.join().unwrap();
            closer.join().unwrap();
            assert_eq!(page.claimed(), 0, "every slot given back");
        });
    }

    /// The room a model's opener may lock, in pages.
    fn opener(budget: &AtomicUsize) -> Result<bool, OpenError> {
        let taken = budget.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1));
        match taken {
            Ok(_) => Ok(true),
            Err(_) => Err(OpenError {
                error: Error::MemlockLimit {
                    requested: 4096,
                    soft_limit: None,
                    hard_limit: None,
                    locked_by_crate: 0,
                    call: crate::error::MemlockCall::Secret,
                },
                closed: true,
            }),
        }
    }

    /// A claim as `alloc::claim_packed` makes it: on the held page without
    /// a lock, else `claim_slow`, holding the page it says.
    fn claim(
        class: &Mutex<PackedClass>,
        held: &mut Option<&'static PageMeta>,
        me: u64,
        scarce: bool,
        budget: &AtomicUsize,
    ) -> Result<(), Error> {
        if let Some(page) = *held {
            if page.claim().is_some() {
                return Ok(());
            }
        }
        let got = claim_slow(
            &|| lock(class),
            me,
            held.take(),
            &|| scarce,
            &mut |_, _, _| opener(budget),
            &|_| {},
        )?;
        if got.holds {
            *held = Some(got.page);
        }
        Ok(())
    }

    /// Two threads each claim one slot of class X, then one of class Y;
    /// pages have two slots and the limit leaves room for two pages, so
    /// everything fits when each class's page is shared. `scarce` as the
    /// allocator's test would answer.
    fn two_threads_two_classes(scarce: bool) {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(2);
        model.check(move || {
            let classes = Arc::new([
                Mutex::new(PackedClass::for_model(0, 2, 2)),
                Mutex::new(PackedClass::for_model(1, 2, 2)),
            ]);
            let budget = Arc::new(AtomicUsize::new(2));
            let threads: Vec<_> = (1..=2u64)
                .map(|me| {
                    let (classes, budget) = (Arc::clone(&classes), Arc::clone(&budget));
                    loom::thread::spawn(move || {
                        let mut held = [None, None];
                        for (class, held) in classes.iter().zip(&mut held) {
                            claim(class, held, me, scarce, &budget)
                                .expect("a slot that fits under the limit was refused");
                        }
                        // The thread exits: its pages are handed over.
                        for (class, held) in classes.iter().zip(held) {
                            if let Some(page) = held {
                                lock(class).unhold(page, me);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for class in classes.iter() {
                let c = lock(class);
                assert_eq!(
                    (c.open_pages(), c.live_slots()),
                    (1, 2),
                    "one full page per class"
                );
            }
        });
    }

    /// Where locked memory is scarce, a thread takes the slot on the page
    /// the other thread opened (or is opening) rather than opening its own.
    #[test]
    fn loom_packed_threads_share_pages_where_memory_is_scarce() {
        two_threads_two_classes(true);
    }

    /// A thread that exits hands its page over: another thread, claiming
    /// meanwhile, finds the free slot there (on the partial list or still
    /// held), and never opens a second page.
    #[test]
    fn loom_packed_hand_over_on_exit() {
        loom::model(|| {
            let class = Arc::new(Mutex::new(PackedClass::for_model(0, 2, 2)));
            // Room for two pages: a second page would be opened if the
            // free slot were missed.
            let budget = Arc::new(AtomicUsize::new(2));
            let exiting = {
                let (class, budget) = (Arc::clone(&class), Arc::clone(&budget));
                loom::thread::spawn(move || {
                    let mut held = None;
                    claim(&class, &mut held, 1, true, &budget).expect("room for one page");
                    if let Some(page) = held {
                        lock(&class).unhold(page, 1);
                    }
                })
            };
            let other = {
                let (class, budget) = (Arc::clone(&class), Arc::clone(&budget));
                loom::thread::spawn(move || {
                    let mut held = None;
                    claim(&class, &mut held, 2, true, &budget)
                        .expect("the free slot on the other thread's page was not found");
                })
            };
            exiting.join().unwrap();
            other.join().unwrap();
            assert_eq!(lock(&class).open_pages(), 1, "a second page for two slots");
        });
    }
}
