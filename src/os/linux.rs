//! What only Linux offers: `madvise` advice (`MADV_DONTDUMP`,
//! `MADV_WIPEONFORK`, `MADV_DONTFORK`), memfd_secret(2), the kernel's view
//! of the process in /proc (`pagemap`, `status`, `smaps`, `/proc/self/mem`,
//! `/proc/self/task`), prctl(2), capget(2), process_vm_readv(2), tgkill(2),
//! `MAP_FIXED_NOREPLACE`, and the layout of a signal frame's saved
//! registers. What every Unix offers is in `unix`, under the same shared
//! contract for functions that take an address range.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use rustix::mm::{MapFlags, ProtFlags};

/// The portable test mode (`--cfg lockedmem_portable`, for tests and CI,
/// not a feature): the Linux build gives up what macOS and the BSDs lack
/// or do differently, so that the code paths they take above this layer
/// are exercised somewhere real: no memory left out of core dumps
/// (`MADV_DONTDUMP`; macOS has no way), no zeros in fork children
/// (`MADV_WIPEONFORK`; macOS has none, so the default fork policy is
/// `Exclude` as there), no secret memory (memfd_secret), no fork
/// generation in a wiped page (it falls back to the process ID);
/// `MADV_DONTFORK` stands in for `INHERIT_NONE`.
const PORTABLE: bool = cfg!(lockedmem_portable);

/// What `Host::platform` says.
pub(crate) const PLATFORM: &str = if PORTABLE {
    "linux (portable test mode)"
} else {
    "linux"
};

use super::cpu::zero_bytes;
use super::thread::thread_id;
use super::types::{ForkView, FutureLock, LockView, MemorySizes, Protection, Refused, Why};
use super::unix::{close_raw, map_none, page_size, process_id, protect, stop_if_dying, unmap};

/// One `madvise(2)` advice. Each is its own call: advice values are not flags
/// and must never be OR-ed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advice {
    /// `MADV_DONTDUMP` (Linux 3.4): leave the range out of core dumps.
    DontDump,
    /// `MADV_WIPEONFORK` (Linux 4.14): a child made by fork(2) sees zeros.
    WipeOnFork,
    /// `MADV_DONTFORK` (Linux 2.6.16): a child made by fork(2) has no mapping here.
    DontFork,
    /// `MADV_RANDOM`: no read-ahead. Harmless on anonymous memory; the crate
    /// uses the flag it sets on the mapping (`rr` in smaps) to keep a sealed
    /// box's `PROT_NONE` data pages from merging with its guard pages.
    Random,
}

impl Advice {
    /// The C name, for error messages.
    fn name(self) -> &'static str {
        match self {
            Advice::DontDump => "madvise(MADV_DONTDUMP)",
            Advice::WipeOnFork => "madvise(MADV_WIPEONFORK)",
            Advice::DontFork => "madvise(MADV_DONTFORK)",
            Advice::Random => "madvise(MADV_RANDOM)",
        }
    }
}

/// `madvise(addr, len, advice)`.
///
/// # Safety
/// The module's shared contract. [`Advice::DontFork`] removes the
/// range from children: nothing a child runs may use it.
///
/// # References
/// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
#[doc(alias = "madvise")]
unsafe fn advise(addr: NonNull<u8>, len: usize, advice: Advice) -> io::Result<()> {
    use rustix::mm::Advice as A;
    let advice = match advice {
        Advice::DontDump => A::LinuxDontDump,
        Advice::WipeOnFork => A::LinuxWipeOnFork,
        Advice::DontFork => A::LinuxDontFork,
        Advice::Random => A::Random,
    };
    // SAFETY: forwarded from the caller's contract.
    Ok(unsafe { rustix::mm::madvise(addr.as_ptr().cast::<c_void>(), len, advice) }?)
}

/// Which pages of `addr..addr + pages * page_size()` hold data, in RAM or in
/// swap, from `/proc/self/pagemap` (bits 63 and 62 of each page's entry);
/// pages never touched hold neither. One `bool` per page.
///
/// Only reads the kernel's page tables; touches no byte of the range.
///
/// # References
/// - [proc_pid_pagemap(5)](https://man7.org/linux/man-pages/man5/proc_pid_pagemap.5.html)
#[doc(alias = "pagemap")]
pub(crate) fn populated(addr: NonNull<u8>, pages: usize) -> io::Result<Vec<bool>> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let file = std::fs::File::open("/proc/self/pagemap")?;
    let first = (addr.as_ptr() as usize / page_size()) as u64;
    let mut out = Vec::with_capacity(pages);
    let mut buf = vec![0u8; 8 * pages.clamp(1, 4096)];
    while out.len() < pages {
        let n = (pages - out.len()).min(4096);
        let chunk = &mut buf[..8 * n];
        file.read_exact_at(chunk, (first + out.len() as u64) * 8)?;
        out.extend(chunk.chunks_exact(8).map(|e| {
            let entry = u64::from_ne_bytes(e.try_into().expect("8 bytes"));
            entry & (PRESENT | SWAPPED) != 0
        }));
    }
    Ok(out)
}

/// `prctl(PR_GET_DUMPABLE)`: whether this process may dump core and be
/// attached to by processes of the same user.
///
/// # References
/// - [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html)
#[doc(alias = "PR_GET_DUMPABLE")]
pub(crate) fn dumpable() -> io::Result<bool> {
    use rustix::process::DumpableBehavior;
    Ok(rustix::process::dumpable_behavior()? != DumpableBehavior::NotDumpable)
}

/// `prctl(PR_SET_DUMPABLE, 0)`: the process writes no core, and processes
/// of the same user without `CAP_SYS_PTRACE` can neither ptrace it nor open
/// its `/proc/<pid>/mem`. Irrevocable only in the sense that nothing in the
/// process undoes it unasked; `prctl(PR_SET_DUMPABLE, 1)` would.
///
/// # References
/// - [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html)
/// - [PR_SET_DUMPABLE(2const)](https://man7.org/linux/man-pages/man2/PR_SET_DUMPABLE.2const.html)
#[doc(alias = "PR_SET_DUMPABLE")]
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    Ok(set_dumpable_behavior(DumpableBehavior::NotDumpable)?)
}

