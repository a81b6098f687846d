//! Where everything sits inside one box's mapping: pure arithmetic, no system
//! calls, every step checked for overflow.
//!
//! ```text
//!  guard page        data page(s)                                  guard page
//!  [ PROT_NONE ] [ zero padding ... | canary | value ........ ] [ PROT_NONE ]
//!  ^ map start   ^ data start         ^ canary_offset             ^ data end
//!                                              ^ value_offset      = value end
//! ```
//!
//! The value ends on the last byte of the last data page, so a linear overflow
//! faults on its first byte. The canary sits directly in front of the value,
//! so an underflow crosses it before it reaches the leading guard.
#![forbid(unsafe_code)]

/// Length of the canary in front of every value, in bytes.
pub(crate) const CANARY_LEN: usize = 16;

/// Why no layout exists for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// The value, its canary and its guard pages do not fit in `isize::MAX` bytes.
    TooLarge,
    /// The value asks for an alignment above the page size, which a value that
    /// must end on a page boundary cannot always honour.
    AlignTooLarge,
    /// The alignment is not a power of two, or the size is not a multiple of
    /// it: no Rust type has such a layout.
    BadAlign,
    /// The page size is not a power of two at least `CANARY_LEN` bytes long.
    BadPageSize,
}

/// The placement of one value in its own guarded mapping. All offsets are in
/// bytes; `value_offset` and `canary_offset` count from the start of the data
/// pages, the others from the start of the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Page size the layout was computed for.
    pub(crate) page: usize,
    /// Length of each guard area (leading and trailing).
    pub(crate) guard_len: usize,
    /// Length of the data pages: a whole number of pages, at least one.
    pub(crate) data_len: usize,
    /// Where the canary starts, from the start of the data pages.
    pub(crate) canary_offset: usize,
    /// Where the value starts, from the start of the data pages.
    pub(crate) value_offset: usize,
    /// Size of the value in bytes (`value_offset + size == data_len`).
    pub(crate) size: usize,
    /// Length of the whole mapping: guard, data, guard.
    pub(crate) map_len: usize,
}

impl Layout {
    /// Lays out a value of `size` bytes and alignment `align` behind a canary,
    /// flush against a trailing guard page.
    #[inline]
    pub(crate) fn new(size: usize, align: usize, page: usize) -> Result<Self, LayoutError> {
        if !page.is_power_of_two() || page < CANARY_LEN {
            return Err(LayoutError::BadPageSize);
        }
        if !align.is_power_of_two() || size % align != 0 {
            return Err(LayoutError::BadAlign);
        }
        if align > page {
            return Err(LayoutError::AlignTooLarge);
        }
        let needed = size.checked_add(CANARY_LEN).ok_or(LayoutError::TooLarge)?;
        let data_len = round_up(needed, page).ok_or(LayoutError::TooLarge)?;
        let guard_len = page;
        let map_len = guard_len
            .checked_mul(2)
            .and_then(|guards| guards.checked_add(data_len))
            .filter(|&len| isize::try_from(len).is_ok())
            .ok_or(LayoutError::TooLarge)?;
        // Cannot underflow: data_len >= size + CANARY_LEN.
        let value_offset = data_len - size;
        let canary_offset = value_offset - CANARY_LEN;
        Ok(Layout {
            page,
            guard_len,
            data_len,
            canary_offset,
            value_offset,
            size,
            map_len,
        })
    }

    /// Offset of the first data byte from the start of the mapping.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn data_start(&self) -> usize {
        self.guard_len
    }

    /// Number of data pages.
    #[cfg(test)]
    fn data_pages(&self) -> usize {
        self.data_len / self.page
    }
}

/// Page-isolated values of up to this many data pages come from slabs (and
/// are recycled through the caches); larger ones get a mapping of their own.
pub(crate) const MAX_SLAB_PAGES: usize = 64;

