//! The point-of-death harness of the last-wipe tests: a child process
//! (this test binary again) holds secrets and is made to die; the parent
//! attaches to every thread of it with ptrace (`PTRACE_SEIZE` with
//! `PTRACE_O_TRACEEXIT`, new threads followed with `PTRACE_O_TRACECLONE`)
//! and, at the exit stop of the thread that ends the process (its memory
//! still whole), scans all of the child's memory ([`memscan::scan`]):
//! secrets whole and in 16-byte fragments, and every XSAVE area of a
//! signal frame.
//!
//! Secrets are made from a seed and a kind by [`secret_byte`], written a
//! byte at a time from the generator, so no copy of them exists in
//! ordinary memory; the parent knows them masked only ([`needle`]).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::memscan::{self, Masked, Report, Target};
use super::skip;

/// Names the test a child process runs (the child protocol of
/// `common::child` too).
pub const CHILD_VAR: &str = "LOCKEDMEM_TEST_CHILD";
/// The seed of the child's secrets.
pub const SEED_VAR: &str = "LOCKEDMEM_LAST_WIPE_SEED";
/// The line a child prints once its secrets are made.
pub const READY: &str = "LAST-WIPE-READY";

/// Bytes of each secret held in a 48-byte box, and of its needle.
pub const LEN: usize = 48;

/// The pattern a child keeps in ordinary heap memory on purpose: the scan
/// must find it at death, or it did not read the dying process.
pub const CONTROL: u64 = 0xc0;

/// Byte `i` of the secret of `kind` under `seed`.
pub fn secret_byte(seed: u64, kind: u64, i: usize) -> u8 {
    let mut x = seed
        ^ kind.wrapping_mul(0xd134_2543_de82_ef95)
        ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    x.to_le_bytes()[0]
}

/// The first `len` bytes of the secret of `kind`, masked.
pub fn needle_of(seed: u64, kind: u64, len: usize) -> Masked {
    Masked::from_fn(len, |i| secret_byte(seed, kind, i))
}

/// The [`LEN`]-byte secret of `kind`, masked.
pub fn needle(seed: u64, kind: u64) -> Masked {
    needle_of(seed, kind, LEN)
}

/// Writes the secret of `kind` into a box, byte by byte.
pub fn fill<const N: usize>(seed: u64, kind: u64) -> impl Fn(&mut [u8; N]) {
    move |v| {
        for (i, b) in v.iter_mut().enumerate() {
            *b = std::hint::black_box(secret_byte(seed, kind, i));
        }
    }
}

/// In the child: the seed the parent chose.
pub fn seed() -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("the parent passes a seed")
}

/// Whether this process is the child run for `test`.
pub fn in_child(test: &str) -> bool {
    std::env::var(CHILD_VAR).as_deref() == Ok(test)
}

/// In the child: the control pattern, left in ordinary heap memory.
pub fn leave_control(seed: u64) {
    let control: Vec<u8> = (0..LEN)
        .map(|i| std::hint::black_box(secret_byte(seed, CONTROL, i)))
        .collect();
    std::mem::forget(std::hint::black_box(control));
}

/// In the child: tells the parent the secrets are made.
pub fn ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}").unwrap();
    out.flush().unwrap();
}

/// In the child: tells the parent this thread's ID (a worker the parent
/// may signal).
pub fn announce_thread() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "TID {}", rustix::thread::gettid().as_raw_nonzero()).unwrap();
    out.flush().unwrap();
}

/// Bytes of the secret [`copy_in_a_loop`] copies.
pub const COPIED: usize = 1024;

/// In the child: a thread that copies the [`COPIED`]-byte secret of `kind`
/// from one box into another in a loop (glibc's `memcpy` keeps pieces of it
/// in vector registers all along), after `prepare` (on that thread); it
/// announces itself ([`announce_thread`]) before it starts, and this
/// returns once it has.
pub fn copy_in_a_loop(seed: u64, kind: u64, prepare: fn()) {
    let from = lockedmem::LockedBox::<[u8; COPIED]>::new_with(fill::<COPIED>(seed, kind)).unwrap();
    let mut to = lockedmem::LockedBox::<[u8; COPIED]>::new_zeroed().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        prepare();
        announce_thread();
        tx.send(()).unwrap();
        loop {
            to.copy_from_slice(&from[..]);
            std::hint::black_box(&mut *to);
        }
    });
    rx.recv().unwrap();
}

/// In the child: a pipe holding `len` bytes of the secret of `kind` (the
/// [`LEN`]-byte secret over and over), written a byte at a time, so that
/// no copy of it is in the process; its read end.
pub fn secret_in_a_pipe(seed: u64, kind: u64, len: usize) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    for i in 0..len {
        let b = [secret_byte(seed, kind, i % LEN)];
        // SAFETY: writes one byte from `b` to our pipe.
        assert_eq!(unsafe { libc::write(fds[1], b.as_ptr().cast(), 1) }, 1);
    }
    fds[0]
}

