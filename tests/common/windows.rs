//! What the Windows tests ask the system directly, through `windows-sys`:
//! the page size, a range's state and protection (`VirtualQuery`), a page's
//! place in the working set (`QueryWorkingSetEx`), whether this is Wine,
//! and ending the process at once.
#![allow(dead_code, unreachable_pub)]

use std::ffi::c_void;
use std::mem::{MaybeUninit, size_of};

use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{MEMORY_BASIC_INFORMATION, VirtualQuery};
use windows_sys::Win32::System::ProcessStatus::{
    K32QueryWorkingSetEx, PSAPI_WORKING_SET_EX_INFORMATION,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, TerminateProcess};

pub use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEM_FREE, MEM_RESERVE, PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE,
};

/// `STATUS_ACCESS_VIOLATION`: a process killed by a fault ends with it.
pub const ACCESS_VIOLATION: u32 = 0xC000_0005;

/// `STATUS_STACK_BUFFER_OVERRUN`: a process ended by `__fastfail` (Rust's
/// `abort` on Windows) ends with it.
pub const FAST_FAIL: u32 = 0xC000_0409;

/// An `NTSTATUS` (or a process's exit code as std gives it) as the
/// unsigned number Windows writes it as (`0xC0000005`).
pub const fn ntstatus(code: i32) -> u32 {
    u32::from_ne_bytes(code.to_ne_bytes())
}

/// The exit code of a finished child, as an unsigned `NTSTATUS`.
pub fn exit_code(out: &std::process::Output) -> Option<u32> {
    out.status.code().map(ntstatus)
}

/// `GetSystemInfo`'s page size.
pub fn page_size() -> usize {
    let mut info = MaybeUninit::<SYSTEM_INFO>::zeroed();
    // SAFETY: fills the struct it is given.
    unsafe { GetSystemInfo(info.as_mut_ptr()) };
    // SAFETY: zeroed, then filled.
    unsafe { info.assume_init() }.dwPageSize as usize
}

/// What `VirtualQuery` says of the page holding `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// `MEM_COMMIT`, `MEM_RESERVE` or `MEM_FREE`.
    pub state: u32,
    /// `PAGE_*` of committed pages (0 for reserved ones).
    pub protect: u32,
    /// The first address of the reservation it belongs to.
    pub allocation_base: usize,
}

impl Region {
    /// Every access to the page faults: reserved (never committed, or
    /// decommitted), or committed `PAGE_NOACCESS`.
    pub fn inaccessible(&self) -> bool {
        self.state == MEM_RESERVE || (self.state == MEM_COMMIT && self.protect == PAGE_NOACCESS)
    }

    /// The page is committed read-write.
    pub fn read_write(&self) -> bool {
        self.state == MEM_COMMIT && self.protect == PAGE_READWRITE
    }
}

/// `VirtualQuery` of the page holding `addr`.
pub fn region(addr: usize) -> Region {
    let mut info = MaybeUninit::<MEMORY_BASIC_INFORMATION>::zeroed();
    // SAFETY: only reads the system's record of the address, into `info`.
    let n = unsafe {
        VirtualQuery(
            addr as *const c_void,
            info.as_mut_ptr(),
            size_of::<MEMORY_BASIC_INFORMATION>(),
        )
    };
    assert_ne!(n, 0, "VirtualQuery({addr:#x}) failed");
    // SAFETY: zeroed, then filled.
    let info = unsafe { info.assume_init() };
    Region {
        state: info.State,
        protect: info.Protect,
        allocation_base: info.AllocationBase as usize,
    }
}

/// The `QueryWorkingSetEx` attributes of the page holding `addr`.
pub fn working_set_flags(addr: usize) -> usize {
    let mut entry = PSAPI_WORKING_SET_EX_INFORMATION {
        VirtualAddress: addr as *mut c_void,
        ..Default::default()
    };
    // SAFETY: no argument; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: one entry, ours; the call reads no byte of the page.
    let ok = unsafe {
        K32QueryWorkingSetEx(
            process,
            (&raw mut entry).cast(),
            u32::try_from(size_of::<PSAPI_WORKING_SET_EX_INFORMATION>()).unwrap(),
        )
    };
    assert_ne!(ok, 0, "QueryWorkingSetEx failed");
    // SAFETY: the union's whole word.
    unsafe { entry.VirtualAttributes.Flags }
}

/// `Valid`: the page is in the working set.
pub const WS_VALID: usize = 1;
/// `Locked` (bit 22): the page is locked in the working set (`VirtualLock`).
pub const WS_LOCKED: usize = 1 << 22;

/// Whether this runs under Wine: its ntdll exports `wine_get_version`.
pub fn under_wine() -> bool {
    let name: Vec<u16> = "ntdll.dll".encode_utf16().chain([0]).collect();
    // SAFETY: a NUL-terminated name; the handle needs no freeing.
    let ntdll = unsafe { GetModuleHandleW(name.as_ptr()) };
    // SAFETY: a module handle and a NUL-terminated name.
    !ntdll.is_null()
        && unsafe { GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) }.is_some()
}

