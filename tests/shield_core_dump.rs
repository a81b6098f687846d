//! A real core file of a process holding shielded secrets (feature
//! `shield`) holds neither their plaintext nor the key they are encrypted
//! under, while it holds a control buffer of the heap. The child writes
//! each secret to a file from a borrow guard's own memory and each derived
//! key from a box the test hook filled (with write(2), so no user-space
//! copy is made), drops them, then aborts.
// Linux only: reads a core file as Linux writes it (core_pattern), and /proc.
#![cfg(all(target_os = "linux", feature = "shield"))]

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::child;
use lockedmem::{Backing, LockedBox, Options};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const TEST: &str = "a_core_dump_holds_no_shielded_plaintext_and_no_key";

fn dump_raw(path: &Path, bytes: &[u8]) {
    let file = fs::File::create(path).unwrap();
    let n = rustix::io::write(&file, bytes).unwrap();
    assert_eq!(n, bytes.len());
}

fn random_into(buf: &mut [u8]) {
    let len = buf.len();
    let n = rustix::rand::getrandom(buf, rustix::rand::GetRandomFlags::empty()).unwrap();
    assert_eq!(n, len);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The directory the child writes its core and files into, the same in the
/// parent and the child (named after the test process).
fn core_dir() -> PathBuf {
    let test_process = if child::is_child() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    std::env::temp_dir()
        .join(format!("lockedmem-shield-core-{test_process}"))
        .join(TEST)
}

fn allow_cores(dir: &Path) {
    std::env::set_current_dir(dir).unwrap();
    let hard = getrlimit(Resource::Core).maximum;
    assert_ne!(hard, Some(0), "the hard RLIMIT_CORE allows no core");
    setrlimit(
        Resource::Core,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    )
    .unwrap();
    // Anonymous private and shared memory go into the core (bits 0, 1, 4,
    // 5): what keeps the shield's memory out is its own advice.
    fs::write("/proc/self/coredump_filter", "0x33").unwrap();
}

const BACKINGS: [(&str, Backing); 2] = [
    ("derived", Backing::Anonymous),
    ("secretmem", Backing::PreferSecretMem),
];

#[test]
fn a_core_dump_holds_no_shielded_plaintext_and_no_key() {
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.starts_with('|') {
        common::skip(&format!("core_pattern pipes cores to {pattern:?}"));
        return;
    }
    if !common::promises().dump_exclusion {
        common::skip("this build cannot exclude memory from cores");
        return;
    }
    let dir = core_dir();
    if !child::is_child() {
        fs::create_dir_all(&dir).unwrap();
    }
    let out = child::run(TEST, || {
        let dir = core_dir();
        allow_cores(&dir);
        let mut held = Vec::new();
        for (name, backing) in BACKINGS {
            let mut many = Vec::new();
            for i in 0..3 {
                let b = Options::new()
                    .backing(backing)
                    .shielded_with::<[u8; 32]>(|k| random_into(k))
                    .unwrap();
                dump_raw(
                    &dir.join(format!("{name}-plain-{i}.bin")),
                    &*b.borrow().unwrap(),
                );
                many.push(b);
            }
            // Written once more: the new value, under a new nonce.
            let mut w = many[0].borrow_mut().unwrap();
            random_into(&mut *w);
            dump_raw(&dir.join(format!("{name}-plain-3.bin")), &*w);
            drop(w);
            let mut key = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
            lockedmem::__derived_key_for_tests(backing, &mut key).unwrap();
            dump_raw(&dir.join(format!("{name}-key.bin")), &*key);
            drop(key);
            held.push(many);
        }
        let mut control = vec![0u8; 32];
        random_into(&mut control);
        dump_raw(&dir.join("control.bin"), &control);
        std::process::abort();
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(
        out.status.core_dumped(),
        "the kernel reports a core written"
    );
    let read = |name: &str| fs::read(dir.join(format!("{name}.bin"))).unwrap();
    let core_path = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .unwrap_or_else(|| panic!("no core file in {dir:?} (core_pattern {pattern:?})"));
    let core = fs::read(&core_path).unwrap();
    assert!(
        contains(&core, &read("control")),
        "the control buffer is in the core: the search works"
    );
    for (name, _) in BACKINGS {
        let mut names: Vec<String> = (0..4).map(|i| format!("{name}-plain-{i}")).collect();
        names.push(format!("{name}-key"));
        for n in names {
            let bytes = read(&n);
            assert_eq!(bytes.len(), 32, "{n}");
            assert!(
                !contains(&core, &bytes[..16]) && !contains(&core, &bytes[16..]),
                "{n}: found in the core"
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
    if let Some(base) = dir.parent() {
        let _ = fs::remove_dir(base);
    }
}
