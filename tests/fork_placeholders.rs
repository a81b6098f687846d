//! A fork(2) child's view of memory its parent excluded from it
//! (`ForkPolicy::Exclude`, `Backing::SecretMem`), reached through raw
//! pointers (`LockedAlloc` blocks in an `allocator_api2` vector): every
//! excluded range holds an inaccessible placeholder, so nothing else is
//! mapped there and every touch dies by `SIGSEGV`.
//!
//! Seen from outside: the parent reads the stopped fork child's
//! /proc/PID/maps, the child reports where an mmap(2) with a hint at the
//! range landed, and the parent sees the child die of the signal. Each
//! test runs in a child process of its own (`child::run`), whose fork
//! child only makes system calls and touches memory before it dies or
//! `_exit`s (but for the test that drops the blocks there).
// Linux only: reads the fork child's /proc/PID/maps.
#![cfg(target_os = "linux")]
#![cfg(feature = "allocator-api2")]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use allocator_api2::vec::Vec as AVec;
use common::child;
use lockedmem::{Backing, ForkPolicy, Isolation, LockPolicy, LockedAlloc};

fn page() -> usize {
    common::page_size()
}

/// The permissions of the mapping of process `pid` that holds `addr`, from
/// /proc/PID/maps; `None` if nothing is mapped there.
fn perms_in(pid: i32, addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (lo, hi) = f.next()?.split_once('-')?;
        let lo = usize::from_str_radix(lo, 16).ok()?;
        let hi = usize::from_str_radix(hi, 16).ok()?;
        (lo..hi)
            .contains(&addr)
            .then(|| f.next().map(str::to_owned))?
    })
}

/// A block of `len` bytes, filled, in a vector of the allocator.
struct Block {
    what: &'static str,
    vec: AVec<u8, LockedAlloc>,
}

impl Block {
    fn new(what: &'static str, alloc: LockedAlloc, len: usize) -> Self {
        let mut vec = AVec::with_capacity_in(len, alloc);
        vec.resize(len, 0x5a);
        Block { what, vec }
    }

    fn first(&self) -> usize {
        self.vec.as_ptr() as usize
    }

    fn last(&self) -> usize {
        self.first() + self.vec.len() - 1
    }
}

/// The excluded blocks of each kind: page-isolated (a slab), large (a
/// mapping of its own), packed, and secret memory where the build has it.
fn blocks() -> Vec<Block> {
    let excluded =
        |isolation| LockedAlloc::with(LockPolicy::Require, ForkPolicy::Exclude, isolation);
    let mut b = vec![
        Block::new("page", excluded(Isolation::Page), 10_000),
        Block::new("large", excluded(Isolation::Page), 300 * 1024),
        Block::new("packed", excluded(Isolation::Packed), 100),
    ];
    // (Where the build has no secret memory, `available` checks the
    // fallback instead.)
    if common::secretmem::available() {
        b.push(Block::new(
            "secret",
            LockedAlloc::new().backing(Backing::SecretMem),
            10_000,
        ));
    }
    b
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just made and are ours alone.
    let rx = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let tx = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    (rx, tx)
}

/// What the fork child does after the parent has looked at its maps.
#[derive(Clone, Copy)]
enum Then {
    /// mmap(2) a page with a hint at `hint`, write where it landed to the
    /// pipe, then read the byte at `touch`.
    HintThenTouch { hint: usize, touch: usize },
    /// Drop the blocks (the child's copy of them), stop again for the
    /// parent to look, then `_exit(0)`.
    Drop,
}

