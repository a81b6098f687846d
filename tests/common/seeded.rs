//! 32-byte secrets made from a seed, each byte distinct for every seed and
//! offset, written byte by byte so that no whole copy lands on the stack:
//! what the shield's scans look for.
#![allow(dead_code, unreachable_pub)]

use std::hint::black_box;

/// Byte `i` of secret `seed`.
pub fn byte(seed: u8, i: usize) -> u8 {
    (i.to_le_bytes()[0])
        .wrapping_mul(29)
        .wrapping_add(seed.wrapping_mul(101))
        ^ 0xc3
}

/// Writes secret `seed` into `k`, byte by byte.
pub fn fill(k: &mut [u8; 32], seed: u8) {
    for (i, b) in k.iter_mut().enumerate() {
        *b = black_box(byte(seed, i));
    }
}

/// Whether `v` is secret `seed`.
pub fn is(v: &[u8; 32], seed: u8) -> bool {
    v.iter().enumerate().all(|(i, &b)| b == byte(seed, i))
}
