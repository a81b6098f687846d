//! Windows: reservations made with `VirtualAlloc(MEM_RESERVE,
//! PAGE_NOACCESS)`, pages committed and protected with `VirtualAlloc` and
//! `VirtualProtect`, locked with `VirtualLock` (held to the process's
//! minimum working set), left out of Windows Error Reporting's dumps with
//! `WerRegisterExcludedMemoryBlock`, residency from `QueryWorkingSetEx`,
//! randomness from `ProcessPrng`. No fork, so every fork view is what a
//! process that never forks has; no secret memory; no /proc.
//!
//! One thin function per call, through `windows-sys`, each naming the
//! documentation page of the call it wraps. Functions that take an address
//! range are `unsafe` under the same shared contract as on Unix (see
//! `os::unix`): `addr` is page-aligned and `addr..addr + len` lies inside
//! one reservation this crate made with [`map_none`] and has not released,
//! and nothing outside the caller relies on the range's protection,
//! contents or existence.
//!
//! Where Windows differs from `mmap(2)`:
//! - a reservation is released whole (`VirtualFree(MEM_RELEASE)` takes the
//!   base address and no length): [`unmap`] takes only whole reservations,
//!   and checks that it was given one;
//! - reserved pages must be committed before they can be made accessible:
//!   [`protect`] commits what is only reserved, and changes the protection
//!   of what is committed; [`replace_none`] decommits, which gives the
//!   pages back to the system (contents and lock gone) and leaves them
//!   reserved;
//! - the address space is handed out in units of 64 KiB
//!   (`dwAllocationGranularity`): a reservation of a few pages takes the
//!   address space of 64 KiB, none of it committed.
//!
//! What is proved, and where: CI cross-compiles the tests for
//! `x86_64-pc-windows-gnu` and runs them under Wine 8.0 (`.ci/wine/run`);
//! `tests/windows.rs` looks from outside the crate's bookkeeping.
//! - Proved under Wine: the guard pages (`VirtualQuery` shows the data
//!   committed read-write between inaccessible pages of the same
//!   reservation, and a child that writes or reads one byte past a box dies
//!   of `STATUS_ACCESS_VIOLATION` at that address); sealing (a sealed box's
//!   page is `PAGE_NOACCESS`, `PAGE_READONLY` while borrowed, and a read of
//!   it kills a child); zeroing on drop (a parent reads a child's boxes with
//!   `ReadProcessMemory`: the value while it lives, zeros after the drop);
//!   the last wipe on a crash (a child's own filter, chained after the
//!   crate's, finds the box inaccessible and zeroed) and on Ctrl-C (the
//!   process ends through the crate's handler); the prompt's echo off and
//!   restored, Ctrl-C included; the environment taken; the refusals
//!   (`Backing::SecretMem`, `DumpPolicy::Exclude` where the call is
//!   missing, signals that do not exist here).
//! - Not provable under Wine, asserted on Windows only: the lock itself
//!   (Wine's `VirtualLock` succeeds and locks nothing: the working set's
//!   `Locked` bit stays clear, which the test asserts under Wine so that it
//!   fails when Wine changes); the quota (Wine enforces no minimum working
//!   set, so `LockPolicy::Require` past it is `MemlockLimit` on Windows,
//!   while under Wine every box is made, which the test asserts; the
//!   sorting of `ERROR_WORKING_SET_QUOTA` as the lock limit is a unit test);
//!   exclusion from Windows Error Reporting's dumps (Wine has no
//!   `WerRegisterExcludedMemoryBlock` that works: `Host::dump_exclusion`
//!   is false there and `DumpPolicy::Exclude` is refused, which is tested;
//!   no test reads a WER dump).
//! - Type-checked only: `x86_64-pc-windows-msvc` and
//!   `aarch64-pc-windows-msvc` (clippy and docs in CI; nothing runs).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_COMMITMENT_LIMIT, ERROR_FILE_NOT_FOUND, ERROR_GEN_FAILURE,
    ERROR_INVALID_ADDRESS, ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_MEMORY,
    ERROR_NOT_LOCKED, ERROR_OPERATION_ABORTED, ERROR_OUTOFMEMORY, ERROR_SHARING_BUFFER_EXCEEDED,
    ERROR_TOO_MANY_OPEN_FILES, ERROR_WORKING_SET_QUOTA,
};
use windows_sys::Win32::Security::Cryptography::ProcessPrng;
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE, MEMORY_BASIC_INFORMATION, PAGE_NOACCESS,
    PAGE_PROTECTION_FLAGS, PAGE_READONLY, PAGE_READWRITE, VirtualAlloc, VirtualFree, VirtualLock,
    VirtualProtect, VirtualQuery, VirtualUnlock,
};
use windows_sys::Win32::System::ProcessStatus::{
    K32QueryWorkingSetEx, PSAPI_WORKING_SET_EX_INFORMATION,
};
use windows_sys::Win32::System::SystemInformation::{
    GetSystemInfo, GlobalMemoryStatusEx, MEMORYSTATUSEX, SYSTEM_INFO,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, GetCurrentProcessId, GetProcessWorkingSetSize, INFINITE, Sleep,
};

use super::cpu::clear_vector_registers;
use super::thread::thread_id;
use super::types::{ForkView, Protection, Refused, Trouble, Why};
use crate::dying;

