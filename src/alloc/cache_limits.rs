//! How much the caches of ready page-isolated slots may keep: the
//! per-thread limit (a setting of the process) and, derived from it, the
//! limit of the process-wide cache of large slots.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// Default for [`set_cache_limit`]: bytes of ready slots each thread keeps.
pub const DEFAULT_CACHE_LIMIT: usize = 256 * 1024;

static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_CACHE_LIMIT);

/// Sets how many bytes of recycled, ready-to-use page-isolated slots each
/// thread may keep (default [`DEFAULT_CACHE_LIMIT`], 256 KiB: 64 one-page
/// slots). Cached slots stay mlocked and count against `RLIMIT_MEMLOCK`; the
/// crate gives them back before it would refuse a lock for that limit. `0`
/// turns caching off: every drop then unlocks and closes its slot.
///
/// Lowering the limit does not shrink caches at once; call
/// [`trim`](crate::trim) for that.
pub fn set_cache_limit(bytes: usize) {
    CACHE_LIMIT.store(bytes, Ordering::Relaxed);
}

/// The current per-thread cache limit in bytes; see [`set_cache_limit`].
pub fn cache_limit() -> usize {
    CACHE_LIMIT.load(Ordering::Relaxed)
}

/// How many bytes of wiped, locked slots with mappings of their own (values
/// above 256 KiB) the process keeps for reuse, across all threads: sixteen
/// times [`cache_limit`], so 4 MiB by default and none when caching is off.
/// A large secret made and dropped again and again (a growing
/// [`LockedVec`](crate::LockedVec), a file read with
/// [`LockedVec::read_from`](crate::LockedVec::read_from)) then costs no
/// mlock after the first time. Like the threads' caches, these slots count
/// against `RLIMIT_MEMLOCK`, the crate gives them back before it would
/// refuse a lock for that limit, and [`trim`](crate::trim) gives them back.
pub fn large_cache_limit() -> usize {
    cache_limit().saturating_mul(16)
}