/// Where the slots of one slab sit. A slab is one mapping of `slots` slots of
/// `data_pages` pages each, every slot followed by one guard page and the
/// first preceded by one, so neighbouring slots share a guard:
///
/// ```text
/// [G][slot 0][G][slot 1][G] ... [G][slot n-1][G]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabGeometry {
    pub(crate) page: usize,
    /// Data pages per slot.
    pub(crate) data_pages: usize,
    /// Slots in the slab, at most 64 (one bit each in a `u64`).
    pub(crate) slots: usize,
    /// Bytes from one slot's start to the next: its data pages and one guard.
    pub(crate) stride: usize,
    /// Length of the whole slab mapping.
    pub(crate) map_len: usize,
}

impl SlabGeometry {
    /// The geometry for slots of `data_pages` pages, or `None` if such slots
    /// are not carved from slabs (zero or more than [`MAX_SLAB_PAGES`], or a
    /// slab that would not fit in `isize::MAX` bytes).
    #[inline]
    pub(crate) fn new(data_pages: usize, page: usize) -> Option<Self> {
        if data_pages == 0 || data_pages > MAX_SLAB_PAGES || !page.is_power_of_two() {
            return None;
        }
        // About 512 pages of address space a slab, 4 to 64 slots.
        let slots = (512 / (data_pages + 1)).clamp(4, 64);
        let stride = (data_pages + 1).checked_mul(page)?;
        let map_len = slots
            .checked_mul(stride)?
            .checked_add(page)
            .filter(|&len| isize::try_from(len).is_ok())?;
        Some(SlabGeometry {
            page,
            data_pages,
            slots,
            stride,
            map_len,
        })
    }

    /// Offset of slot `i`'s first data byte from the start of the slab.
    pub(crate) fn slot_offset(&self, i: usize) -> usize {
        debug_assert!(i < self.slots);
        self.page + i * self.stride
    }

    /// Bytes of data in one slot.
    pub(crate) fn data_len(&self) -> usize {
        self.data_pages * self.page
    }

    /// A mask with one bit set for each slot.
    pub(crate) fn all_slots(&self) -> u64 {
        if self.slots == 64 {
            u64::MAX
        } else {
            (1u64 << self.slots) - 1
        }
    }
}

/// The largest value a packed box holds.
pub(crate) const PACKED_MAX_SIZE: usize = 2048;
/// The largest alignment a packed box honours.
pub(crate) const PACKED_MAX_ALIGN: usize = 16;
/// The smallest packed slot.
pub(crate) const PACKED_MIN_SLOT: usize = 64;
/// Packed size classes: slots of 64, 128, ... 4096 bytes.
pub(crate) const PACKED_CLASSES: usize = 7;

const _: () = assert!(PACKED_MIN_SLOT << (PACKED_CLASSES - 1) >= PACKED_MAX_SIZE + 2 * CANARY_LEN);

/// Where a small value sits in a packed slot, a power-of-two share of a
/// page, between two canaries:
///
/// ```text
/// [ canary | zero padding ... | value | canary ]
///   ^ slot start                       ^ back_canary_offset
/// ```
///
/// The value ends at the back canary, so a one-byte overflow lands on it;
/// an underflow crosses the padding (which must stay zero) and then the
/// front canary. Both are checked when the box is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedLayout {
    /// Bytes per slot: a power of two from 64 to the page size.
    pub(crate) slot_size: usize,
    /// Where the value starts, from the slot's start.
    pub(crate) value_offset: usize,
    /// Where the back canary starts, from the slot's start.
    pub(crate) back_canary_offset: usize,
    /// Size of the value.
    pub(crate) size: usize,
}

