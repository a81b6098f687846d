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
use std::path::{Path, PathBuf};

use common::child;
use lockedmem::{Backing, DumpPolicy, Error, Hardening, Isolation, LockedBox, Options, Step};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Where the cores go, if set (else a directory under the temporary one
/// named after the test process).
const DIR_VAR: &str = "LOCKEDMEM_CORE_DIR";

/// Writes `bytes` to a new file with write(2) from the buffer itself.
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

/// The directory `test`'s child writes its core and files into: the same
/// path in the parent (the test process) and in its child, which names the
/// parent by its process ID.
fn core_dir(test: &str) -> PathBuf {
    let test_process = if child::is_child() {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    let base = std::env::var_os(DIR_VAR).map_or_else(
        || std::env::temp_dir().join(format!("lockedmem-core-{test_process}")),
        PathBuf::from,
    );
    base.join(test)
}

/// Removes `dir`, and the directory of the test process's cores if it is
/// empty then (the other test may still be using it).
fn remove(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    if let Some(base) = dir.parent() {
        let _ = fs::remove_dir(base);
    }
}

/// The core pattern, or `None` (said, and a failure in CI) where cores go
/// to a helper (systemd-coredump, apport) that this test cannot read back.
fn core_pattern() -> Option<String> {
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if std::env::var_os(DIR_VAR).is_none() && pattern.starts_with('|') {
        common::skip(&format!(
            "core_pattern pipes cores to {pattern:?}; cannot inspect a core here"
        ));
        return None;
    }
    Some(pattern)
}

/// In the child: moves into `dir`, lets the process write a core as large
/// as the hard limit allows, and makes sure anonymous private memory goes
/// into it (`coredump_filter` bit 0, on by default), so that what keeps a
/// box out is the box's own advice and nothing else.
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
    fs::write("/proc/self/coredump_filter", "0x33").unwrap();
}

/// The core file the child left in `dir`, if any.
fn core_file(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
}

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
