//! The system calls a box costs, counted from outside by strace(1).
//!
//! The child brackets each phase with `close(-N)` calls (harmless EBADF
//! markers that strace shows); the parent counts the memory-management calls
//! the child's thread made between them.
#![cfg(target_os = "linux")] // Linux's /proc, signals, fork or capabilities

mod common;

use std::process::Command;

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
/// `close(-to)`, by name.
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
            l.split_whitespace()
                .nth(1)?
                .split('(')
                .next()
                .map(str::to_owned)
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
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("LOCKEDMEM_REQUIRE_STRACE").is_none(),
            "strace is required (LOCKEDMEM_REQUIRE_STRACE is set) but not installed"
        );
        common::skip("strace is not installed; install it to count system calls");
        return;
    }
    let trace_file = std::env::temp_dir().join(format!("lockedmem-strace-{}", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-o"])
        .arg(&trace_file)
        .args([
            "-e",
            "trace=mmap,munmap,mprotect,madvise,mlock,munlock,mremap,close",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "each_path_makes_the_expected_calls",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "syscalls")
        .output()
        .expect("run strace");
    child::assert_success(&out);
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let _ = std::fs::remove_file(&trace_file);

    // Cold (cache off, slab already mapped): open the slot (mprotect,
    // mlock), then give it back: replace it with fresh PROT_NONE memory
    // (mmap MAP_FIXED, which unlocks and discards it) and advise that
    // (MADV_DONTDUMP, MADV_WIPEONFORK), so it merges back into the slab.
    let cold = calls_between(&trace, 1001, 1002);
    assert_eq!(
        cold,
        ["mprotect", "mlock", "mmap", "madvise", "madvise"],
        "cold path:\n{trace}"
    );
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
