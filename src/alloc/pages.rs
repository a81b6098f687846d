//! Runs of pages and their transitions: map and advise a reservation, open a
//! run (read-write, locked), close it again. The one place that mlocks.
//!
//! A reservation is mapped `PROT_NONE` and advised `MADV_DONTDUMP` and its
//! fork policy's advice once. Opening a run of it takes mprotect and mlock;
//! closing it *replaces* the run with fresh `PROT_NONE` memory (mmap with
//! `MAP_FIXED`, which also unlocks and discards it) and advises it again, so
//! that the kernel forgets the run was ever touched and merges it back with
//! its neighbours: a reservation costs the same number of mappings whatever
//! its history.
//!
//! Reclaiming locked memory under `RLIMIT_MEMLOCK` pressure belongs to the
//! layer above (it knows the caches); it is handed down as a callback.
//!
//! Every mapping is entered in the `registry` right after mmap(2), before
//! anything is written to it, and leaves it right before munmap(2), after
//! its owner wiped it: the last wipe finds the crate's memory there.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicPtr};

use crate::sync::{AtomicUsize, Ordering, fence};

use crate::alloc::registry::{self, Range, Slot};
use crate::error::Error;
use crate::limits;
use crate::os::{self, Protection};
use crate::policy::{ForkPolicy, LockPolicy};

/// One mapping this crate made, owned: unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    addr: NonNull<u8>,
    len: usize,
    /// For a mapping whose runs are opened from a memfd_secret(2) file: the
    /// file, as long as the mapping (a run's offset in the file is its
    /// offset in the mapping).
    secret: Option<SecretFile>,
    /// Its entry in the registry the last wipe walks.
    entry: Slot,
    /// What the entry says: the range, and which process generation has it.
    range: Range,
}

/// The memfd_secret(2) file behind a mapping's open runs. Its pages live
/// (and hold what was written to them) until the last mapping of them and
/// the descriptor are gone: the kernel can neither discard nor punch them,
/// so a run is wiped by writing zeros before it is closed.
#[derive(Debug, Clone)]
pub(crate) struct SecretFile {
    fd: Arc<SecretFd>,
    /// The first byte of the mapping, at file offset 0.
    base: usize,
}

impl SecretFile {
    /// Makes the file for a mapping of `len` bytes at `base`.
    fn new(base: NonNull<u8>, len: usize) -> Result<Self, Error> {
        // From the new descriptor to its listing, no fork(2) may happen: a
        // child would keep a descriptor its handler does not know of, and
        // with it every secret the parent later writes to the file.
        let gate = ForkGate::enter();
        let fd = os::SecretFile::new().map_err(secretmem_error)?;
        fd.set_len(len)
            .map_err(|e| Error::os("ftruncate", len, e))?;
        let fd = Arc::new(SecretFd::listed(fd));
        drop(gate);
        Ok(SecretFile {
            fd,
            base: base.as_ptr() as usize,
        })
    }
}

/// A secret file's descriptor, listed so that a fork(2) child closes it at
/// once: the child inherits the descriptor table, and with it a way to map
/// the parent's secret pages that `MADV_DONTFORK` on the mappings does not
/// take away (`O_CLOEXEC` covers exec(2) only; Linux has no close-on-fork).
#[derive(Debug)]
struct SecretFd {
    /// Taken only by `Drop`.
    fd: std::mem::ManuallyDrop<os::SecretFile>,
    entry: &'static Listed,
}

/// One entry of the list of open secret descriptors: `-1` when free.
/// Entries are leaked and reused, so the list can be walked in a fork child
/// without a lock and without allocating.
#[derive(Debug)]
struct Listed {
    fd: AtomicI32,
    next: *const Listed,
}

// SAFETY: `next` is written once, before the entry is published, and points
// at a leaked entry; `fd` is atomic.
unsafe impl Sync for Listed {}

static LISTED: AtomicPtr<Listed> = AtomicPtr::new(std::ptr::null_mut());

