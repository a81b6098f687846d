//! lockedmem against the systems it is compared with, in one interleaved run.
//!
//! ```sh
//! apt-get install libsodium-dev     # once
//! cargo run --release --manifest-path benches/peers/Cargo.toml
//! ```
//!
//! One operation is: allocate a secret, write 32 bytes, read 32 bytes, free
//! it (wiping it where the candidate wipes). Each candidate is timed in a
//! loop of its own (`time` is generic over the operation, which is inlined
//! into it), so no candidate pays a call through a function pointer: the
//! floor, `Box<[u8; 32]>` + zeroize, costs what the allocator makes it
//! cost, and a plain hand-written loop of the same operation is printed
//! beside it as a check. Each repetition times every candidate once, in a
//! rotating order; ratios are taken within a repetition and the table shows
//! their medians across repetitions, with the medians of the per-operation
//! times.

use std::ffi::{c_int, c_void};
use std::hint::black_box;
use std::ptr::{self, NonNull};
use std::sync::Barrier;
use std::time::Instant;

use lockedmem::{Backing, Isolation, LockedBox, Options};
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use zeroize::Zeroize;

#[link(name = "sodium")]
unsafe extern "C" {
    fn sodium_init() -> c_int;
    fn sodium_malloc(size: usize) -> *mut c_void;
    fn sodium_free(ptr: *mut c_void);
}

const REPS: usize = 21;

/// One candidate: a name, how many operations a timing takes (enough for a
/// few milliseconds), and what runs before each timing (cache on or off).
/// The operation itself is the arm of [`run`] with the candidate's index.
struct Candidate {
    name: &'static str,
    n: u32,
    before: fn(),
}

fn nothing() {}

fn cache_off() {
    lockedmem::set_cache_limit(0);
    lockedmem::trim();
}

fn cache_on() {
    lockedmem::set_cache_limit(lockedmem::DEFAULT_CACHE_LIMIT);
}

/// Writes 32 bytes at the start of the secret and reads the last 32 (the
/// same bytes for a 32-byte secret).
#[inline(always)]
fn touch(p: *mut u8, len: usize) {
    // SAFETY: every caller passes a live, writable allocation of `len >= 32`
    // bytes; `[u8; 32]` has alignment 1.
    unsafe {
        p.cast::<[u8; 32]>().write_volatile([1; 32]);
        black_box(p.add(len - 32).cast::<[u8; 32]>().read_volatile());
    }
}

// --- 32-byte candidates ------------------------------------------------

/// A zeroed `Box<[u8; 32]>` as cheaply as the allocator gives one: `malloc`
/// and two stores of zeros. (`Box::new([0; 32])` compiles to `calloc`,
/// which in glibc 2.36 skips the thread cache that `malloc` and `free` use:
/// the `Box::new([0; 32])` row shows what that costs.)
#[inline(always)]
fn zeroed_box() -> Box<[u8; 32]> {
    let mut b = black_box(Box::<[u8; 32]>::new_uninit());
    // SAFETY: a live, writable 32-byte allocation of our own; volatile so
    // that the compiler neither drops the zeroing nor turns the pair into
    // `calloc`.
    unsafe { b.as_mut_ptr().write_volatile([0; 32]) };
    // SAFETY: just initialised.
    unsafe { b.assume_init() }
}

#[inline(always)]
fn box_zeroize() {
    let mut b = zeroed_box();
    touch(b.as_mut_ptr(), 32);
    b.zeroize();
    drop(black_box(b));
}

/// The same with `Box::new([0; 32])`, which the compiler makes a `calloc`.
#[inline(always)]
fn box_calloc_zeroize() {
    let mut b = Box::new([0u8; 32]);
    touch(b.as_mut_ptr(), 32);
    b.zeroize();
    drop(black_box(b));
}

