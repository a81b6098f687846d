//! `Hardening`, checked in the kernel's view of a child process: the core
//! limit in /proc/self/limits, a separate same-user process failing to open
//! /proc/PID/mem, VmFlags `lo`, `VmLck` and `Rss:` in smaps, and a lock
//! refused under a 64 KiB `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK` leaving
//! `VmLck` as it was. Every test changes process-wide state, so each runs in
//! a child (the test binary run again).
// Linux only: reads the state Hardening changes in /proc; reads /proc
// (common::procfs: smaps VmFlags, maps, status); drops CAP_IPC_LOCK, a Linux
// capability.
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, Command, Stdio};

use common::procfs::{self, Vma};
use common::{child, end_of};
use lockedmem::{Error, Hardening, LockAll, LockedBox, MemlockCall, Step};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const MIB: usize = 1 << 20;

/// Mappings mlockall(2) never locks: VmFlags `io`, `pf`, `de`, `mm`, `ht`
/// (`[vvar]`, `[vdso]`), and `[vsyscall]`.
fn never_locked(v: &Vma) -> bool {
    v.start == 0xffff_ffff_ff60_0000 || ["io", "pf", "de", "mm", "ht"].iter().any(|f| v.has(f))
}

/// Mappings that mlockall(2) would lock and that are not locked.
fn unlocked() -> Vec<Vma> {
    procfs::smaps()
        .into_iter()
        .filter(|v| !v.has("lo") && !never_locked(v))
        .collect()
}

/// An anonymous read-write mapping of `len` bytes that nothing touches.
fn map_untouched(len: usize) -> usize {
    // SAFETY: a fresh private anonymous mapping at an address the kernel
    // picks; nothing else uses it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p as usize
}

/// How many pages of `addr..addr + len` are in RAM, from mincore(2): exact
/// for the range whatever mappings it merged with.
fn resident_pages(addr: usize, len: usize) -> usize {
    let page = common::page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has a byte per page of the range; mincore reads no byte
    // of the range itself.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore");
    vec.iter().filter(|&&b| b & 1 == 1).count()
}

/// Writes one byte at `addr`, in a mapping made by `map_untouched`.
fn touch(addr: usize) {
    let p = std::ptr::with_exposed_provenance_mut::<u8>(addr);
    // SAFETY: `addr` lies in a read-write mapping from `map_untouched`,
    // which no Rust reference points into.
    unsafe { p.write_volatile(1) };
}

fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE takes no pointer; it returns the flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

fn set_dumpable(on: bool) {
    // SAFETY: PR_SET_DUMPABLE takes an integer and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on)) };
    assert_eq!(rc, 0, "PR_SET_DUMPABLE");
}

/// The soft and hard fields of "Max core file size" in /proc/self/limits,
/// as written there ("0", "8388608", "unlimited").
fn core_limits_line() -> (String, String) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("Max core file size in /proc/self/limits");
    let mut fields = line["Max core file size".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

fn set_core_limit(soft: u64, hard: u64) {
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(soft),
            maximum: Some(hard),
        },
    )
    .expect("setrlimit(RLIMIT_CORE)");
}

/// Switches every thread of this process to user and group 65534 (nobody),
/// which drops every capability. glibc's setres[ug]id apply to all threads.
fn become_nobody() {
    const NOBODY: u32 = 65534;
    // SAFETY: plain system calls with integer arguments (a null list of no
    // supplementary groups).
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
    }
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::setresgid(NOBODY, NOBODY, NOBODY), 0, "setresgid");
    }
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::setresuid(NOBODY, NOBODY, NOBODY), 0, "setresuid");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        status.contains("CapEff:\t0000000000000000"),
        "capabilities left after setresuid"
    );
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips (fails in CI) when this process could not lock all of its memory:
/// no `CAP_IPC_LOCK`, and a limit below its mapped size.
fn can_lock_everything() -> bool {
    let host = lockedmem::Host::probe();
    let mapped = procfs::vm_size_kb() * 1024 + 64 * MIB as u64;
    if host.lock_exempt == Some(true) || host.memlock.soft.is_none_or(|s| s >= mapped) {
        return true;
    }
    common::skip("lock_all needs CAP_IPC_LOCK or an RLIMIT_MEMLOCK above the process's size");
    false
}

