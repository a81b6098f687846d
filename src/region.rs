//! A page-isolated box's data pages without a type: its canary, its
//! protection, its wipe.
//!
//! A [`Region`] holds one [`PageSlot`] from [`Region::create`] to its `Drop`.
//! Its invariants, which every `SAFETY` comment below leans on:
//!
//! - **(R1) mapped**: the slot's data pages are mapped and belong to this
//!   region alone until its `Drop` hands them back to the pool (in a fork(2)
//!   child of the process that made a [`ForkPolicy::Exclude`] region they do
//!   not exist at all; `present()` is false there and nothing touches them);
//! - **(R2) guarded**: the page before and the page after the data pages are
//!   `PROT_NONE` (guard pages of the slab, or of a mapping of its own);
//! - **(R3) protection**: the data pages' protection is the one recorded in
//!   `prot`. It is read-write except while a sealed box has made the pages
//!   `PROT_NONE` or read-only (through [`Region::protect`]); whoever needs to
//!   touch them on the way out calls [`Region::open`] first;
//! - **(R4) canary**: the canary bytes were written at creation and only an
//!   out-of-bounds write changes them; the bytes in front of the canary
//!   (padding) are never written by the crate and are zero.
#![allow(unsafe_code)]

use std::io;
use std::mem::ManuallyDrop;
use std::process;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::alloc::{self, PageSlot};
use crate::canary::{expected_canary, process_canary, wipe};
use crate::error::Error;
use crate::fork::EXCLUDED;
use crate::layout::{CANARY_LEN, Layout};
use crate::os::{self, Protection};
use crate::policy::Locking;
use crate::residency::Residency;

/// What memory a region (or a packed slot) is made of: anonymous memory
/// under a fork policy, or secret memory. The allocator's own type; the
/// layers above name it through here.
pub(crate) use crate::alloc::Kind;

/// A page-isolated box's data pages and where its value sits in them; see
/// the module docs for its invariants.
pub(crate) struct Region {
    /// Taken out only by `Drop`.
    slot: ManuallyDrop<PageSlot>,
    /// Where the value starts, from the start of the data pages; the value
    /// ends where they end, so its size is `data_len - value_offset`.
    value_offset: usize,
    /// The data pages' current protection (R3), as [`prot_code`] encodes it.
    prot: AtomicU8,
}

/// How `Region::prot` stores a [`Protection`].
fn prot_code(p: Protection) -> u8 {
    match p {
        Protection::ReadWrite => 0,
        Protection::Read => 1,
        Protection::None => 2,
    }
}

impl Region {
    /// Takes guarded, advised, locked data pages for `layout` (a recycled
    /// slot if this thread has one) and writes the canary. The value bytes
    /// are zero.
    ///
    /// On error nothing is left behind: no slot stays open and the count of
    /// locked bytes is unchanged.
    #[inline(always)]
    pub(crate) fn create(layout: Layout, lock: Locking, kind: Kind) -> Result<Self, Error> {
        let slot =
            alloc::acquire_page_slot(layout.data_len / layout.page, layout.map_len, lock, kind)?;
        debug_assert_eq!(slot.data_len, layout.data_len);
        debug_assert_eq!(layout.value_offset + layout.size, slot.data_len);
        let canary_at = canary_ptr(slot.data, layout.canary_offset);
        // SAFETY: (R1, R3) the canary's bytes lie in the slot's data pages,
        // which are read-write and ours alone; `[u8; N]` has alignment 1.
        unsafe { canary_at.write(*process_canary()) };
        Ok(Region {
            slot: ManuallyDrop::new(slot),
            value_offset: layout.value_offset,
            prot: AtomicU8::new(prot_code(Protection::ReadWrite)),
        })
    }

    /// First byte of the value: `size` bytes up to the end of the data pages.
    #[inline]
    pub(crate) fn value_ptr(&self) -> NonNull<u8> {
        // SAFETY: (R1) `value_offset <= data_len`, so the result is inside
        // the data pages or one past them (for a zero-sized value).
        unsafe { self.slot.data.add(self.value_offset) }
    }

    /// Size of the value in bytes.
    pub(crate) fn size(&self) -> usize {
        self.slot.data_len - self.value_offset
    }

    /// Length of the data pages in bytes.
    pub(crate) fn data_len(&self) -> usize {
        self.slot.data_len
    }

    /// What memory the data pages are.
    pub(crate) fn kind(&self) -> Kind {
        Kind {
            fork: self.slot.origin.fork,
            secret: self.slot.secret,
        }
    }

