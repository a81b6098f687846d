//! Second reading of the last wipe (issue 10): signals that land while a
//! thread is inside the crate, two signals at once, panics in awkward
//! places, a fork child, many mappings. Each test runs children of this
//! binary, traced with ptrace as in tests/last_wipe.rs, and checks that the
//! child dies of the expected signal within a timeout with no secret left
//! in its memory at the point of death.
//!
//! `LOCKEDBOX_REVIEW_RUNS` sets how many runs each stress test makes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::memscan::{self, Masked};
use common::skip;
use lockedbox::{Backing, ForkPolicy, Isolation, LockedBox, LockedVec, Options};

const CHILD_VAR: &str = "LOCKEDBOX_TEST_CHILD";
const SEED_VAR: &str = "LOCKEDBOX_LAST_WIPE_SEED";
const READY: &str = "LAST-WIPE-READY";

/// Bytes of each secret, and of each needle.
const LEN: usize = 48;

/// Secrets held for good by the child (kinds `HELD + n`).
const HELD: u64 = 0x10;
/// Secrets the churning threads make and drop (kinds `CHURN + t`).
const CHURN: u64 = 0x40;
/// The pattern the child keeps in ordinary heap memory on purpose.
const CONTROL: u64 = 0xc0;

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

fn runs(default: usize) -> usize {
    std::env::var("LOCKEDBOX_REVIEW_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap();
    u64::from_ne_bytes(b) | 1
}

fn can_trace() -> bool {
    // SAFETY: PTRACE_PEEKUSER on pid 0 is invalid and only probes that the
    // call exists (seccomp).
    let rc = unsafe { libc::ptrace(libc::PTRACE_PEEKUSER, 0, 0, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    if rc == -1 && matches!(errno, Some(libc::ENOSYS) | Some(libc::EPERM)) {
        skip("ptrace is not allowed here");
        return false;
    }
    true
}

/// The child process, attached to with ptrace.
struct Traced {
    child: Child,
    pid: i32,
    tids: Vec<i32>,
    stdin: Option<ChildStdin>,
    /// Threads the child reported as its long-lived workers.
    workers: Vec<i32>,
    /// The secrets, unmasked, to locate any left at death (diagnostics).
    plains: Vec<Vec<u8>>,
}

fn spawn(test: &str, seed: u64, env: &[(&str, String)]) -> Traced {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_VAR, test)
        .env(SEED_VAR, seed.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let mut tids = Vec::new();
    loop {
        line.clear();
        assert_ne!(
            lines.read_line(&mut line).unwrap(),
            0,
            "the child ended before it was ready"
        );
        if let Some(tid) = line.trim_end().strip_prefix("TID ") {
            tids.push(tid.parse().unwrap());
        }
        if line.trim_end().ends_with(READY) {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    let pid = i32::try_from(child.id()).unwrap();
    let stdin = child.stdin.take();
    Traced {
        child,
        pid,
        tids: Vec::new(),
        stdin,
        workers: tids,
        plains: Vec::new(),
    }
}

impl Traced {
    /// `PTRACE_SEIZE` with `PTRACE_O_TRACEEXIT` on every thread there now;
    /// threads they create later are traced too (`PTRACE_O_TRACECLONE`).
    fn seize_all(&mut self) {
        for entry in std::fs::read_dir(format!("/proc/{}/task", self.pid)).unwrap() {
            let tid: i32 = entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_TRACECLONE;
            // SAFETY: attaches to a thread of our own child.
            let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, opts as libc::c_long) };
            if rc == 0 {
                self.tids.push(tid);
            }
        }
    }

    fn threads(&self) -> Vec<i32> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn go(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
    }

    fn kill(&self, sig: i32) {
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    /// Sends `sig` to thread `tid` of the child (tgkill).
    fn tkill(&self, tid: i32, sig: i32) {
        // SAFETY: signals a thread of our own child.
        unsafe { libc::syscall(libc::SYS_tgkill, self.pid, tid, sig) };
    }

    /// Detaches from every thread and prints their stacks (gdb).
    fn dump_stacks(&mut self) {
        for &tid in &self.tids {
            // SAFETY: stops and detaches a tracee of ours.
            // SAFETY: stops a tracee of ours.
            unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
            for _ in 0..100 {
                let mut st = 0;
                // SAFETY: waits for a tracee of ours; `st` is ours.
                if unsafe { libc::waitpid(tid, &raw mut st, libc::__WALL | libc::WNOHANG) } != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // SAFETY: detaches a tracee of ours.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
        }
        let out = Command::new("timeout")
            .args([
                "60",
                "gdb",
                "-p",
                &self.pid.to_string(),
                "-batch",
                "-ex",
                "thread apply all bt",
            ])
            .output();
        if let Ok(out) = out {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }

    /// As in tests/last_wipe.rs, also following threads made meanwhile.
    fn until_death(
        &mut self,
        needles: &[&Masked],
        timeout: Duration,
    ) -> Result<(Vec<usize>, Option<i32>), String> {
        let deadline = Instant::now() + timeout;
        if self.tids.is_empty() {
            // Not traced: only whether and how it dies.
            use std::os::unix::process::ExitStatusExt;
            while Instant::now() < deadline {
                if let Some(st) = self.child.try_wait().unwrap() {
                    return Ok((vec![0; needles.len()], st.signal()));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if std::env::var_os("LOCKEDBOX_REVIEW_KEEP").is_some() {
                eprintln!("HUNG: pid {} left alive", self.pid);
                std::thread::sleep(Duration::from_secs(600));
            }
            self.kill(libc::SIGKILL);
            let _ = self.child.wait();
            return Err(format!("the untraced child did not die within {timeout:?}"));
        }
        let mut counts = None;
        let mut status = None;
        while status.is_none() {
            if Instant::now() > deadline {
                let stacks = std::fs::read_dir(format!("/proc/{}/task", self.pid))
                    .map(|d| {
                        d.filter_map(|e| {
                            let p = e.ok()?.path();
                            let wchan = std::fs::read_to_string(p.join("wchan")).ok()?;
                            let stat = std::fs::read_to_string(p.join("stat")).ok()?;
                            Some(format!("{wchan} {stat}"))
                        })
                        .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
                    .unwrap_or_default();
                let tasks: Vec<String> = self
                    .threads()
                    .into_iter()
                    .map(|t| {
                        let d = format!("/proc/{}/task/{t}", self.pid);
                        let stat = std::fs::read_to_string(format!("{d}/stat")).unwrap_or_default();
                        let state = stat
                            .rsplit(')')
                            .next()
                            .unwrap_or("")
                            .split_whitespace()
                            .next()
                            .unwrap_or("?")
                            .to_owned();
                        let wchan =
                            std::fs::read_to_string(format!("{d}/wchan")).unwrap_or_default();
                        let sys =
                            std::fs::read_to_string(format!("{d}/syscall")).unwrap_or_default();
                        format!("{t} {state} {wchan} [{}]", sys.trim())
                    })
                    .collect();
                let tids = self.tids.clone();
                eprintln!("TIMEOUT: tids {tids:?} tasks {tasks:?}\n{status}");
                if std::env::var_os("LOCKEDBOX_REVIEW_GDB").is_some() {
                    self.dump_stacks();
                }
                self.kill(libc::SIGKILL);
                let _ = self.child.wait();
                return Err(format!(
                    "the child did not die within {timeout:?} (killed; scanned at exit: \
                     {counts:?}; threads: {stacks:#?})"
                ));
            }
            let mut any = false;
            // Threads made meanwhile whose clone event was not seen (a
            // thread seized while inside clone(2)).
            for t in self.threads() {
                if !self.tids.contains(&t) {
                    self.tids.push(t);
                }
            }
            for tid in self.tids.clone() {
                let mut st = 0;
                // SAFETY: waits for a tracee of ours; `st` is ours.
                let r = unsafe { libc::waitpid(tid, &raw mut st, libc::WNOHANG | libc::__WALL) };
                if r == 0 {
                    continue;
                }
                any = true;
                if r < 0 {
                    if !std::path::Path::new(&format!("/proc/{}/task/{tid}", self.pid)).exists() {
                        self.tids.retain(|&t| t != tid);
                    }
                    continue;
                }
                if libc::WIFSTOPPED(st) {
                    let event = (st >> 16) & 0xff;
                    let inject = if event == libc::PTRACE_EVENT_EXIT {
                        let mut code: libc::c_ulong = 0;
                        // SAFETY: asks for the exit status into `code`.
                        unsafe {
                            libc::ptrace(libc::PTRACE_GETEVENTMSG, tid, 0, &raw mut code);
                        }
                        // Only the death of the process (by a signal), not a
                        // thread of the child returning normally.
                        if counts.is_none() && code & 0x7f != 0 {
                            let c = memscan::count_in(self.pid, tid, needles);
                            for (i, n) in c.iter().enumerate().take(self.plains.len()) {
                                if *n > 0 {
                                    let at = locate(self.pid, tid, &self.plains[i]);
                                    eprintln!("needle {i}: {at:#?}");
                                }
                            }
                            counts = Some(c);
                        }
                        0
                    } else if event == libc::PTRACE_EVENT_CLONE {
                        let mut new: libc::c_ulong = 0;
                        // SAFETY: asks for the new thread's id into `new`.
                        unsafe {
                            libc::ptrace(libc::PTRACE_GETEVENTMSG, tid, 0, &raw mut new);
                        }
                        self.tids.push(i32::try_from(new).unwrap());
                        0
                    } else if event != 0 || libc::WSTOPSIG(st) == libc::SIGSTOP {
                        // Events, and the stop a new traced thread starts in.
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
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let counts = counts.ok_or("no exit stop was seen")?;
        Ok((counts, status.flatten()))
    }
}

/// Kinds whose secrets must be gone at death, in every stress child.
fn kinds() -> Vec<u64> {
    (0..4)
        .map(|n| HELD + n)
        .chain((0..4).map(|t| CHURN + t))
        .collect()
}

/// Secrets held for good, of each isolation, one of them sealed and
/// borrowed, so that the scan has something to miss.
fn hold(seed: u64) {
    let page = Options::new()
        .isolation(Isolation::Page)
        .new_with(fill(seed, HELD))
        .unwrap();
    let packed = Options::new()
        .isolation(Isolation::Packed)
        .new_with(fill(seed, HELD + 1))
        .unwrap();
    let mut vec = LockedVec::<u8>::new();
    for i in 0..LEN {
        vec.try_push(std::hint::black_box(secret_byte(seed, HELD + 2, i)))
            .unwrap();
    }
    let sealed = Box::leak(Box::new(
        LockedBox::<[u8; LEN]>::new_with(fill(seed, HELD + 3))
            .unwrap()
            .seal()
            .unwrap(),
    ));
    std::mem::forget(sealed.borrow());
    std::mem::forget((page, packed, vec));
}

/// A reader that yields the secret of `kind` a few bytes at a time.
struct Secret {
    seed: u64,
    kind: u64,
    at: usize,
    total: usize,
}

impl Read for Secret {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.total - self.at);
        for b in &mut buf[..n] {
            *b = std::hint::black_box(secret_byte(self.seed, self.kind, self.at % LEN));
            self.at += 1;
        }
        Ok(n)
    }
}

/// What a churning thread does, again and again.
fn churn_once(scenario: &str, seed: u64, t: u64, n: &mut u64) {
    let kind = CHURN + t;
    *n = n.wrapping_add(1);
    match scenario {
        "trim" => {
            if t == 0 {
                lockedbox::trim();
            } else {
                let boxes: Vec<_> = (0..8)
                    .map(|i| {
                        Options::new()
                            .isolation(if i % 2 == 0 {
                                Isolation::Page
                            } else {
                                Isolation::Packed
                            })
                            .new_with(fill(seed, kind))
                            .unwrap()
                    })
                    .collect();
                drop(boxes);
            }
        }
        "thread_exit" => {
            std::thread::spawn(move || {
                let a = Options::new()
                    .isolation(Isolation::Page)
                    .new_with(fill(seed, kind))
                    .unwrap();
                let b = Options::new()
                    .isolation(Isolation::Packed)
                    .new_with(fill(seed, kind))
                    .unwrap();
                drop((a, b));
                let _keep = LockedBox::<[u8; LEN]>::new_with(fill(seed, kind)).unwrap();
            })
            .join()
            .unwrap();
        }
        "sealed" => {
            let mut s = LockedBox::<[u8; LEN]>::new_with(fill(seed, kind))
                .unwrap()
                .seal()
                .unwrap();
            for _ in 0..16 {
                {
                    let r = s.borrow();
                    *n = n.wrapping_add(u64::from(r[0] ^ r[LEN - 1]));
                }
                {
                    let mut w = s.borrow_mut();
                    w[0] ^= 1;
                    w[0] ^= 1;
                }
            }
        }
        "vec_growth" => {
            let mut v = LockedVec::<u8>::new();
            for i in 0..(LEN * 1500) {
                v.try_push(std::hint::black_box(secret_byte(seed, kind, i % LEN)))
                    .unwrap();
            }
        }
        "read_from" => {
            let v = LockedVec::read_from(
                Secret {
                    seed,
                    kind,
                    at: 0,
                    total: LEN * 3000,
                },
                usize::MAX,
            )
            .unwrap();
            *n = n.wrapping_add(v.len() as u64);
        }
        "packed_slabs" => {
            let boxes: Vec<_> = (0..300)
                .map(|_| {
                    Options::new()
                        .isolation(Isolation::Packed)
                        .new_with(fill(seed, kind))
                        .unwrap()
                })
                .collect();
            drop(boxes);
            lockedbox::trim();
        }
        "secretmem" => {
            let boxes: Vec<_> = (0..4)
                .map(|i| {
                    Options::new()
                        .backing(Backing::SecretMem)
                        .isolation(if i % 2 == 0 {
                            Isolation::Page
                        } else {
                            Isolation::Packed
                        })
                        .new_with(fill(seed, kind))
                        .unwrap()
                })
                .collect();
            drop(boxes);
            if *n % 8 == 0 {
                lockedbox::trim();
            }
        }
        "fork_exclude" => {
            let b = Options::new()
                .fork(ForkPolicy::Exclude)
                .isolation(if *n % 2 == 0 {
                    Isolation::Page
                } else {
                    Isolation::Packed
                })
                .new_with(fill(seed, kind))
                .unwrap();
            drop(b);
        }
        other => panic!("no scenario {other}"),
    }
}

/// The stress child: secrets held for good, three threads churning in
/// `scenario`; SIGTERM and SIGINT do the last wipe.
fn stress_child(scenario: &'static str) -> ! {
    let seed = seed();
    lockedbox::wipe_on_signals(&[libc::SIGTERM, libc::SIGINT]).unwrap();
    leave_control(seed);
    hold(seed);
    let started = Arc::new(Barrier::new(4));
    for t in 0..3 {
        let started = Arc::clone(&started);
        std::thread::spawn(move || {
            println!("TID {}", rustix::thread::gettid().as_raw_nonzero());
            let mut n = 0;
            churn_once(scenario, seed, t, &mut n);
            started.wait();
            loop {
                churn_once(scenario, seed, t, &mut n);
            }
        });
    }
    started.wait();
    ready();
    rest_forever();
}

/// The parent: `runs` children of `name`, each sent `signals` (one per
/// listed thread choice) after a random delay; each must die of one of
/// them within the timeout with no secret left.
fn stress(name: &str, signals: &[i32], runs: usize) {
    let mut took = Vec::new();
    for run in 0..runs {
        let seed = random_seed();
        let kinds = kinds();
        let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
        needles.push(needle(seed, CONTROL));
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(name, seed, &[]);
        if std::env::var_os("LOCKEDBOX_REVIEW_NOTRACE").is_none() {
            child.seize_all();
        }
        child.plains = kinds
            .iter()
            .map(|&k| (0..LEN).map(|i| secret_byte(seed, k, i)).collect())
            .collect();
        let delay = Duration::from_micros(seed % 30_000);
        std::thread::sleep(delay);
        // Aim each signal at a churning thread (not the idle main one, which
        // the kernel would pick for a process-directed signal).
        let tids = child.workers.clone();
        let sent = Instant::now();
        for (i, &sig) in signals.iter().enumerate() {
            let pick = usize::try_from(seed >> 8 & 0xffff).unwrap();
            let tid = tids[pick.wrapping_add(i) % tids.len()];
            child.tkill(tid, sig);
        }
        let (after, died_of) = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{name} run {run} (delay {delay:?}): {e}"));
        took.push(sent.elapsed());
        let left: Vec<(u64, usize)> = kinds
            .iter()
            .zip(&after)
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (*k, *n))
            .collect();
        assert!(
            left.is_empty(),
            "{name} run {run} (delay {delay:?}): secrets (kind, copies) left: {left:?}"
        );
        assert!(
            child.tids.is_empty() || after[kinds.len()] >= 1,
            "{name} run {run}: control not seen at death"
        );
        assert!(
            died_of.is_some_and(|s| signals.contains(&s)),
            "{name} run {run} (delay {delay:?}): died of {died_of:?}, not one of {signals:?}"
        );
        drop(child.child.stdin.take());
        let _ = child.child.wait();
    }
    let max = took.iter().max();
    eprintln!("{name}: {runs} runs, slowest signal to death {max:?}");
}

macro_rules! stress_test {
    ($name:ident, $scenario:literal, $signals:expr) => {
        #[test]
        fn $name() {
            if in_child(stringify!($name)) {
                stress_child($scenario);
            }
            if !can_trace() {
                return;
            }
            stress(stringify!($name), &$signals, runs(6));
        }
    };
}

stress_test!(sigterm_during_trim, "trim", [libc::SIGTERM]);
stress_test!(sigterm_during_thread_exit, "thread_exit", [libc::SIGTERM]);
stress_test!(sigterm_during_sealed_borrows, "sealed", [libc::SIGTERM]);
stress_test!(sigterm_during_vec_growth, "vec_growth", [libc::SIGTERM]);
stress_test!(sigterm_during_read_from, "read_from", [libc::SIGTERM]);
stress_test!(sigterm_during_packed_slabs, "packed_slabs", [libc::SIGTERM]);
stress_test!(sigterm_during_secretmem, "secretmem", [libc::SIGTERM]);
stress_test!(
    sigterm_during_exclude_churn,
    "fork_exclude",
    [libc::SIGTERM]
);
stress_test!(
    sigterm_and_sigint_on_two_threads,
    "trim",
    [libc::SIGTERM, libc::SIGINT]
);

/// Where the needle is in the memory of thread `tid` of `pid`: each hit's
/// address and the maps line and smaps flags of its mapping.
fn locate(pid: i32, tid: i32, plain: &[u8]) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    let dir = format!("/proc/{pid}/task/{tid}");
    let maps = std::fs::read_to_string(format!("{dir}/maps")).unwrap();
    let mem = std::fs::File::open(format!("{dir}/mem")).unwrap();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let (a, b) = line
            .split_whitespace()
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let (start, end) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        if line.ends_with("[vsyscall]") || end - start > 1 << 30 {
            continue;
        }
        let mut buf = vec![0u8; end - start];
        if mem.read_exact_at(&mut buf, start as u64).is_err() {
            continue;
        }
        for (i, w) in buf.windows(LEN).enumerate() {
            if w == plain {
                let page = (start + i) & !4095;
                let pm = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
                let mut e = [0u8; 8];
                let _ = pm.read_exact_at(&mut e, (page / 4096 * 8) as u64);
                hits.push(format!(
                    "{:#x} in {line} pagemap {:#x}",
                    start + i,
                    u64::from_ne_bytes(e)
                ));
            }
        }
    }
    hits
}

/// The present `SIGSEGV` handler.
fn segv_handler() -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is valid; it only receives the old one.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the disposition only; `old` is ours.
    unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &raw mut old) };
    old.sa_sigaction
}

/// Whether the last wipe has begun: it installs its own `SIGSEGV` handler
/// first thing.
fn wipe_began(before: libc::sighandler_t) -> bool {
    segv_handler() != before
}

/// A thread that is inside read(2) into a box when the wipe begins, and
/// keeps reading (a server receiving a key on a socket): the kernel writes
/// into the box whenever it is writable, and gets `EFAULT`, not a fault,
/// while it is not, so the thread is never stopped. The wipe makes each run
/// read-write while it zeroes it: data that lands there after the zeros is
/// left in the process as it dies.
#[test]
fn a_read_into_a_box_does_not_land_behind_the_wipe() {
    const NAME: &str = "a_read_into_a_box_does_not_land_behind_the_wipe";
    const BOX: usize = 1 << 20;
    if in_child(NAME) {
        let seed = seed();
        leave_control(seed);
        // The secret waits in a pipe (kernel memory), written a byte at a
        // time, so that no copy of it is in the process.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        for i in 0..60_000 {
            let b = [secret_byte(seed, CHURN, i % LEN)];
            // SAFETY: writes one byte from `b` to our pipe.
            assert_eq!(unsafe { libc::write(fds[1], b.as_ptr().cast(), 1) }, 1);
        }
        let before = segv_handler();
        let mut boxed = LockedBox::<[u8]>::new_zeroed_slice(BOX).unwrap();
        // Every page resident, so that the wipe zeroes all of it.
        boxed.fill(1);
        let at = boxed.as_mut_ptr() as usize;
        std::mem::forget(boxed);
        let reader = std::thread::spawn(move || {
            while !wipe_began(before) {
                std::hint::spin_loop();
            }
            loop {
                // SAFETY: reads into the box (the kernel checks the
                // protection: `EFAULT` while it is not writable).
                unsafe { libc::read(fds[0], at as *mut libc::c_void, LEN) };
            }
        });
        drop(reader);
        ready();
        wait_for_go();
        lockedbox::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .unwrap();
    for run in 0..runs(3) {
        let seed = random_seed();
        let needles = [needle(seed, CHURN), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        child.seize_all();
        child.plains = vec![(0..LEN).map(|i| secret_byte(seed, CHURN, i)).collect()];
        child.go();
        let (after, died_of) = child.until_death(&refs, Duration::from_secs(20)).unwrap();
        assert_eq!(
            after[0], 0,
            "run {run}: the secret read into the box after the wipe began is left at death"
        );
        assert!(after[1] >= 1, "run {run}: control not seen at death");
        assert_eq!(died_of, Some(libc::SIGABRT), "run {run}");
    }
}
