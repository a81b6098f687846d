//! A secret taken out of the environment lives only in locked memory: a
//! scan of the child's whole memory finds it once, and its environment
//! block (`/proc/self/environ`) and `std::env` no longer have it.
// Linux only: scans its own memory through /proc/self/mem (common::memscan).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

use common::{child, memscan};
use lockedmem::{Error, LockedString};

const CHILD: &str = "LOCKEDMEM_ENV_TEST_CHILD";
const NAME: &str = "LOCKEDMEM_TEST_API_TOKEN";

fn secret_char(i: usize) -> u8 {
    let x = (i as u64 ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    b'A' + ((x >> 40) % 26) as u8
}

fn needle(from: usize) -> memscan::Masked {
    memscan::Masked::from_fn(32, |i| secret_char(from + i))
}

#[test]
fn a_secret_moves_out_of_the_environment() {
    if std::env::var_os(CHILD).is_some() {
        assert_eq!(memscan::count(&needle(0)), 1, "in the environment block");
        // SAFETY: this child runs one test on one thread; nothing else
        // touches the environment.
        let token = unsafe { LockedString::from_env(NAME) }.expect("the variable is set");
        assert_eq!(token.len(), 200);
        assert!(token.is_locked());
        assert!(std::env::var_os(NAME).is_none(), "removed");
        let environ = std::fs::read("/proc/self/environ").unwrap();
        let holds_value = environ
            .windows(16)
            .any(|w| w.iter().enumerate().all(|(k, &b)| b == secret_char(k)));
        assert!(!holds_value, "the value is gone from /proc/self/environ");
        for from in [0, 100, 168] {
            assert_eq!(
                memscan::count(&needle(from)),
                1,
                "only in locked memory ({from})"
            );
        }
        drop(token);
        assert_eq!(memscan::count(&needle(0)), 0, "wiped");
        // SAFETY: as above.
        let missing = unsafe { LockedString::from_env(NAME) };
        assert!(matches!(missing, Err(Error::EnvVarNotSet { .. })));
        common::child::exit(0);
    }
    let value: String = (0..200).map(|i| secret_char(i) as char).collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_secret_moves_out_of_the_environment",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(NAME, value)
        .output()
        .unwrap();
    child::assert_success(&out);
}

/// Found by a second reader: with the variable in the environment twice
/// (execve accepts that), the second value stayed in the environment block.
#[test]
fn every_entry_of_a_duplicated_variable_is_wiped() {
    if std::env::var_os("LOCKEDMEM_ENV_DUP_CHILD").is_some() {
        // SAFETY: one test, one thread, nothing else touches the environment.
        let token = unsafe { LockedString::from_env(NAME) }.expect("set");
        assert_eq!(&*token, "first-value-0123456789");
        let environ = std::fs::read("/proc/self/environ").unwrap();
        for value in [&b"first-value-0123456789"[..], b"second-value-9876543210"] {
            assert!(
                !environ.windows(value.len()).any(|w| w == value),
                "{} still in /proc/self/environ",
                String::from_utf8_lossy(value)
            );
        }
        common::child::exit(0);
    }
    // posix_spawn with an environment that holds the name twice.
    let exe = std::ffi::CString::new(
        std::env::current_exe()
            .unwrap()
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let args: Vec<std::ffi::CString> = [
        exe.as_bytes(),
        b"every_entry_of_a_duplicated_variable_is_wiped",
        b"--exact",
        b"--test-threads=1",
    ]
    .iter()
    .map(|a| std::ffi::CString::new(*a).unwrap())
    .collect();
    let envs: Vec<std::ffi::CString> = [
        "LOCKEDMEM_ENV_DUP_CHILD=1".to_owned(),
        format!("{NAME}=first-value-0123456789"),
        format!("{NAME}=second-value-9876543210"),
    ]
    .into_iter()
    .map(|e| std::ffi::CString::new(e).unwrap())
    .collect();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = envs.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let mut pid: libc::pid_t = 0;
    // SAFETY: NUL-terminated argument and environment arrays of valid C
    // strings, alive for the call.
    let r = unsafe {
        libc::posix_spawn(
            &raw mut pid,
            exe.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    assert_eq!(r, 0, "posix_spawn");
    let mut status = 0;
    // SAFETY: waiting for the child just spawned.
    assert_eq!(unsafe { libc::waitpid(pid, &raw mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status:#x}"
    );
}
