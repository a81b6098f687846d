//! The last wipe, proved from outside: each test runs a child (this test
//! binary again) that holds secrets of every kind on several threads; the
//! parent attaches to every thread of it with ptrace (`PTRACE_SEIZE`,
//! `PTRACE_O_TRACEEXIT`), makes it die (SIGTERM, a panic, a direct call),
//! and at the point of death — the exit stop of the thread that ends the
//! process, its memory still whole — reads all of the child's memory
//! through /proc/PID/task/TID/mem and counts the secrets' bytes. They must
//! be gone, while a pattern the child left in ordinary heap memory on
//! purpose must still be there (the scan sees the dying process's memory),
//! and every secret must have been found before the death (the needles are
//! right). Then the child must die of the expected signal.
//!
//! Secrets are written into the boxes a byte at a time from a generator,
//! so no copy of them exists in ordinary memory.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::memscan::{self, Masked};
use common::skip;
use lockedbox::{Isolation, LockedBox, LockedVec, Options};

const CHILD_VAR: &str = "LOCKEDBOX_TEST_CHILD";
const SEED_VAR: &str = "LOCKEDBOX_LAST_WIPE_SEED";
const READY: &str = "LAST-WIPE-READY";

/// Bytes of each secret, and of each needle.
const LEN: usize = 48;

/// What each secret is, per thread `t`: kind `t * 16 + k`.
const PAGE: u64 = 1;
const PACKED: u64 = 2;
const VEC: u64 = 3;
const ALLOC: u64 = 4;
const SEALED: u64 = 5;
/// The pattern the child keeps in ordinary heap memory on purpose.
const CONTROL: u64 = 0xc0;

/// Threads holding secrets in each child.
const THREADS: u64 = 3;

fn secret_byte(seed: u64, kind: u64, i: usize) -> u8 {
    let mut x = seed
        ^ kind.wrapping_mul(0xd134_2543_de82_ef95)
        ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    x.to_le_bytes()[0]
}

fn needle(seed: u64, kind: u64) -> Masked {
    Masked::from_fn(LEN, |i| secret_byte(seed, kind, i))
}

/// Fills `v` from the generator, a byte at a time.
fn fill(seed: u64, kind: u64) -> impl Fn(&mut [u8; LEN]) {
    move |v| {
        for (i, b) in v.iter_mut().enumerate() {
            *b = std::hint::black_box(secret_byte(seed, kind, i));
        }
    }
}

fn seed() -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("the parent passes a seed")
}

fn in_child(test: &str) -> bool {
    std::env::var(CHILD_VAR).as_deref() == Ok(test)
}

/// The ordinary-heap control pattern, kept alive for good.
fn leave_control(seed: u64) {
    let control: Vec<u8> = (0..LEN)
        .map(|i| std::hint::black_box(secret_byte(seed, CONTROL, i)))
        .collect();
    std::mem::forget(std::hint::black_box(control));
}

fn ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}").unwrap();
    out.flush().unwrap();
}

