//! The types every part of `os` shares, and the layers above it read: page
//! protection, what a fork child gets, why a call was refused, what an error
//! means, and what Linux's /proc says about the process's memory. Pure data:
//! this module calls nothing.

use std::io;

/// Page protection, as passed to `protect`.
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
        not(target_os = "linux"),
        expect(dead_code, reason = "only Linux's secret memory takes a descriptor")
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
/// need to know it (their advice depends on it); see `trouble`.
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

/// Sizes of this process's memory, in bytes (Linux: `/proc/self/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemorySizes {
    /// `VmSize`: every mapping, the kernel's `total_vm`.
    pub(crate) mapped: u64,
    /// `VmRSS`: pages in RAM.
    pub(crate) resident: u64,
    /// `VmLck`: the kernel's `locked_vm`, the size of every locked mapping
    /// (whole mappings, resident or not).
    pub(crate) locked: u64,
}

/// What the system says about locked mappings, in bytes (Linux:
/// `/proc/self/smaps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockView {
    /// The size of the mappings that mlockall(2) would lock but that are not
    /// locked (no `lo` in VmFlags). Left out: the mappings the kernel never
    /// locks (VmFlags `io`, `pf`, `de`, `mm`, `ht`: `[vvar]`, `[vdso]`,
    /// device and hugetlb mappings) and `[vsyscall]`.
    pub(crate) unlocked: u64,
    /// The sum of `Locked:`, the locked pages that are in RAM.
    pub(crate) locked_resident: u64,
}

/// How the kernel locks a new mapping of this process: the `MCL_FUTURE` and
/// `MCL_ONFAULT` of the last mlockall(2), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FutureLock {
    /// New mappings are locked (VmFlags `lo`).
    pub(crate) locked: bool,
    /// They are locked page by page as they are touched (VmFlags `lf`);
    /// `None` when that could not be seen.
    pub(crate) on_fault: Option<bool>,
}
