//! Secret memory (`Backing::SecretMem`, memfd_secret(2)) as the tests make
//! it and as the kernel shows it: the options, whether the host offers it,
//! and the secret files this process holds open and mapped.
#![allow(dead_code, unreachable_pub)]

use lockedmem::{Backing, Isolation, Options};

/// Options for a page-isolated box of secret memory.
pub fn secret() -> Options {
    Options::new().backing(Backing::SecretMem)
}

/// Options for a packed box of secret memory.
pub fn secret_packed() -> Options {
    secret().isolation(Isolation::Packed)
}

/// Options for `Backing::PreferSecretMem`.
pub fn prefer() -> Options {
    Options::new().backing(Backing::PreferSecretMem)
}

/// Whether this kernel lets the process make secret memory at all; if not,
/// the test says so and returns (and fails in CI: `super::skip`).
pub fn available() -> bool {
    match lockedmem::Host::probe().secret_memory {
        Ok(true) => true,
        other => {
            super::skip(&format!("memfd_secret(2) unavailable here: {other:?}"));
            false
        }
    }
}

/// Descriptors of this process that name a secret memory file.
pub fn secret_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/secretmem"))
        .count()
}

/// Mappings of this process of a secret memory file.
pub fn secret_maps() -> usize {
    super::procfs::maps()
        .iter()
        .filter(|v| v.path.starts_with("/secretmem"))
        .count()
}
