//! Packed boxes: small secrets sharing locked, guarded pages, each slot
//! fenced by canaries that are checked on drop. Every property is read back
//! from the kernel (smaps, maps) or from a child process's death.
// Linux only: reads /proc (common::procfs: smaps VmFlags, maps, status); drops
// CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::{child, end_of, packed, page_size, procfs, start_of};
use lockedmem::{ForkPolicy, Isolation, LockPolicy, LockedBox};

fn poke(addr: usize, byte: u8) {
    let p = std::ptr::with_exposed_provenance_mut::<u8>(addr);
    // SAFETY: deliberately out of the value's bounds: the tests are about
    // what the crate does when a write lands there.
    unsafe { p.write_volatile(byte) };
}

fn peek(addr: usize) -> u8 {
    let p = std::ptr::with_exposed_provenance::<u8>(addr);
    // SAFETY: reads of slot memory the tests know to be mapped.
    unsafe { p.read_volatile() }
}

#[test]
fn packed_boxes_share_a_locked_dontdump_page_between_guards() {
    let boxes: Vec<_> = (0..10u8)
        .map(|i| {
            let mut b = packed().zeroed::<[u8; 32]>().unwrap();
            b.fill(i);
            b
        })
        .collect();
    let page = page_size();
    let first = start_of(&*boxes[0]);
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.isolation(), Isolation::Packed);
        assert!(b.is_locked());
        assert!(b[..].iter().all(|&x| usize::from(x) == i));
        assert_eq!(start_of(&**b) / page, first / page, "all on one page");
        assert_eq!(start_of(&**b) % 16, 0);
    }
    let vmas = procfs::smaps();
    let i = vmas.iter().position(|v| v.contains(first)).unwrap();
    let data = &vmas[i];
    assert_eq!(data.perms, "rw-p");
    assert!(data.has("lo"), "{:?}", data.flags);
    common::assert_default_advice(data);
    assert_eq!(
        data.locked_kb * 1024,
        data.len() as u64,
        "every open packed page is locked"
    );
    // The open pages of a packed slab sit between PROT_NONE pages: its guard
    // pages or pages not opened yet.
    assert_eq!(vmas[i - 1].perms, "---p");
    assert_eq!(vmas[i + 1].perms, "---p");
    assert!(!vmas[i - 1].has("lo") && !vmas[i + 1].has("lo"));
    let r = boxes[3].residency().unwrap();
    assert_eq!((r.resident, r.total), (1, 1));
}

#[test]
fn a_32_byte_secret_takes_a_64_byte_slot() {
    let a = packed().zeroed::<[u8; 32]>().unwrap();
    let b = packed().zeroed::<[u8; 32]>().unwrap();
    let distance = start_of(&*a).abs_diff(start_of(&*b));
    assert_eq!(distance % 64, 0);
    assert_eq!(
        end_of(&*a) % 64,
        48,
        "value ends right before the 16-byte back canary"
    );
}

#[test]
fn what_cannot_be_packed_is_page_isolated() {
    let big = packed().zeroed_slice::<u8>(2049).unwrap();
    assert_eq!(big.isolation(), Isolation::Page);
    assert_eq!(end_of(&*big) % page_size(), 0);
    #[repr(C, align(32))]
    struct Wide([u8; 32]);
    // SAFETY: bytes only, valid as zeros, no pointers or interior mutability.
    unsafe impl lockedmem::Plain for Wide {}
    assert_eq!(
        packed().zeroed::<Wide>().unwrap().isolation(),
        Isolation::Page
    );
    let most = packed().zeroed_slice::<u8>(2048).unwrap();
    assert_eq!(most.isolation(), Isolation::Packed);
    let none = packed().zeroed_slice::<u64>(0).unwrap();
    assert_eq!(none.isolation(), Isolation::Packed);
}

#[test]
fn debug_names_the_isolation_and_no_byte() {
    let mut b = packed().zeroed::<[u8; 16]>().unwrap();
    b.copy_from_slice(b"PACKEDSECRET\x99\x98\x97\x96");
    let text = format!("{b:?}");
    assert!(
        text.contains("Packed") && !text.contains("PACKED") && !text.contains("153"),
        "{text}"
    );
}

