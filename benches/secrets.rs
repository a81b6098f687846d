//! What the secret containers cost next to their ordinary counterparts, in
//! one interleaved run on a machine that may be noisy:
//!
//! - `push`: a `LockedVec<u8>` filled to 1 MiB by one-byte `try_push`,
//!   starting from `LockedVec::new()` and dropped (wiped, freed) at the end,
//!   against a `Vec<u8>` filled to 1 MiB by one-byte `push`, then
//!   `zeroize`d and dropped;
//! - `read`: `LockedVec::read_from(pipe, 2 MiB)` against
//!   `Read::read_to_end` into a `Vec<u8>`, each reading 1 MiB from a pipe
//!   that was filled beforehand (its buffer raised to 1 MiB with
//!   `F_SETPIPE_SZ`, the write end closed), so only the reading side is
//!   timed; if the pipe cannot be enlarged, a writer thread started before
//!   the clock feeds it instead, the same for both. The result is dropped
//!   after the clock stops (a second row times reading and dropping). In
//!   the steady state `read_from` finds the memory the previous call left
//!   ready in the crate's caches; a third candidate turns the caches off
//!   (and `trim`s) first, so that every call locks fresh memory, as the
//!   first read in a process does; a fourth, also with the caches off,
//!   reads the 1 MiB with `read_exact` into a `LockedBox<[u8]>` of exactly
//!   1 MiB made inside the clock: one lock of the final size,
//!   no growth, the least a cold read of a known size pays;
//! - `eq`: `==` on two `LockedBox<[u8; 32]>` (constant time, through
//!   `subtle`) against `subtle::ConstantTimeEq::ct_eq` on two `[u8; 32]`,
//!   many comparisons per timing sample.
//!
//! Each repetition times every candidate once, in an order that rotates from
//! one repetition to the next; every candidate is called through a
//! `black_box`ed function pointer, so none is inlined into the timing loop.
//! Times are medians across repetitions, ratios medians of the
//! per-repetition ratios.
//!
//! `cargo bench --bench secrets`.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::thread::JoinHandle;
use std::time::Instant;

use lockedmem::{LockedBox, LockedVec, Options};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

const MIB: usize = 1 << 20;
/// Repetitions of the whole set of candidates (one more runs first, untimed).
const REPS: usize = 31;
/// Comparisons per timing sample of the `eq` candidates.
const EQ_BATCH: u32 = 20_000;

// ---- push ----------------------------------------------------------------

/// `LockedVec::new()`, 1 MiB one-byte `try_push`es, drop.
#[inline(never)]
fn push_locked() -> usize {
    let mut v = LockedVec::<u8>::new();
    let mut b = 0u8;
    for _ in 0..MIB {
        v.try_push(b).expect("try_push");
        b = b.wrapping_add(1);
    }
    let len = v.len();
    drop(black_box(v));
    len
}

/// `Vec::new()`, 1 MiB one-byte `push`es, `zeroize`, drop.
#[inline(never)]
fn push_vec() -> usize {
    let mut v = Vec::<u8>::new();
    let mut b = 0u8;
    for _ in 0..MIB {
        v.push(b);
        b = b.wrapping_add(1);
    }
    let len = v.len();
    let mut v = black_box(v);
    v.zeroize();
    drop(v);
    len
}

/// Nanoseconds for one call of `f`.
fn time_push(f: fn() -> usize) -> f64 {
    let start = Instant::now();
    let n = black_box(f)();
    let ns = start.elapsed().as_nanos() as f64;
    assert_eq!(n, MIB);
    ns
}

// ---- read ----------------------------------------------------------------

/// `LockedVec::read_from(pipe, 2 MiB)`.
#[inline(never)]
fn read_locked(pipe: File) -> Box<dyn AsRef<[u8]>> {
    Box::new(LockedVec::read_from(pipe, 2 * MIB).expect("read_from"))
}

