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
//!   out-of-bounds write changes them.
#![allow(unsafe_code)]

use std::io;
use std::mem::ManuallyDrop;
use std::process;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use zeroize::Zeroize;

use crate::error::Error;
use crate::fork::Origin;
use crate::layout::{CANARY_LEN, Layout};
use crate::options::{ForkPolicy, LockPolicy};
use crate::pool::{self, PageSlot};
use crate::sys::{self, Protection};

/// How many data pages of a box are in RAM, from mincore(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Data pages present in RAM.
    pub resident: usize,
    /// All data pages of the box.
    pub total: usize,
}

impl Residency {
    /// Whether every data page is in RAM.
    pub fn all_resident(&self) -> bool {
        self.resident == self.total
    }
}

/// A page-isolated box's data pages and where its value sits in them; see
/// the module docs for its invariants.
pub(crate) struct Region {
    /// Taken out only by `Drop`.
    slot: ManuallyDrop<PageSlot>,
    /// Where the value starts, from the start of the data pages.
    value_offset: usize,
    /// Size of the value in bytes.
    size: usize,
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
    pub(crate) fn create(
        layout: Layout,
        lock: LockPolicy,
        fork: ForkPolicy,
    ) -> Result<Self, Error> {
        let slot =
            pool::acquire_page_slot(layout.data_len / layout.page, layout.map_len, lock, fork)?;
        debug_assert_eq!(slot.data_len, layout.data_len);
        let canary_at = canary_ptr(slot.data, layout.canary_offset);
        // SAFETY: (R1, R3) the canary's bytes lie in the slot's data pages,
        // which are read-write and ours alone; `[u8; N]` has alignment 1.
        unsafe { canary_at.write(*process_canary()) };
        Ok(Region {
            slot: ManuallyDrop::new(slot),
            value_offset: layout.value_offset,
            size: layout.size,
            prot: AtomicU8::new(prot_code(Protection::ReadWrite)),
        })
    }

    /// First byte of the value: `size` bytes up to the end of the data pages.
    pub(crate) fn value_ptr(&self) -> NonNull<u8> {
        // SAFETY: (R1) `value_offset <= data_len`, so the result is inside
        // the data pages or one past them (for a zero-sized value).
        unsafe { self.slot.data.add(self.value_offset) }
    }

    /// Size of the value in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Length of the data pages in bytes.
    pub(crate) fn data_len(&self) -> usize {
        self.slot.data_len
    }

    /// The fork policy the pages were advised with.
    pub(crate) fn fork(&self) -> ForkPolicy {
        self.slot.origin.fork
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
        let pages = sys::residency(self.slot.data, self.slot.data_len)?;
        Ok(Residency {
            resident: pages.iter().filter(|&&r| r).count(),
            total: pages.len(),
        })
    }

    /// Whether the canary is what it was set to. In a fork child of a
    /// [`ForkPolicy::Wipe`] region's creator the kernel zeroed the data pages,
    /// so there the canary must read as zeros.
    ///
    /// The data pages must be readable (R3).
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
    pub(crate) fn verify_canary(&self) {
        if !self.canary_intact() {
            // The message names where, never what: no byte of the value.
            eprintln!(
                "lockedbox: the canary in front of a {}-byte secret at {:p} was overwritten \
                 (a write before the start of the value: buffer underflow or stray pointer); \
                 aborting",
                self.size,
                self.value_ptr()
            );
            process::abort();
        }
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
        unsafe { sys::protect(self.slot.data, self.slot.data_len, prot) }?;
        self.prot.store(prot_code(prot), Ordering::Release);
        Ok(())
    }