/// The address [`die_of_a_fault_at`] expects the fault at.
static FAULT_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a process ends with when it faulted elsewhere than expected.
pub const FAULT_ELSEWHERE: u32 = 0xBAD0_ADD0;

/// For a death test's child: the next unhandled exception ends the
/// process at once, with the exception's code if it is an access
/// violation at `addr` (the address of the data accessed, as the exception
/// record gives it), else with [`FAULT_ELSEWHERE`]. An unhandled-exception
/// filter, so that neither Windows Error Reporting nor Wine's debugger
/// (which, on a test binary this large, may itself crash and change the
/// exit code) runs.
pub fn die_of_a_fault_at(addr: usize) {
    use windows_sys::Win32::System::Diagnostics::Debug::{
        EXCEPTION_POINTERS, SetUnhandledExceptionFilter,
    };
    unsafe extern "system" fn filter(info: *const EXCEPTION_POINTERS) -> i32 {
        // SAFETY: the system passes the exception's pointers, valid for the
        // duration of the filter.
        let record = unsafe { (*info).ExceptionRecord };
        // SAFETY: as above: the record they point to.
        let record = unsafe { &*record };
        let code = ntstatus(record.ExceptionCode);
        let at = record.ExceptionInformation[1];
        let expected = FAULT_AT.load(std::sync::atomic::Ordering::SeqCst);
        terminate(
            if code == ACCESS_VIOLATION && record.NumberParameters >= 2 && at == expected {
                code
            } else {
                FAULT_ELSEWHERE
            },
        )
    }
    FAULT_AT.store(addr, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: `filter` has the filter's type.
    unsafe { SetUnhandledExceptionFilter(Some(filter)) };
}

/// Ends this process at once with `code` (`TerminateProcess`): no handler,
/// no cleanup runs.
pub fn terminate(code: u32) -> ! {
    // SAFETY: no argument; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: ends this process.
    unsafe { TerminateProcess(process, code) };
    unreachable!("TerminateProcess of this process returned")
}

/// Another process, opened to read its memory (`OpenProcess` with
/// `PROCESS_VM_READ | PROCESS_QUERY_INFORMATION`): what a debugger or a
/// memory scanner of the same user sees.
pub struct OtherProcess {
    handle: windows_sys::Win32::Foundation::HANDLE,
}

impl OtherProcess {
    /// Opens the process `pid`.
    pub fn open(pid: u32) -> Self {
        use windows_sys::Win32::System::Threading::{
            OpenProcess, PROCESS_QUERY_INFORMATION, PROCESS_VM_READ,
        };
        // SAFETY: takes numbers; the handle returned is ours to close.
        let handle = unsafe { OpenProcess(PROCESS_VM_READ | PROCESS_QUERY_INFORMATION, 0, pid) };
        assert!(
            !handle.is_null(),
            "OpenProcess({pid}): {}",
            std::io::Error::last_os_error()
        );
        Self { handle }
    }

    /// `ReadProcessMemory` of `len` bytes at `addr`; `None` if the call
    /// fails (a page of the range is not readable, or not committed).
    pub fn read(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        use windows_sys::Win32::System::Diagnostics::Debug::ReadProcessMemory;
        let mut buf = vec![0u8; len];
        let mut got = 0usize;
        // SAFETY: writes at most `len` bytes into `buf`, ours, and one count.
        let ok = unsafe {
            ReadProcessMemory(
                self.handle,
                addr as *const c_void,
                buf.as_mut_ptr().cast(),
                len,
                &raw mut got,
            )
        };
        (ok != 0 && got == len).then_some(buf)
    }

    /// `VirtualQueryEx` of the page holding `addr` in that process.
    pub fn region(&self, addr: usize) -> Region {
        use windows_sys::Win32::System::Memory::VirtualQueryEx;
        let mut info = MaybeUninit::<MEMORY_BASIC_INFORMATION>::zeroed();
        // SAFETY: only reads the system's record of the address, into `info`.
        let n = unsafe {
            VirtualQueryEx(
                self.handle,
                addr as *const c_void,
                info.as_mut_ptr(),
                size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        assert_ne!(n, 0, "VirtualQueryEx({addr:#x}) failed");
        // SAFETY: zeroed, then filled.
        let info = unsafe { info.assume_init() };
        Region {
            state: info.State,
            protect: info.Protect,
            allocation_base: info.AllocationBase as usize,
        }
    }
}

impl Drop for OtherProcess {
    fn drop(&mut self) {
        // SAFETY: the handle `open` got, closed once.
        unsafe { windows_sys::Win32::Foundation::CloseHandle(self.handle) };
    }
}

/// Sets this process's minimum and maximum working set
/// (`SetProcessWorkingSetSize`): `VirtualLock`'s quota.
pub fn set_working_set(min: usize, max: usize) {
    use windows_sys::Win32::System::Threading::SetProcessWorkingSetSize;
    // SAFETY: no argument; the pseudo-handle needs no closing.
    let process = unsafe { GetCurrentProcess() };
    // SAFETY: takes numbers.
    let ok = unsafe { SetProcessWorkingSetSize(process, min, max) };
    assert_ne!(
        ok,
        0,
        "SetProcessWorkingSetSize: {}",
        std::io::Error::last_os_error()
    );
}
