//! Feature `allocator-api2`: a foreign collection's blocks are locked,
//! guarded, dump-proof memory, wiped on every free (so on every growth).
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]
#![cfg(feature = "allocator-api2")]

mod common;

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::vec::Vec;
use common::{child, memscan, procfs};
use lockedmem::{Isolation, LockPolicy, LockedAlloc};

/// Byte `i` of the secret: splitmix64 of `i`, so no 32-byte window repeats.
fn secret_byte(i: usize) -> u8 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).to_le_bytes()[0]
}

#[test]
fn blocks_are_locked_aligned_and_zeroed() {
    let a = LockedAlloc::new();
    for (size, align) in [
        (1, 1),
        (10, 8),
        (24, 16),
        (4096, 4096),
        (100_000, 64),
        (0, 32),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let block = a.allocate_zeroed(layout).unwrap();
        let p = block.cast::<u8>().as_ptr();
        assert_eq!(p as usize % align, 0, "aligned to {align}");
        assert!(block.len() >= size);
        if size > 0 {
            let vma = procfs::vma_at(p as usize).unwrap();
            assert!(vma.has("lo"), "{:?}", vma.flags);
            common::assert_default_advice(&vma);
            // SAFETY: `size` bytes of the block just allocated.
            let bytes = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|&b| b == 0), "zeroed");
        }
        // SAFETY: allocated above with this layout, freed once.
        unsafe { a.deallocate(block.cast(), layout) };
    }
    let too_aligned = Layout::from_size_align(64, 1 << 20).unwrap();
    assert!(a.allocate(too_aligned).is_err(), "above a page");
    let fork = common::default_fork();
    let packed = LockedAlloc::with(LockPolicy::Require, fork, Isolation::Packed);
    let mut v: Vec<u8, LockedAlloc> = Vec::new_in(packed);
    v.extend_from_slice(b"small");
    assert_eq!(&v[..], b"small");
    let vma = procfs::vma_at(v.as_ptr() as usize).unwrap();
    assert!(vma.has("lo"), "{:?}", vma.flags);
    common::assert_advised(&vma, fork);
}

#[test]
fn growth_leaves_one_copy() {
    let out = child::run("growth_leaves_one_copy", || {
        let mut v: Vec<u8, LockedAlloc> = Vec::new_in(LockedAlloc::new());
        for i in 0..100_000 {
            v.push(secret_byte(i)); // grows, and frees the old block, many times
        }
        let vma = procfs::vma_at(v.as_ptr() as usize).unwrap();
        assert!(vma.has("lo"), "{:?}", vma.flags);
        common::assert_default_advice(&vma);
        for from in [0, 50_000, 99_000] {
            let n = memscan::count(&memscan::Masked::from_fn(32, |i| secret_byte(from + i)));
            assert_eq!(n, 1, "bytes {from}.. found {n} times");
        }
        v.truncate(10);
        v.shrink_to_fit(); // moves to a smaller block: the large one is wiped
        assert_eq!(
            memscan::count(&memscan::Masked::from_fn(32, |i| secret_byte(50_000 + i))),
            0
        );
        drop(v);
        assert_eq!(
            memscan::count(&memscan::Masked::from_fn(32, secret_byte)),
            0
        );
    });
    child::assert_success(&out);
}