/// Kills the fork child if the parent panics while it is stopped, so that
/// it does not hold the test's output pipes open for good.
struct KillOnPanic(i32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: signals the fork child this test made.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// Forks. The child stops itself (`SIGSTOP`) for the parent to read its
/// maps with `look`, then does `then`. Returns what the child wrote to the
/// pipe and the wait status it ended with.
fn fork_and(blocks: Vec<Block>, look: &dyn Fn(i32, &str), then: Then) -> (Vec<u8>, i32) {
    let (rx, tx) = pipe();
    // SAFETY: the process (a `child::run` child) has libtest's main thread
    // besides this one, blocked waiting for this test; the fork child makes
    // only system calls and volatile reads (and, for `Then::Drop`, drops
    // the blocks, which takes no lock another thread could hold) and ends
    // by `_exit` or a signal.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: raise(3) and the calls below are async-signal-safe.
        unsafe { libc::raise(libc::SIGSTOP) };
        match then {
            Then::HintThenTouch { hint, touch } => {
                // SAFETY: a fresh private mapping, the address only a hint.
                let got = unsafe {
                    libc::mmap(
                        hint as *mut libc::c_void,
                        page(),
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                } as usize;
                let bytes = got.to_ne_bytes();
                // SAFETY: writes 8 bytes from a local array to the pipe.
                unsafe { libc::write(tx.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                let p = std::ptr::with_exposed_provenance::<u8>(touch);
                // SAFETY: deliberately not: the range does not exist in
                // this child; the read is what the test is about.
                let _ = unsafe { p.read_volatile() };
                // SAFETY: ends the child without running the parent's
                // atexit handlers.
                unsafe { libc::_exit(3) };
            }
            Then::Drop => {
                drop(blocks);
                // SAFETY: as above.
                unsafe { libc::raise(libc::SIGSTOP) };
                // SAFETY: as above.
                unsafe { libc::_exit(0) };
            }
        }
    }
    drop(tx);
    let _reap = KillOnPanic(pid);
    let wait = |options| {
        let mut status = 0;
        // SAFETY: waiting for the child just made.
        let r = unsafe { libc::waitpid(pid, &raw mut status, options) };
        assert_eq!(r, pid, "waitpid");
        status
    };
    let stopped = |status: i32| libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP;
    assert!(stopped(wait(libc::WUNTRACED)), "the fork child stops");
    look(pid, "right after fork(2)");
    // SAFETY: signals the child just made.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let mut status = wait(libc::WUNTRACED);
    if stopped(status) {
        look(pid, "after the fork child dropped the blocks");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        status = wait(0);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(rx), &mut out).expect("read the pipe");
    std::mem::forget(blocks); // the parent's, dropped by the caller's copy
    (out, status)
}

/// Each excluded block's first and last byte, and the pages around it, are
/// in `---p` mappings of the stopped fork child.
fn assert_placeholders(pid: i32, when: &str, ranges: &[(&'static str, usize, usize)]) {
    for &(what, first, last) in ranges {
        for addr in [first, last, first - 1, last + 1] {
            assert_eq!(
                perms_in(pid, addr).as_deref(),
                Some("---p"),
                "{when}: the fork child has no placeholder at {addr:#x} ({what} block \
                 {first:#x}..={last:#x})"
            );
        }
    }
}

#[test]
fn each_excluded_range_is_an_inaccessible_placeholder_in_a_fork_child() {
    let out = child::run(
        "each_excluded_range_is_an_inaccessible_placeholder_in_a_fork_child",
        || {
            let kinds = blocks().len();
            for k in 0..kinds {
                let blocks = blocks();
                let ranges: Vec<_> = blocks
                    .iter()
                    .map(|b| (b.what, b.first(), b.last()))
                    .collect();
                for &(what, first, _) in &ranges {
                    let perms = perms_in(i32::try_from(std::process::id()).expect("pid"), first)
                        .expect("mapped");
                    assert!(
                        perms.starts_with("rw"),
                        "the parent's {what} block is {perms}"
                    );
                }
                let (what, first, last) = ranges[k];
                let hint = first & !(page() - 1);
                let look = |pid: i32, when: &str| assert_placeholders(pid, when, &ranges);
                let (landed, status) =
                    fork_and(blocks, &look, Then::HintThenTouch { hint, touch: last });
                let landed = usize::from_ne_bytes(landed.try_into().expect("8 bytes"));
                assert!(
                    landed != usize::MAX && !(hint..=last).contains(&landed),
                    "an mmap(2) with a hint at the excluded {what} block ({first:#x}) landed at \
                     {landed:#x}, inside it"
                );
                assert!(
                    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
                    "expected the fork child touching the excluded {what} block to die by \
                     SIGSEGV; wait status {status:#x}"
                );
                println!("{what}: placeholder held, hint landed at {landed:#x}, touch: SIGSEGV");
            }
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_fork_child_drops_excluded_blocks_and_keeps_the_placeholders() {
    let out = child::run(
        "a_fork_child_drops_excluded_blocks_and_keeps_the_placeholders",
        || {
            let blocks = blocks();
            let ranges: Vec<_> = blocks
                .iter()
                .map(|b| (b.what, b.first(), b.last()))
                .collect();
            let look = |pid: i32, when: &str| assert_placeholders(pid, when, &ranges);
            let (_, status) = fork_and(blocks, &look, Then::Drop);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "expected the fork child to drop the blocks and exit 0; wait status {status:#x}"
            );
        },
    );
    child::assert_success(&out);
}