#[test]
fn no_core_dumps_sets_the_soft_limit_to_zero_and_keeps_the_hard_one() {
    let out = child::run(
        "no_core_dumps_sets_the_soft_limit_to_zero_and_keeps_the_hard_one",
        || {
            set_core_limit(MIB as u64, 8 * MIB as u64);
            assert_eq!(core_limits_line(), ("1048576".into(), "8388608".into()));

            let report = Hardening::new().no_core_dumps().apply().unwrap();
            assert_eq!(report.no_core_dumps, Step::Applied);
            assert_eq!(report.not_dumpable, Step::NotAsked);
            assert_eq!(report.lock_all, (Step::NotAsked, None));
            assert_eq!(report.before.core_soft_limit, Some(MIB as u64));
            assert_eq!(report.after.core_soft_limit, Some(0));
            assert_eq!(report.after.core_hard_limit, Some(8 * MIB as u64));
            assert_eq!(core_limits_line(), ("0".into(), "8388608".into()));

            // Raising the soft limit again needs no privilege: show it as
            // an ordinary user where the test can become one.
            if is_root() {
                become_nobody();
            }
            set_core_limit(8 * MIB as u64, 8 * MIB as u64);
            assert_eq!(core_limits_line(), ("8388608".into(), "8388608".into()));
        },
    );
    child::assert_success(&out);
}

/// The role a run of the test binary plays in the /proc/PID/mem test.
const ROLE: &str = "LOCKEDMEM_HARDENING_ROLE";
const MARKER: [u8; 16] = *b"lockedmem-marker";

/// Reader: as user 65534, opens /proc/PID/mem of the target and reads the
/// marker. Exits 0 if it read the marker, 1 if the kernel refused the open
/// (EACCES or EPERM), 2 on anything else.
fn reader() -> i32 {
    let pid: u32 = std::env::var("TARGET_PID").unwrap().parse().unwrap();
    let addr = u64::from_str_radix(&std::env::var("TARGET_ADDR").unwrap(), 16).unwrap();
    become_nobody();
    let mem = match File::open(format!("/proc/{pid}/mem")) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            eprintln!("reader: open /proc/{pid}/mem: {e}");
            return 1;
        }
        Err(e) => {
            eprintln!("reader: open /proc/{pid}/mem: {e}");
            return 2;
        }
    };
    let mut buf = [0u8; 16];
    match mem.read_exact_at(&mut buf, addr) {
        Ok(()) if buf == MARKER => 0,
        other => {
            eprintln!("reader: read at {addr:#x}: {other:?} {buf:?}");
            2
        }
    }
}

/// Target: becomes user 65534 and dumpable (the user change made it not
/// dumpable, per fs.suid_dumpable), shows the marker's address, applies
/// `not_dumpable` when told to, and waits to be told to exit.
fn target() {
    become_nobody();
    set_dumpable(true);
    // Under Yama's ptrace_scope 1 only an ancestor could open our mem file;
    // the reader is a sibling. Without Yama the call fails, harmlessly.
    // SAFETY: integer arguments only.
    let _ = unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY) };
    let marker: &'static [u8; 16] = Box::leak(Box::new(MARKER));
    let mut stdin = BufReader::new(std::io::stdin());
    let mut line = String::new();
    println!("\n@ready {:x}", marker.as_ptr() as usize);
    stdin.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "go");

    let report = Hardening::new().not_dumpable().apply().unwrap();
    assert_eq!(report.not_dumpable, Step::Applied);
    assert!(report.before.dumpable && !report.after.dumpable);
    assert_eq!(dumpable(), 0, "PR_GET_DUMPABLE");
    // Not root: the process cannot open its own mem file any more either.
    assert!(File::open("/proc/self/mem").is_err());
    println!("\n@hardened");

    line.clear();
    stdin.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "exit");
    std::hint::black_box(marker);
}

/// Kills the target if the test fails before it exits.
struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the reader against `pid` and returns its verdict, its exit code.
fn run_reader(pid: u32, addr: &str) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let test = "not_dumpable_stops_a_same_user_process_reading_proc_pid_mem";
    let status = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ROLE, "reader")
        .env("TARGET_PID", pid.to_string())
        .env("TARGET_ADDR", addr)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    status.code().unwrap_or_else(|| {
        panic!(
            "the reader gave no verdict: it died of signal {:?}",
            status.signal()
        )
    })
}