/// `mlockall(MCL_CURRENT [| MCL_FUTURE [| MCL_ONFAULT]])`: locks every
/// mapping of the process, and with `future` every mapping made later.
///
/// On Linux the call is all or nothing: the `RLIMIT_MEMLOCK` check (the
/// whole mapped size, `total_vm`, against the soft limit, skipped with
/// `CAP_IPC_LOCK`) and the `EPERM` of a zero limit come before any mapping
/// is changed; once past them the call changes the lock flags of every
/// mapping and returns 0 (pages it then fails to fault in are left unlocked
/// in RAM terms, not reported). Each call also replaces the previous call's
/// `MCL_FUTURE`/`MCL_ONFAULT` setting: a call without `future` ends it.
///
/// # References
/// - [mlockall(2)](https://man7.org/linux/man-pages/man2/mlockall.2.html)
/// - `SYSCALL_DEFINE1(mlockall)` and `apply_mlockall_flags` in Linux's
///   `mm/mlock.c`
#[doc(alias = "mlockall")]
pub(crate) fn lock_all(future: bool, on_fault: bool) -> io::Result<()> {
    use rustix::mm::{MlockAllFlags, mlockall};
    let mut flags = MlockAllFlags::CURRENT;
    if future {
        flags |= MlockAllFlags::FUTURE;
    }
    if on_fault {
        flags |= MlockAllFlags::ONFAULT;
    }
    Ok(mlockall(flags)?)
}

/// `VmSize`, `VmRSS` and `VmLck` of this process.
///
/// # References
/// - [proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
pub(crate) fn memory_sizes() -> io::Result<MemorySizes> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    let field = |key: &str| -> io::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, key.to_owned()))
    };
    Ok(MemorySizes {
        mapped: field("VmSize")?,
        resident: field("VmRSS")?,
        locked: field("VmLck")?,
    })
}

/// VmFlags of mappings that mlockall(2) leaves alone: `VM_IO`,
/// `VM_PFNMAP`, `VM_DONTEXPAND`, `VM_MIXEDMAP` (together `VM_SPECIAL`) and
/// `VM_HUGETLB` (`mlock_fixup` in `mm/mlock.c`).
const NEVER_LOCKED: [&str; 5] = ["io", "pf", "de", "mm", "ht"];

/// Reads `/proc/self/smaps` for [`LockView`].
///
/// # References
/// - [proc_pid_smaps(5)](https://man7.org/linux/man-pages/man5/proc_pid_smaps.5.html)
pub(crate) fn lock_view() -> io::Result<LockView> {
    let text = std::fs::read_to_string("/proc/self/smaps")?;
    let mut view = LockView {
        unlocked: 0,
        locked_resident: 0,
    };
    // The mapping whose fields are being read.
    let mut current = None;
    for line in text.lines() {
        if let Some(header) = smaps_header(line) {
            current = Some(header);
        } else if let Some(kb) = line.strip_prefix("Locked:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse::<u64>();
            view.locked_resident += kb.unwrap_or(0).saturating_mul(1024);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            let Some(header) = current.take() else {
                continue;
            };
            let locked = flags.split_whitespace().any(|f| f == "lo");
            let never = header.gate || flags.split_whitespace().any(|f| NEVER_LOCKED.contains(&f));
            if !locked && !never {
                view.unlocked += header.end - header.start;
            }
        }
    }
    Ok(view)
}

/// The header line of a mapping in /proc/self/smaps.
struct SmapsHeader {
    start: u64,
    end: u64,
    /// The mapping is `[vsyscall]`, the gate area mlockall(2) skips.
    gate: bool,
}

/// Parses `start-end perms offset dev inode [path]`; `None` for a line of
/// another kind.
fn smaps_header(line: &str) -> Option<SmapsHeader> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if fields.next()?.len() != 4 {
        return None;
    }
    let gate = fields.nth(3) == Some("[vsyscall]");
    Some(SmapsHeader { start, end, gate })
}

/// How the kernel locks new mappings of this process: maps one `PROT_NONE`
/// page, reads its VmFlags in `/proc/self/smaps`, unmaps it. The setting
/// itself (`mm->def_flags`) is shown nowhere in /proc.
///
/// An `EAGAIN` from the mapping is read as locked: for an anonymous mapping
/// it has one cause, `MCL_FUTURE` with `RLIMIT_MEMLOCK` reached.
///
/// # References
/// - [mlockall(2)](https://man7.org/linux/man-pages/man2/mlockall.2.html)
/// - [proc_pid_smaps(5)](https://man7.org/linux/man-pages/man5/proc_pid_smaps.5.html)
pub(crate) fn future_lock() -> io::Result<FutureLock> {
    let page = page_size();
    let addr = match map_none(page) {
        Ok(addr) => addr,
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
            return Ok(FutureLock {
                locked: true,
                on_fault: None,
            });
        }
        Err(e) => return Err(e),
    };
    let flags = mapping_flags(addr.as_ptr() as u64);
    // SAFETY: `addr..addr + page` is the mapping made just above, which
    // nothing else knows about; no reference into it was ever made.
    let _ = unsafe { unmap(addr, page) };
    let flags = flags?;
    Ok(FutureLock {
        locked: flags.split_whitespace().any(|f| f == "lo"),
        on_fault: Some(flags.split_whitespace().any(|f| f == "lf")),
    })
}

/// The VmFlags line of the mapping holding `addr`.
fn mapping_flags(addr: u64) -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/self/smaps")?;
    let mut inside = false;
    for line in text.lines() {
        if let Some(header) = smaps_header(line) {
            inside = (header.start..header.end).contains(&addr);
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            if inside {
                return Ok(flags.to_owned());
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "probe page missing from /proc/self/smaps",
    ))
}

/// `capget(2)`: whether the calling thread has `CAP_IPC_LOCK` in its
/// effective set, which makes the kernel ignore `RLIMIT_MEMLOCK` for it.
///
/// # References
/// - [capget(2)](https://man7.org/linux/man-pages/man2/capget.2.html)
#[doc(alias = "capget")]
pub(crate) fn has_cap_ipc_lock() -> io::Result<bool> {
    use rustix::thread::{CapabilitySet, capabilities};
    Ok(capabilities(None)?
        .effective
        .contains(CapabilitySet::IPC_LOCK))
}

/// `sysinfo(2)`: total physical memory in bytes.
///
/// # References
/// - [sysinfo(2)](https://man7.org/linux/man-pages/man2/sysinfo.2.html)
#[doc(alias = "sysinfo")]
#[allow(
    clippy::useless_conversion,
    reason = "the fields are u32 on 32-bit targets"
)]
pub(crate) fn physical_memory() -> u64 {
    let info = rustix::system::sysinfo();
    u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit))
}

