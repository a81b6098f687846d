//! Out-of-bounds writes and reads after drop kill the process: each test runs
//! the bad access in a child process and checks the signal it died of.
#![cfg(target_os = "linux")] // Linux's /proc, signals, fork or capabilities

mod common;

use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Output;

use common::{child, end_of, packed, page_size, start_of};
use lockedmem::{Isolation, LockedBox, Plain};

/// Writes one byte at `addr`, outside anything Rust considers allocated: the
/// point of these tests is what the hardware does with it.
fn poke(addr: usize) {
    let p = std::ptr::with_exposed_provenance_mut::<u8>(addr);
    // SAFETY: deliberately not: the write is expected to fault, in a child
    // process whose death is the test's result.
    unsafe { p.write_volatile(0x41) };
}

fn peek(addr: usize) -> u8 {
    let p = std::ptr::with_exposed_provenance::<u8>(addr);
    // SAFETY: deliberately not, as in `poke`.
    unsafe { p.read_volatile() }
}

#[test]
fn writing_one_byte_past_the_end_faults() {
    let out = child::run("writing_one_byte_past_the_end_faults", || {
        let b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        poke(end_of(&*b));
        println!("survived the overflow");
    });
    child::assert_signal(&out, child::GUARD_FAULT);
}

#[test]
fn writing_one_byte_past_a_multi_page_slice_faults() {
    let out = child::run("writing_one_byte_past_a_multi_page_slice_faults", || {
        let b = LockedBox::<[u8]>::new_zeroed_slice(3 * page_size() + 7).unwrap();
        poke(end_of(&*b));
    });
    child::assert_signal(&out, child::GUARD_FAULT);
}

#[test]
fn writing_one_byte_before_the_first_data_page_faults() {
    let out = child::run("writing_one_byte_before_the_first_data_page_faults", || {
        let b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        let first_data_page = end_of(&*b) - page_size();
        // The last byte of the data page before it would be fine...
        poke(first_data_page);
        // ...one byte lower is the leading guard.
        poke(first_data_page - 1);
    });
    child::assert_signal(&out, child::GUARD_FAULT);
}

#[test]
fn the_control_writes_inside_the_data_pages_do_not_fault() {
    // The same pokes as above, one byte inside: proves the faults above come
    // from the guards, not from the method.
    let out = child::run(
        "the_control_writes_inside_the_data_pages_do_not_fault",
        || {
            let b = LockedBox::<[u8]>::new_zeroed_slice(100).unwrap();
            let end = end_of(&*b);
            poke(end - page_size());
            drop(b);
            println!("control ok");
        },
    );
    child::assert_success(&out);
    assert!(child::stdout(&out).contains("control ok"));
}

#[test]
fn a_smashed_canary_aborts_on_drop_with_one_line() {
    let out = child::run("a_smashed_canary_aborts_on_drop_with_one_line", || {
        let b = LockedBox::<[u8; 32]>::new_with(|k| {
            k.copy_from_slice(b"TOPSECRETTOPSECRETTOPSECRETTOPSE")
        })
        .unwrap();
        // A one-byte underflow lands on the canary's last byte. It is
        // flipped, not overwritten with a fixed value: the canary is random,
        // and one time in 256 its last byte would already be that value.
        let canary_end = start_of(&*b) - 1;
        let p = std::ptr::with_exposed_provenance_mut::<u8>(canary_end);
        // SAFETY: the canary's last byte, inside the box's read-write data
        // page.
        let old = unsafe { p.read_volatile() };
        // SAFETY: as above, in a child whose death is the test's result.
        unsafe { p.write_volatile(!old) };
        eprintln!("about to drop");
        drop(b);
        println!("drop returned");
    });
    child::assert_signal(&out, libc::SIGABRT);
    let err = child::stderr(&out);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("lockedmem:"))
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(
        ours[0].contains("canary") && ours[0].contains("32-byte"),
        "{err}"
    );
    assert!(
        !err.contains("TOPSECRET"),
        "no secret byte in the message: {err}"
    );
    assert!(!child::stdout(&out).contains("drop returned"));
}

#[test]
fn an_untouched_canary_does_not_abort() {
    let out = child::run("an_untouched_canary_does_not_abort", || {
        for len in [0, 1, 31, 4096, 10_000] {
            drop(LockedBox::<[u8]>::new_zeroed_slice(len).unwrap());
        }
    });
    child::assert_success(&out);
}

