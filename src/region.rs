//! One guarded, locked mapping without a type: everything unsafe about a
//! box's memory that is not a bare system call lives here.
//!
//! A [`Region`] owns its mapping from [`Region::create`] to its `Drop`. Its
//! invariants, which every `SAFETY` comment below leans on:
//!
//! - **(R1) mapped**: `map..map + layout.map_len` is one mapping made by
//!   [`sys::map_none`], not unmapped by anyone but `Region`'s own `Drop`
//!   (in a fork(2) child of the process that made a [`ForkPolicy::Exclude`]
//!   region the mapping does not exist at all; `present()` is false there and
//!   nothing touches it);
//! - **(R2) guarded**: the first and last `layout.guard_len` bytes are
//!   `PROT_NONE`;
//! - **(R3) protection**: the data pages' protection is the one recorded in
//!   `prot`. It is read-write except while a sealed box has made the pages
//!   `PROT_NONE` or read-only (through [`Region::protect`]); whoever needs to
//!   touch them on the way out calls [`Region::open`] first;
//! - **(R4) canary**: the canary bytes were written at creation and only an
//!   out-of-bounds write changes them.
#![allow(unsafe_code)]

use std::io;
use std::process;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use zeroize::Zeroize;

use crate::error::Error;
use crate::fork;
use crate::layout::{CANARY_LEN, Layout};
use crate::limits;
use crate::options::{ForkPolicy, LockPolicy};
use crate::sys::{self, Advice, Protection};

/// How many data pages of a box are in RAM, from mincore(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Data pages present in RAM.
    pub resident: usize,
    /// All data pages of the box.
    pub total: usize,
}

impl Residency {
    /// Whether every data page is in RAM.
    pub fn all_resident(&self) -> bool {
        self.resident == self.total
    }
}

/// A guarded mapping with one value's worth of data pages; see the module
/// docs for its invariants.
pub(crate) struct Region {
    map: NonNull<u8>,
    layout: Layout,
    locked: bool,
    fork: ForkPolicy,
    /// [`fork::generation`] of the process that made the region.
    generation: u64,
    /// The data pages' current protection (R3), as [`prot_code`] encodes it.
    prot: AtomicU8,
}

/// How `Region::prot` stores a [`Protection`].
fn prot_code(p: Protection) -> u8 {
    match p {
        Protection::ReadWrite => 0,
        Protection::Read => 1,
        Protection::None => 2,
    }
}

/// Unmaps a fresh reservation on an early return from [`Region::create`].
struct Reservation {
    addr: NonNull<u8>,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the reservation is a mapping made by `map_none` that no
        // value has been placed in and nothing else refers to.
        let _ = unsafe { sys::unmap(self.addr, self.len) };
    }
}

/// Whether pages of `len` bytes could ever be locked here: a lock larger than
/// physical memory cannot succeed, and with `CAP_IPC_LOCK` trying it would
/// only wake the OOM killer.
pub(crate) fn lockable(len: usize) -> bool {
    static RAM: OnceLock<u64> = OnceLock::new();
    let ram = *RAM.get_or_init(sys::physical_memory);
    u64::try_from(len).is_ok_and(|len| len <= ram)
}

impl Region {
    /// Maps, guards, advises and locks a region for `layout`, and writes its
    /// canary. The data bytes are zero.
    ///
    /// On error nothing is left behind: the mapping is gone and the count of
    /// locked bytes is unchanged.
    pub(crate) fn create(
        layout: Layout,
        lock: LockPolicy,
        fork: ForkPolicy,
    ) -> Result<Self, Error> {
        let map =
            sys::map_none(layout.map_len).map_err(|e| Error::os("mmap", layout.map_len, e))?;
        let reservation = Reservation {
            addr: map,
            len: layout.map_len,
        };
        // Advice first, on the whole mapping while it is still one VMA, so
        // that no advice call has to split it; mprotect then splits it into
        // guard, data, guard, each keeping the advice.
        advise_all(map, layout.map_len, Advice::DontDump)?;
        match fork {
            ForkPolicy::Wipe => advise_all(map, layout.map_len, Advice::WipeOnFork)?,
            ForkPolicy::Exclude => advise_all(map, layout.map_len, Advice::DontFork)?,
            ForkPolicy::Keep => {}
        }
        let data = data_start(map, &layout);
        // SAFETY: (R1) the data pages lie inside the reservation, which
        // nothing else knows about; no reference into it exists yet.
        unsafe { sys::protect(data, layout.data_len, Protection::ReadWrite) }
            .map_err(|e| Error::os("mprotect", layout.data_len, e))?;

        let locked = match lock_pages(data, layout.data_len) {
            Ok(()) => true,
            Err(e) if lock == LockPolicy::BestEffort => {
                // A failed mlock may have locked part of the range; leave
                // none of it locked so that `is_locked() == false` is exact.
                // SAFETY: (R1) as above.
                let _ = unsafe { sys::unlock(data, layout.data_len) };
                drop(e);
                false
            }
            Err(e) => return Err(e),
        };

        let canary_at = canary_ptr(data, &layout);
        // SAFETY: (R1, R3) the canary's bytes lie in the data pages, which
        // are read-write and unaliased; `[u8; N]` has alignment 1.
        unsafe { canary_at.write(*process_canary()) };

        if locked {
            limits::add_locked(layout.data_len);
        }
        std::mem::forget(reservation);
        Ok(Region {
            map,
            layout,
            locked,
            fork,
            generation: fork::generation(),
            prot: AtomicU8::new(prot_code(Protection::ReadWrite)),
        })
    }

