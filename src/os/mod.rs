//! The only place that talks to the operating system: one file per
//! platform family behind one small internal interface, chosen here.
//!
//! - `unix`: what every Unix offers (mmap, mprotect, mlock, mincore,
//!   rlimits, termios, signals), and on top of it `unix_tty` (the prompt's
//!   terminal), `unix_env` (taking a variable out of the environment) and
//!   `unix_wipe` (the last wipe's signal handlers and thread stopping);
//! - `linux`: what only Linux offers (`madvise` advice, memfd_secret, /proc,
//!   prctl, capget, tgkill, the signal frame's layout);
//! - `windows`: Windows, through `windows-sys` (VirtualAlloc, VirtualProtect,
//!   VirtualLock, WerRegisterExcludedMemoryBlock, QueryWorkingSetEx), and on
//!   top of it `windows_tty` (the console with echo off), `windows_env`
//!   (taking a variable out of the environment) and `windows_wipe` (the last
//!   wipe's console control handler and exception filter);
//! - `cpu`: what depends on the processor only (clearing vector registers,
//!   zeroing through a raw pointer).
//!
//! Code above this module names no platform: it asks for a capability and
//! gets the platform's own mechanism or a refusal ([`Refused`], whose
//! [`Why::Unsupported`] becomes `Error::Unsupported` naming the call). The
//! capabilities:
//!
//! - memory: reserve inaccessible (`map_none`), replace with fresh
//!   inaccessible memory (`replace_none`), `protect`, `unmap`, `lock` and
//!   `unlock` (refusals by the lock limit sorted by [`trouble`]),
//!   residency;
//! - keeping memory out of core dumps (`exclude_from_dumps`,
//!   `DUMPS_EXCLUDABLE`), what a fork child gets (`set_fork_view`,
//!   `FORK_ZEROS`), secret memory (`SecretFile`);
//! - the lock quota (`memlock_limit`) and whether the process is exempt
//!   from it (`has_cap_ipc_lock`); physical memory;
//! - denying inspection (`set_not_dumpable`), core limits, locking every
//!   page (`lock_all`), introspection (Linux's /proc: `memory_sizes`,
//!   `lock_view`, `future_lock`);
//! - zeroing memory behind its protection (`zero_forced`, `zero_checked`);
//! - the fatal-signal hook of the last wipe (`on_fatal_signal`,
//!   `catch_faults`, `stop_all_and_wait`) and its register scrubbing;
//! - terminal echo (`Tty`), unbuffered standard input (`read_stdin`), the
//!   environment (`take_env`);
//! - what an error means (`trouble`), so that nothing above matches an
//!   errno.

use std::io;

mod cpu;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
mod unix_env;
#[cfg(unix)]
mod unix_tty;
#[cfg(unix)]
mod unix_wipe;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
mod windows_env;
#[cfg(windows)]
mod windows_tty;
#[cfg(windows)]
mod windows_wipe;

pub(crate) use cpu::*;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(unix)]
pub(crate) use unix_env::take_env;
#[cfg(unix)]
pub(crate) use unix_tty::Tty;
#[cfg(unix)]
pub(crate) use unix_wipe::{
    catch_faults, keep_reserve, on_fatal_signal, own_memory_for_wipe, signal_unstopped,
    stop_all_and_wait,
};
#[cfg(windows)]
pub(crate) use windows::*;
#[cfg(windows)]
pub(crate) use windows_env::take_env;
#[cfg(windows)]
pub(crate) use windows_tty::Tty;
#[cfg(windows)]
pub(crate) use windows_wipe::{
    OwnMemory, WIPE_SIGNALS, block_all_signals, catch_faults, keep_reserve, on_fatal_signal,
    own_memory_for_wipe, realtime_signals, residency_into, sig, signal_exists, signal_unstopped,
    stop_all_and_wait, zero_checked, zero_forced,
};

/// Whether this system can leave memory out of dumps: on Unix, whether the
/// platform has the mechanism at all ([`DUMPS_EXCLUDABLE`]); Windows asks
/// at run time (`WerRegisterExcludedMemoryBlock` came with Windows 10
/// version 1703).
#[cfg(unix)]
pub(crate) fn dumps_excludable() -> bool {
    DUMPS_EXCLUDABLE
}

/// Page protection, as passed to [`protect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protection {
    /// `PROT_NONE`: every access faults.
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

/// What a fork(2) child gets of a range of the crate's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForkView {
    /// The range, zero-filled (Linux `MADV_WIPEONFORK`, the BSDs'
    /// `INHERIT_ZERO`).
    Zeros,
    /// Nothing: the child has no mapping there (Linux `MADV_DONTFORK`,
    /// `INHERIT_NONE`, macOS `VM_INHERIT_NONE`).
    Absent,
    /// A copy-on-write copy, as for any private memory.
    Copy,
}

/// Why the system refused a call, as far as the layers above need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The platform (or this kernel, or a filter) lacks the mechanism.
    Unsupported,
    /// A resource limit the process is held to (`RLIMIT_MEMLOCK`, the
    /// working-set quota) refused it.
    Limit,
    /// The process is out of file descriptors.
    #[cfg_attr(
        windows,
        expect(dead_code, reason = "no call refused this way on Windows")
    )]
    Descriptors,
    /// Anything else.
    Other,
}

/// A call the system refused: which, why, and the system's own answer.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The call, as the platform names it (`madvise(MADV_DONTDUMP)`).
    pub(crate) call: &'static str,
    pub(crate) why: Why,
    pub(crate) source: io::Error,
}

impl Refused {
    /// A mechanism this platform does not have at all.
    pub(crate) fn missing(call: &'static str) -> Refused {
        Refused {
            call,
            why: Why::Unsupported,
            source: io::Error::from(io::ErrorKind::Unsupported),
        }
    }
}

/// What an error the system returned means, as far as the layers above
/// need to know it (their advice depends on it); see [`trouble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// The process has no free file descriptor.
    NoDescriptors,
    /// The system's table of open files is full.
    SystemFiles,
    /// Not allowed (permissions, a sandbox, a security module).
    Denied,
    /// The system is out of memory.
    NoMemory,
    /// A signal interrupted the call.
    Interrupted,
    /// There is no terminal to talk to (none controls the process, or what
    /// was opened is no terminal).
    NoTerminal,
    /// A resource limit on locked memory refused a lock.
    LockLimit,
    /// Anything else.
    Other,
}