#[test]
fn not_dumpable_stops_a_same_user_process_reading_proc_pid_mem() {
    let test = "not_dumpable_stops_a_same_user_process_reading_proc_pid_mem";
    match std::env::var(ROLE).as_deref() {
        // Both end with child::exit, not std::process::exit: they run on the
        // test's thread right after setresuid and friends (become_nobody),
        // and std::process::exit there could kill the reader with SIGSEGV
        // (see child::exit).
        Ok("target") => {
            target();
            child::exit(0);
        }
        Ok("reader") => child::exit(reader()),
        _ => {}
    }
    if !is_root() {
        common::skip("needs root to run the target and the reader as one non-root user");
        return;
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ROLE, "target")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut target = Target(child);
    let pid = target.0.id();
    let mut stdin = target.0.stdin.take().unwrap();
    // The target's lines arrive through a thread, so that a target that
    // hangs fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = target.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next_line = |prefix: &str| -> String {
        loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no {prefix:?} line from the target: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    };
    let addr = next_line("@ready");

    // While the target is dumpable, the same user reads its memory.
    assert_eq!(
        run_reader(pid, &addr),
        0,
        "a same-user process could not read a dumpable target"
    );

    writeln!(stdin, "go").unwrap();
    next_line("@hardened");
    assert_eq!(
        run_reader(pid, &addr),
        1,
        "after not_dumpable, the open must be refused"
    );

    writeln!(stdin, "exit").unwrap();
    let status = target.0.wait().unwrap();
    assert!(status.success(), "target: {status:?}");
}

/// In a child: a mapping left untouched before `lock_all(mode)`, the
/// mappings there before, and what the kernel shows after.
fn lock_all_in_child(mode: LockAll) {
    if !can_lock_everything() {
        return;
    }
    // Keep malloc from making and unmapping mappings of its own while the
    // test compares mappings before and after (an address unmapped and
    // mapped again after a `Current` lock is a new, unlocked mapping).
    // SAFETY: mallopt takes integers and only changes malloc's thresholds.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20) };
    // SAFETY: as above.
    unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) };
    let region = map_untouched(16 * MIB);
    let boxed = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    let before = procfs::smaps();
    assert!(
        !unlocked().is_empty(),
        "some mapping is unlocked before, or the test proves nothing"
    );
    assert_eq!(Hardening::current().unwrap().future_locked, Some(false));

    let report = Hardening::new().lock_all(mode).apply().unwrap();
    assert_eq!(report.lock_all, (Step::Applied, Some(mode)));
    assert!(!report.before.all_locked());
    let future = mode != LockAll::Current;
    assert_eq!(report.after.future_locked, Some(future));
    let on_fault = future.then_some(mode == LockAll::CurrentAndFutureOnFault);
    assert_eq!(report.after.future_on_fault, on_fault);

    // Every mapping that was there is locked now, the untouched one too.
    for old in &before {
        if let Some(now) = procfs::vma_at(old.start) {
            assert!(now.has("lo") || never_locked(&now), "{now:?} is not locked");
        }
    }
    let r = procfs::vma_at(region).unwrap();
    assert!(r.has("lo"), "{r:?}");
    assert_eq!(
        r.has("lf"),
        mode == LockAll::CurrentAndFutureOnFault,
        "{r:?}"
    );
    // The crate's own box stays locked.
    assert!(procfs::vma_at(end_of(&*boxed) - 1).unwrap().has("lo"));
    let pages = 16 * MIB / common::page_size();
    if mode == LockAll::CurrentAndFutureOnFault {
        // Nothing was faulted in; a page is locked when it is touched.
        assert_eq!(resident_pages(region, 16 * MIB), 0);
        touch(region);
        assert_eq!(resident_pages(region, 16 * MIB), 1);
        let after = procfs::vma_at(region).unwrap();
        assert_eq!(after.locked_kb, r.locked_kb + 4, "{after:?}");
    } else {
        // MCL_CURRENT without MCL_ONFAULT faults every page in.
        assert_eq!(resident_pages(region, 16 * MIB), pages);
        assert!(r.locked_kb >= 16 * 1024, "{r:?}");
    }

    // A mapping made now is locked exactly when the mode says so, and
    // faulted in at once unless on fault.
    let later = map_untouched(MIB);
    let l = procfs::vma_at(later).unwrap();
    assert_eq!(l.has("lo"), future, "{l:?}");
    assert_eq!(
        l.has("lf"),
        mode == LockAll::CurrentAndFutureOnFault,
        "{l:?}"
    );
    let populated = mode == LockAll::CurrentAndFuture;
    let expected = if populated {
        MIB / common::page_size()
    } else {
        0
    };
    assert_eq!(resident_pages(later, MIB), expected, "{l:?}");

    if future {
        // With every later mapping locked too, VmLck is VmSize less the
        // mappings the kernel never locks ([vsyscall] is not in VmSize).
        assert!(Hardening::current().unwrap().all_locked());
        assert!(unlocked().is_empty(), "{:?}", unlocked());
        let vmas = procfs::smaps();
        let special: u64 = vmas
            .iter()
            .filter(|v| never_locked(v) && v.start != 0xffff_ffff_ff60_0000)
            .map(|v| v.len() as u64 / 1024)
            .sum();
        assert_eq!(procfs::vm_lck_kb() + special, procfs::vm_size_kb());
    }
}

