//! The last wipe's part that is Windows': the console control handler that
//! runs the wipe on Ctrl-C, Ctrl-Break, the console's closing, logoff and
//! shutdown (`wipe_on_signals`), the unhandled-exception filter that runs
//! it on a crash, the vectored exception handler that stops a thread that
//! faults on the crate's memory while the wipe runs, and stopping the
//! other threads (suspended, their saved registers zeroed). The wipe
//! itself, the same everywhere, is `crate::last_wipe`'s; it is handed down
//! as a function to call ([`on_fatal_signal`]).
//!
//! Windows has no signals from outside: the "signals" `wipe_on_signals`
//! takes here are the console's control events, numbered as the C runtime
//! numbers the signals it raises for them (Go maps them the same way):
//! `SIGINT` (2) for Ctrl-C and Ctrl-Break, `SIGTERM` (15) for the console
//! window's closing, logoff and shutdown. The others do not exist here.
//! The control handler runs on a thread the system starts in the process
//! for the event, an ordinary thread: there the wipe may take its time,
//! and then the process ends with `TerminateProcess` and the exit code the
//! default handler gives (`STATUS_CONTROL_C_EXIT`), whatever handlers the
//! program registered before.
//!
//! The unhandled-exception filter (installed with the first
//! `wipe_on_signals`) runs on the faulting thread, after every exception
//! handler declined the exception: an access violation, an illegal
//! instruction, a stack overflow (on what remains of the thread's stack
//! past its guard page, at least the 20 KiB Rust's standard library asks
//! for with `SetThreadStackGuarantee`). It zeroes the faulting thread's
//! saved registers, runs the wipe, and hands the exception on to the
//! filter installed before it, or to Windows Error Reporting, which ends
//! the process as it would have. A process that ends by `abort`
//! (`__fastfail`) or by `TerminateProcess` from outside passes through no
//! handler at all: `wipe_all_and_abort` and `wipe_on_panic` call the wipe
//! themselves.
//!
//! Stopping the other threads: each thread of the process (listed by
//! `NtQuerySystemInformation`, into a buffer of its own made with
//! `VirtualAlloc`: no heap, whose lock a stopped thread may hold) but the
//! wiping one is suspended (`SuspendThread`, then `GetThreadContext`, which
//! returns once it is), and its saved integer and vector registers are
//! zeroed with `SetThreadContext`: it never runs again, and a dump written
//! afterwards shows no secret it held in a register. Not zeroed: the upper
//! halves of the AVX registers (`ymm`, `zmm`; saved with `CONTEXT_XSTATE`,
//! which is not asked for), and whatever the threads' stacks hold.
//!
//! What the stopping cannot promise:
//! - a thread the system starts after the last round (a thread pool's
//!   worker, the thread of another control event) runs; the rounds end
//!   when one finds no thread running, or after 64;
//! - a thread suspended while it holds a lock of the process's (the
//!   heap's, the loader's) holds it for good. The wipe takes none: it
//!   allocates with `VirtualAlloc` only, and its vectored handler is
//!   installed with `wipe_on_signals`. But after a crash's wipe, the
//!   filter installed before ours and Windows Error Reporting's part in
//!   the process run, and one that needs such a lock waits for good: the
//!   process then hangs, wiped, instead of ending (no test shows either
//!   way; Wine has no such reporting);
//! - the thread list comes from `SYSTEM_PROCESS_INFORMATION` followed by
//!   its threads' `SYSTEM_THREAD_INFORMATION` records, a layout
//!   `winternl.h` declares but Microsoft's documentation does not promise.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use windows_sys::Wdk::System::SystemInformation::{
    NtQuerySystemInformation, SystemProcessInformation,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, EXCEPTION_ACCESS_VIOLATION, EXCEPTION_IN_PAGE_ERROR, STATUS_CONTROL_C_EXIT,
    STATUS_INFO_LENGTH_MISMATCH, TRUE,
};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::Diagnostics::Debug::{
    AddVectoredExceptionHandler, CONTEXT, EXCEPTION_CONTINUE_SEARCH, EXCEPTION_POINTERS,
    GetThreadContext, LPTOP_LEVEL_EXCEPTION_FILTER, SetThreadContext, SetUnhandledExceptionFilter,
};
use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_READWRITE, VirtualAlloc, VirtualFree,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenThread, SuspendThread, THREAD_GET_CONTEXT, THREAD_SET_CONTEXT,
    THREAD_SUSPEND_RESUME, TerminateProcess,
};
use windows_sys::Win32::System::WindowsProgramming::{
    SYSTEM_PROCESS_INFORMATION, SYSTEM_THREAD_INFORMATION,
};
use windows_sys::core::BOOL;

