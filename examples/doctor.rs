//! `cargo run --example doctor`: what this host offers a secret, the
//! process-wide hardening in force (`Hardening::current`), then a
//! page-isolated and a packed box with their protections read back from the
//! kernel's own view in /proc, and the crate's counters (`stats()`) as the
//! boxes are dropped and the cache is trimmed.
//!
//! Exits with status 1 if a protection that the host claims to offer is not
//! visible on the box.

#[path = "../tests/common/procfs.rs"]
mod procfs;

use std::fs;
use std::process::ExitCode;

use lockedbox::{Backing, Hardening, Host, Isolation, LockedBox, MemlockLimit, Options};

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

fn report_host(host: &Host) {
    println!("== host ==");
    println!(
        "kernel                 {}",
        read_trimmed("/proc/sys/kernel/osrelease")
    );
    println!("page size              {} bytes", host.page_size);
    let MemlockLimit { soft, hard } = host.memlock;
    println!(
        "RLIMIT_MEMLOCK         soft {}, hard {}",
        bytes(soft),
        bytes(hard)
    );
    let cap = match host.cap_ipc_lock {
        Some(true) => "yes (the kernel ignores RLIMIT_MEMLOCK for this process)",
        Some(false) => "no (RLIMIT_MEMLOCK applies)",
        None => "unknown (capget failed)",
    };
    println!("CAP_IPC_LOCK           {cap}");
    if host.cap_ipc_lock != Some(true) {
        if let Some(soft) = soft {
            let pages = soft / host.page_size as u64;
            println!(
                "                       room for about {pages} page-isolated small boxes (a page \
                 each), or {} packed 32-byte ones (64 bytes each)",
                pages * host.page_size as u64 / 64
            );
        }
    }
    println!("MADV_DONTDUMP          {}", yes_no(host.dont_dump));
    println!("MADV_WIPEONFORK        {}", yes_no(host.wipe_on_fork));
    println!("MADV_DONTFORK          {}", yes_no(host.dont_fork));
    let secret = match &host.memfd_secret {
        Ok(true) => "yes (probed only: boxes do not use it yet)".to_owned(),
        Ok(false) => "no (kernel without the call; boxes do not need it)".to_owned(),
        Err(kind) => format!("no ({kind}; kernel booted without secretmem?)"),
    };
    println!("memfd_secret           {secret}");

    println!("== core dumps ==");
    let core = match host.core_limit {
        Some(0) => "0: this process writes no core at all".to_owned(),
        other => bytes(other),
    };
    println!("RLIMIT_CORE            {core}");
    let pattern = read_trimmed("/proc/sys/kernel/core_pattern");
    let whither = if pattern.starts_with('|') {
        "cores are piped to that helper"
    } else {
        "cores are written to that file name"
    };
    println!("core_pattern           {pattern} ({whither})");
    let dumpable = host
        .dumpable
        .map_or("unknown", |d| if d { "yes" } else { "no" });
    println!(
        "dumpable               {dumpable} (PR_GET_DUMPABLE: cores and same-user ptrace allowed)"
    );
    println!(
        "coredump_filter        {} (which kinds of mapping go into a core; pages marked \
         MADV_DONTDUMP never do)",
        read_trimmed("/proc/self/coredump_filter")
    );
    println!(
        "vm.max_map_count       {}",
        read_trimmed("/proc/sys/vm/max_map_count")
    );
}

/// `Hardening::current()`: the process-wide settings the crate changes only
/// when asked (`Hardening::apply`).
fn report_hardening() {
    println!("== process hardening (Hardening::current; opt-in, see Hardening) ==");
    let state = match Hardening::current() {
        Ok(state) => state,
        Err(e) => {
            println!("cannot read the state: {e}");
            return;
        }
    };
    println!(
        "core limit             soft {}, hard {}{}",
        bytes(state.core_soft_limit),
        bytes(state.core_hard_limit),
        if state.core_dumps_off() {
            " (no core files)"
        } else {
            ""
        }
    );
    println!(
        "dumpable               {}",
        if state.dumpable {
            "yes (cores, same-user ptrace and /proc/PID/mem allowed)"
        } else {
            "no (no core; same-user ptrace and /proc/PID/mem refused)"
        }
    );
    println!(
        "memory                 {} mapped (VmSize), {} resident, {} locked (VmLck), {} of \
         it resident",
        bytes(Some(state.mapped)),
        bytes(Some(state.resident)),
        bytes(Some(state.locked)),
        bytes(Some(state.locked_resident))
    );
    let future = match (state.future_locked, state.future_on_fault) {
        (Some(true), Some(true)) => "locked on fault (MCL_FUTURE | MCL_ONFAULT)",
        (Some(true), _) => "locked (MCL_FUTURE)",
        (Some(false), _) => "not locked",
        (None, _) => "unknown (the probe page could not be made)",
    };
    println!(
        "all mappings locked    {} ({} unlocked); new mappings {future}",
        if state.all_locked() { "yes" } else { "no" },
        bytes(Some(state.unlocked))
    );
    println!("{state:?}");
}

