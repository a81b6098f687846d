//! Packed boxes: small values sharing locked, guarded pages, each in a slot
//! of its own between two canaries (see `layout::PackedLayout`).
//!
//! Where the pages come from, and how slots are claimed across threads, is
//! `alloc::packed_slab`'s business. A slot's bytes belong to its
//! [`PackedSlot`] alone from the claim to the free; its drop wipes them and
//! then frees the slot, after which it touches neither the slot nor the page.
//! Metadata (the bitmap of used slots) lives on the heap, outside the pages:
//! an overflow in the pages cannot rewrite it.
#![allow(unsafe_code)]

use std::io;
use std::process;
use std::ptr::NonNull;

use crate::alloc::{self, Kind, PackedClaim, PageMeta};
use crate::canary::{expected_canary, process_canary, wipe};
use crate::error::Error;
use crate::fork::Origin;
use crate::layout::{CANARY_LEN, PackedLayout};
use crate::os;
use crate::policy::LockPolicy;
use crate::residency::Residency;

/// A packed box's slot.
pub(crate) struct PackedSlot {
    page: &'static PageMeta,
    index: usize,
    /// First byte of the slot.
    slot: NonNull<u8>,
    pub(crate) layout: PackedLayout,
    /// On a page of secret memory.
    secret: bool,
    origin: Origin,
}

// SAFETY: the slot's bytes belong to this handle alone; the page metadata is
// atomics only.
unsafe impl Send for PackedSlot {}
// SAFETY: `&PackedSlot` only reads.
unsafe impl Sync for PackedSlot {}

impl PackedSlot {
    /// Makes a packed slot for `layout`, its canaries written and its value
    /// bytes zero.
    ///
    /// Under [`LockPolicy::BestEffort`], if no page can be locked, the slot
    /// is on a best-effort page: guarded and advised like any other, not
    /// locked until the limit leaves room (see `alloc::claim_packed`); such
    /// pages hold no value that asked for a lock.
    #[inline]
    pub(crate) fn new(layout: PackedLayout, lock: LockPolicy, kind: Kind) -> Result<Self, Error> {
        let PackedClaim { page, index } = alloc::claim_packed(layout.class(), lock, kind)?;
        debug_assert_eq!(page.slots(), os::page_size() / layout.slot_size);
        // SAFETY: `index < slots`, so the slot lies inside the page, which
        // is open while we hold the slot's bit.
        let slot = unsafe { page.addr().add(index * layout.slot_size) };
        let canary = *process_canary();
        // SAFETY: we hold the slot's bit, so its bytes are ours; both canaries
        // lie inside the slot (see `PackedLayout`, and `front` and `back`,
        // which name the same bytes); `[u8; N]` has alignment 1. Written
        // through `slot` before the handle exists, so that the handle is
        // built once, in place, rather than in memory and copied out.
        unsafe { slot.cast::<[u8; CANARY_LEN]>().write(canary) };
        // SAFETY: the back canary lies inside the slot.
        let back = unsafe { slot.add(layout.back_canary_offset) };
        // SAFETY: as for the front canary.
        unsafe { back.cast::<[u8; CANARY_LEN]>().write(canary) };
        Ok(PackedSlot {
            page,
            index,
            slot,
            layout,
            secret: kind.secret,
            origin: Origin::here(kind.fork),
        })
    }

    /// The first byte of the value.
    #[inline]
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
    /// What memory the slot is.
    pub(crate) fn kind(&self) -> Kind {
        Kind {
            fork: self.origin.fork,
            secret: self.secret,
        }
    }

    /// Whether the slot's page exists in this process.
    #[inline]
    pub(crate) fn present(&self) -> bool {
        self.origin.present()
    }

    /// Whether the slot's page is mlocked in this process (packed pages
    /// always are, but not in a fork child).
    pub(crate) fn is_locked(&self) -> bool {
        !self.origin.inherited() && self.page.is_locked()
    }

    pub(crate) fn residency(&self) -> io::Result<Residency> {
        let (resident, total) = os::residency(self.page.addr(), os::page_size())?;
        Ok(Residency { resident, total })
    }

    /// Aborts, with one line on stderr, unless both canaries and the zero
    /// padding between the front canary and the value are intact.
    #[inline]
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
        if front == *expected && back == *expected && padding.iter().all(|&b| b == 0) {
            return;
        }
        self.smashed(front != *expected || padding.iter().any(|&b| b != 0));
    }

    #[cold]
    #[inline(never)]
    fn smashed(&self, before: bool) -> ! {
        eprintln!(
            "lockedmem: the canary {} a {}-byte packed secret (slot {} of {}-byte slots in the \
             page at {:p}) was overwritten ({}); aborting",
            if before { "before" } else { "after" },
            self.layout.size,
            self.index,
            self.layout.slot_size,
            self.page.addr(),
            if before {
                "buffer underflow or stray write"
            } else {
                "buffer overflow"
            },
        );
        process::abort();
    }
}

impl Drop for PackedSlot {
    /// Wipes the slot's canaries, padding and value, and frees it. The owner
    /// has dropped the value and verified the canaries.
    #[inline]
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
        alloc::free_packed(self.page, self.index);
    }
}
