//! The only place that talks to the operating system: one file per
//! platform family behind one small internal interface, chosen here.
//!
//! - `unix`: what every Unix offers (mmap, mprotect, mlock, mincore,
//!   rlimits, termios, signals), and on top of it `unix_tty` (the prompt's
//!   terminal), `unix_env` (taking a variable out of the environment) and
//!   `unix_wipe` (the last wipe's signal handlers and thread stopping);
//! - `linux`: what only Linux offers (`madvise` advice, memfd_secret, /proc,
//!   prctl, capget, tgkill, the signal frame's layout);
//! - `bsd`: what macOS, FreeBSD and OpenBSD share beyond `unix`
//!   (minherit(2) for what a fork child sees, getentropy(2), sysctl(3)),
//!   and their answer to what only Linux has: a refusal;
//! - `macos`, `freebsd`, `openbsd`: what differs between those three
//!   (core dumps, deny inspection, mlockall, thread IDs, signal frames);
//!   each module's docs list, protection by protection, the mechanism it
//!   uses or that it has none;
//! - `windows`: Windows, through `windows-sys` (VirtualAlloc, VirtualProtect,
//!   VirtualLock, WerRegisterExcludedMemoryBlock, QueryWorkingSetEx), and on
//!   top of it `windows_tty` (the console with echo off), `windows_env`
//!   (taking a variable out of the environment) and `windows_wipe` (the last
//!   wipe's console control handler and exception filter);
//! - `cpu`: what depends on the processor only (clearing vector registers,
//!   zeroing through a raw pointer);
//! - `thread`: the calling thread's ID, each platform's own call;
//! - `no_secret_memory`, `no_procfs`: secret memory and Linux's /proc
//!   where there are none (all but Linux);
//! - `types`: the data the others share (page protection, refusals, what an
//!   error means).
//!
//! The files depend on one another one way only, lower first: `types`,
//! `cpu` and `thread`; `unix`; `linux` or `bsd`; `macos`, `freebsd` or
//! `openbsd`; then `unix_env`, `unix_tty` and `unix_wipe`, which name the
//! platform's file they use. This file only chooses and re-exports: no file
//! below reaches back up through it.
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

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "openbsd",
    windows
)))]
compile_error!(
    "lockedmem supports Linux, macOS, FreeBSD, OpenBSD and Windows: each protection rests \
     on a mechanism of the platform's own (src/os/), and nothing is emulated"
);

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
mod bsd;
mod cpu;
#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(not(target_os = "linux"))]
mod no_procfs;
#[cfg(not(target_os = "linux"))]
mod no_secret_memory;
#[cfg(target_os = "openbsd")]
mod openbsd;
mod thread;
mod types;
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

#[cfg(any(target_os = "macos", target_os = "freebsd", target_os = "openbsd"))]
pub(crate) use bsd::*;
pub(crate) use cpu::*;
#[cfg(target_os = "freebsd")]
pub(crate) use freebsd::*;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(target_os = "macos")]
pub(crate) use macos::*;
#[cfg(not(target_os = "linux"))]
pub(crate) use no_procfs::{future_lock, lock_view, memory_sizes, populated};
#[cfg(not(target_os = "linux"))]
pub(crate) use no_secret_memory::{SecretFile, secretmem_available};
#[cfg(target_os = "openbsd")]
pub(crate) use openbsd::*;
pub(crate) use types::*;
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
