//! Fuzzes `Layout::new` through `lockedmem::fuzzing::layout`, which panics if
//! a layout breaks an invariant or a refusal was not justified.
//!
//! The raw bytes are turned into `(size, align, page)` with a bias towards the
//! edges: power-of-two alignments and page sizes, sizes near `usize::MAX`,
//! near `isize::MAX`, near the largest size that still fits, near multiples
//! of the page, and small sizes.
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Length of the canary the crate puts in front of every value.
const CANARY_LEN: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok((size, align, page)) = input(&mut u) {
        lockedmem::fuzzing::layout(size, align, page);
    }
});

fn input(u: &mut Unstructured<'_>) -> Result<(usize, usize, usize)> {
    let align = align(u)?;
    let page = page(u)?;
    let size = size(u, align, page)?;
    Ok((size, align, page))
}

/// Mostly a power of two up to 2^15; sometimes any power of two (so above
/// the page too) or any word at all (zero and non-powers of two included).
fn align(u: &mut Unstructured<'_>) -> Result<usize> {
    // Selector 0 (what an exhausted input yields) picks the common case.
    Ok(match u.int_in_range(0..=15u8)? {
        0..=13 => 1usize << (u.arbitrary::<u8>()? % 16),
        14 => 1usize << (u.arbitrary::<u8>()? % 64),
        _ => u.arbitrary()?,
    })
}

/// Mostly a power of two up to 2^23 (including the ones below the canary
/// length); sometimes a huge power of two, a near-miss of a power of two, or
/// any word at all.
fn page(u: &mut Unstructured<'_>) -> Result<usize> {
    Ok(match u.int_in_range(0..=15u8)? {
        0..=11 => 1usize << (u.arbitrary::<u8>()? % 24),
        12 => 1usize << (u.arbitrary::<u8>()? % 64),
        13 => {
            let p = 1usize << (u.arbitrary::<u8>()? % 24);
            p.wrapping_add(delta(u)?)
        }
        14 => usize::from(u.arbitrary::<u16>()?),
        _ => u.arbitrary()?,
    })
}

/// A small signed offset, as a wrapping `usize`.
fn delta(u: &mut Unstructured<'_>) -> Result<usize> {
    let d: i8 = u.arbitrary()?;
    Ok(d as isize as usize)
}

fn size(u: &mut Unstructured<'_>, align: usize, page: usize) -> Result<usize> {
    let page_mask = if page.is_power_of_two() {
        !(page - 1)
    } else {
        usize::MAX
    };
    let size = match u.int_in_range(0..=9u8)? {
        0 | 1 => usize::from(u.arbitrary::<u16>()?),
        2 => usize::from(u.arbitrary::<u8>()?),
        3 => u.arbitrary()?,
        4 => usize::MAX.wrapping_add(delta(u)?),
        5 => (isize::MAX as usize).wrapping_add(delta(u)?),
        // Around the largest size whose mapping (two guards) still fits.
        6 => ((isize::MAX as usize).wrapping_sub(page.wrapping_mul(2)) & page_mask)
            .wrapping_sub(CANARY_LEN)
            .wrapping_add(delta(u)?),
        // Around a multiple of the page, minus the canary or not.
        7 | 8 => {
            let pages = usize::from(u.arbitrary::<u16>()?);
            let base = page.wrapping_mul(pages);
            let base = if u.arbitrary()? {
                base.wrapping_sub(CANARY_LEN)
            } else {
                base
            };
            base.wrapping_add(delta(u)?)
        }
        // Around a huge multiple of the page.
        _ => page
            .wrapping_mul(u.arbitrary::<usize>()?)
            .wrapping_add(delta(u)?),
    };
    // Usually a size a Rust type could have (a multiple of its alignment), so
    // that the layout is computed rather than refused as `BadAlign`.
    let round = align.is_power_of_two() && u.int_in_range(0..=3u8)? != 3;
    Ok(if round { size & !(align - 1) } else { size })
}
