//! `cargo run --example doctor`: what this host offers a secret
//! (`Host::probe`), the process-wide hardening in force
//! (`Hardening::current`), then a page-isolated, a packed and a
//! secret-memory box with their protections read back from the kernel's
//! own view in /proc, the crate's counters (`stats()`) as the boxes are
//! dropped and the cache is trimmed, and what the last wipe covers.
//!
//! Each section's title names the public items it reports, and a line of
//! the host, hardening and stats sections starts with the name of the field
//! it shows; `tests/doctor.rs` runs this report and checks both against the
//! API.
//!
//! Exits with status 1 if a protection that the host claims to offer is not
//! visible on the box.
//!
//! On Windows the boxes are read back through `VirtualQuery` and
//! `QueryWorkingSetEx` instead of /proc, and what only Linux has (the
//! kernel's core settings, VmLck, secret memory, the hardening state) is
//! reported as not available. Under Wine, whose `VirtualLock` succeeds and
//! locks nothing, the lock is reported as not verifiable (`[ -- ]`), not
//! as verified.

#[cfg(unix)]
#[path = "../tests/common/procfs.rs"]
mod procfs;

#[cfg(windows)]
#[allow(unused_imports)]
#[path = "../tests/common/windows.rs"]
mod win;

/// The mechanisms the report names, as the platform calls them.
#[cfg(unix)]
mod names {
    pub(crate) const LIMIT: &str = "RLIMIT_MEMLOCK";
    pub(crate) const EXEMPT_YES: &str =
        "yes: CAP_IPC_LOCK, the kernel ignores RLIMIT_MEMLOCK for this process";
    pub(crate) const EXEMPT_NO: &str = "no: no CAP_IPC_LOCK, RLIMIT_MEMLOCK applies";
    pub(crate) const NO_DUMPS: &str = "NO: boxes cannot be left out of a core file here; \
         Hardening::no_core_dumps (RLIMIT_CORE 0) is the defence";
    #[cfg(target_os = "linux")]
    pub(crate) const DUMPS: &str = "MADV_DONTDUMP, boxes stay out of core dumps";
    #[cfg(target_os = "freebsd")]
    pub(crate) const DUMPS: &str = "MADV_NOCORE, boxes stay out of core dumps";
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    pub(crate) const DUMPS: &str = "MAP_CONCEAL, boxes stay out of core dumps";
    #[cfg(target_os = "linux")]
    pub(crate) const FORK_ZEROS: &str =
        "MADV_WIPEONFORK, a fork child sees zeros (ForkPolicy::Wipe, the default)";
    #[cfg(not(target_os = "linux"))]
    pub(crate) const FORK_ZEROS: &str =
        "minherit(INHERIT_ZERO), a fork child sees zeros (ForkPolicy::Wipe, the default)";
    #[cfg(target_os = "linux")]
    pub(crate) const FORK_EXCLUSION: &str =
        "MADV_DONTFORK, a fork child has no such pages (ForkPolicy::Exclude)";
    #[cfg(not(target_os = "linux"))]
    pub(crate) const FORK_EXCLUSION: &str =
        "minherit(INHERIT_NONE), a fork child has no such pages (ForkPolicy::Exclude)";
    pub(crate) const NOT_COVERED: &str =
        "not covered: SIGKILL, the OOM killer's too (no handler can catch it)";
    pub(crate) const TURN_ON: &str = "call wipe_on_signals(&[SIGTERM, SIGINT, SIGHUP]) and wipe_on_panic() at start: \
         the crate's memory is zeroed before such a death";
}

/// The mechanisms the report names, as the platform calls them.
#[cfg(windows)]
mod names {
    pub(crate) const LIMIT: &str = "minimum working set (VirtualLock's quota)";
    pub(crate) const EXEMPT_YES: &str = "yes";
    pub(crate) const EXEMPT_NO: &str =
        "no: no process is exempt from its working-set quota on Windows";
    pub(crate) const DUMPS: &str = "WerRegisterExcludedMemoryBlock, boxes stay out of Windows \
         Error Reporting's dumps (not out of dumps other tools write)";
    pub(crate) const NO_DUMPS: &str = "NO: no WerRegisterExcludedMemoryBlock here (Windows \
         before 10 1703, or Wine): a crash dump would hold the boxes; DumpPolicy::Exclude is \
         Error::Unsupported";
    pub(crate) const FORK_ZEROS: &str =
        "Windows has no fork(2): no child ever gets a box (every ForkPolicy is moot)";
    pub(crate) const FORK_EXCLUSION: &str = FORK_ZEROS;
    pub(crate) const NOT_COVERED: &str =
        "not covered: TerminateProcess from outside (Task Manager's End task; no handler runs)";
    pub(crate) const TURN_ON: &str = "call wipe_on_signals(&[Signal::INT, Signal::TERM]) (Ctrl-C, Ctrl-Break, the console's \
         closing, logoff, shutdown, and a crash) and wipe_on_panic() at start: the crate's \
         memory is zeroed before such a death";
}