/// The minimal hand-written guarded, locked secret: mmap (guard, data,
/// guard), mprotect the data read-write, madvise DONTDUMP, mlock; munlock,
/// munmap. No wipe.
#[inline(always)]
fn raw_round_trip(data_len: usize) {
    let page = rustix::param::page_size();
    let map_len = data_len + 2 * page;
    // SAFETY: a fresh private mapping, used only here and unmapped at the end.
    unsafe {
        let map = rustix::mm::mmap_anonymous(
            ptr::null_mut(),
            map_len,
            ProtFlags::empty(),
            MapFlags::PRIVATE,
        )
        .expect("mmap");
        let data = map.cast::<u8>().add(page).cast::<c_void>();
        rustix::mm::mprotect(data, data_len, MprotectFlags::READ | MprotectFlags::WRITE)
            .expect("mprotect");
        rustix::mm::madvise(data, data_len, Advice::LinuxDontDump).expect("madvise");
        rustix::mm::mlock(data, data_len).expect("mlock");
        touch(data.cast::<u8>().add(data_len - 32), 32);
        rustix::mm::munlock(data, data_len).expect("munlock");
        rustix::mm::munmap(map, map_len).expect("munmap");
    }
}

#[inline(always)]
fn raw_32() {
    raw_round_trip(rustix::param::page_size());
}

#[inline(always)]
fn memsec_32() {
    // SAFETY: memsec's guarded allocation, freed once below.
    unsafe {
        let p: NonNull<[u8; 32]> = memsec::malloc().expect("memsec::malloc");
        touch(p.as_ptr().cast(), 32);
        memsec::free(p);
    }
}

#[inline(always)]
fn sodium_32() {
    // SAFETY: libsodium's guarded allocation, freed once below.
    unsafe {
        let p = sodium_malloc(32).cast::<u8>();
        assert!(!p.is_null());
        touch(p, 32);
        sodium_free(p.cast());
    }
}

#[inline(always)]
fn secrets_32() {
    let b = secrets::SecretBox::<[u8; 32]>::new(|s| *s = [1; 32]);
    black_box(*b.borrow());
    drop(b);
}

#[inline(always)]
fn lockedmem_page<const N: usize>() {
    let mut b = LockedBox::<[u8; N]>::new_zeroed().expect("LockedBox");
    touch(b.as_mut_ptr(), N);
    drop(b);
}

#[inline(always)]
fn lockedmem_packed_32() {
    let mut b = Options::new()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
        .expect("packed LockedBox");
    touch(b.as_mut_ptr(), 32);
    drop(b);
}

// --- secret memory (memfd_secret(2)) ------------------------------------

#[inline(always)]
fn secret_opts() -> Options {
    Options::new().backing(Backing::SecretMem)
}

#[inline(always)]
fn lockedmem_secret_page_32() {
    let mut b = secret_opts().zeroed::<[u8; 32]>().expect("SecretMem box");
    touch(b.as_mut_ptr(), 32);
    drop(b);
}

#[inline(always)]
fn lockedmem_secret_packed_32() {
    let mut b = secret_opts()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
        .expect("packed SecretMem box");
    touch(b.as_mut_ptr(), 32);
    drop(b);
}

/// The lifecycle a one-off secret-memory allocation needs without a pool:
/// memfd_secret, ftruncate, mmap, touch (the first touch splits the direct
/// map), munmap, close.
#[inline(always)]
fn raw_secretmem_32() {
    let page = rustix::param::page_size();
    // SAFETY: memfd_secret takes a flags integer and returns a descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_uint) };
    assert!(fd >= 0, "memfd_secret: {}", std::io::Error::last_os_error());
    let fd = fd as c_int;
    // SAFETY: a descriptor we own; plain integer arguments.
    assert_eq!(unsafe { libc::ftruncate(fd, page as libc::off_t) }, 0);
    // SAFETY: a fresh shared mapping of our own file, read-write.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    touch(p.cast(), 32);
    // SAFETY: the mapping made above, unmapped once; the descriptor closed once.
    unsafe {
        libc::munmap(p, page);
        libc::close(fd);
    }
}