impl PackedLayout {
    /// The packed layout for a value, or `None` if it is too large or too
    /// aligned to be packed (it is then page-isolated).
    #[inline]
    pub(crate) fn new(size: usize, align: usize, page: usize) -> Option<Self> {
        if size > PACKED_MAX_SIZE
            || !page.is_power_of_two()
            || !align.is_power_of_two()
            || align > PACKED_MAX_ALIGN
            // `align` is a power of two here: the remainder without a division.
            || size & (align - 1) != 0
        {
            return None;
        }
        let slot_size = (size + 2 * CANARY_LEN)
            .next_power_of_two()
            .max(PACKED_MIN_SLOT);
        if slot_size > page {
            return None;
        }
        Some(PackedLayout {
            slot_size,
            value_offset: slot_size - CANARY_LEN - size,
            back_canary_offset: slot_size - CANARY_LEN,
            size,
        })
    }

    /// Size class index: 0 for 64-byte slots, 1 for 128, and so on, below
    /// [`PACKED_CLASSES`].
    pub(crate) fn class(&self) -> usize {
        (self.slot_size / PACKED_MIN_SLOT).trailing_zeros() as usize
    }

    /// Slots per page.
    #[cfg(test)]
    pub(crate) fn slots_per_page(&self, page: usize) -> usize {
        page / self.slot_size
    }
}

/// Rounds `n` up to a multiple of the power of two `to`, or `None` on overflow.
pub(crate) fn round_up(n: usize, to: usize) -> Option<usize> {
    debug_assert!(to.is_power_of_two());
    n.checked_add(to - 1).map(|v| v & !(to - 1))
}

/// Panics unless `l`, made for a value of `size` bytes aligned to `align`,
/// has every property the rest of the crate relies on. Used by the unit tests
/// and the `layout` fuzz target.
#[cfg(any(test, fuzzing))]
pub(crate) fn check_invariants(l: &Layout, size: usize, align: usize) {
    assert!(l.page.is_power_of_two() && l.page >= CANARY_LEN);
    assert_eq!(l.size, size);
    assert_eq!(l.data_len % l.page, 0, "data is whole pages");
    assert!(l.data_len >= l.page, "at least one data page");
    assert_eq!(l.value_offset + size, l.data_len, "value ends at data end");
    assert_eq!(l.value_offset % align, 0, "value aligned");
    assert_eq!(
        l.canary_offset + CANARY_LEN,
        l.value_offset,
        "canary abuts value"
    );
    assert!(l.guard_len >= l.page, "guards are at least one page");
    assert_eq!(l.guard_len % l.page, 0, "guards are whole pages");
    assert_eq!(
        l.map_len,
        2 * l.guard_len + l.data_len,
        "guard, data, guard"
    );
    assert!(isize::try_from(l.map_len).is_ok(), "mapping fits in isize");
    assert_eq!(
        l.data_start(),
        l.guard_len,
        "data right after the leading guard"
    );
    assert!(
        l.data_len - size - CANARY_LEN < l.page,
        "no whole page wasted in front of the canary"
    );
}