/// What `Host::platform` says.
pub(crate) const PLATFORM: &str = "windows";

/// The call that locks a range, as messages name it.
pub(crate) const LOCK_CALL: &str = "VirtualLock";

/// The lock limit, as the messages about it name it.
pub(crate) const LOCK_LIMIT: &str = "the process's minimum working set";

/// The terminal a prompt opens, as messages name it.
pub(crate) const TERMINAL: &str = "the console (CONIN$)";

/// How to give the process more lockable memory, in every message about
/// the limit. The crate never raises the working set itself.
pub(crate) const RAISE_LOCK_LIMIT: &str = "raise the process's minimum working set before \
     making boxes (SetProcessWorkingSetSizeEx; a little less than the minimum can be locked)";

/// The call that leaves memory out of dumps, by name.
pub(crate) const DUMP_EXCLUSION: &str = "WerRegisterExcludedMemoryBlock";

/// Whether a fork child can be given zeros: Windows has no fork(2), so no
/// child ever gets a copy of a box, and the default fork policy
/// (`ForkPolicy::Wipe`) is accepted. Every fork policy is moot here.
pub(crate) const FORK_ZEROS: bool = true;

/// The system page size and allocation granularity, from `GetSystemInfo`.
///
/// # References
/// - [GetSystemInfo](https://learn.microsoft.com/en-us/windows/win32/api/sysinfoapi/nf-sysinfoapi-getsysteminfo)
fn system_info() -> &'static SYSTEM_INFO {
    static INFO: OnceLock<SystemInfo> = OnceLock::new();
    &INFO
        .get_or_init(|| {
            let mut info = MaybeUninit::<SYSTEM_INFO>::zeroed();
            // SAFETY: GetSystemInfo fills the one SYSTEM_INFO it is given.
            unsafe { GetSystemInfo(info.as_mut_ptr()) };
            // SAFETY: zeroed and then filled: every field is plain data.
            SystemInfo(unsafe { info.assume_init() })
        })
        .0
}

/// `SYSTEM_INFO`, which holds raw pointers (the lowest and highest
/// application addresses) and so is neither `Send` nor `Sync` by itself.
struct SystemInfo(SYSTEM_INFO);

// SAFETY: the pointers in it are addresses to compare, never dereferenced.
unsafe impl Send for SystemInfo {}
// SAFETY: as above; it is never written after it is made.
unsafe impl Sync for SystemInfo {}

/// The system page size (`dwPageSize` of `GetSystemInfo`), kept in an
/// atomic after the first call.
#[doc(alias = "GetSystemInfo")]
#[inline]
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            let page = system_info().dwPageSize as usize;
            PAGE.store(page, Ordering::Relaxed);
            page
        }
        page => page,
    }
}

/// The error of the last failed call on this thread (`GetLastError`).
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// An error with a Win32 error code.
fn win32_error(code: u32) -> io::Error {
    io::Error::from_raw_os_error(i32::from_ne_bytes(code.to_ne_bytes()))
}

/// The error of an `HRESULT`: the Win32 error code inside one of
/// `FACILITY_WIN32` (`HRESULT_FROM_WIN32(code)`, `0x8007xxxx`: WER's
/// `E_OUTOFMEMORY` and its refusal past `WER_MAX_REGISTERED_ENTRIES`), so
/// that [`trouble`] and `io::ErrorKind` understand it; else the `HRESULT`
/// itself.
///
/// # References
/// - [HRESULT_FROM_WIN32](https://learn.microsoft.com/en-us/windows/win32/api/winerror/nf-winerror-hresult_from_win32)
fn hresult_error(hr: i32) -> io::Error {
    let bits = u32::from_ne_bytes(hr.to_ne_bytes());
    if bits & 0xFFFF_0000 == 0x8007_0000 {
        win32_error(bits & 0xFFFF)
    } else {
        io::Error::from_raw_os_error(hr)
    }
}

/// Whether `e` carries the Win32 error code `code`.
fn is_code(e: &io::Error, code: u32) -> bool {
    e.raw_os_error()
        .is_some_and(|r| u32::from_ne_bytes(r.to_ne_bytes()) == code)
}

/// `VirtualAlloc(NULL, len, MEM_RESERVE, PAGE_NOACCESS)`: reserves `len`
/// bytes of address space, committing none: every access faults, and the
/// reservation costs neither memory nor commit charge.
///
/// # References
/// - [VirtualAlloc](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualalloc)
#[doc(alias = "VirtualAlloc")]
#[doc(alias = "MEM_RESERVE")]
pub(crate) fn map_none(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: with a null address the system picks a range no allocation
    // uses, so no existing memory is affected.
    let addr = unsafe { VirtualAlloc(ptr::null(), len, MEM_RESERVE, PAGE_NOACCESS) };
    NonNull::new(addr.cast::<u8>()).ok_or_else(last_error)
}