/// `getrandom(buf, 0)`: fills `buf` from the kernel's CSPRNG, blocking only
/// until it is first seeded.
///
/// # References
/// - [getrandom(2)](https://man7.org/linux/man-pages/man2/getrandom.2.html)
#[doc(alias = "getrandom")]
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `memfd_secret(0)` (Linux 5.14, and only where the kernel was built and
/// booted with secretmem enabled): whether this host can make memory that is
/// removed from the kernel's direct map. Opens one descriptor and closes it.
///
/// `Ok(false)` means the kernel does not offer it (`ENOSYS`); other errors,
/// such as the `EINVAL`/`ENOSYS` of a kernel booted without it, come back as
/// they are.
///
/// # References
/// - [memfd_secret(2)](https://man7.org/linux/man-pages/man2/memfd_secret.2.html)
#[doc(alias = "memfd_secret")]
pub(crate) fn secretmem_available() -> io::Result<bool> {
    if PORTABLE {
        return Ok(false);
    }
    // SAFETY: memfd_secret takes one integer flags argument and returns a new
    // descriptor or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, 0 as libc::c_uint) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOSYS) => Ok(false),
            _ => Err(err),
        };
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: `fd` was just returned to us by the kernel and nothing else
    // owns it; closing it once is what ownership of a new descriptor means.
    unsafe { libc::close(fd) };
    Ok(true)
}

/// A memfd_secret(2) file (close-on-exec): its pages are removed from the
/// kernel's direct map while they exist, and charged to `RLIMIT_MEMLOCK`
/// when they are mapped.
#[derive(Debug)]
pub(crate) struct SecretFile(OwnedFd);

