//! The allocator's top: the process-wide pool, the thread-locals, and the
//! operations the slot types call: acquire and recycle a page-isolated slot,
//! claim and free a packed slot, `trim`, `stats`, the count of locked bytes.
//!
//! Each file has one job; they depend one way, top to bottom:
//!
//! - `page_slots` (acquire and recycle a page-isolated slot) and
//!   `packed_claims` (claim and free a packed slot), the entry points;
//! - `local`, the thread-local state (a thread's shard, token, held pages);
//! - `trim` (close a slot, empty the caches, `trim`, the reclaim callback,
//!   relock best-effort pages), `room` (room under `RLIMIT_MEMLOCK`),
//!   `stats`;
//! - `pool`, the process generation's pool, the one global they share;
//! - `page_slot` (the slot type), `keys` (what memory a class holds, and the
//!   pool's index of each class), `large_cache`, `cache_limits`;
//! - `shard` (a thread's cache and counters), `page_slab` and `packed_slab`
//!   (slabs that own their mappings);
//! - `pages` (map, open, close a run of pages; the one mlock), with
//!   `locked_bytes` (the count of locked bytes and of refusals),
//!   `secret_files` (the memfd_secret(2) file behind a secret mapping) and
//!   `atfork` (the fork gate and the atfork handlers);
//! - `registry`, the lock-free list of every mapping `pages` has made and
//!   not unmapped, which the last wipe (`crate::last_wipe`) walks from a
//!   signal handler.
//!
//! The layers above reach the allocator through what this file re-exports:
//! `region` and `packed` for slots, `host` and `hardening` for the counts,
//! `last_wipe` for the registry.
//!
//! # Page-isolated slots
//!
//! A slot of `k` data pages is carved from a slab of slots of `k` pages;
//! neighbouring slots share a guard page. A dropped box's slot is wiped by
//! its owner and then, if it is locked and the thread's cache has room, kept
//! as it is (read-write, locked, advised) in the cache of the thread that
//! dropped it; the next box of the same size class and fork policy on that
//! thread takes it without a system call. A slot leaving the cache is
//! closed (`pages::close`); a slab whose last slot closes is unmapped (one
//! empty slab per class is kept until [`trim()`]). Values above
//! `layout::MAX_SLAB_PAGES` pages get a mapping of their own; a dropped one
//! that is locked is kept, wiped, in one process-wide cache of such slots
//! (oldest given back first, up to [`large_cache_limit`]), matched by exact
//! size. A slot that cannot be closed (`vm.max_map_count`) stays open,
//! locked and counted, and [`trim()`] tries it again.
//!
//! # Locks, and the threads that take them
//!
//! Each thread's cache sits behind a spin lock that only that thread takes
//! in the steady state; `trim` and `stats` take every shard's in turn. The
//! slabs of one class share a mutex, taken on the cold paths. No code holds
//! a shard lock or a class mutex while making a call that can reclaim
//! memory, so an mlock refused for `RLIMIT_MEMLOCK` can call `trim` (passed
//! down to `pages::open` as a callback) and try again.
//!
//! # fork(2)
//!
//! Everything here belongs to one process *generation* (`fork::generation`).
//! A fork child finds the pool, and each thread's local state, stamped with
//! its parent's generation and starts afresh, without touching (or locking)
//! the inherited ones: their mutexes may have been held by threads that do
//! not exist in the child, and their pages are not locked there (or, under
//! `ForkPolicy::Exclude`, not mapped). What they hold is leaked in the
//! child, and the child's count of locked bytes starts at zero. So in a fork
//! child, `stats().mappings` counts only the child's own memory, and `trim`
//! cannot give back the slabs inherited from the parent.
//!
//! The few process-wide values made once on first use (the canary, the
//! fork-detection page, the physical memory size) sit in `OnceLock`s: a
//! fork child of a process whose thread was making one of them at that
//! instant would wait forever for it. Make a box before forking from a
//! multi-threaded process to rule that out.

mod atfork;
mod cache_limits;
mod keys;
mod large_cache;
mod local;
mod locked_bytes;
mod packed_claims;
pub(crate) mod packed_slab;
pub(crate) mod page_slab;
mod page_slot;
mod page_slots;
pub(crate) mod pages;
mod pool;
pub(crate) mod registry;
mod room;
mod secret_files;
pub(crate) mod shard;
mod stats;
mod trim;

pub use cache_limits::{DEFAULT_CACHE_LIMIT, cache_limit, large_cache_limit, set_cache_limit};
pub use stats::{Stats, locked_bytes, stats};
pub use trim::trim;

pub(crate) use keys::Kind;
pub(crate) use packed_claims::{PackedClaim, claim_packed, free_packed};
pub(crate) use packed_slab::PageMeta;
pub(crate) use page_slot::PageSlot;
pub(crate) use page_slots::{acquire_page_slot, largest_ready, recycle_page_slot};
pub(crate) use room::lock_room;