fn wait_for_go() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn rest_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// In the child: secrets of every kind on `THREADS` threads and the main
/// one, a sealed box held borrowed (a live `Ref`) by thread 0; returns once
/// all are made.
fn hold_secrets(seed: u64) {
    let sealed = Arc::new(
        LockedBox::<[u8; LEN]>::new_with(fill(seed, THREADS * 16 + SEALED))
            .unwrap()
            .seal()
            .unwrap(),
    );
    let made = Arc::new(Barrier::new(usize::try_from(THREADS).unwrap() + 1));
    for t in 0..THREADS {
        let (made, sealed) = (Arc::clone(&made), Arc::clone(&sealed));
        std::thread::spawn(move || {
            let k = t * 16;
            let page = Options::new()
                .isolation(Isolation::Page)
                .new_with(fill(seed, k + PAGE))
                .unwrap();
            let packed = Options::new()
                .isolation(Isolation::Packed)
                .new_with(fill(seed, k + PACKED))
                .unwrap();
            let mut vec = LockedVec::<u8>::new();
            for i in 0..LEN {
                vec.try_push(std::hint::black_box(secret_byte(seed, k + VEC, i)))
                    .unwrap();
            }
            #[cfg(feature = "allocator-api2")]
            let alloc = {
                let mut v =
                    allocator_api2::vec::Vec::with_capacity_in(LEN, lockedbox::LockedAlloc::new());
                for i in 0..LEN {
                    v.push(std::hint::black_box(secret_byte(seed, k + ALLOC, i)));
                }
                v
            };
            let own_sealed = LockedBox::<[u8; LEN]>::new_with(fill(seed, k + SEALED))
                .unwrap()
                .seal()
                .unwrap();
            let borrowed = (t == 0).then(|| sealed.borrow());
            made.wait();
            let _keep = (&page, &packed, &vec, &own_sealed, &borrowed);
            #[cfg(feature = "allocator-api2")]
            let _keep_alloc = &alloc;
            rest_forever();
        });
    }
    made.wait();
    std::mem::forget(sealed);
}

/// Every secret `hold_secrets` makes.
fn held_kinds() -> Vec<u64> {
    let mut kinds = vec![THREADS * 16 + SEALED];
    for t in 0..THREADS {
        let mut per = vec![PAGE, PACKED, VEC, SEALED];
        if cfg!(feature = "allocator-api2") {
            per.push(ALLOC);
        }
        kinds.extend(per.into_iter().map(|k| t * 16 + k));
    }
    kinds
}

/// The child process, attached to with ptrace.
struct Traced {
    child: Child,
    pid: i32,
    tids: Vec<i32>,
    stdin: Option<ChildStdin>,
}

/// Whether this host lets the test trace its child; otherwise skips (a
/// failure in CI).
fn can_trace() -> bool {
    // SAFETY: PTRACE_TRACEME would change this process; PTRACE_PEEKUSER on
    // pid 0 is invalid and only probes that the call exists (seccomp).
    let rc = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, 0, 0, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if rc == -1 && matches!(errno, Some(libc::ENOSYS) | Some(libc::EPERM)) {
        skip("ptrace is not allowed here");
        return false;
    }
    true
}

fn spawn(test: &str, seed: u64) -> Traced {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_VAR, test)
        .env(SEED_VAR, seed.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(
            lines.read_line(&mut line).unwrap(),
            0,
            "the child ended before it was ready"
        );
        if line.trim_end().ends_with(READY) {
            break;
        }
    }
    // Keep draining its stdout, so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    let pid = i32::try_from(child.id()).unwrap();
    let stdin = child.stdin.take();
    let mut traced = Traced {
        child,
        pid,
        tids: Vec::new(),
        stdin,
    };
    traced.seize_all();
    traced
}