impl SecretFile {
    /// A new, empty secret file. `Unsupported` where the call is missing
    /// (`ENOSYS`), filtered (seccomp's `EPERM`), or secret memory disabled
    /// (`EINVAL`, `EOPNOTSUPP`: a kernel booted without it); out of
    /// descriptors (`EMFILE`, `ENFILE`) is [`Why::Descriptors`].
    ///
    /// # References
    /// - [memfd_secret(2)](https://man7.org/linux/man-pages/man2/memfd_secret.2.html)
    #[doc(alias = "memfd_secret")]
    pub(crate) fn new() -> Result<SecretFile, Refused> {
        if PORTABLE {
            return Err(Refused::missing("memfd_secret"));
        }
        // SAFETY: memfd_secret takes one integer flags argument and returns
        // a new descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_uint) };
        if fd < 0 {
            let source = io::Error::last_os_error();
            let why = match source.raw_os_error() {
                Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::EOPNOTSUPP) => {
                    Why::Unsupported
                }
                Some(libc::EMFILE | libc::ENFILE) => Why::Descriptors,
                _ => Why::Other,
            };
            return Err(Refused {
                call: "memfd_secret",
                why,
                source,
            });
        }
        let fd = libc::c_int::try_from(fd).map_err(|_| Refused {
            call: "memfd_secret",
            why: Why::Other,
            source: io::Error::from(io::ErrorKind::InvalidData),
        })?;
        // SAFETY: a descriptor the kernel just returned; nothing else owns it.
        Ok(SecretFile(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The descriptor's number, for a fork child to close (`close_raw`).
    pub(crate) fn raw(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Sets the file's length (ftruncate(2)).
    ///
    /// # References
    /// - [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
    #[doc(alias = "ftruncate")]
    pub(crate) fn set_len(&self, len: usize) -> io::Result<()> {
        let len =
            libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: ftruncate on a descriptor we own; no memory passed.
        if unsafe { libc::ftruncate(self.0.as_raw_fd(), len) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Maps `len` bytes of the file, from `offset`, read-write and shared,
    /// in place of `addr..addr + len` (mmap(2) with `MAP_FIXED`). The
    /// kernel charges the pages to `RLIMIT_MEMLOCK` here: over it, `EAGAIN`,
    /// which is [`Why::Limit`].
    ///
    /// # Safety
    /// The shared contract (module docs): the range is the caller's own and
    /// nothing relies on what it held, which is replaced.
    ///
    /// # References
    /// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    #[doc(alias = "mmap")]
    pub(crate) unsafe fn map_fixed(
        &self,
        addr: NonNull<u8>,
        len: usize,
        offset: usize,
    ) -> Result<(), Refused> {
        let refused = |source: io::Error| Refused {
            call: "mmap(memfd_secret)",
            why: if source.raw_os_error() == Some(libc::EAGAIN) {
                Why::Limit
            } else {
                Why::Other
            },
            source,
        };
        let offset = u64::try_from(offset)
            .map_err(|_| refused(io::Error::from(io::ErrorKind::InvalidInput)))?;
        stop_if_dying();
        // SAFETY: forwarded from the caller's contract: the range is the
        // caller's own, and nothing uses what it held.
        let got = unsafe {
            rustix::mm::mmap(
                addr.as_ptr().cast::<c_void>(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED,
                &self.0,
                offset,
            )
        };
        stop_if_dying();
        let got = got.map_err(|e| refused(e.into()))?;
        debug_assert_eq!(got.cast::<u8>(), addr.as_ptr());
        Ok(())
    }
}

/// Whether this platform can leave memory out of core dumps at all.
pub(crate) const DUMPS_EXCLUDABLE: bool = !PORTABLE;

/// The mechanism that leaves memory out of core dumps, by name.
pub(crate) const DUMP_EXCLUSION: &str = "madvise(MADV_DONTDUMP)";

/// Whether this platform can give a fork(2) child zeros in place of a range
/// (what `ForkPolicy::Wipe` asks for, and the default fork policy).
pub(crate) const FORK_ZEROS: bool = !PORTABLE;

/// `madvise(addr, len, MADV_DONTDUMP)`: leaves the range out of core
/// dumps. `Unsupported` where the kernel refuses the advice (`EINVAL`,
/// before Linux 3.4).
///
/// # Safety
/// The module's shared contract.
pub(crate) unsafe fn exclude_from_dumps(addr: NonNull<u8>, len: usize) -> Result<(), Refused> {
    if PORTABLE {
        return Err(Refused::missing(DUMP_EXCLUSION));
    }
    // SAFETY: forwarded from the caller's contract.
    unsafe { advise_or_refuse(addr, len, Advice::DontDump) }
}

/// What a fork(2) child gets of the range: `MADV_WIPEONFORK` (Linux 4.14)
/// for [`ForkView::Zeros`], `MADV_DONTFORK` for [`ForkView::Absent`],
/// nothing to do for [`ForkView::Copy`] on a range never advised.
///
/// # Safety
/// The module's shared contract; with [`ForkView::Absent`], nothing a child
/// runs may use the range.
pub(crate) unsafe fn set_fork_view(
    addr: NonNull<u8>,
    len: usize,
    view: ForkView,
) -> Result<(), Refused> {
    let advice = match view {
        ForkView::Zeros if PORTABLE => return Err(Refused::missing("madvise(MADV_WIPEONFORK)")),
        ForkView::Zeros => Advice::WipeOnFork,
        ForkView::Absent => Advice::DontFork,
        ForkView::Copy => return Ok(()),
    };
    // SAFETY: forwarded from the caller's contract.
    unsafe { advise_or_refuse(addr, len, advice) }
}

/// `madvise(addr, len, MADV_RANDOM)`: no effect on anonymous memory but a
/// flag on the mapping (`rr` in smaps) that keeps a range from merging with
/// its neighbours, so that a sealed box's `PROT_NONE` data pages stay a
/// mapping of their own.
///
/// # Safety
/// The module's shared contract.
pub(crate) unsafe fn keep_apart(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { advise(addr, len, Advice::Random) }
}

/// [`advise`], its refusal classified: `EINVAL` is the kernel not knowing
/// the advice.
///
/// # Safety
/// As [`advise`]'s.
unsafe fn advise_or_refuse(addr: NonNull<u8>, len: usize, advice: Advice) -> Result<(), Refused> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { advise(addr, len, advice) }.map_err(|source| Refused {
        call: advice.name(),
        why: if source.raw_os_error() == Some(libc::EINVAL) {
            Why::Unsupported
        } else {
            Why::Other
        },
        source,
    })
}

/// Whether this kernel leaves memory out of core dumps (tried on a scratch
/// page).
pub(crate) fn can_exclude_from_dumps() -> bool {
    DUMPS_EXCLUDABLE && probe_advice(Advice::DontDump).is_ok()
}

/// Whether this kernel gives a fork child `view` of a range (tried on a
/// scratch page).
pub(crate) fn can_set_fork_view(view: ForkView) -> bool {
    match view {
        ForkView::Zeros => FORK_ZEROS && probe_advice(Advice::WipeOnFork).is_ok(),
        ForkView::Absent => probe_advice(Advice::DontFork).is_ok(),
        ForkView::Copy => true,
    }
}

/// Whether the kernel accepts `advice` on a private anonymous read-write
/// page: maps a scratch page, advises it, unmaps it.
fn probe_advice(advice: Advice) -> io::Result<()> {
    let page = page_size();
    let addr = map_none(page)?;
    // SAFETY: `addr..addr + page` is the mapping made just above, which
    // nothing else knows about; no reference into it is ever made.
    let opened = unsafe { protect(addr, page, Protection::ReadWrite) };
    // SAFETY: as above.
    let advised = opened.and_then(|()| unsafe { advise(addr, page, advice) });
    // SAFETY: as above.
    let _ = unsafe { unmap(addr, page) };
    advised
}

/// One word of memory that a child made by fork(2) sees as zero
/// (`MADV_WIPEONFORK` on a private page that is never unmapped), or `None`
/// where the kernel cannot provide it (before Linux 4.14).
///
/// The page lives as long as the process and holds no secret.
///
/// # References
/// - [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html)
#[inline]
pub(crate) fn fork_wiped_word() -> Option<&'static AtomicU64> {
    static WORD: OnceLock<Option<&'static AtomicU64>> = OnceLock::new();
    *WORD.get_or_init(|| {
        if PORTABLE {
            return None;
        }
        let page = page_size();
        let addr = map_none(page).ok()?;
        // SAFETY: `addr..addr + page` is the mapping made just above, which
        // nothing else knows about yet.
        let advised = unsafe { advise(addr, page, Advice::WipeOnFork) };
        // SAFETY: as above.
        let opened = unsafe { protect(addr, page, Protection::ReadWrite) };
        if advised.is_err() || opened.is_err() {
            // SAFETY: as above; no reference into it was made.
            let _ = unsafe { unmap(addr, page) };
            return None;
        }
        // SAFETY: the page is mapped read-write for the rest of the process's
        // life (it is never unmapped or re-protected), page-aligned and thus
        // aligned for `AtomicU64`, and zero-filled, which is a valid
        // `AtomicU64`. All access goes through this shared atomic reference.
        Some(unsafe { addr.cast::<AtomicU64>().as_ref() })
    })
}

/// A file's identity: its device and inode numbers, from fstat(2).
pub(crate) type FileId = (u64, u64);

/// `memfd_create("lockedmem-reserve", MFD_CLOEXEC)`: a descriptor on a new
/// empty file that nothing else can have opened, which the last wipe keeps
/// so that it can hand its number back to the process when the process
/// has run out of them; with the file's identity ([`file_id`]), by which
/// the wipe knows the number is still its own before it closes it.
///
/// # References
/// - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
#[doc(alias = "memfd_create")]
pub(crate) fn reserve_descriptor() -> io::Result<(libc::c_int, FileId)> {
    // SAFETY: a NUL-terminated name and a flag word; nothing of ours is
    // written.
    let fd = unsafe { libc::memfd_create(c"lockedmem-reserve".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    file_id(fd)
        .map(|id| (fd, id))
        .inspect_err(|_| close_raw(fd))
}

/// `fstat(fd)`: the identity of the file `fd` is open on. Allocates
/// nothing; async-signal-safe.
///
/// # References
/// - [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
#[doc(alias = "fstat")]
pub(crate) fn file_id(fd: libc::c_int) -> io::Result<FileId> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `struct stat` into `st`, which is ours.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled `st`.
    let st = unsafe { st.assume_init() };
    Ok((st.st_dev, st.st_ino))
}

/// `open("/proc/self/mem", O_RDWR | O_CLOEXEC)`: the process's own memory
/// as a file, for [`zero_forced`]; `None` if it cannot be opened (no /proc).
/// The caller closes it with [`close_raw`]. Async-signal-safe.
///
/// # References
/// - [proc_pid_mem(5)](https://man7.org/linux/man-pages/man5/proc_pid_mem.5.html)
pub(crate) fn open_own_memory() -> Option<libc::c_int> {
    // SAFETY: a NUL-terminated path; open touches no other memory of ours.
    let fd = unsafe { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    (fd >= 0).then_some(fd)
}

/// Writes zeros over `addr..addr + len` through `/proc/self/mem` (`mem`,
/// from [`open_own_memory`]), whatever the range's protection: the kernel
/// writes a private mapping's pages in place with `FOLL_FORCE`, as it does
/// for a debugger, so a `PROT_NONE` range is zeroed without ever being
/// made accessible to the process's other threads. Fails (`EFAULT`, `EIO`)
/// where the kernel does not force the write: a shared mapping (secret
/// memory), or `proc_mem.force_override` set against it. Allocates
/// nothing; async-signal-safe.
///
/// # Safety
/// As [`zero_checked`]'s.
///
/// # References
/// - [proc_pid_mem(5)](https://man7.org/linux/man-pages/man5/proc_pid_mem.5.html)
pub(crate) unsafe fn zero_forced(
    mem: libc::c_int,
    addr: NonNull<u8>,
    len: usize,
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZEROS.len());
        let at = addr.as_ptr() as usize + done;
        let offset =
            libc::off_t::try_from(at).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: writes `n` bytes of `ZEROS` (which the kernel only reads)
        // into the caller's range, at its address as the file offset.
        let rc = unsafe { libc::pwrite(mem, ZEROS.as_ptr().cast::<c_void>(), n, offset) };
        match rc {
            -1 => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
            0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            written => done += written.unsigned_abs(),
        }
    }
    Ok(())
}

/// The zeros [`zero_checked`] and [`zero_forced`] copy from.
static ZEROS: [u8; 4096] = [0; 4096];

/// Writes zeros over `addr..addr + len` through the kernel:
/// `process_vm_readv(getpid(), [range], [zeros...])`, which copies into
/// the range as a write by the process would (in place, secret memory
/// included) but fails with `EFAULT` where the range is not writable
/// instead of raising `SIGSEGV`, so a range whose protection another
/// thread changed meanwhile is reported, not fatal. Where the call is not
/// available (`ENOSYS`, or `EPERM` from a seccomp filter) the range is
/// zeroed with volatile writes instead, which do fault. Allocates nothing;
/// async-signal-safe.
///
/// # Safety
/// The range is the crate's own memory, and no Rust reference into it is
/// used to read it as anything but bytes afterwards (its value is gone).
///
/// # References
/// - [process_vm_readv(2)](https://man7.org/linux/man-pages/man2/process_vm_readv.2.html)
#[doc(alias = "process_vm_readv")]
pub(crate) unsafe fn zero_checked(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    const SOURCES: usize = 64;
    let pid = libc::pid_t::try_from(process_id()).unwrap_or(0);
    let mut done = 0;
    while done < len {
        let n = (len - done).min(SOURCES * ZEROS.len());
        let at = addr.as_ptr().wrapping_add(done);
        let local = libc::iovec {
            iov_base: at.cast::<c_void>(),
            iov_len: n,
        };
        let remote = [libc::iovec {
            iov_base: ZEROS.as_ptr().cast_mut().cast::<c_void>(),
            iov_len: ZEROS.len(),
        }; SOURCES];
        let sources = n.div_ceil(ZEROS.len());
        // SAFETY: one local iovec over the caller's range, `sources` remote
        // iovecs over `ZEROS` (which the kernel only reads) totalling at
        // least `n` bytes; the kernel writes only inside the local range.
        let rc = unsafe {
            libc::process_vm_readv(pid, &raw const local, 1, remote.as_ptr(), sources as u64, 0)
        };
        match rc {
            -1 => {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::ENOSYS | libc::EPERM) => {
                        // No reference is made: a thread stopped by the
                        // wipe may still hold one into the range.
                        // SAFETY: forwarded; the range is the caller's.
                        unsafe { zero_bytes(at, len - done) };
                        Ok(())
                    }
                    _ => Err(e),
                };
            }
            0 => return Err(io::Error::from_raw_os_error(libc::EFAULT)),
            copied => done += copied.unsigned_abs(),
        }
    }
    Ok(())
}

/// Fields of `/proc/self/stat` (proc_pid_stat(5)), counted from 1 as the
/// man page does; the command name, which may hold spaces, is skipped.
fn own_stat_fields<const N: usize>(wanted: [usize; N]) -> io::Result<[u64; N]> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/stat");
    // Field 3 follows the last `)`, that of the command name.
    let rest = stat.rsplit_once(')').ok_or_else(bad)?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut out = [0; N];
    for (o, &w) in out.iter_mut().zip(&wanted) {
        let i = w.checked_sub(3).ok_or_else(bad)?;
        *o = fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(bad)?;
    }
    Ok(out)
}

/// The initial environment block, `env_start..env_end` (fields 50 and 51
/// of proc_pid_stat(5)): the bytes `/proc/PID/environ` shows.
///
/// # References
/// - [proc_pid_stat(5)](https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html)
pub(crate) fn env_block() -> io::Result<(usize, usize)> {
    let [start, end] = own_stat_fields([50, 51])?;
    let start = usize::try_from(start).map_err(io::Error::other)?;
    let end = usize::try_from(end).map_err(io::Error::other)?;
    if start == 0 || end < start {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no environment block in /proc/self/stat",
        ));
    }
    Ok((start, end))
}

