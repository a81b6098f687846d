//! OpenBSD (6.6 or later): what differs from the other BSD-family systems.
//! Type-checked only (with a nightly compiler building the standard library
//! for the target): nothing here has run on OpenBSD in this project's tests.
//!
//! Each protection and its mechanism here:
//!
//! - **Guard pages**: `PROT_NONE` mappings (mmap(2), mprotect(2), `unix`).
//! - **Locking**: mlock(2) (`unix`). The limit is the smaller of
//!   `RLIMIT_MEMLOCK` and the system's wired-page limit (`uvmexp.wiredmax`);
//!   over either, mlock(2) fails with `EAGAIN`. No privilege exempts a
//!   process.
//!   A refused mlock(2) leaves every page as it was, so nothing is undone
//!   after it (`unix::undo_failed_lock`).
//! - **Core dumps**: `MAP_CONCEAL` (OpenBSD 6.6), given to every mapping the
//!   crate makes and to every replacement of one (`unix::map_none`,
//!   `unix::replace_none`): the memory is out of core dumps from the moment
//!   it exists, and [`exclude_from_dumps`] has nothing left to do.
//! - **Fork**: minherit(2), `MAP_INHERIT_ZERO` for `ForkPolicy::Wipe` (the
//!   child gets fresh zero pages) and `MAP_INHERIT_NONE` for
//!   `ForkPolicy::Exclude` (the child has no mapping there).
//! - **Secret memory**: none (memfd_secret is Linux's).
//! - **Residency**: mincore(2).
//! - **Deny inspection**: none the process can ask for ([`set_not_dumpable`]
//!   and [`dumpable`] are `Unsupported`). With `kern.global_ptrace` at 0,
//!   its default, OpenBSD lets a process trace only its own descendants
//!   (root excepted); `RLIMIT_CORE` (`Hardening::no_core_dumps`) stops
//!   cores.
//! - **Lock everything**: mlockall(2) ([`lock_all`]), `MCL_CURRENT` and
//!   `MCL_FUTURE`; no `MCL_ONFAULT`, so `LockAll::CurrentAndFutureOnFault`
//!   is `Unsupported`.
//! - **Randomness**: getentropy(2) (`bsd`). **Physical memory**: sysctl(2)
//!   `HW_PHYSMEM64`. **Thread IDs**: getthrid(2).
//! - **The last wipe**: the crate's memory is claimed, zeroed run by run
//!   (made read-write, zeroed, made `PROT_NONE` again) and left
//!   inaccessible, and on x86-64 the handler's own general and x87/SSE
//!   registers are zeroed ([`scrub_context`]; the AVX upper halves are not,
//!   nor anything on other processors). Other threads are not stopped
//!   (`bsd`). No `SIGPWR` and no real-time signals: `wipe_on_signals`
//!   refuses `Signal::PWR` and `Signal::realtime`.
//! - **Introspection** (`/proc` on Linux: `Hardening::current`, which pages
//!   hold data, the environment block's bounds): `Unsupported`.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;

use super::types::Refused;
use super::unix::{map_none, page_size, unmap};

/// What `Host::platform` says.
pub(crate) const PLATFORM: &str = "openbsd";

/// Whether this platform can leave memory out of core dumps at all.
pub(crate) const DUMPS_EXCLUDABLE: bool = true;

/// The mechanism that leaves memory out of core dumps, by name.
pub(crate) const DUMP_EXCLUSION: &str = "mmap(MAP_CONCEAL)";

/// Leaves the range out of core dumps: done already. Every mapping the
/// crate makes, and every replacement of one, is `MAP_CONCEAL` from the
/// start (`unix::map_none`, `unix::replace_none`), and a kernel without
/// the flag refuses those mmap(2) calls (`EINVAL`), so no mapping of the
/// crate's exists without it. OpenBSD has no call that adds it later.
///
/// # Safety
/// The shared contract (`unix`'s module docs): the range lies in a mapping
/// the crate made.
///
/// # References
/// - [mmap(2) (OpenBSD)](https://man.openbsd.org/mmap.2): `MAP_CONCEAL`
#[doc(alias = "MAP_CONCEAL")]
pub(crate) unsafe fn exclude_from_dumps(_addr: NonNull<u8>, _len: usize) -> Result<(), Refused> {
    Ok(())
}

