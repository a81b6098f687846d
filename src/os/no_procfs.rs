//! Linux's /proc where there is none (every platform but Linux): which
//! pages of a range hold data (`/proc/self/pagemap`), the process's memory
//! sizes (`/proc/self/status`), which mappings are locked
//! (`/proc/self/smaps`) and whether new ones are. Each is `Unsupported`;
//! the callers say what they do without it (`Hardening::current` is
//! refused, the last wipe treats every page as holding data).

use std::io;
use std::ptr::NonNull;

use super::types::{FutureLock, LockView, MemorySizes};

/// Which pages of a range hold data: `Unsupported`. The caller then treats
/// every page as holding data.
pub(crate) fn populated(_addr: NonNull<u8>, _pages: usize) -> io::Result<Vec<bool>> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The process's mapped, resident and locked sizes: `Unsupported`.
pub(crate) fn memory_sizes() -> io::Result<MemorySizes> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Which mappings are locked: `Unsupported`.
pub(crate) fn lock_view() -> io::Result<LockView> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether new mappings are locked: `Unsupported`.
pub(crate) fn future_lock() -> io::Result<FutureLock> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
