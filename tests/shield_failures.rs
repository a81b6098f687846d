//! The shield (feature `shield`) when things fail part-way: a panic while a
//! slot is locked (a refused mprotect of the prekey, through a seccomp
//! filter on one thread) leaves the slot unlocked and readable; `rekey` at
//! a 64 KiB lock limit is not stopped by a large secret's class or by a
//! best-effort secret; a changed header byte is `Error::Tampered`, and a
//! changed class stops the process when the box is dropped.
// Linux only: seccomp filters, capabilities.
#![cfg(all(target_os = "linux", feature = "shield"))]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::child;
use lockedmem::{Backing, Error, LockPolicy, Options, ShieldedBox};

/// The address of a box's slot (its first word, as the module docs lay a
/// slot out: state word, info word, nonce, ciphertext, tag).
fn slot_of<T: ?Sized + lockedmem::Plain>(b: &ShieldedBox<T>) -> *mut u8 {
    // SAFETY: reads the box's first word, its slot's address.
    unsafe { std::ptr::from_ref(b).cast::<usize>().read() as *mut u8 }
}

/// The slot's state word (bit 0: locked).
fn state_at(slot: *mut u8) -> u32 {
    // SAFETY: the first word of a live slot in a chunk that is never
    // unmapped; read atomically.
    unsafe { std::sync::atomic::AtomicU32::from_ptr(slot.cast::<u32>()) }
        .load(std::sync::atomic::Ordering::Acquire)
}

/// Runs `f` on a thread of its own whose mprotect(PROT_READ) calls fail
/// (the prekey cannot be made readable: deriving the key panics); returns
/// whether `f` panicked.
fn with_prekey_unreadable(f: impl FnOnce() + Send) -> bool {
    std::thread::scope(|s| {
        s.spawn(|| {
            common::seccomp::fail_mprotect(Some(libc::PROT_READ), libc::ENOMEM);
            catch_unwind(AssertUnwindSafe(f)).is_err()
        })
        .join()
        .unwrap()
    })
}

/// Fails (without hanging: the box is leaked first) if the slot's lock bit
/// is set.
#[track_caller]
fn assert_unlocked<T: ?Sized + lockedmem::Plain>(b: ShieldedBox<T>, what: &str) -> ShieldedBox<T> {
    let s = state_at(slot_of(&b));
    if s & 1 != 0 {
        // Dropping it would wait for the lock forever.
        std::mem::forget(b);
        panic!("{what}: the slot is left locked (state {s:#x})");
    }
    b
}

#[test]
fn a_panic_while_a_slot_is_locked_releases_it() {
    let out = child::run("a_panic_while_a_slot_is_locked_releases_it", || {
        // The key is derived for each use: every borrow reads the prekey.
        let opts = Options::new().backing(Backing::Anonymous);
        let b = opts.shielded_with::<[u8; 32]>(|k| k.fill(6)).unwrap();

        // A borrow that panics while decrypting.
        assert!(
            with_prekey_unreadable(|| drop(b.borrow())),
            "the borrow panicked"
        );
        let mut b = assert_unlocked(b, "after a borrow's panic");
        assert_eq!(b.borrow().unwrap()[0], 6);

        // A write-back that panics while encrypting: the old value stays.
        let mut g = b.borrow_mut().unwrap();
        g[0] = 7;
        let g = AssertUnwindSafe(g);
        assert!(
            with_prekey_unreadable(move || drop(g)),
            "the write-back panicked"
        );
        let mut b = assert_unlocked(b, "after a write-back's panic");
        assert_eq!(b.borrow().unwrap()[0], 6, "the old ciphertext is intact");

        // A new secret that panics while encrypting: its slot (the next of
        // a class of its own) is not left locked, and rekey goes past it.
        let first = opts.shielded_with::<[u8; 41]>(|k| k.fill(1)).unwrap();
        let next = slot_of(&first).wrapping_add(96); // 8 + 24 + 41 + 16, to 8
        assert!(
            with_prekey_unreadable(|| drop(opts.shielded_with::<[u8; 41]>(|k| k.fill(2)))),
            "making the secret panicked"
        );
        assert_eq!(
            state_at(next) & 1,
            0,
            "the new secret's slot is left locked"
        );
        lockedmem::rekey().unwrap();
        assert_eq!(b.borrow().unwrap()[0], 6);
        assert_eq!(first.borrow().unwrap()[0], 1);
        let again = opts.shielded_with::<[u8; 41]>(|k| k.fill(3)).unwrap();
        assert_eq!(again.borrow().unwrap()[40], 3);
        b.borrow_mut().unwrap()[1] = 8;
        assert_eq!(b.borrow().unwrap()[..2], [6, 8]);
    });
    child::assert_success(&out);
}

