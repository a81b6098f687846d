//! fork(2) and the crate's memory: the atfork handlers, the gate that keeps
//! a fork out of a stretch it must not cut in two ([`ForkGate`]), and what a
//! fork child does first: close every secret descriptor listed here, and
//! hold each range of the registry excluded from it.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr};

use crate::alloc::registry;
use crate::os;
use crate::sync::{AtomicUsize, Ordering, fence};

/// One entry of the list of open secret descriptors: `-1` when free.
/// Entries are leaked and reused, so the list can be walked in a fork child
/// without a lock and without allocating.
#[derive(Debug)]
pub(super) struct Listed {
    fd: AtomicI32,
    next: *const Listed,
}

// SAFETY: `next` is written once, before the entry is published, and points
// at a leaked entry; `fd` is atomic.
unsafe impl Sync for Listed {}

static LISTED: AtomicPtr<Listed> = AtomicPtr::new(std::ptr::null_mut());

/// Lists the descriptor `raw`, in a free entry or a new one, so that a fork
/// child closes it; the caller holds the [`ForkGate`].
pub(super) fn list_fd(raw: i32) -> &'static Listed {
    let mut entry = LISTED.load(Ordering::Acquire).cast_const();
    // SAFETY: every entry is leaked, so `&*entry` lives forever.
    while let Some(e) = unsafe { entry.as_ref() } {
        if e.fd
            .compare_exchange(-1, raw, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return e;
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
    fresh
}

impl Listed {
    /// Frees the entry: a fork child no longer closes the descriptor. The
    /// caller holds the [`ForkGate`] and closes the descriptor next.
    pub(super) fn unlist(&self) {
        self.fd.store(-1, Ordering::Release);
    }
}

/// Threads in a stretch of code that a fork(2) must not cut in two: from a
/// new secret descriptor to its listing, from a run's new secret mapping to
/// its `MADV_DONTFORK`, from an unlisting to the close. A fork child made
/// inside one would hold a descriptor of the parent's secret file, or a
/// shared mapping of its pages, and read what the parent writes there
/// later. Entered only around system calls and allocations, never while
/// waiting for a lock (a forking thread waits for the stretch to end).
pub(super) struct ForkGate;

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
pub(super) fn watch_forks() {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| os::on_fork(fork_prepare, fork_parent, fork_child));
}

impl ForkGate {
    /// Waits for forks in progress, then enters; the handlers that make
    /// forks wait are registered first.
    pub(super) fn enter() -> Self {
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