impl SecretFd {
    /// Lists `fd`; the caller holds the [`ForkGate`].
    fn listed(fd: os::SecretFile) -> Self {
        let fd = std::mem::ManuallyDrop::new(fd);
        let raw = fd.raw();
        let mut entry = LISTED.load(Ordering::Acquire).cast_const();
        // SAFETY: every entry is leaked, so `&*entry` lives forever.
        while let Some(e) = unsafe { entry.as_ref() } {
            if e.fd
                .compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return SecretFd { fd, entry: e };
            }
            entry = e.next;
        }
        let fresh: &'static mut Listed = Box::leak(Box::new(Listed {
            fd: AtomicI32::new(raw),
            next: std::ptr::null(),
        }));
        let mut head = LISTED.load(Ordering::Acquire);
        loop {
            fresh.next = head;
            match LISTED.compare_exchange_weak(head, fresh, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        SecretFd { fd, entry: fresh }
    }
}

impl Drop for SecretFd {
    /// Unlists the descriptor and closes it, with no fork(2) in between: a
    /// child forked after the unlisting would keep it open, one forked
    /// after the close (and a reuse of the number) must not close it.
    fn drop(&mut self) {
        let _gate = ForkGate::enter();
        self.entry.fd.store(-1, Ordering::Release);
        // SAFETY: `fd` is taken once, here, and not used again.
        drop(unsafe { std::mem::ManuallyDrop::take(&mut self.fd) });
    }
}

/// Threads in a stretch of code that a fork(2) must not cut in two: from a
/// new secret descriptor to its listing, from a run's new secret mapping to
/// its `MADV_DONTFORK`, from an unlisting to the close. A fork child made
/// inside one would hold a descriptor of the parent's secret file, or a
/// shared mapping of its pages, and read what the parent writes there
/// later. Entered only around system calls and allocations, never while
/// waiting for a lock (a forking thread waits for the stretch to end).
struct ForkGate;

/// The counters behind [`ForkGate`] and the atfork handlers: a value of its
/// own so that the protocol can be model-checked (`loom_fork_gate_*`).
///
/// It is Dekker's: a thread entering counts itself in, then looks for a
/// fork; a forking thread counts itself in, then waits until nobody is
/// inside. A `SeqCst` fence between each one's write and its read makes
/// sure that at least one of the two sees the other (both `SeqCst`
/// read-modify-writes would do in the C++ model; the fence says it in the
/// form loom checks).
pub(crate) struct Gate {
    /// Threads inside a [`ForkGate`].
    inside: AtomicUsize,
    /// Forks in progress (between their prepare and parent handlers).
    forking: AtomicUsize,
}

impl Gate {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Gate {
            inside: AtomicUsize::new(0),
            forking: AtomicUsize::new(0),
        }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Gate {
            inside: AtomicUsize::new(0),
            forking: AtomicUsize::new(0),
        }
    }

    /// Waits for forks in progress, then counts the caller in.
    fn enter(&self) {
        let mut spins = 0;
        loop {
            self.inside.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.forking.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.inside.fetch_sub(1, Ordering::SeqCst);
            while self.forking.load(Ordering::SeqCst) != 0 {
                crate::sync::backoff(&mut spins);
            }
        }
    }

    /// Counts the caller out.
    fn leave(&self) {
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }

    /// Before fork(2): keeps others out, and waits until nobody is inside.
    fn prepare(&self) {
        self.forking.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut spins = 0;
        while self.inside.load(Ordering::SeqCst) != 0 {
            crate::sync::backoff(&mut spins);
        }
    }

    /// After fork(2), in the parent: the gate opens again.
    fn parent(&self) {
        self.forking.fetch_sub(1, Ordering::SeqCst);
    }

    /// After fork(2), in the child, which has one thread: open and empty.
    fn child(&self) {
        self.forking.store(0, Ordering::SeqCst);
        self.inside.store(0, Ordering::SeqCst);
    }
}

#[cfg(not(loom))]
static GATE: Gate = Gate::new();
// Loom's atomics cannot be made in a `const`; the models make gates of
// their own and never touch this one.
#[cfg(loom)]
static GATE: std::sync::LazyLock<Gate> = std::sync::LazyLock::new(Gate::new);

/// Registers the atfork handlers, once: before the first secret descriptor
/// and the first mapping advised `MADV_DONTFORK`.
fn watch_forks() {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| os::on_fork(fork_prepare, fork_parent, fork_child));
}