    /// Makes the data pages read-write again if a sealed box left them
    /// otherwise, before the value is dropped, checked or wiped. Does
    /// nothing where the pages do not exist (see [`Region::protect`]).
    ///
    /// Aborts if mprotect fails: a secret that can neither be wiped nor used
    /// must not be freed as it is. Widening the protection of a locked slot,
    /// which is a mapping of its own, has no documented way to fail; an
    /// unlocked slot (`LockPolicy::BestEffort`, or any slot in a fork child,
    /// where locks are not inherited) may have merged with its guard pages
    /// while sealed, and splitting it again can fail with `ENOMEM` at
    /// `vm.max_map_count`. Aborting is the fail-closed answer.
    pub(crate) fn open(&self) {
        if !self.present() || self.prot.load(Ordering::Acquire) == prot_code(Protection::ReadWrite)
        {
            return;
        }
        let (data, len) = (self.slot.data, self.slot.data_len);
        // SAFETY: (R1) present, so the data pages are our own slot's;
        // widening access to read-write invalidates no reference.
        let opened = unsafe { sys::protect(data, len, Protection::ReadWrite) };
        if let Err(e) = opened {
            eprintln!(
                "lockedbox: cannot make a sealed {}-byte secret's pages writable to wipe it \
                 (mprotect: {e}); aborting rather than freeing it unwiped",
                self.size
            );
            process::abort();
        }
        self.prot
            .store(prot_code(Protection::ReadWrite), Ordering::Release);
    }
}

impl Drop for Region {
    /// Zeroizes every data byte, then hands the slot back to the pool, which
    /// caches it or munlocks, discards and closes it, in that order.
    fn drop(&mut self) {
        // SAFETY: `slot` is taken exactly once, here, and not used after.
        let slot = unsafe { ManuallyDrop::take(&mut self.slot) };
        if slot.origin.present() {
            self.open();
            // SAFETY: (R1, R3) the data pages are mapped read-write (`open`);
            // the typed owner has dropped its value, so no reference into
            // them is alive; `data` is page-aligned and `data_len` a
            // multiple of the page size.
            unsafe { wipe(slot.data, slot.data_len) };
        }
        pool::recycle_page_slot(slot);
    }
}

/// Zeroizes `len` bytes at `addr` with volatile word writes (`zeroize`) the
/// optimiser cannot remove.
///
/// # Safety
/// `addr` is 8-byte aligned and `len` a multiple of 8; the range is mapped
/// readable and writable, and no reference into it is alive.
pub(crate) unsafe fn wipe(addr: NonNull<u8>, len: usize) {
    debug_assert!(addr.as_ptr().align_offset(8) == 0 && len % 8 == 0);
    // SAFETY: forwarded from the caller's contract: an aligned, writable,
    // unaliased range of `len / 8` words.
    let words = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u64>().as_ptr(), len / 8) };
    words.zeroize();
}

/// The canary a slot of this origin must carry: the process canary, or
/// zeros where the kernel wiped the slot's pages in this fork child.
pub(crate) fn expected_canary(origin: &Origin) -> &'static [u8; CANARY_LEN] {
    if origin.wiped_by_fork() {
        &[0; CANARY_LEN]
    } else {
        process_canary()
    }
}

/// The error for pages that do not exist in this process; out of line, so
/// that `Region::protect` stays small enough to inline.
#[cold]
#[inline(never)]
fn not_present() -> io::Error {
    io::Error::other(crate::locked_box::EXCLUDED)
}

/// Where the canary sits in data pages starting at `data`.
fn canary_ptr(data: NonNull<u8>, canary_offset: usize) -> NonNull<[u8; CANARY_LEN]> {
    // SAFETY: `canary_offset + CANARY_LEN <= data_len` (see `Layout`), so the
    // result stays inside the data pages.
    unsafe { data.add(canary_offset) }.cast()
}

/// The canary every region of this process carries: random per process,
/// drawn once. Its first byte is zero, so that a string copy running into it
/// from below stops there; at least one other byte is nonzero, so it never
/// matches the zeros of a wiped page.
pub(crate) fn process_canary() -> &'static [u8; CANARY_LEN] {
    static CANARY: OnceLock<[u8; CANARY_LEN]> = OnceLock::new();
    CANARY.get_or_init(|| {
        let mut c = [0u8; CANARY_LEN];
        if sys::random(&mut c).is_err() {
            // No getrandom (Linux < 3.17): fall back on what varies per
            // process. Weaker, but a canary that is not secret still catches
            // accidental overwrites.
            let seed = (&raw const CANARY as usize as u64)
                ^ u64::from(sys::process_id()).rotate_left(32)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos()));
            c[..8].copy_from_slice(&seed.to_ne_bytes());
            c[8..].copy_from_slice(&seed.rotate_left(29).to_ne_bytes());
        }
        c[0] = 0;
        if c[1..].iter().all(|&b| b == 0) {
            c[1] = 1;
        }
        c
    })
}
