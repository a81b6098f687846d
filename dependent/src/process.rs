//! The process around the keys: what it offers, hardening it, the last
//! wipe, and the memory lockedmem keeps ready.

use std::fmt;

use lockedmem::{
    Hardening, Host, LockAll, MemlockLimit, ProcessState, Report, Signal, Stats, Step,
};

use crate::KeyError;

/// What this host and process offer keys, and what lockedmem holds: for a
/// `--diagnose` flag or a health endpoint. Its `Display` is a report a
/// person can read; it holds no byte of a key.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// What the host offers (probed: page size, limits, kernel features).
    pub host: Host,
    /// The process's core dumps, dumpable flag and locked memory (`None`
    /// where the kernel would not tell).
    pub process: Option<ProcessState>,
    /// lockedmem's boxes, caches and mappings.
    pub stats: Stats,
    /// Bytes lockedmem holds locked.
    pub locked_bytes: usize,
    /// `RLIMIT_MEMLOCK`.
    pub memlock: MemlockLimit,
    /// Bytes of ready memory each thread keeps, and the process for large
    /// secrets.
    pub cache: (usize, usize),
}

/// Takes the [`Diagnostics`] now.
pub fn diagnostics() -> Diagnostics {
    Diagnostics {
        host: Host::probe(),
        process: Hardening::current().ok(),
        stats: lockedmem::stats(),
        locked_bytes: lockedmem::locked_bytes(),
        memlock: lockedmem::memlock_limit(),
        cache: (lockedmem::cache_limit(), lockedmem::large_cache_limit()),
    }
}

fn limit(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unlimited".to_owned(), |b| format!("{b} bytes"))
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let MemlockLimit { soft, hard, .. } = self.memlock;
        writeln!(f, "page size: {} bytes", self.host.page_size)?;
        writeln!(f, "lock limit: {} (hard {})", limit(soft), limit(hard))?;
        writeln!(f, "host: {:?}", self.host)?;
        writeln!(f, "locked by keys: {} bytes", self.locked_bytes)?;
        let s = &self.stats;
        writeln!(
            f,
            "boxes: {} page-isolated ({} unlocked), {} packed ({} unlocked) on {} pages ({} unlocked)",
            s.page_boxes,
            s.page_boxes_unlocked,
            s.packed_boxes,
            s.packed_boxes_unlocked,
            s.packed_pages,
            s.packed_pages_unlocked
        )?;
        writeln!(
            f,
            "cached: {} slots, {} bytes; {} bytes locked in all; {} mappings",
            s.cached_slots, s.cached_bytes, s.locked_bytes, s.mappings
        )?;
        let (thread, large) = self.cache;
        let default = if thread == lockedmem::DEFAULT_CACHE_LIMIT {
            " (the default)"
        } else {
            ""
        };
        writeln!(
            f,
            "cache: {thread} bytes a thread{default}, {large} for large keys"
        )?;
        match &self.process {
            Some(p) => {
                writeln!(
                    f,
                    "core dumps: {} (soft {}, hard {}); dumpable: {}",
                    if p.core_dumps_off() { "off" } else { "ON" },
                    limit(p.core_soft_limit),
                    limit(p.core_hard_limit),
                    p.dumpable
                )?;
                writeln!(
                    f,
                    "process memory: {} mapped, {} resident, {} locked ({} of it resident), \
                     {} unlocked; every page locked: {}; future mappings locked: {:?} (on \
                     fault: {:?})",
                    p.mapped,
                    p.resident,
                    p.locked,
                    p.locked_resident,
                    p.unlocked,
                    p.all_locked(),
                    p.future_locked,
                    p.future_on_fault
                )
            }
            None => writeln!(f, "process: the kernel would not say"),
        }
    }
}

/// How much of the process to lock in RAM when hardening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockProcess {
    /// Lock nothing beyond the keys.
    No,
    /// Every page mapped now, faulted in at once.
    Current,
    /// Every page, now and later, faulted in at once.
    CurrentAndFuture,
    /// Every page, now and later, locked as it is touched (the usual mode).
    AsTouched,
}

/// What [`harden`] did.
#[derive(Debug, Clone)]
pub struct Hardened {
    /// lockedmem's report: each step, the state before and after.
    pub report: Report,
}

