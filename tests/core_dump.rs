//! A real core dump, written by the kernel, against what the platform
//! promises (`Host::dump_exclusion`).
//!
//! The child fills boxes (page-isolated, packed, one on a recycled slot,
//! one under `DumpPolicy::Exclude`, and secret memory where the build has
//! it) with random bytes (getrandom writes them straight into the locked
//! pages), and a plain heap buffer with other random bytes as a control. It
//! hands them to the parent through files written by write(2) from the
//! buffers themselves, so no user-space copy is made, then aborts. The
//! parent finds the control in the core file (so the search works and the
//! core is real), then:
//! - where boxes are left out of core dumps (Linux, `MADV_DONTDUMP`), no
//!   byte of any box in it;
//! - where they cannot be (the portable test mode, as macOS), every box
//!   whole in it: nothing in a box keeps a core from holding it, and
//!   `DumpPolicy::Exclude` is `Error::Unsupported` naming the mechanism. The
//!   defence there is to write no core at all: `Hardening::no_core_dumps`,
//!   after which the same abort writes none (the second test, run in every
//!   mode).
// Linux only: reads a core file as Linux writes it (core_pattern), and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;

use common::child;
use common::cores::{
    allow_cores, contains, core_dir, core_file, core_pattern, dump_raw, random_into, remove,
};
use lockedmem::{Backing, DumpPolicy, Error, Hardening, Isolation, LockedBox, Options, Step};

/// The anonymous boxes the child hands over, by file name; and the
/// secret-memory ones.
const ANONYMOUS: [&str; 4] = ["secret", "packed", "recycled", "dump_exclude"];
const SECRET_MEMORY: [&str; 2] = ["secretmem", "secretmem_packed"];

#[test]
fn a_core_dump_holds_a_box_only_where_the_platform_cannot_exclude_it() {
    const TEST: &str = "a_core_dump_holds_a_box_only_where_the_platform_cannot_exclude_it";
    let Some(pattern) = core_pattern() else {
        return;
    };
    let dir = core_dir(TEST);
    if !child::is_child() {
        fs::create_dir_all(&dir).unwrap();
    }
    let dumps_excluded = common::promises().dump_exclusion;
    let out = child::run(TEST, || {
        let dir = core_dir(TEST);
        allow_cores(&dir);

        let secret = LockedBox::<[u8; 32]>::new_with(|k| random_into(k)).unwrap();
        let mut packed = Options::new()
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
            .unwrap();
        random_into(&mut *packed);
        // A slot recycled from the cache is covered too.
        drop(LockedBox::<[u8; 48]>::new_zeroed().unwrap());
        let mut recycled = LockedBox::<[u8; 48]>::new_zeroed().unwrap();
        random_into(&mut *recycled);
        // `DumpPolicy::Exclude` keeps its promise or refuses, naming the
        // mechanism; where it refuses, a `BestEffort` box stands in.
        let exclude = Options::new()
            .dumps(DumpPolicy::Exclude)
            .zeroed::<[u8; 32]>();
        let mut dump_exclude = if dumps_excluded {
            exclude.unwrap()
        } else {
            match exclude {
                Err(Error::Unsupported { call, .. }) => {
                    assert_eq!(call, "madvise(MADV_DONTDUMP)");
                }
                other => panic!("expected DumpPolicy::Exclude to be Unsupported: {other:?}"),
            }
            LockedBox::<[u8; 32]>::new_zeroed().unwrap()
        };
        random_into(&mut *dump_exclude);
        let mut control = vec![0u8; 32];
        random_into(&mut control);
        dump_raw(&dir.join("secret.bin"), &*secret);
        dump_raw(&dir.join("packed.bin"), &*packed);
        dump_raw(&dir.join("recycled.bin"), &*recycled);
        dump_raw(&dir.join("dump_exclude.bin"), &*dump_exclude);
        dump_raw(&dir.join("control.bin"), &control);
        // Secret memory (memfd_secret(2)), page-isolated and packed, where
        // the build has it (`available` checks the fallback where not).
        let mut held = Vec::new();
        if common::secretmem::available() {
            for (name, isolation) in SECRET_MEMORY
                .into_iter()
                .zip([Isolation::Page, Isolation::Packed])
            {
                let mut b = Options::new()
                    .backing(Backing::SecretMem)
                    .isolation(isolation)
                    .zeroed::<[u8; 32]>()
                    .unwrap();
                random_into(&mut *b);
                dump_raw(&dir.join(format!("{name}.bin")), &*b);
                held.push(b);
            }
        }
        std::process::abort();
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(
        out.status.core_dumped(),
        "the kernel reports a core written"
    );

    let read = |name: &str| fs::read(dir.join(format!("{name}.bin"))).unwrap();
    let control = read("control");
    let core_path = core_file(&dir)
        .unwrap_or_else(|| panic!("no core file in {dir:?} (core_pattern {pattern:?})"));
    let core = fs::read(&core_path).unwrap();
    assert!(
        contains(&core, &control),
        "the control buffer is in the core: the search works"
    );
    for name in ANONYMOUS {
        let bytes = read(name);
        assert!(bytes.len() >= 32, "{name}");
        let (head, tail) = bytes.split_at(bytes.len() / 2);
        if dumps_excluded {
            assert!(
                !contains(&core, head) && !contains(&core, tail),
                "{name}: a box's bytes are not in the core"
            );
        } else {
            // The documented truth where no exclusion exists: the core
            // holds the box whole (the crate says so; the defence is to
            // write no core, `Hardening::no_core_dumps`, below).
            assert!(
                contains(&core, &bytes),
                "{name}: without dump exclusion the core holds the box"
            );
        }
    }
    let secretmem = lockedmem::Host::probe().secret_memory == Ok(true);
    for name in SECRET_MEMORY {
        let path = dir.join(format!("{name}.bin"));
        assert_eq!(path.exists(), secretmem, "{name}");
        if secretmem {
            let bytes = fs::read(path).unwrap();
            assert_eq!(bytes.len(), 32);
            assert!(
                !contains(&core, &bytes[..16]) && !contains(&core, &bytes[16..]),
                "{name}"
            );
        }
    }
    remove(&dir);
}

/// `Hardening::no_core_dumps` is the defence where boxes cannot be left out
/// of a core (and a second one where they can): the same abort as above,
/// with the same core limit raised, writes no core once it is applied.
#[test]
fn no_core_dumps_keeps_an_abort_from_writing_a_core() {
    const TEST: &str = "no_core_dumps_keeps_an_abort_from_writing_a_core";
    if core_pattern().is_none() {
        return;
    }
    let dir = core_dir(TEST);
    if !child::is_child() {
        fs::create_dir_all(&dir).unwrap();
    }
    let out = child::run(TEST, || {
        let dir = core_dir(TEST);
        allow_cores(&dir);
        let secret = LockedBox::<[u8; 32]>::new_with(|k| random_into(k)).unwrap();
        dump_raw(&dir.join("secret.bin"), &*secret);
        let report = Hardening::new().no_core_dumps().apply().unwrap();
        assert_eq!(report.no_core_dumps, Step::Applied);
        assert!(report.after.core_dumps_off());
        std::process::abort();
    });
    child::assert_signal(&out, libc::SIGABRT);
    assert!(
        dir.join("secret.bin").exists(),
        "the child made its box before the abort"
    );
    assert!(!out.status.core_dumped(), "the kernel reports no core");
    assert_eq!(core_file(&dir), None, "no core file in {dir:?}");
    remove(&dir);
}