    /// The data length of the largest slot of `kind`, at most
    /// `max_data_len` bytes, that the allocator's cache of large slots
    /// holds ready (wiped and locked), if any: memory a growing buffer can
    /// move to at no cost in locking (see `alloc::largest_ready`).
    pub(crate) fn largest_ready(max_data_len: usize, kind: Kind) -> Option<usize> {
        alloc::largest_ready(max_data_len, kind)
    }

    /// Bytes more the crate can lock for a lock it requires before
    /// `RLIMIT_MEMLOCK` refuses, the caches' ready slots counted as room;
    /// `None` where no limit binds (see `alloc::lock_room`).
    pub(crate) fn lock_room() -> Option<usize> {
        alloc::lock_room()
    }

    /// Whether the mapping exists in this process. It does not in a fork
    /// child of the creator of a [`ForkPolicy::Exclude`] region.
    #[inline(always)]
    pub(crate) fn present(&self) -> bool {
        self.slot.origin.present()
    }

    /// Whether the data pages are mlocked in this process. Memory locks are
    /// not inherited by fork(2), so an inherited region is never locked.
    pub(crate) fn is_locked(&self) -> bool {
        self.slot.locked && !self.slot.origin.inherited()
    }

    /// Residency of the data pages, from mincore(2).
    pub(crate) fn residency(&self) -> io::Result<Residency> {
        let (resident, total) = os::residency(self.slot.data, self.slot.data_len)?;
        Ok(Residency { resident, total })
    }

    /// Whether the canary is what it was set to. In a fork child of a
    /// [`ForkPolicy::Wipe`] region's creator the kernel zeroed the data pages,
    /// so there the canary must read as zeros.
    ///
    /// The data pages must be readable (R3).
    #[inline]
    pub(crate) fn canary_intact(&self) -> bool {
        let expected = expected_canary(&self.slot.origin);
        let canary_at = canary_ptr(self.slot.data, self.value_offset - CANARY_LEN);
        // SAFETY: (R1, R3) the canary's bytes lie in the readable data pages;
        // `[u8; N]` has alignment 1 and every bit pattern is valid.
        let found = unsafe { canary_at.read() };
        found == *expected
    }

    /// Aborts the process, after one line on stderr, if the canary changed.
    /// The data pages must be readable (R3).
    #[inline]
    pub(crate) fn verify_canary(&self) {
        if !self.canary_intact() {
            self.smashed();
        }
    }

    #[cold]
    #[inline(never)]
    fn smashed(&self) -> ! {
        // The message names where, never what: no byte of the value.
        eprintln!(
            "lockedmem: the canary in front of a {}-byte secret at {:p} was overwritten (a \
             write before the start of the value: buffer underflow or stray pointer); aborting",
            self.size(),
            self.value_ptr()
        );
        process::abort();
    }

    /// Prepares the data pages for sealing: marks their mapping
    /// `MADV_RANDOM`, a flag the guard pages around them lack, so that the
    /// kernel never merges the `PROT_NONE` data pages with their `PROT_NONE`
    /// guards. Locked pages differ from the guards anyway, but locks are not
    /// inherited by a fork child, and `BestEffort` pages may have none;
    /// merged, every borrow would need the kernel to split the mapping again,
    /// which fails at `vm.max_map_count`.
    ///
    /// Does nothing where the pages do not exist (see [`Region::protect`]).
    pub(crate) fn keep_apart(&self) -> io::Result<()> {
        if !self.present() {
            return Err(not_present());
        }
        // SAFETY: (R1) present, so the data pages are our own slot's;
        // MADV_RANDOM changes neither contents nor protection.
        unsafe { os::keep_apart(self.slot.data, self.slot.data_len) }
    }

    /// Changes the data pages' protection and records it.
    ///
    /// Where the pages do not exist (a fork child of the maker of a
    /// [`ForkPolicy::Exclude`] region) it changes nothing and fails: the
    /// address range may hold someone else's mapping there.
    ///
    /// # Safety
    /// No reference into the value may be alive that the new protection
    /// forbids: none at all for [`Protection::None`], no `&mut` for
    /// [`Protection::Read`]; and none may be created until the protection
    /// allows it again. Callers that race must serialise their calls.
    #[inline(always)]
    pub(crate) unsafe fn protect(&self, prot: Protection) -> io::Result<()> {
        if !self.present() {
            return Err(not_present());
        }
        // SAFETY: (R1) present, so the data pages are our own slot's; the
        // caller guarantees that no reference is alive that `prot` forbids.
        unsafe { os::protect(self.slot.data, self.slot.data_len, prot) }?;
        self.prot.store(prot_code(prot), Ordering::Release);
        Ok(())
    }