/// `lockedbox::stats()`, one figure a line.
fn print_stats() {
    let st = lockedbox::stats();
    println!(
        "stats: {} page-isolated and {} packed boxes live, {} bytes locked, {} cached slots \
         ({} bytes), at most {} mappings",
        st.page_boxes,
        st.packed_boxes,
        st.locked_bytes,
        st.cached_slots,
        st.cached_bytes,
        st.mappings
    );
}

/// Checks one property, prints it, and counts failures.
struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        println!("[{}] {what}: {detail}", if ok { " ok " } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

/// Reads 8 bytes at `addr` through /proc/self/mem: what another process
/// with ptrace access would get.
fn read_through_proc_mem(addr: usize) -> std::io::Result<[u8; 8]> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8];
    fs::File::open("/proc/self/mem")?.read_exact_at(&mut buf, addr as u64)?;
    Ok(buf)
}

/// A `Backing::SecretMem` box as the kernel shows it, and a read of it
/// through /proc/self/mem failing where one of the anonymous box at
/// `control` succeeds.
fn report_secretmem(host: &Host, c: &mut Checks, control: usize) {
    println!("== a secret-memory box (Backing::SecretMem) ==");
    if !matches!(host.memfd_secret, Ok(true)) {
        println!(
            "memfd_secret(2) is not available here ({:?}): Backing::SecretMem is \
             Error::Unsupported, PreferSecretMem gives anonymous memory",
            host.memfd_secret
        );
        return;
    }
    let secret = match Options::new()
        .backing(Backing::SecretMem)
        .new_with(|k: &mut [u8; 32]| k.fill(0x5A))
    {
        Ok(s) => s,
        Err(e) => return c.check("secret-memory box", false, e),
    };
    println!("{secret:?}");
    let addr = secret.as_ptr() as usize;
    let vma = procfs::vma_at(addr);
    c.check(
        "pages of a memfd_secret file",
        vma.as_ref()
            .is_some_and(|v| v.path.starts_with("/secretmem")),
        vma.as_ref()
            .map_or_else(String::new, |v| format!("{} {}", v.perms, v.path)),
    );
    c.check(
        "locked, left out of dumps, not in fork children (lo dd dc)",
        vma.as_ref()
            .is_some_and(|v| v.has("lo") && v.has("dd") && v.has("dc")),
        vma.as_ref().map_or_else(String::new, |v| v.flags.join(" ")),
    );
    let control_read = read_through_proc_mem(control);
    let secret_read = read_through_proc_mem(addr);
    c.check(
        "unreadable through /proc/self/mem (an anonymous box is readable)",
        control_read.is_ok() && secret_read.is_err(),
        format!(
            "anonymous: {}, secret memory: {}",
            control_read.map_or_else(|e| e.to_string(), |_| "read".into()),
            secret_read.map_or_else(|e| e.to_string(), |_| "read".into()),
        ),
    );
}