/// In the child: waits for the parent's word.
pub fn wait_for_go() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

/// In the child: parks this thread for good.
pub fn rest_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// A random seed (odd).
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap();
    u64::from_ne_bytes(b) | 1
}

/// Whether this host lets the test trace its child; otherwise skips (a
/// failure in CI).
pub fn can_trace() -> bool {
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

/// No core file from a child that aborts (its memory is scanned through
/// ptrace instead).
pub fn no_core() {
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .unwrap();
}

/// The child process, every thread of it attached to with ptrace.
pub struct Traced {
    pub child: Child,
    pub pid: i32,
    tids: Vec<i32>,
    stdin: Option<ChildStdin>,
    /// Threads the child announced ([`announce_thread`]).
    pub workers: Vec<i32>,
    /// What the child printed (but the [`READY`] line).
    output: Arc<Mutex<Vec<String>>>,
    /// The thread that reads the child's stdout into `output`, until the
    /// end of the pipe.
    reader: Option<std::thread::JoinHandle<()>>,
    /// A signal to hold back from one thread ([`Traced::delay`]).
    delayed: Option<Delay>,
}

/// A signal the tracer holds back from one thread for a while before it
/// lets the thread have it.
#[derive(Debug, Clone, Copy)]
struct Delay {
    tid: i32,
    sig: i32,
    by: Duration,
}

impl Drop for Traced {
    /// A test that fails before its child died leaves no child behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_and_reap();
        }
    }
}

/// How a traced child died.
#[derive(Debug)]
pub struct Death {
    /// The scan of its memory at the exit stop.
    pub report: Report,
    /// The signal it died of, if one.
    pub signal: Option<i32>,
    /// Whether the death blow came while the signal [`Traced::delay`] held
    /// back was still held: the process was ending before that thread had
    /// even begun to handle it.
    pub blow_before_delayed: bool,
}

/// Starts the child for `test` with `seed` (and `env`), waits for it to be
/// ready and attaches to every thread of it.
pub fn spawn(test: &str, seed: u64, env: &[(&str, String)]) -> Traced {
    no_core();
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
    let mut workers = Vec::new();
    let mut before = Vec::new();
    loop {
        line.clear();
        assert_ne!(
            lines.read_line(&mut line).unwrap(),
            0,
            "the child ended before it was ready"
        );
        // libtest's "test NAME ... " has no newline: the line may follow it.
        if let Some((_, tid)) = line.trim_end().rsplit_once("TID ") {
            workers.push(tid.parse().unwrap());
        }
        if line.trim_end().ends_with(READY) {
            break;
        }
        before.push(line.trim_end().to_owned());
    }
    // Keep reading its stdout, so that it never blocks on a full pipe.
    let output = Arc::new(Mutex::new(before));
    let sink = Arc::clone(&output);
    let reader = std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    let pid = i32::try_from(child.id()).unwrap();
    let stdin = child.stdin.take();
    let mut traced = Traced {
        child,
        pid,
        tids: Vec::new(),
        stdin,
        workers,
        output,
        reader: Some(reader),
        delayed: None,
    };
    traced.seize_all();
    traced
}

