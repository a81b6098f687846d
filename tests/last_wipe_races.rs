//! The last wipe against signals that land while threads are inside the
//! crate: each scenario runs children (this test binary again) in which
//! three threads churn one kind of work (trimming, exiting, sealed borrows,
//! vector growth, reads into vectors, slab opening, secret memory, fork
//! exclusion) while secrets are held for good; a signal (or two at once)
//! is aimed at a busy thread at a random moment, and the child must die of
//! it within the timeout with no secret left, whole or in fragments, and
//! every signal frame scrubbed, at the point of death (`common::traced`).
//! Every secret is found in the child before the signal, so none counts as
//! wiped by never having been there.
//!
//! Secret memory cannot be read by a tracer: in its scenario the child
//! reports itself (`secretmem_oracle`), reading its own secret-memory
//! mappings once before the churn starts and once at death, from a
//! `SIGABRT` handler that runs after the wipe; a secret-memory mapping of
//! the child's own holding a control pattern must be found both times.
//!
//! In the portable test mode, which has no secret memory, its scenario
//! asserts that mode's behaviour instead (`common::secretmem::available`).
//!
//! `LOCKEDMEM_STRESS_RUNS` sets how many runs each scenario makes (6).
// Linux only: scans its own memory through /proc/self/mem (common::memscan);
// traces a child with Linux ptrace(2) (common::traced); makes memfd_secret(2)
// memory.
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::memscan::{FRAGMENT, Masked};
use common::traced::{
    CONTROL, LEN, announce_thread, assert_clean_death, can_trace, fill, in_child, leave_control,
    needle, random_seed, ready, rest_forever, secret_byte, secret_in_a_pipe, seed, spawn,
    wait_for_go,
};
use lockedmem::{Backing, ForkPolicy, Isolation, LockedBox, LockedVec, Options};

/// Secrets held for good by the child (kinds `HELD + n`).
const HELD: u64 = 0x10;
/// Secrets the churning threads make and drop (kinds `CHURN + t`).
const CHURN: u64 = 0x40;

/// Kinds whose secrets must be gone at death, in every stress child.
fn kinds() -> Vec<u64> {
    (0..4)
        .map(|n| HELD + n)
        .chain((0..3).map(|t| CHURN + t))
        .collect()
}

/// Secrets held for good, of each isolation, one of them sealed and
/// borrowed, so that the scan has something to miss.
fn hold(seed: u64) {
    let page = Options::new()
        .isolation(Isolation::Page)
        .new_with(fill::<LEN>(seed, HELD))
        .unwrap();
    let packed = Options::new()
        .isolation(Isolation::Packed)
        .new_with(fill::<LEN>(seed, HELD + 1))
        .unwrap();
    let mut vec = LockedVec::<u8>::new();
    for i in 0..LEN {
        vec.try_push(std::hint::black_box(secret_byte(seed, HELD + 2, i)))
            .unwrap();
    }
    let sealed = Box::leak(Box::new(
        LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, HELD + 3))
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
                lockedmem::trim();
            } else {
                let boxes: Vec<_> = (0..8)
                    .map(|i| {
                        Options::new()
                            .isolation(if i % 2 == 0 {
                                Isolation::Page
                            } else {
                                Isolation::Packed
                            })
                            .new_with(fill::<LEN>(seed, kind))
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
                    .new_with(fill::<LEN>(seed, kind))
                    .unwrap();
                let b = Options::new()
                    .isolation(Isolation::Packed)
                    .new_with(fill::<LEN>(seed, kind))
                    .unwrap();
                drop((a, b));
                let _keep = LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, kind)).unwrap();
            })
            .join()
            .unwrap();
        }
        "sealed" => {
            let mut s = LockedBox::<[u8; LEN]>::new_with(fill::<LEN>(seed, kind))
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
                        .new_with(fill::<LEN>(seed, kind))
                        .unwrap()
                })
                .collect();
            drop(boxes);
            lockedmem::trim();
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
                        .new_with(fill::<LEN>(seed, kind))
                        .unwrap()
                })
                .collect();
            drop(boxes);
            if *n % 8 == 0 {
                lockedmem::trim();
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
                .new_with(fill::<LEN>(seed, kind))
                .unwrap();
            drop(b);
        }
        other => panic!("no scenario {other}"),
    }
}

