//! What a page-isolated box holds: a [`PageSlot`], data pages between guard
//! pages, and where they came from (a slot of a slab, or a mapping of its
//! own).
#![allow(unsafe_code)]

use std::ptr::NonNull;

use crate::alloc::keys::Kind;
use crate::alloc::page_slab::SlotId;
use crate::alloc::pages::Mapping;
use crate::alloc::shard::Cached;
use crate::fork::Origin;

/// Data pages of a page-isolated box, with guard pages on both sides.
///
/// Invariants: `data..data + data_len` is mapped read-write (unless a sealed
/// box changed that; see `Region`), holds no value when the slot is in a
/// cache, and is zero there; it is locked iff `locked`; nobody else holds
/// the same slot.
pub(crate) struct PageSlot {
    pub(crate) data: NonNull<u8>,
    pub(crate) data_len: usize,
    pub(super) home: Home,
    pub(crate) locked: bool,
    /// Secret memory (memfd_secret(2)) rather than anonymous.
    pub(crate) secret: bool,
    pub(crate) origin: Origin,
}

/// Where a page-isolated slot's pages came from.
pub(super) enum Home {
    /// A mapping of its own (values above `MAX_SLAB_PAGES` pages), boxed:
    /// a slot moves on every make and drop, and slab slots, the common case,
    /// are small.
    Solo(Box<Mapping>),
    /// A slot of a slab of the pool's page class `class`.
    Slab { class: usize, id: SlotId },
}

// SAFETY: the slot owns its pages exclusively; nothing in it is tied to a
// thread (its slab is named by indices, looked up under the class mutex).
unsafe impl Send for PageSlot {}
// SAFETY: `&PageSlot` allows reading its fields only.
unsafe impl Sync for PageSlot {}

impl Cached for PageSlot {
    fn bytes(&self) -> usize {
        self.data_len
    }
}

impl PageSlot {
    /// Whether a request for `data_len` bytes of `kind` can take it.
    pub(super) fn fits(&self, data_len: usize, kind: Kind) -> bool {
        self.data_len == data_len && self.origin.fork == kind.fork && self.secret == kind.secret
    }
}