impl Traced {
    /// `PTRACE_SEIZE` with `PTRACE_O_TRACEEXIT | PTRACE_O_TRACECLONE` on
    /// every thread there now; threads they create later are traced too.
    fn seize_all(&mut self) {
        for tid in self.threads() {
            let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_TRACECLONE;
            // SAFETY: attaches to a thread of our own child.
            let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, opts as libc::c_long) };
            if rc == 0 {
                self.tids.push(tid);
            } else {
                // A thread that exited meanwhile is the only excuse.
                assert!(
                    !std::path::Path::new(&format!("/proc/{}/task/{tid}", self.pid)).exists(),
                    "PTRACE_SEIZE {tid}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        assert!(self.tids.contains(&self.pid), "the main thread is traced");
    }

    /// The child's threads now.
    pub fn threads(&self) -> Vec<i32> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Scans the living child (not stopped: secrets that stay put are seen
    /// as they are).
    pub fn scan_now(&self, needles: &[&Masked]) -> Report {
        memscan::scan(
            Target::Thread {
                pid: self.pid,
                tid: self.pid,
            },
            needles,
        )
    }

    /// Asserts that every needle is in the living child, whole: a secret
    /// that was never there cannot count as wiped.
    pub fn assert_present(&self, needles: &[&Masked], what: &str) {
        let report = self.scan_now(needles);
        for (i, n) in report.full.iter().enumerate() {
            assert!(
                *n >= 1,
                "{what}: needle {i} not found before the death: the scan is blind or the \
                 secret was never made"
            );
        }
    }

    /// Writes the parent's word to the child ([`wait_for_go`]).
    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
    }

    /// Kills the child (`SIGKILL`) and reaps every traced thread of it: a
    /// traced thread is not reaped by waiting for the process, and one may
    /// still stop at its exit event, to be resumed, so `Child::wait` alone
    /// could wait for ever. Gives up after ten seconds.
    fn kill_and_reap(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tids = self.tids.clone();
        if !tids.contains(&self.pid) {
            tids.push(self.pid);
        }
        while !tids.is_empty() && Instant::now() < deadline {
            tids.retain(|&tid| {
                let mut st = 0;
                // SAFETY: waits for a tracee (or the child) of ours.
                let r = unsafe { libc::waitpid(tid, &raw mut st, libc::WNOHANG | libc::__WALL) };
                if r == 0 {
                    return true;
                }
                if r > 0 && libc::WIFSTOPPED(st) {
                    // SAFETY: resumes a stopped tracee of ours, to die.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, tid, 0, 0) };
                    return true;
                }
                false
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        self.tids.clear();
    }

    /// Holds `sig` back from thread `tid` for `by` the first time it
    /// arrives (in its signal-delivery stop), as if the thread were slow to
    /// run its handler; [`Death::blow_before_delayed`] tells whether the child
    /// began to die meanwhile.
    pub fn delay(&mut self, tid: i32, sig: i32, by: Duration) {
        self.delayed = Some(Delay { tid, sig, by });
    }

    /// Sends `sig` to the child.
    pub fn kill(&self, sig: i32) {
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0);
    }

    /// Sends `sig` to thread `tid` of the child (tgkill).
    pub fn tkill(&self, tid: i32, sig: i32) {
        // SAFETY: signals a thread of our own child.
        unsafe { libc::syscall(libc::SYS_tgkill, self.pid, tid, sig) };
    }

    /// What the child printed, so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Everything the child printed, once it is dead: waits for the end
    /// of its stdout, so that no line written just before the death is
    /// still in the pipe.
    pub fn output_at_death(&mut self) -> Vec<String> {
        assert!(
            !matches!(self.child.try_wait(), Ok(None)),
            "the child is still alive"
        );
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.output()
    }

    /// What each thread is doing, for a timeout's message.
    fn describe_threads(&self) -> Vec<String> {
        self.threads()
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
                let wchan = std::fs::read_to_string(format!("{d}/wchan")).unwrap_or_default();
                let sys = std::fs::read_to_string(format!("{d}/syscall")).unwrap_or_default();
                format!("{t} {state} {wchan} [{}]", sys.trim())
            })
            .collect()
    }

    /// Detaches from every thread and prints their stacks with gdb (when
    /// `LOCKEDMEM_TEST_GDB` is set, after a timeout).
    fn dump_stacks(&mut self) {
        for &tid in &self.tids {
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
        let pid = self.pid.to_string();
        let out = Command::new("timeout")
            .args([
                "60",
                "gdb",
                "-p",
                &pid,
                "-batch",
                "-ex",
                "thread apply all bt",
            ])
            .output();
        if let Ok(out) = out {
            eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }

    /// Whether delivering `sig` now ends the child: the child does not
    /// catch it (its handler, if it had one, put back the default action,
    /// as the last wipe does before it raises the signal again) and its
    /// default action is to end the process.
    fn is_death_blow(&self, sig: i32) -> bool {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (sig - 1)) != 0);
        let fatal = ![
            libc::SIGCHLD,
            libc::SIGCONT,
            libc::SIGURG,
            libc::SIGWINCH,
            libc::SIGSTOP,
        ]
        .contains(&sig);
        !caught && fatal
    }

    /// Whether every thread of the child but `dying` sleeps (or is gone):
    /// none runs, waits on a disk, or sits in a stop this tracer has not
    /// resumed yet. Before the death blow is delivered the harness waits
    /// for this (at most two seconds), so that whatever the other threads
    /// would still do before the process ends (a thread that faults on
    /// memory the wipe closed, and the frame the kernel writes for it) is
    /// done: the scan at death sees the slowest death, as a process whose
    /// end is delayed (a crash reporter, a busy machine) would leave it,
    /// not the quickest.
    fn others_asleep(&self, dying: i32) -> bool {
        self.threads().into_iter().filter(|&t| t != dying).all(|t| {
            let stat = std::fs::read_to_string(format!("/proc/{}/task/{t}/stat", self.pid))
                .unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("R" | "D" | "t" | "T"))
        })
    }

