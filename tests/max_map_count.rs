//! The crate at `vm.max_map_count`, where any split of a mapping (by
//! mprotect, mlock, munlock, munmap of part of one) fails with `ENOMEM`.
//!
//! The rules: `locked_bytes()` always matches what is really locked
//! (VmLck), a page that trim cannot close is still accounted open and a
//! later trim closes it; an empty slab that cannot be unmapped stays in
//! `stats()` until a later trim unmaps it; a sealed box that is not locked
//! still borrows and drops.
//!
//! Each test fills the process's mappings to the limit, so each runs in a
//! child process of its own.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{
    become_unprivileged, bytes_delta, child, kb_delta_bytes, packed, page_size, procfs, start_of,
};
use lockedmem::{Isolation, LockPolicy, LockedBox, Options};

/// `VmLck` in kB, read without allocating and without making a mapping:
/// usable while the process is at `vm.max_map_count`.
fn vm_lck_kb_no_alloc() -> u64 {
    let mut buf = [0u8; 16 * 1024];
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "expected to open /proc/self/status");
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => len += n,
            _ => break,
        }
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    buf[..len]
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"VmLck:"))
        .map(|rest| {
            rest.iter()
                .filter(|d| d.is_ascii_digit())
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
        })
        .expect("expected a VmLck line in /proc/self/status")
}

/// One-page anonymous mappings made until mmap(2) fails with `ENOMEM`: the
/// process is then at `vm.max_map_count`, where any split of a mapping (by
/// mprotect, mlock, munlock) fails with `ENOMEM`. Consecutive mappings
/// alternate `PROT_READ` and `PROT_NONE`, so that the kernel cannot merge
/// them.
struct Filler {
    maps: Vec<usize>,
}

impl Filler {
    fn to_the_limit() -> Filler {
        let max = procfs::max_map_count();
        let page = page_size();
        // Allocated up front: nothing below may need a new mapping.
        let mut maps = Vec::with_capacity(max + 64);
        loop {
            let prot = if maps.len() % 2 == 0 {
                libc::PROT_READ
            } else {
                libc::PROT_NONE
            };
            // SAFETY: a fresh anonymous mapping at an address the kernel
            // picks; nothing else is affected.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                let errno = std::io::Error::last_os_error().raw_os_error();
                assert_eq!(
                    errno,
                    Some(libc::ENOMEM),
                    "expected mmap to fail with ENOMEM at vm.max_map_count"
                );
                break;
            }
            maps.push(p as usize);
            assert!(
                maps.len() <= max + 32,
                "expected mmap to fail within vm.max_map_count = {max} mappings"
            );
        }
        // Give one back, so that a small allocation (a panic message) can
        // still get a mapping; a split still fails (map_count >= max).
        let mut f = Filler { maps };
        f.unmap_one();
        f
    }

    fn unmap_one(&mut self) {
        if let Some(p) = self.maps.pop() {
            // SAFETY: one of our own filler pages, which nothing refers into.
            let r = unsafe { libc::munmap(p as *mut libc::c_void, page_size()) };
            assert_eq!(r, 0, "expected munmap of a filler page to succeed");
        }
    }

    fn release(&mut self) {
        while !self.maps.is_empty() {
            self.unmap_one();
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.release();
    }
}

#[test]
fn trim_at_max_map_count_keeps_locked_bytes_equal_to_vm_lck() {
    let out = child::run(
        "trim_at_max_map_count_keeps_locked_bytes_equal_to_vm_lck",
        || {
            let page = page_size();
            let base_lck = procfs::vm_lck_kb();
            let base_bytes = lockedmem::locked_bytes();
            // Three packed pages' worth of 32-byte boxes (64 a page).
            let mut boxes: Vec<_> = (0..3 * 64)
                .map(|_| {
                    packed()
                        .zeroed::<[u8; 32]>()
                        .expect("expected a packed box")
                })
                .collect();
            let mut pages: Vec<usize> =
                boxes.iter().map(|b| start_of(&**b) / page * page).collect();
            pages.sort_unstable();
            pages.dedup();
            assert_eq!(
                pages.len(),
                3,
                "expected 192 packed 32-byte boxes on 3 pages"
            );
            let middle = pages[1];
            let merged = procfs::vma_at(pages[0]).expect("expected the first page mapped");
            println!(
                "open packed pages {pages:x?}; the mapping holding the first is {:#x}-{:#x} \
                 ({} pages)",
                merged.start,
                merged.end,
                merged.len() / page
            );
            boxes.retain(|b| start_of(&**b) / page * page != middle);
            assert_eq!(
                boxes.len(),
                128,
                "expected 64 boxes dropped, on the middle page"
            );
            let open_bytes = lockedmem::locked_bytes();
            assert_eq!(
                kb_delta_bytes(procfs::vm_lck_kb(), base_lck),
                bytes_delta(open_bytes, base_bytes),
                "expected locked_bytes() to match VmLck before the test proper"
            );

            // At the limit, closing the middle page needs a split.
            let mut filler = Filler::to_the_limit();
            lockedmem::trim();
            let at_limit_bytes = lockedmem::locked_bytes();
            let at_limit_lck = vm_lck_kb_no_alloc();
            let fillers = filler.maps.len();
            filler.release();

            println!(
                "{fillers} filler mappings; at the limit after trim: locked_bytes {at_limit_bytes} \
                 (was {open_bytes}), VmLck {at_limit_lck} kB"
            );
            assert_eq!(
                kb_delta_bytes(at_limit_lck, base_lck),
                bytes_delta(at_limit_bytes, base_bytes),
                "expected locked_bytes() ({at_limit_bytes}) to match VmLck ({at_limit_lck} kB) \
                 after trim() at vm.max_map_count"
            );
            assert!(
                at_limit_bytes == open_bytes || at_limit_bytes == open_bytes - page,
                "expected the emptied page either still accounted open ({open_bytes}) or really \
                 closed ({}), locked_bytes() is {at_limit_bytes}",
                open_bytes - page
            );

            // Away from the limit, trim closes it.
            lockedmem::trim();
            let bytes = lockedmem::locked_bytes();
            let lck = procfs::vm_lck_kb();
            assert_eq!(
                bytes,
                open_bytes - page,
                "expected the emptied page closed by trim() once below vm.max_map_count"
            );
            assert_eq!(
                kb_delta_bytes(lck, base_lck),
                bytes_delta(bytes, base_bytes),
                "expected VmLck ({lck} kB) to match locked_bytes() ({bytes}) after the second trim"
            );
            let vma = procfs::vma_at(middle).expect("expected the page still mapped");
            assert!(
                vma.perms == "---p" && !vma.has("lo"),
                "expected the emptied page PROT_NONE and unlocked, found {} {:?}",
                vma.perms,
                vma.flags
            );
            drop(boxes);
        },
    );
    child::expect_success(
        &out,
        "trim() at vm.max_map_count to keep locked_bytes() equal to VmLck, and a later trim \
         to close the page",
    );
}

