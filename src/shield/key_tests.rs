//! What only the crate can test: where the derived key is not. The key is
//! named nowhere in the API, so these tests live in the crate and take it
//! from `derived_key_into`; everything else they do goes through the
//! public API and looks from outside, with the integration tests' helpers
//! (`tests/common`): a scan of the whole process (`/proc/self/mem`) finds
//! the key nowhere when it is derived for each use and nowhere outside
//! secret memory when it is kept there, and a real core file of a process
//! holding shielded secrets holds neither their plaintext nor the key.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use self::common::child;
use self::common::cores::{
    allow_cores, contains, core_dir, core_file, core_pattern, dump_raw, random_into, remove,
};
use self::common::memscan::{self, Masked};
use self::common::seeded::{fill, is};
use super::derived_key_into;
use crate::{Backing, LockedBox, Options};
use std::fs;
use std::os::unix::process::ExitStatusExt;

#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
#[path = "../../tests/common/mod.rs"]
mod common;

/// Options for a shielded secret whose key is in secret memory where the
/// kernel has it, or derived for each use.
fn shield_opts(backing: Backing) -> Options {
    Options::new().backing(backing)
}

// ------------------------------------------------ the process's memory ---

/// The derived key, kept masked; and a check that the scan finds the copy
/// made here (the control).
fn key_needle(backing: Backing) -> Masked {
    let mut k = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    derived_key_into(backing, &mut k).unwrap();
    let n = Masked::from_fn(32, |i| k[i]);
    assert!(k.iter().any(|&b| b != 0));
    assert_key_count(&n, 1, "the control: the scan finds the copy made here");
    drop(k);
    n
}

/// The derived key occurs `expected` times outside secret memory (whole or
/// in 16-byte fragments); the hits are shown if not.
#[track_caller]
fn assert_key_count(n: &Masked, expected: usize, what: &str) {
    let r = memscan::scan(memscan::Target::Own, &[n]);
    assert!(
        r.full[0] == expected && r.fragments[0] == expected,
        "{what}: {} whole, {} fragments, expected {expected}: {:#?}",
        r.full[0],
        r.fragments[0],
        r.hits
    );
}

/// Uses the shield every way there is, then looks for the derived key.
fn key_nowhere(backing: Backing) {
    let mut a = shield_opts(backing)
        .shielded_with::<[u8; 32]>(|k| fill(k, 1))
        .unwrap();
    let key = key_needle(backing);
    assert_key_count(&key, 0, "after making");
    let b = shield_opts(backing)
        .shielded_with::<[u8; 32]>(|k| fill(k, 2))
        .unwrap();
    assert!(is(&b.borrow().unwrap(), 2));
    fill(&mut a.borrow_mut().unwrap(), 3);
    assert!(is(&a.borrow().unwrap(), 3));
    assert_key_count(&key, 0, "after making, borrowing and writing back");
    crate::rekey().unwrap();
    assert_key_count(&key, 0, "after rekey");
    let new_key = key_needle(backing);
    assert!(is(&a.borrow().unwrap(), 3) && is(&b.borrow().unwrap(), 2));
    assert_key_count(&new_key, 0, "the new key, after borrows");
    assert_key_count(&key, 0, "the old key, at the end");
}

#[test]
fn derived_key_nowhere_when_derived_for_each_use() {
    let out = child::run(
        "shield::key_tests::derived_key_nowhere_when_derived_for_each_use",
        || {
            key_nowhere(Backing::Anonymous);
        },
    );
    child::assert_success(&out);
}

#[test]
fn derived_key_nowhere_outside_secret_memory() {
    let out = child::run(
        "shield::key_tests::derived_key_nowhere_outside_secret_memory",
        || {
            if !common::secretmem::available() {
                return;
            }
            key_nowhere(Backing::SecretMem);
        },
    );
    child::assert_success(&out);
}

// ------------------------------------------------------- a core file ---

const CORE_TEST: &str = "shield::key_tests::a_core_dump_holds_no_shielded_plaintext_and_no_key";
/// The directory of the child's core and files (`cores::core_dir`).
const CORE_DIR: &str = "shield_key_tests_a_core_dump";

const BACKINGS: [(&str, Backing); 2] = [
    ("derived", Backing::Anonymous),
    ("secretmem", Backing::PreferSecretMem),
];

#[test]
fn a_core_dump_holds_no_shielded_plaintext_and_no_key() {
    let Some(pattern) = core_pattern() else {
        return;
    };
    // Where memory cannot be kept out of cores (the portable test mode,
    // as on macOS) the ciphertext and the prekey are in the core, but no
    // plaintext and no derived key are: neither is kept anywhere between
    // uses. So the test runs there too, and checks the same.
    let dir = core_dir(CORE_DIR);
    if !child::is_child() {
        fs::create_dir_all(&dir).unwrap();
    }
    let out = child::run(CORE_TEST, || {
        let dir = core_dir(CORE_DIR);
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
            derived_key_into(backing, &mut key).unwrap();
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
    let core_path = core_file(&dir)
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
    remove(&dir);
}