/// Fuzzing entry: lays out any request and checks the result, or checks that
/// a refusal was justified.
#[cfg(fuzzing)]
pub(crate) fn fuzz(size: usize, align: usize, page: usize) {
    match Layout::new(size, align, page) {
        Ok(l) => check_invariants(&l, size, align),
        Err(LayoutError::BadPageSize) => {
            assert!(!page.is_power_of_two() || page < CANARY_LEN);
        }
        Err(LayoutError::BadAlign) => {
            assert!(!align.is_power_of_two() || size % align != 0);
        }
        Err(LayoutError::AlignTooLarge) => assert!(align > page),
        Err(LayoutError::TooLarge) => {
            // Refused only if guard + data + guard really exceeds isize::MAX.
            let needed = (size as u128) + CANARY_LEN as u128;
            let data = needed.div_ceil(page as u128) * page as u128;
            assert!(data + 2 * page as u128 > isize::MAX as u128);
        }
    }
    if let Ok(l) = Layout::new(size, align, page) {
        // A slab slot of the layout's size class holds it exactly.
        if let Some(g) = SlabGeometry::new(l.data_len / page, page) {
            assert_eq!(g.data_len(), l.data_len);
            assert!(g.slots >= 4 && g.slots <= 64);
            assert_eq!(g.all_slots().count_ones() as usize, g.slots);
            let last = g.slot_offset(g.slots - 1);
            assert_eq!(last + g.data_len() + page, g.map_len, "trailing guard");
            assert_eq!(g.slot_offset(0), page, "leading guard");
        } else {
            let pages = l.data_len / page;
            let slab_bytes = (pages as u128 + 1) * page as u128 * 64 + page as u128;
            assert!(pages > MAX_SLAB_PAGES || slab_bytes > isize::MAX as u128);
        }
    }
    match PackedLayout::new(size, align, page) {
        Some(p) => {
            assert!(size <= PACKED_MAX_SIZE && align <= PACKED_MAX_ALIGN);
            assert!(p.slot_size.is_power_of_two() && p.slot_size >= PACKED_MIN_SLOT);
            assert!(p.slot_size <= page && page % p.slot_size == 0);
            assert!(p.value_offset >= CANARY_LEN, "front canary fits");
            assert_eq!(
                p.value_offset + size,
                p.back_canary_offset,
                "value abuts back canary"
            );
            assert_eq!(p.back_canary_offset + CANARY_LEN, p.slot_size);
            assert_eq!(p.value_offset % align, 0, "aligned (slots are 16-aligned)");
            assert!(p.class() < PACKED_CLASSES);
            assert!(
                p.slot_size / 2 < size + 2 * CANARY_LEN || p.slot_size == PACKED_MIN_SLOT,
                "smallest class"
            );
        }
        None => assert!(
            size > PACKED_MAX_SIZE
                || !page.is_power_of_two()
                || !align.is_power_of_two()
                || align > PACKED_MAX_ALIGN
                || size % align != 0
                || (size + 2 * CANARY_LEN)
                    .next_power_of_two()
                    .max(PACKED_MIN_SLOT)
                    > page
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn table() {
        // (size, align, data pages, value offset)
        let cases = [
            (0, 1, 1, PAGE),
            (1, 1, 1, PAGE - 1),
            (32, 1, 1, PAGE - 32),
            (32, 8, 1, PAGE - 32),
            (PAGE - CANARY_LEN, 8, 1, CANARY_LEN),
            (PAGE - CANARY_LEN + 1, 1, 2, PAGE + CANARY_LEN - 1),
            (PAGE, 4096, 2, PAGE),
            (64 * 1024, 16, 17, PAGE),
        ];
        for (size, align, pages, value_offset) in cases {
            let l = Layout::new(size, align, PAGE).unwrap();
            check_invariants(&l, size, align);
            assert_eq!(l.data_pages(), pages, "size {size}");
            assert_eq!(l.value_offset, value_offset, "size {size}");
        }
    }

    #[test]
    fn other_page_sizes() {
        for page in [16, 4096, 16384, 65536] {
            for size in [0, 1, 15, 16, 17, page - CANARY_LEN, page, 3 * page + 5] {
                let l = Layout::new(size, 1, page).unwrap();
                check_invariants(&l, size, 1);
            }
        }
    }

    #[test]
    fn rejects_what_cannot_be_laid_out() {
        assert_eq!(Layout::new(usize::MAX, 1, PAGE), Err(LayoutError::TooLarge));
        assert_eq!(
            Layout::new(usize::MAX - CANARY_LEN, 1, PAGE),
            Err(LayoutError::TooLarge)
        );
        // Fits in usize but not, with its guards, in isize.
        assert_eq!(
            Layout::new(isize::MAX as usize - PAGE, 1, PAGE),
            Err(LayoutError::TooLarge)
        );
        assert_eq!(
            Layout::new(8192, 8192, PAGE),
            Err(LayoutError::AlignTooLarge)
        );
        assert_eq!(Layout::new(12, 8, PAGE), Err(LayoutError::BadAlign));
        assert_eq!(Layout::new(8, 3, PAGE), Err(LayoutError::BadAlign));
        assert_eq!(Layout::new(8, 1, 3000), Err(LayoutError::BadPageSize));
        assert_eq!(Layout::new(8, 1, 8), Err(LayoutError::BadPageSize));
    }

    #[test]
    fn largest_layout_that_fits() {
        let max = isize::MAX as usize;
        // The largest data length whose mapping (with two guard pages) still
        // fits in isize::MAX bytes.
        let data_len = (max - 2 * PAGE) & !(PAGE - 1);
        let size = data_len - CANARY_LEN;
        let l = Layout::new(size, 1, PAGE).unwrap();
        check_invariants(&l, size, 1);
        assert_eq!(Layout::new(size + 1, 1, PAGE), Err(LayoutError::TooLarge));
    }

    #[test]
    fn slab_geometry_table() {
        // (data pages, slots)
        for (pages, slots) in [(1, 64), (2, 64), (7, 64), (8, 56), (17, 28), (64, 7)] {
            let g = SlabGeometry::new(pages, PAGE).unwrap();
            assert_eq!(g.slots, slots, "{pages} pages");
            assert_eq!(g.map_len, PAGE + slots * (pages + 1) * PAGE);
            assert_eq!(g.slot_offset(0), PAGE, "one leading guard");
            // The last slot's data ends one guard page before the slab ends.
            assert_eq!(g.slot_offset(slots - 1) + g.data_len() + PAGE, g.map_len);
            for i in 1..slots {
                let gap = g.slot_offset(i) - (g.slot_offset(i - 1) + g.data_len());
                assert_eq!(gap, PAGE, "one shared guard page between slots");
            }
            assert_eq!(g.all_slots().count_ones() as usize, slots);
        }
        assert_eq!(SlabGeometry::new(0, PAGE), None);
        assert_eq!(SlabGeometry::new(MAX_SLAB_PAGES + 1, PAGE), None);
    }

    #[test]
    fn packed_layout_table() {
        // (size, align, slot size, value offset)
        let cases = [
            (0, 1, 64, 48),
            (1, 1, 64, 47),
            (32, 8, 64, 16),
            (33, 1, 128, 79),
            (96, 16, 128, 16),
            (2016, 16, 2048, 16),
            (2048, 16, 4096, 2032),
        ];
        for (size, align, slot, value_offset) in cases {
            let l = PackedLayout::new(size, align, PAGE).unwrap();
            assert_eq!(
                (l.slot_size, l.value_offset),
                (slot, value_offset),
                "size {size}"
            );
            assert_eq!(l.value_offset % align, 0);
            assert_eq!(
                l.value_offset + size,
                l.back_canary_offset,
                "value abuts back canary"
            );
            assert!(l.value_offset >= CANARY_LEN, "room for the front canary");
            assert_eq!(l.back_canary_offset + CANARY_LEN, l.slot_size);
            assert_eq!(PACKED_MIN_SLOT << l.class(), l.slot_size);
        }
        assert_eq!(PackedLayout::new(2049, 1, PAGE), None, "too large");
        assert_eq!(PackedLayout::new(64, 32, PAGE), None, "too aligned");
        assert_eq!(
            PackedLayout::new(1024, 1, 1024),
            None,
            "slot larger than the page"
        );
        assert_eq!(
            PackedLayout::new(2048, 16, PAGE).unwrap().class(),
            PACKED_CLASSES - 1,
            "the largest class"
        );
        assert_eq!(
            PackedLayout::new(32, 8, PAGE).unwrap().slots_per_page(PAGE),
            64
        );
    }

    #[test]
    fn round_up_edges() {
        assert_eq!(round_up(0, PAGE), Some(0));
        assert_eq!(round_up(1, PAGE), Some(PAGE));
        assert_eq!(round_up(PAGE, PAGE), Some(PAGE));
        assert_eq!(
            round_up(usize::MAX - PAGE + 1, PAGE),
            Some(usize::MAX - PAGE + 1)
        );
        assert_eq!(round_up(usize::MAX - PAGE + 2, PAGE), None);
    }
}
