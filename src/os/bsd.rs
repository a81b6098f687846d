//! What macOS, FreeBSD and OpenBSD share beyond `unix`: minherit(2) for
//! what a fork(2) child gets of a range, getentropy(2) for randomness, and
//! the answer to what only Linux has (secret memory, the kernel's view of
//! the process in /proc, the thread list and the forced writes of the last
//! wipe, moving the environment block's end): a refusal, or `None`/`false`
//! where the caller asks whether it may. The platform modules (`macos`,
//! `freebsd`, `openbsd`) hold what differs between them, and their module
//! docs list each protection's mechanism there.
//!
//! Functions that take an address range share `unix`'s contract.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use rustix::mm::{MapFlags, ProtFlags};

use super::cpu::zero_bytes;
use super::types::{ForkView, Protection, Refused, Why};
use super::unix::{FileId, map_none, page_size, protect, unmap};

/// A value of minherit(2)'s `inherit` argument, with the name errors give
/// it; `value` is `None` where the platform has no such inheritance.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inherit {
    pub(super) value: Option<libc::c_int>,
    pub(super) call: &'static str,
}

/// The zero inheritance of minherit(2): none on macOS.
#[cfg(target_os = "macos")]
const INHERIT_ZERO: Inherit = Inherit {
    value: None,
    call: "minherit(INHERIT_ZERO)",
};

/// `VM_INHERIT_NONE`: a fork(2) child has no mapping in the range.
#[cfg(target_os = "macos")]
const INHERIT_NONE: Inherit = Inherit {
    value: Some(libc::VM_INHERIT_NONE),
    call: "minherit(VM_INHERIT_NONE)",
};

/// `INHERIT_ZERO` (FreeBSD 12.0): a fork(2) child gets fresh zero pages.
#[cfg(target_os = "freebsd")]
const INHERIT_ZERO: Inherit = Inherit {
    value: Some(libc::INHERIT_ZERO),
    call: "minherit(INHERIT_ZERO)",
};

/// `INHERIT_NONE`: a fork(2) child has no mapping in the range.
#[cfg(target_os = "freebsd")]
const INHERIT_NONE: Inherit = Inherit {
    value: Some(libc::INHERIT_NONE),
    call: "minherit(INHERIT_NONE)",
};

/// `MAP_INHERIT_ZERO` (OpenBSD 5.6): a fork(2) child gets fresh zero pages.
#[cfg(target_os = "openbsd")]
const INHERIT_ZERO: Inherit = Inherit {
    value: Some(libc::MAP_INHERIT_ZERO),
    call: "minherit(MAP_INHERIT_ZERO)",
};

/// `MAP_INHERIT_NONE`: a fork(2) child has no mapping in the range.
#[cfg(target_os = "openbsd")]
const INHERIT_NONE: Inherit = Inherit {
    value: Some(libc::MAP_INHERIT_NONE),
    call: "minherit(MAP_INHERIT_NONE)",
};

/// Whether a fork(2) child can be given zeros in place of a range.
pub(crate) const FORK_ZEROS: bool = INHERIT_ZERO.value.is_some();

