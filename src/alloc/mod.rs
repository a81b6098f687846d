//! The allocator's top: the process-wide pool, the thread-locals, and the
//! operations the slot types call: acquire and recycle a page-isolated slot,
//! claim and free a packed slot, `trim`, `stats`, the count of locked bytes.
//!
//! Below it, one way only: `shard` (a thread's cache and counters),
//! `page_slab` and `packed_slab` (slabs that own their mappings), `pages`
//! (map, open, close a run of pages; the one mlock), and beside them
//! `registry`, the lock-free list of every mapping `pages` has made and not
//! unmapped, which the last wipe (`crate::last_wipe`) walks from a signal
//! handler.
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
//! empty slab per class is kept until [`trim`]). Values above
//! `layout::MAX_SLAB_PAGES` pages get a mapping of their own; a dropped one
//! that is locked is kept, wiped, in one process-wide cache of such slots
//! (oldest given back first, up to [`large_cache_limit`]), matched by exact
//! size. A slot that cannot be closed (`vm.max_map_count`) stays open,
//! locked and counted, and [`trim`] tries it again.
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
#![allow(unsafe_code)]

pub(crate) mod packed_slab;
pub(crate) mod page_slab;
pub(crate) mod pages;
pub(crate) mod registry;
pub(crate) mod shard;

use std::cell::{Cell, RefCell};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::fork::{self, Origin};
use crate::layout::{MAX_SLAB_PAGES, PACKED_CLASSES, PACKED_MIN_SLOT, SlabGeometry};
use crate::os;
use crate::policy::{FORKS, ForkPolicy, LockPolicy};
use crate::sync::{AtomicU64, lock_std as lock};

pub(crate) use packed_slab::PageMeta;
use packed_slab::{PackedClass, SlowClaim};
use page_slab::{PageClass, SlotId};
use pages::{Closed, LockedBytes, Mapping, OpenError, Reclaim};
use shard::{Cached, Counters, Shard, bump};

/// Default for [`set_cache_limit`]: bytes of ready slots each thread keeps.
pub const DEFAULT_CACHE_LIMIT: usize = 256 * 1024;

static CACHE_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_CACHE_LIMIT);

/// Sets how many bytes of recycled, ready-to-use page-isolated slots each
/// thread may keep (default [`DEFAULT_CACHE_LIMIT`], 256 KiB: 64 one-page
/// slots). Cached slots stay mlocked and count against `RLIMIT_MEMLOCK`; the
/// crate gives them back before it would refuse a lock for that limit. `0`
/// turns caching off: every drop then unlocks and closes its slot.
///
/// Lowering the limit does not shrink caches at once; call [`trim`] for that.
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
/// refuse a lock for that limit, and [`trim`] gives them back.
pub fn large_cache_limit() -> usize {
    cache_limit().saturating_mul(16)
}

/// Slots of at least this many data bytes that a thread's cache has no room
/// for go to the pool's cache of large slots.
const SHARED_CACHE_MIN: usize = 64 * 1024;

/// Large slots (solo, or from slabs of `SHARED_CACHE_MIN` bytes or more)
/// ready for reuse, oldest first.
struct LargeCache<S> {
    slots: Vec<S>,
    bytes: usize,
}

impl<S> Default for LargeCache<S> {
    fn default() -> Self {
        LargeCache {
            slots: Vec::new(),
            bytes: 0,
        }
    }
}

impl<S: Cached> LargeCache<S> {
    /// The newest cached slot that `fits`.
    fn take(&mut self, fits: impl Fn(&S) -> bool) -> Option<S> {
        let at = self.slots.iter().rposition(fits)?;
        let slot = self.slots.remove(at);
        self.bytes -= slot.bytes();
        Some(slot)
    }

    /// Keeps `slot`, first taking out the oldest slots until it fits in
    /// `limit` bytes (they are returned, for the caller to close outside
    /// the lock); `Err` gives the slot back if it alone is over the limit.
    fn put(&mut self, slot: S, limit: usize) -> Result<Vec<S>, S> {
        if slot.bytes() > limit {
            return Err(slot);
        }
        let mut evicted = Vec::new();
        while self.bytes + slot.bytes() > limit {
            let old = self.slots.remove(0);
            self.bytes -= old.bytes();
            evicted.push(old);
        }
        self.bytes += slot.bytes();
        self.slots.push(slot);
        Ok(evicted)
    }
}

/// The data length of the largest slot in the pool's cache of large slots
/// that is at most `max_data_len` bytes and made for `fork`, if any: memory
/// a growing buffer can move to at no cost in locking.
pub(crate) fn largest_ready(max_data_len: usize, kind: Kind) -> Option<usize> {
    let large = lock(&pool().large);
    large
        .slots
        .iter()
        .filter(|s| s.fits(s.data_len, kind) && s.data_len <= max_data_len)
        .map(|s| s.data_len)
        .max()
}

/// Bytes of memory this crate currently holds mlocked, across all threads.
///
/// It counts whole pages: a 32-byte page-isolated box locks one 4 KiB page.
/// Boxes that [`LockPolicy::BestEffort`](crate::LockPolicy::BestEffort)
/// could not lock are not counted. The kernel's own view of the same thing,
/// for the whole process, is `VmLck` in `/proc/self/status`; where the crate
/// is the only thing that locks memory, the two agree.
///
/// In a child made by `fork(2)` the figure starts at zero: memory locks are
/// not inherited, and boxes the child inherited are not counted there.
///
/// ```
/// let before = lockedmem::locked_bytes();
/// let key = lockedmem::LockedBox::<[u8; 32]>::new_zeroed()?;
/// assert!(lockedmem::locked_bytes() >= before + 4096);
/// drop(key);
/// # Ok::<(), lockedmem::Error>(())
/// ```
pub fn locked_bytes() -> usize {
    pool().locked.get()
}

