//! Hot-path driver for profiling (not part of the crate's examples).
use lockedbox::{Isolation, LockedBox, Options};
use std::hint::black_box;
fn page() {
    let mut b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    b[0] = 1;
    black_box(b[31]);
}
fn packed() {
    let mut b = Options::new()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
        .unwrap();
    b[0] = 1;
    black_box(b[31]);
}
fn boxz() {
    use zeroize::Zeroize;
    let mut b = Box::new([0u8; 32]);
    b[0] = 1;
    black_box(b[31]);
    b.zeroize();
    drop(black_box(b));
}
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let n: u32 = std::env::args()
        .nth(2)
        .map_or(100_000, |s| s.parse().unwrap());
    let f: fn() = match which.as_str() {
        "page" => page,
        "packed" => packed,
        _ => boxz,
    };
    f();
    let t = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{which}: {:.1} ns/op",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
