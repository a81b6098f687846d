//! The atomics and mutexes the concurrent state machines use: `std`'s, or
//! loom's under `cfg(loom)`, so that the sealed box's gate and the threads'
//! caches can be model-checked as well as stressed.
//!
//! Process-wide statics keep `std` types (loom's cannot be made in a
//! `const`); only the pieces that a loom model drives go through here.
#![forbid(unsafe_code)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

/// Locks a mutex, ignoring poison: every critical section in the crate
/// leaves its data consistent before anything in it can panic.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One step of a wait for another thread: spin a little, then yield.
#[inline]
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    if *spins < 100 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