impl ForkGate {
    /// Waits for forks in progress, then enters; the handlers that make
    /// forks wait are registered first.
    fn enter() -> Self {
        watch_forks();
        GATE.enter();
        ForkGate
    }
}

impl Drop for ForkGate {
    fn drop(&mut self) {
        GATE.leave();
    }
}

/// Before fork(2), in the forking thread (pthread_atfork): waits until no
/// thread is inside a [`ForkGate`], and keeps others out until the fork is
/// done.
extern "C" fn fork_prepare() {
    GATE.prepare();
}

/// After fork(2), in the parent: lets the gate open again.
extern "C" fn fork_parent() {
    GATE.parent();
}

/// After fork(2), in the child: the gate is open (the child has one
/// thread), every secret descriptor inherited is closed, and every range
/// the parent excluded from the child holds a placeholder. Only atomics,
/// close(2) and mmap(2): async-signal-safe, no allocation, no lock.
extern "C" fn fork_child() {
    GATE.child();
    close_secret_fds_in_child();
    hold_excluded_ranges_in_child();
}

/// Run in a fork child right after fork(2) (pthread_atfork): maps an
/// inaccessible placeholder (`PROT_NONE`, `MAP_FIXED_NOREPLACE`) over each
/// range of the registry that an earlier process generation advised
/// `MADV_DONTFORK`, which the child does not have: nothing else can be
/// mapped there later, and a touch through a pointer the child inherited
/// faults (`SIGSEGV`) every time, rather than reaching whatever would
/// otherwise be mapped there. A range where something is mapped already
/// (one not yet advised when the fork came, or a placeholder the child
/// inherited from its own parent) is left as it is. The placeholders are
/// never unmapped: they cost address space, not memory.
fn hold_excluded_ranges_in_child() {
    registry::each_registered(|r| {
        if let (true, Some(addr)) = (r.excluded_from_forks(), NonNull::new(r.addr as *mut u8)) {
            let _ = os::place_none_in_hole(addr, r.len);
        }
    });
}

/// Run in a fork child right after fork(2) (pthread_atfork): closes every
/// secret descriptor the parent had open. Only atomics and close(2).
fn close_secret_fds_in_child() {
    let mut entry = LISTED.load(Ordering::Acquire).cast_const();
    // SAFETY: entries are leaked; see `Listed`.
    while let Some(e) = unsafe { entry.as_ref() } {
        let fd = e.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            os::close_raw(fd);
        }
        entry = e.next;
    }
}

/// The error for secret memory the system refused to make: `Unsupported`
/// where the platform or kernel lacks it, `Os` otherwise.
pub(crate) fn secretmem_error(r: os::Refused) -> Error {
    limits::refused(r, 0)
}

