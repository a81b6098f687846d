//! Comparing a byte secret with a plain slice, and copying a secret with
//! `try_clone`: the copy is made like the original (VmFlags, isolation,
//! backing), holds the bytes in locked memory only (a scan of the child's
//! whole memory finds exactly two copies, and none once both are dropped),
//! and a copy the lock limit refuses leaves nothing behind.
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, memscan, procfs};
use lockedmem::{
    Error, ForkPolicy, Isolation, LockPolicy, LockedBox, LockedString, LockedVec, Options,
    SealedBox,
};
use zeroize::ZeroizeOnDrop;

fn secret_byte(i: usize) -> u8 {
    let x = (i as u64 ^ 0x6a09_e667_f3bc_c908).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    b'a' + ((x >> 37) % 26) as u8
}

fn needle() -> memscan::Masked {
    memscan::Masked::from_fn(32, secret_byte)
}

#[test]
#[expect(
    clippy::nonminimal_bool,
    clippy::op_ref,
    reason = "each impl is under test: `a == b` and `b == a`, `[u8]` and `&[u8]`"
)]
fn byte_secrets_compare_with_plain_slices_both_ways() {
    let stored = LockedBox::<[u8; 4]>::from_hex("01020304").unwrap();
    let presented: &[u8] = &[1, 2, 3, 4];
    assert!(stored == presented && presented == stored);
    assert!(stored == *presented && *presented == stored);
    assert!(stored != &[1u8, 2, 3, 5][..]);
    assert!(stored != &[1u8, 2, 3][..], "a shorter slice");
    assert!(stored != &[1u8, 2, 3, 4, 0][..], "a longer slice");

    let slice = LockedBox::<[u8]>::from_slice(b"token").unwrap();
    assert!(slice == &b"token"[..] && &b"token"[..] == slice);
    assert!(slice != &b"tokem"[..]);

    let vec = LockedVec::from_hex("aabb").unwrap();
    assert!(vec == &[0xaa, 0xbb][..] && [0xaa, 0xbb][..] == vec);
    assert!(vec != &[][..]);

    let mut s = LockedString::new();
    s.try_push_str("hunter2").unwrap();
    assert!(s == "hunter2" && "hunter2" == s && s == *"hunter2");
    assert!(s == &b"hunter2"[..] && &b"hunter2"[..] == s);
    assert!(s != "hunter3" && s != "hunter");
}

#[test]
fn the_containers_zeroize_on_drop() {
    fn zeroize_on_drop<T: ZeroizeOnDrop + ?Sized>() {}
    zeroize_on_drop::<LockedBox<[u8; 32]>>();
    zeroize_on_drop::<LockedBox<[u64]>>();
    zeroize_on_drop::<LockedVec<u32>>();
    zeroize_on_drop::<LockedString>();
    zeroize_on_drop::<SealedBox<[u8; 32]>>();
}

#[test]
fn a_copy_is_made_like_the_original() {
    let o = Options::new()
        .isolation(Isolation::Packed)
        .fork(ForkPolicy::Exclude);
    let key = o.new_with(|k: &mut [u8; 32]| k.fill(7)).unwrap();
    let copy = key.try_clone().unwrap();
    assert!(copy == key);
    assert_ne!(copy.as_ptr(), key.as_ptr());
    assert_eq!(copy.isolation(), Isolation::Packed);
    assert_eq!(copy.backing(), key.backing());
    assert!(copy.is_locked());
    let vma = procfs::vma_at(copy.as_ptr() as usize).unwrap();
    assert!(vma.has("dc") && !vma.has("wf"), "{:?}", vma.flags);

    let page = Options::new()
        .fork(ForkPolicy::Keep)
        .from_slice(&[1u16, 2, 3])
        .unwrap();
    let copy = page.try_clone().unwrap();
    assert_eq!(&copy[..], [1, 2, 3]);
    assert_eq!(copy.isolation(), Isolation::Page);
    let vma = procfs::vma_at(copy.as_ptr() as usize).unwrap();
    assert!(!vma.has("dc") && !vma.has("wf"), "{:?}", vma.flags);

    let v = o.vec_from_hex("0102").unwrap();
    let w = v.try_clone().unwrap();
    assert!(w == v);
    let vma = procfs::vma_at(w.as_ptr() as usize).unwrap();
    assert!(vma.has("dc"), "{:?}", vma.flags);
    let empty = LockedVec::<u64>::new().try_clone().unwrap();
    assert_eq!((empty.len(), empty.capacity()), (0, 0));

    let s = o.read_line(&b"pw\n"[..], 8).unwrap();
    let t = s.try_clone().unwrap();
    assert!(t == "pw");
    let vma = procfs::vma_at(t.as_ptr() as usize).unwrap();
    assert!(vma.has("dc"), "{:?}", vma.flags);
}