#[inline(always)]
fn memsec_secretmem_32() {
    // SAFETY: memsec's memfd_secret allocation, freed once below.
    unsafe {
        let p: NonNull<[u8; 32]> = memsec::memfd_secret().expect("memsec::memfd_secret");
        touch(p.as_ptr().cast(), 32);
        memsec::free_memfd_secret(p);
    }
}

// --- larger secrets ----------------------------------------------------

#[inline(always)]
fn raw_4k() {
    raw_round_trip(2 * rustix::param::page_size());
}

#[inline(always)]
fn raw_64k() {
    raw_round_trip(17 * rustix::param::page_size());
}

// --- timing ------------------------------------------------------------

/// Nanoseconds per operation over `n` operations, `op` inlined into the
/// loop (one copy of this function per candidate).
#[inline(always)]
fn time<F: FnMut()>(n: u32, mut op: F) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// The floor written out by hand, with no generic function in between:
/// the check that [`time`] adds nothing to `box_zeroize`.
#[inline(never)]
fn plain_box_loop(n: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let mut b = black_box(Box::<[u8; 32]>::new_uninit());
        // SAFETY: a live, writable 32-byte allocation of our own.
        unsafe { b.as_mut_ptr().write_volatile([0; 32]) };
        // SAFETY: just initialised.
        let mut b = unsafe { b.assume_init() };
        // SAFETY: a live 32-byte allocation of our own.
        unsafe {
            b.as_mut_ptr().cast::<[u8; 32]>().write_volatile([1; 32]);
            black_box(b.as_ptr().cast::<[u8; 32]>().read_volatile());
        }
        b.zeroize();
        drop(black_box(b));
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Times candidate `i` of `CANDIDATES` for `n` operations: each arm is a
/// loop of its own with the operation inlined.
#[inline(never)]
fn run(i: usize, n: u32) -> f64 {
    match i {
        BOX => time(n, box_zeroize),
        PLAIN_BOX => plain_box_loop(n),
        RAW => time(n, raw_32),
        MEMSEC => time(n, memsec_32),
        SODIUM => time(n, sodium_32),
        SECRETS => time(n, secrets_32),
        PAGE_WARM | PAGE_COLD => time(n, lockedmem_page::<32>),
        PACKED => time(n, lockedmem_packed_32),
        RAW_4K => time(n, raw_4k),
        PAGE_4K_WARM | PAGE_4K_COLD => time(n, lockedmem_page::<4096>),
        RAW_64K => time(n, raw_64k),
        PAGE_64K_WARM | PAGE_64K_COLD => time(n, lockedmem_page::<65536>),
        SECRET_PAGE_WARM | SECRET_PAGE_COLD => time(n, lockedmem_secret_page_32),
        SECRET_PACKED => time(n, lockedmem_secret_packed_32),
        RAW_SECRETMEM => time(n, raw_secretmem_32),
        MEMSEC_SECRETMEM => time(n, memsec_secretmem_32),
        BOX_CALLOC => time(n, box_calloc_zeroize),
        _ => unreachable!("candidate {i}"),
    }
}

const BOX: usize = 0;
const PLAIN_BOX: usize = 1;
const RAW: usize = 2;
const MEMSEC: usize = 3;
const SODIUM: usize = 4;
const SECRETS: usize = 5;
const PAGE_WARM: usize = 6;
const PACKED: usize = 7;
const PAGE_COLD: usize = 8;
const RAW_4K: usize = 9;
const PAGE_4K_WARM: usize = 10;
const PAGE_4K_COLD: usize = 11;
const RAW_64K: usize = 12;
const PAGE_64K_WARM: usize = 13;
const PAGE_64K_COLD: usize = 14;
const SECRET_PAGE_WARM: usize = 15;
const SECRET_PACKED: usize = 16;
const SECRET_PAGE_COLD: usize = 17;
const RAW_SECRETMEM: usize = 18;
const MEMSEC_SECRETMEM: usize = 19;
const BOX_CALLOC: usize = 20;

/// Every candidate, by index (the constants above).
const CANDIDATES: [Candidate; 21] = [
    Candidate {
        name: "Box<[u8; 32]> (malloc, zeroed) + zeroize (floor)",
        n: 400_000,
        before: nothing,
    },
    Candidate {
        name: "the same, a plain hand-written loop (check)",
        n: 400_000,
        before: nothing,
    },
    Candidate {
        name: "raw mmap..munmap round trip",
        n: 400,
        before: nothing,
    },
    Candidate {
        name: "memsec malloc/free",
        n: 400,
        before: nothing,
    },
    Candidate {
        name: "libsodium sodium_malloc/free",
        n: 400,
        before: nothing,
    },
    Candidate {
        name: "secrets SecretBox",
        n: 400,
        before: nothing,
    },
    Candidate {
        name: "lockedmem page, cache warm",
        n: 100_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem packed",
        n: 200_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem page, cold (no cache)",
        n: 400,
        before: cache_off,
    },
    Candidate {
        name: "raw round trip, 4 KiB",
        n: 400,
        before: nothing,
    },
    Candidate {
        name: "lockedmem 4 KiB, cache warm",
        n: 40_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem 4 KiB, cold",
        n: 400,
        before: cache_off,
    },
    Candidate {
        name: "raw round trip, 64 KiB",
        n: 200,
        before: nothing,
    },
    Candidate {
        name: "lockedmem 64 KiB, cache warm",
        n: 2_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem 64 KiB, cold",
        n: 200,
        before: cache_off,
    },
    Candidate {
        name: "lockedmem SecretMem page, cache warm",
        n: 100_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem SecretMem packed",
        n: 200_000,
        before: cache_on,
    },
    Candidate {
        name: "lockedmem SecretMem page, cold (no cache)",
        n: 400,
        before: cache_off,
    },
    Candidate {
        name: "raw memfd_secret..close lifecycle",
        n: 200,
        before: nothing,
    },
    Candidate {
        name: "memsec memfd_secret/free",
        n: 200,
        before: nothing,
    },
    Candidate {
        name: "`Box::new([0; 32])` (calloc) + zeroize",
        n: 400_000,
        before: nothing,
    },
];

/// Aggregate throughput of `threads` threads each doing `n` operations,
/// started together, `op` inlined into each thread's loop; operations per
/// microsecond.
fn throughput<F: Fn() + Sync>(op: F, n: u32, threads: usize) -> f64 {
    let barrier = Barrier::new(threads + 1);
    let op = &op;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    op(); // warm this thread's cache
                    barrier.wait();
                    time(n, op)
                })
            })
            .collect();
        barrier.wait();
        let slowest = handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .fold(0.0, f64::max);
        // `slowest` ns per operation over `n` operations per thread.
        threads as f64 * 1000.0 / slowest
    })
}

