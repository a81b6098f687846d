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

#[path = "../tests/common/procfs.rs"]
mod procfs;

use std::fs;
use std::io::{self, Write};
use std::process::ExitCode;

use lockedmem::{Backing, Hardening, Host, Isolation, LockedBox, MemlockLimit, Options};

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

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|e| format!("unreadable ({e})"), |s| s.trim().to_owned())
}

/// Reads 8 bytes at `addr` through /proc/self/mem: what another process
/// with ptrace access would get, and a read that needs no Rust reference.
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
        self.line("kernel", read_trimmed("/proc/sys/kernel/osrelease"))?;
        self.line("page_size", format!("{} bytes", host.page_size))?;
        let MemlockLimit { soft, hard } = host.memlock;
        self.line(
            "memlock",
            format!("RLIMIT_MEMLOCK soft {}, hard {}", bytes(soft), bytes(hard)),
        )?;
        let cap = match host.lock_exempt {
            Some(true) => "yes: CAP_IPC_LOCK, the kernel ignores RLIMIT_MEMLOCK for this process",
            Some(false) => "no: no CAP_IPC_LOCK, RLIMIT_MEMLOCK applies",
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
                "yes: MADV_DONTDUMP, boxes stay out of core dumps"
            } else {
                "NO: boxes cannot be left out of a core file here; Hardening::no_core_dumps \
                 (RLIMIT_CORE 0) is the defence"
            },
        )?;
        self.line(
            "fork_zeros",
            if host.fork_zeros {
                "yes: MADV_WIPEONFORK, a fork child sees zeros (ForkPolicy::Wipe, the default)"
            } else {
                "NO: a fork child cannot be given zeros: ForkPolicy::Wipe is \
                 Error::Unsupported, the default is ForkPolicy::Exclude"
            },
        )?;
        self.line(
            "fork_exclusion",
            format!(
                "{}: MADV_DONTFORK, a fork child has no such pages (ForkPolicy::Exclude)",
                yes_no(host.fork_exclusion)
            ),
        )?;
        let secret = match &host.secret_memory {
            Ok(true) => "yes: memfd_secret(2); Backing::SecretMem and PreferSecretMem boxes use it"
                .to_owned(),
            Ok(false) => "no: a kernel without memfd_secret(2); Backing::SecretMem is \
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
        self.line(
            "vm.max_map_count",
            format!(
                "{} mappings a process may have (a page-isolated box costs about 2)",
                read_trimmed("/proc/sys/vm/max_map_count")
            ),
        )
    }

    /// What decides whether a crash writes a core file, and where.
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

    /// `Hardening::current()`: the process-wide settings the crate changes
    /// only when asked (`Hardening::apply`), a line per field.
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

    /// A page-isolated box, a packed one and a secret-memory one as the
    /// kernel shows them, then the first dropped and the cache trimmed.
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
        self.line(
            "to turn it on",
            "call wipe_on_signals(&[SIGTERM, SIGINT, SIGHUP]) and wipe_on_panic() at start: \
             the crate's memory is zeroed before such a death",
        )?;
        // Refused whole, so nothing is installed in this process.
        let kill = lockedmem::wipe_on_signals(&[libc::SIGKILL]);
        self.check(
            "not covered: SIGKILL, the OOM killer's too (no handler can catch it)",
            matches!(kill, Err(lockedmem::Error::UnsupportedSignal { .. })),
            match kill {
                Err(e) => format!("wipe_on_signals refuses it: {e}"),
                Ok(()) => "wipe_on_signals accepted it".to_owned(),
            },
        )
    }
}
