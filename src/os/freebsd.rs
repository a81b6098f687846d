//! FreeBSD (12.0 or later): what differs from the other BSD-family
//! systems. Type-checked only: nothing here has run on FreeBSD in this
//! project's tests.
//!
//! Each protection and its mechanism here:
//!
//! - **Guard pages**: `PROT_NONE` mappings (mmap(2), mprotect(2), `unix`).
//! - **Locking**: mlock(2) (`unix`). The limit is the smaller of the
//!   process's `RLIMIT_MEMLOCK` and the system-wide `vm.max_user_wired`
//!   (pages every process together may wire: the room left to one process
//!   is that less `vm.stats.vm.v_user_wire_count`); [`memlock_limit`]
//!   reports the smaller of the two, the `MemlockLimit` users see. Over
//!   either, mlock(2) fails with `ENOMEM` (FreeBSD 12: `EAGAIN` over its
//!   `vm.max_wired`, which counts the kernel's wired pages too); with
//!   `security.bsd.unprivileged_mlock` 0, unprivileged processes get
//!   `EPERM`. No privilege exempts a process from the limits.
//!   A refused mlock(2) leaves every page as it was, so nothing is undone
//!   after it (`unix::undo_failed_lock`).
//! - **Core dumps**: `madvise(MADV_NOCORE)` ([`exclude_from_dumps`]).
//! - **Fork**: minherit(2), `INHERIT_ZERO` for `ForkPolicy::Wipe` (the
//!   child gets fresh zero pages; FreeBSD 12.0) and `INHERIT_NONE` for
//!   `ForkPolicy::Exclude` (the child has no mapping there).
//! - **Secret memory**: none (memfd_secret is Linux's).
//! - **Residency**: mincore(2).
//! - **Deny inspection**: `procctl(PROC_TRACE_CTL, PROC_TRACE_CTL_DISABLE)`
//!   ([`set_not_dumpable`]): no ptrace(2), ktrace(2), debugging sysctls,
//!   hwpmc, DTrace or core dump of the process, until it execs; asked back
//!   with `PROC_TRACE_STATUS` ([`dumpable`]).
//! - **Lock everything**: mlockall(2) ([`lock_all`]), `MCL_CURRENT`
//!   and `MCL_FUTURE`; FreeBSD has no `MCL_ONFAULT`, so
//!   `LockAll::CurrentAndFutureOnFault` is `Unsupported`.
//! - **Randomness**: getentropy(3) (`bsd`). **Physical memory**: `sysctl
//!   hw.physmem`. **Thread IDs**: `pthread_getthreadid_np` (the kernel's
//!   thread ID, as thr_self(2) gives it).
//! - **The last wipe**: the crate's memory is claimed, zeroed run by run
//!   (made read-write, zeroed, made `PROT_NONE` again) and left
//!   inaccessible, and on x86-64 the handler's own saved registers are
//!   zeroed ([`scrub_context`]; on other processors they are not). Other
//!   threads are not stopped (`bsd`). No `SIGPWR` (`wipe_on_signals`
//!   refuses `Signal::PWR`); the real-time signals are 65 to 126.
//! - **Introspection** (`/proc` on Linux: `Hardening::current`, which pages
//!   hold data, the environment block's bounds): `Unsupported`.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;

use super::bsd::sysctl_unsigned;
use super::types::{Protection, Refused, Why};
use super::unix::{map_none, page_size, process_id, protect, rlimit_memlock, unmap};

/// What `Host::platform` says.
pub(crate) const PLATFORM: &str = "freebsd";

/// Whether this platform can leave memory out of core dumps at all.
pub(crate) const DUMPS_EXCLUDABLE: bool = true;

/// The mechanism that leaves memory out of core dumps, by name.
pub(crate) const DUMP_EXCLUSION: &str = "madvise(MADV_NOCORE)";

/// `madvise(addr, len, behav)`.
///
/// # Safety
/// The shared contract (`unix`'s module docs).
///
/// # References
/// - [madvise(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=madvise&sektion=2)
#[doc(alias = "madvise")]
unsafe fn advise(addr: NonNull<u8>, len: usize, behav: libc::c_int) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract; the advice changes
    // neither contents nor protection.
    if unsafe { libc::madvise(addr.as_ptr().cast::<c_void>(), len, behav) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `madvise(addr, len, MADV_NOCORE)`: the range is not included in a core
/// file. `EINVAL` (an advice the kernel does not know) is `Unsupported`.
///
/// # Safety
/// The shared contract (`unix`'s module docs).
///
/// # References
/// - [madvise(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=madvise&sektion=2):
///   `MADV_NOCORE`
#[doc(alias = "MADV_NOCORE")]
pub(crate) unsafe fn exclude_from_dumps(addr: NonNull<u8>, len: usize) -> Result<(), Refused> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { advise(addr, len, libc::MADV_NOCORE) }.map_err(|source| Refused {
        call: DUMP_EXCLUSION,
        why: if source.raw_os_error() == Some(libc::EINVAL) {
            Why::Unsupported
        } else {
            Why::Other
        },
        source,
    })
}

