//! lockedmem against the systems it is compared with, in one interleaved run.
//!
//! ```sh
//! apt-get install libsodium-dev     # once
//! cargo run --release --manifest-path benches/peers/Cargo.toml
//! ```
//!
//! One operation is: allocate a secret, write a byte, read a byte, free it
//! (wiping it where the candidate wipes). Every candidate is called through
//! the same function pointer, so all pay the same call overhead (on CPUs
//! with return-stack mitigations the first return after a system call is
//! costly; see benches/sealed.rs). Each repetition times every candidate
//! once, in a rotating order; ratios are taken within a repetition and the
//! table shows their medians across repetitions, with the medians of the
//! per-operation times.

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

/// One candidate: a name, an operation, and how many operations a timing
/// takes (enough for a few milliseconds).
struct Candidate {
    name: &'static str,
    op: fn(),
    n: u32,
    /// Runs before each timing of this candidate (cache on or off).
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

fn touch(p: *mut u8, len: usize) {
    // SAFETY: every caller passes a live, writable allocation of `len` bytes.
    unsafe {
        p.write_volatile(1);
        black_box(p.add(len - 1).read_volatile());
    }
}

// --- 32-byte candidates ------------------------------------------------

fn box_zeroize() {
    let mut b = Box::new([0u8; 32]);
    touch(b.as_mut_ptr(), 32);
    b.zeroize();
    drop(black_box(b));
}

/// The minimal hand-written guarded, locked secret: mmap (guard, data,
/// guard), mprotect the data read-write, madvise DONTDUMP, mlock; munlock,
/// munmap. No wipe.
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

fn raw_32() {
    raw_round_trip(rustix::param::page_size());
}

fn memsec_32() {
    // SAFETY: memsec's guarded allocation, freed once below.
    unsafe {
        let p: NonNull<[u8; 32]> = memsec::malloc().expect("memsec::malloc");
        touch(p.as_ptr().cast(), 32);
        memsec::free(p);
    }
}

fn sodium_32() {
    // SAFETY: libsodium's guarded allocation, freed once below.
    unsafe {
        let p = sodium_malloc(32).cast::<u8>();
        assert!(!p.is_null());
        touch(p, 32);
        sodium_free(p.cast());
    }
}

fn secrets_32() {
    let b = secrets::SecretBox::<[u8; 32]>::new(|s| s[0] = 1);
    black_box(b.borrow()[31]);
    drop(b);
}

fn lockedmem_page<const N: usize>() {
    let mut b = LockedBox::<[u8; N]>::new_zeroed().expect("LockedBox");
    touch(b.as_mut_ptr(), N);
    drop(b);
}

fn lockedmem_packed_32() {
    let mut b = Options::new()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
        .expect("packed LockedBox");
    touch(b.as_mut_ptr(), 32);
    drop(b);
}

// --- secret memory (memfd_secret(2)) ------------------------------------

fn secret_opts() -> Options {
    Options::new().backing(Backing::SecretMem)
}

fn lockedmem_secret_page_32() {
    let mut b = secret_opts().zeroed::<[u8; 32]>().expect("SecretMem box");
    touch(b.as_mut_ptr(), 32);
    drop(b);
}

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

fn memsec_secretmem_32() {
    // SAFETY: memsec's memfd_secret allocation, freed once below.
    unsafe {
        let p: NonNull<[u8; 32]> = memsec::memfd_secret().expect("memsec::memfd_secret");
        touch(p.as_ptr().cast(), 32);
        memsec::free_memfd_secret(p);
    }
}

// --- larger secrets ----------------------------------------------------

fn raw_4k() {
    raw_round_trip(2 * rustix::param::page_size());
}

fn raw_64k() {
    raw_round_trip(17 * rustix::param::page_size());
}

// --- timing ------------------------------------------------------------

/// Nanoseconds per operation over `n` calls through a function pointer.
fn time(op: fn(), n: u32) -> f64 {
    let op = black_box(op);
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Aggregate throughput of `threads` threads each doing `n` operations,
/// started together; operations per microsecond.
fn throughput(op: fn(), n: u32, threads: usize) -> f64 {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    op(); // warm this thread's cache
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..n {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        barrier.wait();
        let longest = handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .max()
            .expect("threads");
        (threads as f64 * f64::from(n)) / (longest.as_nanos() as f64 / 1000.0)
    })
}

/// A candidate of the scaling table: name, operation, operations per
/// thread, and the per-repetition ratios.
type Scaling = (&'static str, fn(), u32, Vec<f64>);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // SAFETY: libsodium's initialiser, called once before any other call.
    assert!(unsafe { sodium_init() } >= 0, "sodium_init");
    let candidates = [
        Candidate {
            name: "Box<[u8; 32]> + zeroize",
            op: box_zeroize,
            n: 200_000,
            before: nothing,
        },
        Candidate {
            name: "raw mmap..munmap round trip",
            op: raw_32,
            n: 400,
            before: nothing,
        },
        Candidate {
            name: "memsec malloc/free",
            op: memsec_32,
            n: 400,
            before: nothing,
        },
        Candidate {
            name: "libsodium sodium_malloc/free",
            op: sodium_32,
            n: 400,
            before: nothing,
        },
        Candidate {
            name: "secrets SecretBox",
            op: secrets_32,
            n: 400,
            before: nothing,
        },
        Candidate {
            name: "lockedmem page, cache warm",
            op: lockedmem_page::<32>,
            n: 40_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem packed",
            op: lockedmem_packed_32,
            n: 100_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem page, cold (no cache)",
            op: lockedmem_page::<32>,
            n: 400,
            before: cache_off,
        },
        Candidate {
            name: "raw round trip, 4 KiB",
            op: raw_4k,
            n: 400,
            before: nothing,
        },
        Candidate {
            name: "lockedmem 4 KiB, cache warm",
            op: lockedmem_page::<4096>,
            n: 20_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem 4 KiB, cold",
            op: lockedmem_page::<4096>,
            n: 400,
            before: cache_off,
        },
        Candidate {
            name: "raw round trip, 64 KiB",
            op: raw_64k,
            n: 200,
            before: nothing,
        },
        Candidate {
            name: "lockedmem 64 KiB, cache warm",
            op: lockedmem_page::<65536>,
            n: 2_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem 64 KiB, cold",
            op: lockedmem_page::<65536>,
            n: 200,
            before: cache_off,
        },
        Candidate {
            name: "lockedmem SecretMem page, cache warm",
            op: lockedmem_secret_page_32,
            n: 40_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem SecretMem packed",
            op: lockedmem_secret_packed_32,
            n: 100_000,
            before: cache_on,
        },
        Candidate {
            name: "lockedmem SecretMem page, cold (no cache)",
            op: lockedmem_secret_page_32,
            n: 400,
            before: cache_off,
        },
        Candidate {
            name: "raw memfd_secret..close lifecycle",
            op: raw_secretmem_32,
            n: 200,
            before: nothing,
        },
        Candidate {
            name: "memsec memfd_secret/free",
            op: memsec_secretmem_32,
            n: 200,
            before: nothing,
        },
    ];
    // Warm up every candidate (and the caches).
    for c in &candidates {
        (c.before)();
        time(c.op, 10);
    }
    cache_on();

    let k = candidates.len();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); k];
    let mut ratios: Vec<(&str, Vec<f64>)> = [
        "page warm / Box",
        "sodium / page warm",
        "memsec / page warm",
        "secrets / page warm",
        "packed / Box",
        "cold / raw",
        "4 KiB warm / raw 4 KiB",
        "4 KiB cold / raw 4 KiB",
        "64 KiB warm / raw 64 KiB",
        "64 KiB cold / raw 64 KiB",
        "SecretMem page warm / page warm",
        "SecretMem packed / packed",
        "SecretMem cold / raw memfd_secret lifecycle",
        "memsec memfd_secret / SecretMem cold",
        "memsec memfd_secret / SecretMem page warm",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    let mut scaling: Vec<Scaling> = vec![
        ("Box + zeroize", box_zeroize as fn(), 400_000, Vec::new()),
        (
            "lockedmem page, cache warm",
            lockedmem_page::<32>,
            60_000,
            Vec::new(),
        ),
        ("lockedmem packed", lockedmem_packed_32, 200_000, Vec::new()),
        ("libsodium sodium_malloc/free", sodium_32, 1_000, Vec::new()),
        (
            "lockedmem SecretMem page, cache warm",
            lockedmem_secret_page_32,
            60_000,
            Vec::new(),
        ),
        (
            "lockedmem SecretMem packed",
            lockedmem_secret_packed_32,
            200_000,
            Vec::new(),
        ),
    ];

    for rep in 0..REPS {
        let mut t = vec![0.0; k];
        for j in 0..k {
            let i = (rep + j) % k;
            (candidates[i].before)();
            t[i] = time(candidates[i].op, candidates[i].n);
        }
        cache_on();
        for (i, v) in t.iter().enumerate() {
            ns[i].push(*v);
        }
        let r = [
            t[5] / t[0],
            t[3] / t[5],
            t[2] / t[5],
            t[4] / t[5],
            t[6] / t[0],
            t[7] / t[1],
            t[9] / t[8],
            t[10] / t[8],
            t[12] / t[11],
            t[13] / t[11],
            t[14] / t[5],
            t[15] / t[6],
            t[16] / t[17],
            t[18] / t[16],
            t[18] / t[14],
        ];
        for (slot, value) in ratios.iter_mut().zip(r) {
            slot.1.push(value);
        }
        for (_, op, n, v) in &mut scaling {
            let one = throughput(*op, *n, 1);
            let two = throughput(*op, *n, 2);
            v.push(two / one);
        }
        eprint!(".");
    }
    eprintln!();

    println!("{REPS} interleaved repetitions; medians.\n");
    println!("| operation (allocate, write, read, free) | median ns/op |");
    println!("| --- | ---: |");
    for (c, v) in candidates.iter().zip(ns) {
        println!("| {} | {:.0} |", c.name, median(v));
    }
    println!("\n| ratio (median of per-repetition ratios) | value |");
    println!("| --- | ---: |");
    for (name, v) in ratios {
        println!("| {name} | {:.2} |", median(v));
    }
    println!("\n| two threads' aggregate throughput / one thread's | value |");
    println!("| --- | ---: |");
    for (name, _, _, v) in scaling {
        println!("| {name} | {:.2} |", median(v));
    }
}