    /// Makes the data pages read-write again if a sealed box left them
    /// otherwise, before the value is dropped, checked or wiped. Does
    /// nothing where the pages do not exist (see [`Region::protect`]).
    ///
    /// Aborts if mprotect fails: a secret that can neither be wiped nor used
    /// must not be freed as it is. The data pages of a sealed box are a
    /// mapping of their own (locked, or marked by [`Region::keep_apart`]),
    /// so changing their protection needs no split and has no documented
    /// way to fail; aborting is the fail-closed answer should it anyway.
    #[inline]
    pub(crate) fn open(&self) {
        if self.prot.load(Ordering::Acquire) != prot_code(Protection::ReadWrite) && self.present() {
            self.reopen();
        }
    }

    #[cold]
    #[inline(never)]
    fn reopen(&self) {
        let (data, len) = (self.slot.data, self.slot.data_len);
        // SAFETY: (R1) present, so the data pages are our own slot's;
        // widening access to read-write invalidates no reference.
        let opened = unsafe { os::protect(data, len, Protection::ReadWrite) };
        if let Err(e) = opened {
            eprintln!(
                "lockedmem: cannot make a sealed {}-byte secret's pages writable to wipe it \
                 (mprotect: {e}); aborting rather than freeing it unwiped",
                self.size()
            );
            process::abort();
        }
        self.prot
            .store(prot_code(Protection::ReadWrite), Ordering::Release);
    }

    /// Zeroizes every byte the box can have written: the canary and the
    /// value (R4: the padding in front was never written). Of a box that is
    /// not locked and spans several pages, only the pages that hold data (in
    /// RAM or in swap, from /proc/self/pagemap) are written: wiping a page
    /// that was never touched would only make the kernel allocate it.
    ///
    /// # Safety
    /// The data pages are read-write (R3) and no reference into them is
    /// alive.
    #[inline]
    unsafe fn wipe_contents(&self, slot: &PageSlot) {
        let page = os::page_size();
        // From the canary, rounded down to a word, to the end of the data.
        let start = (self.value_offset - CANARY_LEN) & !7;
        let touched = if slot.locked || slot.data_len == page {
            None
        } else {
            os::populated(slot.data, slot.data_len / page).ok()
        };
        let wipe_run = |from: usize, to: usize| {
            if from < to {
                // SAFETY: `from < data_len`: inside the data pages.
                let at = unsafe { slot.data.add(from) };
                // SAFETY: the caller's contract; `from` is a multiple of 8
                // (`start`, or a page boundary) and `to` too (a page
                // boundary or `data_len`), both within the data pages.
                unsafe { wipe(at, to - from) };
            }
        };
        match touched {
            None => wipe_run(start, slot.data_len),
            Some(pages) => {
                for (i, _) in pages.iter().enumerate().filter(|&(_, &t)| t) {
                    wipe_run(start.max(i * page), (i + 1) * page);
                }
            }
        }
    }
}

impl Drop for Region {
    /// Zeroizes the canary and value, then hands the slot back to the pool,
    /// which caches it or closes it (unlock, discard, `PROT_NONE`).
    fn drop(&mut self) {
        if self.present() {
            self.open();
            // SAFETY: (R1, R3) the data pages are mapped read-write (`open`);
            // the typed owner has dropped its value, so no reference into
            // them is alive.
            unsafe { self.wipe_contents(&self.slot) };
        }
        // SAFETY: `slot` is taken exactly once, here, as the last use of
        // `self`.
        let slot = unsafe { ManuallyDrop::take(&mut self.slot) };
        alloc::recycle_page_slot(slot);
    }
}

/// The error for pages that do not exist in this process; out of line, so
/// that `Region::protect` stays small enough to inline.
#[cold]
#[inline(never)]
fn not_present() -> io::Error {
    io::Error::other(EXCLUDED)
}

/// Where the canary sits in data pages starting at `data`.
fn canary_ptr(data: NonNull<u8>, canary_offset: usize) -> NonNull<[u8; CANARY_LEN]> {
    // SAFETY: `canary_offset + CANARY_LEN <= data_len` (see `Layout`), so the
    // result stays inside the data pages.
    unsafe { data.add(canary_offset) }.cast()
}
