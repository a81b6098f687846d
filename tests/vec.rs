//! `LockedVec` and `LockedString`: the API, and where a secret is after it
//! went in: a scan of the whole process's memory (through /proc/self/mem, in
//! a child process so the test harness's buffers stay out of it) finds it
//! only in the live container's locked pages, once, and nowhere once the
//! container is gone or an error wiped it.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

use common::{child, memscan, procfs};
use lockedmem::{Error, LockedString, LockedVec};

/// The secret's bytes: a xorshift stream, so the tests never hold the
/// secret in ordinary memory (each byte is made when it is written).
fn secret_byte(seed: u64, i: usize) -> u8 {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Printable, so the same stream serves as UTF-8 text.
    b'!' + (x % 90) as u8
}

fn needle(seed: u64, from: usize) -> memscan::Masked {
    memscan::Masked::from_fn(32, |i| secret_byte(seed, from + i))
}

/// A pipe whose write end is fed one byte at a time by a thread, so no run
/// of the secret sits in the writer's memory; returns the read end.
fn pipe_fed_with(seed: u64, len: usize, then: &'static [u8]) -> std::fs::File {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the read end was just made and is owned here only.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, the write end.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    let mut w = std::fs::File::from(w);
    std::thread::spawn(move || {
        for i in 0..len {
            w.write_all(&[secret_byte(seed, i)]).unwrap();
        }
        w.write_all(then).unwrap();
    });
    std::fs::File::from(r)
}

fn expect_ok(out: &std::process::Output) {
    child::assert_success(out);
}

#[test]
fn pushes_extends_truncates_and_reports() {
    let mut v = LockedVec::<u32>::new();
    assert_eq!((v.len(), v.capacity()), (0, 0), "new() allocates nothing");
    for i in 0..1000 {
        v.try_push(i).unwrap();
    }
    assert_eq!(v.len(), 1000);
    assert!(v.capacity() >= 1000);
    assert!(v.is_locked());
    assert_eq!(v[999], 999);
    v.try_extend_from_slice(&[7, 8, 9]).unwrap();
    assert_eq!(&v[1000..], &[7, 8, 9]);
    v.truncate(2);
    assert_eq!(&v[..], &[0, 1]);
    let cap = v.capacity();
    v.clear();
    assert!(v.is_empty());
    assert_eq!(v.capacity(), cap, "clear keeps the memory");
    v.try_reserve(100_000).unwrap();
    assert!(v.capacity() >= 100_000);
    let w = LockedVec::<u8>::with_capacity(10).unwrap();
    assert!(w.capacity() >= 10);
    let debug = format!("{v:?}");
    assert!(
        debug.contains("len: 0") && debug.contains("capacity"),
        "{debug}"
    );
}

#[test]
fn debug_shows_no_byte() {
    let mut v = LockedVec::<u8>::new();
    v.try_extend_from_slice(b"ZQXJZQXJ").unwrap();
    let s = LockedString::read_line(&b"ZQXJZQXJ\n"[..], 64).unwrap();
    for d in [format!("{v:?}"), format!("{s:?}"), format!("{v:#?}")] {
        assert!(!d.contains("ZQXJ") && !d.contains("90, 81"), "{d}");
    }
}

#[test]
fn write_and_io_copy_fill_locked_memory() {
    let mut v = LockedVec::<u8>::new();
    let mut src = &b"through io::copy"[..];
    std::io::copy(&mut src, &mut v).unwrap();
    v.write_all(b", then write_all").unwrap();
    assert_eq!(&v[..], b"through io::copy, then write_all");
}

#[test]
fn strings_hold_text_and_refuse_bad_input() {
    let mut s = LockedString::new();
    s.try_push_str("pass").unwrap();
    s.try_push('é').unwrap();
    s.try_push('🔑').unwrap();
    assert_eq!(&*s, "passé🔑");
    assert_eq!(s.len(), "passé🔑".len());
    let line = LockedString::read_line(&b"windows\r\nrest"[..], 64).unwrap();
    assert_eq!(&*line, "windows");
    let last = LockedString::read_line(&b"no newline"[..], 64).unwrap();
    assert_eq!(&*last, "no newline");
    assert!(matches!(
        LockedString::read_line(&b""[..], 64),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        LockedString::read_line(&b"\xff\xfe\n"[..], 64),
        Err(Error::InvalidUtf8)
    ));
    assert!(matches!(
        LockedString::read_line(&b"0123456789\n"[..], 5),
        Err(Error::InputTooLong { max_len: 5 })
    ));
    let msg = Error::InvalidUtf8.to_string();
    assert!(!msg.contains("ff"), "{msg}");
}