// SAFETY: a `Mapping` is an address range it owns; nothing in it is tied to
// the thread that made it.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only reads the address and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes `PROT_NONE` and advises them `MADV_DONTDUMP` and
    /// `fork`'s advice; unmaps them again on failure.
    pub(crate) fn new(len: usize, fork: ForkPolicy) -> Result<Self, Error> {
        if fork == ForkPolicy::Exclude {
            watch_forks(); // a fork child gets placeholders there
        }
        let addr = os::map_none(len).map_err(|e| Error::os("mmap", len, e))?;
        let at = addr.as_ptr() as usize;
        let range = match fork {
            ForkPolicy::Exclude => Range::this_process_only(at, len),
            ForkPolicy::Wipe | ForkPolicy::Keep => Range::inherited_by_forks(at, len),
        };
        let Some(entry) = registry::register(range) else {
            // SAFETY: the mapping was just made; nothing else knows of it.
            let _ = unsafe { os::unmap(addr, len) };
            return Err(Error::os(
                "mmap",
                len,
                io::Error::from(io::ErrorKind::OutOfMemory),
            ));
        };
        let map = Mapping {
            addr,
            len,
            secret: None,
            entry,
            range,
        };
        // SAFETY: the mapping was just made and holds nothing; nothing else
        // knows of it.
        unsafe { advise_fresh(addr, len, fork) }?;
        Ok(map)
    }

    /// A reservation as [`new`](Mapping::new) makes, under
    /// [`ForkPolicy::Exclude`] (the only policy secret memory can honour),
    /// whose runs [`open`] maps from a new memfd_secret(2) file of the
    /// same length. Guard pages and closed runs stay anonymous `PROT_NONE`
    /// memory, which `RLIMIT_MEMLOCK` does not charge.
    pub(crate) fn new_secret(len: usize) -> Result<Self, Error> {
        let mut map = Mapping::new(len, ForkPolicy::Exclude)?;
        map.secret = Some(SecretFile::new(map.addr, len)?);
        Ok(map)
    }

    /// The secret file behind the mapping's runs, if it has one.
    pub(crate) fn secret_file(&self) -> Option<&SecretFile> {
        self.secret.as_ref()
    }

    /// Where `offset` bytes into the mapping are.
    pub(crate) fn at(&self, offset: usize) -> NonNull<u8> {
        assert!(offset < self.len, "offset inside the mapping");
        // SAFETY: `offset < len`: inside the mapping.
        unsafe { self.addr.add(offset) }
    }

    /// Leaves the address range alone: for a mapping a fork(2) child
    /// inherited under `MADV_DONTFORK`, which does not exist there (the
    /// range may since hold someone else's mapping).
    pub(crate) fn abandon(self) {
        // Not this mapping here any more: out of the registry, or the last
        // wipe could change whatever this process mapped there since.
        self.deregister();
        std::mem::forget(self);
    }

    /// Takes the mapping out of the registry, before it is unmapped. If the
    /// last wipe has claimed it, the process is about to die: the range
    /// must stay as the wipe found it, so the calling thread stops here.
    fn deregister(&self) {
        if registry::deregister(self.entry, self.addr.as_ptr() as usize).is_err() {
            os::stop_for_good();
        }
    }

    /// Unmaps the mapping, or hands it back if munmap(2) fails: the kernel
    /// may have merged its `PROT_NONE` ends with a neighbouring mapping of
    /// the crate's that carries the same advice, and then unmapping it
    /// needs a split, which fails with `ENOMEM` at `vm.max_map_count`. The
    /// caller keeps it (still counted) and tries again later.
    ///
    /// The owner calls this only when no slot of the mapping is open, so
    /// nothing refers into it.
    pub(crate) fn unmap(self) -> Result<(), Mapping> {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: the mapping is ours and, by the owner's contract above,
        // unreferenced; on success `this` is forgotten, so it is not
        // unmapped twice.
        match unsafe { os::unmap(this.addr, this.len) } {
            Ok(()) => {
                // Forgetting `this` must not forget its secret file: the
                // last mapping of it is gone, and dropping the last handle
                // closes the descriptor (and frees the file's pages).
                drop(this.secret.take());
                Ok(())
            }
            Err(_) => {
                // Kept: back into the registry (an entry was freed just now,
                // so there is room, short of a race filling 262,144 entries).
                match registry::register(this.range) {
                    Some(entry) => this.entry = entry,
                    None => {
                        eprintln!(
                            "lockedmem: no room to keep a mapping in the registry of the last \
                             wipe; aborting rather than leaving memory it would miss"
                        );
                        std::process::abort();
                    }
                }
                Err(std::mem::ManuallyDrop::into_inner(this))
            }
        }
    }
}

impl Drop for Mapping {
    /// Reached for a mapping that holds no live value: a fresh one whose
    /// advice or opening failed, or the wiped mapping of a solo slot a fork
    /// child inherited. Unmaps it; should that fail, the address range
    /// stays reserved (and, in the cases above, holds no secret).
    fn drop(&mut self) {
        self.deregister();
        // SAFETY: the mapping is ours and holds no live value; nothing
        // refers into it.
        let _ = unsafe { os::unmap(self.addr, self.len) };
    }
}

