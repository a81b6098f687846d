//! macOS (x86-64 and Apple silicon): what differs from the other BSD-family
//! systems. Type-checked only: nothing here has run on macOS in this
//! project's tests.
//!
//! Each protection and its mechanism here:
//!
//! - **Guard pages**: `PROT_NONE` mappings (mmap(2), mprotect(2), `unix`).
//!   Apple silicon has 16 KiB pages, x86-64 4 KiB: the page size is the
//!   system's (`sysconf(_SC_PAGESIZE)`), and the layout arithmetic takes it
//!   as a parameter.
//! - **Locking**: mlock(2) (`unix`). The limit is the smaller of
//!   `RLIMIT_MEMLOCK` and the kernel's per-task and system-wide wired
//!   limits (`vm.user_wire_limit`, `vm.global_user_wire_limit`: by default
//!   both the same share of physical memory); [`memlock_limit`] reports
//!   the smallest, the `MemlockLimit` users see. A lock over any of them
//!   fails with `EAGAIN`.
//!   No privilege exempts a process. mlock(2) nests (the crate locks a
//!   range once), and a refused one leaves every page as it was, so
//!   nothing is undone after it (`unix::undo_failed_lock`).
//! - **Core dumps**: no mechanism leaves a range out of a core file
//!   ([`DUMPS_EXCLUDABLE`] is false): `DumpPolicy::Exclude` is refused
//!   (`Unsupported`), `BestEffort` does nothing. macOS writes no core unless
//!   `RLIMIT_CORE` allows it (its soft limit is 0 by default) and `/cores`
//!   is writable; `Hardening::no_core_dumps` keeps it at 0.
//! - **Fork**: minherit(2) with `VM_INHERIT_NONE` for `ForkPolicy::Exclude`
//!   (the child has no mapping there). macOS has no zero inheritance
//!   ([`FORK_ZEROS`] is false), so `ForkPolicy::Wipe` is refused and the
//!   default policy is `Exclude`.
//! - **Secret memory**: none (memfd_secret is Linux's).
//! - **Residency**: mincore(2).
//! - **Deny inspection**: `ptrace(PT_DENY_ATTACH)` ([`set_not_dumpable`]):
//!   later ptrace(2) attaches and DTrace's tracing of the process are
//!   refused. It does not stop core dumps, cannot be undone, cannot be asked
//!   about ([`dumpable`] is `Unsupported`), and a process being traced
//!   when it calls it exits. It does not stop Mach's `task_for_pid`, which
//!   a process with the right to it (root without System Integrity
//!   Protection, or a debugger of a process built to allow it) uses to read
//!   memory: XNU checks the flag only in ptrace(2) and DTrace.
//! - **Lock everything**: none. The kernel's mlockall(2) returns `ENOSYS`;
//!   [`lock_all`] is `Unsupported`.
//! - **Randomness**: getentropy(2) (`bsd`). **Physical memory**: `sysctl
//!   hw.memsize`. **Thread IDs**: the thread's Mach port name.
//! - **The last wipe**: the crate's memory is claimed, zeroed run by run
//!   (made read-write, zeroed, made `PROT_NONE` again) and left
//!   inaccessible, and the handler's own saved registers are zeroed
//!   ([`scrub_context`]). Other threads are not stopped: there is no thread
//!   list to read in a signal handler (`bsd::each_other_thread`). No
//!   `SIGPWR` and no real-time signals: `wipe_on_signals` refuses
//!   `Signal::PWR` and `Signal::realtime`.
//! - **Introspection** (`/proc` on Linux: `Hardening::current`, which pages
//!   hold data, the environment block's bounds): `Unsupported`.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;

use super::bsd::sysctl_unsigned;
use super::types::Refused;
use super::unix::rlimit_memlock;

/// What `Host::platform` says.
pub(crate) const PLATFORM: &str = "macos";

/// Whether this platform can leave memory out of core dumps at all: no.
pub(crate) const DUMPS_EXCLUDABLE: bool = false;