/// Whether the kernel takes `MADV_NOCORE`: tried on a scratch page.
pub(crate) fn can_exclude_from_dumps() -> bool {
    let page = page_size();
    let Ok(addr) = map_none(page) else {
        return false;
    };
    // SAFETY: `addr..addr + page` is the mapping made just above, which
    // nothing else knows about; no reference into it is ever made.
    let opened = unsafe { protect(addr, page, Protection::ReadWrite) };
    // SAFETY: as above.
    let advised = opened.and_then(|()| unsafe { advise(addr, page, libc::MADV_NOCORE) });
    // SAFETY: as above.
    let _ = unsafe { unmap(addr, page) };
    advised.is_ok()
}

/// The limit on the memory this process may lock, `(soft, hard)` in bytes,
/// `None` for unlimited: `RLIMIT_MEMLOCK`, each capped by
/// `vm.max_user_wired` (pages, times the page size; FreeBSD 12 names it
/// `vm.max_wired`, and counts every wired page against it, the kernel's
/// too), the system-wide limit mlock(2) also enforces. The cap is what
/// every process shares: the room left may be less. A cap of `-1` (read
/// as the largest value of its type; some set it to lift the limit) is
/// none.
///
/// # References
/// - [mlock(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=mlock&sektion=2)
/// - FreeBSD 12 `sys/vm/vm_pageout.c` (`vm.max_wired`, an `int`) and
///   `sys/vm/vm_mmap.c` (`kern_mlock`: `EAGAIN` past it); 13 and later
///   `sys/vm/vm_map.c` (`vm_map_wire_user_count_add` against
///   `vm_page_max_user_wired`, a `u_long`)
#[doc(alias = "vm.max_user_wired")]
#[doc(alias = "vm.max_wired")]
pub(crate) fn memlock_limit() -> (Option<u64>, Option<u64>) {
    let (soft, hard) = rlimit_memlock();
    let page = u64::try_from(page_size()).unwrap_or(u64::MAX);
    let pages = sysctl_unsigned(c"vm.max_user_wired").or_else(|| sysctl_unsigned(c"vm.max_wired"));
    let wired = match pages {
        Some(p) if p != u64::MAX && p != u64::from(u32::MAX) => p.saturating_mul(page),
        _ => return (soft, hard),
    };
    let cap = |limit: Option<u64>| Some(limit.map_or(wired, |l| l.min(wired)));
    (cap(soft), cap(hard))
}

