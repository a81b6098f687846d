//! The calling thread's ID, each platform's own call: what the last wipe
//! (and the dying gate) tells threads apart by. Never 0 for a live thread;
//! async-signal-safe everywhere.

// The BSDs', macOS's and Windows's calls are foreign functions.
#![allow(unsafe_code)]

/// `gettid()`: the calling thread's ID. Async-signal-safe.
///
/// # References
/// - [gettid(2)](https://man7.org/linux/man-pages/man2/gettid.2.html)
#[doc(alias = "gettid")]
#[cfg(target_os = "linux")]
pub(crate) fn thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// The calling thread's Mach port name, `pthread_mach_thread_np(
/// pthread_self())`, as an `i32` (the bits of the `u32`): unique among the
/// task's live threads and never 0 (`MACH_PORT_NULL`), which is what the
/// last wipe needs of a thread ID. (`pthread_threadid_np`'s 64-bit ID does
/// not fit.) Reads the thread's own record: no lock, async-signal-safe.
///
/// # References
/// - [pthread(3) (macOS)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man3/pthread.3.html)
#[doc(alias = "pthread_mach_thread_np")]
#[cfg(target_os = "macos")]
pub(crate) fn thread_id() -> i32 {
    // SAFETY: takes nothing and returns the calling thread's handle.
    let me = unsafe { libc::pthread_self() };
    // SAFETY: a live thread's handle (the caller's own); for the calling
    // thread it reads the thread's own record, without a lock.
    let port = unsafe { libc::pthread_mach_thread_np(me) };
    i32::from_ne_bytes(port.to_ne_bytes())
}

/// `pthread_getthreadid_np()`: the calling thread's kernel ID (as
/// thr_self(2) gives it), unique among live threads and never 0. Reads the
/// thread's own record; async-signal-safe.
///
/// # References
/// - [pthread_getthreadid_np(3)](https://man.freebsd.org/cgi/man.cgi?query=pthread_getthreadid_np&sektion=3)
#[doc(alias = "pthread_getthreadid_np")]
#[cfg(target_os = "freebsd")]
pub(crate) fn thread_id() -> i32 {
    // SAFETY: takes nothing and returns the calling thread's ID.
    unsafe { libc::pthread_getthreadid_np() }
}

/// `getthrid()`: the calling thread's ID, unique among live threads and
/// never 0. Async-signal-safe.
///
/// # References
/// - [getthrid(2)](https://man.openbsd.org/getthrid.2)
#[doc(alias = "getthrid")]
#[cfg(target_os = "openbsd")]
pub(crate) fn thread_id() -> i32 {
    // SAFETY: takes nothing and returns the calling thread's ID.
    unsafe { libc::getthrid() }
}

/// `GetCurrentThreadId`: the calling thread's ID, its bits as an `i32`
/// (never 0 for a thread of a process).
///
/// # References
/// - [GetCurrentThreadId](https://learn.microsoft.com/en-us/windows/win32/api/processthreadsapi/nf-processthreadsapi-getcurrentthreadid)
#[doc(alias = "GetCurrentThreadId")]
#[cfg(windows)]
pub(crate) fn thread_id() -> i32 {
    // SAFETY: takes nothing, returns a number.
    let id = unsafe { windows_sys::Win32::System::Threading::GetCurrentThreadId() };
    i32::from_ne_bytes(id.to_ne_bytes())
}
