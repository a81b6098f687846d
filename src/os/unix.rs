//! What every Unix offers: mmap(2), mprotect(2), mlock(2), mincore(2),
//! rlimits, termios, signals, pthread_atfork(3). The platform modules
//! (`linux`, ...) add what only they have and re-export these.
//!
//! One thin function per system call, each returning `io::Result` and naming
//! the man page it wraps, through `rustix` where it wraps the call and
//! `libc` where it does not.
//!
//! Functions that take an address range are `unsafe`: changing the
//! protection, lock state, advice or existence of memory is only sound when
//! the caller owns that memory and knows which Rust references point into it.
//! The shared contract of those functions is:
//!
//! - `addr` is page-aligned and `addr..addr + len` lies wholly inside one
//!   mapping that this crate created with [`map_none`] and has not unmapped;
//! - no code outside the caller relies on the range's current protection,
//!   contents or existence (the caller owns it exclusively, or, for
//!   [`protect`], coordinates every user of it).
//!
//! Each function adds what it needs beyond that under its own `# Safety`.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

use super::cpu::clear_vector_registers;
use super::thread::thread_id;
use super::types::{Protection, Trouble};
use crate::dying;

/// The system page size. rustix's `page_size()` (with `use-libc-auxv`)
/// asks libc's `sysconf` on every call, a quarter of a cached box's cost;
/// the answer never changes, so it is kept in an atomic after the first.
#[doc(alias = "sysconf")]
#[doc(alias = "_SC_PAGESIZE")]
#[inline]
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            let page = rustix::param::page_size();
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

/// The flags of every anonymous mapping the crate makes, besides
/// `MAP_ANONYMOUS` (and `MAP_FIXED` where it replaces):
///
/// - `MAP_PRIVATE`;
/// - on Linux, `MAP_NORESERVE`: no swap is reserved for the range. Not
///   passed elsewhere: FreeBSD has no such flag (it charges swap when a
///   range is made writable), OpenBSD defines it as 0, and macOS's mmap(2)
///   does not document it;
/// - on OpenBSD, `MAP_CONCEAL`: the mapping is left out of core dumps from
///   the moment it exists, which is how OpenBSD excludes memory from dumps
///   (there is no madvise(2) advice for it), so every mapping the crate
///   makes, and every replacement of one, carries it.
///
/// # References
/// - [mmap(2) (OpenBSD)](https://man.openbsd.org/mmap.2): `MAP_CONCEAL`,
///   "Exclude the mapping from core dumps" (OpenBSD 6.6)
fn anonymous_flags() -> MapFlags {
    #[cfg(target_os = "linux")]
    let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
    #[cfg(any(target_os = "macos", target_os = "freebsd"))]
    let flags = MapFlags::PRIVATE;
    #[cfg(target_os = "openbsd")]
    let flags = MapFlags::PRIVATE | MAP_CONCEAL;
    flags
}

/// OpenBSD's `MAP_CONCEAL`, which rustix does not name.
#[cfg(target_os = "openbsd")]
const MAP_CONCEAL: MapFlags = {
    assert!(libc::MAP_CONCEAL > 0);
    #[allow(clippy::cast_sign_loss, reason = "positive, checked just above")]
    let bits = libc::MAP_CONCEAL as u32;
    MapFlags::from_bits_retain(bits)
};

/// `mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)`
/// (the flags as [`anonymous_flags`] says for the platform): reserves
/// `len` bytes of address space that every access faults on.
///
/// A PROT_NONE private mapping is not charged against overcommit, so
/// reserving guard pages costs address space only.
///
/// # References
/// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
#[doc(alias = "mmap")]
pub(crate) fn map_none(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: with a null hint and no MAP_FIXED the kernel picks an address
    // range that no existing mapping uses, so no existing memory is affected.
    let addr = unsafe {
        rustix::mm::mmap_anonymous(ptr::null_mut(), len, ProtFlags::empty(), anonymous_flags())
    }?;
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
}