/// Whether the kernel takes `MAP_CONCEAL`: a scratch page mapped with it
/// (`unix::map_none`) and unmapped.
pub(crate) fn can_exclude_from_dumps() -> bool {
    let page = page_size();
    let Ok(addr) = map_none(page) else {
        return false;
    };
    // SAFETY: `addr..addr + page` is the mapping made just above, which
    // nothing else knows about; no reference into it was ever made.
    let _ = unsafe { unmap(addr, page) };
    true
}

/// Whether other processes may attach to this one: OpenBSD has no
/// per-process setting to ask about, so `Unsupported`.
pub(crate) fn dumpable() -> io::Result<bool> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Denying other processes the right to trace this one: OpenBSD has no
/// call for it (only the system-wide `kern.global_ptrace`, off by
/// default), so `Unsupported`.
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `HW_PHYSMEM64` in `<sys/sysctl.h>`, which `libc` does not name.
const HW_PHYSMEM64: libc::c_int = 19;

/// `sysctl({CTL_HW, HW_PHYSMEM64})`: physical memory in bytes; `u64::MAX`
/// (no bound) if the call fails, so that no size is refused for want of
/// the answer.
///
/// # References
/// - [sysctl(2) (OpenBSD)](https://man.openbsd.org/sysctl.2): `HW_PHYSMEM64`
#[doc(alias = "HW_PHYSMEM64")]
pub(crate) fn physical_memory() -> u64 {
    let mib = [libc::CTL_HW, HW_PHYSMEM64];
    let mut bytes: i64 = 0;
    let mut len = std::mem::size_of::<i64>();
    // SAFETY: a two-level name; the kernel writes at most `len` bytes into
    // `bytes` and the length it wrote into `len`; nothing is set.
    let rc = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            2,
            (&raw mut bytes).cast::<c_void>(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len != std::mem::size_of::<i64>() {
        return u64::MAX;
    }
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// Zeroes the registers the kernel saved in a signal frame: on x86-64 the
/// general registers but the stack and instruction pointers and the flags
/// (`sc_rdi` to `sc_rax`), and the 512-byte FXSAVE area `sc_fpstate` points
/// at (x87 and SSE). The XSAVE components past it (the upper halves of the
/// AVX registers and later ones) are not, as the frame does not say how
/// many bytes the kernel wrote there. Other architectures: not scrubbed.
/// Allocates nothing; async-signal-safe.
///
/// The thread must never return to the interrupted code: returning would
/// restore the zeroed registers.
///
/// # Safety
/// `context` is null or the `ucontext_t` (`struct sigcontext`) the kernel
/// passed to the calling `SA_SIGINFO` handler, which never returns.
///
/// # References
/// - OpenBSD's `sys/arch/amd64/include/signal.h` and
///   `sys/arch/amd64/amd64/machdep.c` (`sendsig`)
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn scrub_context(context: *mut c_void) {
    use std::mem::offset_of;
    type Sc = libc::sigcontext;
    // `sc_rdi, sc_rsi, sc_rdx, sc_rcx, sc_r8`-`sc_r15, sc_rbp, sc_rbx,
    // sc_rax`, one after the other.
    const REGISTERS: usize = offset_of!(Sc, sc_rdi);
    const REGISTERS_END: usize = offset_of!(Sc, sc_rax) + 8;
    const _: () = assert!(REGISTERS_END - REGISTERS == 15 * 8);
    const FXSAVE_LEN: usize = 512;
    if context.is_null() {
        return;
    }
    let sc = context.cast::<Sc>();
    let base = sc.cast::<u8>();
    // SAFETY: the caller's contract: a live sigcontext on this thread's
    // signal stack, nothing else using it; the range is its registers.
    unsafe { super::cpu::zero_bytes(base.wrapping_add(REGISTERS), REGISTERS_END - REGISTERS) };
    // SAFETY: a plain field of the context.
    let fp = unsafe { (*sc).sc_fpstate };
    if !fp.is_null() {
        // SAFETY: sendsig copied the FPU state to `sc_fpstate` on this
        // thread's signal stack, at least its 512-byte FXSAVE area.
        unsafe { super::cpu::zero_bytes(fp.cast::<u8>(), FXSAVE_LEN) };
    }
}

/// Other architectures: the layout of the saved context is not known
/// here; nothing is scrubbed.
///
/// # Safety
/// As the x86-64 version's.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn scrub_context(_context: *mut c_void) {}