#[test]
fn read_from_stops_at_the_limit() {
    let v = LockedVec::read_from(&[1u8; 100][..], 100).unwrap();
    assert_eq!(v.len(), 100);
    assert!(matches!(
        LockedVec::read_from(&[1u8; 101][..], 100),
        Err(Error::InputTooLong { max_len: 100 })
    ));
}

#[test]
fn growth_by_pushes_leaves_one_copy() {
    let out = child::run("growth_by_pushes_leaves_one_copy", || {
        let seed = 0x1234_5678;
        let mut v = LockedVec::<u8>::new();
        for i in 0..20_000 {
            v.try_push(secret_byte(seed, i)).unwrap();
        }
        assert!(v.capacity() >= 20_000);
        // The first bytes were copied by every growth; the last ones never.
        for from in [0, 10_000, 19_000] {
            let n = memscan::count(&needle(seed, from));
            assert_eq!(n, 1, "bytes {from}.. found {n} times, expected once");
        }
        let start = v.as_ptr() as usize;
        let vma = procfs::vma_at(start).expect("mapped");
        assert!(vma.has("lo"), "{:?}", vma.flags);
        common::assert_default_advice(&vma);
        v.truncate(5_000);
        assert_eq!(
            memscan::count(&needle(seed, 10_000)),
            0,
            "truncate wipes at once"
        );
        assert_eq!(memscan::count(&needle(seed, 0)), 1, "the kept part stays");
        drop(v);
        assert_eq!(memscan::count(&needle(seed, 0)), 0, "wiped on drop");
        // Control: a copy in ordinary memory is found, so the scan works.
        let plain: Vec<u8> = (0..64).map(|i| secret_byte(seed, i)).collect();
        assert_eq!(memscan::count(&needle(seed, 0)), 1, "the control copy");
        drop(std::hint::black_box(plain));
    });
    expect_ok(&out);
}

#[test]
fn read_from_a_pipe_leaves_one_copy() {
    let out = child::run("read_from_a_pipe_leaves_one_copy", || {
        let seed = 0xabcd;
        let pipe = pipe_fed_with(seed, 50_000, b"");
        let v = LockedVec::read_from(pipe, 1 << 20).unwrap();
        assert_eq!(v.len(), 50_000);
        assert!(v.is_locked());
        for from in [0, 25_000, 49_000] {
            assert_eq!(memscan::count(&needle(seed, from)), 1, "bytes {from}..");
        }
    });
    expect_ok(&out);
}

#[test]
fn read_from_too_long_wipes_what_it_read() {
    let out = child::run("read_from_too_long_wipes_what_it_read", || {
        let seed = 0xbeef;
        let pipe = pipe_fed_with(seed, 5_000, b"");
        let e = LockedVec::read_from(pipe, 4_000).unwrap_err();
        assert!(matches!(e, Error::InputTooLong { max_len: 4_000 }), "{e}");
        assert_eq!(memscan::count(&needle(seed, 0)), 0, "wiped");
        assert_eq!(memscan::count(&needle(seed, 3_000)), 0, "wiped");
    });
    expect_ok(&out);
}

#[test]
fn read_line_from_a_pipe_leaves_one_copy_and_the_rest_unread() {
    let out = child::run(
        "read_line_from_a_pipe_leaves_one_copy_and_the_rest_unread",
        || {
            let seed = 0xfeed;
            let mut pipe = pipe_fed_with(seed, 3_000, b"\nthe rest");
            let line = LockedString::read_line(&mut pipe, 4_096).unwrap();
            assert_eq!(line.len(), 3_000);
            assert_eq!(memscan::count(&needle(seed, 0)), 1);
            assert_eq!(memscan::count(&needle(seed, 2_900)), 1);
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut pipe, &mut rest).unwrap();
            assert_eq!(rest, "the rest", "no byte past the terminator was read");
        },
    );
    expect_ok(&out);
}

#[test]
fn read_line_invalid_utf8_wipes_what_it_read() {
    let out = child::run("read_line_invalid_utf8_wipes_what_it_read", || {
        let seed = 0xcafe;
        let pipe = pipe_fed_with(seed, 2_000, b"\xff\n");
        assert!(matches!(
            LockedString::read_line(pipe, 4_096),
            Err(Error::InvalidUtf8)
        ));
        assert_eq!(memscan::count(&needle(seed, 0)), 0, "wiped");
    });
    expect_ok(&out);
}

/// Hex of the secret stream, made digit by digit (the raw bytes are never
/// in ordinary memory).
fn hex_of(seed: u64, len: usize) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .flat_map(|i| {
            let b = secret_byte(seed, i);
            [
                D[usize::from(b >> 4)] as char,
                D[usize::from(b & 15)] as char,
            ]
        })
        .collect()
}