/// `mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0)`
/// (the flags as [`anonymous_flags`] says for the platform): replaces `addr..addr + len` with fresh, never-touched `PROT_NONE` memory
/// in one step. Whatever was there goes: its contents, its lock (the kernel
/// counts it off `VmLck`), its advice and the kernel's record of the pages
/// once touched (the `anon_vma`), so the fresh range can merge with
/// neighbours that were never touched either.
///
/// Fails with `ENOMEM` when replacing part of a larger mapping needs a split
/// and the process is at `vm.max_map_count`; the range is then left as it
/// was (Linux 6.x undoes a failed replacement).
///
/// # Safety
/// The module's shared contract, and: no pointer or reference into the
/// range is used to reach its old contents afterwards.
///
/// # References
/// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
#[doc(alias = "MAP_FIXED")]
pub(crate) unsafe fn replace_none(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    stop_if_dying();
    // SAFETY: forwarded from the caller's contract: the range is the
    // caller's own, and nothing uses what it held.
    let got = unsafe {
        rustix::mm::mmap_anonymous(
            addr.as_ptr().cast::<c_void>(),
            len,
            ProtFlags::empty(),
            anonymous_flags() | MapFlags::FIXED,
        )
    };
    stop_if_dying();
    let got = got?;
    debug_assert_eq!(got.cast::<u8>(), addr.as_ptr());
    Ok(())
}

/// `mprotect(addr, len, prot)`: changes the protection of a range.
///
/// # Safety
/// The module's shared contract, and: while the range is not readable (or not
/// writable), no code may read (or write) it through any pointer or
/// reference; a Rust reference into the range must not exist while it is
/// `PROT_NONE`.
///
/// # References
/// - [mprotect(2)](https://man7.org/linux/man-pages/man2/mprotect.2.html)
#[doc(alias = "mprotect")]
#[inline]
pub(crate) unsafe fn protect(addr: NonNull<u8>, len: usize, prot: Protection) -> io::Result<()> {
    let flags = match prot {
        Protection::None => MprotectFlags::empty(),
        Protection::Read => MprotectFlags::READ,
        Protection::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
    };
    stop_if_dying();
    // SAFETY: forwarded from the caller's contract.
    let done = unsafe { rustix::mm::mprotect(addr.as_ptr().cast::<c_void>(), len, flags) };
    stop_if_dying();
    Ok(done?)
}

/// `mlock(addr, len)`: faults the range in and keeps it in RAM.
///
/// The errno a lock limit gives differs by platform ([`LOCK_LIMIT`]): on
/// Linux `ENOMEM` (or `EPERM` when the limit is zero) if the process lacks
/// `CAP_IPC_LOCK` and the lock would take it over `RLIMIT_MEMLOCK`, and
/// `EAGAIN` if some page could not be locked; on macOS and OpenBSD `EAGAIN`
/// is the limit.
///
/// # Safety
/// The module's shared contract; the range must be readable (locking faults
/// every page in).
///
/// # References
/// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html)
#[doc(alias = "mlock")]
pub(crate) unsafe fn lock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    Ok(unsafe { rustix::mm::mlock(addr.as_ptr().cast::<c_void>(), len) }?)
}

/// `munlock(addr, len)`: lets the kernel page the range out again.
///
/// # Safety
/// The module's shared contract.
///
/// # References
/// - [munlock(2)](https://man7.org/linux/man-pages/man2/munlock.2.html)
#[doc(alias = "munlock")]
pub(crate) unsafe fn unlock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    Ok(unsafe { rustix::mm::munlock(addr.as_ptr().cast::<c_void>(), len) }?)
}

/// Undoes what a refused [`lock`] of the range may have left locked.
/// Linux's mlock(2) marks the range locked before it faults the pages in,
/// so a failure there can leave part of it locked: the range is munlocked.
/// FreeBSD, macOS and OpenBSD unwire whatever they wired before returning
/// the error, so the lock state of every page is as it was: there is
/// nothing to undo, and no call is made. (Their munlock(2) of a mapped
/// range that is not locked succeeds and changes nothing, so an undo
/// would be harmless there too, only useless.)
///
/// # Safety
/// The module's shared contract.
///
/// # References
/// - [mlock(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/mlock.2.html):
///   RETURN VALUES ("the locked status of all pages in the range remains
///   unchanged"); XNU `osfmk/vm/vm_map.c`: `vm_map_wire_nested` undoes
///   what it wired on failure, `vm_map_unwire_nested` skips entries that
///   are not user-wired
/// - FreeBSD `sys/vm/vm_map.c`: `vm_map_wire_locked` unwires the entries
///   it wired on failure, `vm_map_unwire` leaves entries that are not
///   user-wired alone
/// - OpenBSD `sys/uvm/uvm_map.c`: `uvm_map_pageable` ("entries that are
///   not wired are untouched" when unwiring; wiring recovers on failure)
pub(crate) unsafe fn undo_failed_lock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: forwarded from the caller's contract.
        unsafe { unlock(addr, len) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (addr, len);
        Ok(())
    }
}