/// Options of the boxes a scenario churns, for the witness each churning
/// thread holds for good.
fn witness_options(scenario: &str) -> Options {
    match scenario {
        "secretmem" => Options::new().backing(Backing::SecretMem),
        "fork_exclude" => Options::new().fork(ForkPolicy::Exclude),
        _ => Options::new(),
    }
}

/// The stress child: secrets held for good, three threads churning in
/// `scenario`, each holding one secret of its kind for good (its witness);
/// SIGTERM and SIGINT do the last wipe. In the secret-memory scenario the
/// witnesses are made first, the child reports what its own secret memory
/// holds, and a fourth thread ends it by `wipe_all_and_abort()` after the
/// delay the parent chose.
fn stress_child(scenario: &'static str) -> ! {
    let seed = seed();
    lockedmem::wipe_on_signals(&[libc::SIGTERM, libc::SIGINT]).unwrap();
    leave_control(seed);
    hold(seed);
    let witnesses: Vec<LockedBox<[u8; LEN]>> = (0..3)
        .map(|t| {
            witness_options(scenario)
                .new_with(fill::<LEN>(seed, CHURN + t))
                .unwrap()
        })
        .collect();
    if scenario == "secretmem" {
        secretmem_oracle::install(seed);
    }
    let started = Arc::new(Barrier::new(4));
    for t in 0..3 {
        let started = Arc::clone(&started);
        std::thread::spawn(move || {
            announce_thread();
            let mut n = 0;
            churn_once(scenario, seed, t, &mut n);
            started.wait();
            loop {
                churn_once(scenario, seed, t, &mut n);
            }
        });
    }
    started.wait();
    if scenario == "secretmem" {
        std::thread::spawn(move || {
            wait_for_go();
            std::thread::sleep(Duration::from_micros(seed % 30_000));
            lockedmem::wipe_all_and_abort();
        });
    }
    ready();
    std::mem::forget(witnesses);
    rest_forever();
}