// ---------------------------------------------------------------------------
// Slots

/// Data pages of a page-isolated box, with guard pages on both sides.
///
/// Invariants: `data..data + data_len` is mapped read-write (unless a sealed
/// box changed that; see `Region`), holds no value when the slot is in a
/// cache, and is zero there; it is locked iff `locked`; nobody else holds
/// the same slot.
pub(crate) struct PageSlot {
    pub(crate) data: NonNull<u8>,
    pub(crate) data_len: usize,
    home: Home,
    pub(crate) locked: bool,
    /// Secret memory (memfd_secret(2)) rather than anonymous.
    pub(crate) secret: bool,
    pub(crate) origin: Origin,
}

/// Where a page-isolated slot's pages came from.
enum Home {
    /// A mapping of its own (values above `MAX_SLAB_PAGES` pages).
    Solo(Mapping),
    /// A slot of a slab of the pool's page class `class`.
    Slab { class: usize, id: SlotId },
}

// SAFETY: the slot owns its pages exclusively; nothing in it is tied to a
// thread (its slab is named by indices, looked up under the class mutex).
unsafe impl Send for PageSlot {}
// SAFETY: `&PageSlot` allows reading its fields only.
unsafe impl Sync for PageSlot {}

impl Cached for PageSlot {
    fn bytes(&self) -> usize {
        self.data_len
    }
}

impl PageSlot {
    /// Whether a request for `data_len` bytes of `kind` can take it.
    fn fits(&self, data_len: usize, kind: Kind) -> bool {
        self.data_len == data_len && self.origin.fork == kind.fork && self.secret == kind.secret
    }
}

// ---------------------------------------------------------------------------
// Class keys

/// What memory a class holds: anonymous memory advised for a fork policy,
/// or secret memory (memfd_secret(2)), which is always under
/// [`ForkPolicy::Exclude`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) fork: ForkPolicy,
    pub(crate) secret: bool,
}

/// Kinds of memory: anonymous under each fork policy, and secret.
const KINDS: usize = FORKS + 1;

impl Kind {
    /// Anonymous memory under `fork`.
    pub(crate) const fn anonymous(fork: ForkPolicy) -> Self {
        Kind {
            fork,
            secret: false,
        }
    }

    /// Secret memory.
    pub(crate) const SECRET: Kind = Kind {
        fork: ForkPolicy::Exclude,
        secret: true,
    };

    /// Every kind, by index.
    const ALL: [Kind; KINDS] = [
        Kind::anonymous(ForkPolicy::Wipe),
        Kind::anonymous(ForkPolicy::Exclude),
        Kind::anonymous(ForkPolicy::Keep),
        Kind::SECRET,
    ];

    #[inline]
    fn index(self) -> usize {
        if self.secret {
            FORKS
        } else {
            self.fork.index()
        }
    }
}

/// The pool's index for page-isolated slots of `data_pages` pages (1 to
/// `MAX_SLAB_PAGES`) of `kind`.
#[inline]
fn page_key(kind: Kind, data_pages: usize) -> usize {
    debug_assert!((1..=MAX_SLAB_PAGES).contains(&data_pages));
    kind.index() * MAX_SLAB_PAGES + data_pages - 1
}

/// The pool's index for packed size class `class` of `kind`, on locked
/// pages.
#[inline]
fn packed_key(kind: Kind, class: usize) -> usize {
    debug_assert!(class < PACKED_CLASSES);
    kind.index() * PACKED_CLASSES + class
}

/// Packed classes of each kind: locked pages, and best-effort pages.
const PACKED_KEYS: usize = KINDS * PACKED_CLASSES;

/// The index of the best-effort twin of the locked class `key`: its pages
/// are opened without a lock when `RLIMIT_MEMLOCK` leaves no room, and
/// locked later when it does (`relock`).
#[inline]
fn unlocked_key(key: usize) -> usize {
    debug_assert!(key < PACKED_KEYS);
    key + PACKED_KEYS
}

// ---------------------------------------------------------------------------
// The pool

/// The process generation's pool; see the module docs.
struct Pool {
    generation: u64,
    page_size: usize,
    /// Bytes this generation holds locked.
    locked: LockedBytes,
    /// Indexed by [`page_key`].
    page: Box<[Mutex<PageClass>]>,
    /// Indexed by [`packed_key`] (locked pages) and [`unlocked_key`]
    /// (best-effort pages).
    packed: Box<[Mutex<PackedClass>]>,
    /// Per locked packed class: whether a page may have a free slot for a
    /// thread that holds none (on the partial list, or held by another
    /// thread; set and cleared under the class mutex, read without it by
    /// best-effort claims at the lock limit).
    partial_hint: Box<[AtomicBool]>,
    /// Best-effort packed pages open and not locked.
    unlocked_pages: AtomicUsize,
    /// Live page-isolated boxes that are not locked.
    unlocked_page_boxes: AtomicUsize,
    /// Every live thread's shard, for `trim` and `stats`.
    shards: Mutex<Vec<Arc<Shard<PageSlot>>>>,
    /// Counters of threads that have exited.
    retired: Counters,
    /// Solo mappings currently open (cached ones included).
    solo: AtomicUsize,
    /// Wiped, locked solo slots kept for reuse; see [`large_cache_limit`].
    large: Mutex<LargeCache<PageSlot>>,
    /// Slots that could not be closed; `trim` tries again.
    stuck: Mutex<Vec<PageSlot>>,
    /// Source of thread tokens (nonzero).
    tokens: std::sync::atomic::AtomicU64,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(ptr::null_mut());

/// This process generation's pool, made on first use (and afresh in a fork
/// child). Pools are never freed: a fork child leaks its parent's.
#[inline]
fn pool() -> &'static Pool {
    let generation = fork::generation();
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: a non-null POOL always points at a leaked, never-freed Pool.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.generation == generation {
            return p;
        }
    }
    install_pool(current, generation)
}