/// `munmap(addr, len)`: removes the mapping; any lock on it goes with it.
///
/// # Safety
/// The module's shared contract, and: no pointer or reference into the range
/// is used afterwards.
///
/// # References
/// - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)
#[doc(alias = "munmap")]
pub(crate) unsafe fn unmap(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    stop_if_dying();
    // SAFETY: forwarded from the caller's contract.
    let done = unsafe { rustix::mm::munmap(addr.as_ptr().cast::<c_void>(), len) };
    stop_if_dying();
    Ok(done?)
}

/// `mincore(addr, len, vec)`: one byte per page of the range into `vec`,
/// bit 0 set for a page resident in RAM. Only asks; reads or writes no byte
/// of the range, so it is safe for any address, and allocates nothing.
/// Fails with `ENOMEM` if part of the range is not mapped, and with
/// `EINVAL` (no call made) if `vec` has fewer bytes than the range has
/// pages. OpenBSD removed mincore(2) in 6.5: `Unsupported` there.
///
/// # References
/// - [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html),
///   [mincore(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=mincore&sektion=2),
///   [mincore(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/mincore.2.html)
fn mincore(addr: NonNull<u8>, len: usize, vec: &mut [u8]) -> io::Result<()> {
    if vec.len() < len.div_ceil(page_size()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    #[cfg(not(target_os = "openbsd"))]
    {
        // SAFETY: `vec` has room for one byte per page of the range and
        // stays borrowed for the call; mincore writes nothing else.
        let rc =
            unsafe { libc::mincore(addr.as_ptr().cast::<c_void>(), len, vec.as_mut_ptr().cast()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(target_os = "openbsd")]
    {
        let _ = addr;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// How many pages of the range are resident in RAM, and how many pages it
/// has: `(resident, total)`, from [`mincore`]; `Unsupported` on OpenBSD.
pub(crate) fn residency(addr: NonNull<u8>, len: usize) -> io::Result<(usize, usize)> {
    let pages = len.div_ceil(page_size());
    let mut vec = vec![0u8; pages];
    mincore(addr, len, &mut vec)?;
    // Only the least significant bit is defined.
    Ok((vec.iter().filter(|&&b| b & 1 == 1).count(), pages))
}

/// `getrlimit(RLIMIT_MEMLOCK)`: `(soft, hard)` in bytes, `None` for unlimited.
///
/// # References
/// - [getrlimit(2)](https://man7.org/linux/man-pages/man2/getrlimit.2.html)
#[doc(alias = "getrlimit")]
pub(super) fn rlimit_memlock() -> (Option<u64>, Option<u64>) {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    (lim.current, lim.maximum)
}

/// The limit on the memory this process may lock, `(soft, hard)` in bytes,
/// `None` for unlimited: `RLIMIT_MEMLOCK` ([`rlimit_memlock`]). FreeBSD
/// and macOS have their own, which add the kernel's wired-memory caps.
#[cfg(not(any(target_os = "freebsd", target_os = "macos")))]
pub(crate) fn memlock_limit() -> (Option<u64>, Option<u64>) {
    rlimit_memlock()
}

/// `getrlimit(RLIMIT_CORE)`: `(soft, hard)` in bytes, `None` for unlimited.
///
/// # References
/// - [getrlimit(2)](https://man7.org/linux/man-pages/man2/getrlimit.2.html)
pub(crate) fn core_limit() -> (Option<u64>, Option<u64>) {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Core);
    (lim.current, lim.maximum)
}

/// `setrlimit(RLIMIT_CORE, {soft, hard})`: sets the core-file size limit
/// (bytes, `None` for unlimited). Lowering the soft limit needs no privilege;
/// raising the hard one needs `CAP_SYS_RESOURCE`.
///
/// # References
/// - [setrlimit(2)](https://man7.org/linux/man-pages/man2/setrlimit.2.html)
#[doc(alias = "setrlimit")]
#[doc(alias = "RLIMIT_CORE")]
pub(crate) fn set_core_limit(soft: Option<u64>, hard: Option<u64>) -> io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let new = Rlimit {
        current: soft,
        maximum: hard,
    };
    Ok(setrlimit(Resource::Core, new)?)
}

/// `getpid()`: this process's ID.
///
/// # References
/// - [getpid(2)](https://man7.org/linux/man-pages/man2/getpid.2.html)
#[doc(alias = "getpid")]
pub(crate) fn process_id() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Registers handlers to run in the forking thread around every later
/// fork(2): `prepare` before it, `parent` and `child` after it in each
/// process (pthread_atfork(3)). Failure (`ENOMEM`) is ignored: the
/// handlers are a hardening, not a correctness need.
///
/// # References
/// - [pthread_atfork(3)](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html)
pub(crate) fn on_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: registers handlers that the caller wrote to be safe where
    // they run (the child's: atomics and close(2) only); no memory of ours
    // is passed.
    let _ = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// close(2) of a raw descriptor number that the caller knows to be open
/// and its own; for a fork child closing what it inherited.
///
/// # References
/// - [close(2)](https://man7.org/linux/man-pages/man2/close.2.html)
pub(crate) fn close_raw(fd: libc::c_int) {
    // SAFETY: close takes an integer; the caller owns the descriptor.
    let _ = unsafe { libc::close(fd) };
}

/// A terminal's settings, as tcgetattr(3) returns them.
pub(crate) type TerminalModes = rustix::termios::Termios;

/// `tcgetattr(fd)`: the settings of the terminal open at `fd`; `ENOTTY` if
/// it is no terminal.
///
/// # References
/// - [tcgetattr(3)](https://man7.org/linux/man-pages/man3/tcgetattr.3.html)
#[doc(alias = "tcgetattr")]
pub(crate) fn terminal_modes(fd: BorrowedFd<'_>) -> io::Result<TerminalModes> {
    Ok(rustix::termios::tcgetattr(fd)?)
}

/// `tcsetattr(fd, TCSAFLUSH, modes)`: applies `modes` once pending output is
/// written, discarding unread input. One ioctl(2), async-signal-safe.
///
/// # References
/// - [tcsetattr(3)](https://man7.org/linux/man-pages/man3/tcsetattr.3.html)
#[doc(alias = "tcsetattr")]
pub(crate) fn set_terminal(fd: BorrowedFd<'_>, modes: &TerminalModes) -> io::Result<()> {
    Ok(rustix::termios::tcsetattr(
        fd,
        rustix::termios::OptionalActions::Flush,
        modes,
    )?)
}

/// A signal disposition, as sigaction(2) takes and returns it.
pub(crate) type SignalAction = libc::sigaction;

/// `sigaction(sig, act, &old)`: installs `handler` for `sig` (no
/// `SA_RESTART`, so a blocked read returns `EINTR`; every signal blocked
/// while it runs, so that no other handler's frame lands on top of it), or
/// `restore`s a saved disposition; returns the one it replaced.
/// Async-signal-safe (POSIX).
///
/// # Safety
/// `handler`, if given, must be async-signal-safe.
///
/// # References
/// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
#[doc(alias = "sigaction")]
pub(crate) unsafe fn set_signal_action(
    sig: libc::c_int,
    handler: Option<extern "C" fn(libc::c_int)>,
    restore: Option<&SignalAction>,
) -> io::Result<SignalAction> {
    // SAFETY: an all-zero sigaction is valid: default handler, empty mask,
    // no flags.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    let act: *const libc::sigaction = match (handler, restore) {
        (_, Some(saved)) => saved,
        (Some(h), None) => {
            new.sa_sigaction = h as libc::sighandler_t;
            // SAFETY: `sa_mask` is a valid sigset_t to fill.
            unsafe { libc::sigfillset(&raw mut new.sa_mask) };
            &raw const new
        }
        (None, None) => std::ptr::null(),
    };
    // SAFETY: `act` is null or a valid sigaction; `old` has room for one;
    // the handler's safety is the caller's contract.
    if unsafe { libc::sigaction(sig, act, old.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigaction succeeded and filled `old` (zeroed before anyway).
    Ok(unsafe { old.assume_init() })
}

/// `raise(sig)`: sends `sig` to the calling thread. Async-signal-safe.
///
/// # References
/// - [raise(3)](https://man7.org/linux/man-pages/man3/raise.3.html)
#[doc(alias = "raise")]
pub(crate) fn raise_signal(sig: libc::c_int) {
    // SAFETY: raise takes a signal number and touches no memory of ours.
    unsafe { libc::raise(sig) };
}

/// `poll(fd, POLLIN, timeout_ms)`: whether `fd` has input (or hit end of
/// file or an error) within `timeout_ms` milliseconds; `EINTR` comes back
/// as `Ok(false)`.
///
/// # References
/// - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
#[doc(alias = "poll")]
pub(crate) fn readable_within(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, borrowed for the call.
    match unsafe { libc::poll(&raw mut p, 1, timeout_ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// The calling thread's `errno` slot, as the C library names it:
/// `__errno_location` (glibc, musl), `__error` (macOS, FreeBSD), `__errno`
/// (OpenBSD). Async-signal-safe.
fn errno_slot() -> *mut libc::c_int {
    // SAFETY: each takes nothing and returns the calling thread's errno
    // slot, valid and aligned for the thread's life.
    unsafe {
        #[cfg(target_os = "linux")]
        let slot = libc::__errno_location();
        #[cfg(any(target_os = "macos", target_os = "freebsd"))]
        let slot = libc::__error();
        #[cfg(target_os = "openbsd")]
        let slot = libc::__errno();
        slot
    }
}

/// The calling thread's `errno`, for a signal handler to save and restore
/// around the calls it makes. Async-signal-safe.
pub(crate) fn errno() -> libc::c_int {
    // SAFETY: the slot is valid and aligned for the thread's life.
    unsafe { *errno_slot() }
}

/// Sets the calling thread's `errno` (see [`errno`]).
pub(crate) fn set_errno(value: libc::c_int) {
    // SAFETY: as in `errno`; only this thread uses its errno.
    unsafe { *errno_slot() = value };
}

/// Makes the calling thread the one that runs the last wipe; `false` if
/// another thread already is (it will end the process). Async-signal-safe.
pub(crate) fn begin_last_wipe() -> bool {
    dying::begin(thread_id())
}

/// Whether the calling thread runs the last wipe.
pub(crate) fn is_last_wiper() -> bool {
    dying::is_wiper(thread_id())
}

/// Stops the calling thread for good if the last wipe has started on
/// another thread. The calls below that change the protection or the
/// existence of memory make this check before and after the change: a
/// thread whose call raced with the start of the wipe never returns to use
/// what it made accessible, and the wipe never finds a range changed under
/// it by a call that began after it started.
#[inline]
pub(super) fn stop_if_dying() {
    if dying::must_stop(thread_id) {
        stop_for_good();
    }
}

/// Stops the calling thread until the process ends, holding nothing the
/// last wipe must still reach: its vector registers are cleared
/// ([`clear_vector_registers`]), every signal is blocked (so that no
/// handler ever saves its registers into a signal frame again), it records
/// itself stopped (`dying::record_stopped`), and it waits in pause(2).
/// Async-signal-safe.
pub(crate) fn stop_for_good() -> ! {
    clear_vector_registers();
    block_all_signals();
    let _ = dying::record_stopped(thread_id());
    sleep_forever()
}

/// Blocks the calling thread until the process ends: `pause(2)` in a loop.
/// Async-signal-safe.
///
/// # References
/// - [pause(2)](https://man7.org/linux/man-pages/man2/pause.2.html)
#[doc(alias = "pause")]
pub(crate) fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause takes nothing and touches no memory of ours.
        unsafe { libc::pause() };
    }
}

/// A signal handler that is given the interrupted context (`SA_SIGINFO`):
/// the signal, its `siginfo_t` and the `ucontext_t` the kernel saved.
pub(crate) type ContextHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void);

/// Which stack a handler installed by [`set_exclusive_handler`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandlerStack {
    /// The stack of the thread the signal interrupted, below its stack
    /// pointer (no `SA_ONSTACK`): room for a handler that does real work.
    Interrupted,
    /// The thread's alternate signal stack where it has one (`SA_ONSTACK`;
    /// Rust's standard library gives every thread it starts one of
    /// `max(SIGSTKSZ, AT_MINSIGSTKSZ)` bytes, 8 KiB on x86-64 without AMX,
    /// most of which the kernel's frame takes): a small handler still runs
    /// on a thread that overflowed its own stack.
    Alternate,
}

/// `sigaction(sig, {handler, mask: all signals, flags: SA_SIGINFO, and
/// SA_ONSTACK for [`HandlerStack::Alternate`]})`: installs a handler that
/// runs with every other signal blocked, so that no handler interrupts it
/// on its thread, that is given the interrupted context (to scrub it, see
/// [`scrub_context`]), on the stack `stack` names. Async-signal-safe.
///
/// # Safety
/// `handler` must be async-signal-safe, and fit on `stack`.
///
/// # References
/// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
/// - [sigaltstack(2)](https://man7.org/linux/man-pages/man2/sigaltstack.2.html)
#[doc(alias = "sigaction")]
pub(crate) unsafe fn set_exclusive_handler(
    sig: libc::c_int,
    handler: ContextHandler,
    stack: HandlerStack,
) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is valid: default handler, empty mask,
    // no flags.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler as libc::sighandler_t;
    act.sa_flags = match stack {
        HandlerStack::Interrupted => libc::SA_SIGINFO,
        HandlerStack::Alternate => libc::SA_SIGINFO | libc::SA_ONSTACK,
    };
    // SAFETY: `sa_mask` is a valid sigset_t to fill.
    unsafe { libc::sigfillset(&raw mut act.sa_mask) };
    // SAFETY: a valid sigaction; no old one asked for. The handler's
    // safety is the caller's contract.
    if unsafe { libc::sigaction(sig, &raw const act, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `signal(sig, SIG_DFL)` through sigaction(2): the signal's default
/// action again. Async-signal-safe.
///
/// # References
/// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
pub(crate) fn set_default_action(sig: libc::c_int) {
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask and no
    // flags; no old one asked for; no memory of ours is handed over.
    let act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaction(sig, &raw const act, ptr::null_mut()) };
}

/// `pthread_sigmask(how, {sig} or all signals)`. Async-signal-safe.
fn set_signal_mask(how: libc::c_int, sig: Option<libc::c_int>) {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let set_ptr = set.as_mut_ptr();
    match sig {
        // SAFETY: `set` is a sigset_t to initialise.
        Some(_) => unsafe { libc::sigemptyset(set_ptr) },
        // SAFETY: as above.
        None => unsafe { libc::sigfillset(set_ptr) },
    };
    if let Some(sig) = sig {
        // SAFETY: `set` was initialised above.
        unsafe { libc::sigaddset(set.as_mut_ptr(), sig) };
    }
    // SAFETY: `set` is initialised; no old mask asked for.
    unsafe { libc::pthread_sigmask(how, set.as_ptr(), ptr::null_mut()) };
}

/// Blocks every signal on the calling thread (`pthread_sigmask(SIG_BLOCK,
/// all)`); `SIGKILL` and `SIGSTOP` cannot be blocked.
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
#[doc(alias = "pthread_sigmask")]
pub(crate) fn block_all_signals() {
    set_signal_mask(libc::SIG_BLOCK, None);
}

/// Unblocks `sig` on the calling thread; a pending `sig` is delivered
/// before this returns. Async-signal-safe.
///
/// # References
/// - [pthread_sigmask(3)](https://man7.org/linux/man-pages/man3/pthread_sigmask.3.html)
pub(crate) fn unblock_signal(sig: libc::c_int) {
    set_signal_mask(libc::SIG_UNBLOCK, Some(sig));
}

/// Which pages of the range may hold data, for the last wipe, into the
/// caller's buffer, one byte per page (bit 0 set: zero it): [`mincore`]'s
/// residency. OpenBSD cannot say (no mincore(2) since 6.5), so there every
/// page is marked, and the wipe zeroes every page of the crate's mappings,
/// faulting in those never touched. Allocates nothing and never panics,
/// so it is async-signal-safe. Fails with `ENOMEM` if part of the range is
/// not mapped, and with `EINVAL` (no call made) if `vec` has fewer bytes
/// than the range has pages.
pub(crate) fn residency_into(addr: NonNull<u8>, len: usize, vec: &mut [u8]) -> io::Result<()> {
    #[cfg(target_os = "openbsd")]
    {
        let _ = addr;
        let pages = len.div_ceil(page_size());
        let Some(marks) = vec.get_mut(..pages) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        marks.fill(1);
        Ok(())
    }
    #[cfg(not(target_os = "openbsd"))]
    mincore(addr, len, vec)
}

/// `read(STDIN_FILENO, buf, buf.len())`: at most `buf.len()` bytes of
/// standard input, straight into `buf`; nothing is read ahead or kept.
/// `EINTR` comes back as an error of kind `Interrupted`.
///
/// # References
/// - [read(2)](https://man7.org/linux/man-pages/man2/read.2.html)
#[doc(alias = "read")]
pub(crate) fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    rustix::io::read(rustix::stdio::stdin(), buf).map_err(io::Error::from)
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds. Async-signal-safe.
///
/// # References
/// - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
#[doc(alias = "clock_gettime")]
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into `ts`, which is ours.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// `nanosleep` for `ns` nanoseconds (less than a second), or until a
/// signal. Async-signal-safe.
///
/// # References
/// - [nanosleep(2)](https://man7.org/linux/man-pages/man2/nanosleep.2.html)
#[doc(alias = "nanosleep")]
pub(crate) fn nap(ns: u32) {
    let ts = libc::timespec {
        tv_sec: 0,
        // Below 10^9, so it fits every `c_long`.
        tv_nsec: ns.min(999_999_999) as libc::c_long,
    };
    // SAFETY: reads one timespec of ours; no remainder asked for.
    unsafe { libc::nanosleep(&raw const ts, ptr::null_mut()) };
}

/// The errno values with which a lock (mlock(2), mlockall(2)) reports
/// that a limit on locked memory refused it, per the platform's man page:
///
/// - Linux: `ENOMEM` over `RLIMIT_MEMLOCK`, `EPERM` for a zero limit
///   without `CAP_IPC_LOCK`;
/// - FreeBSD: `ENOMEM` over `RLIMIT_MEMLOCK` or `vm.max_user_wired`,
///   `EPERM` when `security.bsd.unprivileged_mlock` is 0; FreeBSD 12's
///   mlock(2) gives `EAGAIN` over its system-wide `vm.max_wired` (13
///   moved that check into the wiring, `ENOMEM`), and mlockall(2) gives
///   `EAGAIN` when some page could not be wired, which is then taken for
///   the limit too;
/// - macOS: `EAGAIN` over the per-process or system-wide limit (`ENOMEM` is
///   a range not mapped or a page that could not be faulted in);
/// - OpenBSD: `EAGAIN` over `RLIMIT_MEMLOCK` or the system's wired-page
///   limit from mlock(2), `ENOMEM` from mlockall(2), `EPERM` where only
///   root may lock.
///
/// # References
/// - [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html),
///   [mlock(2) (FreeBSD)](https://man.freebsd.org/cgi/man.cgi?query=mlock&sektion=2),
///   [mlock(2) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/mlock.2.html),
///   [mlock(2) (OpenBSD)](https://man.openbsd.org/mlock.2)
/// - FreeBSD 12 `sys/vm/vm_mmap.c` (`kern_mlock`: `EAGAIN` past
///   `vm_page_max_wired`); XNU `bsd/kern/kern_mman.c` (`mlock`:
///   `KERN_RESOURCE_SHORTAGE` is `EAGAIN`)
#[cfg(target_os = "linux")]
const LOCK_LIMIT_ERRNOS: &[libc::c_int] = &[libc::ENOMEM, libc::EPERM];
#[cfg(target_os = "freebsd")]
const LOCK_LIMIT_ERRNOS: &[libc::c_int] = &[libc::ENOMEM, libc::EPERM, libc::EAGAIN];
#[cfg(target_os = "macos")]
const LOCK_LIMIT_ERRNOS: &[libc::c_int] = &[libc::EAGAIN];
#[cfg(target_os = "openbsd")]
const LOCK_LIMIT_ERRNOS: &[libc::c_int] = &[libc::EAGAIN, libc::ENOMEM, libc::EPERM];

/// What `e`, from a call of this module's, means for the caller: the errno
/// values the man pages give, sorted by what the crate advises. With
/// `locking`, the errors a lock gets from the lock limit ([`LOCK_LIMIT_ERRNOS`]:
/// `RLIMIT_MEMLOCK` and the platform's own) are [`Trouble::LockLimit`].
///
/// # References
/// - [errno(3)](https://man7.org/linux/man-pages/man3/errno.3.html),
///   [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html) ERRORS
pub(crate) fn trouble(e: &io::Error, locking: bool) -> Trouble {
    match e.raw_os_error() {
        Some(n) if locking && LOCK_LIMIT_ERRNOS.contains(&n) => Trouble::LockLimit,
        Some(libc::EMFILE) => Trouble::NoDescriptors,
        Some(libc::ENFILE) => Trouble::SystemFiles,
        Some(libc::EACCES | libc::EPERM) => Trouble::Denied,
        Some(libc::ENOMEM) => Trouble::NoMemory,
        Some(libc::EINTR) => Trouble::Interrupted,
        Some(libc::ENXIO | libc::ENOENT | libc::ENODEV | libc::ENOTTY) => Trouble::NoTerminal,
        _ => Trouble::Other,
    }
}

/// An error of the kind `trouble` sorts as `t` (for tests of the advice).
#[cfg(test)]
pub(crate) fn error_for(t: Trouble) -> io::Error {
    io::Error::from_raw_os_error(match t {
        Trouble::NoDescriptors => libc::EMFILE,
        Trouble::SystemFiles => libc::ENFILE,
        Trouble::Denied => libc::EACCES,
        Trouble::NoMemory => libc::ENOMEM,
        Trouble::LockLimit => LOCK_LIMIT_ERRNOS[0],
        Trouble::Interrupted => libc::EINTR,
        Trouble::NoTerminal => libc::ENXIO,
        Trouble::Other => libc::EIO,
    })
}

/// The process's own memory as a file (`/proc/self/mem`), for zeroing
/// memory that stays inaccessible; a descriptor.
pub(crate) type OwnMemory = libc::c_int;

/// The numbers of the signals `wipe_on_signals` takes, as this platform
/// numbers them; a signal the platform lacks is `0` (no signal).
pub(crate) mod sig {
    pub(crate) const HUP: i32 = libc::SIGHUP;
    pub(crate) const INT: i32 = libc::SIGINT;
    pub(crate) const QUIT: i32 = libc::SIGQUIT;
    pub(crate) const TERM: i32 = libc::SIGTERM;
    pub(crate) const USR1: i32 = libc::SIGUSR1;
    pub(crate) const USR2: i32 = libc::SIGUSR2;
    pub(crate) const ALRM: i32 = libc::SIGALRM;
    pub(crate) const VTALRM: i32 = libc::SIGVTALRM;
    pub(crate) const PROF: i32 = libc::SIGPROF;
    pub(crate) const XCPU: i32 = libc::SIGXCPU;
    pub(crate) const XFSZ: i32 = libc::SIGXFSZ;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) const PWR: i32 = libc::SIGPWR;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) const PWR: i32 = 0;

    /// Signals `wipe_on_signals` must refuse: faults, those that stop or
    /// continue the process or are ignored by default, and no signal.
    #[cfg(test)]
    pub(crate) const REFUSED: [i32; 16] = [
        0,
        -1,
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGABRT,
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGWINCH,
        libc::SIGPIPE,
    ];
}

/// Whether this platform has a signal numbered `number` (a constant of
/// [`sig`] that is not `0`).
pub(crate) fn signal_exists(number: i32) -> bool {
    number > 0
}

/// The real-time signals, `SIGRTMIN..=SIGRTMAX` as the C library sets them
/// (glibc keeps the first few for itself); FreeBSD's are 65 to 126
/// (`<sys/signal.h>`). Where there are none (macOS, OpenBSD) the range is
/// empty and starts past the last signal (`NSIG`: 32 on macOS, 33 on
/// OpenBSD), so that `Signal::realtime(n)` never names another signal.
pub(crate) fn realtime_signals() -> std::ops::RangeInclusive<i32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        libc::SIGRTMIN()..=libc::SIGRTMAX()
    }
    #[cfg(target_os = "freebsd")]
    {
        65..=126
    }
    #[cfg(any(target_os = "macos", target_os = "openbsd"))]
    {
        #[cfg(target_os = "macos")]
        const NSIG: i32 = 32;
        #[cfg(target_os = "openbsd")]
        const NSIG: i32 = 33;
        // Empty: no number is in it.
        std::ops::RangeInclusive::new(NSIG, NSIG - 1)
    }
}