#[test]
fn a_sealed_unlocked_box_borrows_and_drops_at_max_map_count() {
    let out = child::run(
        "a_sealed_unlocked_box_borrows_and_drops_at_max_map_count",
        || {
            become_unprivileged(0);
            let mut b = Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .expect("expected an unlocked BestEffort box");
            assert!(!b.is_locked(), "expected the box to be unlocked (limit 0)");
            assert_eq!(
                b.isolation(),
                Isolation::Page,
                "expected a page-isolated box"
            );
            b.fill(0x5A);
            let addr = start_of(&*b);
            let sealed = b.seal().expect("expected seal() to succeed");
            let vma = procfs::vma_at(addr).expect("expected the sealed page mapped");
            println!(
                "sealed data page {addr:#x} lies in a {} mapping of {} pages",
                vma.perms,
                vma.len() / page_size()
            );

            let mut filler = Filler::to_the_limit();
            let read = catch_unwind(AssertUnwindSafe(|| *sealed.borrow()));
            // Dropping it at the limit must not abort either.
            drop(sealed);
            filler.release();

            match read {
                Ok(v) => assert!(
                    v.iter().all(|&x| x == 0x5A),
                    "expected the sealed value to read back at vm.max_map_count"
                ),
                Err(_) => panic!(
                    "expected borrow() of a sealed unlocked box not to panic at vm.max_map_count"
                ),
            }
        },
    );
    child::expect_success(
        &out,
        "borrow() and drop of a sealed unlocked box to work at vm.max_map_count",
    );
}

/// Empty slabs of neighbouring size classes merge (same protection, same
/// advice), so unmapping one of them needs a split, which fails at
/// vm.max_map_count. The slab must then stay accounted (and be unmapped by
/// a later trim), not vanish from `stats()` while still mapped.
#[test]
fn an_empty_slab_that_cannot_be_unmapped_at_max_map_count_stays_counted() {
    let out = child::run(
        "an_empty_slab_that_cannot_be_unmapped_at_max_map_count_stays_counted",
        || {
            lockedmem::set_cache_limit(0);
            let base = common::crate_mapping_count();
            // Three slabs of different size classes, mapped one after the
            // other (the kernel places them side by side).
            let boxes = (
                LockedBox::<[u8; 5000]>::new_zeroed().expect("a two-page box"),
                LockedBox::<[u8; 32]>::new_zeroed().expect("a one-page box"),
                LockedBox::<[u8; 9000]>::new_zeroed().expect("a three-page box"),
            );
            drop(boxes);
            let merged = common::crate_mappings_since(base);
            println!(
                "three empty slabs take {merged} lines; stats {:?}",
                lockedmem::stats()
            );
            let mut filler = Filler::to_the_limit();
            lockedmem::trim();
            // Counted once the filler is gone (reading /proc allocates);
            // nothing of the crate's changes in between.
            filler.release();
            let lines = common::crate_mappings_since(base);
            let counted = lockedmem::stats().mappings;
            println!("at the limit after trim: {lines} lines, stats().mappings {counted}");
            assert!(
                counted >= lines,
                "expected stats().mappings ({counted}) never below the crate's lines of \
                 /proc/self/maps ({lines}) after trim() at vm.max_map_count"
            );
            lockedmem::trim();
            assert_eq!(
                common::crate_mappings_since(base),
                0,
                "expected trim() below the limit to unmap every empty slab"
            );
            assert_eq!(lockedmem::stats().mappings, 0, "{:?}", lockedmem::stats());
        },
    );
    child::expect_success(
        &out,
        "an unmappable slab stays counted and a later trim unmaps it",
    );
}