/// Makes a fresh or freshly replaced range what every piece of the crate's
/// memory is: out of core dumps where the platform can do it, and seen by
/// a fork(2) child as `fork` says. A refusal for want of the mechanism is
/// [`Error::Unsupported`] naming the call.
///
/// # Safety
/// `addr..addr + len` is a range of this crate's mappings that holds no
/// value and that nothing else uses.
unsafe fn advise_fresh(addr: NonNull<u8>, len: usize, fork: ForkPolicy) -> Result<(), Error> {
    if os::dumps_excludable() {
        // SAFETY: forwarded from the caller's contract.
        unsafe { os::exclude_from_dumps(addr, len) }.map_err(|r| limits::refused(r, len))?;
    }
    // SAFETY: as above; with `Absent`, nothing a child runs uses the range
    // (a fork child finds the memory absent: `fork::Origin::present`).
    unsafe { os::set_fork_view(addr, len, fork_view(fork)) }.map_err(|r| limits::refused(r, len))
}

/// What a fork(2) child gets of memory under `fork`.
fn fork_view(fork: ForkPolicy) -> os::ForkView {
    match fork {
        ForkPolicy::Wipe => os::ForkView::Zeros,
        ForkPolicy::Exclude => os::ForkView::Absent,
        ForkPolicy::Keep => os::ForkView::Copy,
    }
}

/// Bytes a process generation of the crate holds mlocked, and whether it is
/// under `RLIMIT_MEMLOCK` pressure.
#[derive(Debug)]
pub(crate) struct LockedBytes {
    bytes: AtomicUsize,
    /// Slots still to be closed rather than cached since a lock was refused
    /// for the limit; 0 when there is no pressure.
    pressure: AtomicUsize,
    /// `bytes` when a lock was last refused for the limit; `usize::MAX` if
    /// none was, or a lock succeeded above it since (the limit moved).
    refused_at: AtomicUsize,
    /// Room that required locks took back from best-effort pages, kept for
    /// required locks: best-effort locks do not take it again (see
    /// [`LockedBytes::kept`]).
    kept: AtomicUsize,
}

impl Default for LockedBytes {
    fn default() -> Self {
        LockedBytes {
            bytes: AtomicUsize::new(0),
            pressure: AtomicUsize::new(0),
            refused_at: AtomicUsize::new(usize::MAX),
            kept: AtomicUsize::new(0),
        }
    }
}

/// Dropped slots closed rather than cached after a refusal: enough to let a
/// burst of retries succeed, few enough that a process which once touched
/// the limit caches again soon.
const PRESSURE_DROPS: usize = 1024;

