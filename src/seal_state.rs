//! The sealed box's concurrency without its memory: a reader count, the
//! fork generation it counts in, and the gate that serialises protection
//! changes. `SealedBox` supplies the protection changes as closures; the
//! loom model at the bottom supplies a fake page and checks the rules.
//!
//! # How concurrent borrows stay race-free
//!
//! `readers` counts live guards. Two rules hold at every instant:
//!
//! - **(S1)** `readers > 0` implies the pages are at least readable.
//! - **(S2)** Every change of protection, and every change of `readers` to or
//!   from zero, happens with `gate` held.
//!
//! A borrow that finds `readers > 0` increments it with a compare-and-swap
//! from that nonzero value, without a system call: by (S1) the pages are
//! readable, and they stay so, because only the guard that moves the count
//! from 1 to 0 may seal them, and that move fails if the count changed. A
//! borrow that finds zero takes `gate`, makes the pages readable *then*
//! publishes `readers = 1`. The last guard out takes `gate`, moves the count
//! from 1 to 0 *then* makes the pages `PROT_NONE`; a borrower arriving in
//! between sees zero and waits for `gate`. So no guard ever points at
//! `PROT_NONE` pages, and once the last guard's drop returns the pages are
//! sealed again. The count is capped at `isize::MAX` (the process aborts
//! beyond it, as `Arc` does), so it cannot wrap to zero under a live guard.
//!
//! # fork(2)
//!
//! `gate` is not a `std` mutex but a word holding the fork *generation*
//! (`fork::generation`) of its holder: a fork child that finds it held by its
//! parent's generation (a thread that does not exist in the child) takes it
//! over instead of waiting forever. `readers` counts the guards of one
//! generation, `epoch`; the first slow-path borrow in a fork child *adopts*
//! the state for the child's generation. If guards were out at the fork,
//! copies of them may live on in the child (on the forking thread's stack),
//! so the pages stay as they were, readable, for the child's life
//! (`frozen`). Guards remember the generation they were counted in, and a
//! guard dropped in another generation changes nothing. An exclusive borrow
//! (which proves no guard is alive) returns a frozen state to normal.
#![forbid(unsafe_code)]

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, backoff};

/// Most guards out at once; beyond it the process aborts.
const MAX_READERS: usize = isize::MAX as usize;

/// See the module docs.
pub(crate) struct SealState {
    /// Live guards of generation `epoch` (S1, S2).
    readers: AtomicUsize,
    /// The fork generation whose guards `readers` counts.
    epoch: AtomicU64,
    /// In this `epoch`, leave the protection alone and count nothing.
    frozen: AtomicBool,
    /// Serialises protection changes and moves of `readers` to or from zero.
    gate: Gate,
}

/// A lock word: 0 when free, else the fork generation of its holder. A
/// holder of another generation is a thread of a parent process, which does
/// not exist here: the lock is taken over.
struct Gate(AtomicU64);

/// Holds a [`Gate`]; frees it when dropped.
struct GateGuard<'a>(&'a Gate);

impl Gate {
    #[inline(always)]
    fn lock(&self, generation: u64) -> GateGuard<'_> {
        let mut spins = 0u32;
        loop {
            let held = self.0.load(Ordering::Relaxed);
            if held != generation
                && self
                    .0
                    .compare_exchange_weak(held, generation, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return GateGuard(self);
            }
            // Held by this generation: wait. The holder only makes one
            // mprotect call before it lets go.
            backoff(&mut spins);
        }
    }
}

impl Drop for GateGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.0.store(0, Ordering::Release);
    }
}

impl SealState {
    /// A sealed state of `generation`, no guard out.
    pub(crate) fn new(generation: u64) -> Self {
        SealState {
            readers: AtomicUsize::new(0),
            epoch: AtomicU64::new(generation),
            frozen: AtomicBool::new(false),
            gate: Gate(AtomicU64::new(0)),
        }
    }

    /// Counts a new guard in `generation`; the first one calls `open`
    /// (which makes the pages readable, or panics) under the gate. Returns
    /// the generation the guard was counted in, or 0 if it was not counted
    /// (a frozen state in a fork child, whose pages stay readable).
    #[inline(always)]
    pub(crate) fn acquire(&self, generation: u64, open: impl FnOnce()) -> u64 {
        if self.epoch.load(Ordering::Acquire) == generation {
            let mut n = self.readers.load(Ordering::Acquire);
            while n > 0 {
                check_readers(n);
                // (S1): the pages are readable while the count is nonzero,
                // and only the move from 1 to 0 may seal them, which this CAS
                // races.
                match self.readers.compare_exchange_weak(
                    n,
                    n + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return generation,
                    Err(now) => n = now,
                }
            }
        }
        let _gate = self.gate.lock(generation);
        self.adopt(generation);
        if self.frozen.load(Ordering::Relaxed) {
            return 0; // the pages stay as the fork left them: readable
        }
        let n = self.readers.load(Ordering::Acquire);
        if n == 0 {
            // No guard of this generation is alive (the count is zero and
            // may only leave zero under `gate`, which we hold), none of
            // another (not frozen).
            open();
        }
        check_readers(n);
        // Under `gate`, nobody else moves the count to or from zero; other
        // borrowers may still increment a nonzero count, hence fetch_add.
        self.readers.fetch_add(1, Ordering::AcqRel);
        generation
    }

    /// On the first slow-path use in a new fork generation, with `gate`
    /// held: start counting afresh, frozen if guards were out at the fork.
    #[inline(always)]
    fn adopt(&self, generation: u64) {
        if self.epoch.load(Ordering::Acquire) == generation {
            return;
        }
        let inherited_guards = self.readers.load(Ordering::Acquire) != 0;
        self.frozen.store(inherited_guards, Ordering::Relaxed);
        self.readers.store(0, Ordering::Relaxed);
        self.epoch.store(generation, Ordering::Release);
    }

