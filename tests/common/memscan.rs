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
pub fn count(needle: &Masked) -> usize {
    let n = needle.0.len();
    assert!(n >= 8, "a needle of at least 8 bytes");
    const CHUNK: usize = 1 << 16;
    let mut buf = vec![0u8; CHUNK];
    let own = buf.as_ptr() as usize..buf.as_ptr() as usize + CHUNK;
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
    let first = needle.0[0] ^ MASK;
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
            for i in 0..len.saturating_sub(n - 1) {
                // The scan's own buffer holds what it just read: a match
                // there is not a copy.
                let addr = at + i;
                let in_own = addr < own.end && own.start < addr + n;
                if buf[i] == first && !in_own && (1..n).all(|j| buf[i + j] ^ MASK == needle.0[j]) {
                    found += 1;
                }
            }
            // Step so that a needle across the chunk boundary is seen whole.
            if len < CHUNK {
                break;
            }
            at += CHUNK - (n - 1);
        }
    }
    found
}