/// Two threads' aggregate throughput over one thread's, for scaling
/// candidate `i` (see [`SCALING`]).
#[inline(never)]
fn scaling(i: usize) -> f64 {
    fn ratio<F: Fn() + Sync + Copy>(op: F, n: u32) -> f64 {
        let one = throughput(op, n, 1);
        let two = throughput(op, n, 2);
        two / one
    }
    match i {
        0 => ratio(box_zeroize, 400_000),
        1 => ratio(lockedmem_page::<32>, 100_000),
        2 => ratio(lockedmem_packed_32, 200_000),
        3 => ratio(sodium_32, 1_000),
        4 => ratio(lockedmem_secret_page_32, 100_000),
        5 => ratio(lockedmem_secret_packed_32, 200_000),
        _ => unreachable!("scaling candidate {i}"),
    }
}

/// The scaling table's rows, by index into [`scaling`].
const SCALING: [&str; 6] = [
    "Box + zeroize",
    "lockedmem page, cache warm",
    "lockedmem packed",
    "libsodium sodium_malloc/free",
    "lockedmem SecretMem page, cache warm",
    "lockedmem SecretMem packed",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // SAFETY: libsodium's initialiser, called once before any other call.
    assert!(unsafe { sodium_init() } >= 0, "sodium_init");
    let candidates = &CANDIDATES;
    // Warm up every candidate (and the caches).
    for (i, c) in candidates.iter().enumerate() {
        (c.before)();
        run(i, 10);
    }
    cache_on();

    let k = candidates.len();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); k];
    // (name, numerator, denominator): medians of t[numerator] / t[denominator].
    let ratio_defs: [(&str, usize, usize); 17] = [
        ("plain Box loop / Box (check: 1)", PLAIN_BOX, BOX),
        ("page warm / Box", PAGE_WARM, BOX),
        ("packed / Box", PACKED, BOX),
        ("sodium / page warm", SODIUM, PAGE_WARM),
        ("memsec / page warm", MEMSEC, PAGE_WARM),
        ("secrets / page warm", SECRETS, PAGE_WARM),
        ("cold / raw", PAGE_COLD, RAW),
        ("4 KiB warm / raw 4 KiB", PAGE_4K_WARM, RAW_4K),
        ("4 KiB cold / raw 4 KiB", PAGE_4K_COLD, RAW_4K),
        ("64 KiB warm / raw 64 KiB", PAGE_64K_WARM, RAW_64K),
        ("64 KiB cold / raw 64 KiB", PAGE_64K_COLD, RAW_64K),
        (
            "SecretMem page warm / page warm",
            SECRET_PAGE_WARM,
            PAGE_WARM,
        ),
        ("SecretMem packed / packed", SECRET_PACKED, PACKED),
        (
            "SecretMem cold / raw memfd_secret lifecycle",
            SECRET_PAGE_COLD,
            RAW_SECRETMEM,
        ),
        (
            "memsec memfd_secret / SecretMem cold",
            MEMSEC_SECRETMEM,
            SECRET_PAGE_COLD,
        ),
        (
            "memsec memfd_secret / SecretMem page warm",
            MEMSEC_SECRETMEM,
            SECRET_PAGE_WARM,
        ),
        ("SecretMem packed / Box", SECRET_PACKED, BOX),
    ];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); ratio_defs.len()];
    let mut scaled: Vec<Vec<f64>> = vec![Vec::new(); SCALING.len()];

    for rep in 0..REPS {
        let mut t = vec![0.0; k];
        for j in 0..k {
            let i = (rep + j) % k;
            (candidates[i].before)();
            t[i] = run(i, candidates[i].n);
        }
        cache_on();
        for (i, v) in t.iter().enumerate() {
            ns[i].push(*v);
        }
        for (slot, &(_, num, den)) in ratios.iter_mut().zip(&ratio_defs) {
            slot.push(t[num] / t[den]);
        }
        for (i, v) in scaled.iter_mut().enumerate() {
            v.push(scaling(i));
        }
        eprint!(".");
    }
    eprintln!();

    println!("{REPS} interleaved repetitions; medians.\n");
    println!(
        "| operation (allocate, write 32 bytes, read 32, free) | median ns/op | median ratio to Box + zeroize |"
    );
    println!("| --- | ---: | ---: |");
    let box_ns = ns[BOX].clone();
    for (c, v) in candidates.iter().zip(&ns) {
        let r: Vec<f64> = v.iter().zip(&box_ns).map(|(a, b)| a / b).collect();
        println!(
            "| {} | {:.1} | {:.2} |",
            c.name,
            median(v.clone()),
            median(r)
        );
    }
    println!("\n| ratio (median of per-repetition ratios) | value |");
    println!("| --- | ---: |");
    for ((name, _, _), v) in ratio_defs.iter().zip(ratios) {
        println!("| {name} | {:.2} |", median(v));
    }
    println!("\n| two threads' aggregate throughput / one thread's | value |");
    println!("| --- | ---: |");
    for (name, v) in SCALING.iter().zip(scaled) {
        println!("| {name} | {:.2} |", median(v));
    }
}
