//! The atomics and mutexes the concurrent state machines use: `std`'s, or
//! loom's under `cfg(loom)`, so that they can be model-checked as well as
//! stressed: the sealed box's gate, the threads' caches, the registry's
//! entries, the packed pages' bitmaps and the slow path that shares them,
//! and the fork gate (`RUSTFLAGS="--cfg loom" cargo test --release --lib
//! loom`).
//!
//! Process-wide statics keep `std` types where they must be made in a
//! `const` (loom's cannot be); a static whose pieces a model drives (the
//! registry's entries, made on first use; the fork gate, behind a
//! `LazyLock` under loom) holds these types, and the models make instances
//! of their own rather than touch the static.
//!
//! Unsafe here is limited to [`SpinLock`]'s access to the data it guards.
#![allow(unsafe_code)]

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

/// Locks a loom mutex, ignoring poison: every critical section in the crate
/// leaves its data consistent before anything in it can panic.
#[cfg(loom)]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks a `std` mutex (the process-wide pool's, which loom never drives),
/// ignoring poison as [`lock`] does.
#[inline]
pub(crate) fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

/// A lock for data that one thread uses all the time and others rarely (a
/// thread's cache, which `trim` drains): taking it is one atomic swap and
/// releasing it one store, where a `std` mutex costs two atomic
/// read-modify-writes. Critical sections must be short: waiters spin, then
/// yield. Under loom it is a loom mutex, so that the models check its users.
#[cfg(not(loom))]
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    data: std::cell::UnsafeCell<T>,
}

// SAFETY: the data is reached only through a `SpinGuard`, and at most one
// exists at a time (the `locked` flag); so sharing the lock hands `T` from
// thread to thread, which `T: Send` allows.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Access to a [`SpinLock`]'s data; releases the lock when dropped. Shared
/// across threads only if `T: Sync` (the marker), like `&mut T`.
#[cfg(not(loom))]
pub(crate) struct SpinGuard<'a, T>(&'a SpinLock<T>, std::marker::PhantomData<&'a mut T>);

#[cfg(not(loom))]
impl<T> SpinLock<T> {
    pub(crate) fn new(data: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            data: std::cell::UnsafeCell::new(data),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let mut spins = 0;
        while self.locked.swap(true, Ordering::Acquire) {
            while self.locked.load(Ordering::Relaxed) {
                backoff(&mut spins);
            }
        }
        SpinGuard(self, std::marker::PhantomData)
    }
}

#[cfg(not(loom))]
impl<T> std::ops::Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard set `locked` and is the only one; the data is
        // not reached otherwise until it drops.
        unsafe { &*self.0.data.get() }
    }
}

#[cfg(not(loom))]
impl<T> std::ops::DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { &mut *self.0.data.get() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

#[cfg(loom)]
pub(crate) struct SpinLock<T>(Mutex<T>);

#[cfg(loom)]
impl<T> SpinLock<T> {
    pub(crate) fn new(data: T) -> Self {
        SpinLock(Mutex::new(data))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_lock_excludes() {
        let lock = std::sync::Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = std::sync::Arc::clone(&lock);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 40_000);
    }
}
