//! A real core dump, written by the kernel, holds no byte of a live box.
//!
//! The child fills boxes (page-isolated, packed, and one on a recycled slot)
//! with random bytes (getrandom writes them straight into the locked pages),
//! and a plain heap buffer with other random bytes as a control. It hands
//! them to the parent through files written by write(2) from the buffers
//! themselves, so no user-space copy is made, then aborts. The parent finds
//! the control in the core file (so the search works and the core is real)
//! and no secret anywhere in it.
#![cfg(target_os = "linux")] // Linux's /proc, signals, fork or capabilities

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::child;
use lockedmem::{Backing, Isolation, LockedBox, Options};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

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

#[test]
fn a_core_dump_holds_no_secret() {
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if std::env::var_os(DIR_VAR).is_none() && pattern.starts_with('|') {
        // Cores go to a helper (systemd-coredump, apport) we cannot read back.
        // Say so loudly rather than pass quietly (and fail in CI); the smaps
        // `dd` check in kernel_view.rs still covers the flag.
        common::skip(&format!(
            "core_pattern pipes cores to {pattern:?}; cannot inspect a core here"
        ));
        return;
    }
    let dir: PathBuf = match std::env::var_os(DIR_VAR) {
        Some(d) => d.into(),
        None => {
            let d = std::env::temp_dir().join(format!("lockedmem-core-{}", std::process::id()));
            fs::create_dir_all(&d).unwrap();
            // SAFETY: the variable is set before any thread of ours reads the
            // environment concurrently (the child reads it at start-up only).
            unsafe { std::env::set_var(DIR_VAR, &d) };
            d
        }
    };
    let out = child::run("a_core_dump_holds_no_secret", || {
        let dir = PathBuf::from(std::env::var_os(DIR_VAR).unwrap());
        std::env::set_current_dir(&dir).unwrap();
        let hard = getrlimit(Resource::Core).maximum;
        setrlimit(
            Resource::Core,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        )
        .unwrap();

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
        // Secret memory (memfd_secret(2)), page-isolated and packed.
        let mut secretmem = Options::new()
            .backing(Backing::SecretMem)
            .zeroed::<[u8; 32]>()
            .unwrap();
        random_into(&mut *secretmem);
        let mut secretmem_packed = Options::new()
            .backing(Backing::SecretMem)
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
            .unwrap();
        random_into(&mut *secretmem_packed);
        let mut control = vec![0u8; 32];
        random_into(&mut control);
        dump_raw(&dir.join("secret.bin"), &*secret);
        dump_raw(&dir.join("packed.bin"), &*packed);
        dump_raw(&dir.join("recycled.bin"), &*recycled);
        dump_raw(&dir.join("control.bin"), &control);
        dump_raw(&dir.join("secretmem.bin"), &*secretmem);
        dump_raw(&dir.join("secretmem_packed.bin"), &*secretmem_packed);
        std::process::abort();
    });
    child::assert_signal(&out, libc::SIGABRT);

    let secret = fs::read(dir.join("secret.bin")).unwrap();
    let packed = fs::read(dir.join("packed.bin")).unwrap();
    let recycled = fs::read(dir.join("recycled.bin")).unwrap();
    let control = fs::read(dir.join("control.bin")).unwrap();
    let secretmem = fs::read(dir.join("secretmem.bin")).unwrap();
    let secretmem_packed = fs::read(dir.join("secretmem_packed.bin")).unwrap();
    let core_path = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .unwrap_or_else(|| panic!("no core file in {dir:?} (core_pattern {pattern:?})"));
    let core = fs::read(&core_path).unwrap();
    let _ = fs::remove_dir_all(&dir);

    assert_eq!(secret.len(), 32);
    assert!(
        contains(&core, &control),
        "the control buffer is in the core: the search works"
    );
    assert!(
        !contains(&core, &secret),
        "the box's bytes are not in the core"
    );
    assert!(!contains(&core, &secret[..16]) && !contains(&core, &secret[16..]));
    assert_eq!((packed.len(), recycled.len()), (32, 48));
    assert!(
        !contains(&core, &packed[..16]) && !contains(&core, &packed[16..]),
        "packed"
    );
    assert!(
        !contains(&core, &recycled[..24]) && !contains(&core, &recycled[24..]),
        "recycled"
    );
    for (name, bytes) in [
        ("secretmem", &secretmem),
        ("secretmem packed", &secretmem_packed),
    ] {
        assert_eq!(bytes.len(), 32);
        assert!(
            !contains(&core, &bytes[..16]) && !contains(&core, &bytes[16..]),
            "{name}"
        );
    }
}