impl LockedBytes {
    pub(crate) fn get(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        let now = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if now > self.refused_at.load(Ordering::Relaxed) {
            // The limit moved: there is room again.
            self.refused_at.store(usize::MAX, Ordering::Relaxed);
            self.kept.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the crate holds as much locked memory as it did when a lock
    /// was last refused for `RLIMIT_MEMLOCK`: a best-effort lock then is
    /// not even tried (it would fail, and reclaiming for it would cost a
    /// `trim` each time). Room kept for required locks counts as held.
    #[inline]
    pub(crate) fn at_limit(&self) -> bool {
        let refused_at = self.refused_at.load(Ordering::Relaxed);
        refused_at != usize::MAX && self.get() + self.kept() >= refused_at
    }

    /// Bytes of room kept for required locks: room a required lock had to
    /// take back from best-effort pages. Without it, each required box
    /// made and dropped in turn (a temporary) would unlock a best-effort
    /// page and have it locked again at the drop, two system calls and a
    /// refused mlock each time. Best-effort locks (opening a page at the
    /// limit, locking best-effort pages again after a drop) leave it free;
    /// `trim` gives it back to them, and so does the limit moving up.
    pub(crate) fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// `n` more bytes of room are kept for required locks.
    fn keep_for_required(&self, n: usize) {
        self.kept.fetch_add(n, Ordering::Relaxed);
    }

    /// The room kept for required locks is free for any lock again.
    pub(crate) fn release_kept(&self) {
        self.kept.store(0, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    /// Whether a dropped slot should be closed rather than cached: for the
    /// next [`PRESSURE_DROPS`] drops after a lock was refused for the limit,
    /// so that memory reclaimed for a lock is not taken again at once by
    /// other threads refilling their caches. Each call while under pressure
    /// counts one drop.
    #[inline]
    pub(crate) fn under_pressure(&self) -> bool {
        if self.pressure.load(Ordering::Relaxed) == 0 {
            return false;
        }
        // Racing decrements may end the pressure a few drops early or late.
        let left = self.pressure.load(Ordering::Relaxed);
        self.pressure
            .store(left.saturating_sub(1), Ordering::Relaxed);
        true
    }

    /// A lock was refused for the limit.
    #[cold]
    fn refused(&self) {
        self.pressure.store(PRESSURE_DROPS, Ordering::Relaxed);
        self.limit_seen();
    }

    /// Records where the limit stood, without starting a pressure window:
    /// for a later lock of a best-effort page, which no box waits for (so
    /// no cache needs to stay empty for it).
    #[cold]
    fn limit_seen(&self) {
        self.refused_at.store(self.get(), Ordering::Relaxed);
    }

    /// Counts off `n` bytes whose mapping was unmapped whole (which unlocks
    /// it) rather than closed here.
    pub(crate) fn unlocked(&self, n: usize) {
        self.sub(n);
    }
}

/// Why a run could not be opened, and whether it is closed again.
#[derive(Debug)]
pub(crate) struct OpenError {
    pub(crate) error: Error,
    /// The run is as it was found: closed, unlocked, uncounted. If not,
    /// undoing failed and the run is read-write (unlocked, uncounted): the
    /// caller must not hand it out as closed.
    pub(crate) closed: bool,
}

/// What a reclaim callback handed to [`open`] gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// The ready slots the caches hold: cheap, whatever else is open.
    Caches,
    /// Everything `trim` gives back (empty packed pages too).
    All,
    /// The locks of best-effort pages that were locked after the fact:
    /// taken back (the pages stay open, unlocked) for a run of this many
    /// bytes that requires its lock, when nothing else is left to give;
    /// only as many pages as that needs.
    BestEffortLocks(usize),
}

/// Gives back room for a lock `lock` asks for: everything `trim` would,
/// and, for a required lock, the later locks of best-effort pages.
/// Room taken back from best-effort pages is kept for required locks from
/// then on (see [`LockedBytes::kept`]).
fn free_room(
    reclaim: &dyn Fn(Reclaim) -> usize,
    lock: LockPolicy,
    len: usize,
    count: &LockedBytes,
) -> usize {
    match reclaim(Reclaim::All) {
        0 if lock == LockPolicy::Require => {
            let freed = reclaim(Reclaim::BestEffortLocks(len));
            count.keep_for_required(freed);
            freed
        }
        freed => freed,
    }
}

/// How many times an mlock refused for `RLIMIT_MEMLOCK` is tried again after
/// `reclaim` gave memory back (other threads may take what it freed).
const RECLAIM_ROUNDS: usize = 8;

/// Makes the closed run `data..data + len` read-write and, as `lock` asks,
/// mlocked; returns whether it is locked. An mlock refused for
/// `RLIMIT_MEMLOCK` calls `reclaim` (which gives locked memory back and says
/// how many bytes it freed itself) and tries again, as long as that frees
/// something, up to [`RECLAIM_ROUNDS`] times. A best-effort lock at the
/// limit (see [`LockedBytes::at_limit`]) is tried only if the caches gave
/// something back: the crate's locked bytes may be slots it keeps ready,
/// which a lock must get before it is given up. On error the run is left as it
/// was found (see [`OpenError`]). `fork` is the advice the run's reservation
/// carries.
///
/// # Safety
/// The run is a closed part of this crate's mappings that the caller holds
/// exclusively.
pub(crate) unsafe fn open(
    data: NonNull<u8>,
    len: usize,
    lock: LockPolicy,
    fork: ForkPolicy,
    count: &LockedBytes,
    reclaim: &dyn Fn(Reclaim) -> usize,
    file: Option<&SecretFile>,
) -> Result<bool, OpenError> {
    if let Some(file) = file {
        // SAFETY: forwarded.
        return unsafe { open_secret(data, len, fork, count, reclaim, file) };
    }
    // SAFETY: forwarded: the caller holds the closed run exclusively.
    unsafe { os::protect(data, len, Protection::ReadWrite) }.map_err(|e| OpenError {
        error: Error::os("mprotect", len, e),
        closed: true,
    })?;
    // At the limit, a best-effort lock may take the caches' ready slots,
    // but not room kept for required locks (which may be such a slot).
    if lock == LockPolicy::BestEffort
        && count.at_limit()
        && (count.kept() > 0 || reclaim(Reclaim::Caches) == 0)
    {
        return Ok(false);
    }
    // SAFETY: as above; the pages are readable now.
    let mut locked = unsafe { os::lock(data, len) };
    if matches!(&locked, Err(e) if limits::is_limit_error(e)) {
        count.refused();
    }
    for _ in 0..RECLAIM_ROUNDS {
        match &locked {
            Err(e) if limits::is_limit_error(e) && free_room(reclaim, lock, len, count) > 0 => {
                // SAFETY: as above.
                locked = unsafe { os::lock(data, len) };
            }
            _ => break,
        }
    }
    let e = match locked {
        Ok(()) => {
            count.add(len);
            return Ok(true);
        }
        Err(e) => e,
    };
    let error = limits::lock_error(len, count.get(), e);
    if lock == LockPolicy::BestEffort {
        // Keep it read-write and unlocked; a failed mlock may have locked a
        // part, so unlock all of it.
        // SAFETY: as above.
        return match unsafe { os::unlock(data, len) } {
            Ok(()) => Ok(false),
            Err(e) => Err(OpenError {
                error: Error::os("munlock", len, e),
                closed: false,
            }),
        };
    }
    // Undo: nothing locked, nothing read-write, and merged back.
    // SAFETY: as above; no value was placed there, and nothing was counted.
    let closed = unsafe { close(data, len, false, fork, count) } == Closed::Yes;
    Err(OpenError { error, closed })
}

/// [`open`] for a run of a secret mapping: maps the run's pages of `file`
/// in its place (no mlock: the kernel charges secret memory to
/// `RLIMIT_MEMLOCK` when it is mapped, refuses it with `EAGAIN` at the
/// limit, and keeps it in memory; `VmFlags` show `lo`), then advises the new
/// mapping as the reservation was. Always locked, or an error.
///
/// # Safety
/// As [`open`]'s; `file` is the file of the mapping the run is part of.
unsafe fn open_secret(
    data: NonNull<u8>,
    len: usize,
    fork: ForkPolicy,
    count: &LockedBytes,
    reclaim: &dyn Fn(Reclaim) -> usize,
    file: &SecretFile,
) -> Result<bool, OpenError> {
    let offset = data.as_ptr() as usize - file.base;
    // Maps the run and advises it, with no fork(2) in between (a child
    // would share the pages: see `ForkGate`); `Err` is mmap's error, `Ok`
    // holds the outcome of the advice (the run closed again if it failed).
    let map = || {
        let _gate = ForkGate::enter();
        // SAFETY: forwarded: the caller holds the closed run exclusively.
        unsafe { file.fd.fd.map_fixed(data, len, offset) }?;
        count.add(len);
        // SAFETY: the run now holds our secret pages (wiped) and no value.
        Ok(match unsafe { advise_fresh(data, len, fork) } {
            Ok(()) => Ok(()),
            Err(error) => {
                // SAFETY: as above; it was counted just now.
                let closed = unsafe { close(data, len, true, fork, count) } == Closed::Yes;
                Err(OpenError { error, closed })
            }
        })
    };
    let mut mapped = map();
    type Mapped = Result<Result<(), OpenError>, os::Refused>;
    let at_limit = |r: &Mapped| matches!(r, Err(e) if e.why == os::Why::Limit);
    if at_limit(&mapped) {
        count.refused();
    }
    for _ in 0..RECLAIM_ROUNDS {
        if at_limit(&mapped) && free_room(reclaim, LockPolicy::Require, len, count) > 0 {
            mapped = map();
        } else {
            break;
        }
    }
    let error = match mapped {
        Ok(advised) => return advised.map(|()| true),
        Err(r) if r.why == os::Why::Limit => limits::limit_error(len, count.get()),
        Err(r) => limits::refused(r, len),
    };
    // A failed mmap with MAP_FIXED may have unmapped the run: put the
    // reservation back.
    // SAFETY: as above; nothing was placed or counted.
    let closed = unsafe { close(data, len, false, fork, count) } == Closed::Yes;
    Err(OpenError { error, closed })
}

/// Locks an open, unlocked run (values may live in it: mlock changes no
/// byte) if `RLIMIT_MEMLOCK` leaves room, without reclaiming anything for
/// it; returns whether it is now locked and counted.
///
/// # Safety
/// The run is an open, unlocked, uncounted part of this crate's mappings
/// that stays open meanwhile (the caller holds its class's mutex).
pub(crate) unsafe fn relock(data: NonNull<u8>, len: usize, count: &LockedBytes) -> bool {
    // SAFETY: forwarded: open, so mapped read-write.
    match unsafe { os::lock(data, len) } {
        Ok(()) => {
            count.add(len);
            true
        }
        Err(e) => {
            if limits::is_limit_error(&e) {
                count.limit_seen();
            }
            // A failed mlock may have locked a part: unlock it all (an
            // error here leaves at most that part locked and uncounted).
            // SAFETY: as above.
            let _ = unsafe { os::unlock(data, len) };
            false
        }
    }
}

/// Unlocks an open, locked run of a best-effort page (values may live in
/// it: munlock changes no byte) and counts it off; whether that worked.
///
/// # Safety
/// The run is an open, locked, counted part of this crate's mappings that
/// stays open meanwhile (the caller holds its class's mutex).
pub(crate) unsafe fn unlock_open(data: NonNull<u8>, len: usize, count: &LockedBytes) -> bool {
    // SAFETY: forwarded: open, so mapped.
    let ok = unsafe { os::unlock(data, len) }.is_ok();
    if ok {
        count.sub(len);
    }
    ok
}

/// What [`close`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Closed and advised as its reservation: ready to be opened again.
    Yes,
    /// Still open, locked and counted (`ENOMEM` at `vm.max_map_count`):
    /// keep it and try again later.
    No,
    /// Closed (unlocked, discarded, counted off) but its advice could not be
    /// set again: it must never be opened again, or a secret would sit in
    /// memory without `MADV_DONTDUMP` or its fork advice.
    Unadvised,
}

/// Closes an open run that holds nothing any more: replaces it with fresh
/// `PROT_NONE` memory (which unlocks and discards it) and advises it as its
/// reservation was. See [`Closed`] for what can go wrong and what the caller
/// must do then.
///
/// # Safety
/// The run is an open part of this crate's mappings, wiped, held
/// exclusively by the caller, with no reference into it; `locked` says
/// whether it is mlocked and counted in `count`.
pub(crate) unsafe fn close(
    data: NonNull<u8>,
    len: usize,
    locked: bool,
    fork: ForkPolicy,
    count: &LockedBytes,
) -> Closed {
    // SAFETY: forwarded from the caller's contract.
    if unsafe { os::replace_none(data, len) }.is_err() {
        return Closed::No;
    }
    if locked {
        count.sub(len);
    }
    // SAFETY: the run was just replaced and holds nothing.
    match unsafe { advise_fresh(data, len, fork) } {
        Ok(()) => Closed::Yes,
        Err(_) => Closed::Unadvised,
    }
}

/// The fork gate's protocol, model-checked: a stretch a fork must not cut
/// (writes to a cell standing for the descriptor table and the secret
/// mappings) against a fork that reads them all (the child's copy). Loom
/// reports a data race if the two can overlap.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Arc;
    use loom::cell::UnsafeCell;

    /// One thread goes through a stretch while another forks.
    #[test]
    fn loom_fork_gate_keeps_forks_out_of_a_stretch() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let state = Arc::new(UnsafeCell::new(0u32));
            let worker = {
                let (gate, state) = (Arc::clone(&gate), Arc::clone(&state));
                loom::thread::spawn(move || {
                    gate.enter();
                    // SAFETY (model): the gate keeps the fork out.
                    state.with_mut(|p| unsafe { *p += 1 }); // a new descriptor
                    state.with_mut(|p| unsafe { *p += 1 }); // ... and its listing
                    gate.leave();
                })
            };
            gate.prepare();
            // fork(2): the child's copy of the state.
            // SAFETY (model): no stretch is in progress.
            let copy = state.with(|p| unsafe { *p });
            assert!(copy % 2 == 0, "a fork cut a stretch in two");
            gate.parent();
            worker.join().unwrap();
        });
    }
}
