//! `Options`: every constructor it offers makes its memory as the options
//! say, seen from outside the crate (the kernel's VmFlags in
//! /proc/self/smaps: `dc` for `MADV_DONTFORK`, `wf` for `MADV_WIPEONFORK`);
//! the builder works on a temporary, a binding and in a `const`.
#![cfg(target_os = "linux")] // Linux's /proc, signals, fork or capabilities

mod common;

use common::procfs;
use lockedmem::{ForkPolicy, Isolation, LockPolicy, LockedBox, Options};

/// The memory at `addr` is advised as `ForkPolicy::Exclude` asks, and not
/// as the default `Wipe` would be.
fn excluded(addr: *const u8, what: &str) {
    let vma = procfs::vma_at(addr as usize).expect("mapped");
    assert!(vma.has("dc"), "{what}: no MADV_DONTFORK: {:?}", vma.flags);
    assert!(!vma.has("wf"), "{what}: MADV_WIPEONFORK: {:?}", vma.flags);
}

#[test]
fn every_constructor_follows_the_options() {
    let o = Options::new().fork(ForkPolicy::Exclude);
    let b = o.random::<32>().unwrap();
    excluded(b.as_ptr(), "random");
    let b = o.from_hex::<2>("00ff").unwrap();
    assert_eq!(*b, [0, 0xff]);
    excluded(b.as_ptr(), "from_hex");
    let b = o.from_base64::<4>("3q2+7w==").unwrap();
    assert_eq!(*b, [0xde, 0xad, 0xbe, 0xef]);
    excluded(b.as_ptr(), "from_base64");
    let b = o.from_array(&[1u8, 2, 3]).unwrap();
    excluded(b.as_ptr(), "from_array");
    let v = o.vec_random(100).unwrap();
    assert_eq!(v.len(), 100);
    excluded(v.as_ptr(), "vec_random");
    let v = o.vec_from_hex("0102").unwrap();
    assert_eq!(&v[..], [1, 2]);
    excluded(v.as_ptr(), "vec_from_hex");
    let v = o.vec_from_base64("aHVudGVyMg==").unwrap();
    assert_eq!(&v[..], b"hunter2");
    excluded(v.as_ptr(), "vec_from_base64");
    let v = o.read_from(&[7u8; 5000][..], 10_000).unwrap();
    assert_eq!(v.len(), 5000);
    excluded(v.as_ptr(), "read_from");
    let mut input = &b"pass phrase\nrest"[..];
    let s = o.read_line(&mut input, 64).unwrap();
    assert_eq!((&*s, input), ("pass phrase", &b"rest"[..]));
    excluded(s.as_ptr(), "read_line");
    let mut s = o.string(10).unwrap();
    s.try_push_str("abc").unwrap();
    excluded(s.as_ptr(), "string");
    // The default options, for contrast: `wf`, no `dc`.
    let d = LockedBox::<[u8; 32]>::random().unwrap();
    let vma = procfs::vma_at(d.as_ptr() as usize).unwrap();
    assert!(vma.has("wf") && !vma.has("dc"), "{:?}", vma.flags);
}

#[test]
fn packed_constructors_are_packed() {
    let o = Options::new().isolation(Isolation::Packed);
    assert_eq!(o.random::<32>().unwrap().isolation(), Isolation::Packed);
    assert_eq!(
        o.from_hex::<4>("01020304").unwrap().isolation(),
        Isolation::Packed
    );
    assert_eq!(
        o.from_base64::<1>("/w==").unwrap().isolation(),
        Isolation::Packed
    );
    assert_eq!(
        o.from_array(&[9u8; 16]).unwrap().isolation(),
        Isolation::Packed
    );
}

/// The builder in the forms people write: chained on a temporary, bound
/// with `let` (E0716 with `&mut self` setters), reassigned, in a `const`.
#[test]
fn the_builder_works_on_temporaries_bindings_and_consts() {
    const PACKED_BEST_EFFORT: Options = Options::new()
        .isolation(Isolation::Packed)
        .lock(LockPolicy::BestEffort);
    let o = Options::new().isolation(Isolation::Packed);
    let mut p = Options::new();
    p = p.isolation(Isolation::Packed);
    assert_eq!(o, p);
    assert_eq!(PACKED_BEST_EFFORT, o.lock(LockPolicy::BestEffort));
    assert_eq!(Options::default(), Options::new());
    let b = PACKED_BEST_EFFORT.zeroed::<[u8; 32]>().unwrap();
    assert_eq!(b.isolation(), Isolation::Packed);
    // `o` is `Copy`: still usable after making a box.
    let c = o.zeroed::<u64>().unwrap();
    assert_eq!(c.isolation(), Isolation::Packed);
}