/// The mechanism that leaves memory out of core dumps, by name: macOS has
/// none, so this names what is missing.
pub(crate) const DUMP_EXCLUSION: &str = "leaving memory out of core dumps (macOS has no such call)";

/// Leaving a range out of core dumps: `Unsupported` on macOS.
///
/// # Safety
/// The shared contract (`unix`'s module docs); nothing is done.
pub(crate) unsafe fn exclude_from_dumps(_addr: NonNull<u8>, _len: usize) -> Result<(), Refused> {
    Err(Refused::missing(DUMP_EXCLUSION))
}

/// Whether memory can be left out of core dumps: never on macOS.
pub(crate) fn can_exclude_from_dumps() -> bool {
    false
}

/// Whether other processes may attach to this one: macOS does not say
/// whether `PT_DENY_ATTACH` is in force, so `Unsupported`.
pub(crate) fn dumpable() -> io::Result<bool> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `ptrace(PT_DENY_ATTACH, 0, NULL, 0)`: from now on the kernel refuses
/// every ptrace(2) attach to this process, and DTrace does not trace it.
/// A process being traced when it calls this exits (with status
/// `ENOTSUP`). Nothing undoes it. It does not keep the process from
/// dumping core: `RLIMIT_CORE` does (`Hardening::no_core_dumps`). Nor does
/// it stop `task_for_pid` and the Mach calls that read a task's memory
/// through it.
///
/// # References
/// - [ptrace(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/ptrace.2.html):
///   `PT_DENY_ATTACH`
/// - XNU `bsd/kern/mach_process.c` (sets `P_LNOATTACH`, exits a traced
///   caller); the flag is read there and in `bsd/dev/dtrace` only
#[doc(alias = "PT_DENY_ATTACH")]
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: PT_DENY_ATTACH ignores its other arguments and touches no
    // memory of ours.
    if unsafe { libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Locking every mapping: `Unsupported`. The kernel's mlockall(2) is a
/// stub that returns `ENOSYS` (`bsd/kern/kern_mman.c` in XNU).
pub(crate) fn lock_all(_future: bool, _on_fault: bool) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The limit on the memory this process may lock, `(soft, hard)` in bytes,
/// `None` for unlimited: `RLIMIT_MEMLOCK`, each capped by the smaller of
/// `vm.user_wire_limit` (the kernel's per-task cap, which a task's
/// `RLIMIT_MEMLOCK` cannot lift) and `vm.global_user_wire_limit` (what
/// every process together may wire: the room left may be less), both in
/// bytes; either is left out if it cannot be read.
///
/// # References
/// - [mlock(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/mlock.2.html)
/// - XNU `bsd/kern/kern_sysctl.c` (`vm.user_wire_limit` is
///   `vm_per_task_user_wire_limit`, `vm.global_user_wire_limit`, both
///   64-bit) and `osfmk/vm/vm_map.c` (`add_wire_counts`: over either, or
///   over the task's `RLIMIT_MEMLOCK`, `KERN_RESOURCE_SHORTAGE`)
#[doc(alias = "vm.user_wire_limit")]
#[doc(alias = "vm.global_user_wire_limit")]
pub(crate) fn memlock_limit() -> (Option<u64>, Option<u64>) {
    let (soft, hard) = rlimit_memlock();
    let task = sysctl_unsigned(c"vm.user_wire_limit");
    let global = sysctl_unsigned(c"vm.global_user_wire_limit");
    let Some(wired) = task.into_iter().chain(global).min() else {
        return (soft, hard);
    };
    let cap = |limit: Option<u64>| Some(limit.map_or(wired, |l| l.min(wired)));
    (cap(soft), cap(hard))
}

/// `sysctl hw.memsize`: physical memory in bytes; `u64::MAX` (no bound) if
/// the call fails, so that no size is refused for want of the answer.
///
/// # References
/// - [sysctl(3) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man3/sysctl.3.html):
///   `HW_MEMSIZE`
#[doc(alias = "hw.memsize")]
pub(crate) fn physical_memory() -> u64 {
    sysctl_unsigned(c"hw.memsize").unwrap_or(u64::MAX)
}

/// The largest machine context believed: the AVX-512 one on x86-64 is
/// about 2.6 KiB; a larger `uc_mcsize` is not the kernel's.
const MCONTEXT_MAX: usize = 16 * 1024;

/// Zeroes the registers the kernel saved in a signal frame: on x86-64 the
/// general registers but the stack and instruction pointers, the flags and
/// the segment registers, and every byte of the floating-point state from
/// `__fs` to the end of the machine context (`uc_mcsize`: x87, SSE, and
/// the AVX or AVX-512 state that follows where the kernel saved it); on
/// aarch64 `x0`-`x28`, `fp` and `lr`, and the NEON state (`v0`-`v31`, and
/// whatever follows up to `uc_mcsize`). Allocates nothing;
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
/// - XNU's `bsd/dev/i386/unix_signal.c` and `bsd/dev/arm/unix_signal.c`
///   (`sendsig`: the machine context on the signal stack, `uc_mcsize`;
///   x86-64's six layouts, plain or "full" thread state with x87/SSE, AVX
///   or AVX-512, all `__es`, `__ss` then the float state)
/// - `<mach/i386/_structs.h>`, `<mach/arm/_structs.h>`
pub(crate) unsafe fn scrub_context(context: *mut c_void) {
    if context.is_null() {
        return;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the caller's contract: a live ucontext_t on this thread's
    // signal stack, nothing else using it; only read through this
    // reference (the machine context it points to lies elsewhere).
    let uc = unsafe { &*uc };
    let (mc, size) = (uc.uc_mcontext, uc.uc_mcsize);
    if mc.is_null() {
        return;
    }
    let base = mc.cast::<u8>();
    let size = size.min(MCONTEXT_MAX);
    #[cfg(target_arch = "x86_64")]
    let (registers, vectors) = {
        use std::mem::offset_of;
        type Mc = libc::__darwin_mcontext64;
        type Ss = libc::__darwin_x86_thread_state64;
        let ss = offset_of!(Mc, __ss);
        (
            // `rax, rbx, rcx, rdx, rdi, rsi, rbp` (then `rsp`), and
            // `r8`-`r15` (then `rip`, `rflags` and the segments).
            [
                ss + offset_of!(Ss, __rax)..ss + offset_of!(Ss, __rsp),
                ss + offset_of!(Ss, __r8)..ss + offset_of!(Ss, __rip),
            ],
            // A task with an LDT gets the "full" thread state, 32 bytes
            // longer (`ds`, `es`, `ss`, `gsbase` after `gs`): its `__fs`
            // lies later, so zeroing from here to `uc_mcsize` still covers
            // all of it (and those segment registers).
            offset_of!(Mc, __fs),
        )
    };
    #[cfg(target_arch = "aarch64")]
    let (registers, vectors) = {
        use std::mem::offset_of;
        type Mc = libc::__darwin_mcontext64;
        type Ss = libc::__darwin_arm_thread_state64;
        let ss = offset_of!(Mc, __ss);
        (
            // `x0`-`x28`, `fp`, `lr` (then `sp`, `pc`, `cpsr`); the second
            // range is empty.
            [ss + offset_of!(Ss, __x)..ss + offset_of!(Ss, __sp), 0..0],
            offset_of!(Mc, __ns),
        )
    };
    for range in registers {
        if range.end <= size {
            // SAFETY: inside the machine context the kernel wrote
            // (`uc_mcsize` bytes from `uc_mcontext`).
            unsafe { super::cpu::zero_bytes(base.wrapping_add(range.start), range.len()) };
        }
    }
    if vectors < size {
        // SAFETY: as above: `vectors..size` is inside the context.
        unsafe { super::cpu::zero_bytes(base.wrapping_add(vectors), size - vectors) };
    }
}