/// A file's identity: its device and inode numbers, from fstat(2).
pub(crate) type FileId = (u64, u64);

/// `fstat(fd)`: the identity of the file `fd` is open on. Allocates
/// nothing; async-signal-safe.
///
/// # References
/// - [fstat(2) (POSIX)](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
#[doc(alias = "fstat")]
pub(crate) fn file_id(fd: libc::c_int) -> io::Result<FileId> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `struct stat` into `st`, which is ours.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    let st = unsafe { st.assume_init() };
    Ok((id_bits(st.st_dev), id_bits(st.st_ino)))
}

/// The bits of a device or inode number, whose C type is signed on some
/// of the Unix systems (`dev_t` is `int32_t` on macOS and OpenBSD): only
/// compared for equality, so the bit pattern is all that matters.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a bit pattern compared for equality: every value fits 64 bits"
)]
fn id_bits(n: impl Into<i128>) -> u64 {
    n.into() as u64
}

/// The call that locks a range, as messages name it.
pub(crate) const LOCK_CALL: &str = "mlock";

/// The lock limit, as the messages about it name it.
pub(crate) const LOCK_LIMIT: &str = "RLIMIT_MEMLOCK";

/// How to give the process more lockable memory, in every message about
/// the limit.
#[cfg(target_os = "linux")]
pub(crate) const RAISE_LOCK_LIMIT: &str = "raise the limit (`ulimit -l`, LimitMEMLOCK= for a \
     systemd unit, `--ulimit memlock=` for a container) or grant CAP_IPC_LOCK";
/// How to give the process more lockable memory (no privilege exempts a
/// process from the limit off Linux).
#[cfg(not(target_os = "linux"))]
pub(crate) const RAISE_LOCK_LIMIT: &str = "raise the limit (`ulimit -l`, or the system's \
     wired-memory limit)";

/// The terminal a prompt opens, as messages name it.
pub(crate) const TERMINAL: &str = "/dev/tty";

/// The signals `wipe_on_signals` takes here, for its refusal's message.
pub(crate) const WIPE_SIGNALS: &str = "the signals that arrive from outside and end the process \
     by default (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, \
     SIGPROF, SIGXCPU, SIGXFSZ, SIGPWR where the platform has it, real-time signals); SIGKILL \
     and SIGSTOP cannot be caught";