/// Whether this thread is the only one in the process (`Threads:` of
/// /proc/self/status, proc_pid_status(5)).
fn only_thread() -> io::Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .is_some_and(|n| n.trim() == "1"))
}

/// Moves the end of the environment block that `/proc/PID/environ` shows
/// down to `end`, so the kernel shows `env_start..end`:
/// `prctl(PR_SET_MM, PR_SET_MM_ENV_END, end)`, which needs
/// `CAP_SYS_RESOURCE`; without it, if this is the only thread,
/// `prctl(PR_SET_MM, PR_SET_MM_MAP, ..)`, which needs no capability (given
/// `CONFIG_CHECKPOINT_RESTORE`) but sets every field of the memory layout
/// at once: they are given as /proc/self/stat and brk(2) show them, which
/// no other thread can change meanwhile (there is none) and this one does
/// not (nothing allocates between reading `brk` and the call). Otherwise
/// the error (`EPERM`).
///
/// The kernel uses these fields for /proc output only (and `brk` for
/// brk(2), which gets its current value back).
///
/// # References
/// - [prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html),
///   `PR_SET_MM`
/// - [PR_SET_MM(2const)](https://man7.org/linux/man-pages/man2/PR_SET_MM.2const.html)
#[doc(alias = "PR_SET_MM")]
pub(crate) fn shrink_env_block(end: usize) -> io::Result<()> {
    use rustix::process::{PrctlMmMap, VirtualMemoryMapAddress};
    let at = NonNull::new(end as *mut c_void);
    // SAFETY: moves the end of the range the kernel shows as the
    // environment; no memory changes, nothing in the process reads it.
    let by_end = unsafe {
        rustix::process::set_virtual_memory_map_address(VirtualMemoryMapAddress::EnvironmentEnd, at)
    };
    match by_end {
        Err(e) if e == rustix::io::Errno::PERM && only_thread()? => {}
        other => return Ok(other?),
    }
    let [
        start_code,
        end_code,
        start_stack,
        start_data,
        end_data,
        start_brk,
        arg_start,
        arg_end,
        env_start,
    ] = own_stat_fields([26, 27, 28, 45, 46, 47, 48, 49, 50])?;
    if start_code <= 1 || env_start == 0 {
        // Fields the kernel hid (no permission to see them): never write
        // them back.
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    let mut map = PrctlMmMap {
        start_code,
        end_code,
        start_data,
        end_data,
        start_brk,
        brk: 0,
        start_stack,
        arg_start,
        arg_end,
        env_start,
        env_end: end as u64,
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: -1,
    };
    // SAFETY: brk(2) with 0 asks for the current break and changes nothing.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) };
    map.brk = u64::try_from(brk).map_err(io::Error::other)?;
    // SAFETY: every field as the kernel has it now (see above), but
    // `env_end`; `auxv_size` 0 keeps the auxiliary vector and `exe_fd` -1
    // the executable.
    unsafe { rustix::process::configure_virtual_memory_map(&map) }?;
    Ok(())
}

/// `FP_XSTATE_MAGIC1`: the kernel writes it at byte 464 of the FXSAVE
/// area of a signal frame (`struct _fpx_sw_bytes`) when the frame holds
/// an XSAVE area, whose size (`xstate_size`) follows at byte 480.
#[cfg(target_arch = "x86_64")]
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// `FP_XSTATE_MAGIC2`: the word the kernel writes right after the XSAVE
/// area of a signal frame, at `xstate_size`.
#[cfg(target_arch = "x86_64")]
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Bytes of the legacy FXSAVE area, which an XSAVE area begins with.
#[cfg(target_arch = "x86_64")]
const FXSAVE_LEN: usize = 512;
/// Where `struct _fpx_sw_bytes` sits in the FXSAVE area.
#[cfg(target_arch = "x86_64")]
const SW_BYTES_AT: usize = 464;
/// Bytes of the XSAVE header that follows the legacy area.
#[cfg(target_arch = "x86_64")]
const XSAVE_HEADER_LEN: usize = 64;
/// The largest XSAVE area believed (AMX's tile data makes the largest
/// today about 11 KiB); a larger `xstate_size` is not the kernel's.
#[cfg(target_arch = "x86_64")]
const XSTATE_MAX: usize = 64 * 1024;

/// Zeroes the registers the kernel saved in a signal frame: the general
/// registers but the stack and instruction pointers and the flags, and on
/// x86-64 the whole XSAVE area behind `uc_mcontext.fpregs` (x87, SSE, AVX,
/// AVX-512, every component the kernel saved: its size is read from the
/// frame's own `FP_XSTATE_MAGIC1` and `xstate_size`, and checked against
/// `FP_XSTATE_MAGIC2` at its end; of an FXSAVE-only frame, which has no
/// closing magic, the 512-byte legacy area and nothing past it), leaving
/// only the software bytes that describe the area; on aarch64 the general registers and every record of
/// `__reserved` (FP/SIMD, SVE and the rest, and an `EXTRA_MAGIC` record's
/// data). A register the interrupted code held a secret in (glibc's
/// `memcpy` keeps the first 64 bytes of its source in `zmm16` for the
/// whole copy) is then nowhere in memory. Allocates nothing;
/// async-signal-safe.
///
/// The thread must never return to the interrupted code: returning would
/// restore the zeroed registers.
///
/// # Safety
/// `context` is null or the `ucontext_t` the kernel passed to the calling
/// `SA_SIGINFO` handler, which never returns.
///
/// # References
/// - [sigaction(2)](https://man7.org/linux/man-pages/man2/sigaction.2.html)
/// - Linux's `arch/x86/include/uapi/asm/sigcontext.h` (`_fpx_sw_bytes`) and
///   `arch/arm64/include/uapi/asm/sigcontext.h`
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn scrub_context(context: *mut c_void) {
    if context.is_null() {
        return;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the caller's contract: a live ucontext_t on this thread's
    // signal stack, nothing else using it.
    let mc = unsafe { &raw mut (*uc).uc_mcontext };
    // SAFETY: as above: `gregs` is an array inside the context.
    let gregs = unsafe { (&raw mut (*mc).gregs).cast::<libc::greg_t>() };
    for reg in [
        libc::REG_R8,
        libc::REG_R9,
        libc::REG_R10,
        libc::REG_R11,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
        libc::REG_RDI,
        libc::REG_RSI,
        libc::REG_RBP,
        libc::REG_RBX,
        libc::REG_RDX,
        libc::REG_RAX,
        libc::REG_RCX,
    ] {
        let Ok(i) = usize::try_from(reg) else {
            continue;
        };
        // SAFETY: REG_* index the 23 general registers of `gregs`.
        unsafe { gregs.wrapping_add(i).write_volatile(0) };
    }
    // SAFETY: as above.
    let fp = unsafe { (*mc).fpregs }.cast::<u8>();
    if fp.is_null() {
        return;
    }
    // SAFETY: `fpregs` points to the frame's FXSAVE area of 512 bytes; its
    // first 464 hold the x87 and SSE state.
    unsafe { zero_bytes(fp, SW_BYTES_AT) };
    // SAFETY: the software bytes lie inside the FXSAVE area.
    let word = |at: usize| unsafe { fp.wrapping_add(at).cast::<u32>().read_unaligned() };
    let (magic1, extended, size) = (
        word(SW_BYTES_AT),
        word(SW_BYTES_AT + 4),
        word(SW_BYTES_AT + 16),
    );
    let size = size as usize;
    // An XSAVE area holds at least the legacy area and the XSAVE header
    // (the kernel's own check, when it reads a frame back at sigreturn).
    // An FXSAVE-only frame says `xstate_size` 512 and has no closing magic
    // nor room for one: the 512 bytes may end where the frame's memory
    // does, so nothing is read past them.
    if magic1 != FP_XSTATE_MAGIC1
        || !(FXSAVE_LEN + XSAVE_HEADER_LEN..=XSTATE_MAX).contains(&size)
        || extended as usize != size + 4
    {
        // Nothing beyond the legacy area.
        return;
    }
    // SAFETY: the kernel wrote `extended_size` bytes, the XSAVE area and
    // its closing magic, so `size + 4` bytes from `fp` are the frame's.
    if unsafe { fp.wrapping_add(size).cast::<u32>().read_unaligned() } == FP_XSTATE_MAGIC2 {
        // SAFETY: bytes 512..size are the XSAVE header and the extended
        // components, all inside the area.
        unsafe { zero_bytes(fp.wrapping_add(FXSAVE_LEN), size - FXSAVE_LEN) };
    }
}

/// `EXTRA_MAGIC`: a record of aarch64's `__reserved` whose state lies
/// outside the frame's fixed area (`struct extra_context`).
#[cfg(target_arch = "aarch64")]
const EXTRA_MAGIC: u32 = 0x4558_5401;

/// See the x86-64 version.
///
/// # Safety
/// As the x86-64 version's.
#[cfg(target_arch = "aarch64")]
pub(crate) unsafe fn scrub_context(context: *mut c_void) {
    if context.is_null() {
        return;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the caller's contract: a live ucontext_t on this thread's
    // signal stack, nothing else using it.
    let mc = unsafe { &raw mut (*uc).uc_mcontext };
    // SAFETY: `regs` is an array of 31 words inside the context.
    let regs = unsafe { &raw mut (*mc).regs };
    // SAFETY: as above.
    unsafe { zero_bytes(regs.cast::<u8>(), 31 * 8) };
    // `__reserved` (private in libc's type) follows `pstate`, aligned to
    // 16, and runs to the end of `mcontext_t`.
    let start = (std::mem::offset_of!(libc::mcontext_t, pstate) + 8).next_multiple_of(16);
    let end = std::mem::size_of::<libc::mcontext_t>();
    let base = mc.cast::<u8>();
    // A word of `__reserved`.
    // SAFETY: every `at` passed below keeps the read inside `start..end`.
    let word = |at: usize| unsafe { base.wrapping_add(at).cast::<u32>().read_unaligned() };
    let mut at = start;
    while at + 8 <= end {
        // A record header: `{ magic: u32, size: u32 }`.
        let (magic, size) = (word(at), word(at + 4) as usize);
        if magic == 0 || size < 8 {
            break;
        }
        if magic == EXTRA_MAGIC && at + 20 <= end {
            // `struct extra_context { head, datap: u64, size: u32 }`.
            let datap = u64::from(word(at + 8)) | u64::from(word(at + 12)) << 32;
            let len = word(at + 16) as usize;
            if let (Ok(datap), true) = (usize::try_from(datap), datap != 0) {
                // SAFETY: the kernel's extra state of this frame, on this
                // thread's signal stack.
                unsafe { zero_bytes(datap as *mut u8, len) };
            }
        }
        at += size;
    }
    // SAFETY: `start..end` is `__reserved`, inside the context.
    unsafe { zero_bytes(base.wrapping_add(start), end - start) };
}

/// Other architectures: the layout of the saved context is not known
/// here; nothing is scrubbed.
///
/// # Safety
/// As the x86-64 version's.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) unsafe fn scrub_context(_context: *mut c_void) {}

/// Calls `f` with the ID of every thread of this process but the calling
/// one, as /proc/self/task lists them now (getdents64(2) into a buffer on
/// the stack). `false` if the list could not be read (no /proc).
/// Allocates nothing; async-signal-safe.
///
/// # References
/// - [proc_pid_task(5)](https://man7.org/linux/man-pages/man5/proc_pid_task.5.html)
/// - [getdents64(2)](https://man7.org/linux/man-pages/man2/getdents64.2.html)
#[doc(alias = "getdents64")]
pub(crate) fn each_other_thread(mut f: impl FnMut(i32)) -> bool {
    // SAFETY: a NUL-terminated path; open touches no other memory of ours.
    let fd = unsafe {
        libc::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let me = thread_id();
    // `linux_dirent64` records are 8-byte aligned.
    let mut buf = [0u64; 512];
    let mut complete = true;
    loop {
        // SAFETY: the kernel writes at most `size_of_val(&buf)` bytes of
        // records into `buf`, which stays borrowed for the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            complete = false;
            break;
        };
        if n == 0 {
            break;
        }
        // SAFETY: the first `n` bytes of `buf` were written by the kernel
        // (n <= the buffer's size); viewed as bytes, they stay in `buf`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
        let mut at = 0;
        // `d_ino: u64, d_off: i64, d_reclen: u16, d_type: u8, d_name[]`.
        while at + 19 < n {
            let reclen = usize::from(u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]));
            if reclen == 0 || at + reclen > n {
                break;
            }
            let name = &bytes[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(tid) = parse_tid(name).filter(|&t| t != me) {
                f(tid);
            }
            at += reclen;
        }
    }
    close_raw(fd);
    complete
}

/// A thread ID from its decimal name in /proc/self/task; `None` for `.`,
/// `..` or anything else.
fn parse_tid(name: &[u8]) -> Option<i32> {
    if name.is_empty() {
        return None;
    }
    name.iter().try_fold(0i32, |n, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(i32::from(d))
    })
}

/// `tgkill(getpid(), tid, sig)`: sends `sig` to thread `tid` of this
/// process; with `sig` 0, only asks whether the thread still exists.
/// Async-signal-safe.
///
/// # References
/// - [tgkill(2)](https://man7.org/linux/man-pages/man2/tgkill.2.html)
#[doc(alias = "tgkill")]
pub(crate) fn signal_thread(tid: i32, sig: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(process_id()).unwrap_or(0);
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
/// MAP_FIXED_NOREPLACE, -1, 0)`: puts an inaccessible placeholder mapping
/// in the empty range `addr..addr + len`, so that nothing else is mapped
/// there and every access faults. Changes nothing where any part of the
/// range is mapped already (`EEXIST`). On a kernel older than 4.17, which
/// takes the flag for a hint, a mapping placed elsewhere is unmapped again
/// and `EEXIST` returned.
///
/// Async-signal-safe: one or two system calls, no allocation, no lock (for
/// a fork(2) child's atfork handler).
///
/// # References
/// - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
#[doc(alias = "MAP_FIXED_NOREPLACE")]
pub(crate) fn place_none_in_hole(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: the
    // call fails if any part of the range is in use, so no memory anyone
    // holds is affected.
    let got = unsafe {
        rustix::mm::mmap_anonymous(
            addr.as_ptr().cast::<c_void>(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
        )
    }?;
    if got.cast::<u8>() == addr.as_ptr() {
        return Ok(());
    }
    // SAFETY: `got..got + len` is the mapping the kernel just made (the
    // flag taken as a hint); nothing else knows of it.
    let _ = unsafe { rustix::mm::munmap(got, len) };
    Err(io::Error::from_raw_os_error(libc::EEXIST))
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Runs `body` in a child process (this test binary again, running
    /// only `test`), which must exit normally: a fault in `body` fails the
    /// test instead of ending the whole test binary.
    fn in_child(test: &str, body: impl FnOnce()) {
        const VAR: &str = "LOCKEDMEM_UNIT_CHILD";
        if std::env::var(VAR).as_deref() == Ok(test) {
            body();
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--test-threads=1", "--nocapture"])
            .env(VAR, test)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{test}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Two pages, the second `PROT_NONE`; the first's last `len` bytes
    /// (64-byte aligned) are where a made-up FXSAVE/XSAVE area goes, so
    /// that the frame's memory ends where the area does, as it does at the
    /// top of an alternate signal stack.
    fn area_at_the_end(len: usize) -> *mut u8 {
        let page = page_size();
        assert!(len <= page && len % 64 == 0);
        let base = map_none(2 * page).unwrap();
        // SAFETY: the first page of the mapping just made, which no one
        // else knows of.
        unsafe { protect(base, page, Protection::ReadWrite) }.unwrap();
        base.as_ptr().wrapping_add(page - len)
    }

    /// A `ucontext_t` with every general register non-zero and `fpregs`
    /// pointing at `fp`.
    fn context(fp: *mut u8) -> Box<libc::ucontext_t> {
        // SAFETY: an all-zero ucontext_t is valid plain data.
        let mut uc: Box<libc::ucontext_t> = Box::new(unsafe { std::mem::zeroed() });
        for (i, r) in uc.uc_mcontext.gregs.iter_mut().enumerate() {
            *r = 0x1111 * (i64::try_from(i).unwrap() + 1);
        }
        uc.uc_mcontext.fpregs = fp.cast();
        uc
    }

    fn put_u32(fp: *mut u8, at: usize, v: u32) {
        // SAFETY: the callers' areas hold `at + 4` bytes.
        unsafe { fp.wrapping_add(at).cast::<u32>().write_unaligned(v) };
    }

    fn bytes(fp: *mut u8, range: std::ops::Range<usize>) -> Vec<u8> {
        // SAFETY: the callers' areas hold `range`.
        unsafe { std::slice::from_raw_parts(fp.wrapping_add(range.start), range.len()) }.to_vec()
    }

    /// The software bytes the kernel writes at byte 464 of the area.
    fn sw_bytes(fp: *mut u8, xstate_size: u32) {
        put_u32(fp, SW_BYTES_AT, FP_XSTATE_MAGIC1);
        put_u32(fp, SW_BYTES_AT + 4, xstate_size + 4);
        put_u32(fp, SW_BYTES_AT + 8, 3);
        put_u32(fp, SW_BYTES_AT + 16, xstate_size);
    }

    fn assert_gregs_scrubbed(uc: &libc::ucontext_t) {
        for (i, &r) in uc.uc_mcontext.gregs.iter().enumerate() {
            let kept = [libc::REG_RSP, libc::REG_RIP, libc::REG_EFL]
                .into_iter()
                .chain(libc::REG_CSGSFS..=libc::REG_CR2)
                .any(|k| usize::try_from(k) == Ok(i));
            assert_eq!(r == 0, !kept, "general register {i}: {r:#x}");
        }
    }

    /// A frame with only the legacy FXSAVE area (a CPU without XSAVE, or a
    /// kernel booted with `noxsave`): since Linux 5.16 the kernel still
    /// writes `FP_XSTATE_MAGIC1` with `xstate_size` 512 and
    /// `extended_size` 516, but neither writes `FP_XSTATE_MAGIC2` after the
    /// 512 bytes nor leaves room for it, so the 512 bytes may end where the
    /// frame's memory ends. The scrub zeroes the x87 and SSE registers and
    /// reads nothing past the area.
    #[test]
    fn an_fxsave_only_frame_is_scrubbed_without_reading_past_it() {
        in_child(
            "sys::tests::an_fxsave_only_frame_is_scrubbed_without_reading_past_it",
            || {
                let fp = area_at_the_end(FXSAVE_LEN);
                // SAFETY: the area's 464 register bytes.
                unsafe { std::ptr::write_bytes(fp, 0xab, SW_BYTES_AT) };
                sw_bytes(fp, 512);
                let mut uc = context(fp);
                // SAFETY: a context laid out as the kernel's, its area
                // inside memory of ours.
                unsafe { scrub_context((&raw mut *uc).cast()) };
                assert_eq!(bytes(fp, 0..SW_BYTES_AT), vec![0; SW_BYTES_AT]);
                assert_eq!(
                    bytes(fp, SW_BYTES_AT..SW_BYTES_AT + 4),
                    FP_XSTATE_MAGIC1.to_ne_bytes()
                );
                assert_gregs_scrubbed(&uc);
            },
        );
    }

    /// A full XSAVE area: every byte but the software bytes zeroed, up to
    /// `xstate_size` and no further.
    #[test]
    fn an_xsave_frame_is_scrubbed_to_its_closing_magic() {
        const SIZE: usize = 1024;
        let mut buf = vec![0xabu8; 4096];
        let fp = buf.as_mut_ptr().wrapping_add(buf.as_ptr().align_offset(64));
        sw_bytes(fp, 1024);
        put_u32(fp, SIZE, FP_XSTATE_MAGIC2);
        let mut uc = context(fp);
        // SAFETY: a context laid out as the kernel's, its area inside `buf`.
        unsafe { scrub_context((&raw mut *uc).cast()) };
        assert_eq!(bytes(fp, 0..SW_BYTES_AT), vec![0; SW_BYTES_AT]);
        assert_eq!(bytes(fp, FXSAVE_LEN..SIZE), vec![0; SIZE - FXSAVE_LEN]);
        assert_eq!(bytes(fp, SIZE..SIZE + 4), FP_XSTATE_MAGIC2.to_ne_bytes());
        assert_eq!(bytes(fp, SIZE + 4..SIZE + 64), vec![0xab; 60]);
        assert_gregs_scrubbed(&uc);
    }

    /// Software bytes the kernel did not write as a whole (no closing
    /// magic, a size past the largest area, `extended_size` that does not
    /// match): nothing past the legacy area is written.
    #[test]
    fn an_unknown_xsave_layout_is_not_written_past_the_legacy_area() {
        for (size, extended, magic2) in [
            (1024u32, 1028u32, 0u32),
            (1024, 1024, FP_XSTATE_MAGIC2),
            (128 * 1024, 128 * 1024 + 4, FP_XSTATE_MAGIC2),
        ] {
            let mut buf = vec![0xabu8; 4096];
            let fp = buf.as_mut_ptr().wrapping_add(buf.as_ptr().align_offset(64));
            sw_bytes(fp, size);
            put_u32(fp, SW_BYTES_AT + 4, extended);
            if (size as usize) < 4000 {
                put_u32(fp, size as usize, magic2);
            }
            let mut uc = context(fp);
            // SAFETY: a context laid out as the kernel's, its area inside
            // `buf` (the sizes past it are never believed).
            unsafe { scrub_context((&raw mut *uc).cast()) };
            assert_eq!(bytes(fp, 0..SW_BYTES_AT), vec![0; SW_BYTES_AT]);
            assert_eq!(bytes(fp, FXSAVE_LEN..1024), vec![0xab; 512], "{size}");
        }
    }
}
