//! The floor for a sealed borrow, without the crate: one page between two
//! guard pages, set up as a sealed box's data page is, opened for reading
//! and sealed again with a raw mprotect(2) pair. Shared by the `sealed`
//! and `shield` benches.
#![allow(dead_code, unreachable_pub)]

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

/// One page between two guard pages, mlocked and PROT_NONE: the same
/// starting point as a sealed box's data page, without the crate.
pub struct RawPage {
    page: *mut std::ffi::c_void,
    len: usize,
}

impl RawPage {
    pub fn new() -> Self {
        let len = rustix::param::page_size();
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                3 * len,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )
        }
        .expect("mmap");
        // SAFETY: the middle page of the mapping made above.
        let page = unsafe { map.cast::<u8>().add(len) }.cast();
        // SAFETY: as above; no reference into the page exists.
        unsafe { rustix::mm::mprotect(page, len, MprotectFlags::READ | MprotectFlags::WRITE) }
            .expect("mprotect");
        // SAFETY: as above.
        unsafe { rustix::mm::mlock(page, len) }.expect("mlock");
        // SAFETY: as above.
        unsafe { rustix::mm::mprotect(page, len, MprotectFlags::empty()) }.expect("mprotect");
        RawPage { page, len }
    }

    /// The floor, written as application code would be: a function that
    /// opens, reads and seals the page, and returns.
    #[inline(never)]
    pub fn cycle_in_fn(&self) -> u8 {
        self.cycle()
    }

    /// The floor: open the page for reading, read, seal it again.
    #[inline(always)]
    pub fn cycle(&self) -> u8 {
        // SAFETY: our own page; no reference into it is alive across calls.
        unsafe { rustix::mm::mprotect(self.page, self.len, MprotectFlags::READ) }.unwrap();
        // SAFETY: the page is readable now.
        let b = unsafe { self.page.cast::<u8>().read_volatile() };
        // SAFETY: as above.
        unsafe { rustix::mm::mprotect(self.page, self.len, MprotectFlags::empty()) }.unwrap();
        b
    }
}