    /// Ends a guard counted in `counted` (as `acquire` returned it), in
    /// `generation`; the last one out calls `seal` under the gate, with no
    /// guard alive. A guard counted in another generation, or not at all,
    /// changes nothing.
    #[inline(always)]
    pub(crate) fn release(&self, counted: u64, generation: u64, seal: impl FnOnce()) {
        if counted != generation {
            return;
        }
        let mut n = self.readers.load(Ordering::Acquire);
        while n > 1 {
            match self
                .readers
                .compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
        let _gate = self.gate.lock(generation);
        // Under `gate` the count cannot leave or reach zero behind our back,
        // but fast-path borrowers may still move it between nonzero values.
        let mut n = self.readers.load(Ordering::Acquire);
        loop {
            debug_assert!(n > 0, "a guard is alive");
            let last = n == 1;
            match self
                .readers
                .compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if last => break,
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
        // The count is zero: no guard is alive and none can appear before
        // we release `gate` (a borrower that sees zero waits for it).
        seal();
    }

    /// With exclusive access (no guard alive, of any generation: a nonzero
    /// count can only be left by guards passed to `mem::forget` or copied
    /// by a fork, whose borrows have ended): start afresh in `generation`,
    /// unfrozen.
    pub(crate) fn reset(&mut self, generation: u64) {
        #[cfg(not(loom))]
        {
            *self.readers.get_mut() = 0;
            *self.frozen.get_mut() = false;
            *self.epoch.get_mut() = generation;
        }
        #[cfg(loom)]
        {
            self.readers.store(0, Ordering::Relaxed);
            self.frozen.store(false, Ordering::Relaxed);
            self.epoch.store(generation, Ordering::Relaxed);
        }
    }

    /// Guards counted now (for `Debug`).
    pub(crate) fn readers(&self) -> usize {
        self.readers.load(Ordering::Relaxed)
    }
}

/// Aborts when the count of guards would pass [`MAX_READERS`]: wrapping to
/// zero would let the pages be sealed under live guards.
#[inline(always)]
fn check_readers(n: usize) {
    if n >= MAX_READERS {
        std::process::abort();
    }
}

/// The gate model-checked with loom: a fake page whose protection is an
/// atomic, borrowers on several threads (one nesting a second borrow), the
/// last release, and an exclusive borrow afterwards. (S1) is asserted at
/// every read, and the page must end sealed.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, AtomicU8};

    const NONE: u8 = 0;
    const READ: u8 = 1;
    const RW: u8 = 2;

    struct Fake {
        state: SealState,
        prot: AtomicU8,
    }

    impl Fake {
        fn borrow(&self) -> u64 {
            let counted = self.state.acquire(7, || {
                assert_eq!(self.prot.load(Ordering::Relaxed), NONE, "opened twice");
                self.prot.store(READ, Ordering::Relaxed);
            });
            assert_eq!(counted, 7);
            counted
        }

        fn read(&self) {
            assert_ne!(
                self.prot.load(Ordering::Relaxed),
                NONE,
                "(S1) a guard on sealed pages"
            );
        }

        fn release(&self, counted: u64) {
            self.state.release(counted, 7, || {
                assert_eq!(self.prot.load(Ordering::Relaxed), READ);
                self.prot.store(NONE, Ordering::Relaxed);
            });
        }
    }

    /// loom explores every interleaving up to this many preemptions; the
    /// gate's races need two (a borrower between the last release's count
    /// move and its seal, and a second borrower on the fast path).
    const PREEMPTIONS: usize = 3;

    #[test]
    fn loom_sealed_gate() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(PREEMPTIONS);
        model.check(|| {
            let fake = Arc::new(Fake {
                state: SealState::new(7),
                prot: AtomicU8::new(NONE),
            });
            let nested = {
                let f = Arc::clone(&fake);
                loom::thread::spawn(move || {
                    let outer = f.borrow();
                    f.read();
                    let inner = f.borrow();
                    f.read();
                    f.release(outer);
                    f.read();
                    f.release(inner);
                })
            };
            let single = {
                let f = Arc::clone(&fake);
                loom::thread::spawn(move || {
                    let g = f.borrow();
                    f.read();
                    f.release(g);
                })
            };
            nested.join().unwrap();
            single.join().unwrap();
            let mut fake = Arc::try_unwrap(fake).ok().expect("the only owner");
            assert_eq!(fake.prot.load(Ordering::Relaxed), NONE, "sealed again");
            assert_eq!(fake.state.readers(), 0);
            // An exclusive borrow (the `&mut` proves no guard is out), then
            // a borrow after it.
            fake.state.reset(7);
            fake.prot.store(RW, Ordering::Relaxed);
            fake.prot.store(NONE, Ordering::Relaxed);
            let g = fake.borrow();
            fake.read();
            fake.release(g);
            assert_eq!(fake.prot.load(Ordering::Relaxed), NONE);
        });
    }

    #[test]
    fn loom_fork_child_takes_over_a_held_gate() {
        loom::model(|| {
            let state = SealState::new(7);
            // A parent thread held the gate and had a guard out at the fork.
            state.readers.store(1, Ordering::Relaxed);
            state.gate.0.store(7, Ordering::Relaxed);
            // In the child (generation 9): the gate is taken over, the state
            // frozen, the pages left alone.
            let counted = state.acquire(9, || panic!("a frozen state must not reprotect"));
            assert_eq!(counted, 0, "not counted: frozen");
            state.release(counted, 9, || panic!("nothing to seal"));
            // The parent's guard, dropped in the child, changes nothing.
            state.release(7, 9, || panic!("another generation's guard"));
        });
    }
}
