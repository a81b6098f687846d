//! `Backing::SecretMem`: pages of memfd_secret(2) files, pooled. Seen from
//! outside: another root process cannot read them by any of the three ways
//! it reads an anonymous control box; a fork child cannot reach them, nor
//! inherit a secret file's descriptor or mapping even when it forks while
//! another thread makes one, and drops the boxes it inherited without
//! touching its own; the lock limit charges them and gets them back; a
//! seccomp filter that refuses the call makes `SecretMem` an error and
//! `PreferSecretMem` anonymous memory; sealing, `LockedVec` and
//! `LockedAlloc` work on them; `Debug` shows no byte of them.
//! (What they cost and give back: tests/secretmem_resources.rs.)
//!
//! In the portable test mode, which has no secret memory (as macOS and the
//! BSDs), each test asserts that mode's behaviour instead
//! (`common::secretmem::available`): `SecretMem` is `Error::Unsupported`
//! naming memfd_secret and `PreferSecretMem` makes locked anonymous boxes.
// Linux only: reads /proc (common::procfs), drops CAP_IPC_LOCK, installs
// seccomp filters (common::secretmem, common::seccomp).
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::secretmem::{available, secret, secret_fds, secret_maps, secret_packed};
use common::{child, procfs, start_of};
use lockedmem::{Backing, Error, ForkPolicy, LockedBox, Options};

/// The VMA at `addr` is a mapping of a secret memory file, locked (`lo`)
/// and never dumped (`dd`).
fn assert_secret_vma(addr: usize) {
    let vma = procfs::vma_at(addr).expect("mapped");
    assert!(vma.path.starts_with("/secretmem"), "{vma:?}");
    assert!(vma.has("lo") && vma.has("dd"), "{:?}", vma.flags);
}

const HOLDER: &str = "LOCKEDMEM_SECRETMEM_HOLDER";

/// The three ways a root process reads another's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reads {
    proc_mem: bool,
    vm_readv: bool,
    peekdata: bool,
}

/// Reads 8 bytes at `addr` of process `pid` through /proc/PID/mem,
/// process_vm_readv(2) and ptrace(PTRACE_PEEKDATA); which succeeded with the
/// expected bytes.
fn read_other(pid: libc::pid_t, addr: usize, expect: [u8; 8]) -> Reads {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8];
    let proc_mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .and_then(|f| f.read_exact_at(&mut buf, addr as u64))
        .is_ok()
        && buf == expect;

    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: std::ptr::with_exposed_provenance_mut(addr),
        iov_len: 8,
    };
    // SAFETY: one local iovec over `buf`, one remote one; the kernel checks
    // the remote range.
    let got = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    let vm_readv = got == 8 && buf == expect;

    let peekdata = peek(pid, addr) == Some(expect);
    Reads {
        proc_mem,
        vm_readv,
        peekdata,
    }
}

/// Attaches to `pid` with ptrace(2), reads the word at `addr` with
/// `PTRACE_PEEKDATA`, detaches; the word's bytes if the read worked.
fn peek(pid: libc::pid_t, addr: usize) -> Option<[u8; 8]> {
    // SAFETY: attach to a child of ours, from this thread, which alone
    // traces it.
    let attached = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    assert_eq!(attached, 0, "attach: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waits for the stop the attach caused; `status` is ours.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, libc::__WALL) };
    assert_eq!(waited, pid);
    // SAFETY: errno is this thread's own variable.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above; cleared to tell a word of -1 from an error.
    unsafe { errno.write(0) };
    // SAFETY: PEEKDATA reads the tracee's memory, not ours.
    let word = unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr, 0) };
    let failed = std::io::Error::last_os_error().raw_os_error() != Some(0);
    // SAFETY: detaches the stopped tracee we attached to.
    assert_eq!(unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) }, 0);
    (!failed).then(|| word.to_ne_bytes())
}