/// The parent: `runs` children of `name`, each sent `signals` (one per
/// listed thread choice) after a random delay (or, for secret memory, told
/// to end itself); each must die of the expected signal within the timeout
/// with no secret left.
fn stress(name: &str, scenario: &str, signals: &[i32], runs: usize) {
    // Where the build has no secret memory (the portable test mode),
    // `available` checks what a program gets instead; the last wipe of the
    // anonymous memory that stands in is what the other scenarios prove.
    if scenario == "secretmem" && !common::secretmem::available() {
        return;
    }
    let mut took = Vec::new();
    for run in 0..runs {
        let seed = random_seed();
        let kinds = kinds();
        let mut needles: Vec<Masked> = kinds.iter().map(|&k| needle(seed, k)).collect();
        needles.push(needle(seed, CONTROL));
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(name, seed, &[]);
        let delay = Duration::from_micros(seed % 30_000);
        let what = format!("{name} run {run} (delay {delay:?})");
        let secretmem = scenario == "secretmem";
        let present: Vec<&Masked> = if secretmem {
            // The churned kinds live in secret memory: the child reports
            // them itself (below).
            refs[..4]
                .iter()
                .chain(&refs[kinds.len()..])
                .copied()
                .collect()
        } else {
            refs.clone()
        };
        child.assert_present(&present, &what);
        let sent = Instant::now();
        let expected = if secretmem {
            let before = secretmem_oracle::read(&child.output(), "BEFORE")
                .unwrap_or_else(|| panic!("{what}: the child did not report its secret memory"));
            for t in 0..3 {
                assert!(
                    before.whole[4 + t] >= 1,
                    "{what}: secret-memory witness {t} not found by the child: {before:?}"
                );
            }
            assert!(
                before.control >= 1,
                "{what}: secret-memory control not found: {before:?}"
            );
            child.go();
            libc::SIGABRT
        } else {
            std::thread::sleep(delay);
            // Aim each signal at a churning thread (not the idle main one,
            // which the kernel would pick for a process-directed signal).
            let tids = child.workers.clone();
            for (i, &sig) in signals.iter().enumerate() {
                let pick = usize::try_from(seed >> 8 & 0xffff).unwrap();
                let tid = tids[pick.wrapping_add(i) % tids.len()];
                child.tkill(tid, sig);
            }
            signals[0]
        };
        let death = child
            .until_death(&refs, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        took.push(sent.elapsed());
        let secrets: Vec<usize> = (0..kinds.len()).collect();
        if secretmem {
            let at_death = secretmem_oracle::read(&child.output_at_death(), "AT-DEATH")
                .unwrap_or_else(|| panic!("{what}: the child did not report at death"));
            assert!(
                at_death
                    .whole
                    .iter()
                    .chain(&at_death.fragments)
                    .all(|&n| n == 0),
                "{what}: secrets left in secret memory at death: {at_death:?}"
            );
            assert!(
                at_death.control >= 1,
                "{what}: the child's own secret-memory control was not seen at death: the \
                 report did not read secret memory: {at_death:?}"
            );
            assert!(at_death.mappings >= 1, "{what}: no secret memory at death");
        } else {
            assert!(
                death.report.secretmem.is_empty(),
                "{what}: secret memory the scan cannot read: {:?}",
                death.report.secretmem
            );
        }
        // Two signals at once: the process dies of whichever came first.
        let signal = match death.signal {
            Some(s) if signals.contains(&s) && !secretmem => s,
            _ => expected,
        };
        assert_clean_death(&death, &secrets, kinds.len(), &[], signal, &what);
    }
    let max = took.iter().max();
    eprintln!("{name}: {runs} runs, slowest signal to death {max:?}");
}

fn runs(default: usize) -> usize {
    std::env::var("LOCKEDMEM_STRESS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
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
            stress(stringify!($name), $scenario, &$signals, runs(6));
        }
    };
}

stress_test!(sigterm_during_trim, "trim", [libc::SIGTERM]);
stress_test!(sigterm_during_thread_exit, "thread_exit", [libc::SIGTERM]);
stress_test!(sigterm_during_sealed_borrows, "sealed", [libc::SIGTERM]);
stress_test!(sigterm_during_vec_growth, "vec_growth", [libc::SIGTERM]);
stress_test!(sigterm_during_read_from, "read_from", [libc::SIGTERM]);
stress_test!(sigterm_during_packed_slabs, "packed_slabs", [libc::SIGTERM]);
stress_test!(wipe_during_secretmem_churn, "secretmem", [libc::SIGABRT]);
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

/// The child's own report of its secret memory, which no tracer can read:
/// a `SIGABRT` handler (run after the wipe, by `abort(3)`) makes each
/// `/secretmem` mapping of `/proc/self/maps` readable and counts the
/// secrets in it, whole and in fragments, and the control pattern in a
/// secret-memory mapping of the child's own; the same count runs once
/// before the churn starts. Allocation-free in the handler: the buffers
/// and the masked needles are made at install time.
mod secretmem_oracle {
    use std::sync::OnceLock;

    use super::*;
    use common::memscan::MASK;

    /// Every masked needle ([`kinds`]), then the control's.
    static NEEDLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    /// The child's own secret-memory mapping holding the control pattern.
    static CONTROL_MAP: OnceLock<usize> = OnceLock::new();
    /// The buffer `/proc/self/maps` is read into, made at install time.
    static MAPS: OnceLock<usize> = OnceLock::new();
    const MAPS_LEN: usize = 1 << 18;