/// Standard padded base64 of the secret stream, three bytes at a time.
fn base64_of(seed: u64, len: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for g in (0..len).step_by(3) {
        let n = (len - g).min(3);
        let b = |k: usize| {
            if k < n {
                u32::from(secret_byte(seed, g + k))
            } else {
                0
            }
        };
        let w = b(0) << 16 | b(1) << 8 | b(2);
        for k in 0..4 {
            if k <= n {
                out.push(A[((w >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn decoding_hex_and_base64_leaves_one_copy() {
    let out = child::run("decoding_hex_and_base64_leaves_one_copy", || {
        let (s1, s2, s3) = (0x111, 0x222, 0x333);
        let hex = hex_of(s1, 64);
        let boxed = lockedmem::LockedBox::<[u8; 64]>::from_hex(&hex).unwrap();
        let vec = LockedVec::from_hex(&hex_of(s2, 1000)).unwrap();
        let b64 = LockedVec::from_base64(&base64_of(s3, 1000)).unwrap();
        assert_eq!(vec.len(), 1000);
        assert_eq!(b64.len(), 1000);
        assert_eq!(b64[999], secret_byte(s3, 999));
        for (seed, from) in [(s1, 0), (s1, 32), (s2, 0), (s2, 900), (s3, 0), (s3, 960)] {
            assert_eq!(
                memscan::count(&needle(seed, from)),
                1,
                "seed {seed:#x} at {from}"
            );
        }
        drop((boxed, vec, b64));
        assert_eq!(memscan::count(&needle(s2, 0)), 0, "wiped");
        // A bad digit anywhere: an error, and nothing of it left behind.
        let mut bad = hex_of(s1, 64);
        bad.replace_range(100..101, "g");
        assert!(lockedmem::LockedBox::<[u8; 64]>::from_hex(&bad).is_err());
        assert_eq!(memscan::count(&needle(s1, 0)), 0, "wiped after the error");
    });
    expect_ok(&out);
}

#[test]
fn options_decide_every_growth_and_seal_moves_to_a_sealed_box() {
    use lockedmem::{Isolation, Options};
    // A fork policy other than the default (`Exclude` on Linux, `Keep` in
    // the portable test mode), so that its marks tell the options apart.
    let fork = common::other_fork();
    let mut v = Options::new()
        .isolation(Isolation::Packed)
        .fork(fork)
        .vec::<u8>(16)
        .unwrap();
    v.try_extend_from_slice(&[9; 16]).unwrap();
    let small = procfs::vma_at(v.as_ptr() as usize).unwrap();
    assert!(small.has("lo"), "{:?}", small.flags);
    common::assert_advised(&small, fork);
    for _ in 0..10_000 {
        v.try_push(7).unwrap(); // grows past the packed sizes
    }
    let big = procfs::vma_at(v.as_ptr() as usize).unwrap();
    assert!(big.has("lo"), "{:?}", big.flags);
    // Every growth keeps the options.
    common::assert_advised(&big, fork);
    let sealed = v.seal().unwrap();
    assert_eq!(sealed.borrow().len(), 10_016);
    let at = sealed.borrow().as_ptr() as usize;
    assert_eq!(
        procfs::perms_at(at).as_deref(),
        Some("---p"),
        "sealed at rest"
    );
    assert_eq!(sealed.borrow()[10_015], 7);
    let empty = LockedVec::<u64>::new().seal().unwrap();
    assert!(empty.borrow().is_empty());
}

#[test]
fn try_new_with_takes_the_callers_error_type_and_wipes_on_error() {
    use lockedmem::{InitError, LockedBox, Options};
    #[derive(Debug, PartialEq)]
    struct BadKeyFile(u32);
    let out = child::run(
        "try_new_with_takes_the_callers_error_type_and_wipes_on_error",
        || {
            let seed = 0x5eed;
            let r = LockedBox::<[u8; 64]>::try_new_with(|k| {
                for (i, b) in k.iter_mut().enumerate() {
                    *b = secret_byte(seed, i);
                }
                Err(BadKeyFile(7))
            });
            assert!(matches!(r, Err(InitError::Init(BadKeyFile(7)))));
            assert_eq!(
                memscan::count(&needle(seed, 0)),
                0,
                "half-written box wiped"
            );
            let ok = Options::new()
                .try_new_with::<[u8; 8], BadKeyFile>(|k| {
                    k.fill(3);
                    Ok(())
                })
                .unwrap();
            assert_eq!(*ok, [3; 8]);
            // `?` into io::Error and lockedmem::Error.
            fn io() -> std::io::Result<LockedBox<[u8; 4]>> {
                let mut src: &[u8] = b"abcd";
                let key = LockedBox::<[u8; 4]>::try_new_with(|k| {
                    std::io::Read::read_exact(&mut src, &mut k[..])
                })?;
                Ok(key)
            }
            assert_eq!(*io().unwrap(), *b"abcd");
            let copy = Options::new().from_slice(&[1u16, 2, 3]).unwrap();
            assert_eq!(&copy[..], [1, 2, 3]);
        },
    );
    expect_ok(&out);
}

/// Found by the `vec` fuzz target: a `\r\n` line of exactly `max_len`
/// bytes was refused, and `read_from` with no limit (`usize::MAX`)
/// overflowed.
#[test]
fn limits_at_their_edges() {
    assert_eq!(&*LockedString::read_line(&b"ab\r\n"[..], 2).unwrap(), "ab");
    assert_eq!(&*LockedString::read_line(&b"ab\n"[..], 2).unwrap(), "ab");
    assert!(matches!(
        LockedString::read_line(&b"ab\rc\n"[..], 2),
        Err(Error::InputTooLong { max_len: 2 })
    ));
    assert!(matches!(
        LockedString::read_line(&b"ab\r"[..], 2),
        Err(Error::InputTooLong { max_len: 2 })
    ));
    let v = LockedVec::read_from(&b"secret"[..], usize::MAX).unwrap();
    assert_eq!(&v[..], b"secret");
}

/// Found by a second reader: a panicking `Drop` of an element skipped the
/// wipe of the elements `truncate` removed.
#[test]
fn truncate_wipes_even_when_drop_panics() {
    #[repr(C)]
    struct Noisy([u8; 16]);
    // SAFETY: bytes only; zeros are a valid value.
    unsafe impl lockedmem::Plain for Noisy {}
    impl Drop for Noisy {
        fn drop(&mut self) {
            if self.0[0] == 0xee {
                panic!("drop panics");
            }
        }
    }
    let mut v = LockedVec::<Noisy>::new();
    v.try_push(Noisy([0x11; 16])).unwrap();
    v.try_push(Noisy([0xee; 16])).unwrap();
    let at = v.as_ptr().expose_provenance();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.truncate(0)));
    assert!(r.is_err(), "the element's drop panicked");
    assert_eq!(v.len(), 0);
    // The removed elements' bytes, still in the vector's memory.
    let bytes: Vec<u8> = (0..32)
        .map(|i| {
            let p = std::ptr::with_exposed_provenance::<u8>(at + i);
            // SAFETY: the vector's spare capacity: mapped, read-write, and
            // nothing writes it meanwhile.
            unsafe { p.read_volatile() }
        })
        .collect();
    assert_eq!(bytes, [0; 32], "wiped");
}

/// A vector's memory starts a cache line into its pages and its capacity
/// ends flush against the guard page.
#[test]
fn capacity_starts_on_a_cache_line_and_ends_at_the_guard() {
    let v = LockedVec::<u8>::with_capacity(10_000).unwrap();
    let start = v.as_ptr() as usize;
    let end = start + v.capacity();
    assert_eq!(start % 64, 0, "starts on a cache line");
    assert_eq!(end % common::page_size(), 0, "ends at a page boundary");
    assert_eq!(procfs::perms_at(end).as_deref(), Some("---p"), "guard");
    assert_eq!(procfs::perms_at(end - 1).as_deref(), Some("rw-p"));
}

/// Input that has passed 64 KiB moves into the memory a larger input left
/// ready (a cached large slot) rather than growing step by step, and the
/// secret is in one place each time.
#[test]
fn read_from_moves_into_ready_memory_and_leaves_one_copy() {
    let out = child::run(
        "read_from_moves_into_ready_memory_and_leaves_one_copy",
        || {
            let (a, b) = (0x1111, 0x2222);
            let first = LockedVec::read_from(pipe_fed_with(a, 300_000, b""), 1 << 20).unwrap();
            let end = first.as_ptr() as usize + first.capacity();
            drop(first);
            // Doubling would stop at 128 KiB and change; the ready 512 KiB slot
            // is taken instead.
            const LEN: usize = 100_000;
            let second = LockedVec::read_from(pipe_fed_with(b, LEN, b""), 1 << 20).unwrap();
            assert_eq!(second.len(), LEN);
            assert!(second.is_locked());
            assert!(second.capacity() > 500_000, "{}", second.capacity());
            assert_eq!(
                second.as_ptr() as usize + second.capacity(),
                end,
                "the ready slot was used"
            );
            for from in [0, 50_000, LEN - 32] {
                assert_eq!(memscan::count(&needle(b, from)), 1, "bytes {from}..");
            }
            for from in [0, 100_000, 300_000 - 32] {
                assert_eq!(memscan::count(&needle(a, from)), 0, "first input wiped");
            }
        },
    );
    expect_ok(&out);
}