#[test]
fn another_root_process_reads_anonymous_boxes_but_not_secret_ones() {
    const TEST: &str = "another_root_process_reads_anonymous_boxes_but_not_secret_ones";
    if std::env::var_os(HOLDER).is_some() {
        // The holder: three boxes, their addresses on stdout, then wait.
        let mut page = secret().zeroed::<[u8; 32]>().unwrap();
        page.fill(0x5A);
        let mut packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
        packed.fill(0x6B);
        let mut control = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        control.fill(0x7C);
        assert_eq!(page.backing(), Backing::SecretMem);
        assert_eq!(packed.backing(), Backing::SecretMem);
        println!(
            "ADDRS {} {} {}",
            start_of(&*page),
            start_of(&*packed),
            start_of(&*control)
        );
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        child::exit(0);
    }
    if !available() {
        return;
    }
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(HOLDER, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let addrs: Vec<usize> = loop {
        let line = lines.next().expect("the holder's addresses").unwrap();
        // libtest may have printed the test's name on the same line.
        if let Some(at) = line.find("ADDRS ") {
            break line[at + 6..]
                .split(' ')
                .map(|a| a.parse().unwrap())
                .collect();
        }
    };
    let pid = libc::pid_t::try_from(holder.id()).unwrap();
    let page = read_other(pid, addrs[0], [0x5A; 8]);
    let packed = read_other(pid, addrs[1], [0x6B; 8]);
    let control = read_other(pid, addrs[2], [0x7C; 8]);
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let all = Reads {
        proc_mem: true,
        vm_readv: true,
        peekdata: true,
    };
    let none = Reads {
        proc_mem: false,
        vm_readv: false,
        peekdata: false,
    };
    assert_eq!(control, all, "the control box is readable all three ways");
    assert_eq!(page, none, "a page-isolated secret-memory box is not");
    assert_eq!(packed, none, "a packed secret-memory box is not");
}

#[test]
fn the_process_itself_cannot_read_secret_memory_through_proc_self_mem() {
    if !available() {
        return;
    }
    use std::os::unix::fs::FileExt;
    let mut b = secret().zeroed::<[u8; 32]>().unwrap();
    b.fill(0x11);
    assert_secret_vma(start_of(&*b));
    let f = std::fs::File::open("/proc/self/mem").unwrap();
    let mut buf = [0u8; 8];
    let e = f.read_exact_at(&mut buf, start_of(&*b) as u64).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(b[0], 0x11, "the box itself reads it");
}

#[test]
fn a_fork_child_cannot_reach_secret_memory_and_other_fork_policies_are_refused() {
    let out = child::run(
        "a_fork_child_cannot_reach_secret_memory_and_other_fork_policies_are_refused",
        || {
            if !available() {
                return;
            }
            for opts in [secret(), secret_packed()] {
                let mut b = opts.zeroed::<[u8; 32]>().unwrap();
                b.fill(0xA5);
                let addr = start_of(&*b);
                let seen = common::in_fork(|| common::classify(addr, 32, 0xA5));
                assert_eq!(seen, common::Seen::Signal(libc::SIGSEGV));
                assert!(b.iter().all(|&x| x == 0xA5));
            }
            // Nor through the descriptors: the parent's secret files are
            // closed in the child at once.
            let _live = secret().zeroed::<[u8; 32]>().unwrap();
            assert!(secret_fds() > 0, "the parent holds its secret files");
            let seen = common::in_fork(|| if secret_fds() == 0 { 10 } else { 11 });
            assert_eq!(seen, common::Seen::Exited(10), "the child holds none");
            assert!(secret_fds() > 0, "the parent keeps them");
            for fork in [ForkPolicy::Wipe, ForkPolicy::Keep] {
                let e = secret().fork(fork).zeroed::<[u8; 32]>().unwrap_err();
                assert!(matches!(e, Error::Unsupported { .. }), "{fork:?}: {e:?}");
                // PreferSecretMem honours the fork policy with anonymous
                // memory instead.
                let b = Options::new()
                    .backing(Backing::PreferSecretMem)
                    .fork(fork)
                    .zeroed::<[u8; 32]>()
                    .unwrap();
                assert_eq!(b.backing(), Backing::Anonymous);
            }
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_thousand_packed_secret_memory_secrets_fit_in_64_kib() {
    let out = child::run(
        "a_thousand_packed_secret_memory_secrets_fit_in_64_kib",
        || {
            if !available() {
                return;
            }
            common::process::become_unprivileged(64 * 1024);
            let base_kb = procfs::vm_lck_kb();
            let mut boxes = Vec::new();
            let e = loop {
                match secret_packed().zeroed::<[u8; 32]>() {
                    Ok(mut b) => {
                        b.fill(boxes.len().to_le_bytes()[0]);
                        boxes.push(b);
                    }
                    Err(e) => break e,
                }
            };
            assert!(matches!(e, Error::MemlockLimit { .. }), "{e:?}");
            assert!(boxes.len() >= 1000, "{} boxes", boxes.len());
            assert!(boxes.iter().all(|b| b.backing() == Backing::SecretMem));
            assert_eq!(procfs::vm_lck_kb() - base_kb, 64, "the limit, charged");
            assert_eq!(lockedmem::locked_bytes(), 64 * 1024);
            for (i, b) in boxes.iter().enumerate() {
                assert!(b.iter().all(|&x| x == i.to_le_bytes()[0]));
            }
            // PreferSecretMem at the limit: anonymous memory, which cannot be
            // locked either here, so BestEffort makes it unlocked.
            let b = Options::new()
                .backing(Backing::PreferSecretMem)
                .lock(lockedmem::LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .unwrap();
            assert_eq!(b.backing(), Backing::Anonymous);
            assert!(!b.is_locked());
            drop((boxes, b));
            lockedmem::trim();
            assert_eq!(procfs::vm_lck_kb(), base_kb, "nothing left charged");
            assert_eq!(lockedmem::locked_bytes(), 0);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let left: Vec<&str> = maps.lines().filter(|l| l.contains(" /secretmem")).collect();
            assert!(left.is_empty(), "every secret file unmapped: {left:#?}");
        },
    );
    child::assert_success(&out);
}

/// In a child whose seccomp filter answers memfd_secret(2) with `errno`:
/// `SecretMem` is `Error::Unsupported` naming the call and the answer;
/// `PreferSecretMem` makes working anonymous boxes (locked, `Exclude`).
/// Where the build has no secret memory (the portable test mode) the call
/// is never made: the same refusal, with no answer of the system's.
fn refused_by_seccomp(test: &str, errno: i32) {
    let out = child::run(test, || {
        common::seccomp::fail_syscall(libc::SYS_memfd_secret, errno);
        common::secretmem::assert_refused_with_fallback(
            common::secretmem::IN_THIS_BUILD.then_some(errno),
        );
    });
    child::assert_success(&out);
}

#[test]
fn seccomp_answering_enosys_makes_secret_memory_unsupported() {
    refused_by_seccomp(
        "seccomp_answering_enosys_makes_secret_memory_unsupported",
        libc::ENOSYS,
    );
}

#[test]
fn seccomp_answering_eperm_makes_secret_memory_unsupported() {
    refused_by_seccomp(
        "seccomp_answering_eperm_makes_secret_memory_unsupported",
        libc::EPERM,
    );
}

#[test]
fn sealing_vectors_and_the_allocator_work_on_secret_memory() {
    if !available() {
        return;
    }
    // Sealing, from a page box and from a packed one.
    for opts in [secret(), secret_packed()] {
        let mut b = opts.zeroed::<[u8; 32]>().unwrap();
        b.fill(0x42);
        let sealed = b.seal().unwrap();
        assert_eq!(sealed.backing(), Backing::SecretMem);
        let addr = {
            let r = sealed.borrow();
            assert!(r.iter().all(|&x| x == 0x42));
            start_of(&*r)
        };
        assert_eq!(procfs::perms_at(addr).as_deref(), Some("---s"), "sealed");
        assert_secret_vma(addr);
    }
    // A vector through many growths, then sealed.
    let mut v = secret().vec::<u8>(0).unwrap();
    for i in 0..100_000u32 {
        v.try_push(i.to_le_bytes()[0]).unwrap();
    }
    assert_eq!(v.backing(), Some(Backing::SecretMem));
    assert_secret_vma(v.as_ptr() as usize);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i.to_le_bytes()[0]));
    let sealed = v.seal().unwrap();
    assert_eq!(sealed.borrow().len(), 100_000);
    // The allocator.
    #[cfg(feature = "allocator-api2")]
    {
        let alloc = lockedmem::LockedAlloc::new().backing(Backing::SecretMem);
        let mut blocks = allocator_api2::vec::Vec::<u64, _>::new_in(alloc);
        blocks.resize(10_000, 9);
        assert_secret_vma(blocks.as_ptr() as usize);
        blocks.resize(50_000, 9);
        assert_secret_vma(blocks.as_ptr() as usize);
        assert!(blocks.iter().all(|&x| x == 9));
    }
}

/// A value above 256 KiB: a mapping (and a secret file) of its own.
const SOLO: usize = 300 * 1024;

#[test]
fn a_fork_child_drops_inherited_secret_boxes_and_makes_its_own() {
    let out = child::run(
        "a_fork_child_drops_inherited_secret_boxes_and_makes_its_own",
        || {
            if !available() {
                return;
            }
            let mut page = secret().zeroed::<[u8; 32]>().unwrap();
            page.fill(1);
            let mut packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
            packed.fill(2);
            let mut solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
            solo.fill(3);
            let sealed = secret().new_with(|x: &mut [u8; 32]| x.fill(4)).unwrap();
            let sealed = sealed.seal().unwrap();
            let mut v = secret().vec::<u8>(0).unwrap();
            v.try_extend_from_slice(&[5; 10_000]).unwrap();
            let parent_fds = secret_fds();
            let seen = common::in_fork(|| {
                if secret_fds() != 0 {
                    return 20;
                }
                // Own secret boxes first, so that numbers are reused.
                let mut mine = secret().zeroed::<[u8; 32]>().unwrap();
                mine.fill(9);
                let mut mine_packed = secret_packed().zeroed::<[u8; 32]>().unwrap();
                mine_packed.fill(9);
                let mine_solo = secret().zeroed_slice::<u8>(SOLO).unwrap();
                let fds = secret_fds();
                drop(common::the_childs_copy(&page));
                drop(common::the_childs_copy(&packed));
                drop(common::the_childs_copy(&solo));
                drop(common::the_childs_copy(&sealed));
                drop(common::the_childs_copy(&v));
                if secret_fds() != fds {
                    return 21; // dropping inherited boxes closed a descriptor
                }
                if mine.iter().any(|&x| x != 9) || mine_packed.iter().any(|&x| x != 9) {
                    return 22;
                }
                if lockedmem::locked_bytes() != procfs::vm_lck_bytes() {
                    return 23;
                }
                drop((mine, mine_packed, mine_solo));
                lockedmem::trim();
                if secret_fds() != 0 || lockedmem::locked_bytes() != 0 {
                    return 24;
                }
                10
            });
            assert_eq!(seen, common::Seen::Exited(10));
            assert!(page.iter().all(|&x| x == 1));
            assert!(packed.iter().all(|&x| x == 2));
            assert!(solo.iter().all(|&x| x == 3));
            assert!(sealed.borrow().iter().all(|&x| x == 4));
            assert!(v.iter().all(|&x| x == 5));
            assert_eq!(secret_fds(), parent_fds);
        },
    );
    child::assert_success(&out);
}

/// Forks `rounds` times while `work` runs on another thread; each fork child
/// reports whether it holds a secret file's descriptor (11) or mapping
/// (12). Returns how many children did.
fn fork_while(rounds: usize, work: impl Fn() + Send + Sync + 'static) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                work();
            }
        })
    };
    let (mut fds, mut maps) = (0, 0);
    for _ in 0..rounds {
        // SAFETY: the child only reads /proc (glibc's malloc is fork-safe)
        // and `_exit`s; it touches no lock the worker may hold but malloc's.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if secret_fds() != 0 {
                11
            } else if secret_maps() != 0 {
                12
            } else {
                10
            };
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just made.
        assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "{status:#x}");
        match libc::WEXITSTATUS(status) {
            10 => {}
            11 => fds += 1,
            12 => maps += 1,
            s => panic!("child status {s}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    (fds, maps)
}

#[test]
fn a_fork_racing_a_new_secret_file_does_not_inherit_its_descriptor() {
    let out = child::run(
        "a_fork_racing_a_new_secret_file_does_not_inherit_its_descriptor",
        || {
            if !available() {
                return;
            }
            lockedmem::set_cache_limit(0);
            // Each box is a new secret file (a mapping of its own,
            // unmapped and closed again when it is dropped).
            let (fds, maps) = fork_while(3000, || {
                drop(secret().zeroed_slice::<u8>(SOLO).unwrap());
            });
            assert_eq!(
                (fds, maps),
                (0, 0),
                "fork children holding a secret file's descriptor, a mapping"
            );
        },
    );
    child::assert_success(&out);
}

#[test]
fn a_fork_racing_a_secret_run_being_mapped_does_not_inherit_it() {
    let out = child::run(
        "a_fork_racing_a_secret_run_being_mapped_does_not_inherit_it",
        || {
            if !available() {
                return;
            }
            lockedmem::set_cache_limit(0);
            // One slab (and file) stays; each box maps a run of it anew.
            let _keep = secret().zeroed::<[u8; 32]>().unwrap();
            let (fds, maps) = fork_while(3000, || {
                drop(secret().zeroed::<[u8; 32]>().unwrap());
            });
            assert_eq!(
                (fds, maps),
                (0, 0),
                "fork children holding a secret file's descriptor, a mapping"
            );
        },
    );
    child::assert_success(&out);
}

#[test]
fn debug_of_secret_memory_boxes_shows_no_secret_byte() {
    if !available() {
        return;
    }
    let mut b = secret().zeroed::<[u8; 8]>().unwrap();
    b.copy_from_slice(b"Zq7!Zq7!");
    let text = format!("{b:?}");
    assert!(!text.contains("Zq7") && !text.contains("90, 113"), "{text}");
    let s = b.seal().unwrap();
    let text = format!("{s:?}");
    assert!(!text.contains("Zq7") && !text.contains("90, 113"), "{text}");
}
