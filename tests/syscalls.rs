//! The system calls a box costs, counted from outside by strace(1).
//!
//! The child brackets each phase with `close(-N)` calls (harmless EBADF
//! markers that strace shows); the parent counts the memory-management calls
//! the child's thread made between them.
// Linux only: counts system calls with strace(1).
#![cfg(target_os = "linux")]

mod common;

use common::child;
use lockedmem::{Isolation, LockedBox, Options};

const CHILD_VAR: &str = "LOCKEDMEM_TEST_CHILD";

fn marker(n: i32) {
    // SAFETY: closing an invalid descriptor only returns EBADF.
    unsafe { libc::close(-n) };
}

fn cycle_page() {
    let mut b = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    b[0] = 1;
    std::hint::black_box(&b);
}

fn cycle_packed() {
    let mut b = Options::new()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
        .unwrap();
    b[0] = 1;
    std::hint::black_box(&b);
}

/// The calls the child's test thread made between `close(-from)` and
/// `close(-to)`, by name; madvise(2) with its advice, such as
/// `madvise(MADV_DONTDUMP)`.
fn calls_between(trace: &str, from: i32, to: i32) -> Vec<String> {
    let open = format!("close(-{from})");
    let close = format!("close(-{to})");
    let start = trace
        .lines()
        .find(|l| l.contains(&open))
        .expect("start marker");
    let tid = start.split_whitespace().next().unwrap().to_owned();
    trace
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(tid.as_str()))
        .skip_while(|l| !l.contains(&open))
        .skip(1)
        .take_while(|l| !l.contains(&close))
        .filter_map(|l| {
            let call = l.split_once(char::is_whitespace)?.1.trim_start();
            let name = call.split('(').next()?;
            if name != "madvise" {
                return Some(name.to_owned());
            }
            // `madvise(0x7f.., 4096, MADV_DONTDUMP) = 0`
            let advice = call.split(", ").nth(2)?.split(')').next()?;
            Some(format!("madvise({advice})"))
        })
        .filter(|name| !name.is_empty() && name != "close")
        .collect()
}

#[test]
fn each_path_makes_the_expected_calls() {
    if std::env::var(CHILD_VAR).as_deref() == Ok("syscalls") {
        lockedmem::set_cache_limit(0);
        cycle_page(); // maps a slab (kept while empty) and the fork detector
        cycle_packed(); // opens a packed page
        marker(1001);
        cycle_page();
        marker(1002);
        lockedmem::set_cache_limit(lockedmem::DEFAULT_CACHE_LIMIT);
        cycle_page(); // now the slot stays in the cache
        marker(1003);
        for _ in 0..100 {
            cycle_page();
        }
        marker(1004);
        for _ in 0..100 {
            cycle_packed();
        }
        marker(1005);
        let sealed = LockedBox::<[u8; 32]>::new_zeroed().unwrap().seal().unwrap();
        marker(1006);
        for _ in 0..10 {
            std::hint::black_box(sealed.borrow()[0]);
        }
        marker(1007);
        let outer = sealed.borrow();
        marker(1008);
        for _ in 0..100 {
            std::hint::black_box(sealed.borrow()[0]);
        }
        marker(1009);
        drop(outer);
        std::process::exit(0);
    }
    let Some((out, trace)) = common::strace::trace_child(
        "each_path_makes_the_expected_calls",
        "syscalls",
        "mmap,munmap,mprotect,madvise,mlock,munlock,mremap,close",
    ) else {
        return;
    };
    child::assert_success(&out);

    // Cold (cache off, slab already mapped): open the slot (mprotect,
    // mlock), then give it back: replace it with fresh PROT_NONE memory
    // (mmap MAP_FIXED, which unlocks and discards it) and advise that as
    // the slab is, so it merges back: MADV_DONTDUMP where the platform
    // leaves memory out of core dumps, then the default fork policy's
    // advice (MADV_WIPEONFORK on Linux; MADV_DONTFORK in the portable test
    // mode, whose default is Exclude).
    let cold = calls_between(&trace, 1001, 1002);
    let mut expected = vec!["mprotect", "mlock", "mmap"];
    if common::promises().dump_exclusion {
        expected.push("madvise(MADV_DONTDUMP)");
    }
    expected.push(match common::default_fork() {
        lockedmem::ForkPolicy::Wipe => "madvise(MADV_WIPEONFORK)",
        _ => "madvise(MADV_DONTFORK)",
    });
    assert_eq!(cold, expected, "cold path:\n{trace}");
    // Warm: 100 boxes from the cache, no system call at all.
    assert_eq!(
        calls_between(&trace, 1003, 1004),
        Vec::<String>::new(),
        "warm path"
    );
    // Packed, page already open: no system call either.
    assert_eq!(
        calls_between(&trace, 1004, 1005),
        Vec::<String>::new(),
        "packed path"
    );
    // Sealed: each of the 10 borrow-read-drop cycles costs two mprotect
    // calls (readable, then PROT_NONE again), and nothing else.
    assert_eq!(
        calls_between(&trace, 1006, 1007),
        vec!["mprotect"; 20],
        "expected exactly 20 mprotect calls and nothing else for 10 sealed borrow-read-drop \
         cycles"
    );
    // A borrow while another is out costs no system call.
    assert_eq!(
        calls_between(&trace, 1008, 1009),
        Vec::<String>::new(),
        "expected no system call for 100 nested borrows while an outer borrow is out"
    );
}