#[test]
fn reading_after_drop_faults_without_a_cache() {
    let out = child::run("reading_after_drop_faults_without_a_cache", || {
        lockedmem::set_cache_limit(0);
        let b = LockedBox::<[u8; 32]>::new_with(|k| k.fill(7)).unwrap();
        let addr = start_of(&*b);
        assert_eq!(peek(addr), 7);
        drop(b);
        println!("read {}", peek(addr));
    });
    child::assert_signal(&out, child::GUARD_FAULT);
}

#[test]
fn a_cached_slot_reads_as_zeros_after_drop() {
    // With the cache on (the default), a dropped box's slot stays mapped,
    // locked and guarded for the next box; a dangling read finds the wipe.
    let out = child::run("a_cached_slot_reads_as_zeros_after_drop", || {
        let b = LockedBox::<[u8; 32]>::new_with(|k| k.fill(7)).unwrap();
        let (start, end) = (start_of(&*b), end_of(&*b));
        drop(b);
        assert_eq!(lockedmem::stats().cached_slots, 1);
        let first_data_page = end - page_size();
        assert!(
            (first_data_page..end).all(|a| peek(a) == 0),
            "every data byte wiped"
        );
        // The next box of its size class takes the same slot...
        let again = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        assert_eq!(start_of(&*again), start);
        // ...and its guard still faults.
        poke(end);
    });
    child::assert_signal(&out, child::GUARD_FAULT);
}

/// A value whose `Drop` panics: dropping its box must still check the
/// canaries, and report a smashed one, rather than unwind past the check.
#[repr(C)]
struct PanicsOnDrop {
    bytes: [u8; 32],
}

// SAFETY: bytes only, valid as zeros, no pointers or interior mutability.
unsafe impl Plain for PanicsOnDrop {}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop::drop panics, as the test wants");
    }
}

/// Flips the byte right before the value: the last byte of the canary that
/// sits in front of it (page-isolated), or of the front canary (a packed
/// 32-byte value fills its slot up to the back canary).
fn smash_byte_before<T: ?Sized>(value: &T) {
    let p = std::ptr::with_exposed_provenance_mut::<u8>(start_of(value) - 1);
    // SAFETY: deliberately outside the value, inside the box's own slot
    // (mapped read-write): the test is about whether dropping the box
    // notices the change.
    let old = unsafe { p.read_volatile() };
    // SAFETY: as above.
    unsafe { p.write_volatile(!old) };
}

fn smash_and_drop(b: LockedBox<PanicsOnDrop>) {
    std::hint::black_box(&b.bytes);
    smash_byte_before(&*b);
    let r = catch_unwind(AssertUnwindSafe(|| drop(b)));
    println!("drop returned (unwound: {})", r.is_err());
}

fn expect_canary_abort(out: &Output, what: &str) {
    let err = child::stderr(out);
    assert!(
        out.status.signal() == Some(libc::SIGABRT)
            && err
                .lines()
                .any(|l| l.starts_with("lockedmem:") && l.contains("canary")),
        "expected the child to abort (SIGABRT) with the lockedmem canary message on stderr when \
         a {what} box whose canary was smashed is dropped and T's Drop panics\n{}",
        child::describe(out)
    );
}

#[test]
fn a_smashed_canary_aborts_on_drop_even_when_the_values_drop_panics() {
    let out = child::run(
        "a_smashed_canary_aborts_on_drop_even_when_the_values_drop_panics",
        || {
            smash_and_drop(LockedBox::<PanicsOnDrop>::new_zeroed().expect("expected a box"));
        },
    );
    expect_canary_abort(&out, "page-isolated");
}

#[test]
fn a_smashed_packed_canary_aborts_on_drop_even_when_the_values_drop_panics() {
    let out = child::run(
        "a_smashed_packed_canary_aborts_on_drop_even_when_the_values_drop_panics",
        || {
            let b = packed()
                .zeroed::<PanicsOnDrop>()
                .expect("expected a packed box");
            assert_eq!(b.isolation(), Isolation::Packed, "expected a packed box");
            smash_and_drop(b);
        },
    );
    expect_canary_abort(&out, "packed");
}