#[test]
fn a_copy_lives_in_locked_memory_only() {
    let out = child::run("a_copy_lives_in_locked_memory_only", || {
        let key = LockedBox::<[u8; 32]>::new_with(|k| {
            k.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = secret_byte(i))
        })
        .unwrap();
        assert_eq!(memscan::count(&needle()), 1, "the original");
        let copy = key.try_clone().unwrap();
        assert_eq!(memscan::count(&needle()), 2, "the original and the copy");
        drop(key);
        drop(copy);
        assert_eq!(memscan::count(&needle()), 0, "both wiped");

        let mut v = LockedVec::<u8>::new();
        for i in 0..32 {
            v.try_push(secret_byte(i)).unwrap();
        }
        let w = v.try_clone().unwrap();
        let s = LockedString::from_utf8(w.try_clone().unwrap()).unwrap();
        let t = s.try_clone().unwrap();
        assert_eq!(memscan::count(&needle()), 4, "vector, copy, string, copy");
        drop((v, w, s, t));
        assert_eq!(memscan::count(&needle()), 0, "all wiped");
        // Control: a copy in ordinary memory is found.
        let plain: Vec<u8> = (0..32).map(secret_byte).collect();
        assert_eq!(memscan::count(&needle()), 1, "the control copy");
        drop(std::hint::black_box(plain));
    });
    child::assert_success(&out);
}

#[test]
fn a_refused_copy_leaves_nothing_behind() {
    let out = child::run("a_refused_copy_leaves_nothing_behind", || {
        common::become_unprivileged(64 * 1024);
        lockedmem::set_cache_limit(0);
        let key = LockedBox::<[u8; 32]>::new_with(|k| {
            k.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = secret_byte(i))
        })
        .unwrap();
        let mut v = LockedVec::<u8>::new();
        v.try_extend_from_slice(&key[..]).unwrap();
        // Fill the limit.
        let mut fill = Vec::new();
        while let Ok(b) = LockedBox::<[u8; 32]>::new_zeroed() {
            fill.push(b);
        }
        let (maps, lck) = (procfs::mapping_count(), procfs::vm_lck_kb());
        let locked = lockedmem::locked_bytes();
        let e = key.try_clone().unwrap_err();
        assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
        let e = v.try_clone().unwrap_err();
        assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
        assert_eq!(procfs::mapping_count(), maps, "no mapping left");
        assert_eq!(procfs::vm_lck_kb(), lck, "no page left locked");
        assert_eq!(lockedmem::locked_bytes(), locked);
        assert_eq!(memscan::count(&needle()), 2, "the box and the vector only");
        // A best-effort box that is not locked copies unlocked.
        let loose = Options::new()
            .lock(LockPolicy::BestEffort)
            .from_array(&[1u8; 64])
            .unwrap();
        assert!(!loose.is_locked());
        let copy = loose.try_clone().unwrap();
        assert!(!copy.is_locked() && copy == loose);
    });
    child::assert_success(&out);
}