impl Hardened {
    /// Whether each asked-for step is in force now (applied by this call or
    /// before it).
    pub fn complete(&self) -> bool {
        let done = |s: Step| matches!(s, Step::Applied | Step::AlreadyInForce);
        let r = &self.report;
        done(r.no_core_dumps)
            && done(r.not_dumpable)
            && (r.lock_all.0 == Step::NotAsked || done(r.lock_all.0))
    }

    /// Bytes of the process's memory this call locked (mlockall(2) faults
    /// pages in, so this is what hardening cost in RAM).
    pub fn newly_locked(&self) -> u64 {
        let r = &self.report;
        r.after.locked.saturating_sub(r.before.locked)
    }
}

/// Hardens the whole process for holding keys: no core dumps, not dumpable
/// by its own user, and as much of it locked as `lock` says. Call it after
/// dropping privileges (a change of user ID undoes the dumpable flag).
///
/// # Errors
/// [`KeyError::OutOfLockedMemory`] (with `whole_process`) when `lock` asks
/// for more than `RLIMIT_MEMLOCK` allows: nothing is applied then;
/// [`KeyError::Memory`] if a step fails.
pub fn harden(lock: LockProcess) -> Result<Hardened, KeyError> {
    let mut steps = Hardening::new().no_core_dumps().not_dumpable();
    let mode = match lock {
        LockProcess::No => None,
        LockProcess::Current => Some(LockAll::Current),
        LockProcess::CurrentAndFuture => Some(LockAll::CurrentAndFuture),
        LockProcess::AsTouched => Some(LockAll::CurrentAndFutureOnFault),
    };
    if let Some(mode) = mode {
        steps = steps.lock_all(mode);
    }
    Ok(Hardened {
        report: steps.apply()?,
    })
}

/// When the last wipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeOn {
    /// The signals that stop a service: `SIGTERM`, `SIGINT`, `SIGHUP`,
    /// `SIGQUIT`; and a panic.
    Stop,
    /// Every signal that ends the process by default and can be caught,
    /// and, if given, the real-time signal `SIGRTMIN + n`; and a panic.
    EveryFatalSignal(Option<u8>),
}

/// The signals [`WipeOn::Stop`] covers.
pub const STOP_SIGNALS: [Signal; 4] = [Signal::TERM, Signal::INT, Signal::HUP, Signal::QUIT];

/// Makes the process wipe every key before it dies of one of the signals
/// `on` names (then it dies of that signal) or of a panic (then it
/// aborts), and `extra` signal numbers too.
///
/// # Errors
/// [`KeyError::Signal`] for a number the wipe cannot take (`SIGKILL`,
/// `SIGSEGV`, ...): nothing is installed then; [`KeyError::Memory`] if
/// sigaction(2) fails.
pub fn install_last_wipe(on: WipeOn, extra: &[i32]) -> Result<(), KeyError> {
    let mut signals = STOP_SIGNALS.to_vec();
    if let WipeOn::EveryFatalSignal(realtime) = on {
        signals.extend([
            Signal::USR1,
            Signal::USR2,
            Signal::ALRM,
            Signal::VTALRM,
            Signal::PROF,
            Signal::XCPU,
            Signal::XFSZ,
            Signal::PWR,
        ]);
        signals.extend(realtime.map(Signal::realtime));
    }
    signals.extend(extra.iter().map(|&n| Signal::from_raw(n)));
    signals.dedup_by_key(|s| s.as_raw());
    lockedmem::wipe_on_signals(&signals)?;
    lockedmem::wipe_on_panic();
    Ok(())
}

/// Ends the process at once, every key wiped first (`SIGABRT`): for a
/// fatal inconsistency found with keys in memory.
pub fn abort_wiping_keys() -> ! {
    lockedmem::wipe_all_and_abort()
}

/// Gives lockedmem's ready memory back (after dropping many keys), and sets
/// how much each thread keeps from now on (`None`: leave it).
pub fn release_memory(keep_per_thread: Option<usize>) {
    if let Some(bytes) = keep_per_thread {
        lockedmem::set_cache_limit(bytes);
    }
    lockedmem::trim();
}