    /// Changes the data pages' protection and records it.
    ///
    /// # Safety
    /// No reference into the value may be alive that the new protection
    /// forbids: none at all for [`Protection::None`], no `&mut` for
    /// [`Protection::Read`]; and none may be created until the protection
    /// allows it again. Callers that race must serialise their calls.
    #[inline]
    pub(crate) unsafe fn protect(&self, prot: Protection) -> io::Result<()> {
        debug_assert!(self.present());
        // SAFETY: (R1) the data pages of our own mapping; the caller
        // guarantees that no reference is alive that `prot` would forbid.
        unsafe { sys::protect(self.data(), self.layout.data_len, prot) }?;
        self.prot.store(prot_code(prot), Ordering::Release);
        Ok(())
    }

    /// Makes the data pages read-write again if a sealed box left them
    /// otherwise, before the value is dropped, checked or wiped.
    ///
    /// Aborts if mprotect fails: a secret that can neither be wiped nor used
    /// must not be freed as it is. (mprotect of a whole VMA of our own has no
    /// documented way to fail; this is the fail-closed answer to the
    /// impossible.)
    pub(crate) fn open(&self) {
        if self.prot.load(Ordering::Acquire) == prot_code(Protection::ReadWrite) {
            return;
        }
        let (data, len) = (self.data(), self.layout.data_len);
        // SAFETY: (R1) the data pages of our own mapping; widening access to
        // read-write invalidates no reference.
        let opened = unsafe { sys::protect(data, len, Protection::ReadWrite) };
        if let Err(e) = opened {
            eprintln!(
                "lockedbox: cannot make a sealed {}-byte secret's pages writable to wipe it \
                 (mprotect: {e}); aborting rather than freeing it unwiped",
                self.layout.size
            );
            process::abort();
        }
        self.prot
            .store(prot_code(Protection::ReadWrite), Ordering::Release);
    }

    /// First byte of the value: `layout.size` bytes up to the end of the
    /// data pages.
    pub(crate) fn value_ptr(&self) -> NonNull<u8> {
        // SAFETY: (R1) `value_offset <= data_len`, so the result is inside
        // the mapping or one past its data pages (for a zero-sized value).
        unsafe { self.data().add(self.layout.value_offset) }
    }

    /// First byte of the data pages.
    #[inline]
    fn data(&self) -> NonNull<u8> {
        data_start(self.map, &self.layout)
    }

    /// The layout the region was made with.
    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Whether this process was made by fork(2) after the region was created.
    #[inline]
    fn inherited(&self) -> bool {
        self.generation != fork::generation()
    }

    /// Whether the mapping exists in this process. It does not in a fork
    /// child of the creator of a [`ForkPolicy::Exclude`] region.
    #[inline]
    pub(crate) fn present(&self) -> bool {
        !(self.fork == ForkPolicy::Exclude && self.inherited())
    }

    /// Whether the data pages are mlocked in this process. Memory locks are
    /// not inherited by fork(2), so an inherited region is never locked.
    pub(crate) fn is_locked(&self) -> bool {
        self.locked && !self.inherited()
    }

    /// Residency of the data pages, from mincore(2).
    pub(crate) fn residency(&self) -> io::Result<Residency> {
        let pages = sys::residency(self.data(), self.layout.data_len)?;
        Ok(Residency {
            resident: pages.iter().filter(|&&r| r).count(),
            total: pages.len(),
        })
    }

    /// Whether the canary is what it was set to. In a fork child of a
    /// [`ForkPolicy::Wipe`] region's creator the kernel zeroed the data pages,
    /// so there the canary must read as zeros.
    ///
    /// The data pages must be readable (R3).
    pub(crate) fn canary_intact(&self) -> bool {
        let expected: &[u8; CANARY_LEN] = if self.fork == ForkPolicy::Wipe && self.inherited() {
            &[0; CANARY_LEN]
        } else {
            process_canary()
        };
        let canary_at = canary_ptr(self.data(), &self.layout);
        // SAFETY: (R1, R3) the canary's bytes lie in the readable data pages;
        // `[u8; N]` has alignment 1 and every bit pattern is valid.
        let found = unsafe { canary_at.read() };
        found == *expected
    }