/// `minherit(addr, len, inherit)`: what a child made by fork(2) gets of the
/// range. Inheritance has no effect on the parent, nor on exec(2).
///
/// # Safety
/// The shared contract (`unix`'s module docs). With an inheritance that
/// leaves the range out of the child, nothing a child runs may use it.
///
/// # References
/// - [minherit(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=minherit&sektion=2)
/// - [minherit(2) (OpenBSD)](https://man.openbsd.org/minherit.2)
/// - [minherit(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/minherit.2.html)
unsafe fn minherit(addr: NonNull<u8>, len: usize, inherit: libc::c_int) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract; minherit changes what a
    // later child gets, not the range's contents or protection here.
    if unsafe { libc::minherit(addr.as_ptr().cast::<c_void>(), len, inherit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What a fork(2) child gets of the range: minherit(2) with the platform's
/// zero inheritance for [`ForkView::Zeros`] (FreeBSD `INHERIT_ZERO`,
/// OpenBSD `MAP_INHERIT_ZERO`; macOS has none: `Unsupported`), its
/// no-inheritance for [`ForkView::Absent`] (`INHERIT_NONE`,
/// `MAP_INHERIT_NONE`, `VM_INHERIT_NONE`), nothing to do for
/// [`ForkView::Copy`] on a range never changed (copy is the default).
/// For the zero inheritance, `EINVAL` is taken for the kernel not knowing
/// the value (FreeBSD before 12.0): `Unsupported`. The no-inheritance is
/// as old as minherit(2) on all three, and macOS's and FreeBSD's
/// minherit(2) answer `EINVAL` for any failure but a protection one (an
/// unmapped range included), so there it is an error like any other.
///
/// # References
/// - XNU `bsd/kern/kern_mman.c` (`minherit`: `EACCES` for
///   `KERN_PROTECTION_FAILURE`, else `EINVAL`); FreeBSD
///   `sys/vm/vm_mmap.c` (`sys_minherit`, the same)
///
/// # Safety
/// The shared contract; with [`ForkView::Absent`], nothing a child runs may
/// use the range.
pub(crate) unsafe fn set_fork_view(
    addr: NonNull<u8>,
    len: usize,
    view: ForkView,
) -> Result<(), Refused> {
    let inherit = match view {
        ForkView::Zeros => INHERIT_ZERO,
        ForkView::Absent => INHERIT_NONE,
        ForkView::Copy => return Ok(()),
    };
    let Some(value) = inherit.value else {
        return Err(Refused::missing(inherit.call));
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe { minherit(addr, len, value) }.map_err(|source| Refused {
        call: inherit.call,
        why: if view == ForkView::Zeros && source.raw_os_error() == Some(libc::EINVAL) {
            Why::Unsupported
        } else {
            Why::Other
        },
        source,
    })
}

/// Whether this kernel gives a fork child `view` of a range: tried on a
/// scratch page, mapped, made read-write, given the inheritance, unmapped.
pub(crate) fn can_set_fork_view(view: ForkView) -> bool {
    let inherit = match view {
        ForkView::Zeros => INHERIT_ZERO,
        ForkView::Absent => INHERIT_NONE,
        ForkView::Copy => return true,
    };
    let Some(value) = inherit.value else {
        return false;
    };
    let page = page_size();
    let Ok(addr) = map_none(page) else {
        return false;
    };
    // SAFETY: `addr..addr + page` is the mapping made just above, which
    // nothing else knows about; no reference into it is ever made.
    let opened = unsafe { protect(addr, page, Protection::ReadWrite) };
    // SAFETY: as above.
    let inherited = opened.and_then(|()| unsafe { minherit(addr, page, value) });
    // SAFETY: as above.
    let _ = unsafe { unmap(addr, page) };
    inherited.is_ok()
}

/// One word of memory that a child made by fork(2) sees as zero (the
/// platform's zero inheritance on a private page that is never unmapped),
/// or `None` where the platform has none (macOS) or the kernel refuses it.
///
/// The page lives as long as the process and holds no secret.
#[inline]
pub(crate) fn fork_wiped_word() -> Option<&'static AtomicU64> {
    static WORD: OnceLock<Option<&'static AtomicU64>> = OnceLock::new();
    *WORD.get_or_init(|| {
        let value = INHERIT_ZERO.value?;
        let page = page_size();
        let addr = map_none(page).ok()?;
        // SAFETY: `addr..addr + page` is the mapping made just above, which
        // nothing else knows about yet.
        let inherited = unsafe { minherit(addr, page, value) };
        // SAFETY: as above.
        let opened = unsafe { protect(addr, page, Protection::ReadWrite) };
        if inherited.is_err() || opened.is_err() {
            // SAFETY: as above; no reference into it was made.
            let _ = unsafe { unmap(addr, page) };
            return None;
        }
        // SAFETY: the page is mapped read-write for the rest of the process's
        // life (it is never unmapped or re-protected), page-aligned and thus
        // aligned for `AtomicU64`, and zero-filled, which is a valid
        // `AtomicU64`. All access goes through this shared atomic reference.
        Some(unsafe { addr.cast::<AtomicU64>().as_ref() })
    })
}

/// `posix_madvise(addr, len, POSIX_MADV_RANDOM)`: no effect on the
/// contents; a sealed box's `PROT_NONE` data pages get advice their guard
/// pages lack, which keeps the kernel from coalescing them into one map
/// entry (FreeBSD and macOS compare an entry's behaviour before merging;
/// OpenBSD its advice). Nothing depends on it beyond that: these systems
/// have no limit like Linux's `vm.max_map_count` on the entries a split
/// makes.
///
/// # Safety
/// The shared contract.
///
/// # References
/// - [posix_madvise(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=posix_madvise&sektion=2)
pub(crate) unsafe fn keep_apart(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract; the advice changes
    // neither contents nor protection.
    Ok(unsafe {
        rustix::mm::madvise(
            addr.as_ptr().cast::<c_void>(),
            len,
            rustix::mm::Advice::Random,
        )
    }?)
}

/// `getentropy(buf, n)`, at most 256 bytes per call: fills `buf` from the
/// kernel's random number generator (FreeBSD 12, OpenBSD 5.6, macOS 10.12).
///
/// # References
/// - [getentropy(3) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=getentropy&sektion=3)
/// - [getentropy(2) (OpenBSD)](https://man.openbsd.org/getentropy.2)
#[doc(alias = "getentropy")]
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    for chunk in buf.chunks_mut(256) {
        // SAFETY: getentropy writes `chunk.len()` bytes, at most the 256 it
        // accepts, into `chunk`, which is ours and borrowed for the call.
        if unsafe { libc::getentropy(chunk.as_mut_ptr().cast::<c_void>(), chunk.len()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the calling thread is exempt from the limit on locked memory
/// (Linux's `CAP_IPC_LOCK`): never on these systems, where the limits
/// (`RLIMIT_MEMLOCK` and the system-wide wired-page limit) hold for root
/// too.
pub(crate) fn has_cap_ipc_lock() -> io::Result<bool> {
    Ok(false)
}

/// Calls `f` with the ID of every other thread of the process (Linux's
/// `/proc/self/task`): these systems offer no list that can be read
/// without allocating in a signal handler, so `false`, "could not be
/// listed", and `f` is never called. The last wipe then stops no other
/// thread: it zeroes and closes the memory, and a thread that touches it
/// afterwards faults.
pub(crate) fn each_other_thread(_f: impl FnMut(i32)) -> bool {
    false
}

/// Sends a signal to one thread (Linux's tgkill(2)): `Unsupported`, as
/// there is no list of threads to send it to ([`each_other_thread`]).
pub(crate) fn signal_thread(_tid: i32, _sig: libc::c_int) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The descriptor the last wipe keeps in reserve on Linux, to open
/// `/proc/self/task` and `/proc/self/mem` in a process out of them: the
/// wipe opens nothing here, so none is kept (`Unsupported`).
pub(crate) fn reserve_descriptor() -> io::Result<(libc::c_int, FileId)> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The process's own memory as a file (Linux's `/proc/self/mem`): `None`,
/// there is none. The last wipe then zeroes each run of pages read-write.
pub(crate) fn open_own_memory() -> Option<libc::c_int> {
    None
}

/// Zeroes memory through `/proc/self/mem` on Linux: `Unsupported` here
/// (never called, as [`open_own_memory`] gives no file).
///
/// # Safety
/// As [`zero_checked`]'s.
pub(crate) unsafe fn zero_forced(
    _mem: libc::c_int,
    _addr: NonNull<u8>,
    _len: usize,
) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Writes zeros over `addr..addr + len` with volatile writes from this
/// thread: there is no call that copies into the process's own memory and
/// reports a protection fault as an error (Linux's process_vm_readv(2)),
/// so a range another thread made inaccessible meanwhile faults here.
/// Allocates nothing; async-signal-safe.
///
/// # Safety
/// The range is the crate's own memory, writable, and no Rust reference
/// into it is used to read it as anything but bytes afterwards.
pub(crate) unsafe fn zero_checked(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded; the range is the caller's.
    unsafe { zero_bytes(addr.as_ptr(), len) };
    Ok(())
}

/// `mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANON [| MAP_FIXED |
/// MAP_EXCL], -1, 0)`: puts an inaccessible placeholder mapping in the empty
/// range `addr..addr + len`, so that nothing else is mapped there and every
/// access faults. FreeBSD's `MAP_FIXED | MAP_EXCL` fails where any part of
/// the range is in use; macOS and OpenBSD take `addr` as a hint, and a
/// mapping placed elsewhere is unmapped again and `EEXIST` returned. Either
/// way nothing mapped is replaced.
///
/// Async-signal-safe: one or two system calls, no allocation, no lock (for
/// a fork(2) child's atfork handler).
///
/// # References
/// - [mmap(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=mmap&sektion=2):
///   `MAP_EXCL`
/// - [mmap(2) (OpenBSD)](https://man.openbsd.org/mmap.2)
#[doc(alias = "MAP_EXCL")]
pub(crate) fn place_none_in_hole(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    #[cfg(target_os = "freebsd")]
    let exact = MapFlags::FIXED | MAP_EXCL;
    #[cfg(not(target_os = "freebsd"))]
    let exact = MapFlags::empty();
    let flags = MapFlags::PRIVATE | exact;
    // SAFETY: `MAP_FIXED | MAP_EXCL` never replaces an existing mapping
    // (the call fails if any part of the range is in use); without it the
    // address is a hint, which replaces nothing either. No memory anyone
    // holds is affected.
    let got = unsafe {
        rustix::mm::mmap_anonymous(
            addr.as_ptr().cast::<c_void>(),
            len,
            ProtFlags::empty(),
            flags,
        )
    }?;
    if got.cast::<u8>() == addr.as_ptr() {
        return Ok(());
    }
    // SAFETY: `got..got + len` is the mapping the kernel just made
    // elsewhere; nothing else knows of it.
    let _ = unsafe { rustix::mm::munmap(got, len) };
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

/// FreeBSD's `MAP_EXCL`, which rustix does not name.
#[cfg(target_os = "freebsd")]
const MAP_EXCL: MapFlags = {
    assert!(libc::MAP_EXCL > 0);
    #[allow(clippy::cast_sign_loss, reason = "positive, checked just above")]
    let bits = libc::MAP_EXCL as u32;
    MapFlags::from_bits_retain(bits)
};

/// The initial environment block's bounds (Linux's `/proc/self/stat`):
/// `Unsupported`. A secret taken from the environment is then zeroed in
/// place (`LockedString::from_env`).
pub(crate) fn env_block() -> io::Result<(usize, usize)> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Moves the end of the environment block the kernel shows (Linux's
/// `prctl(PR_SET_MM)`): `Unsupported`.
pub(crate) fn shrink_env_block(_end: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `sysctlbyname(name)` of an unsigned integer of 4 or 8 bytes (the kernel
/// says which by the length it writes); `None` if the call fails.
///
/// # References
/// - [sysctl(3) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=sysctl&sektion=3)
/// - [sysctl(3) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man3/sysctlbyname.3.html)
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
#[doc(alias = "sysctlbyname")]
pub(super) fn sysctl_unsigned(name: &std::ffi::CStr) -> Option<u64> {
    let mut buf = [0u8; 8];
    let mut len = buf.len();
    // SAFETY: a NUL-terminated name; the kernel writes at most `len` bytes
    // into `buf` and the length it wrote into `len`; nothing is set.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buf.as_mut_ptr().cast::<c_void>(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    match len {
        4 => Some(u64::from(u32::from_ne_bytes([
            buf[0], buf[1], buf[2], buf[3],
        ]))),
        8 => Some(u64::from_ne_bytes(buf)),
        _ => None,
    }
}

/// `mlockall(MCL_CURRENT [| MCL_FUTURE])`: locks every mapping of the
/// process, and with `future` every mapping made later, within the lock
/// limits (FreeBSD: `RLIMIT_MEMLOCK` and `vm.max_user_wired`, `ENOMEM`
/// over them; OpenBSD: `RLIMIT_MEMLOCK` and the wired-page limit). Neither has `MCL_ONFAULT`: `on_fault` is
/// `Unsupported`, and nothing is locked. (macOS has no mlockall at all:
/// `macos::lock_all`.)
///
/// # References
/// - [mlockall(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=mlockall&sektion=2)
/// - [mlockall(2) (OpenBSD)](https://man.openbsd.org/mlockall.2)
#[cfg(any(target_os = "freebsd", target_os = "openbsd"))]
#[doc(alias = "mlockall")]
pub(crate) fn lock_all(future: bool, on_fault: bool) -> io::Result<()> {
    use rustix::mm::{MlockAllFlags, mlockall};
    if on_fault {
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    let mut flags = MlockAllFlags::CURRENT;
    if future {
        flags |= MlockAllFlags::FUTURE;
    }
    Ok(mlockall(flags)?)
}