#[test]
fn lock_all_current_locks_every_mapping_there_now() {
    let out = child::run("lock_all_current_locks_every_mapping_there_now", || {
        lock_all_in_child(LockAll::Current);
    });
    child::assert_success(&out);
}

#[test]
fn lock_all_current_and_future_locks_later_mappings_too() {
    let out = child::run(
        "lock_all_current_and_future_locks_later_mappings_too",
        || lock_all_in_child(LockAll::CurrentAndFuture),
    );
    child::assert_success(&out);
}

#[test]
fn lock_all_on_fault_locks_pages_when_touched() {
    let out = child::run("lock_all_on_fault_locks_pages_when_touched", || {
        lock_all_in_child(LockAll::CurrentAndFutureOnFault);
    });
    child::assert_success(&out);
}

const LIMIT: u64 = 64 * 1024;

#[test]
fn lock_all_over_a_64_kib_limit_is_refused_and_nothing_is_applied() {
    let out = child::run(
        "lock_all_over_a_64_kib_limit_is_refused_and_nothing_is_applied",
        || {
            common::become_unprivileged(LIMIT);
            set_core_limit(MIB as u64, MIB as u64);
            set_dumpable(true);
            // A box of the crate's own, locked within the limit.
            let boxed = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
            assert!(boxed.is_locked());
            let base_lck = procfs::vm_lck_kb();
            assert!(base_lck >= 4);
            let locked_before: Vec<usize> = procfs::smaps()
                .iter()
                .filter(|v| v.has("lo"))
                .map(|v| v.start)
                .collect();

            for mode in [
                LockAll::Current,
                LockAll::CurrentAndFuture,
                LockAll::CurrentAndFutureOnFault,
            ] {
                let err = Hardening::new()
                    .no_core_dumps()
                    .not_dumpable()
                    .lock_all(mode)
                    .apply()
                    .unwrap_err();
                // The advice fits mlockall: no box to drop, no BestEffort.
                let msg = format!("{err:?}");
                assert_eq!(msg, err.to_string());
                for needle in [
                    "mlockall",
                    "ulimit -l",
                    "CAP_IPC_LOCK",
                    "leave lock_all out",
                ] {
                    assert!(msg.contains(needle), "{needle} not in {msg}");
                }
                for wrong in ["BestEffort", "drop boxes"] {
                    assert!(!msg.contains(wrong), "{wrong} in {msg}");
                }
                let Error::MemlockLimit {
                    call: MemlockCall::LockAll,
                    requested,
                    soft_limit,
                    hard_limit,
                    ..
                } = err
                else {
                    panic!("{mode:?}: expected MemlockLimit from lock_all, got {err:?}");
                };
                assert_eq!((soft_limit, hard_limit), (Some(LIMIT), Some(LIMIT)));
                // The request is the mapped size, which the kernel checks.
                let mapped = procfs::vm_size_kb() * 1024;
                assert!(requested as u64 > LIMIT);
                assert!(
                    (requested as u64).abs_diff(mapped) < 4 * MIB as u64,
                    "requested {requested}, VmSize {mapped}"
                );

                // Nothing was applied: no lock, no core limit, no flag.
                assert_eq!(procfs::vm_lck_kb(), base_lck, "{mode:?}: VmLck moved");
                let locked_now: Vec<usize> = procfs::smaps()
                    .iter()
                    .filter(|v| v.has("lo"))
                    .map(|v| v.start)
                    .collect();
                assert_eq!(locked_now, locked_before, "{mode:?}");
                assert_eq!(getrlimit(Resource::Core).current, Some(MIB as u64));
                assert_eq!(dumpable(), 1);
                let later = map_untouched(MIB);
                assert!(
                    !procfs::vma_at(later).unwrap().has("lo"),
                    "{mode:?}: MCL_FUTURE was left set"
                );
                assert_eq!(Hardening::current().unwrap().future_locked, Some(false));
            }
            // The crate's own box is still locked: nothing called munlockall.
            assert!(procfs::vma_at(end_of(&*boxed) - 1).unwrap().has("lo"));

            // The other steps alone still apply.
            let report = Hardening::new().no_core_dumps().apply().unwrap();
            assert_eq!(report.no_core_dumps, Step::Applied);
        },
    );
    child::assert_success(&out);
}