/// `VirtualFree(addr, len, MEM_DECOMMIT)`: gives the pages of the range
/// back to the system and leaves them reserved and inaccessible. Whatever
/// they held goes (committing them again gives zeroed pages), and with
/// them their lock and their place in the working set. Decommitting pages
/// that are only reserved is no error. An empty range is left alone: with a
/// size of 0 at the reservation's base, `VirtualFree` would decommit the
/// whole reservation.
///
/// # Safety
/// The module's shared contract, and: no pointer or reference into the
/// range is used to reach its old contents afterwards.
///
/// # References
/// - [VirtualFree](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualfree)
#[doc(alias = "VirtualFree")]
#[doc(alias = "MEM_DECOMMIT")]
pub(crate) unsafe fn replace_none(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    stop_if_dying();
    // SAFETY: forwarded from the caller's contract: the range is the
    // caller's own, and nothing uses what it held.
    let done = unsafe { VirtualFree(addr.as_ptr().cast::<c_void>(), len, MEM_DECOMMIT) };
    let done = if done == 0 { Err(last_error()) } else { Ok(()) };
    stop_if_dying();
    done
}

/// `VirtualQuery(addr)`: the run of pages that starts at `addr`'s page and
/// shares its state and protection, inside one reservation.
///
/// # References
/// - [VirtualQuery](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualquery)
#[doc(alias = "VirtualQuery")]
pub(super) fn query(addr: *const c_void) -> io::Result<MEMORY_BASIC_INFORMATION> {
    let mut info = MaybeUninit::<MEMORY_BASIC_INFORMATION>::zeroed();
    // SAFETY: VirtualQuery only reads the system's records of the address
    // and writes at most the size given into `info`, which is ours.
    let n = unsafe {
        VirtualQuery(
            addr,
            info.as_mut_ptr(),
            size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    if n == 0 {
        return Err(last_error());
    }
    // SAFETY: zeroed, then filled by the call: plain data.
    Ok(unsafe { info.assume_init() })
}

/// Changes the protection of a range, committing what is only reserved:
/// `VirtualProtect(addr, len, prot)` when every page is committed, else,
/// run by run, `VirtualAlloc(MEM_COMMIT, prot)` for reserved pages and
/// `VirtualProtect` for committed ones. [`Protection::None`] leaves
/// reserved pages as they are (inaccessible already). Committing gives
/// zeroed pages, charged to the system's commit limit.
///
/// # Safety
/// The module's shared contract, and: while the range is not readable (or
/// not writable), no code may read (or write) it; a Rust reference into the
/// range must not exist while it is inaccessible.
///
/// # References
/// - [VirtualProtect](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualprotect)
/// - [VirtualAlloc](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualalloc)
#[doc(alias = "VirtualProtect")]
#[inline]
pub(crate) unsafe fn protect(addr: NonNull<u8>, len: usize, prot: Protection) -> io::Result<()> {
    let flags = match prot {
        Protection::None => PAGE_NOACCESS,
        Protection::Read => PAGE_READONLY,
        Protection::ReadWrite => PAGE_READWRITE,
    };
    stop_if_dying();
    // SAFETY: forwarded from the caller's contract.
    let done = unsafe { protect_committing(addr.as_ptr().cast::<c_void>(), len, flags) };
    stop_if_dying();
    done
}

/// [`protect`]'s work, without the dying checks.
///
/// # Safety
/// As [`protect`]'s.
unsafe fn protect_committing(
    addr: *mut c_void,
    len: usize,
    flags: PAGE_PROTECTION_FLAGS,
) -> io::Result<()> {
    let mut old = 0;
    // The common case (sealing, unsealing): every page committed.
    // SAFETY: forwarded from the caller's contract; `old` is ours.
    if unsafe { VirtualProtect(addr, len, flags, &raw mut old) } != 0 {
        return Ok(());
    }
    let e = last_error();
    if !is_code(&e, ERROR_INVALID_ADDRESS) {
        return Err(e);
    }
    // Some page is only reserved: run by run.
    let end = addr as usize + len;
    let mut at = addr as usize;
    while at < end {
        let info = query(at as *const c_void)?;
        let run_end = (info.BaseAddress as usize)
            .saturating_add(info.RegionSize)
            .min(end);
        if run_end <= at {
            return Err(win32_error(ERROR_INVALID_ADDRESS));
        }
        let here = at as *mut c_void;
        let n = run_end - at;
        if info.State == MEM_COMMIT {
            // SAFETY: a committed run inside the caller's range.
            if unsafe { VirtualProtect(here, n, flags, &raw mut old) } == 0 {
                return Err(last_error());
            }
        } else if info.State == MEM_RESERVE {
            if flags != PAGE_NOACCESS {
                // SAFETY: a reserved run inside the caller's range; the
                // committed pages are new and zeroed.
                if unsafe { VirtualAlloc(here, n, MEM_COMMIT, flags) }.is_null() {
                    return Err(last_error());
                }
            }
        } else {
            // Free address space: not the crate's reservation.
            return Err(win32_error(ERROR_INVALID_ADDRESS));
        }
        at = run_end;
    }
    Ok(())
}

/// `VirtualLock(addr, len)`: keeps the range in the process's working set,
/// so that it is never written to the paging file. The pages must be
/// committed and accessible.
///
/// The quota is the process's minimum working set (a little less of it
/// can be locked): past it the call fails with `ERROR_WORKING_SET_QUOTA`,
/// which [`trouble`] sorts as [`Trouble::LockLimit`]. No privilege lifts it.
///
/// # Safety
/// The module's shared contract; the range must be accessible.
///
/// # References
/// - [VirtualLock](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtuallock)
#[doc(alias = "VirtualLock")]
pub(crate) unsafe fn lock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { VirtualLock(addr.as_ptr().cast::<c_void>(), len) } == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `VirtualUnlock(addr, len)`: lets the system page the range out again.
/// `VirtualUnlock` fails with `ERROR_NOT_LOCKED` if any page of the range
/// is not locked (after a lock that failed half-way): then each page is
/// unlocked on its own, and pages that were not locked are no error.
///
/// # Safety
/// The module's shared contract.
///
/// # References
/// - [VirtualUnlock](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualunlock)
#[doc(alias = "VirtualUnlock")]
pub(crate) unsafe fn unlock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { VirtualUnlock(addr.as_ptr().cast::<c_void>(), len) } != 0 {
        return Ok(());
    }
    let e = last_error();
    if !is_code(&e, ERROR_NOT_LOCKED) {
        return Err(e);
    }
    let page = page_size();
    for at in (0..len).step_by(page) {
        let p = addr.as_ptr().wrapping_add(at).cast::<c_void>();
        // SAFETY: one page of the caller's range.
        if unsafe { VirtualUnlock(p, page) } == 0 {
            let e = last_error();
            if !is_code(&e, ERROR_NOT_LOCKED) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Undoes whatever a refused [`lock`] of the range may have left locked.
/// VirtualLock's documentation does not say that a failure leaves every
/// page as it was, so the range is unlocked, page by page where part of it
/// is not locked ([`unlock`] takes `ERROR_NOT_LOCKED` as done).
///
/// # Safety
/// The module's shared contract.
pub(crate) unsafe fn undo_failed_lock(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { unlock(addr, len) }
}

/// `VirtualFree(addr, 0, MEM_RELEASE)`: releases the whole reservation
/// that starts at `addr`, committed pages, locks and all, after checking
/// that it is exactly `addr..addr + len` (`VirtualQuery` of its first and
/// last page and of the page after it): a release cannot be partial. Its
/// blocks excluded from dumps are unregistered after the release.
///
/// # Safety
/// The module's shared contract, with the whole reservation as the range,
/// and: no pointer or reference into it is used afterwards.
///
/// # References
/// - [VirtualFree](https://learn.microsoft.com/en-us/windows/win32/api/memoryapi/nf-memoryapi-virtualfree)
#[doc(alias = "VirtualFree")]
#[doc(alias = "MEM_RELEASE")]
pub(crate) unsafe fn unmap(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    let base = addr.as_ptr().cast::<c_void>();
    let whole = len > 0
        && query(base)?.AllocationBase == base
        && query(addr.as_ptr().wrapping_add(len - 1).cast())?.AllocationBase == base
        && query(addr.as_ptr().wrapping_add(len).cast()).map_or(true, |i| i.AllocationBase != base);
    if !whole {
        return Err(win32_error(ERROR_INVALID_PARAMETER));
    }
    stop_if_dying();
    // The list of excluded blocks is held from before the release until the
    // blocks are unregistered: a reservation made meanwhile at the same
    // address must not find them there (it would count as excluded, and
    // then lose its exclusion to the unregistering).
    let mut blocks = wer().map(|_| BLOCKS.lock().unwrap_or_else(PoisonError::into_inner));
    // SAFETY: forwarded from the caller's contract: the whole reservation,
    // unused from now on.
    let done = unsafe { VirtualFree(base, 0, MEM_RELEASE) };
    let done = if done == 0 { Err(last_error()) } else { Ok(()) };
    if let (Ok(()), Some(blocks)) = (&done, blocks.as_mut()) {
        unregister_excluded(blocks, addr.as_ptr() as usize, len);
    }
    drop(blocks);
    stop_if_dying();
    done
}

/// One entry of `QueryWorkingSetEx` per page of `addr..addr + pages *
/// page_size()`, into `out`.
///
/// # References
/// - [QueryWorkingSetEx](https://learn.microsoft.com/en-us/windows/win32/api/psapi/nf-psapi-queryworkingsetex)
fn working_set(addr: NonNull<u8>, out: &mut [PSAPI_WORKING_SET_EX_INFORMATION]) -> io::Result<()> {
    let page = page_size();
    for (i, entry) in out.iter_mut().enumerate() {
        entry.VirtualAddress = addr.as_ptr().wrapping_add(i * page).cast::<c_void>();
    }
    let bytes =
        u32::try_from(size_of_val(out)).map_err(|_| win32_error(ERROR_INVALID_PARAMETER))?;
    // SAFETY: takes nothing; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: `out` holds the entries the call reads the addresses from
    // and writes the attributes into, `bytes` long, borrowed for the call;
    // the call reads no byte of the pages themselves.
    let ok = unsafe { K32QueryWorkingSetEx(process, out.as_mut_ptr().cast(), bytes) };
    if ok == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// `Valid`, bit 0 of a `PSAPI_WORKING_SET_EX_BLOCK`: the page is in the
/// process's working set.
const WS_VALID: usize = 1;

/// `QueryWorkingSetEx` of every page of the range: how many pages are in
/// the process's working set (and so in RAM), and how many pages it has:
/// `(resident, total)`. A page out of the working set may still be in RAM
/// (on the standby list); a locked page is always in it.
///
/// Only asks; reads or writes no byte of the range.
///
/// # References
/// - [QueryWorkingSetEx](https://learn.microsoft.com/en-us/windows/win32/api/psapi/nf-psapi-queryworkingsetex)
#[doc(alias = "QueryWorkingSetEx")]
pub(crate) fn residency(addr: NonNull<u8>, len: usize) -> io::Result<(usize, usize)> {
    let pages = len.div_ceil(page_size());
    let mut entries = vec![PSAPI_WORKING_SET_EX_INFORMATION::default(); pages];
    working_set(addr, &mut entries)?;
    // SAFETY: `Flags` is the whole of the union, a plain word.
    let resident = entries
        .iter()
        .filter(|e| unsafe { e.VirtualAttributes.Flags } & WS_VALID != 0)
        .count();
    Ok((resident, pages))
}

/// `GetProcessWorkingSetSize`: the lock quota, as `(soft, hard)` in bytes.
/// `soft` is the process's minimum working set, which `VirtualLock` is held
/// to (a few pages less can be locked); `hard` is `None`: Windows has no
/// ceiling like `RLIMIT_MEMLOCK`'s hard limit (the process may raise its
/// own minimum with `SetProcessWorkingSetSizeEx`, as far as the system
/// grants). `(None, None)` if the call fails.
///
/// # References
/// - [GetProcessWorkingSetSize](https://learn.microsoft.com/en-us/windows/win32/api/winbase/nf-winbase-getprocessworkingsetsize)
#[doc(alias = "GetProcessWorkingSetSize")]
pub(crate) fn memlock_limit() -> (Option<u64>, Option<u64>) {
    let (mut min, mut max) = (0usize, 0usize);
    // SAFETY: takes nothing; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: writes two sizes into our locals.
    let ok = unsafe { GetProcessWorkingSetSize(process, &raw mut min, &raw mut max) };
    if ok == 0 {
        return (None, None);
    }
    (Some(min as u64), None)
}

/// The core-file size limit: Windows has none (what is dumped on a crash is
/// Windows Error Reporting's, or a debugger's, choice): `(None, None)`.
pub(crate) fn core_limit() -> (Option<u64>, Option<u64>) {
    (None, None)
}

/// Setting the core-file size limit: `Unsupported` (there is none).
pub(crate) fn set_core_limit(_soft: Option<u64>, _hard: Option<u64>) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `GetCurrentProcessId`: this process's ID.
///
/// # References
/// - [GetCurrentProcessId](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-getcurrentprocessid)
#[doc(alias = "GetCurrentProcessId")]
pub(crate) fn process_id() -> u32 {
    // SAFETY: takes nothing, returns a number.
    unsafe { GetCurrentProcessId() }
}

/// Handlers around fork(2): Windows has no fork, so none are registered.
pub(crate) fn on_fork(
    _prepare: extern "C" fn(),
    _parent: extern "C" fn(),
    _child: extern "C" fn(),
) {
}

/// Closes a descriptor a fork child inherited: never called on Windows,
/// where there is neither fork nor a secret file's descriptor.
pub(crate) fn close_raw(_fd: i32) {}

/// A placeholder in a fork child's hole: never called on Windows (no fork).
pub(crate) fn place_none_in_hole(_addr: NonNull<u8>, _len: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether the calling thread is exempt from the lock quota: no process
/// is (`SeLockMemoryPrivilege` is for large pages and AWE, not for
/// `VirtualLock`).
pub(crate) fn has_cap_ipc_lock() -> io::Result<bool> {
    Ok(false)
}

/// Whether other processes may inspect this one: not asked on Windows
/// (who may open the process for reading is its security descriptor's
/// business). `Unsupported`.
pub(crate) fn dumpable() -> io::Result<bool> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Denying inspection: `Unsupported` on Windows.
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Locking every page of the process: `Unsupported` on Windows (no
/// mlockall(2); `VirtualLock` takes ranges).
pub(crate) fn lock_all(_future: bool, _on_fault: bool) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `GlobalMemoryStatusEx`: total physical memory in bytes (0 if the call
/// fails, which makes every box too large rather than unbounded).
///
/// # References
/// - [GlobalMemoryStatusEx](https://learn.microsoft.com/en-us/windows/win32/api/sysinfoapi/nf-sysinfoapi-globalmemorystatusex)
#[doc(alias = "GlobalMemoryStatusEx")]
pub(crate) fn physical_memory() -> u64 {
    let mut status = MaybeUninit::<MEMORYSTATUSEX>::zeroed();
    let len = u32::try_from(size_of::<MEMORYSTATUSEX>()).unwrap_or(0);
    // SAFETY: the field is inside the zeroed struct, which is ours.
    unsafe { (*status.as_mut_ptr()).dwLength = len };
    // SAFETY: fills the struct whose length it was told.
    if unsafe { GlobalMemoryStatusEx(status.as_mut_ptr()) } == 0 {
        return 0;
    }
    // SAFETY: zeroed, then filled: plain data.
    unsafe { status.assume_init() }.ullTotalPhys
}

/// `ProcessPrng(buf)`: fills `buf` from the system's random number
/// generator (the one Rust's standard library uses). Documented never to
/// fail.
///
/// # References
/// - [ProcessPrng](https://learn.microsoft.com/en-us/windows/win32/seccng/processprng)
#[doc(alias = "ProcessPrng")]
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: writes `buf.len()` bytes into `buf`, which is borrowed for
    // the call.
    if unsafe { ProcessPrng(buf.as_mut_ptr(), buf.len()) } == 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Keeping a range from merging with its neighbours: nothing to do on
/// Windows, where a reservation's runs of pages keep their own protection.
///
/// # Safety
/// The module's shared contract.
pub(crate) unsafe fn keep_apart(_addr: NonNull<u8>, _len: usize) -> io::Result<()> {
    Ok(())
}

/// What a fork child gets of a range: Windows has no fork(2), so no child
/// ever gets any of it, whatever the view: `Ok` for every view.
///
/// # Safety
/// The module's shared contract.
pub(crate) unsafe fn set_fork_view(
    _addr: NonNull<u8>,
    _len: usize,
    _view: ForkView,
) -> Result<(), Refused> {
    Ok(())
}

/// Whether a fork child can be given `view`: always, since there is no
/// fork (see [`set_fork_view`]).
pub(crate) fn can_set_fork_view(_view: ForkView) -> bool {
    true
}

/// A word a fork child sees as zero: no fork, no such word.
pub(crate) fn fork_wiped_word() -> Option<&'static std::sync::atomic::AtomicU64> {
    None
}

/// `WerRegisterExcludedMemoryBlock` and `WerUnregisterExcludedMemoryBlock`
/// of this system, if it has them: kernel32 exports them from Windows 10
/// version 1703 on, and they are looked up when first needed, so that the
/// crate still runs on older systems (where leaving memory out of dumps is
/// then `Unsupported`). Wine exports the names from stubs that end the
/// process when called: under Wine (`wine_get_version` in ntdll) they
/// count as missing.
struct Wer {
    register: unsafe extern "system" fn(*const c_void, u32) -> i32,
    unregister: unsafe extern "system" fn(*const c_void) -> i32,
}

/// The exported function `name` of the loaded module `module`, if any.
fn exported(module: &str, name: &std::ffi::CStr) -> Option<unsafe extern "system" fn() -> isize> {
    let wide: Vec<u16> = module.encode_utf16().chain([0]).collect();
    // SAFETY: a NUL-terminated UTF-16 name; the module handle is not
    // reference-counted and needs no freeing.
    let handle = unsafe { GetModuleHandleW(wide.as_ptr()) };
    if handle.is_null() {
        return None;
    }
    // SAFETY: a module handle and a NUL-terminated name.
    unsafe { GetProcAddress(handle, name.as_ptr().cast()) }
}

/// Whether this process runs under Wine: its ntdll exports
/// `wine_get_version`, which Windows' does not.
pub(crate) fn under_wine() -> bool {
    static WINE: OnceLock<bool> = OnceLock::new();
    *WINE.get_or_init(|| exported("ntdll.dll", c"wine_get_version").is_some())
}

/// The WER calls, looked up once.
fn wer() -> Option<&'static Wer> {
    static WER: OnceLock<Option<Wer>> = OnceLock::new();
    WER.get_or_init(|| {
        if under_wine() {
            return None;
        }
        let register = exported("kernel32.dll", c"WerRegisterExcludedMemoryBlock")?;
        let unregister = exported("kernel32.dll", c"WerUnregisterExcludedMemoryBlock")?;
        // SAFETY: the export of this name has this signature (werapi.h:
        // `HRESULT (const void *, DWORD)`, stdcall, which is "system").
        let register = unsafe {
            std::mem::transmute::<
                unsafe extern "system" fn() -> isize,
                unsafe extern "system" fn(*const c_void, u32) -> i32,
            >(register)
        };
        // SAFETY: as above: `HRESULT (const void *)`.
        let unregister = unsafe {
            std::mem::transmute::<
                unsafe extern "system" fn() -> isize,
                unsafe extern "system" fn(*const c_void) -> i32,
            >(unregister)
        };
        Some(Wer {
            register,
            unregister,
        })
    })
    .as_ref()
}

/// Whether this system can leave memory out of dumps: it has
/// `WerRegisterExcludedMemoryBlock` (Windows 10 version 1703 and later,
/// and not Wine).
pub(crate) fn dumps_excludable() -> bool {
    wer().is_some()
}

/// Whether this system leaves memory out of dumps.
pub(crate) fn can_exclude_from_dumps() -> bool {
    dumps_excludable()
}

/// The blocks this process registered with WER, `(start, len)`, sorted by
/// start: a range inside one is excluded already, and a reservation's
/// blocks are unregistered when it is released.
#[derive(Debug, Default)]
struct Blocks(Vec<(usize, usize)>);

impl Blocks {
    /// Whether `start..start + len` lies inside one registered block.
    fn covers(&self, start: usize, len: usize) -> bool {
        let i = self.0.partition_point(|&(s, _)| s <= start);
        i > 0 && {
            let (s, l) = self.0[i - 1];
            start + len <= s + l
        }
    }

    /// Records a block.
    fn insert(&mut self, start: usize, len: usize) {
        let i = self.0.partition_point(|&(s, _)| s < start);
        self.0.insert(i, (start, len));
    }

    /// Takes out every block that starts inside `start..start + len`.
    fn take_within(&mut self, start: usize, len: usize) -> Vec<(usize, usize)> {
        let from = self.0.partition_point(|&(s, _)| s < start);
        let to = self.0.partition_point(|&(s, _)| s < start + len);
        self.0.drain(from..to).collect()
    }
}

static BLOCKS: Mutex<Blocks> = Mutex::new(Blocks(Vec::new()));

/// The largest block one registration takes (its size is a `DWORD`):
/// 4 GiB less 64 KiB, so that blocks stay page-aligned.
const BLOCK_MAX: u32 = 0xFFFF_0000;

/// `WerRegisterExcludedMemoryBlock(addr, len)`: leaves the range out of the
/// dumps Windows Error Reporting writes of this process when it crashes. A
/// range inside a block registered before is not registered again; a
/// range over 4 GiB takes one block per 4 GiB.
///
/// What it does not cover: dumps other tools write (`MiniDumpWriteDump`
/// called by a debugger, Task Manager's "Create dump file", procdump),
/// full-memory dumps that do not consult WER's list, and kernel or
/// complete memory dumps of the machine. WER takes at most
/// `WER_MAX_REGISTERED_ENTRIES` (512) blocks per process: past that the
/// call fails (`ERROR_INSUFFICIENT_BUFFER`) and so does making the box.
/// The blocks of a reservation are unregistered when [`unmap`] releases
/// it; [`replace_none`] keeps them (the reservation stays).
///
/// # Safety
/// The module's shared contract.
///
/// # References
/// - [WerRegisterExcludedMemoryBlock](https://learn.microsoft.com/en-us/windows/win32/api/werapi/nf-werapi-werregisterexcludedmemoryblock)
#[doc(alias = "WerRegisterExcludedMemoryBlock")]
pub(crate) unsafe fn exclude_from_dumps(addr: NonNull<u8>, len: usize) -> Result<(), Refused> {
    let Some(wer) = wer() else {
        return Err(Refused::missing(DUMP_EXCLUSION));
    };
    let start = addr.as_ptr() as usize;
    let mut blocks = BLOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    if blocks.covers(start, len) {
        return Ok(());
    }
    let mut done = 0;
    while done < len {
        let n = u32::try_from(len - done)
            .unwrap_or(BLOCK_MAX)
            .min(BLOCK_MAX);
        let at = (start + done) as *const c_void;
        // SAFETY: registers an address range of ours (the caller's); WER
        // reads it only when it writes a dump.
        let hr = unsafe { (wer.register)(at, n) };
        let n = n as usize;
        if hr != 0 {
            // Undo the blocks of this range registered so far.
            for (s, _) in blocks.take_within(start, done) {
                // SAFETY: a block registered just above.
                unsafe { (wer.unregister)(s as *const c_void) };
            }
            return Err(Refused {
                call: DUMP_EXCLUSION,
                why: Why::Other,
                source: hresult_error(hr),
            });
        }
        blocks.insert(start + done, n);
        done += n;
    }
    Ok(())
}

/// `WerUnregisterExcludedMemoryBlock` of every block registered inside
/// `start..start + len`, once the range is released, with the list held
/// (see [`unmap`]).
///
/// # References
/// - [WerUnregisterExcludedMemoryBlock](https://learn.microsoft.com/en-us/windows/win32/api/werapi/nf-werapi-werunregisterexcludedmemoryblock)
#[doc(alias = "WerUnregisterExcludedMemoryBlock")]
fn unregister_excluded(blocks: &mut Blocks, start: usize, len: usize) {
    let Some(wer) = wer() else {
        return;
    };
    for (s, _) in blocks.take_within(start, len) {
        // SAFETY: a block this process registered; only its address is
        // passed.
        unsafe { (wer.unregister)(s as *const c_void) };
    }
}

/// Standard input, read with one `ReadFile` per call straight into `buf`
/// (Rust's `File` over the standard input handle, which buffers nothing);
/// the end of a pipe (`ERROR_BROKEN_PIPE`) is the end of the input. A
/// console gives what its own line editing delivers, in the console's
/// code page.
///
/// # References
/// - [ReadFile](https://learn.microsoft.com/en-us/windows/win32/api/fileapi/nf-fileapi-readfile)
#[doc(alias = "ReadFile")]
pub(crate) fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    use std::os::windows::io::{AsRawHandle, FromRawHandle};
    let handle = std::io::stdin().as_raw_handle();
    if handle.is_null() {
        // No standard input at all: nothing to read.
        return Ok(0);
    }
    // SAFETY: the process's standard input handle, borrowed for the read
    // and never closed (the `File` is not dropped).
    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_handle(handle) });
    (&*file).read(buf)
}

/// Makes the calling thread the one that runs the last wipe; `false` if
/// another thread already is.
pub(crate) fn begin_last_wipe() -> bool {
    dying::begin(thread_id())
}

/// Whether the calling thread runs the last wipe.
pub(crate) fn is_last_wiper() -> bool {
    dying::is_wiper(thread_id())
}

/// Stops the calling thread for good if the last wipe has started on
/// another thread (see `os::unix::stop_if_dying`).
#[inline]
fn stop_if_dying() {
    if dying::must_stop(thread_id) {
        stop_for_good();
    }
}

/// Stops the calling thread until the process ends: its vector registers
/// cleared, recorded stopped, asleep for good.
pub(crate) fn stop_for_good() -> ! {
    clear_vector_registers();
    let _ = dying::record_stopped(thread_id());
    sleep_forever()
}

/// `Sleep(INFINITE)` in a loop.
///
/// # References
/// - [Sleep](https://learn.microsoft.com/en-us/windows/win32/api/synchapi/nf-synchapi-sleep)
#[doc(alias = "Sleep")]
pub(crate) fn sleep_forever() -> ! {
    loop {
        // SAFETY: takes a number, touches no memory of ours.
        unsafe { Sleep(INFINITE) };
    }
}

/// What `e`, from a call of this module's, means for the caller, by its
/// Win32 error code. `ERROR_WORKING_SET_QUOTA` from `VirtualLock` is the
/// lock quota: `lock` asks for [`Trouble::LockLimit`] through `locking`.
///
/// # References
/// - [System Error Codes](https://learn.microsoft.com/en-us/windows/win32/debug/system-error-codes)
pub(crate) fn trouble(e: &io::Error, locking: bool) -> Trouble {
    let Some(code) = e
        .raw_os_error()
        .map(|r| u32::from_ne_bytes(r.to_ne_bytes()))
    else {
        return Trouble::Other;
    };
    match code {
        ERROR_WORKING_SET_QUOTA if locking => Trouble::LockLimit,
        ERROR_TOO_MANY_OPEN_FILES => Trouble::NoDescriptors,
        ERROR_SHARING_BUFFER_EXCEEDED => Trouble::SystemFiles,
        ERROR_ACCESS_DENIED => Trouble::Denied,
        ERROR_NOT_ENOUGH_MEMORY | ERROR_OUTOFMEMORY | ERROR_COMMITMENT_LIMIT => Trouble::NoMemory,
        ERROR_OPERATION_ABORTED => Trouble::Interrupted,
        ERROR_INVALID_HANDLE | ERROR_FILE_NOT_FOUND | ERROR_GEN_FAILURE => Trouble::NoTerminal,
        _ => Trouble::Other,
    }
}

/// An error of the kind `trouble` sorts as `t` (for tests of the advice).
#[cfg(test)]
pub(crate) fn error_for(t: Trouble) -> io::Error {
    win32_error(match t {
        Trouble::NoDescriptors => ERROR_TOO_MANY_OPEN_FILES,
        Trouble::SystemFiles => ERROR_SHARING_BUFFER_EXCEEDED,
        Trouble::Denied => ERROR_ACCESS_DENIED,
        Trouble::NoMemory => ERROR_NOT_ENOUGH_MEMORY,
        Trouble::LockLimit => ERROR_WORKING_SET_QUOTA,
        Trouble::Interrupted => ERROR_OPERATION_ABORTED,
        Trouble::NoTerminal => ERROR_INVALID_HANDLE,
        Trouble::Other => windows_sys::Win32::Foundation::ERROR_IO_DEVICE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_take_and_sort() {
        let mut b = Blocks::default();
        b.insert(0x20000, 0x3000);
        b.insert(0x10000, 0x1000);
        assert_eq!(b.0, vec![(0x10000, 0x1000), (0x20000, 0x3000)]);
        assert!(b.covers(0x20000, 0x3000));
        assert!(b.covers(0x21000, 0x1000));
        assert!(!b.covers(0x21000, 0x3000), "runs past the block");
        assert!(!b.covers(0x11000, 0x1000), "between blocks");
        assert!(!b.covers(0x0f000, 0x1000), "before every block");
        assert_eq!(b.take_within(0x20000, 0x3000), vec![(0x20000, 0x3000)]);
        assert_eq!(b.0, vec![(0x10000, 0x1000)]);
    }

    #[test]
    fn win32_hresults_are_their_win32_codes() {
        use windows_sys::Win32::Foundation::{E_OUTOFMEMORY, ERROR_INSUFFICIENT_BUFFER};
        let full = i32::from_ne_bytes(0x8007_007A_u32.to_ne_bytes());
        assert!(is_code(&hresult_error(full), ERROR_INSUFFICIENT_BUFFER));
        let oom = hresult_error(E_OUTOFMEMORY);
        assert_eq!(trouble(&oom, false), Trouble::NoMemory);
        // Of another facility than Win32's.
        let other = i32::from_ne_bytes(0x8050_0001_u32.to_ne_bytes());
        assert_eq!(hresult_error(other).raw_os_error(), Some(other));
    }

    #[test]
    fn lock_quota_refusals_are_the_lock_limit() {
        let quota = win32_error(ERROR_WORKING_SET_QUOTA);
        assert_eq!(trouble(&quota, true), Trouble::LockLimit);
        assert_eq!(trouble(&quota, false), Trouble::Other);
        for t in [
            Trouble::NoDescriptors,
            Trouble::SystemFiles,
            Trouble::Denied,
            Trouble::NoMemory,
            Trouble::Interrupted,
            Trouble::NoTerminal,
            Trouble::Other,
        ] {
            assert_eq!(trouble(&error_for(t), false), t);
        }
    }
}