use super::cpu::{clear_vector_registers, zero_bytes};
use super::thread::thread_id;
use super::windows::{is_last_wiper, page_size, process_id, sleep_forever};
use crate::dying;

/// The numbers of the "signals" `wipe_on_signals` takes here (see the
/// module docs); a signal Windows lacks is `0` (no signal).
pub(crate) mod sig {
    /// `SIGINT`: Ctrl-C and Ctrl-Break.
    pub(crate) const INT: i32 = 2;
    /// `SIGTERM`: the console's closing, logoff, shutdown.
    pub(crate) const TERM: i32 = 15;
    pub(crate) const HUP: i32 = 0;
    pub(crate) const QUIT: i32 = 0;
    pub(crate) const USR1: i32 = 0;
    pub(crate) const USR2: i32 = 0;
    pub(crate) const ALRM: i32 = 0;
    pub(crate) const VTALRM: i32 = 0;
    pub(crate) const PROF: i32 = 0;
    pub(crate) const XCPU: i32 = 0;
    pub(crate) const XFSZ: i32 = 0;
    pub(crate) const PWR: i32 = 0;

    /// Numbers `wipe_on_signals` must refuse: no signal, and the C
    /// runtime's `SIGILL`, `SIGFPE`, `SIGSEGV`, `SIGBREAK` and `SIGABRT`.
    #[cfg(test)]
    pub(crate) const REFUSED: [i32; 7] = [0, -1, 4, 8, 11, 21, 22];
}

/// The "signals" `wipe_on_signals` takes here, for its refusal's message.
pub(crate) const WIPE_SIGNALS: &str = "the console's control events, as the C runtime numbers \
     them: SIGINT (2: Ctrl-C, Ctrl-Break) and SIGTERM (15: the console's closing, logoff, \
     shutdown); Windows has no other signal from outside, and TerminateProcess cannot be caught";

/// Whether Windows has the "signal" numbered `number` (see [`sig`]).
pub(crate) fn signal_exists(number: i32) -> bool {
    number == sig::INT || number == sig::TERM
}

/// No real-time signals on Windows: an empty range.
#[expect(
    clippy::reversed_empty_ranges,
    reason = "empty on purpose: there are none"
)]
pub(crate) fn realtime_signals() -> std::ops::RangeInclusive<i32> {
    1..=0
}

/// Blocking signals: Windows has none to block.
pub(crate) fn block_all_signals() {}

/// Nothing to keep in reserve: the Windows wipe opens no file.
pub(crate) fn keep_reserve() {}

/// The process's memory as a file: not on Windows (the wipe zeroes
/// through the process's own writes); no value of this is ever made.
pub(crate) type OwnMemory = i32;

/// No file to zero the memory through on Windows: `None`.
pub(crate) fn own_memory_for_wipe() -> Option<OwnMemory> {
    None
}