#[test]
fn a_write_one_past_the_value_aborts_on_drop_naming_the_slot() {
    let out = child::run(
        "a_write_one_past_the_value_aborts_on_drop_naming_the_slot",
        || {
            let b = packed().zeroed::<[u8; 32]>().unwrap();
            poke(end_of(&*b), 0x41);
            drop(b);
            println!("drop returned");
        },
    );
    child::assert_signal(&out, libc::SIGABRT);
    let err = child::stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("lockedmem:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("after a 32-byte packed secret") && line.contains("slot"),
        "{line}"
    );
    assert!(line.contains("64-byte slots"), "{line}");
}

#[test]
fn a_write_one_before_the_value_aborts_on_drop() {
    let out = child::run("a_write_one_before_the_value_aborts_on_drop", || {
        let b = packed().zeroed::<[u8; 32]>().unwrap();
        // The front canary's last byte is random: flip it (a fixed value
        // would match it one time in 256).
        let p = std::ptr::with_exposed_provenance::<u8>(start_of(&*b) - 1);
        // SAFETY: a byte of the slot's front canary, readable.
        let old = unsafe { p.read_volatile() };
        poke(start_of(&*b) - 1, !old);
        drop(b);
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(child::stderr(&out).contains("before a 32-byte packed secret"));
}

#[test]
fn a_write_into_the_padding_aborts_on_drop() {
    // A 20-byte value in a 64-byte slot leaves 12 bytes of padding between
    // the front canary and the value; they must stay zero.
    let out = child::run("a_write_into_the_padding_aborts_on_drop", || {
        let b = packed().zeroed::<[u8; 20]>().unwrap();
        poke(start_of(&*b) - 5, 0x41);
        drop(b);
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(child::stderr(&out).contains("before a 20-byte packed secret"));
}

#[test]
fn untouched_packed_boxes_drop_quietly() {
    let out = child::run("untouched_packed_boxes_drop_quietly", || {
        for len in [0, 1, 15, 16, 17, 32, 33, 100, 1000, 2016, 2048] {
            let mut b = packed().zeroed_slice::<u8>(len).unwrap();
            b.fill(0xEE);
            drop(b);
        }
    });
    child::assert_success(&out);
}

#[test]
fn a_dropped_slot_is_wiped_canaries_and_all() {
    let b = packed().zeroed::<[u8; 32]>().unwrap();
    let keep = packed().zeroed::<[u8; 32]>().unwrap(); // keeps the page open
    let (start, end) = (start_of(&*b), end_of(&*b));
    let mut b = b;
    b.fill(0xAB);
    drop(b);
    assert!(
        (start - 16..end + 16).all(|a| peek(a) == 0),
        "slot not wiped"
    );
    drop(keep);
}

#[test]
fn sealing_moves_a_packed_value_to_pages_of_its_own() {
    let mut b = packed().zeroed::<[u8; 32]>().unwrap();
    b.copy_from_slice(&[0x5C; 32]);
    let old = start_of(&*b);
    let keep = packed().zeroed::<[u8; 32]>().unwrap(); // keeps the page open
    let sealed = b.seal().unwrap();
    assert!((old..old + 32).all(|a| peek(a) == 0), "old slot wiped");
    let end = {
        let r = sealed.borrow();
        assert!(r.iter().all(|&x| x == 0x5C), "contents moved");
        end_of(&*r)
    };
    assert_eq!(end % page_size(), 0, "now flush against a guard page");
    assert_eq!(
        procfs::perms_at(end - 1).as_deref(),
        Some("---p"),
        "and sealed"
    );
    let unsealed = sealed.unseal();
    assert_eq!(unsealed.isolation(), Isolation::Page);
    assert!(unsealed.iter().all(|&x| x == 0x5C));
    let slice = packed().zeroed_slice::<u16>(7).unwrap().seal().unwrap();
    assert_eq!(slice.borrow().len(), 7);
    drop(keep);
}

#[test]
fn boxes_move_between_threads() {
    let boxes: Vec<_> = (0..100)
        .map(|_| packed().zeroed::<[u8; 32]>().unwrap())
        .collect();
    std::thread::spawn(move || drop(boxes)).join().unwrap();
    let from_thread = std::thread::spawn(|| {
        let mut b = packed().zeroed::<u64>().unwrap();
        *b = 42;
        b
    })
    .join()
    .unwrap();
    assert_eq!(*from_thread, 42, "a box outlives the thread that made it");
}

#[test]
fn pages_of_exited_threads_are_given_back_by_trim() {
    child::assert_success(&child::run(
        "pages_of_exited_threads_are_given_back_by_trim",
        || {
            drop(LockedBox::<u8>::new_zeroed().unwrap()); // fork detector
            // A first thread leaves glibc's cached stack and malloc arena
            // mapped after it exits; let that happen before the baseline.
            std::thread::spawn(|| drop(vec![0u8; 1000])).join().unwrap();
            lockedmem::trim();
            let (lck, maps) = (procfs::vm_lck_kb(), procfs::mapping_count());
            let boxes = std::thread::spawn(|| {
                let made: Vec<_> = (0..300)
                    .map(|_| packed().zeroed::<[u8; 32]>().unwrap())
                    .collect();
                let cached = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
                drop(cached); // cached by a thread that then exits
                made
            })
            .join()
            .unwrap();
            assert_eq!(lockedmem::stats().packed_boxes, 300);
            assert_eq!(
                lockedmem::stats().cached_slots,
                0,
                "an exiting thread gives its cache back"
            );
            drop(boxes);
            lockedmem::trim();
            assert_eq!((procfs::vm_lck_kb(), procfs::mapping_count()), (lck, maps));
            let st = lockedmem::stats();
            assert_eq!(
                (st.page_boxes, st.packed_boxes, st.locked_bytes, st.mappings),
                (0, 0, 0, 0)
            );
        },
    ));
}

#[test]
fn best_effort_packing_without_lockable_memory_stays_packed_on_an_unlocked_page() {
    let out = child::run(
        "best_effort_packing_without_lockable_memory_stays_packed_on_an_unlocked_page",
        || {
            common::become_unprivileged(0);
            let b = packed()
                .lock(LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .unwrap();
            assert!(!b.is_locked());
            assert_eq!(b.isolation(), Isolation::Packed);
            // Everything but the lock, in the kernel's view.
            let vma = procfs::vma_at(start_of(&*b)).unwrap();
            assert!(!vma.has("lo"), "{:?}", vma.flags);
            common::assert_default_advice(&vma);
            assert_eq!(procfs::perms_at(vma.start - 1).as_deref(), Some("---p"));
            assert_eq!(procfs::perms_at(vma.end).as_deref(), Some("---p"));
            let st = lockedmem::stats();
            assert_eq!((st.packed_boxes, st.packed_boxes_unlocked), (1, 1));
            assert_eq!(st.packed_pages_unlocked, 1);
            let e = packed().zeroed::<[u8; 32]>().unwrap_err();
            assert!(matches!(e, lockedmem::Error::MemlockLimit { .. }), "{e:?}");
        },
    );
    child::assert_success(&out);
}

#[test]
fn fork_policies_hold_for_packed_boxes() {
    child::assert_success(&child::run("fork_policies_hold_for_packed_boxes", || {
        for (policy, expect) in [
            (ForkPolicy::Wipe, common::Seen::Exited(10)),
            (ForkPolicy::Exclude, common::Seen::Signal(libc::SIGSEGV)),
            (ForkPolicy::Keep, common::Seen::Exited(11)),
        ] {
            let made = packed().fork(policy).zeroed::<[u8; 48]>();
            if policy == ForkPolicy::Wipe && !common::promises().fork_zeros {
                // The portable test mode, as macOS: no zeros for a fork
                // child, so no Wipe; Exclude and Keep are checked below.
                common::assert_wipe_unsupported(made);
                continue;
            }
            let mut b = made.unwrap();
            b.fill(0xA5);
            let addr = start_of(&*b);
            let seen = common::in_fork(|| {
                let code = common::classify(addr, 48, 0xA5);
                if policy != ForkPolicy::Exclude {
                    // Dropping the inherited box neither faults nor aborts.
                    drop(common::the_childs_copy(&b));
                }
                code
            });
            assert_eq!(seen, expect, "{policy:?}");
            assert!(b.iter().all(|&x| x == 0xA5), "the parent keeps its secret");
        }
    }));
}