/// `procctl(P_PID, getpid(), cmd, &value)` on the calling process. The
/// process is named by its own ID, not by 0: today's procctl(2) takes 0
/// as "the calling process", but FreeBSD 12's does not (its man page says
/// only "the process ID id", and its `kern_procctl` looks 0 up with
/// `pfind`, which finds the kernel's `proc0` or nothing), so 0 there would
/// disable tracing of another process, or fail, and leave this one
/// traceable. Which release first took 0 was not checked.
///
/// # References
/// - [procctl(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=procctl&sektion=2):
///   "id zero is a shortcut for the calling process ID" (absent from
///   FreeBSD 12.2's page)
/// - FreeBSD `sys/kern/kern_procctl.c` (`kern_procctl`, `case P_PID`)
#[doc(alias = "procctl")]
fn procctl_self(cmd: libc::c_int, value: &mut libc::c_int) -> io::Result<()> {
    let data: *mut libc::c_int = value;
    let me = libc::id_t::from(process_id());
    // SAFETY: `data` points at one int of ours, which PROC_TRACE_CTL reads
    // and PROC_TRACE_STATUS writes; `me` is the calling process.
    if unsafe { libc::procctl(libc::P_PID, me, cmd, data.cast::<c_void>()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `procctl(PROC_TRACE_STATUS)`: whether the process may be traced (and
/// dump core); `false` once tracing is disabled (status -1).
///
/// # References
/// - [procctl(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=procctl&sektion=2):
///   `PROC_TRACE_STATUS`
#[doc(alias = "PROC_TRACE_STATUS")]
pub(crate) fn dumpable() -> io::Result<bool> {
    let mut status = 0;
    procctl_self(libc::PROC_TRACE_STATUS, &mut status)?;
    Ok(status != -1)
}

/// `procctl(PROC_TRACE_CTL, PROC_TRACE_CTL_DISABLE)`: no ptrace(2) or
/// ktrace(2) attach, debugging sysctl, hwpmc, DTrace or core dump of this
/// process from now on. The setting is inherited by fork(2) children and
/// ends at execve(2); only the process itself can enable tracing again.
///
/// # References
/// - [procctl(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=procctl&sektion=2):
///   `PROC_TRACE_CTL`
#[doc(alias = "PROC_TRACE_CTL")]
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    let mut disable = libc::PROC_TRACE_CTL_DISABLE;
    procctl_self(libc::PROC_TRACE_CTL, &mut disable)
}

/// `sysctl hw.physmem`: physical memory in bytes; `u64::MAX` (no bound) if
/// the call fails, so that no size is refused for want of the answer.
///
/// # References
/// - [sysctl(3) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=sysctl&sektion=3):
///   `HW_PHYSMEM`
#[doc(alias = "hw.physmem")]
pub(crate) fn physical_memory() -> u64 {
    sysctl_unsigned(c"hw.physmem").unwrap_or(u64::MAX)
}

/// `_MC_HASFPXSTATE` in `mc_flags`: the frame holds the extended (XSAVE)
/// state beyond the FXSAVE area, at `mc_xfpustate` (`<x86/ucontext.h>`).
#[cfg(target_arch = "x86_64")]
const MC_HASFPXSTATE: libc::c_long = 0x4;

/// The largest extended state believed (AMX's tile data makes the largest
/// XSAVE area today about 11 KiB); a larger length is not the kernel's.
#[cfg(target_arch = "x86_64")]
const XFPUSTATE_MAX: usize = 64 * 1024;

/// Zeroes the registers the kernel saved in a signal frame: on x86-64 the
/// general registers but the stack and instruction pointers and the flags
/// (`mc_rdi` to `mc_r15`), the FXSAVE area (`mc_fpstate`: x87 and SSE), and
/// the extended state the kernel copied beside the frame (`mc_xfpustate`,
/// `mc_xfpustate_len`: AVX and later) where `mc_flags` says there is one.
/// Other architectures: not scrubbed. Allocates nothing;
/// async-signal-safe.
///
/// The thread must never return to the interrupted code: returning would
/// restore the zeroed registers.
///
/// # Safety
/// `context` is null or the `ucontext_t` the kernel passed to the calling
/// `SA_SIGINFO` handler, which never returns.
///
/// # References
/// - FreeBSD's `sys/x86/include/ucontext.h` and `sys/amd64/amd64/exec_machdep.c`
///   (`sendsig`)
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn scrub_context(context: *mut c_void) {
    use std::mem::offset_of;
    type Mc = libc::mcontext_t;
    // `mc_rdi, mc_rsi, mc_rdx, mc_rcx, mc_r8, mc_r9, mc_rax, mc_rbx,
    // mc_rbp, mc_r10`-`mc_r15`, one after the other.
    const REGISTERS: usize = offset_of!(Mc, mc_rdi);
    const REGISTERS_END: usize = offset_of!(Mc, mc_r15) + 8;
    const _: () = assert!(REGISTERS_END - REGISTERS == 15 * 8);
    const FPSTATE: usize = offset_of!(Mc, mc_fpstate);
    const FPSTATE_LEN: usize = 512;
    if context.is_null() {
        return;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the caller's contract: a live ucontext_t on this thread's
    // signal stack, nothing else using it.
    let mc = unsafe { &raw mut (*uc).uc_mcontext };
    let base = mc.cast::<u8>();
    // SAFETY: the general registers, inside the context.
    unsafe { super::cpu::zero_bytes(base.wrapping_add(REGISTERS), REGISTERS_END - REGISTERS) };
    // SAFETY: `mc_fpstate`, 512 bytes inside the context.
    unsafe { super::cpu::zero_bytes(base.wrapping_add(FPSTATE), FPSTATE_LEN) };
    // SAFETY: as above; read only through this reference, which is not
    // used once the extended state (outside the context) is written.
    let mc = unsafe { &*mc };
    let (flags, xfpu, xfpu_len) = (mc.mc_flags, mc.mc_xfpustate, mc.mc_xfpustate_len);
    let has_x = libc::c_long::from(flags) & MC_HASFPXSTATE != 0;
    if let (true, Ok(at), Ok(len)) = (has_x, usize::try_from(xfpu), usize::try_from(xfpu_len)) {
        if at != 0 && len <= XFPUSTATE_MAX {
            // SAFETY: the extended state sendsig copied onto this thread's
            // signal stack, `mc_xfpustate_len` bytes at `mc_xfpustate`.
            unsafe { super::cpu::zero_bytes(std::ptr::with_exposed_provenance_mut(at), len) };
        }
    }
}

/// Other architectures: the layout of the saved context is not known
/// here; nothing is scrubbed.
///
/// # Safety
/// As the x86-64 version's.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn scrub_context(_context: *mut c_void) {}
