//! The only place that talks to the operating system: one file per
//! platform family behind one small internal interface, chosen here.
//!
//! - `unix`: what every Unix offers (mmap, mprotect, mlock, mincore,
//!   rlimits, termios, signals);
//! - `linux`: what only Linux offers (`madvise` advice, memfd_secret, /proc,
//!   prctl, capget, tgkill, the signal frame's layout);
//! - `cpu`: what depends on the processor only (clearing vector registers).
//!
//! Code above this module names no platform: it asks for a capability
//! (lock, exclude from dumps, what a fork child sees, secret memory, ...)
//! and gets either the platform's own mechanism or a refusal it can turn
//! into `Error::Unsupported`.

mod cpu;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
mod unix;

pub(crate) use cpu::*;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;
#[cfg(unix)]
pub(crate) use unix::*;

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