fn main() -> ExitCode {
    let host = Host::probe();
    report_host(&host);
    report_hardening();

    println!("== one box, as the kernel sees it ==");
    let lck_before = procfs::vm_lck_kb();
    let key = match LockedBox::<[u8; 32]>::new_with(|k| k.fill(0x5A)) {
        Ok(k) => k,
        Err(e) => {
            println!("cannot make a box here: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = key.as_ptr() as usize;
    let end = start + key.len();
    let page = host.page_size;
    let vmas = procfs::smaps();
    let Some(i) = vmas.iter().position(|v| v.contains(end - 1)) else {
        println!("the box's address is not in /proc/self/smaps");
        return ExitCode::FAILURE;
    };
    let (before, data, after) = (&vmas[i - 1], &vmas[i], &vmas[i + 1]);
    let mut c = Checks { failed: 0 };
    println!("{key:?}");
    c.check(
        "data pages",
        data.perms == "rw-p",
        format!("{} bytes, {}", data.len(), data.perms),
    );
    c.check(
        "mlocked (VmFlags lo)",
        data.has("lo") && key.is_locked(),
        data.flags.join(" "),
    );
    c.check(
        "locked bytes (smaps Locked)",
        data.locked_kb * 1024 == data.len() as u64,
        format!("{} kB", data.locked_kb),
    );
    c.check(
        "left out of core dumps (dd)",
        data.has("dd"),
        "MADV_DONTDUMP",
    );
    c.check(
        "zeros in fork children (wf)",
        data.has("wf") || !host.wipe_on_fork,
        "MADV_WIPEONFORK",
    );
    c.check(
        "guard page before",
        before.perms == "---p" && before.end == data.start && !before.has("lo"),
        format!("{} bytes {}", before.len(), before.perms),
    );
    c.check(
        "guard page after",
        after.perms == "---p" && after.start == data.end && !after.has("lo"),
        format!(
            "{} bytes {} (the guard page and the slab's slots not in use, one mapping)",
            after.len(),
            after.perms
        ),
    );
    c.check(
        "value ends flush against the guard",
        end == data.end && end % page == 0,
        format!("last byte at {:#x}, guard from {:#x}", end - 1, after.start),
    );
    let residency = key.residency();
    c.check(
        "resident (mincore)",
        residency.as_ref().is_ok_and(|r| r.all_resident()),
        match &residency {
            Ok(r) => format!("{} of {} data pages in RAM", r.resident, r.total),
            Err(e) => format!("mincore failed: {e}"),
        },
    );
    let lck_live = procfs::vm_lck_kb();
    c.check(
        "VmLck rose",
        lck_live >= lck_before + (data.len() / 1024) as u64,
        format!("{lck_before} kB -> {lck_live} kB"),
    );

    println!("== a packed box (Isolation::Packed) ==");
    match Options::new()
        .isolation(Isolation::Packed)
        .zeroed::<[u8; 32]>()
    {
        Ok(small) => {
            println!("{small:?}");
            let vma = procfs::vma_at(small.as_ptr() as usize);
            let flags = vma.as_ref().map_or_else(String::new, |v| v.flags.join(" "));
            c.check(
                "packed page locked, left out of dumps",
                vma.as_ref()
                    .is_some_and(|v| v.perms == "rw-p" && v.has("lo") && v.has("dd")),
                flags,
            );
            let guarded = vma.as_ref().is_some_and(|v| {
                procfs::perms_at(v.start - 1).as_deref() == Some("---p")
                    && procfs::perms_at(v.end).as_deref() == Some("---p")
            });
            c.check(
                "packed pages between PROT_NONE pages",
                guarded,
                "---p on both sides",
            );
            print_stats();
        }
        Err(e) => c.check("packed box", false, e),
    }

    report_secretmem(&host, &mut c, start);

    println!("== after drop, and after trim ==");
    drop(key);
    let cached = procfs::vma_at(end - 1);
    let st = lockedbox::stats();
    c.check(
        "dropped slot cached (wiped), still locked",
        cached.is_some_and(|v| v.perms == "rw-p" && v.has("lo")) && st.cached_slots >= 1,
        format!(
            "{} slot(s), {} bytes in the cache",
            st.cached_slots, st.cached_bytes
        ),
    );
    lockedbox::trim();
    let lck_after = procfs::vm_lck_kb();
    c.check(
        "VmLck back after trim",
        lck_after == lck_before,
        format!("{lck_after} kB"),
    );
    c.check(
        "mapping gone after trim",
        procfs::perms_at(end - 1).is_none(),
        "no VMA holds the old address",
    );
    print_stats();

    if c.failed == 0 {
        println!("all protections verified");
        ExitCode::SUCCESS
    } else {
        println!("{} protection(s) could not be verified", c.failed);
        ExitCode::FAILURE
    }
}
