//! A loop of one kind of box in its steady state, for `perf record`:
//!
//! ```sh
//! cargo build --release --manifest-path benches/peers/Cargo.toml
//! perf record -g benches/peers/target/release/steady packed 20000000
//! perf record -g benches/peers/target/release/steady page 20000000
//! ```
//!
//! One operation makes a zeroed 32-byte box (packed, or page-isolated from
//! the thread's warm cache), writes 32 bytes, reads them and drops the box;
//! `box` does the same with `Box<[u8; 32]>` and zeroize, the floor;
//! `secret-packed` with a packed box of secret memory (`Backing::SecretMem`).

use std::hint::black_box;

use lockedmem::{Isolation, LockedBox, Options};

#[inline(never)]
fn packed(n: u64) {
    for _ in 0..n {
        let mut b = Options::new()
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
            .expect("packed LockedBox");
        *b = black_box([1; 32]);
        black_box(*b);
        drop(b);
    }
}

#[inline(never)]
fn secret_packed(n: u64) {
    for _ in 0..n {
        let mut b = Options::new()
            .backing(lockedmem::Backing::SecretMem)
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
            .expect("packed SecretMem LockedBox");
        *b = black_box([1; 32]);
        black_box(*b);
        drop(b);
    }
}

#[inline(never)]
fn page(n: u64) {
    for _ in 0..n {
        let mut b = LockedBox::<[u8; 32]>::new_zeroed().expect("LockedBox");
        *b = black_box([1; 32]);
        black_box(*b);
        drop(b);
    }
}

#[inline(never)]
fn boxed(n: u64) {
    use zeroize::Zeroize;
    for _ in 0..n {
        let mut b = Box::new([0u8; 32]);
        *b = black_box([1; 32]);
        black_box(*b);
        b.zeroize();
        drop(black_box(b));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "packed".into());
    let n: u64 = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("a count"));
    match which.as_str() {
        "packed" => packed(n),
        "page" => page(n),
        "box" => boxed(n),
        "secret-packed" => secret_packed(n),
        other => panic!("packed, secret-packed, page or box, not {other}"),
    }
}