    /// Aborts the process, after one line on stderr, if the canary changed.
    /// The data pages must be readable (R3).
    pub(crate) fn verify_canary(&self) {
        if !self.canary_intact() {
            // The message names where, never what: no byte of the value.
            eprintln!(
                "lockedbox: the canary in front of a {}-byte secret at {:p} was overwritten \
                 (a write before the start of the value: buffer underflow or stray pointer); \
                 aborting",
                self.layout.size,
                self.value_ptr()
            );
            process::abort();
        }
    }
}

impl Drop for Region {
    /// Zeroizes every data byte, then munlock, `MADV_DONTNEED` and munmap, in
    /// that order. Failures of the last three cannot be reported from a drop;
    /// none can happen on a mapping that (R1) holds, and munmap drops any lock
    /// that munlock might have left.
    fn drop(&mut self) {
        let len = self.layout.data_len;
        if !self.present() {
            // An Exclude region in a fork child: the range is not ours here
            // (and may since have been mapped by someone else). Touch nothing.
            if self.locked {
                limits::sub_locked(len);
            }
            return;
        }
        self.open();
        let data = self.data();
        // SAFETY: (R1, R3) the data pages are mapped read-write (`open`); the typed
        // owner has dropped its value, so no reference into them is alive;
        // `data` is page-aligned and `len` a multiple of the page size, so
        // the `u64` view is aligned and covers every data byte.
        let words = unsafe { std::slice::from_raw_parts_mut(data.cast::<u64>().as_ptr(), len / 8) };
        words.zeroize();

        if self.locked {
            // SAFETY: (R1) the data pages of our own mapping.
            let r = unsafe { sys::unlock(data, len) };
            debug_assert!(r.is_ok(), "munlock: {r:?}");
            limits::sub_locked(len);
        }
        // SAFETY: (R1) the data pages of our own mapping; nothing in them is
        // live any more, so discarding them loses nothing.
        let r = unsafe { sys::advise(data, len, Advice::DontNeed) };
        debug_assert!(r.is_ok(), "madvise(MADV_DONTNEED): {r:?}");
        // SAFETY: (R1) our own whole mapping; nothing refers into it after
        // this drop.
        let r = unsafe { sys::unmap(self.map, self.layout.map_len) };
        debug_assert!(r.is_ok(), "munmap: {r:?}");
    }
}

/// The data pages' start inside a mapping laid out by `layout`.
#[inline]
fn data_start(map: NonNull<u8>, layout: &Layout) -> NonNull<u8> {
    // SAFETY: `data_start() < map_len`, so the result stays inside the mapping.
    unsafe { map.add(layout.data_start()) }
}

/// The canary's place in data pages starting at `data`.
fn canary_ptr(data: NonNull<u8>, layout: &Layout) -> NonNull<[u8; CANARY_LEN]> {
    // SAFETY: `canary_offset + CANARY_LEN <= data_len` (see `Layout`), so the
    // result stays inside the data pages.
    unsafe { data.add(layout.canary_offset) }.cast()
}

/// Advises a whole fresh reservation, turning `EINVAL` (advice unknown to
/// this kernel) into [`Error::Unsupported`].
fn advise_all(map: NonNull<u8>, len: usize, advice: Advice) -> Result<(), Error> {
    // SAFETY: (R1) `map..map + len` is a reservation that only
    // `Region::create` knows about and that holds no value yet.
    unsafe { sys::advise(map, len, advice) }.map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            Error::Unsupported {
                call: advice.name(),
                source: e,
            }
        } else {
            Error::os(advice.name(), len, e)
        }
    })
}

/// mlocks data pages, refusing up front what could never be locked.
fn lock_pages(data: NonNull<u8>, len: usize) -> Result<(), Error> {
    if !lockable(len) {
        return Err(Error::os(
            "mlock",
            len,
            io::Error::new(io::ErrorKind::OutOfMemory, "larger than physical memory"),
        ));
    }
    // SAFETY: (R1, R3) the data pages of a reservation only the caller knows
    // about, already read-write.
    unsafe { sys::lock(data, len) }.map_err(|e| limits::lock_error(len, e))
}

/// The canary every region of this process carries: random per process,
/// drawn once. Its first byte is zero, so that a string copy running into it
/// from below stops there; at least one other byte is nonzero, so it never
/// matches the zeros of a wiped page.
fn process_canary() -> &'static [u8; CANARY_LEN] {
    static CANARY: OnceLock<[u8; CANARY_LEN]> = OnceLock::new();
    CANARY.get_or_init(|| {
        let mut c = [0u8; CANARY_LEN];
        if sys::random(&mut c).is_err() {
            // No getrandom (Linux < 3.17): fall back on what varies per
            // process. Weaker, but a canary that is not secret still catches
            // accidental overwrites.
            let seed = (&raw const CANARY as usize as u64)
                ^ u64::from(sys::process_id()).rotate_left(32)
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
