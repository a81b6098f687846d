//! A required lock that takes room from best-effort pages does not give it
//! back a moment later, only to take it again: secrets loaded one by one
//! through a temporary that requires its lock (a `LockedString` holding
//! the text) into packed `BestEffort` boxes under a 64 KiB limit, without
//! `CAP_IPC_LOCK`, cost a bounded number of mlock(2) and munlock(2) calls,
//! whatever their number. Counted from outside by strace(1).
// Linux only: drops CAP_IPC_LOCK, a Linux capability.
#![cfg(target_os = "linux")]

mod common;

use common::child;
use lockedmem::{Isolation, LockPolicy, LockedBox, LockedString, Options};

const CHILD_VAR: &str = "LOCKEDMEM_TEST_CHILD";
const TOKENS: usize = 3000;

fn marker(n: i32) {
    // SAFETY: closing an invalid descriptor only returns EBADF.
    unsafe { libc::close(-n) };
}

/// The token `i` as hex text, as a service reads it.
fn token_text(i: usize) -> String {
    (0..32)
        .map(|j| format!("{:02x}", (i * 31 + j * 7) % 251))
        .collect()
}

/// Loads `TOKENS` tokens: each through a temporary `LockedString` (which
/// requires its lock) into a packed best-effort box, kept.
fn load() -> Vec<LockedBox<[u8; 32]>> {
    let opts = Options::new()
        .isolation(Isolation::Packed)
        .lock(LockPolicy::BestEffort);
    let mut kept = Vec::with_capacity(TOKENS);
    for i in 0..TOKENS {
        let mut text = LockedString::new();
        text.try_push_str(&token_text(i))
            .expect("a required lock for the temporary");
        let mut b = opts.zeroed::<[u8; 32]>().expect("a best-effort box");
        for (k, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * k..2 * k + 2], 16).expect("hex");
        }
        kept.push(b);
        drop(text);
    }
    kept
}

/// (failing mlock calls, munlock calls) the child's test thread made
/// between `close(-1001)` and `close(-1002)`.
fn count(trace: &str) -> (usize, usize, usize) {
    let start = trace
        .lines()
        .find(|l| l.contains("close(-1001)"))
        .expect("start marker");
    let tid = start.split_whitespace().next().unwrap().to_owned();
    let lines: Vec<&str> = trace
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(tid.as_str()))
        .skip_while(|l| !l.contains("close(-1001)"))
        .take_while(|l| !l.contains("close(-1002)"))
        .collect();
    let call = |l: &&str, name: &str| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|c| c.starts_with(name))
    };
    let mlock = lines.iter().filter(|l| call(l, "mlock(")).count();
    let failed = lines
        .iter()
        .filter(|l| call(l, "mlock(") && l.contains("= -1"))
        .count();
    let munlock = lines.iter().filter(|l| call(l, "munlock(")).count();
    (mlock, failed, munlock)
}

#[test]
fn a_required_temporary_does_not_churn_best_effort_locks() {
    const NAME: &str = "a_required_temporary_does_not_churn_best_effort_locks";
    if std::env::var(CHILD_VAR).as_deref() == Ok(NAME) {
        common::become_unprivileged(64 * 1024);
        marker(1001);
        let kept = load();
        marker(1002);
        let locked = |kept: &[LockedBox<[u8; 32]>]| kept.iter().filter(|b| b.is_locked()).count();
        let before = locked(&kept);
        println!("{before} of {TOKENS} locked; {:?}", lockedmem::stats());
        assert!(before > 0, "expected some tokens on locked pages");
        // Required locks still come first: two pages more, now.
        let big = LockedBox::<[u8; 5000]>::new_zeroed()
            .expect("a required lock takes room from best-effort pages");
        assert!(big.is_locked());
        drop(big);
        // `trim` gives the room kept for required locks back to the
        // best-effort pages: the limit is full of tokens again.
        lockedmem::trim();
        let after = locked(&kept);
        println!(
            "after trim: {after} of {TOKENS} locked; {:?}",
            lockedmem::stats()
        );
        assert_eq!(
            after * 32 * 2,
            64 * 1024,
            "expected every locked page to hold tokens after trim ({:?})",
            lockedmem::stats()
        );
        common::child::exit(0);
    }
    let Some((out, trace)) = common::strace::trace_child(NAME, NAME, "mlock,munlock,close") else {
        return;
    };
    child::assert_success(&out);
    let (mlock, failed, munlock) = count(&trace);
    println!(
        "{TOKENS} tokens: {mlock} mlock ({failed} failing), {munlock} munlock; child: {}",
        child::stdout(&out)
            .lines()
            .find(|l| l.contains("locked;"))
            .unwrap_or("")
    );
    // Filling the limit costs one refusal per kind of page that meets it
    // (the temporary's, a packed page's) and a handful more as the limit
    // is found; no number of tokens adds to that.
    assert!(
        failed <= 8 && munlock <= 8,
        "expected a bounded number of refused mlock and of munlock calls for {TOKENS} tokens \
         loaded through a temporary that requires its lock; got {failed} refused mlock (of \
         {mlock}) and {munlock} munlock"
    );
}