    /// Lets the child die, passing on every signal it gets; at the first
    /// exit stop of a thread that ends the process by a signal, scans its
    /// memory for `needles`. An error if it did not die within `timeout`
    /// (it is killed then) or no such exit stop was seen.
    pub fn until_death(&mut self, needles: &[&Masked], timeout: Duration) -> Result<Death, String> {
        let deadline = Instant::now() + timeout;
        let mut report = None;
        let mut status = None;
        // The thread stopped with the death blow, held until the others
        // sleep (see `others_asleep`), and its signal.
        let mut held: Option<(i32, i32, Instant)> = None;
        // The signal held back from the delayed thread, since when.
        let mut holding: Option<Instant> = None;
        let mut blow_before_delayed = false;
        while status.is_none() {
            if Instant::now() > deadline {
                let tasks = self.describe_threads();
                eprintln!("TIMEOUT: tids {:?} tasks {tasks:#?}", self.tids);
                if std::env::var_os("LOCKEDMEM_TEST_GDB").is_some() {
                    self.dump_stacks();
                }
                self.kill_and_reap();
                return Err(format!(
                    "the child did not die within {timeout:?} (killed; threads: {tasks:#?})"
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
                        // The death of the process by a signal, not a thread
                        // of the child returning normally.
                        if report.is_none() && code & 0x7f != 0 {
                            report = Some(memscan::scan(
                                Target::Thread { pid: self.pid, tid },
                                needles,
                            ));
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
                        let sig = libc::WSTOPSIG(st);
                        if self
                            .delayed
                            .is_some_and(|d| d.tid == tid && d.sig == sig && holding.is_none())
                        {
                            // Resumed below, once the delay is over.
                            holding = Some(Instant::now());
                            continue;
                        }
                        if held.is_none() && self.is_death_blow(sig) {
                            blow_before_delayed |= holding.is_some();
                            // Resumed below, once the others sleep.
                            held = Some((tid, sig, Instant::now()));
                            continue;
                        }
                        sig
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
            if let (Some(since), Some(d)) = (holding, self.delayed) {
                if since.elapsed() >= d.by {
                    // SAFETY: resumes a stopped tracee of ours with its signal.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, d.tid, 0, d.sig as libc::c_long) };
                    holding = None;
                    self.delayed = None;
                }
            }
            if let Some((dying, sig, since)) = held {
                let waited = since.elapsed();
                if self.others_asleep(dying) || waited > Duration::from_secs(2) {
                    if waited > Duration::from_secs(2) {
                        eprintln!(
                            "settle: threads still running after 2 s: {:#?}",
                            self.describe_threads()
                        );
                    }
                    // SAFETY: resumes a stopped tracee of ours with its signal.
                    unsafe { libc::ptrace(libc::PTRACE_CONT, dying, 0, sig as libc::c_long) };
                    held = None;
                }
            }
            if !any {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let report = report.ok_or("no exit stop of a thread ending the process by a signal")?;
        Ok(Death {
            report,
            signal: status.flatten(),
            blow_before_delayed,
        })
    }
}

/// The verdict on a death: `secrets` (indices into the needles) left
/// nowhere, neither whole nor in 16-byte fragments; the `control` needle
/// seen whole (the scan read the dying process); every XSAVE area of a
/// signal frame scrubbed, but those that hold only needles in `foreign`
/// (frames of handlers that are not the crate's, set up on purpose); the
/// process died of `signal`. `what` names the run in the messages.
pub fn assert_clean_death(
    death: &Death,
    secrets: &[usize],
    control: usize,
    foreign: &[usize],
    signal: i32,
    what: &str,
) {
    let r = &death.report;
    let left: Vec<&memscan::Hit> = r
        .hits
        .iter()
        .filter(|h| secrets.contains(&h.needle))
        .collect();
    assert!(
        left.is_empty(),
        "{what}: secrets left at the point of death (needle, address, offset, length, \
         mapping): {:#?}\nframes: {:#?}",
        left.iter()
            .map(|h| (
                h.needle,
                format!("{:#x}", h.addr),
                h.offset,
                h.len,
                &h.mapping
            ))
            .collect::<Vec<_>>(),
        r.frames
    );
    assert!(
        r.full[control] >= 1,
        "{what}: the control pattern in ordinary memory was not seen at the point of death: \
         the scan did not read the dying process"
    );
    let dirty: Vec<&memscan::Frame> = r
        .dirty_frames()
        .into_iter()
        .filter(|f| f.holds.is_empty() || f.holds.iter().any(|n| !foreign.contains(n)))
        .collect();
    assert!(
        dirty.is_empty(),
        "{what}: signal frames whose saved registers were not scrubbed: {dirty:#?}"
    );
    assert_eq!(
        death.signal,
        Some(signal),
        "{what}: the child did not die of signal {signal}"
    );
}
