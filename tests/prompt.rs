//! `prompt_password` on a pseudo-terminal: a child process with the pty as
//! its controlling terminal prompts; the test, on the master side, sees the
//! prompt, checks that echo is off while it waits, types, and checks that
//! echo is on again after a normal return, after an error, and after SIGINT
//! killed the child.
// Linux only: opens a pseudo-terminal with Linux calls; scans its own memory
// through /proc/self/mem (common::memscan).
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::memscan;
use lockedmem::{Error, prompt_password};

/// The passphrase typed in the normal case: made one character at a time
/// on both sides, never held whole in ordinary memory.
fn pass_char(i: usize) -> u8 {
    b'a' + ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59) as u8 % 26
}

const CASE: &str = "LOCKEDMEM_PROMPT_CASE";
const PTY: &str = "LOCKEDMEM_PROMPT_PTY";
const TEST: &str = "prompt_on_a_pseudo_terminal";

/// A new pty: the master (non-blocking) and the slave's path.
fn open_pty() -> (std::fs::File, String) {
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let m = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    assert!(m >= 0, "posix_openpt");
    // SAFETY: `m` is a new descriptor owned here only.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    // SAFETY: grantpt and unlockpt take the master's descriptor.
    assert_eq!(unsafe { libc::grantpt(m) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::unlockpt(m) }, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` has room for the path and its NUL.
    let r = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
    assert_eq!(r, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated path.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(m, libc::F_SETFL, libc::O_NONBLOCK) };
    (
        std::fs::File::from(master),
        path.to_str().unwrap().to_owned(),
    )
}

/// Whether the terminal behind `master` echoes (TCGETS on a pty master
/// reports the slave's settings).
fn echo_on(master: &std::fs::File) -> bool {
    let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `t` has room for one termios, filled on success.
    let r = unsafe { libc::tcgetattr(master.as_raw_fd(), t.as_mut_ptr()) };
    assert_eq!(r, 0, "tcgetattr");
    // SAFETY: filled by tcgetattr.
    unsafe { t.assume_init() }.c_lflag & libc::ECHO != 0
}

/// Reads what the child wrote to its terminal until `until` shows up.
fn read_until(master: &mut std::fs::File, until: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(until) {
        assert!(
            Instant::now() < deadline,
            "no {until:?} on the terminal: {seen:?}"
        );
        match master.read(&mut buf) {
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("reading the pty: {e}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits until echo is off (the child turns it off before the prompt).
fn wait_echo_off(master: &std::fs::File) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while echo_on(master) {
        assert!(Instant::now() < deadline, "echo never went off");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn child(case: &str, pty: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--test-threads=1", "--nocapture"])
        .env(CASE, case)
        .env(PTY, pty)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// In the child: a new session with the pty as controlling terminal.
fn take_the_pty(path: &str) {
    // SAFETY: setsid takes no argument; the child is no group leader.
    assert!(unsafe { libc::setsid() } >= 0, "setsid");
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: a valid path; the descriptor is kept open for the test's life.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR) };
    assert!(fd >= 0, "open the pty slave");
    // SAFETY: make it the controlling terminal (already is, on Linux).
    unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
}

#[test]
fn prompt_on_a_pseudo_terminal() {
    if let Ok(case) = std::env::var(CASE) {
        if case == "notty" {
            // SAFETY: as in `take_the_pty`; no terminal is opened after.
            assert!(unsafe { libc::setsid() } >= 0);
            match prompt_password("Password: ") {
                Err(Error::NoTerminal { source }) => {
                    println!("result: no terminal, errno {:?}", source.raw_os_error());
                }
                other => println!("result: unexpected {:?}", other.map(|s| s.len())),
            }
            common::child::exit(0);
        }
        take_the_pty(&std::env::var(PTY).unwrap());
        // The cases expect each signal's default course unless they set
        // another: the test binary may have been started with some ignored
        // (a background job of a shell, nohup), which its children inherit.
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: setting a standard disposition before any prompt runs.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        if case == "ignored" {
            // The program ignores SIGINT and prompts from a worker thread:
            // the handler runs on the main thread, the prompt must still end.
            // SAFETY: setting a standard disposition before any prompt runs.
            unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
            let worker = std::thread::spawn(|| match prompt_password("Password: ") {
                Ok(p) => println!("result: read {} bytes after the signal", p.len()),
                Err(e) => println!("result: error {e}"),
            });
            worker.join().unwrap();
            common::child::exit(0);
        }
        match prompt_password("Password: ") {
            Ok(p) => {
                let copies = memscan::count(&memscan::Masked::from_fn(32, pass_char));
                println!("result: ok {} {} copies {copies}", p.len(), p.is_locked());
            }
            Err(Error::InvalidUtf8) => println!("result: not utf-8"),
            Err(e) => println!("result: error {e}"),
        }
        common::child::exit(0);
    }

    // A normal return.
    let (mut master, pty) = open_pty();
    let c = child("ok", &pty);
    read_until(&mut master, "Password: ");
    wait_echo_off(&master);
    for i in 0..40 {
        master.write_all(&[pass_char(i)]).unwrap();
    }
    master.write_all(b"\n").unwrap();
    let out = c.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("result: ok 40 true copies 1"),
        "the passphrase, locked, once in the child's memory: {stdout}\n{out:?}"
    );
    assert!(echo_on(&master), "echo on again after a normal return");
    let shown = read_until(&mut master, "\n");
    let echoed = shown
        .as_bytes()
        .windows(8)
        .any(|w| w.iter().enumerate().all(|(k, &b)| b == pass_char(k)));
    assert!(!echoed, "the passphrase was not echoed: {shown:?}");

    // An error (input that is not UTF-8).
    let (mut master, pty) = open_pty();
    let c = child("bad", &pty);
    read_until(&mut master, "Password: ");
    wait_echo_off(&master);
    master.write_all(b"\xff\xfe\n").unwrap();
    let out = c.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("result: not utf-8"), "{stdout}\n{out:?}");
    assert!(echo_on(&master), "echo on again after an error");

    // SIGINT while the prompt waits: the child dies of it, echo back on.
    let (mut master, pty) = open_pty();
    let c = child("sigint", &pty);
    read_until(&mut master, "Password: ");
    wait_echo_off(&master);
    let pid = libc::pid_t::try_from(c.id()).unwrap();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{out:?}");
    assert!(echo_on(&master), "echo on again after SIGINT");

    // SIGINT ignored by the program, the prompt on a worker thread: the
    // prompt ends at the signal, with echo back on, and reads nothing typed
    // after it (which the terminal now echoes).
    let (mut master, pty) = open_pty();
    let c = child("ignored", &pty);
    read_until(&mut master, "Password: ");
    wait_echo_off(&master);
    let pid = libc::pid_t::try_from(c.id()).unwrap();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !echo_on(&master) {
        assert!(Instant::now() < deadline, "echo never came back on");
        std::thread::sleep(Duration::from_millis(5));
    }
    master.write_all(b"typed after the signal\n").unwrap();
    let out = c.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("result: error") && stdout.contains("interrupted by a signal"),
        "the prompt ended at the signal: {stdout}\n{out:?}"
    );

    // No controlling terminal: a clear error.
    let out = child("notty", "").wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // ENXIO: the kernel's "no controlling terminal" (tty(4)).
    let enxio = format!("result: no terminal, errno Some({})", libc::ENXIO);
    assert!(stdout.contains(&enxio), "{stdout}\n{out:?}");
}

/// A process out of file descriptors, with a controlling terminal: opening
/// `/dev/tty` fails with `EMFILE`, which is `Error::Terminal` saying what
/// to do, not `Error::NoTerminal`.
#[test]
fn out_of_descriptors_is_not_no_terminal() {
    let out = common::child::run("out_of_descriptors_is_not_no_terminal", || {
        let (master, pty) = open_pty();
        take_the_pty(&pty);
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(64),
                maximum: Some(64),
            },
        )
        .unwrap();
        let mut held = Vec::new();
        let emfile = loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => held.push(f),
                Err(e) => break e,
            }
            assert!(held.len() < 64, "RLIMIT_NOFILE of 64 not enforced");
        };
        assert_eq!(emfile.raw_os_error(), Some(libc::EMFILE));
        let e = prompt_password("Password: ").unwrap_err();
        let Error::Terminal { call, source } = &e else {
            panic!("expected Error::Terminal, got {e:?}");
        };
        assert_eq!(
            (*call, source.raw_os_error()),
            ("open /dev/tty", Some(libc::EMFILE))
        );
        let msg = e.to_string();
        for needle in ["open /dev/tty failed", "file descriptor", "ulimit -n"] {
            assert!(msg.contains(needle), "{needle} not in {msg}");
        }
        // With a descriptor free again, the same terminal works.
        held.pop();
        // Typed once echo is off (the prompt flushes earlier input).
        let typist = std::thread::spawn(move || {
            wait_echo_off(&master);
            (&master).write_all(b"x\n").unwrap();
            master
        });
        let line = prompt_password("").expect("the terminal was there all along");
        assert_eq!(&*line, "x");
        // Closing the master would hang up the terminal: SIGHUP to this session leader.
        std::mem::forget(typist.join().unwrap());
    });
    common::child::assert_success(&out);
}