#[cfg(unix)]
use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;

#[cfg(unix)]
use lockedmem::{Backing, Hardening};
use lockedmem::{Host, Isolation, LockedBox, MemlockLimit, Options};

fn main() -> ExitCode {
    let mut stdout = io::stdout().lock();
    let failed = report(&mut stdout).expect("write the report to stdout");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes the whole report to `out`; returns how many protections could
/// not be verified.
///
/// # Errors
///
/// If writing to `out` fails.
pub fn report(out: &mut dyn Write) -> io::Result<usize> {
    let mut r = Report { out, failed: 0 };
    let host = Host::probe();
    r.host(&host)?;
    r.core_dumps(&host)?;
    r.hardening()?;
    r.boxes(&host)?;
    r.last_wipe()?;
    if r.failed == 0 {
        writeln!(r.out, "all protections verified")?;
    } else {
        writeln!(r.out, "{} protection(s) could not be verified", r.failed)?;
    }
    Ok(r.failed)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn bytes(limit: Option<u64>) -> String {
    match limit {
        None => "unlimited".to_owned(),
        Some(n) if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        Some(n) if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        Some(n) => format!("{n} bytes"),
    }
}

#[cfg(unix)]
fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|e| format!("unreadable ({e})"), |s| s.trim().to_owned())
}

/// Reads 8 bytes at `addr` through /proc/self/mem: what another process
/// with ptrace access would get, and a read that needs no Rust reference.
#[cfg(unix)]
fn read_through_proc_mem(addr: usize) -> io::Result<[u8; 8]> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8];
    fs::File::open("/proc/self/mem")?.read_exact_at(&mut buf, addr as u64)?;
    Ok(buf)
}

/// The report being written, and the count of protections not verified.
struct Report<'a> {
    out: &'a mut dyn Write,
    failed: usize,
}

