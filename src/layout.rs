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
    pub(crate) fn data_start(&self) -> usize {
        self.guard_len
    }

    /// Number of data pages.
    #[cfg(test)]
    fn data_pages(&self) -> usize {
        self.data_len / self.page
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
