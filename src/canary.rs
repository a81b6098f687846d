//! The per-process canary, the canary a slot must carry, and the wipe.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::OnceLock;

use zeroize::Zeroize;

use crate::fork::Origin;
use crate::layout::CANARY_LEN;
use crate::os;

/// The canary every slot of this process carries: random per process,
/// drawn once. Its first byte is zero, so that a string copy running into it
/// from below stops there; at least one other byte is nonzero, so it never
/// matches the zeros of a wiped page.
#[inline]
pub(crate) fn process_canary() -> &'static [u8; CANARY_LEN] {
    static CANARY: OnceLock<[u8; CANARY_LEN]> = OnceLock::new();
    CANARY.get_or_init(|| {
        let mut c = [0u8; CANARY_LEN];
        if os::random(&mut c).is_err() {
            // No getrandom (Linux < 3.17): fall back on what varies per
            // process. Weaker, but a canary that is not secret still catches
            // accidental overwrites.
            let seed = (&raw const CANARY as usize as u64)
                ^ u64::from(os::process_id()).rotate_left(32)
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

/// The canary a slot of this origin must carry: the process canary, or
/// zeros where the kernel wiped the slot's pages in this fork child.
#[inline]
pub(crate) fn expected_canary(origin: &Origin) -> &'static [u8; CANARY_LEN] {
    if origin.wiped_by_fork() {
        &[0; CANARY_LEN]
    } else {
        process_canary()
    }
}

/// Zeroizes `len` bytes at `addr` with volatile word writes (`zeroize`) the
/// optimiser cannot remove.
///
/// # Safety
/// `addr` is 8-byte aligned and `len` a multiple of 8; the range is mapped
/// readable and writable, and no reference into it is alive.
#[inline]
pub(crate) unsafe fn wipe(addr: NonNull<u8>, len: usize) {
    debug_assert!(addr.as_ptr().align_offset(8) == 0 && len % 8 == 0);
    // SAFETY: forwarded from the caller's contract: an aligned, writable,
    // unaliased range of `len / 8` words.
    let words = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u64>().as_ptr(), len / 8) };
    words.zeroize();
}

/// Writes `len` zero bytes at `at` with volatile writes the optimiser cannot
/// remove, one byte at a time: for ranges [`wipe`] cannot take (unaligned,
/// or holding padding bytes, which a `&mut [u8]` could not cover). The
/// same loop the last wipe and the signal handlers use (`os::zero_bytes`).
pub(crate) use crate::os::zero_bytes as wipe_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_shape() {
        let c = process_canary();
        assert_eq!(c[0], 0, "first byte stops string copies");
        assert!(c[1..].iter().any(|&b| b != 0), "never all zeros");
        assert_eq!(c, process_canary(), "one per process");
    }

    #[test]
    fn wipe_clears_exactly_the_range() {
        let mut buf = [u64::MAX; 8];
        let base = NonNull::from(&mut buf).cast::<u8>();
        // SAFETY: byte 16 of a 64-byte local array.
        let at = unsafe { base.add(16) };
        // SAFETY: words 2..6 of a local array, aligned, no reference alive.
        unsafe { wipe(at, 32) };
        assert_eq!(buf, [!0, !0, 0, 0, 0, 0, !0, !0]);
    }

    #[test]
    fn wipe_bytes_clears_exactly_the_range() {
        let mut buf = [0xffu8; 8];
        // SAFETY: bytes 3..6 of a local array, no reference alive.
        unsafe { wipe_bytes(buf.as_mut_ptr().wrapping_add(3), 3) };
        assert_eq!(buf, [0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0xff]);
    }
}