impl Report<'_> {
    /// A section title: what it is about, and the public items it reports.
    fn section(&mut self, what: &str, items: &str) -> io::Result<()> {
        writeln!(self.out, "== {what} ({items}) ==")
    }

    /// A line `name  text`, `name` padded to a column.
    fn line(&mut self, name: &str, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "{name:<22} {text}")
    }

    /// A property this host cannot show (`[ -- ]`): not counted as verified
    /// or as failed.
    #[cfg(windows)]
    fn unverifiable(&mut self, what: &str, detail: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "[ -- ] {what}: {detail}")
    }

    /// Checks one property, prints it, and counts failures.
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) -> io::Result<()> {
        if !ok {
            self.failed += 1;
        }
        writeln!(
            self.out,
            "[{}] {what}: {detail}",
            if ok { " ok " } else { "FAIL" }
        )
    }

    /// `Host::probe()`, a line per field.
    fn host(&mut self, host: &Host) -> io::Result<()> {
        self.section("host", "Host::probe")?;
        self.line("platform", host.platform)?;
        #[cfg(unix)]
        self.line("kernel", read_trimmed("/proc/sys/kernel/osrelease"))?;
        #[cfg(windows)]
        self.line(
            "wine",
            if win::under_wine() {
                "yes: this is Wine, not Windows (its VirtualLock locks nothing)"
            } else {
                "no"
            },
        )?;
        self.line("page_size", format!("{} bytes", host.page_size))?;
        let MemlockLimit { soft, hard } = host.memlock;
        self.line(
            "memlock",
            format!(
                "{} soft {}, hard {}",
                names::LIMIT,
                bytes(soft),
                bytes(hard)
            ),
        )?;
        let cap = match host.lock_exempt {
            Some(true) => names::EXEMPT_YES,
            Some(false) => names::EXEMPT_NO,
            None => "unknown (capget failed)",
        };
        self.line("lock_exempt", cap)?;
        if host.lock_exempt != Some(true) {
            if let Some(soft) = soft {
                let pages = soft / host.page_size as u64;
                self.line(
                    "",
                    format!(
                        "room for about {pages} page-isolated small boxes (a page each), or {} \
                         packed 32-byte ones (64 bytes each)",
                        pages * host.page_size as u64 / 64
                    ),
                )?;
            }
        }
        self.line(
            "dump_exclusion",
            if host.dump_exclusion {
                format!("yes: {}", names::DUMPS)
            } else {
                names::NO_DUMPS.to_owned()
            },
        )?;
        self.line(
            "fork_zeros",
            if host.fork_zeros {
                format!("yes: {}", names::FORK_ZEROS)
            } else if cfg!(windows) {
                format!("moot: {}", names::FORK_ZEROS)
            } else {
                "NO: a fork child cannot be given zeros: ForkPolicy::Wipe is \
                 Error::Unsupported, the default is ForkPolicy::Exclude"
                    .to_owned()
            },
        )?;
        self.line(
            "fork_exclusion",
            format!("{}: {}", yes_no(host.fork_exclusion), names::FORK_EXCLUSION),
        )?;
        let secret = match &host.secret_memory {
            Ok(true) => "yes: memfd_secret(2); Backing::SecretMem and PreferSecretMem boxes use it"
                .to_owned(),
            Ok(false) => "no: a system without memfd_secret(2); Backing::SecretMem is \
                          Error::Unsupported, PreferSecretMem uses anonymous memory"
                .to_owned(),
            Err(kind) => format!(
                "no: memfd_secret(2) answers {kind} (kernel booted without secretmem?); \
                 Backing::SecretMem is Error::Unsupported, PreferSecretMem uses anonymous memory"
            ),
        };
        self.line("secret_memory", secret)?;
        self.line(
            "locked_by_crate",
            format!("{} bytes locked by lockedmem now", host.locked_by_crate),
        )?;
        #[cfg(windows)]
        return Ok(());
        #[cfg(unix)]
        self.line(
            "vm.max_map_count",
            format!(
                "{} mappings a process may have (a page-isolated box costs about 2)",
                read_trimmed("/proc/sys/vm/max_map_count")
            ),
        )
    }

    /// What decides whether a crash writes a dump: Windows Error Reporting,
    /// not a core limit.
    #[cfg(windows)]
    fn core_dumps(&mut self, host: &Host) -> io::Result<()> {
        self.section("core dumps", "Host::probe")?;
        self.line(
            "core_limit",
            format!(
                "{} (Windows has no core limit: Windows Error Reporting and the debugger \
                 configured in AeDebug decide what a crash dumps)",
                bytes(host.core_limit)
            ),
        )?;
        self.line(
            "inspectable",
            "unknown: not asked on Windows (the process's security descriptor decides who \
             may read its memory)",
        )
    }

    /// What decides whether a crash writes a core file, and where.
    #[cfg(unix)]
    fn core_dumps(&mut self, host: &Host) -> io::Result<()> {
        self.section("core dumps", "Host::probe")?;
        let core = match host.core_limit {
            Some(0) => "RLIMIT_CORE 0: this process writes no core at all".to_owned(),
            other => format!("RLIMIT_CORE {}", bytes(other)),
        };
        self.line("core_limit", core)?;
        let dumpable = host.inspectable.map_or("unknown", |d| {
            if d {
                "yes: PR_GET_DUMPABLE, cores and same-user ptrace allowed"
            } else {
                "no: PR_GET_DUMPABLE 0, no core, no same-user ptrace"
            }
        });
        self.line("inspectable", dumpable)?;
        let pattern = read_trimmed("/proc/sys/kernel/core_pattern");
        let whither = if pattern.starts_with('|') {
            "cores are piped to that helper"
        } else {
            "cores are written to that file name"
        };
        self.line("core_pattern", format!("{pattern} ({whither})"))?;
        self.line(
            "coredump_filter",
            format!(
                "{} (which kinds of mapping go into a core; pages marked MADV_DONTDUMP never do)",
                read_trimmed("/proc/self/coredump_filter")
            ),
        )
    }

    /// `Hardening::current()` is Linux's: on Windows the section says so.
    #[cfg(windows)]
    fn hardening(&mut self) -> io::Result<()> {
        self.section("process hardening, opt-in", "Hardening::current")?;
        self.line(
            "not available",
            "Hardening reads and changes Linux's process state (/proc, prctl, rlimits); on \
             Windows Hardening::current is an error",
        )
    }

    /// `Hardening::current()`: the process-wide settings the crate changes
    /// only when asked (`Hardening::apply`), a line per field.
    #[cfg(unix)]
    fn hardening(&mut self) -> io::Result<()> {
        self.section("process hardening, opt-in", "Hardening::current")?;
        let state = match Hardening::current() {
            Ok(state) => state,
            Err(e) => return self.line("error", format!("cannot read the state: {e}")),
        };
        self.line(
            "core_soft_limit",
            format!(
                "{}{}",
                bytes(state.core_soft_limit),
                if state.core_dumps_off() {
                    " (no core files)"
                } else {
                    ""
                }
            ),
        )?;
        self.line("core_hard_limit", bytes(state.core_hard_limit))?;
        self.line(
            "dumpable",
            if state.dumpable {
                "yes (cores, same-user ptrace and /proc/PID/mem allowed)"
            } else {
                "no (no core; same-user ptrace and /proc/PID/mem refused)"
            },
        )?;
        self.line("mapped", format!("{} (VmSize)", bytes(Some(state.mapped))))?;
        self.line(
            "resident",
            format!("{} (VmRSS)", bytes(Some(state.resident))),
        )?;
        self.line("locked", format!("{} (VmLck)", bytes(Some(state.locked))))?;
        self.line(
            "locked_resident",
            format!(
                "{} (locked pages in RAM)",
                bytes(Some(state.locked_resident))
            ),
        )?;
        self.line(
            "unlocked",
            format!(
                "{} of mappings mlockall would lock are not locked (all locked: {})",
                bytes(Some(state.unlocked)),
                if state.all_locked() { "yes" } else { "no" }
            ),
        )?;
        let future = match state.future_locked {
            Some(true) => "yes (MCL_FUTURE): new mappings are locked",
            Some(false) => "no: new mappings are not locked",
            None => "unknown (the probe page could not be made)",
        };
        self.line("future_locked", future)?;
        let on_fault = match state.future_on_fault {
            Some(true) => "yes (MCL_ONFAULT): page by page, as they are touched",
            Some(false) => "no: whole, when they are made",
            None => "not applicable (new mappings are not locked) or unknown",
        };
        self.line("future_on_fault", on_fault)
    }

    /// `lockedmem::stats()`, every field by name, on one line.
    fn stats(&mut self) -> io::Result<()> {
        let s = lockedmem::stats();
        writeln!(
            self.out,
            "stats(): page_boxes {}, page_boxes_unlocked {}, packed_boxes {}, \
             packed_boxes_unlocked {}, locked_bytes {}, cached_slots {}, cached_bytes {}, \
             packed_pages {}, packed_pages_unlocked {}, mappings {}",
            s.page_boxes,
            s.page_boxes_unlocked,
            s.packed_boxes,
            s.packed_boxes_unlocked,
            s.locked_bytes,
            s.cached_slots,
            s.cached_bytes,
            s.packed_pages,
            s.packed_pages_unlocked,
            s.mappings
        )
    }

    /// A page-isolated box, a packed one and a sealed one as `VirtualQuery`
    /// and `QueryWorkingSetEx` show them, then the first dropped and the
    /// cache trimmed.
    #[cfg(windows)]
    fn boxes(&mut self, host: &Host) -> io::Result<()> {
        self.section("a page-isolated box", "LockedBox, Isolation::Page")?;
        let key = match LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)) {
            Ok(k) => k,
            Err(e) => return self.check("a page-isolated box", false, e),
        };
        writeln!(self.out, "{key:?}")?;
        let start = key.as_ptr() as usize;
        let end = start + key.len();
        let page = host.page_size;
        let data = win::region(start);
        self.check(
            "data pages committed read-write",
            data.read_write() && win::region(end - 1).read_write(),
            format!("state {:#x}, protection {:#x}", data.state, data.protect),
        )?;
        for (what, at) in [
            ("guard page before", (start & !(page - 1)) - page),
            ("guard page after", end),
        ] {
            let g = win::region(at);
            self.check(
                what,
                g.inaccessible() && g.allocation_base == data.allocation_base,
                format!(
                    "state {:#x}, protection {:#x}, in the box's reservation: {}",
                    g.state,
                    g.protect,
                    g.allocation_base == data.allocation_base
                ),
            )?;
        }
        self.check(
            "value ends flush against the guard",
            end % page == 0,
            format!("last byte at {:#x}, guard from {end:#x}", end - 1),
        )?;
        let flags = win::working_set_flags(start);
        self.check(
            "in the working set (QueryWorkingSetEx Valid)",
            flags & win::WS_VALID != 0,
            format!("attributes {flags:#x}"),
        )?;
        let locked = flags & win::WS_LOCKED != 0;
        if win::under_wine() && !locked {
            self.unverifiable(
                "locked (QueryWorkingSetEx Locked)",
                format!(
                    "VirtualLock said yes (is_locked: {}), but Wine keeps no lock: not \
                     verifiable here",
                    key.is_locked()
                ),
            )?;
        } else {
            self.check(
                "locked (QueryWorkingSetEx Locked)",
                locked && key.is_locked(),
                format!("attributes {flags:#x}"),
            )?;
        }
        let residency = key.residency();
        self.check(
            "resident (QueryWorkingSetEx)",
            residency.as_ref().is_ok_and(|r| r.all_resident()),
            match &residency {
                Ok(r) => format!(
                    "{} of {} data pages in the working set",
                    r.resident, r.total
                ),
                Err(e) => format!("QueryWorkingSetEx failed: {e}"),
            },
        )?;

        self.section("a packed box", "Isolation::Packed")?;
        match Options::new()
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
        {
            Ok(small) => {
                writeln!(self.out, "{small:?}")?;
                let at = small.as_ptr() as usize;
                let first = at & !(page - 1);
                let data = win::region(at);
                let guarded = [first - page, first + page]
                    .iter()
                    .all(|&g| win::region(g).inaccessible());
                self.check(
                    "packed page read-write, between inaccessible pages",
                    data.read_write() && guarded,
                    format!("protection {:#x}", data.protect),
                )?;
                self.stats()?;
            }
            Err(e) => self.check("packed box", false, e)?,
        }

        self.secretmem(host, start)?;

        self.section("after drop, and after trim", "stats, trim")?;
        drop(key);
        let st = lockedmem::stats();
        let cached = win::region(end - 1);
        self.check(
            "dropped slot cached",
            cached.read_write() && st.cached_slots >= 1,
            format!(
                "{} slot(s), {} bytes in the cache",
                st.cached_slots, st.cached_bytes
            ),
        )?;
        if cached.read_write() {
            // SAFETY: a committed read-write page of this process
            // (VirtualQuery said so just above), read as bytes.
            let left: Vec<u8> = (end - 8..end)
                .map(|at| unsafe { (at as *const u8).read_volatile() })
                .collect();
            self.check(
                "dropped value wiped",
                left.iter().all(|&x| x == 0),
                format!("its last 8 bytes read {left:02x?}"),
            )?;
        }
        lockedmem::trim();
        let gone = win::region(end - 1);
        self.check(
            "reservation released after trim",
            gone.state == win::MEM_FREE || gone.allocation_base != data.allocation_base,
            format!("state {:#x} at the old address", gone.state),
        )?;
        self.stats()
    }

    /// A page-isolated box, a packed one and a secret-memory one as the
    /// kernel shows them, then the first dropped and the cache trimmed.
    #[cfg(unix)]
    fn boxes(&mut self, host: &Host) -> io::Result<()> {
        self.section("a page-isolated box", "LockedBox, Isolation::Page")?;
        let lck_before = procfs::vm_lck_kb();
        let key = match LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)) {
            Ok(k) => k,
            Err(e) => return self.check("a page-isolated box", false, e),
        };
        writeln!(self.out, "{key:?}")?;
        let start = key.as_ptr() as usize;
        let end = start + key.len();
        let page = host.page_size;
        let vmas = procfs::smaps();
        let Some(i) = vmas.iter().position(|v| v.contains(end - 1)) else {
            return self.check("the box's address in /proc/self/smaps", false, "not found");
        };
        let (before, data, after) = (&vmas[i - 1], &vmas[i], &vmas[i + 1]);
        self.check(
            "data pages",
            data.perms == "rw-p",
            format!("{} bytes, {}", data.len(), data.perms),
        )?;
        self.check(
            "mlocked (VmFlags lo)",
            data.has("lo") && key.is_locked(),
            data.flags.join(" "),
        )?;
        self.check(
            "locked bytes (smaps Locked)",
            data.locked_kb * 1024 == data.len() as u64,
            format!("{} kB", data.locked_kb),
        )?;
        if host.dump_exclusion {
            self.check(
                "left out of core dumps (dd)",
                data.has("dd"),
                "MADV_DONTDUMP",
            )?;
        } else {
            // Nothing to verify but that no exclusion is claimed: a core
            // file would hold the box; the defence is to write none.
            self.check(
                "not left out of core dumps (no dd): this platform cannot",
                !data.has("dd"),
                "Hardening::no_core_dumps (RLIMIT_CORE 0) keeps a crash from writing the secret",
            )?;
        }
        if host.fork_zeros {
            self.check(
                "zeros in fork children (wf)",
                data.has("wf") && !data.has("dc"),
                "MADV_WIPEONFORK, the default ForkPolicy::Wipe",
            )?;
        } else {
            self.check(
                "absent from fork children (dc)",
                data.has("dc") && !data.has("wf"),
                "MADV_DONTFORK, the default ForkPolicy::Exclude where a child cannot get zeros",
            )?;
        }
        self.check(
            "guard page before",
            before.perms == "---p" && before.end == data.start && !before.has("lo"),
            format!("{} bytes {}", before.len(), before.perms),
        )?;
        self.check(
            "guard page after",
            after.perms == "---p" && after.start == data.end && !after.has("lo"),
            format!(
                "{} bytes {} (the guard page and the slab's slots not in use, one mapping)",
                after.len(),
                after.perms
            ),
        )?;
        self.check(
            "value ends flush against the guard",
            end == data.end && end % page == 0,
            format!("last byte at {:#x}, guard from {:#x}", end - 1, after.start),
        )?;
        let residency = key.residency();
        self.check(
            "resident (mincore)",
            residency.as_ref().is_ok_and(|r| r.all_resident()),
            match &residency {
                Ok(r) => format!("{} of {} data pages in RAM", r.resident, r.total),
                Err(e) => format!("mincore failed: {e}"),
            },
        )?;
        let lck_live = procfs::vm_lck_kb();
        self.check(
            "VmLck rose",
            lck_live >= lck_before + (data.len() / 1024) as u64,
            format!("{lck_before} kB -> {lck_live} kB"),
        )?;

        self.section("a packed box", "Isolation::Packed")?;
        match Options::new()
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
        {
            Ok(small) => {
                writeln!(self.out, "{small:?}")?;
                let vma = procfs::vma_at(small.as_ptr() as usize);
                let flags = vma.as_ref().map_or_else(String::new, |v| v.flags.join(" "));
                self.check(
                    if host.dump_exclusion {
                        "packed page locked, left out of dumps"
                    } else {
                        "packed page locked (not left out of dumps: this platform cannot)"
                    },
                    vma.as_ref().is_some_and(|v| {
                        v.perms == "rw-p" && v.has("lo") && v.has("dd") == host.dump_exclusion
                    }),
                    flags,
                )?;
                let guarded = vma.as_ref().is_some_and(|v| {
                    procfs::perms_at(v.start - 1).as_deref() == Some("---p")
                        && procfs::perms_at(v.end).as_deref() == Some("---p")
                });
                self.check(
                    "packed pages between PROT_NONE pages",
                    guarded,
                    "---p on both sides",
                )?;
                self.stats()?;
            }
            Err(e) => self.check("packed box", false, e)?,
        }

        self.secretmem(host, start)?;

        self.section("after drop, and after trim", "stats, trim")?;
        drop(key);
        let cached = procfs::vma_at(end - 1);
        let st = lockedmem::stats();
        self.check(
            "dropped slot cached, still locked",
            cached.is_some_and(|v| v.perms == "rw-p" && v.has("lo")) && st.cached_slots >= 1,
            format!(
                "{} slot(s), {} bytes in the cache",
                st.cached_slots, st.cached_bytes
            ),
        )?;
        // The slot is mapped read-write: /proc/self/mem reads what is there.
        let left = read_through_proc_mem(end - 8);
        self.check(
            "dropped value wiped",
            left.as_ref().is_ok_and(|b| b.iter().all(|&x| x == 0)),
            match &left {
                Ok(b) => format!("its last 8 bytes read {b:02x?} through /proc/self/mem"),
                Err(e) => format!("cannot read it: {e}"),
            },
        )?;
        lockedmem::trim();
        let lck_after = procfs::vm_lck_kb();
        self.check(
            "VmLck back after trim",
            lck_after == lck_before,
            format!("{lck_after} kB"),
        )?;
        self.check(
            "mapping gone after trim",
            procfs::perms_at(end - 1).is_none(),
            "no VMA holds the old address",
        )?;
        self.stats()
    }

    /// A `Backing::SecretMem` box as the kernel shows it, and a read of it
    /// through /proc/self/mem failing where one of the anonymous box at
    /// `control` succeeds.
    fn secretmem(&mut self, host: &Host, control: usize) -> io::Result<()> {
        self.section("a secret-memory box", "Backing::SecretMem")?;
        self.secretmem_here(host, control)
    }

    /// [`secretmem`](Self::secretmem) on Windows: there is none.
    #[cfg(windows)]
    fn secretmem_here(&mut self, host: &Host, _control: usize) -> io::Result<()> {
        self.line(
            "not available",
            format!(
                "memfd_secret(2) is Linux's: {:?}; Backing::SecretMem is \
                 Error::Unsupported, PreferSecretMem gives anonymous memory",
                host.secret_memory
            ),
        )
    }

    /// [`secretmem`](Self::secretmem) where the system may have it.
    #[cfg(unix)]
    fn secretmem_here(&mut self, host: &Host, control: usize) -> io::Result<()> {
        if !matches!(host.secret_memory, Ok(true)) {
            return self.line(
                "not available",
                format!(
                    "memfd_secret(2): {:?}; Backing::SecretMem is Error::Unsupported, \
                     PreferSecretMem gives anonymous memory",
                    host.secret_memory
                ),
            );
        }
        let secret = match Options::new()
            .backing(Backing::SecretMem)
            .new_with(|k: &mut [u8; 32]| k.fill(0x5A))
        {
            Ok(s) => s,
            Err(e) => return self.check("secret-memory box", false, e),
        };
        writeln!(self.out, "{secret:?}")?;
        let addr = secret.as_ptr() as usize;
        let vma = procfs::vma_at(addr);
        self.check(
            "pages of a memfd_secret file",
            secret.backing() == Backing::SecretMem
                && vma
                    .as_ref()
                    .is_some_and(|v| v.path.starts_with("/secretmem")),
            vma.as_ref()
                .map_or_else(String::new, |v| format!("{} {}", v.perms, v.path)),
        )?;
        self.check(
            "locked, left out of dumps, not in fork children (lo dd dc)",
            vma.as_ref()
                .is_some_and(|v| v.has("lo") && v.has("dd") && v.has("dc")),
            vma.as_ref().map_or_else(String::new, |v| v.flags.join(" ")),
        )?;
        let control_read = read_through_proc_mem(control);
        let secret_read = read_through_proc_mem(addr);
        self.check(
            "unreadable through /proc/self/mem (an anonymous box is readable)",
            control_read.is_ok() && secret_read.is_err(),
            format!(
                "anonymous: {}, secret memory: {}",
                control_read.map_or_else(|e| e.to_string(), |_| "read".into()),
                secret_read.map_or_else(|e| e.to_string(), |_| "read".into()),
            ),
        )
    }

    /// The last wipe: opt-in, so the doctor says how to turn it on and what
    /// it cannot cover, the latter as the API answers it.
    fn last_wipe(&mut self) -> io::Result<()> {
        self.section(
            "the last wipe, opt-in",
            "wipe_on_signals, wipe_on_panic, wipe_all_and_abort",
        )?;
        self.line("to turn it on", names::TURN_ON)?;
        // 9, SIGKILL's number on Unix and no console event on Windows:
        // refused whole, so nothing is installed in this process.
        let kill = lockedmem::wipe_on_signals(&[lockedmem::Signal::from_raw(9)]);
        self.check(
            names::NOT_COVERED,
            matches!(kill, Err(lockedmem::Error::UnsupportedSignal { .. })),
            match kill {
                Err(e) => format!("wipe_on_signals refuses it: {e}"),
                Ok(()) => "wipe_on_signals accepted it".to_owned(),
            },
        )
    }
}