impl Traced {
    /// `PTRACE_SEIZE` with `PTRACE_O_TRACEEXIT` on every thread.
    fn seize_all(&mut self) {
        for entry in std::fs::read_dir(format!("/proc/{}/task", self.pid)).unwrap() {
            let tid: i32 = entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // SAFETY: attaches to a thread of our own child; no memory of
            // ours is handed over.
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    tid,
                    0,
                    libc::PTRACE_O_TRACEEXIT as libc::c_long,
                )
            };
            assert_eq!(
                rc,
                0,
                "PTRACE_SEIZE {tid}: {}",
                std::io::Error::last_os_error()
            );
            self.tids.push(tid);
        }
    }

    fn go(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
    }

    fn kill(&self, sig: i32) {
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    /// Lets the child die, passing on every signal it gets; at the first
    /// exit stop (the thread ending the process, memory still whole) counts
    /// `needles`. Returns the counts and the signal the child died of, or
    /// an error if it did not die within `timeout` (it is killed then).
    fn until_death(
        &mut self,
        needles: &[&Masked],
        timeout: Duration,
    ) -> Result<(Vec<usize>, Option<i32>), String> {
        let deadline = Instant::now() + timeout;
        let mut counts = None;
        let mut status = None;
        while status.is_none() {
            if Instant::now() > deadline {
                self.kill(libc::SIGKILL);
                let _ = self.child.wait();
                return Err(format!(
                    "the child did not die within {timeout:?} (killed; scanned at exit: {counts:?})"
                ));
            }
            let mut any = false;
            for tid in self.tids.clone() {
                let mut st = 0;
                // SAFETY: waits for a tracee of ours; `st` is ours.
                let r = unsafe { libc::waitpid(tid, &raw mut st, libc::WNOHANG | libc::__WALL) };
                if r == 0 {
                    continue;
                }
                any = true;
                if r < 0 {
                    self.tids.retain(|&t| t != tid);
                    continue;
                }
                if libc::WIFSTOPPED(st) {
                    let event = (st >> 16) & 0xff;
                    let inject = if event == libc::PTRACE_EVENT_EXIT {
                        if counts.is_none() {
                            counts = Some(memscan::count_in(self.pid, tid, needles));
                        }
                        0
                    } else if event != 0 {
                        0
                    } else {
                        libc::WSTOPSIG(st)
                    };
                    // SAFETY: resumes a stopped tracee of ours.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0, inject as libc::c_long) };
                } else {
                    self.tids.retain(|&t| t != tid);
                    if tid == self.pid {
                        status = Some(if libc::WIFSIGNALED(st) {
                            Some(libc::WTERMSIG(st))
                        } else {
                            None
                        });
                    }
                }
            }
            if !any {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let counts = counts.ok_or("no exit stop was seen")?;
        Ok((counts, status.flatten()))
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap();
    u64::from_ne_bytes(b) | 1
}

/// The parent's side of a death test of a child holding `hold_secrets`:
/// checks that every secret is there before, none at the point of death,
/// the control pattern both times, and the signal the child died of.
fn prove(test: &str, seed: u64, death: impl FnOnce(&mut Traced), signal: i32) {
    let kinds = held_kinds();
    let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
    needles.push(needle(seed, CONTROL));
    let refs: Vec<&Masked> = needles.iter().collect();
    let mut child = spawn(test, seed);
    let before = memscan::count_in(child.pid, child.pid, &refs);
    for (k, n) in kinds.iter().zip(&before) {
        assert!(
            *n >= 1,
            "secret {k:#x} not found in the living child: the scan is blind"
        );
    }
    assert!(
        before[kinds.len()] >= 1,
        "control not found in the living child"
    );
    death(&mut child);
    let (after, died_of) = child.until_death(&refs, Duration::from_secs(20)).unwrap();
    let left: Vec<(u64, usize)> = kinds
        .iter()
        .zip(&after)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (*k, *n))
        .collect();
    assert!(
        left.is_empty(),
        "secrets (kind, copies) left at the point of death: {left:?}"
    );
    assert!(
        after[kinds.len()] >= 1,
        "the control pattern in ordinary memory was not seen at the point of death: \
         the scan did not read the dying process"
    );
    assert_eq!(
        died_of,
        Some(signal),
        "the child did not die of signal {signal}"
    );
}

/// No core file from the children that abort (their memory is scanned
/// through ptrace instead).
fn no_core() {
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .unwrap();
}

#[test]
fn sigterm_wipes_every_secret_then_kills_by_sigterm() {
    const NAME: &str = "sigterm_wipes_every_secret_then_kills_by_sigterm";
    if in_child(NAME) {
        let seed = seed();
        lockedbox::wipe_on_signals(&[libc::SIGTERM]).unwrap();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    prove(
        NAME,
        random_seed(),
        |c| c.kill(libc::SIGTERM),
        libc::SIGTERM,
    );
}

#[test]
fn a_panic_wipes_every_secret_then_aborts() {
    const NAME: &str = "a_panic_wipes_every_secret_then_aborts";
    if in_child(NAME) {
        let seed = seed();
        no_core();
        lockedbox::wipe_on_panic();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        wait_for_go();
        panic!("the test's panic");
    }
    if !can_trace() {
        return;
    }
    prove(NAME, random_seed(), Traced::go, libc::SIGABRT);
}

#[test]
fn wipe_all_and_abort_wipes_every_secret() {
    const NAME: &str = "wipe_all_and_abort_wipes_every_secret";
    if in_child(NAME) {
        let seed = seed();
        no_core();
        leave_control(seed);
        hold_secrets(seed);
        ready();
        wait_for_go();
        lockedbox::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    prove(NAME, random_seed(), Traced::go, libc::SIGABRT);
}

/// A thread of the stress child: makes, borrows and drops secrets of its
/// own pattern in a loop.
fn churn(seed: u64, t: u64) -> ! {
    let k = t * 16;
    let mut n = 0u64;
    loop {
        let page = Options::new()
            .isolation(Isolation::Page)
            .new_with(fill(seed, k + PAGE))
            .unwrap();
        let packed = Options::new()
            .isolation(Isolation::Packed)
            .new_with(fill(seed, k + PACKED))
            .unwrap();
        let mut vec = LockedVec::<u8>::new();
        for i in 0..LEN {
            vec.try_push(std::hint::black_box(secret_byte(seed, k + VEC, i)))
                .unwrap();
        }
        let sealed = LockedBox::<[u8; LEN]>::new_with(fill(seed, k + SEALED))
            .unwrap()
            .seal()
            .unwrap();
        {
            let r = sealed.borrow();
            // Two bytes, not a copy: a vector register saved in a signal
            // frame would be a copy outside the crate's memory.
            n = n.wrapping_add(u64::from(r[0] ^ r[LEN - 1]));
        }
        if n % 3 == 0 {
            drop(page);
            drop(sealed);
        } else {
            drop(vec);
            drop(packed);
        }
        std::hint::black_box(n);
    }
}

#[test]
fn sigterm_at_random_moments_under_churn() {
    const NAME: &str = "sigterm_at_random_moments_under_churn";
    if in_child(NAME) {
        let seed = seed();
        lockedbox::wipe_on_signals(&[libc::SIGTERM]).unwrap();
        leave_control(seed);
        for t in 0..THREADS {
            std::thread::spawn(move || churn(seed, t));
        }
        // Let every thread make its first secrets.
        std::thread::sleep(Duration::from_millis(20));
        ready();
        rest_forever();
    }
    if !can_trace() {
        return;
    }
    let runs = 10;
    let mut took = Vec::new();
    for run in 0..runs {
        let seed = random_seed();
        let kinds: Vec<u64> = (0..THREADS)
            .flat_map(|t| [PAGE, PACKED, VEC, SEALED].map(|k| t * 16 + k))
            .collect();
        let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
        needles.push(needle(seed, CONTROL));
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed);
        let delay = Duration::from_micros(seed % 50_000);
        std::thread::sleep(delay);
        let sent = Instant::now();
        child.kill(libc::SIGTERM);
        let (after, died_of) = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("run {run} (delay {delay:?}): {e}"));
        took.push(sent.elapsed());
        let left: Vec<(u64, usize)> = kinds
            .iter()
            .zip(&after)
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
            .collect();
        assert!(
            left.is_empty(),
            "run {run} (delay {delay:?}): secrets left: {left:?}"
        );
        assert!(
            after[kinds.len()] >= 1,
            "run {run}: control not seen at death"
        );
        assert_eq!(died_of, Some(libc::SIGTERM), "run {run} (delay {delay:?})");
        drop(child.child.stdin.take());
        let _ = child.child.try_wait().map(|s| s.map(|s| s.signal()));
    }
    eprintln!("SIGTERM to death (scan included): {took:?}");
}
