//! `Options`: every constructor it offers makes its memory as the options
//! say, seen from outside the crate (the kernel's VmFlags in
//! /proc/self/smaps: `dc` for `MADV_DONTFORK`, `wf` for `MADV_WIPEONFORK`,
//! as `common::promises` says the platform offers them);
//! the builder works on a temporary, a binding and in a `const`.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

use common::procfs;
use lockedmem::{ForkPolicy, Isolation, LockPolicy, LockedBox, Options};

/// The memory at `addr` is advised as `policy` asks
/// (`common::assert_advised`), which differs from the default's marks.
fn advised(addr: *const u8, policy: ForkPolicy, what: &str) {
    let vma = procfs::vma_at(addr as usize).expect("mapped");
    assert!(vma.has("lo"), "{what}: {:?}", vma.flags);
    common::assert_advised(&vma, policy);
}

/// Each constructor of options naming `policy` makes memory advised so.
fn every_constructor_follows(policy: ForkPolicy) {
    let o = Options::new().fork(policy);
    let check = |addr, what| advised(addr, policy, what);
    let b = o.random::<32>().unwrap();
    check(b.as_ptr(), "random");
    let b = o.from_hex::<2>("00ff").unwrap();
    assert_eq!(*b, [0, 0xff]);
    check(b.as_ptr(), "from_hex");
    let b = o.from_base64::<4>("3q2+7w==").unwrap();
    assert_eq!(*b, [0xde, 0xad, 0xbe, 0xef]);
    check(b.as_ptr(), "from_base64");
    let b = o.from_array(&[1u8, 2, 3]).unwrap();
    check(b.as_ptr(), "from_array");
    let v = o.vec_random(100).unwrap();
    assert_eq!(v.len(), 100);
    check(v.as_ptr(), "vec_random");
    let v = o.vec_from_hex("0102").unwrap();
    assert_eq!(&v[..], [1, 2]);
    check(v.as_ptr(), "vec_from_hex");
    let v = o.vec_from_base64("aHVudGVyMg==").unwrap();
    assert_eq!(&v[..], b"hunter2");
    check(v.as_ptr(), "vec_from_base64");
    let v = o.read_from(&[7u8; 5000][..], 10_000).unwrap();
    assert_eq!(v.len(), 5000);
    check(v.as_ptr(), "read_from");
    let mut input = &b"pass phrase\nrest"[..];
    let s = o.read_line(&mut input, 64).unwrap();
    assert_eq!((&*s, input), ("pass phrase", &b"rest"[..]));
    check(s.as_ptr(), "read_line");
    let mut s = o.string(10).unwrap();
    s.try_push_str("abc").unwrap();
    check(s.as_ptr(), "string");
}

/// Every constructor follows each fork policy other than the default that
/// the platform offers (`Exclude` and `Keep` on Linux; `Keep` in the
/// portable test mode, whose default is `Exclude`), and the default options
/// get the default's marks, for contrast.
#[test]
fn every_constructor_follows_the_options() {
    let others: Vec<ForkPolicy> = [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep]
        .into_iter()
        .filter(|&p| p != common::default_fork())
        .filter(|&p| p != ForkPolicy::Wipe || common::promises().fork_zeros)
        .collect();
    assert!(others.contains(&common::other_fork()), "{others:?}");
    for policy in others {
        every_constructor_follows(policy);
    }
    let d = LockedBox::<[u8; 32]>::random().unwrap();
    advised(d.as_ptr(), common::default_fork(), "the default options");
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