#[test]
fn the_kernel_refuses_mlockall_whole() {
    // What `apply` relies on if the mapped size grows between its check and
    // the call: a refused mlockall(2) changes no mapping and no setting.
    let out = child::run("the_kernel_refuses_mlockall_whole", || {
        use rustix::mm::{MlockAllFlags as F, mlockall};
        common::become_unprivileged(LIMIT);
        let base_lck = procfs::vm_lck_kb();
        for flags in [
            F::CURRENT,
            F::CURRENT | F::FUTURE,
            F::CURRENT | F::FUTURE | F::ONFAULT,
        ] {
            let e = mlockall(flags).unwrap_err();
            assert_eq!(e, rustix::io::Errno::NOMEM, "{flags:?}");
            assert_eq!(procfs::vm_lck_kb(), base_lck, "{flags:?}");
            let later = map_untouched(MIB);
            assert!(!procfs::vma_at(later).unwrap().has("lo"), "{flags:?}");
        }
    });
    child::assert_success(&out);
}

#[test]
fn a_second_apply_reports_each_step_already_in_force() {
    let out = child::run("a_second_apply_reports_each_step_already_in_force", || {
        if !can_lock_everything() {
            return;
        }
        set_core_limit(MIB as u64, 8 * MIB as u64);
        set_dumpable(true);
        let state = Hardening::current().unwrap();
        assert!(!state.core_dumps_off() && state.dumpable && !state.all_locked());
        assert_eq!(state.future_locked, Some(false));
        // Reading the state changed nothing.
        assert_eq!(
            Hardening::current().unwrap().core_soft_limit,
            Some(MIB as u64)
        );
        assert_eq!(dumpable(), 1);

        let all = Hardening::new()
            .no_core_dumps()
            .not_dumpable()
            .lock_all(LockAll::CurrentAndFutureOnFault);
        let first = all.apply().unwrap();
        assert_eq!(first.no_core_dumps, Step::Applied);
        assert_eq!(first.not_dumpable, Step::Applied);
        assert_eq!(
            first.lock_all,
            (Step::Applied, Some(LockAll::CurrentAndFutureOnFault))
        );

        let second = all.apply().unwrap();
        assert_eq!(second.no_core_dumps, Step::AlreadyInForce);
        assert_eq!(second.not_dumpable, Step::AlreadyInForce);
        assert_eq!(
            second.lock_all,
            (Step::AlreadyInForce, Some(LockAll::CurrentAndFutureOnFault))
        );
        let now = Hardening::current().unwrap();
        assert!(now.core_dumps_off() && !now.dumpable && now.all_locked());
        assert_eq!(now.core_hard_limit, Some(8 * MIB as u64));
        assert_eq!(now.future_locked, Some(true));
        let debug = format!("{second:?}");
        for needle in [
            "AlreadyInForce",
            "core_soft_limit: Some(0)",
            "dumpable: false",
        ] {
            assert!(debug.contains(needle), "{needle} not in {debug}");
        }

        // `Current` is a different state (no MCL_FUTURE): applied, and it
        // ends the locking of later mappings.
        let current = Hardening::new().lock_all(LockAll::Current).apply().unwrap();
        assert_eq!(current.lock_all, (Step::Applied, Some(LockAll::Current)));
        assert_eq!(current.after.future_locked, Some(false));
    });
    child::assert_success(&out);
}
