//! Slabs of page-isolated slots: one mapping of up to 64 slots of `k` data
//! pages each, neighbouring slots sharing a guard page
//! (`layout::SlabGeometry`), and the slabs of one size class and fork
//! policy.
//!
//! A slab is an owning type: its [`Mapping`] is unmapped (`Mapping::unmap`,
//! kept and retried if that fails) when the slab is
//! dropped, which happens only when no slot of it is open. Slots are named
//! by the slab's index in its class and the slot's index in the slab, so no
//! pointer to a slab ever leaves this module.
#![forbid(unsafe_code)]

use std::ptr::NonNull;

use crate::alloc::pages::Mapping;
use crate::alloc::secret_files::SecretFile;
use crate::error::Error;
use crate::layout::SlabGeometry;
use crate::policy::ForkPolicy;

/// One slab.
#[derive(Debug)]
struct PageSlab {
    mapping: Mapping,
    /// Bit `i` set: slot `i` is open (read-write, in a box or a cache), or
    /// being opened or closed by whoever set it.
    open: u64,
}

/// Where a reserved slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotId {
    /// The slab's index in its class.
    pub(crate) slab: usize,
    /// The slot's index in its slab.
    pub(crate) index: usize,
}

/// The slabs of one size class and fork policy.
#[derive(Debug, Default)]
pub(crate) struct PageClass {
    /// Indexed by `SlotId::slab`; `None` where a slab was unmapped (its
    /// index is reused by the next slab).
    slabs: Vec<Option<PageSlab>>,
}

impl PageClass {
    /// Reserves a closed slot, mapping a new slab if every slab is full.
    /// Returns the slot and its first data byte; the slot is still closed.
    pub(crate) fn reserve(
        &mut self,
        geo: SlabGeometry,
        fork: ForkPolicy,
        secret: bool,
    ) -> Result<(SlotId, NonNull<u8>, Option<SecretFile>), Error> {
        let full = geo.all_slots();
        let found = self
            .slabs
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.open != full));
        let slab = match found {
            Some(i) => i,
            None => {
                let mapping = if secret {
                    debug_assert_eq!(fork, ForkPolicy::Exclude);
                    Mapping::new_secret(geo.map_len)?
                } else {
                    Mapping::new(geo.map_len, fork)?
                };
                let fresh = PageSlab { mapping, open: 0 };
                match self.slabs.iter().position(Option::is_none) {
                    Some(i) => {
                        self.slabs[i] = Some(fresh);
                        i
                    }
                    None => {
                        self.slabs.push(Some(fresh));
                        self.slabs.len() - 1
                    }
                }
            }
        };
        let s = self.slabs[slab].as_mut().expect("a live slab");
        let index = first_free(s.open, geo.slots).expect("a slab with a free slot");
        s.open |= 1 << index;
        let data = s.mapping.at(geo.slot_offset(index));
        Ok((
            SlotId { slab, index },
            data,
            s.mapping.secret_file().cloned(),
        ))
    }

    /// Gives a closed slot back.
    pub(crate) fn release(&mut self, id: SlotId) {
        let s = self.slabs[id.slab]
            .as_mut()
            .expect("the slot's slab is live");
        debug_assert!(s.open & (1 << id.index) != 0, "the slot was reserved");
        s.open &= !(1 << id.index);
    }

    /// Unmaps empty slabs beyond the first `keep`; returns how many.
    pub(crate) fn unmap_empty(&mut self, keep: usize) -> usize {
        let mut kept = 0;
        let mut unmapped = 0;
        for entry in &mut self.slabs {
            if entry.as_ref().is_some_and(|s| s.open == 0) {
                if kept < keep {
                    kept += 1;
                    continue;
                }
                let slab = entry.take().expect("checked above");
                match slab.mapping.unmap() {
                    Ok(()) => unmapped += 1,
                    // Kept, empty, for the next trim to try again.
                    Err(mapping) => *entry = Some(PageSlab { mapping, open: 0 }),
                }
            }
        }
        while self.slabs.last().is_some_and(Option::is_none) {
            self.slabs.pop();
        }
        unmapped
    }

    /// Mappings (lines of /proc/self/maps) the class's slabs cost: a slab
    /// is one mapping, split in two more by each open slot (closed slots
    /// merge back with the guard pages around them).
    pub(crate) fn mappings(&self) -> usize {
        self.slabs
            .iter()
            .flatten()
            .map(|s| 1 + 2 * s.open.count_ones() as usize)
            .sum()
    }
}

/// The lowest clear bit of `open` below `slots`, if any.
pub(crate) fn first_free(open: u64, slots: usize) -> Option<usize> {
    let index = open.trailing_ones() as usize;
    if index < slots {
        return Some(index);
    }
    (0..slots).find(|&i| open & (1 << i) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_table() {
        assert_eq!(first_free(0, 64), Some(0));
        assert_eq!(first_free(0b1011, 64), Some(2));
        assert_eq!(first_free(u64::MAX, 64), None);
        assert_eq!(first_free(0b1111, 4), None);
        assert_eq!(first_free(0b0111, 4), Some(3));
        assert_eq!(first_free(u64::MAX >> 1, 64), Some(63));
    }

    #[test]
    fn reserve_release_and_unmap() {
        let page = crate::os::page_size();
        let geo = SlabGeometry::new(1, page).unwrap();
        let mut class = PageClass::default();
        let ids: Vec<_> = (0..geo.slots + 1)
            .map(|_| class.reserve(geo, ForkPolicy::Keep, false).unwrap().0)
            .collect();
        assert_eq!(ids[0], SlotId { slab: 0, index: 0 });
        assert_eq!(ids[geo.slots], SlotId { slab: 1, index: 0 }, "second slab");
        assert_eq!(class.mappings(), 2 + 2 * (geo.slots + 1));
        for id in ids {
            class.release(id);
        }
        assert_eq!(class.unmap_empty(1), 1, "one empty slab kept");
        assert_eq!(class.mappings(), 1);
        assert_eq!(class.unmap_empty(0), 1);
        assert_eq!(class.mappings(), 0);
    }
}
