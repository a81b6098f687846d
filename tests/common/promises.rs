//! What this platform promises a box's pages, as `lockedmem::Host::probe()`
//! reports it, and the mark each promise leaves in the kernel's view
//! (/proc/self/smaps VmFlags): `dd` (`MADV_DONTDUMP`) where memory can be
//! left out of core dumps, `wf` (`MADV_WIPEONFORK`) under
//! `ForkPolicy::Wipe`, `dc` (`MADV_DONTFORK`) under `ForkPolicy::Exclude`.
//!
//! Linux makes every promise. The portable test mode (`--cfg
//! lockedmem_portable`, what macOS and the BSDs offer) makes no dump
//! exclusion and gives no zeros to fork children, so the default fork
//! policy there is `Exclude`. A test asserts the promise where it is made
//! and the mark's absence where it is not, so it checks something in both.
#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use lockedmem::{Error, ForkPolicy, Host};

#[cfg(target_os = "linux")]
use super::procfs::{self, Vma};

/// The promises of `Host::probe()` that decide a box's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promises {
    /// `Host::dump_exclusion`: boxes are left out of core dumps (`dd`).
    pub dump_exclusion: bool,
    /// `Host::fork_zeros`: `ForkPolicy::Wipe` is offered (`wf`), and it is
    /// the default fork policy.
    pub fork_zeros: bool,
    /// `Host::fork_exclusion`: `ForkPolicy::Exclude` is offered (`dc`).
    pub fork_exclusion: bool,
}

/// This host's promises, probed once (they are the platform's and the
/// kernel's, and change with no rlimit, capability or seccomp filter the
/// tests set).
pub fn promises() -> Promises {
    static PROMISES: OnceLock<Promises> = OnceLock::new();
    *PROMISES.get_or_init(|| {
        let host = Host::probe();
        Promises {
            dump_exclusion: host.dump_exclusion,
            fork_zeros: host.fork_zeros,
            fork_exclusion: host.fork_exclusion,
        }
    })
}

/// The fork policy of options that name none: `Wipe` where a fork child
/// can be given zeros, else `Exclude` (the `ForkPolicy` docs).
pub fn default_fork() -> ForkPolicy {
    if promises().fork_zeros {
        ForkPolicy::Wipe
    } else {
        ForkPolicy::Exclude
    }
}

/// A fork policy the platform offers that is not the default, for a test
/// that checks options are followed (the default would pass it whether or
/// not they were): `Exclude` where the default is `Wipe`, else `Keep`.
pub fn other_fork() -> ForkPolicy {
    match default_fork() {
        ForkPolicy::Wipe => ForkPolicy::Exclude,
        _ => ForkPolicy::Keep,
    }
}

#[cfg(target_os = "linux")]
/// The VmFlag `policy` leaves on a box's pages: `wf`, `dc`, or none for
/// `Keep`.
pub fn fork_mark(policy: ForkPolicy) -> Option<&'static str> {
    match policy {
        ForkPolicy::Wipe => Some("wf"),
        ForkPolicy::Exclude => Some("dc"),
        _ => None,
    }
}

#[cfg(target_os = "linux")]
/// `vma` carries the marks of a box made under `fork`: `dd` if and only if
/// the platform leaves memory out of core dumps, and of `wf` and `dc`
/// exactly the one `fork` sets (neither for `Keep`).
#[track_caller]
pub fn assert_advised(vma: &Vma, fork: ForkPolicy) {
    let dumps = promises().dump_exclusion;
    assert_eq!(
        vma.has("dd"),
        dumps,
        "expected `dd` {} (Host::dump_exclusion is {dumps}): {:?}",
        if dumps { "present" } else { "absent" },
        vma.flags
    );
    for mark in ["wf", "dc"] {
        let expected = fork_mark(fork) == Some(mark);
        assert_eq!(
            vma.has(mark),
            expected,
            "expected `{mark}` {} under {fork:?}: {:?}",
            if expected { "present" } else { "absent" },
            vma.flags
        );
    }
}

#[cfg(target_os = "linux")]
/// `vma` carries the marks of a box made under the default options.
#[track_caller]
pub fn assert_default_advice(vma: &Vma) {
    assert_advised(vma, default_fork());
}

/// The mechanism a refused `ForkPolicy::Wipe` names: Linux's advice (the
/// portable test mode lacks it), the BSDs' zero inheritance (macOS has
/// none).
#[cfg(target_os = "linux")]
const WIPE_MECHANISM: &str = "madvise(MADV_WIPEONFORK)";
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
const WIPE_MECHANISM: &str = "minherit(INHERIT_ZERO)";
#[cfg(target_os = "openbsd")]
const WIPE_MECHANISM: &str = "minherit(MAP_INHERIT_ZERO)";

/// `made` is the refusal of `ForkPolicy::Wipe` on a platform that cannot
/// give a fork child zeros: `Error::Unsupported` naming the mechanism, in
/// its message too.
#[track_caller]
pub fn assert_wipe_unsupported<T>(made: Result<T, Error>) {
    assert!(
        !promises().fork_zeros,
        "only where Host::fork_zeros is false"
    );
    match made {
        Err(e @ Error::Unsupported { call, .. }) => {
            assert_eq!(call, WIPE_MECHANISM, "{e:?}");
            assert!(e.to_string().contains(call), "{e}");
        }
        Err(e) => panic!("expected ForkPolicy::Wipe to be Error::Unsupported, got {e:?}"),
        Ok(_) => panic!("expected ForkPolicy::Wipe to be Error::Unsupported, got a box"),
    }
}

#[cfg(target_os = "linux")]
/// The VmFlag that every mapping the crate makes under the default options
/// carries, and nothing else in a test process does (the kernel's own
/// [vvar] pages carry `dd` too, with `pf`): `dd` where the platform leaves
/// memory out of core dumps, else the default fork policy's mark.
pub fn crate_mark() -> &'static str {
    if promises().dump_exclusion {
        "dd"
    } else {
        fork_mark(default_fork()).expect("the default fork policy marks the pages")
    }
}

#[cfg(target_os = "linux")]
/// Lines of /proc/self/maps that carry `crate_mark()`: the crate's
/// mappings made under the default options (slabs, packed slabs, large
/// mappings), and nothing the allocator or the thread library makes, so the
/// count does not move with malloc's own mappings.
pub fn crate_mapping_count() -> usize {
    let mark = crate_mark();
    procfs::smaps()
        .iter()
        .filter(|v| v.has(mark) && !v.has("pf"))
        .count()
}

#[cfg(target_os = "linux")]
/// The crate's lines of /proc/self/maps above `base`, an earlier
/// `crate_mapping_count()`.
pub fn crate_mappings_since(base: usize) -> usize {
    crate_mapping_count().checked_sub(base).unwrap_or_else(|| {
        panic!(
            "fewer mappings marked `{}` than the {base} counted before",
            crate_mark()
        )
    })
}
