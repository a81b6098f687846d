//! Counting the copies of a secret in this process's memory, through
//! /proc/self/mem (which reads PROT_NONE pages too), without the scan itself
//! making a copy of what it looks for: the needle is kept XOR-masked and
//! unmasked one byte at a time, in registers.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The mask the needles are kept under.
pub const MASK: u8 = 0x5a;

/// A needle kept under [`MASK`].
pub struct Masked(Vec<u8>);

impl Masked {
    /// From a generator of the needle's bytes (never materialised unmasked).
    pub fn from_fn(len: usize, mut byte: impl FnMut(usize) -> u8) -> Masked {
        Masked((0..len).map(|i| byte(i) ^ MASK).collect())
    }
}

/// How many times the needle occurs in the readable memory of this process,
/// all mappings read through /proc/self/mem (those the kernel refuses, such
/// as `[vvar]`, are skipped and named on stderr).
///
/// The search uses glibc's memmem(3), which needs the needle unmasked: it is
/// unmasked into the tail of the scan's own buffer, whose address range is
/// left out of the count, and wiped before returning.
pub fn count(needle: &Masked) -> usize {
    let n = needle.0.len();
    assert!(n >= 8, "a needle of at least 8 bytes");
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK + n];
    let own = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    for (i, m) in needle.0.iter().enumerate() {
        buf[CHUNK + i] = m ^ MASK;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let ranges: Vec<(usize, usize, String)> = maps
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next()?.split_once('-')?;
            let name = f.nth(4).unwrap_or("").to_owned();
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
                name,
            ))
        })
        .collect();
    let mem = File::open("/proc/self/mem").expect("open /proc/self/mem");
    let mut found = 0;
    for (start, end, name) in ranges {
        if name == "[vsyscall]" {
            continue;
        }
        let mut at = start;
        while at < end {
            let len = CHUNK.min(end - at);
            if mem.read_exact_at(&mut buf[..len], at as u64).is_err() {
                eprintln!("memscan: skipped {start:#x}-{end:#x} {name}");
                break;
            }
            let mut from = 0;
            while from + n <= len {
                let hay = &buf[from..len];
                let pin = &buf[CHUNK..CHUNK + n];
                // SAFETY: both ranges are live slices of `buf`, passed with
                // their lengths; memmem only reads them.
                let hit =
                    unsafe { libc::memmem(hay.as_ptr().cast(), hay.len(), pin.as_ptr().cast(), n) };
                if hit.is_null() {
                    break;
                }
                let i = hit as usize - buf.as_ptr() as usize;
                // The scan's own buffer holds what it just read (and the
                // needle): a match there is not a copy.
                let addr = at + i;
                if !(addr < own.end && own.start < addr + n) {
                    found += 1;
                }
                from = i + 1;
            }
            // Step so that a needle across the chunk boundary is seen whole.
            if len < CHUNK {
                break;
            }
            at += CHUNK - (n - 1);
        }
    }
    zeroize_tail(&mut buf[CHUNK..]);
    found
}

/// Wipes the unmasked needle with volatile writes.
fn zeroize_tail(tail: &mut [u8]) {
    for b in tail.iter_mut() {
        // SAFETY: a valid, exclusive reference to one byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// How many times each needle occurs in the memory of thread `tid` of
/// process `pid` (another process, which the caller may read: its ptrace
/// tracer), every mapping read through /proc/PID/task/TID/mem, `PROT_NONE`
/// ones included (the kernel reads them for a tracer); those it refuses
/// (`[vvar]`, secret memory) are skipped and named on stderr. The thread's
/// own view is used so that the scan works while the process is exiting
/// and its main thread is gone.
///
/// Each needle is unmasked into this process's memory for memmem(3),
/// which is harmless here: the copies that count are the other process's.
pub fn count_in(pid: i32, tid: i32, needles: &[&Masked]) -> Vec<usize> {
    const CHUNK: usize = 1 << 20;
    let plain: Vec<Vec<u8>> = needles
        .iter()
        .map(|m| m.0.iter().map(|b| b ^ MASK).collect())
        .collect();
    let longest = plain.iter().map(Vec::len).max().unwrap_or(1);
    let dir = format!("/proc/{pid}/task/{tid}");
    let maps = std::fs::read_to_string(format!("{dir}/maps")).expect("read the child's maps");
    let mem = File::open(format!("{dir}/mem")).expect("open the child's mem");
    let mut buf = vec![0u8; CHUNK];
    let mut found = vec![0; needles.len()];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let Some((a, b)) = f.next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        else {
            continue;
        };
        let name = f.nth(4).unwrap_or("");
        if name == "[vsyscall]" {
            continue;
        }
        let mut at = start;
        while at < end {
            let len = CHUNK.min(end - at);
            if mem.read_exact_at(&mut buf[..len], at as u64).is_err() {
                eprintln!("memscan: skipped {start:#x}-{end:#x} {name}");
                break;
            }
            for (pin, count) in plain.iter().zip(found.iter_mut()) {
                let n = pin.len();
                let mut from = 0;
                while from + n <= len {
                    let hay = &buf[from..len];
                    // SAFETY: both are live slices passed with their
                    // lengths; memmem only reads them.
                    let hit = unsafe {
                        libc::memmem(hay.as_ptr().cast(), hay.len(), pin.as_ptr().cast(), n)
                    };
                    if hit.is_null() {
                        break;
                    }
                    let i = hit as usize - buf.as_ptr() as usize;
                    // A needle across the chunk boundary is counted once:
                    // by the chunk it starts in, unless it starts in the
                    // overlap the next chunk reads again.
                    if len < CHUNK || i < CHUNK - (longest - 1) {
                        *count += 1;
                    }
                    from = i + 1;
                }
            }
            if len < CHUNK {
                break;
            }
            at += CHUNK - (longest - 1);
        }
    }
    found
}