    /// What the child reported.
    #[derive(Debug)]
    pub(crate) struct Counts {
        pub(crate) mappings: usize,
        pub(crate) whole: Vec<usize>,
        pub(crate) fragments: Vec<usize>,
        pub(crate) control: usize,
    }

    pub(crate) fn install(seed: u64) {
        let mut needles: Vec<Vec<u8>> = kinds()
            .iter()
            .map(|&k| (0..LEN).map(|i| secret_byte(seed, k, i) ^ MASK).collect())
            .collect();
        needles.push(
            (0..LEN)
                .map(|i| secret_byte(seed, CONTROL, i) ^ MASK)
                .collect(),
        );
        NEEDLES.set(needles).unwrap();
        // SAFETY: memfd_secret(0) takes a flag word and returns a descriptor.
        let fd = unsafe { libc::syscall(447, 0) };
        assert!(fd >= 0, "memfd_secret: {}", std::io::Error::last_os_error());
        let fd = i32::try_from(fd).unwrap();
        let page = common::page_size();
        // SAFETY: sizes the new file to one page.
        let len = libc::off_t::try_from(page).unwrap();
        // SAFETY: sizes the new file to one page.
        assert_eq!(unsafe { libc::ftruncate(fd, len) }, 0);
        // SAFETY: maps the file's page, shared, read-write.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED);
        for i in 0..LEN {
            let byte = at.cast::<u8>().wrapping_add(64 + i);
            // SAFETY: inside the page just mapped.
            unsafe { byte.write_volatile(std::hint::black_box(secret_byte(seed, CONTROL, i))) };
        }
        CONTROL_MAP.set(at as usize).unwrap();
        report("BEFORE", false);
        // SAFETY: an all-zero sigaction is valid; the handler below only
        // makes system calls and reads memory prepared here.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_abort as *const () as libc::sighandler_t;
        // SAFETY: installs it for SIGABRT; no old action asked for.
        let rc =
            // SAFETY: installs it for SIGABRT; no old action asked for.
            unsafe { libc::sigaction(libc::SIGABRT, &raw const act, std::ptr::null_mut()) };
        assert_eq!(rc, 0);
    }

    extern "C" fn on_abort(_sig: libc::c_int) {
        report("AT-DEATH", true);
    }