/// A `LockedBox<[u8]>` of exactly the payload's size, for `read_exact`.
struct Exact(LockedBox<[u8]>);

impl AsRef<[u8]> for Exact {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `zeroed_slice(1 MiB)` (one lock of the final size), then `read_exact`.
#[inline(never)]
fn read_exact_locked(mut pipe: File) -> Box<dyn AsRef<[u8]>> {
    let mut b = Options::new()
        .zeroed_slice::<u8>(MIB)
        .expect("zeroed_slice");
    pipe.read_exact(&mut b).expect("read_exact");
    Box::new(Exact(b))
}

/// `read_to_end` into a new `Vec<u8>`.
#[inline(never)]
fn read_vec(mut pipe: File) -> Box<dyn AsRef<[u8]>> {
    let mut v = Vec::new();
    pipe.read_to_end(&mut v).expect("read_to_end");
    Box::new(v)
}

/// The two ends of a new pipe (pipe(2)).
#[cfg(unix)]
fn pipe() -> (File, File) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two descriptors, as pipe(2)
    // wants. (Not close-on-exec: this bench runs no other program.)
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor pipe(2) just opened; nothing else owns it.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (File::from(r), File::from(w))
}

/// The two ends of a new anonymous pipe (`CreatePipe`, default buffer
/// size: a writer thread feeds it, as [`enlarge`] says).
#[cfg(windows)]
fn pipe() -> (File, File) {
    use std::os::windows::io::{FromRawHandle, OwnedHandle};
    use windows_sys::Win32::System::Pipes::CreatePipe;
    let (mut r, mut w) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: two writable handle slots; no security attributes (the
    // handles are not inherited).
    let ok = unsafe { CreatePipe(&raw mut r, &raw mut w, std::ptr::null(), 0) };
    assert_ne!(ok, 0, "CreatePipe: {}", std::io::Error::last_os_error());
    // SAFETY: a handle CreatePipe just opened; nothing else owns it.
    let r = unsafe { OwnedHandle::from_raw_handle(r) };
    // SAFETY: as above.
    let w = unsafe { OwnedHandle::from_raw_handle(w) };
    (File::from(r), File::from(w))
}

/// Raises the pipe's buffer to at least 1 MiB (Linux's `F_SETPIPE_SZ`);
/// whether that worked.
#[cfg(target_os = "linux")]
fn enlarge(w: &File) -> bool {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(MIB).expect("1 MiB fits a c_int");
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; no memory passed.
    let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    got >= size
}

/// No call raises a pipe's buffer here: a writer thread feeds the pipe.
#[cfg(not(target_os = "linux"))]
fn enlarge(_w: &File) -> bool {
    false
}

/// The bytes the pipe carries.
fn payload() -> Vec<u8> {
    (0..MIB)
        .map(|i| u8::try_from(i % 251).expect("below 251"))
        .collect()
}

/// A pipe's read end with 1 MiB ready to read, and the writer thread feeding
/// it if the pipe could not hold it all.
fn loaded_pipe(data: &[u8]) -> (File, Option<JoinHandle<()>>) {
    let (r, mut w) = pipe();
    if enlarge(&w) {
        w.write_all(data).expect("fill the pipe");
        drop(w);
        (r, None)
    } else {
        let data = data.to_vec();
        let writer = std::thread::spawn(move || {
            w.write_all(&data).expect("write to the pipe");
        });
        (r, Some(writer))
    }
}

/// Nanoseconds to read the pipe, and to read it and drop the result.
fn time_read(data: &[u8], f: fn(File) -> Box<dyn AsRef<[u8]>>) -> (f64, f64) {
    let (r, writer) = loaded_pipe(data);
    let start = Instant::now();
    let got = black_box(f)(r);
    let read = start.elapsed();
    let ok = (*got).as_ref() == data;
    let dropped = Instant::now();
    drop(got);
    let total = read + dropped.elapsed();
    if let Some(w) = writer {
        w.join().expect("writer thread");
    }
    assert!(ok, "read what was written");
    (read.as_nanos() as f64, total.as_nanos() as f64)
}

// ---- eq ------------------------------------------------------------------

/// `==` on two locked 32-byte secrets.
#[inline(never)]
fn eq_locked(a: &LockedBox<[u8; 32]>, b: &LockedBox<[u8; 32]>) -> bool {
    a == b
}

/// `subtle::ConstantTimeEq::ct_eq` on two plain 32-byte arrays.
#[inline(never)]
fn eq_plain(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Nanoseconds per call of `f(a, b)`, over `EQ_BATCH` calls.
fn time_eq<T: ?Sized>(f: fn(&T, &T) -> bool, a: &T, b: &T) -> f64 {
    let start = Instant::now();
    let mut equal = 0u32;
    for _ in 0..EQ_BATCH {
        equal += u32::from(black_box(f)(black_box(a), black_box(b)));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(EQ_BATCH);
    assert_eq!(equal, EQ_BATCH);
    ns
}

// ---- the run -------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One measurement per candidate, by index.
#[derive(Default)]
struct Rep([f64; 12]);

const PUSH_LOCKED: usize = 0;
const PUSH_VEC: usize = 1;
const READ_LOCKED: usize = 2;
const READ_VEC: usize = 3;
const EQ_LOCKED: usize = 4;
const EQ_PLAIN: usize = 5;
/// Not candidates of their own: the read candidates' times with the drop.
const READ_LOCKED_DROP: usize = 6;
const READ_VEC_DROP: usize = 7;
/// `read_from` with every cache off, so each call locks fresh memory (the
/// first read in a process), and the drop after it.
const READ_COLD: usize = 8;
const READ_COLD_DROP: usize = 9;
const READ_COLD_CANDIDATE: usize = 6;
/// `read_exact` into a locked box of exactly 1 MiB, caches off, and the
/// drop after it. Timed next to `READ_COLD` (in an order that alternates),
/// after the same `trim`: a second `trim` in each repetition would leave
/// the steady-state `read_from` finding empty caches more often.
const READ_EXACT_COLD: usize = 10;
const READ_EXACT_COLD_DROP: usize = 11;
const CANDIDATES: usize = 7;

fn main() {
    let data = payload();
    let key = [0x5Au8; 32];
    let (la, lb) = (
        LockedBox::<[u8; 32]>::new_with(|k| k.copy_from_slice(&key)).expect("box"),
        LockedBox::<[u8; 32]>::new_with(|k| k.copy_from_slice(&key)).expect("box"),
    );
    let (pa, pb) = (key, key);
    let (_, feeder) = loaded_pipe(&data);
    let mode = if feeder.is_none() {
        "pipe pre-filled (F_SETPIPE_SZ 1 MiB), write end closed"
    } else {
        "pipe fed by a writer thread started before the clock"
    };
    if let Some(f) = feeder {
        f.join().expect("writer thread");
    }

    let mut reps: Vec<Rep> = Vec::with_capacity(REPS);
    // Repetition 0 warms up (caches, page tables, the crate's slot caches)
    // and is not counted.
    for rep in 0..=REPS {
        let mut m = Rep::default();
        for k in 0..CANDIDATES {
            match (rep + k) % CANDIDATES {
                PUSH_LOCKED => m.0[PUSH_LOCKED] = time_push(push_locked),
                PUSH_VEC => m.0[PUSH_VEC] = time_push(push_vec),
                READ_LOCKED => {
                    (m.0[READ_LOCKED], m.0[READ_LOCKED_DROP]) = time_read(&data, read_locked);
                }
                READ_VEC => (m.0[READ_VEC], m.0[READ_VEC_DROP]) = time_read(&data, read_vec),
                READ_COLD_CANDIDATE => {
                    lockedmem::set_cache_limit(0);
                    lockedmem::trim();
                    for second in [false, true] {
                        if second == (rep % 2 == 0) {
                            (m.0[READ_COLD], m.0[READ_COLD_DROP]) = time_read(&data, read_locked);
                        } else {
                            (m.0[READ_EXACT_COLD], m.0[READ_EXACT_COLD_DROP]) =
                                time_read(&data, read_exact_locked);
                        }
                    }
                    lockedmem::set_cache_limit(lockedmem::DEFAULT_CACHE_LIMIT);
                }
                EQ_LOCKED => m.0[EQ_LOCKED] = time_eq(eq_locked, &la, &lb),
                EQ_PLAIN => m.0[EQ_PLAIN] = time_eq(eq_plain, &pa, &pb),
                _ => unreachable!(),
            }
        }
        if rep > 0 {
            reps.push(m);
        }
    }

    let col = |i: usize| reps.iter().map(|r| r.0[i]).collect::<Vec<_>>();
    let ratio = |num: usize, den: usize| median(reps.iter().map(|r| r.0[num] / r.0[den]).collect());
    let row = |what: &str, i: usize, unit: f64, ratio: String| {
        let prec = if unit > 1.0 { 0 } else { 1 };
        println!("| {what} | {:.prec$} | {ratio} |", median(col(i)) / unit);
    };
    let verdict = |r: f64, target: f64| {
        if r <= target {
            format!("{r:.2} x (target <= {target} x: met)")
        } else {
            format!("{r:.2} x (target <= {target} x: **missed**)")
        }
    };

    println!();
    println!("interleaved, {REPS} repetitions, medians; {mode}");
    println!();
    println!("| operation | median | ratio (median of per-repetition ratios) |");
    println!("| --- | ---: | ---: |");
    row(
        "`LockedVec<u8>`: `new`, 1 MiB one-byte `try_push`, drop (µs)",
        PUSH_LOCKED,
        1e3,
        verdict(ratio(PUSH_LOCKED, PUSH_VEC), 5.0),
    );
    row(
        "`Vec<u8>`: `new`, 1 MiB one-byte `push`, `zeroize`, drop (µs)",
        PUSH_VEC,
        1e3,
        "1.00 (baseline)".into(),
    );
    row(
        "`LockedVec::read_from(pipe, 2 MiB)`, 1 MiB (µs)",
        READ_LOCKED,
        1e3,
        verdict(ratio(READ_LOCKED, READ_VEC), 1.2),
    );
    row(
        "the same `read_from` with the caches off (each call locks afresh) (µs)",
        READ_COLD,
        1e3,
        verdict(ratio(READ_COLD, READ_VEC), 3.0),
    );
    row(
        "caches off, size known: `zeroed_slice(1 MiB)`, `read_exact` (one lock, no growth) (µs)",
        READ_EXACT_COLD,
        1e3,
        format!("{:.2} x", ratio(READ_EXACT_COLD, READ_VEC)),
    );
    row(
        "`read_to_end` into `Vec<u8>`, 1 MiB (µs)",
        READ_VEC,
        1e3,
        "1.00 (baseline)".into(),
    );
    row(
        "the same `read_from`, then drop (µs)",
        READ_LOCKED_DROP,
        1e3,
        format!("{:.2} x", ratio(READ_LOCKED_DROP, READ_VEC_DROP)),
    );
    row(
        "the same `read_to_end`, then drop (µs)",
        READ_VEC_DROP,
        1e3,
        "1.00 (baseline)".into(),
    );
    row(
        "`==` on two `LockedBox<[u8; 32]>` (ns)",
        EQ_LOCKED,
        1.0,
        verdict(ratio(EQ_LOCKED, EQ_PLAIN), 3.0),
    );
    row(
        "`ct_eq` on two `[u8; 32]` (ns)",
        EQ_PLAIN,
        1.0,
        "1.00 (baseline)".into(),
    );
}