/// Zeroing through a file: `Unsupported` (see [`own_memory_for_wipe`]).
///
/// # Safety
/// As [`zero_checked`]'s.
pub(crate) unsafe fn zero_forced(
    _mem: OwnMemory,
    _addr: NonNull<u8>,
    _len: usize,
) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Writes zeros over `addr..addr + len` with volatile writes (the range is
/// read-write: the wipe made it so). Allocates nothing.
///
/// # Safety
/// The range is the crate's own read-write memory, and no Rust reference
/// into it is used to read it as anything but bytes afterwards.
pub(crate) unsafe fn zero_checked(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { zero_bytes(addr.as_ptr(), len) };
    Ok(())
}

/// Which pages of the range may hold data, one byte per page into `vec`
/// (bit 0): the committed ones (`VirtualQuery`), in the working set or in
/// the paging file. Reserved pages hold nothing and are left alone, so
/// the wipe commits none. Allocates nothing. `InvalidInput` (no call made)
/// if `vec` has fewer bytes than the range has pages.
///
/// # References
/// - [VirtualQuery](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualquery)
pub(crate) fn residency_into(addr: NonNull<u8>, len: usize, vec: &mut [u8]) -> io::Result<()> {
    let page = page_size();
    let pages = len.div_ceil(page);
    if vec.len() < pages {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let start = addr.as_ptr() as usize;
    let end = start + pages * page;
    let mut at = start;
    while at < end {
        let info = super::windows::query(at as *const c_void)?;
        let run_end = (info.BaseAddress as usize)
            .saturating_add(info.RegionSize)
            .min(end);
        if run_end <= at {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let committed = u8::from(info.State == MEM_COMMIT);
        for v in &mut vec[(at - start) / page..(run_end - start) / page] {
            *v = committed;
        }
        at = run_end;
    }
    Ok(())
}

/// The wipe the handlers run (`crate::last_wipe`'s), set once.
static WIPE: OnceLock<fn()> = OnceLock::new();

/// The control events that run the wipe, one bit per event number.
static EVENTS: AtomicU32 = AtomicU32::new(0);

/// The control events that a "signal" stands for.
fn events_of(sig: i32) -> u32 {
    let bit = |e: u32| 1u32 << e;
    match sig {
        sig::INT => bit(CTRL_C_EVENT) | bit(CTRL_BREAK_EVENT),
        sig::TERM => bit(CTRL_CLOSE_EVENT) | bit(CTRL_LOGOFF_EVENT) | bit(CTRL_SHUTDOWN_EVENT),
        _ => 0,
    }
}

/// The filter that was installed before ours, called after the wipe.
static PREVIOUS_FILTER: OnceLock<LPTOP_LEVEL_EXCEPTION_FILTER> = OnceLock::new();

/// Makes the control events that `sig` stands for run `wipe` and then end
/// the process (`TerminateProcess` with `STATUS_CONTROL_C_EXIT`); the
/// first call also installs the unhandled-exception filter that runs
/// `wipe` on a crash (see the module docs).
///
/// # Errors
/// `Unsupported` for a number that stands for no event;
/// `SetConsoleCtrlHandler`'s error.
///
/// # References
/// - [SetConsoleCtrlHandler](https://learn.microsoft.com/en-us/windows/console/setconsolectrlhandler)
/// - [SetUnhandledExceptionFilter](https://learn.microsoft.com/en-us/windows/win32/api/errhandlingapi/nf-errhandlingapi-setunhandledexceptionfilter)
#[doc(alias = "SetConsoleCtrlHandler")]
#[doc(alias = "SetUnhandledExceptionFilter")]
pub(crate) fn on_fatal_signal(sig: i32, wipe: fn()) -> io::Result<()> {
    let events = events_of(sig);
    if events == 0 {
        return Err(io::ErrorKind::Unsupported.into());
    }
    let _ = WIPE.set(wipe);
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        // SAFETY: `on_control` has the handler's type; it runs on a thread
        // of its own (see its docs).
        if unsafe { SetConsoleCtrlHandler(Some(on_control), TRUE) } == 0 {
            INSTALLED.store(false, Ordering::SeqCst);
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `on_unhandled` has the filter's type; the previous
        // filter is kept to be called after it.
        let previous = unsafe { SetUnhandledExceptionFilter(Some(on_unhandled)) };
        let _ = PREVIOUS_FILTER.set(previous);
        // Now, not in the wipe: `AddVectoredExceptionHandler` allocates
        // from the process heap, whose lock a crashing thread may hold.
        catch_faults();
    }
    EVENTS.fetch_or(events, Ordering::SeqCst);
    Ok(())
}

/// The console control handler of [`on_fatal_signal`], on the thread the
/// system starts for the event: for an event asked for, the wipe, then the
/// end of the process with the default handler's exit code; for another,
/// `FALSE` (the next handler decides).
unsafe extern "system" fn on_control(event: u32) -> BOOL {
    let asked = event < 32 && EVENTS.load(Ordering::SeqCst) & (1 << event) != 0;
    let Some(wipe) = WIPE.get().filter(|_| asked) else {
        return 0;
    };
    clear_vector_registers();
    wipe();
    clear_vector_registers();
    let code = u32::from_ne_bytes(STATUS_CONTROL_C_EXIT.to_ne_bytes());
    // SAFETY: takes nothing; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: ends this process.
    unsafe { TerminateProcess(process, code) };
    sleep_forever()
}

/// The unhandled-exception filter of [`on_fatal_signal`]: zeroes the
/// faulting thread's saved registers (it never resumes: the exception is
/// fatal), runs the wipe (unless this thread is the one wiping: its own
/// fault is fatal as it is), and hands the exception to the filter before
/// it, or to Windows (`EXCEPTION_CONTINUE_SEARCH`).
unsafe extern "system" fn on_unhandled(info: *const EXCEPTION_POINTERS) -> i32 {
    if !is_last_wiper() {
        if !info.is_null() {
            // SAFETY: the exception's pointers, for the duration of the
            // filter; its context record is the faulting thread's.
            let context = unsafe { (*info).ContextRecord };
            // SAFETY: a live CONTEXT of this thread, which never resumes.
            unsafe { scrub_context(context) };
        }
        clear_vector_registers();
        if let Some(wipe) = WIPE.get() {
            wipe();
        }
        clear_vector_registers();
    }
    match PREVIOUS_FILTER.get().copied().flatten() {
        // SAFETY: the filter installed before ours, given what it would
        // have been given.
        Some(previous) => unsafe { previous(info) },
        None => EXCEPTION_CONTINUE_SEARCH,
    }
}

/// Installs, once, the vectored exception handler that stops a thread
/// other than the wiping one that faults on memory the wipe made
/// inaccessible.
///
/// # References
/// - [AddVectoredExceptionHandler](https://learn.microsoft.com/en-us/windows/win32/api/errhandlingapi/nf-errhandlingapi-addvectoredexceptionhandler)
#[doc(alias = "AddVectoredExceptionHandler")]
pub(crate) fn catch_faults() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        // SAFETY: `on_fault` has the handler's type; called first.
        unsafe { AddVectoredExceptionHandler(1, Some(on_fault)) };
    }
}

/// The vectored handler of [`catch_faults`]: while the wipe runs, a thread
/// other than the wiping one that faults (an access violation, or an
/// in-page error) zeroes its saved registers, records itself stopped and
/// sleeps for good. Anything else goes on as usual.
unsafe extern "system" fn on_fault(info: *mut EXCEPTION_POINTERS) -> i32 {
    if info.is_null() || is_last_wiper() || !dying::must_stop(thread_id) {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    // SAFETY: the exception's pointers, for the duration of the handler.
    let pointers = unsafe { &*info };
    let (record, context) = (pointers.ExceptionRecord, pointers.ContextRecord);
    // SAFETY: a live record, if not null.
    let code = unsafe { record.as_ref() }.map(|r| r.ExceptionCode);
    if code != Some(EXCEPTION_ACCESS_VIOLATION) && code != Some(EXCEPTION_IN_PAGE_ERROR) {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    dying::entered_fault_handler();
    // SAFETY: a live CONTEXT of this thread, which never resumes.
    unsafe { scrub_context(context) };
    clear_vector_registers();
    let _ = dying::record_stopped(thread_id());
    dying::left_fault_handler();
    sleep_forever()
}

/// Zeroes the integer and vector registers of a saved context but its
/// stack and instruction pointers and flags (x86-64: `rax`..`r15` but
/// `rsp`, the x87 and `xmm0`-`xmm15` registers; aarch64: `x0`-`x30` and
/// `v0`-`v31`).
///
/// # Safety
/// `context` is null or a live `CONTEXT` that nothing else uses now, of a
/// thread that never resumes with it.
unsafe fn scrub_context(context: *mut CONTEXT) {
    // SAFETY: the caller's contract.
    let Some(c) = (unsafe { context.as_mut() }) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    {
        for r in [
            &mut c.Rax, &mut c.Rcx, &mut c.Rdx, &mut c.Rbx, &mut c.Rbp, &mut c.Rsi, &mut c.Rdi,
            &mut c.R8, &mut c.R9, &mut c.R10, &mut c.R11, &mut c.R12, &mut c.R13, &mut c.R14,
            &mut c.R15,
        ] {
            // SAFETY: a field of the context, plain data.
            unsafe { ptr::write_volatile(r, 0) };
        }
        // SAFETY: the legacy save area of the union, whose x87 and xmm
        // registers are plain data.
        let save = unsafe { &mut c.Anonymous.FltSave };
        let (st, xmm) = (
            (&raw mut save.FloatRegisters).cast::<u8>(),
            (&raw mut save.XmmRegisters).cast::<u8>(),
        );
        // SAFETY: the two arrays of the save area.
        unsafe { zero_bytes(st, size_of_val(&save.FloatRegisters)) };
        // SAFETY: as above.
        unsafe { zero_bytes(xmm, size_of_val(&save.XmmRegisters)) };
    }
    #[cfg(target_arch = "aarch64")]
    {
        let x = &raw mut c.Anonymous.X;
        // SAFETY: the 31 general registers of the union, plain data.
        unsafe { zero_bytes(x.cast::<u8>(), size_of::<[u64; 31]>()) };
        let v = &raw mut c.V;
        // SAFETY: the 32 vector registers, plain data.
        unsafe { zero_bytes(v.cast::<u8>(), size_of_val(&c.V)) };
    }
}

/// A `CONTEXT` aligned as `GetThreadContext` needs (16 bytes on x86-64,
/// which the type alone does not say).
#[repr(C, align(16))]
struct AlignedContext(CONTEXT);

/// The flags asking for the registers [`scrub_context`] zeroes.
#[cfg(target_arch = "x86_64")]
const SCRUBBED: u32 = windows_sys::Win32::System::Diagnostics::Debug::CONTEXT_INTEGER_AMD64
    | windows_sys::Win32::System::Diagnostics::Debug::CONTEXT_FLOATING_POINT_AMD64;
#[cfg(target_arch = "aarch64")]
const SCRUBBED: u32 = windows_sys::Win32::System::Diagnostics::Debug::CONTEXT_INTEGER_ARM64
    | windows_sys::Win32::System::Diagnostics::Debug::CONTEXT_FLOATING_POINT_ARM64;

/// Suspends thread `tid` (if it still exists) and zeroes its saved
/// registers; whether it was running until now (its suspend count was 0).
///
/// # References
/// - [SuspendThread](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-suspendthread)
/// - [GetThreadContext](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-getthreadcontext)
/// - [SetThreadContext](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-setthreadcontext)
fn stop_thread(tid: u32) -> bool {
    // SAFETY: opens a handle to a thread by ID; closed below.
    let handle = unsafe {
        OpenThread(
            THREAD_SUSPEND_RESUME | THREAD_GET_CONTEXT | THREAD_SET_CONTEXT,
            0,
            tid,
        )
    };
    if handle.is_null() {
        return false;
    }
    // SAFETY: a thread handle with the right to suspend.
    let previous = unsafe { SuspendThread(handle) };
    let mut context = MaybeUninit::<AlignedContext>::zeroed();
    // SAFETY: the zeroed context's flags field, ours.
    unsafe { (*context.as_mut_ptr()).0.ContextFlags = SCRUBBED };
    let ctx = context.as_mut_ptr().cast::<CONTEXT>();
    // SAFETY: an aligned CONTEXT of ours; returns once the thread is
    // suspended.
    if previous != u32::MAX && unsafe { GetThreadContext(handle, ctx) } != 0 {
        // SAFETY: the context just read, ours, of a thread that is never
        // resumed.
        unsafe { scrub_context(ctx) };
        // SAFETY: as above.
        unsafe { SetThreadContext(handle, ctx) };
    }
    // SAFETY: our copy of the registers, on our stack.
    unsafe { zero_bytes(ctx.cast::<u8>(), size_of::<CONTEXT>()) };
    // SAFETY: the handle opened above.
    unsafe { CloseHandle(handle) };
    previous == 0
}

/// Calls `f` with the ID of every thread of this process but the calling
/// one, from `NtQuerySystemInformation(SystemProcessInformation)` into a
/// buffer made with `VirtualAlloc` (no heap: a thread stopped earlier may
/// hold its lock). `false` if the list could not be had.
///
/// # References
/// - [NtQuerySystemInformation](https://learn.microsoft.com/en-us/windows/win32/api/winternl/nf-winternl-ntquerysysteminformation)
fn each_other_thread(mut f: impl FnMut(u32)) -> bool {
    let me = u32::from_ne_bytes(thread_id().to_ne_bytes());
    let pid = process_id() as usize;
    let mut size: usize = 1 << 20;
    while size <= 1 << 28 {
        // SAFETY: a fresh read-write allocation of `size` bytes, released
        // below; nothing else knows of it.
        let buf =
            unsafe { VirtualAlloc(ptr::null(), size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE) };
        if buf.is_null() {
            return false;
        }
        let len = u32::try_from(size).unwrap_or(u32::MAX);
        // SAFETY: the call writes at most `len` bytes into `buf`.
        let status = unsafe {
            NtQuerySystemInformation(SystemProcessInformation, buf, len, ptr::null_mut())
        };
        let listed = status >= 0;
        if listed {
            // SAFETY: the records the call wrote into `buf`.
            unsafe { walk_threads(buf.cast::<u8>(), size, pid, me, &mut f) };
        }
        // SAFETY: the allocation made above, unused from now on.
        unsafe { VirtualFree(buf, 0, MEM_RELEASE) };
        if listed {
            return true;
        }
        if status != STATUS_INFO_LENGTH_MISMATCH {
            return false;
        }
        size *= 2;
    }
    false
}

/// Walks the `SYSTEM_PROCESS_INFORMATION` records in `buf` (each followed
/// by its `SYSTEM_THREAD_INFORMATION` array) to the process `pid`, and
/// calls `f` with each of its threads' IDs but `me`.
///
/// # Safety
/// `buf..buf + size` holds what `NtQuerySystemInformation` wrote.
unsafe fn walk_threads(buf: *const u8, size: usize, pid: usize, me: u32, f: &mut impl FnMut(u32)) {
    let mut at = 0usize;
    loop {
        if at + size_of::<SYSTEM_PROCESS_INFORMATION>() > size {
            return;
        }
        // SAFETY: a record inside the buffer (checked above), read
        // unaligned to be sure.
        let p = unsafe {
            buf.wrapping_add(at)
                .cast::<SYSTEM_PROCESS_INFORMATION>()
                .read_unaligned()
        };
        if p.UniqueProcessId as usize == pid {
            let threads = at + size_of::<SYSTEM_PROCESS_INFORMATION>();
            for i in 0..p.NumberOfThreads as usize {
                let t = threads + i * size_of::<SYSTEM_THREAD_INFORMATION>();
                if t + size_of::<SYSTEM_THREAD_INFORMATION>() > size {
                    return;
                }
                // SAFETY: inside the buffer (checked above).
                let t = unsafe {
                    buf.wrapping_add(t)
                        .cast::<SYSTEM_THREAD_INFORMATION>()
                        .read_unaligned()
                };
                let tid = u32::try_from(t.ClientId.UniqueThread as usize).unwrap_or(0);
                if tid != 0 && tid != me {
                    f(tid);
                }
            }
            return;
        }
        if p.NextEntryOffset == 0 {
            return;
        }
        at += p.NextEntryOffset as usize;
    }
}

/// Stops every other thread of the process that is still running: each
/// is suspended and its saved registers zeroed (see the module docs). The
/// number of threads found running, or `None` if the threads could not be
/// listed.
pub(crate) fn signal_unstopped() -> Option<usize> {
    let mut running = 0;
    let listed = each_other_thread(|tid| {
        if stop_thread(tid) {
            running += 1;
        }
    });
    listed.then_some(running)
}

/// Rounds of [`signal_unstopped`] at most: each stops what it finds at
/// once, so a second round finds nothing running unless a thread was
/// started meanwhile.
const STOP_ROUNDS: usize = 64;

/// Stops every other thread (see [`signal_unstopped`]), again until a
/// round finds none running (threads started meanwhile), and waits until
/// no thread is between entering the fault handler and scrubbing its
/// registers.
pub(crate) fn stop_all_and_wait() {
    for _ in 0..STOP_ROUNDS {
        if signal_unstopped().is_none_or(|running| running == 0) && !dying::scrubbing() {
            return;
        }
    }
}