    /// Counts and prints one line: `SECRETMEM-<when> mappings whole... |
    /// fragments... | control`. While the process lives, only the mappings
    /// that are readable now are read (as they are); once it is `dying`
    /// (the wipe made them all `PROT_NONE`), each is made readable first.
    fn report(when: &str, dying: bool) {
        let needles = NEEDLES.get().unwrap();
        let mut whole = [0usize; 16];
        let mut fragments = [0usize; 16];
        let mut mappings = 0;
        let at = *MAPS.get_or_init(|| {
            Box::leak(vec![0u8; MAPS_LEN].into_boxed_slice()).as_mut_ptr() as usize
        });
        // SAFETY: a leaked buffer of MAPS_LEN bytes that only this function
        // uses, on one thread at a time (before the threads start, then in
        // the dying thread's handler).
        let maps = unsafe { std::slice::from_raw_parts_mut(at as *mut u8, MAPS_LEN) };
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY) };
        let mut len = 0;
        loop {
            // SAFETY: reads into the rest of MAPS.
            let n = unsafe { libc::read(fd, maps[len..].as_mut_ptr().cast(), maps.len() - len) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            len += n;
        }
        // SAFETY: closes the descriptor just opened.
        unsafe { libc::close(fd) };
        let control_at = *CONTROL_MAP.get().unwrap();
        let mut control = 0;
        for line in maps[..len].split(|&b| b == b'\n') {
            if !line.ends_with(b"/secretmem (deleted)") && !line.ends_with(b"/secretmem") {
                continue;
            }
            let mut fields = line.split(|&b| b == b' ');
            let range = fields.next().unwrap();
            let readable = fields.next().unwrap().starts_with(b"r");
            let mut ends = range.split(|&b| b == b'-').map(|h| {
                h.iter().fold(0usize, |n, &c| {
                    n * 16 + (c as char).to_digit(16).unwrap() as usize
                })
            });
            let (start, end) = (ends.next().unwrap(), ends.next().unwrap());
            mappings += 1;
            if dying {
                // SAFETY: a secret-memory mapping of this process, which is
                // dying: nothing but this handler runs any more.
                unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ) };
            } else if !readable {
                continue;
            }
            // SAFETY: the mapping is readable now.
            let bytes = unsafe { std::slice::from_raw_parts(start as *const u8, end - start) };
            let own = start == control_at;
            for (n, m) in needles.iter().enumerate() {
                let mut p = 0;
                while p + FRAGMENT <= bytes.len() {
                    let mut best = 0;
                    for o in 0..=LEN - FRAGMENT {
                        let run = (0..LEN - o)
                            .take_while(|&j| p + j < bytes.len() && bytes[p + j] ^ MASK == m[o + j])
                            .count();
                        best = best.max(run);
                    }
                    if best >= FRAGMENT {
                        if n == needles.len() - 1 {
                            control += usize::from(own && best == LEN);
                        } else {
                            fragments[n] += 1;
                            whole[n] += usize::from(best == LEN);
                        }
                        p += best;
                    } else {
                        p += 1;
                    }
                }
            }
        }
        let mut line = [0u8; 512];
        let mut w = 0;
        let mut put = |s: &[u8]| {
            line[w..w + s.len()].copy_from_slice(s);
            w += s.len();
        };
        put(b"SECRETMEM-");
        put(when.as_bytes());
        let num = |n: usize, put: &mut dyn FnMut(&[u8])| {
            let mut digits = [0u8; 20];
            let mut i = digits.len();
            let mut n = n;
            loop {
                i -= 1;
                digits[i] = b"0123456789"[n % 10];
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            put(b" ");
            put(&digits[i..]);
        };
        num(mappings, &mut put);
        for &c in &whole[..needles.len() - 1] {
            num(c, &mut put);
        }
        put(b" |");
        for &c in &fragments[..needles.len() - 1] {
            num(c, &mut put);
        }
        put(b" |");
        num(control, &mut put);
        put(b"\n");
        // SAFETY: writes the line to stdout.
        unsafe { libc::write(1, line.as_ptr().cast(), w) };
    }

    /// The report the child printed for `when`.
    pub(crate) fn read(output: &[String], when: &str) -> Option<Counts> {
        let tag = format!("SECRETMEM-{when} ");
        let line = output
            .iter()
            .find_map(|l| l.rsplit_once(&tag).map(|(_, r)| r.to_owned()))?;
        let mut parts = line.split('|');
        let head: Vec<usize> = parts
            .next()?
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let fragments = parts
            .next()?
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let control = parts.next()?.trim().parse().ok()?;
        Some(Counts {
            mappings: head[0],
            whole: head[1..].to_vec(),
            fragments,
            control,
        })
    }
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
        // The secret waits in a pipe (kernel memory).
        let pipe = secret_in_a_pipe(seed, CHURN, 60_000);
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
                unsafe { libc::read(pipe, at as *mut libc::c_void, LEN) };
            }
        });
        drop(reader);
        ready();
        wait_for_go();
        lockedmem::wipe_all_and_abort();
    }
    if !can_trace() {
        return;
    }
    for run in 0..runs(3) {
        let seed = random_seed();
        let needles = [needle(seed, CHURN), needle(seed, CONTROL)];
        let refs: Vec<&Masked> = needles.iter().collect();
        let mut child = spawn(NAME, seed, &[]);
        child.go();
        let death = child.until_death(&refs, Duration::from_secs(20)).unwrap();
        let what = format!("run {run}: the secret read into the box after the wipe began");
        assert_clean_death(&death, &[0], 1, &[], libc::SIGABRT, &what);
    }
}
