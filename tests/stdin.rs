//! A secret read from standard input: with `raw_stdin()`, a scan of the
//! child's whole memory finds it once while the string lives (in its
//! locked pages) and nowhere after the drop, and the rest of the pipe is
//! still unread; with `std::io::stdin()`, whose buffer the crate cannot
//! wipe, the same scan finds a copy left after the drop (so the scan can
//! see what it looks for).
// Linux only: scans its own memory through /proc/self/mem (common::memscan).
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::memscan;
use lockedmem::LockedString;

const CHILD: &str = "LOCKEDMEM_STDIN_TEST_CHILD";
const LEN: usize = 48;
const REST: &[u8] = b"the rest of the pipe\n";

fn secret_byte(i: usize) -> u8 {
    let x = (i as u64 ^ 0xbb67_ae85_84ca_a73b).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    b'A' + ((x >> 41) % 26) as u8
}

fn needle() -> memscan::Masked {
    memscan::Masked::from_fn(32, |i| secret_byte(8 + i))
}

/// Runs `test` in a child whose standard input is a pipe holding the
/// secret line, then `REST`; the parent writes the line one byte at a
/// time from the generator, so no run of it sits in the parent's memory
/// either.
fn run_with_piped_secret(test: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, test)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    for i in 0..LEN {
        pipe.write_all(&[secret_byte(i)]).unwrap();
    }
    pipe.write_all(b"\n").unwrap();
    pipe.write_all(REST).unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    common::child::assert_success(&out);
}

fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

#[test]
fn raw_stdin_leaves_one_copy_and_the_rest_of_the_pipe() {
    const NAME: &str = "raw_stdin_leaves_one_copy_and_the_rest_of_the_pipe";
    if !is_child(NAME) {
        return run_with_piped_secret(NAME);
    }
    let line = LockedString::read_line(lockedmem::raw_stdin(), 1024).unwrap();
    assert_eq!(line.len(), LEN);
    assert!(line.is_locked());
    assert_eq!(memscan::count(&needle()), 1, "only in the string");
    drop(line);
    assert_eq!(memscan::count(&needle()), 0, "none after the drop");
    let mut rest = Vec::new();
    lockedmem::raw_stdin().read_to_end(&mut rest).unwrap();
    assert_eq!(rest, REST, "the rest of the pipe, unread until now");
    std::process::exit(0);
}

/// The contrast: std's `Stdin` reads the whole pipe into its own buffer,
/// which keeps the secret after the string is wiped, and takes the rest of
/// the pipe with it.
#[test]
fn std_stdin_leaves_a_copy_behind() {
    const NAME: &str = "std_stdin_leaves_a_copy_behind";
    if !is_child(NAME) {
        return run_with_piped_secret(NAME);
    }
    let line = LockedString::read_line(std::io::stdin().lock(), 1024).unwrap();
    assert_eq!(line.len(), LEN);
    assert!(
        memscan::count(&needle()) >= 2,
        "the string and std's buffer"
    );
    drop(line);
    assert!(
        memscan::count(&needle()) >= 1,
        "std's buffer still holds the secret"
    );
    let mut rest = Vec::new();
    lockedmem::raw_stdin().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "std read the rest of the pipe ahead");
    std::process::exit(0);
}
