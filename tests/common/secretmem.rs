//! Secret memory (`Backing::SecretMem`, memfd_secret(2)) as the tests make
//! it and as the kernel shows it: the options, whether the host offers it,
//! and the secret files this process holds open and mapped.
#![allow(dead_code, unreachable_pub)]

use lockedmem::{Backing, Error, Isolation, Options};

use super::{procfs, start_of};

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

/// Whether this build of the crate has secret memory at all: Linux has
/// memfd_secret(2); the portable test mode (`--cfg lockedmem_portable`),
/// like macOS and the BSDs, has none and never makes the call.
pub const IN_THIS_BUILD: bool = cfg!(not(lockedmem_portable));

/// Whether this process can make secret memory. Where the build has none
/// (the portable test mode), asserts what a program gets instead
/// (`assert_refused_with_fallback`) and answers `false`, so that a test of
/// secret memory checks the mode's real behaviour rather than pass; where
/// the build has it but this kernel refuses it, the test says so and
/// returns (and fails in CI: `super::skip`).
pub fn available() -> bool {
    match lockedmem::Host::probe().secret_memory {
        Ok(true) => true,
        Ok(false) if !IN_THIS_BUILD => {
            assert_refused_with_fallback(None);
            eprintln!(
                "no secret memory in this build (the portable test mode): checked that \
                 SecretMem is Unsupported and PreferSecretMem falls back instead"
            );
            false
        }
        other => {
            super::skip(&format!("memfd_secret(2) unavailable here: {other:?}"));
            false
        }
    }
}

/// Where secret memory cannot be had: `Backing::SecretMem` boxes, packed
/// boxes and vectors are `Error::Unsupported` naming `memfd_secret` (with
/// the system's answer `errno`, or none where the build never asks), and
/// `PreferSecretMem` makes working anonymous boxes instead, page-isolated
/// and packed: locked, not a `/secretmem` mapping, under the fork policy of
/// secret memory (`Exclude`, `dc`). No secret file is left open or mapped.
pub fn assert_refused_with_fallback(errno: Option<i32>) {
    let refused = |e: Error| match &e {
        Error::Unsupported { call, source } => {
            assert_eq!(*call, "memfd_secret", "{e:?}");
            assert_eq!(source.raw_os_error(), errno, "{e:?}");
            assert!(e.to_string().contains("memfd_secret"), "{e}");
        }
        _ => panic!("expected Error::Unsupported naming memfd_secret: {e:?}"),
    };
    // `PreferSecretMem` first: in a fresh process its first box meets the
    // refusal itself (later ones skip the call once it was refused).
    for isolation in [Isolation::Page, Isolation::Packed] {
        let mut b = prefer().isolation(isolation).zeroed::<[u8; 32]>().unwrap();
        assert_eq!(b.backing(), Backing::Anonymous);
        assert_eq!(b.isolation(), isolation);
        assert!(b.is_locked());
        b.fill(7);
        assert!(b.iter().all(|&x| x == 7));
        let vma = procfs::vma_at(start_of(&*b)).unwrap();
        assert!(vma.path.is_empty(), "anonymous: {vma:?}");
        assert!(vma.has("lo"), "{:?}", vma.flags);
        assert!(vma.has("dc"), "the fork policy is Exclude: {:?}", vma.flags);
    }
    for opts in [secret(), secret_packed()] {
        refused(opts.zeroed::<[u8; 32]>().unwrap_err());
        refused(opts.vec::<u8>(64).unwrap_err());
    }
    assert!(!matches!(lockedmem::Host::probe().secret_memory, Ok(true)));
    assert_eq!((secret_fds(), secret_maps()), (0, 0), "no secret file");
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
    procfs::maps()
        .iter()
        .filter(|v| v.path.starts_with("/secretmem"))
        .count()
}