#[test]
fn rekey_at_a_64_kib_limit_with_a_large_best_effort_secret() {
    let out = child::run(
        "rekey_at_a_64_kib_limit_with_a_large_best_effort_secret",
        || {
            common::become_unprivileged(64 * 1024);
            let small = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(1)).unwrap();
            lockedmem::rekey().unwrap();
            // Its borrows may go unlocked: 128 KiB cannot be locked here.
            let big = Options::new()
                .backing(Backing::PreferSecretMem)
                .lock(LockPolicy::BestEffort)
                .shielded_with::<[u8; 128 * 1024]>(|k| k.fill(2))
                .unwrap();
            assert!(big.borrow().unwrap().iter().all(|&b| b == 2));
            // Re-encrypted as it is borrowed (a locked buffer is refused).
            lockedmem::rekey().unwrap();
            assert!(big.borrow().unwrap().iter().all(|&b| b == 2));
            assert_eq!(small.borrow().unwrap()[0], 1);
            // Its class stays when it is gone; rekey needs no buffer for it.
            drop(big);
            lockedmem::rekey().unwrap();
            assert_eq!(small.borrow().unwrap()[0], 1);
        },
    );
    child::assert_success(&out);
}

/// The info word (bytes 4..8 of the slot: class, key ring, the scratch
/// memory's lock policy) is authenticated with the ciphertext: a flipped
/// bit there is `Tampered` (it lent the plaintext, into scratch memory of
/// a weaker lock policy for the top bit).
#[test]
fn a_changed_header_is_tampered() {
    for backing in [Backing::Anonymous, Backing::PreferSecretMem] {
        let a = Options::new()
            .backing(backing)
            .shielded_with::<[u8; 32]>(|k| k.fill(6))
            .unwrap();
        let slot = slot_of(&a);
        for off in 4..8 {
            for bit in 0..8 {
                let p = slot.wrapping_add(off);
                // SAFETY: a byte of the slot's info word; nothing else
                // reads or writes the slot now.
                unsafe { flip(p, bit) };
                let got = a.borrow().map(|g| g[0]);
                // SAFETY: as above: back as it was.
                unsafe { flip(p, bit) };
                assert!(
                    matches!(got, Err(Error::Tampered)),
                    "{backing:?} byte {off} bit {bit}: {got:?}"
                );
            }
        }
        assert_eq!(a.borrow().unwrap()[0], 6);
    }
}

/// In a child: a 32-byte secret between secrets of another class, its
/// header's class byte changed by `xor`, dropped. It must not return.
fn drop_with_class_changed(test: &str, xor: u8) {
    let out = child::run(test, || {
        // Two classes: 64-byte and 32-byte secrets.
        let _other = ShieldedBox::<[u8; 64]>::new_with(|k| k.fill(1)).unwrap();
        let a = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(0xa7)).unwrap();
        let _next = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(3)).unwrap();
        let p = slot_of(&a).wrapping_add(4);
        for bit in 0..8 {
            if xor & (1 << bit) != 0 {
                // SAFETY: the low byte of the slot's info word (its class);
                // nothing else reads or writes the slot now.
                unsafe { flip(p, bit) };
            }
        }
        drop(a);
    });
    child::assert_signal(&out, libc::SIGABRT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the header of the shielded secret at"),
        "{err}"
    );
}

/// A header whose class was changed to another class's number stops the
/// process when the box is dropped: wiping by that class (64 bytes more
/// per slot) would overwrite the next slot (a second reader saw the
/// neighbour `Tampered` after such a drop).
#[test]
fn a_class_changed_to_another_stops_the_process_on_drop() {
    drop_with_class_changed("a_class_changed_to_another_stops_the_process_on_drop", 1);
}

/// A class number past every class stops the process too (it indexed out
/// of bounds: a panic in `Drop`).
#[test]
fn a_class_changed_to_none_stops_the_process_on_drop() {
    drop_with_class_changed("a_class_changed_to_none_stops_the_process_on_drop", 0x80);
}

/// Flips bit `bit` of the byte at `p`.
///
/// # Safety
/// `p` is valid for reads and writes, and nothing else accesses it now.
unsafe fn flip(p: *mut u8, bit: u8) {
    // SAFETY: forwarded.
    let v = unsafe { p.read_volatile() };
    // SAFETY: forwarded.
    unsafe { p.write_volatile(v ^ (1 << bit)) };
}