#[cold]
fn install_pool(current: *mut Pool, generation: u64) -> &'static Pool {
    let fresh: &'static mut Pool = Box::leak(Box::new(Pool::new(generation)));
    let fresh_ptr: *mut Pool = fresh;
    match POOL.compare_exchange(current, fresh_ptr, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => {
            // Another thread of this generation installed one first (only a
            // fork child changes generation, and it starts with one
            // thread); ours was never shared and stays leaked, unused.
            // SAFETY: as in `pool`: non-null POOL values are leaked Pools.
            unsafe { &*winner }
        }
    }
}

impl Pool {
    fn new(generation: u64) -> Self {
        let page_size = os::page_size();
        debug_assert!(Kind::ALL.iter().enumerate().all(|(i, k)| k.index() == i));
        let classes = Kind::ALL
            .iter()
            .flat_map(|&kind| (0..PACKED_CLASSES).map(move |class| (kind, class)));
        let packed = classes
            .clone()
            .map(|(kind, class)| packed_key(kind, class))
            .chain(classes.map(|(kind, class)| unlocked_key(packed_key(kind, class))))
            .enumerate()
            .map(|(key, k)| {
                debug_assert_eq!(key, k);
                let class = key % PACKED_CLASSES;
                let kind = Kind::ALL[(key % PACKED_KEYS) / PACKED_CLASSES];
                let slots = page_size / (PACKED_MIN_SLOT << class);
                Mutex::new(PackedClass::new(
                    key,
                    kind.fork,
                    kind.secret,
                    page_size,
                    slots,
                ))
            })
            .collect();
        Pool {
            generation,
            page_size,
            locked: LockedBytes::default(),
            page: (0..KINDS * MAX_SLAB_PAGES)
                .map(|_| Mutex::default())
                .collect(),
            packed,
            partial_hint: (0..PACKED_KEYS).map(|_| AtomicBool::new(false)).collect(),
            unlocked_pages: AtomicUsize::new(0),
            unlocked_page_boxes: AtomicUsize::new(0),
            shards: Mutex::default(),
            retired: Counters::default(),
            solo: AtomicUsize::new(0),
            large: Mutex::default(),
            stuck: Mutex::default(),
            tokens: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

// ---------------------------------------------------------------------------
// Thread-local state

/// A thread's state: its shard, its token, and the packed page it holds per
/// class (see `packed_slab`).
struct Local {
    /// The generation the rest was made in; 0 before first use.
    generation: Cell<u64>,
    shard: RefCell<Option<Arc<Shard<PageSlot>>>>,
    token: Cell<u64>,
    held: [Cell<Option<&'static PageMeta>>; 2 * PACKED_KEYS],
}

impl Local {
    const fn new() -> Self {
        Local {
            generation: Cell::new(0),
            shard: RefCell::new(None),
            token: Cell::new(0),
            held: [const { Cell::new(None) }; 2 * PACKED_KEYS],
        }
    }

    /// Makes the state current for `pool`'s generation: afresh on first
    /// use and in a fork child (a parent's state is forgotten, not dropped).
    #[inline]
    fn ready(&self, pool: &'static Pool) -> Option<&Self> {
        if self.generation.get() == pool.generation {
            return Some(self);
        }
        self.start(pool)
    }

    #[cold]
    fn start(&self, pool: &'static Pool) -> Option<&Self> {
        let mut shard = self.shard.try_borrow_mut().ok()?;
        if let Some(old) = shard.take() {
            std::mem::forget(old); // the parent's: see the module docs
        }
        let fresh = Arc::new(Shard::new(KINDS * MAX_SLAB_PAGES));
        lock(&pool.shards).push(Arc::clone(&fresh));
        *shard = Some(fresh);
        for h in &self.held {
            h.set(None);
        }
        self.token.set(pool.tokens.fetch_add(1, Ordering::Relaxed));
        self.generation.set(pool.generation);
        Some(self)
    }

    #[inline]
    fn with_shard<R>(&self, f: impl FnOnce(&Shard<PageSlot>) -> R) -> R {
        let shard = self.shard.borrow();
        f(shard.as_ref().expect("made by `ready`"))
    }
}

impl Drop for Local {
    /// The thread exits: its cache is closed, the packed pages it held go to
    /// the partial lists for other threads, its counters to the pool.
    fn drop(&mut self) {
        let pool = pool();
        if self.generation.get() != pool.generation {
            return; // never used, or a parent's state in a fork child
        }
        let Some(shard) = self.shard.get_mut().take() else {
            return;
        };
        let freed: usize = shard
            .drain()
            .into_iter()
            .map(|slot| close_slot(pool, slot))
            .sum();
        let me = self.token.get();
        for held in &self.held {
            if let Some(page) = held.take() {
                let mut c = lock(&pool.packed[page.class]);
                c.unhold(page, me);
                note_partial(pool, page.class, &c);
            }
        }
        // Under the registry's mutex, so that `stats` sees the counters
        // either in the shard or in `retired`, never in both or neither.
        let mut shards = lock(&pool.shards);
        shard.counters.add_into(&pool.retired);
        shards.retain(|s| !Arc::ptr_eq(s, &shard));
        drop(shards);
        if freed > 0 {
            relock(pool); // the room the closed cache gave back
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local::new() };
}

/// Runs `f` with this thread's state, or with `None` while the thread is
/// being torn down.
#[inline]
fn with_local<R>(f: impl FnOnce(Option<&Local>, &'static Pool) -> R) -> R {
    let pool = pool();
    let mut f = Some(f);
    let r = LOCAL.try_with(|l| {
        l.ready(pool)
            .map(|l| (f.take().expect("called once"))(Some(l), pool))
    });
    match r {
        Ok(Some(r)) => r,
        _ => (f.take().expect("not called yet"))(None, pool),
    }
}

/// The page this thread holds for packed class `key`, if its state is of
/// this process generation: the fast path's only look at thread-locals.
#[inline]
fn held_page(key: usize) -> Option<&'static PageMeta> {
    let generation = fork::generation();
    LOCAL
        .try_with(|l| {
            if l.generation.get() == generation {
                l.held[key].get()
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

/// Adds one to this thread's counter `which`, or to the pool's shared one
/// while the thread is being torn down.
#[inline]
fn count(local: Option<&Local>, pool: &Pool, which: fn(&Counters) -> &AtomicU64) {
    match local {
        Some(l) => l.with_shard(|s| bump(which(&s.counters))),
        None => {
            which(&pool.retired).fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `trim` (or, for [`Reclaim::Caches`], its part that closes the caches'
/// ready slots), returning how many bytes of locked memory it gave back
/// itself (what other threads lock or unlock meanwhile does not count); the
/// reclaim callback handed to `pages::open`.
fn reclaim(what: Reclaim) -> usize {
    match what {
        Reclaim::Caches => close_cached(pool()),
        Reclaim::All => trim_pool(pool()),
        Reclaim::BestEffortLocks(len) => unlock_best_effort(pool(), len),
    }
}

/// Takes back the locks of best-effort packed pages locked after the fact
/// (see `relock`), for a lock of `want` bytes that is required: as many
/// pages as that needs, newest first; returns the bytes unlocked. Their
/// boxes stay where they are and say `is_locked() == false` until room
/// appears again (`trim`: the room stays kept for required locks until
/// then, see `pages::LockedBytes::kept`).
fn unlock_best_effort(pool: &'static Pool, want: usize) -> usize {
    let page_size = pool.page_size;
    let mut unlocked = 0;
    for class in pool.packed[PACKED_KEYS..].iter().rev() {
        if unlocked >= want {
            break;
        }
        let pages = lock(class).unlock_some((want - unlocked).div_ceil(page_size), &mut |page| {
            // SAFETY: an open, locked page of the class, counted; it stays
            // open while `unlock_some` holds the class mutex.
            unsafe { pages::unlock_open(page.addr(), page_size, &pool.locked) }
        });
        pool.unlocked_pages.fetch_add(pages, Ordering::Relaxed);
        unlocked += pages * page_size;
    }
    unlocked
}

// ---------------------------------------------------------------------------
// Page-isolated slots

/// A page-isolated slot of `data_pages` pages: from this thread's cache if it
/// has one, else opened in a slab (or, above `MAX_SLAB_PAGES`, mapped on its
/// own, `map_len` bytes with its guards). Its data bytes are zero.
#[inline]
pub(crate) fn acquire_page_slot(
    data_pages: usize,
    map_len: usize,
    lock_policy: LockPolicy,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let page = os::page_size();
    let Some(geo) = SlabGeometry::new(data_pages, page) else {
        return with_local(|local, pool| {
            let cached = lock(&pool.large).take(|s| s.fits(data_pages * page, kind));
            let slot = match cached {
                Some(slot) => slot,
                None => open_solo(pool, data_pages * page, map_len, lock_policy, kind)?,
            };
            count(local, pool, |c| &c.page_made);
            Ok(slot)
        });
    };
    let class = page_key(kind, data_pages);
    with_local(|local, pool| {
        let cached = local.and_then(|l| {
            l.with_shard(|s| {
                let slot = s.take(class)?;
                bump(&s.counters.page_made);
                Some(slot)
            })
        });
        if let Some(slot) = cached {
            return Ok(slot);
        }
        let len = geo.data_len();
        if len >= SHARED_CACHE_MIN {
            if let Some(slot) = lock(&pool.large).take(|s| s.fits(len, kind)) {
                count(local, pool, |c| &c.page_made);
                return Ok(slot);
            }
        }
        let slot = open_slab_slot(pool, class, geo, lock_policy, kind)?;
        count(local, pool, |c| &c.page_made);
        Ok(slot)
    })
}

fn open_slab_slot(
    pool: &'static Pool,
    class: usize,
    geo: SlabGeometry,
    lock_policy: LockPolicy,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let (id, data, file) = lock(&pool.page[class]).reserve(geo, kind.fork, kind.secret)?;
    let len = geo.data_len();
    let fork = kind.fork;
    // SAFETY: `reserve` set the slot's bit for us, so we hold the closed
    // slot exclusively; `file` is its slab's.
    let opened = unsafe {
        pages::open(
            data,
            len,
            lock_policy,
            fork,
            &pool.locked,
            &reclaim,
            file.as_ref(),
        )
    };
    match opened {
        Ok(locked) => Ok(counted_unlocked(
            pool,
            PageSlot {
                data,
                data_len: len,
                home: Home::Slab { class, id },
                locked,
                secret: kind.secret,
                origin: Origin::here(fork),
            },
        )),
        Err(OpenError { error, closed }) => {
            if closed {
                lock(&pool.page[class]).release(id);
            } // else it stays reserved: read-write, it must not be handed out
            Err(error)
        }
    }
}

/// A slot in a mapping of its own: guard, data, guard.
fn open_solo(
    pool: &'static Pool,
    data_len: usize,
    map_len: usize,
    lock_policy: LockPolicy,
    kind: Kind,
) -> Result<PageSlot, Error> {
    let fork = kind.fork;
    let mapping = if kind.secret {
        Mapping::new_secret(map_len)?
    } else {
        Mapping::new(map_len, fork)?
    };
    let data = mapping.at(pool.page_size);
    // SAFETY: the data pages of a fresh mapping that is ours alone. On
    // error, dropping `mapping` unmaps it, open or not.
    let locked = unsafe {
        pages::open(
            data,
            data_len,
            lock_policy,
            fork,
            &pool.locked,
            &reclaim,
            mapping.secret_file(),
        )
    }
    .map_err(|e| e.error)?;
    pool.solo.fetch_add(1, Ordering::Relaxed);
    Ok(counted_unlocked(
        pool,
        PageSlot {
            data,
            data_len,
            home: Home::Solo(mapping),
            locked,
            secret: kind.secret,
            origin: Origin::here(fork),
        },
    ))
}

/// Counts a new slot among the live unlocked page boxes if it is unlocked.
fn counted_unlocked(pool: &Pool, slot: PageSlot) -> PageSlot {
    if !slot.locked {
        pool.unlocked_page_boxes.fetch_add(1, Ordering::Relaxed);
    }
    slot
}

/// Takes back a wiped slot whose box is gone: into this thread's cache if it
/// is locked and there is room, else closed.
#[inline]
pub(crate) fn recycle_page_slot(slot: PageSlot) {
    if slot.origin.inherited() {
        release_inherited(slot);
        return;
    }
    with_local(|local, pool| {
        count(local, pool, |c| &c.page_dropped);
        if !slot.locked {
            pool.unlocked_page_boxes.fetch_sub(1, Ordering::Relaxed);
        }
        // One drop, counted once against the pressure window.
        let keep = slot.locked && !pool.locked.under_pressure();
        let slot = match (local, &slot.home) {
            (Some(l), &Home::Slab { class, .. }) if keep => {
                match l.with_shard(|s| s.put(class, slot, cache_limit())) {
                    Ok(()) => return,
                    Err(back) => back,
                }
            }
            _ => slot,
        };
        // Large slots the thread's cache has no room for (solo ones are
        // never in it) go to the pool's.
        let slot = if keep && slot.data_len >= SHARED_CACHE_MIN {
            let kept = lock(&pool.large).put(slot, large_cache_limit());
            match kept {
                Ok(evicted) => {
                    let freed: usize = evicted.into_iter().map(|old| close_slot(pool, old)).sum();
                    if freed > 0 {
                        relock(pool); // the room the evicted slots gave back
                    }
                    return;
                }
                Err(back) => back,
            }
        } else {
            slot
        };
        if close_slot(pool, slot) > 0 {
            relock(pool); // the room it gave back
        }
    });
}

/// Closes a wiped slot of this generation and gives it back to its slab (or
/// unmaps its own mapping). Returns the locked bytes it gave back. A slot
/// that cannot be closed goes to the pool's `stuck` list, still open and
/// counted; one closed but not advised again stays reserved for good.
fn close_slot(pool: &'static Pool, slot: PageSlot) -> usize {
    let unlocked = if slot.locked { slot.data_len } else { 0 };
    match slot.home {
        Home::Solo(mapping) => match mapping.unmap() {
            // munmap unlocks and discards too.
            Ok(()) => {
                pool.locked.unlocked(unlocked);
                pool.solo.fetch_sub(1, Ordering::Relaxed);
                unlocked
            }
            Err(mapping) => {
                lock(&pool.stuck).push(PageSlot {
                    home: Home::Solo(mapping),
                    ..slot
                });
                0
            }
        },
        Home::Slab { class, id } => {
            let fork = slot.origin.fork;
            // SAFETY: the slot is wiped, ours alone, and no reference into
            // it remains (its box is gone).
            let closed =
                unsafe { pages::close(slot.data, slot.data_len, slot.locked, fork, &pool.locked) };
            match closed {
                Closed::Yes => {
                    let mut class = lock(&pool.page[class]);
                    class.release(id);
                    class.unmap_empty(1);
                    unlocked
                }
                Closed::No => {
                    lock(&pool.stuck).push(slot);
                    0
                }
                Closed::Unadvised => unlocked,
            }
        }
    }
}

/// A slot inherited from the parent of this fork child: its slab belongs to
/// the parent's pool, which is not touched here, and it was never counted
/// in this process.
fn release_inherited(slot: PageSlot) {
    let present = slot.origin.present();
    match slot.home {
        // `Exclude`: the pages do not exist here; the range may since hold
        // someone else's mapping.
        Home::Solo(mapping) if !present => mapping.abandon(),
        Home::Solo(mapping) => drop(mapping),
        Home::Slab { .. } if !present => {}
        Home::Slab { .. } => {
            // SAFETY: the slot's pages are this process's private copy,
            // wiped, unreferenced; it is not counted here (`false`).
            let _ = unsafe {
                pages::close(
                    slot.data,
                    slot.data_len,
                    false,
                    slot.origin.fork,
                    &LockedBytes::default(),
                )
            };
        }
    }
}

// ---------------------------------------------------------------------------
// Packed slots

/// A claimed packed slot: slot `index` of `page`.
pub(crate) struct PackedClaim {
    pub(crate) page: &'static PageMeta,
    pub(crate) index: usize,
}

/// Claims a slot of size class `class` (see `layout::PackedLayout::class`)
/// on a locked packed page; under [`LockPolicy::BestEffort`], if no page can
/// be locked, on a best-effort page of the class's unlocked twin (see
/// [`unlocked_key`]), which the claim's page reports.
#[inline]
pub(crate) fn claim_packed(
    class: usize,
    lock_policy: LockPolicy,
    kind: Kind,
) -> Result<PackedClaim, Error> {
    let key = packed_key(kind, class);
    if let Some(page) = held_page(key) {
        if let Some(index) = page.claim() {
            return Ok(PackedClaim { page, index });
        }
    }
    // Secret memory is locked, or not at all.
    let lock_policy = if kind.secret {
        LockPolicy::Require
    } else {
        lock_policy
    };
    if lock_policy == LockPolicy::BestEffort {
        let pool = pool();
        // At the limit, with no locked page of the class known to have room,
        // trying to lock would only fail (after a `trim`).
        if pool.locked.at_limit() && !pool.partial_hint[key].load(Ordering::Relaxed) {
            return claim_unlocked(key);
        }
    }
    match with_local(|local, pool| claim_packed_slow(pool, key, local, lock_policy))? {
        Some(claim) => Ok(claim),
        None => claim_unlocked(key),
    }
}

/// Claims a slot on a best-effort page of the locked class `key`'s twin.
fn claim_unlocked(key: usize) -> Result<PackedClaim, Error> {
    let twin = unlocked_key(key);
    if let Some(page) = held_page(twin) {
        if let Some(index) = page.claim() {
            return Ok(PackedClaim { page, index });
        }
    }
    let claim =
        with_local(|local, pool| claim_packed_slow(pool, twin, local, LockPolicy::BestEffort))?;
    Ok(claim.expect("only a locked class gives up on a best-effort claim"))
}

/// Whether `key` names a class of best-effort pages.
fn is_unlocked_key(key: usize) -> bool {
    key >= PACKED_KEYS
}

/// Records in the pool whether the locked class `key` may have a page with
/// a free slot for a thread that holds none (partial, or held by another
/// thread); called under the class mutex after that may have changed.
fn note_partial(pool: &Pool, key: usize, c: &PackedClass) {
    if let Some(hint) = pool.partial_hint.get(key) {
        hint.store(c.may_have_room(), Ordering::Relaxed);
    }
}

#[cold]
fn claim_packed_slow(
    pool: &'static Pool,
    key: usize,
    local: Option<&Local>,
    lock_policy: LockPolicy,
) -> Result<Option<PackedClaim>, Error> {
    let me = local.map_or(0, |l| l.token.get());
    let held = local.map(|l| &l.held[key]);
    let class = &pool.packed[key];
    let unlocked = is_unlocked_key(key);
    // A page of the best-effort twin is locked if the limit leaves room,
    // else opened without the lock.
    let open_policy = if unlocked {
        LockPolicy::BestEffort
    } else {
        LockPolicy::Require
    };
    let mut open = |page: &'static PageMeta, fork, file: Option<&pages::SecretFile>| {
        // SAFETY: `reserve` marked the closed page open for us alone (its
        // bits stay full, so nobody claims on it or closes it meanwhile);
        // `file` is its slab's.
        let opened = unsafe {
            pages::open(
                page.addr(),
                pool.page_size,
                open_policy,
                fork,
                &pool.locked,
                &reclaim,
                file,
            )
        };
        if matches!(opened, Ok(false)) {
            pool.unlocked_pages.fetch_add(1, Ordering::Relaxed);
        }
        opened
    };
    let claimed = packed_slab::claim_slow(
        &|| lock(class),
        me,
        held.and_then(Cell::take),
        &|| locked_memory_is_scarce(pool),
        &mut open,
        &|c| note_partial(pool, key, c),
    );
    match claimed {
        Ok(SlowClaim { page, index, holds }) => {
            if holds {
                match held {
                    Some(h) => h.set(Some(page)),
                    // The thread is being torn down: give the page up.
                    None => {
                        let mut c = lock(class);
                        c.unhold(page, me);
                        note_partial(pool, key, &c);
                    }
                }
            }
            Ok(Some(PackedClaim { page, index }))
        }
        Err(_) if lock_policy == LockPolicy::BestEffort && !unlocked => {
            Ok(None) // the caller claims on the twin
        }
        Err(error) => Err(error),
    }
}

/// Bytes `RLIMIT_MEMLOCK` leaves beside what this crate holds locked and
/// the room it keeps for required locks; `None` where no limit binds
/// (unlimited, or the process has `CAP_IPC_LOCK`). Memory others in the
/// process lock is not seen (a refused mlock tells).
fn room_under_limit(pool: &Pool) -> Option<usize> {
    let soft = crate::limits::memlock_limit().soft?;
    if os::has_cap_ipc_lock().unwrap_or(false) {
        return None;
    }
    let held = pool.locked.get() + pool.locked.kept();
    Some(
        usize::try_from(soft)
            .unwrap_or(usize::MAX)
            .saturating_sub(held),
    )
}

/// Bytes more the crate can lock for a lock it requires before
/// `RLIMIT_MEMLOCK` refuses: the room the limit leaves (the room kept for
/// required locks included), with the ready slots of the caches counted as
/// room (they are given back before a lock is refused). `None` where no
/// limit binds. Takes each thread's cache lock in turn, and the large
/// cache's.
pub(crate) fn lock_room() -> Option<usize> {
    let pool = pool();
    let room = room_under_limit(pool)?.saturating_add(pool.locked.kept());
    let shards: Vec<_> = lock(&pool.shards).clone();
    let cached: usize =
        shards.iter().map(|s| s.cached().1).sum::<usize>() + lock(&pool.large).bytes;
    Some(room.saturating_add(cached))
}

/// Room under `RLIMIT_MEMLOCK`, in pages, below which a thread takes free
/// packed slots on pages other threads hold before it opens a page of its
/// own (see `packed_slab`): 64 pages, 256 KiB with 4 KiB pages. Under a
/// limit that small, every packed page is shared; under a larger one, only
/// the last 256 KiB are.
const SHARE_BELOW_PAGES: usize = 64;

/// Whether locked memory is scarce: a lock was refused at the crate's
/// present count of locked bytes, or `RLIMIT_MEMLOCK` (which binds a
/// process without `CAP_IPC_LOCK`) leaves room for fewer than
/// [`SHARE_BELOW_PAGES`] pages above the crate's locked bytes. Costs a
/// getrlimit(2), and a capget(2) near the limit: asked only before a packed
/// page would be opened while another thread's page of its class has room.
fn locked_memory_is_scarce(pool: &Pool) -> bool {
    if pool.locked.at_limit() {
        return true;
    }
    let Some(soft) = crate::limits::memlock_limit().soft else {
        return false;
    };
    let room = usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(pool.locked.get());
    room < SHARE_BELOW_PAGES * pool.page_size && !os::has_cap_ipc_lock().unwrap_or(false)
}

/// Frees slot `index` of `page`, whose bytes the caller has wiped; the slot
/// was claimed in this process generation. Takes no lock unless the slot's
/// word was full (the page may need listing as partial).
#[inline]
pub(crate) fn free_packed(page: &'static PageMeta, index: usize) {
    if page.free(index) {
        freed_on_full(page);
    }
}

#[cold]
fn freed_on_full(page: &'static PageMeta) {
    let pool = pool();
    let mut c = lock(&pool.packed[page.class]);
    c.freed_on_full(page);
    note_partial(pool, page.class, &c);
}

// ---------------------------------------------------------------------------
// trim and stats

/// Gives back every cached slot and every empty packed page, in every
/// thread, and unmaps every slab left empty; tries again to close slots
/// and unmap slabs that could not be closed or unmapped before (at
/// `vm.max_map_count`). Afterwards, with no box alive and the mapping limit
/// not reached, the process's `VmLck` and mapping count are back where they
/// were before the first box (but for one page the crate keeps to detect
/// fork(2)). In a fork child, slabs inherited from the parent are not given
/// back.
///
/// The crate calls it itself before it would refuse an mlock for
/// `RLIMIT_MEMLOCK`, and tries the lock again, repeatedly while that frees
/// memory: a cache causes [`Error::MemlockLimit`] only if other threads
/// refill their caches faster than the retries take them back.
pub fn trim() {
    let pool = pool();
    trim_pool(pool);
    // Room kept for required locks (taken from best-effort pages) goes
    // back to them now.
    pool.locked.release_kept();
    relock(pool);
}

/// Locks best-effort packed pages that were opened without a lock, first
/// opened first, while `RLIMIT_MEMLOCK` leaves room beside the room kept
/// for required locks (see `pages::LockedBytes::kept`): after [`trim`], and
/// after a dropped box gave locked memory back. Not part of `trim_pool`,
/// which reclaims room for a lock and must not take it again.
fn relock(pool: &'static Pool) {
    if pool.unlocked_pages.load(Ordering::Relaxed) == 0 {
        return;
    }
    let page_size = pool.page_size;
    // Pages the limit leaves room for, as far as the crate can tell; no
    // bound where no limit binds (a refused mlock still stops the loop).
    let mut budget = room_under_limit(pool).map(|room| room / page_size);
    if budget == Some(0) {
        return;
    }
    for class in &pool.packed[PACKED_KEYS..] {
        let mut c = lock(class);
        let mut refused = false;
        let locked = c.relock(&mut |page| {
            if budget == Some(0) {
                refused = true;
                return false;
            }
            // SAFETY: an open page of the class, unlocked and uncounted; it
            // stays open while we hold the class mutex.
            let ok = unsafe { pages::relock(page.addr(), page_size, &pool.locked) };
            refused = !ok;
            budget = budget.map(|b| b - 1);
            ok
        });
        pool.unlocked_pages.fetch_sub(locked, Ordering::Relaxed);
        if refused {
            return;
        }
    }
}

/// `trim` for `pool`; returns the locked bytes it gave back.
fn trim_pool(pool: &'static Pool) -> usize {
    let mut unlocked = close_cached(pool);
    let stuck = std::mem::take(&mut *lock(&pool.stuck));
    for slot in stuck {
        unlocked += close_slot(pool, slot);
    }
    for class in pool.packed.iter() {
        let mut c = lock(class);
        let fork = c.fork();
        let page_size = pool.page_size;
        c.close_empty(&mut |page| {
            let locked = page.is_locked();
            // SAFETY: `close_empty` took every slot of the page, so it is
            // empty (wiped by each slot's last owner) and ours alone; it is
            // locked and counted iff its flag says so.
            let closed =
                unsafe { pages::close(page.addr(), page_size, locked, fork, &pool.locked) };
            if closed != Closed::No {
                page.set_locked(false);
                if locked {
                    unlocked += page_size;
                } else {
                    pool.unlocked_pages.fetch_sub(1, Ordering::Relaxed);
                }
            }
            closed
        });
    }
    for class in pool.page.iter() {
        lock(class).unmap_empty(0);
    }
    unlocked
}

/// Closes the ready slots of every thread's cache and of the cache of large
/// slots; returns the locked bytes it gave back.
fn close_cached(pool: &'static Pool) -> usize {
    let mut unlocked = 0;
    let shards: Vec<_> = lock(&pool.shards).clone();
    for shard in shards {
        for slot in shard.drain() {
            unlocked += close_slot(pool, slot);
        }
    }
    let large = std::mem::take(&mut *lock(&pool.large));
    for slot in large.slots {
        unlocked += close_slot(pool, slot);
    }
    unlocked
}

/// A snapshot of what the crate holds, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Live page-isolated boxes (sealed ones included).
    pub page_boxes: usize,
    /// Of `page_boxes`, those not locked ([`LockPolicy::BestEffort`] at the
    /// lock limit).
    pub page_boxes_unlocked: usize,
    /// Live packed boxes.
    pub packed_boxes: usize,
    /// Of `packed_boxes`, those on pages not locked (yet): see
    /// [`LockPolicy::BestEffort`].
    pub packed_boxes_unlocked: usize,
    /// Bytes this crate holds mlocked: live boxes, cached slots, packed pages.
    pub locked_bytes: usize,
    /// Ready page-isolated slots in the threads' caches and the cache of
    /// large slots.
    pub cached_slots: usize,
    /// Bytes in those slots.
    pub cached_bytes: usize,
    /// Open packed pages (each holding up to 64 slots; locked ones and
    /// best-effort ones not locked yet).
    pub packed_pages: usize,
    /// Of `packed_pages`, those not locked.
    pub packed_pages_unlocked: usize,
    /// Memory mappings (lines of /proc/self/maps) the crate's pages account
    /// for: never fewer than the kernel shows for them.
    pub mappings: usize,
}

/// Takes a [`Stats`] snapshot. It locks each thread's cache in turn, so the
/// figures are consistent per thread, not across threads that are busy
/// making or dropping boxes meanwhile.
pub fn stats() -> Stats {
    let pool = pool();
    let totals = Counters::default();
    let mut st = Stats {
        locked_bytes: pool.locked.get(),
        ..Stats::default()
    };
    {
        let shards = lock(&pool.shards);
        pool.retired.add_into(&totals);
        for shard in shards.iter() {
            shard.counters.add_into(&totals);
            let (slots, bytes) = shard.cached();
            st.cached_slots += slots;
            st.cached_bytes += bytes;
        }
    }
    {
        let large = lock(&pool.large);
        st.cached_slots += large.slots.len();
        st.cached_bytes += large.bytes;
    }
    let made = totals.page_made.load(Ordering::Relaxed);
    let dropped = totals.page_dropped.load(Ordering::Relaxed);
    st.page_boxes = usize::try_from(made.wrapping_sub(dropped)).unwrap_or(0);
    st.page_boxes_unlocked = pool.unlocked_page_boxes.load(Ordering::Relaxed);
    st.packed_pages_unlocked = pool.unlocked_pages.load(Ordering::Relaxed);

    st.mappings = 3 * pool.solo.load(Ordering::Relaxed);
    for class in pool.page.iter() {
        st.mappings += lock(class).mappings();
    }
    for class in pool.packed.iter() {
        let c = lock(class);
        st.mappings += c.mappings();
        st.packed_pages += c.open_pages();
        st.packed_boxes += c.live_slots();
        st.packed_boxes_unlocked += c.live_unlocked_slots();
    }
    st
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn class_keys_are_dense_and_distinct() {
        let mut seen = [false; KINDS * MAX_SLAB_PAGES];
        for kind in Kind::ALL {
            for pages in 1..=MAX_SLAB_PAGES {
                let k = page_key(kind, pages);
                assert!(!seen[k], "page key {k} twice");
                seen[k] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        let mut seen = [false; 2 * PACKED_KEYS];
        for kind in Kind::ALL {
            for class in 0..PACKED_CLASSES {
                for k in [
                    packed_key(kind, class),
                    unlocked_key(packed_key(kind, class)),
                ] {
                    assert!(!seen[k], "packed key {k} twice");
                    seen[k] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[derive(Debug)]
    struct Item(usize);
    impl Cached for Item {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_large_cache_gives_back_the_oldest_first_and_keeps_its_limit() {
        let mut c = LargeCache::default();
        assert!(c.put(Item(300), 1000).unwrap().is_empty());
        assert!(c.put(Item(400), 1000).unwrap().is_empty());
        assert_eq!(c.bytes, 700);
        let evicted = c.put(Item(500), 1000).unwrap();
        assert_eq!(evicted.iter().map(|i| i.0).collect::<Vec<_>>(), [300]);
        assert_eq!(c.bytes, 900);
        assert!(c.put(Item(1001), 1000).is_err(), "alone over the limit");
        assert_eq!(c.take(|i| i.0 == 300).map(|i| i.0), None);
        assert_eq!(c.take(|i| i.0 == 400).map(|i| i.0), Some(400));
        assert_eq!(c.bytes, 500);
        let evicted = c.put(Item(1000), 1000).unwrap();
        assert_eq!(evicted.iter().map(|i| i.0).collect::<Vec<_>>(), [500]);
        assert_eq!((c.slots.len(), c.bytes), (1, 1000));
    }

    #[test]
    fn pool_classes_know_their_keys() {
        let pool = pool();
        for kind in Kind::ALL {
            for class in 0..PACKED_CLASSES {
                for key in [
                    packed_key(kind, class),
                    unlocked_key(packed_key(kind, class)),
                ] {
                    let c = lock(&pool.packed[key]);
                    assert_eq!(c.fork(), kind.fork);
                }
            }
        }
    }
}
