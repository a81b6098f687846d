//! Process-wide hardening, opted into step by step: no core dumps, not
//! dumpable, every mapping locked. The library never does any of it on its
//! own; [`Hardening::apply`] does what it is asked and reports each step.
//!
//! Sits above `sys`, `limits` and `error` (and reads the allocator's count
//! of locked bytes for [`Error::MemlockLimit`]); nothing in the crate uses it.
#![forbid(unsafe_code)]

use std::io;

use crate::error::{Error, MemlockCall};
use crate::limits;
use crate::os;

/// How [`Hardening::lock_all`] locks the process's memory: the flags given
/// to mlockall(2).
///
/// Whatever the mode, the kernel compares the process's whole mapped size
/// (`VmSize`: every mapping, `PROT_NONE` reservations and untouched thread
/// stacks included) with `RLIMIT_MEMLOCK`, unless the calling thread has
/// `CAP_IPC_LOCK`; and `VmLck` then counts whole mappings, resident or not.
/// What differs is what is pinned in RAM at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockAll {
    /// `MCL_CURRENT`: every page mapped now is faulted in and locked. A
    /// process with large untouched reservations (8 MiB thread stacks,
    /// allocator arenas) takes that much RAM at once. Mappings made later
    /// are not locked. Ends a `MCL_FUTURE` set by an earlier call.
    Current,
    /// `MCL_CURRENT | MCL_FUTURE`: as `Current`, and every mapping made
    /// later (mmap, brk, stack growth) is locked and faulted in when made.
    /// From then on, without `CAP_IPC_LOCK`, a mapping that would take
    /// `VmLck` over `RLIMIT_MEMLOCK` fails: mmap(2) with `EAGAIN`, so an
    /// allocation fails (Rust aborts on that), and a stack growing past the
    /// limit is a `SIGSEGV`. This crate's own mappings count too, guard
    /// pages included.
    CurrentAndFuture,
    /// `MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT` (Linux 4.4): every mapping,
    /// now and later, is locked, but a page is pinned only when it is first
    /// touched; nothing is faulted in by the call. Resident pages are locked
    /// at once (`VmRSS` worth), the rest as the program touches it. This is
    /// the usual choice: RAM use stays what the program uses, while no page
    /// it uses can be swapped. The limit is the same as for
    /// `CurrentAndFuture` (the kernel counts whole mappings).
    CurrentAndFutureOnFault,
}

impl LockAll {
    /// Whether the mode locks mappings made later (`MCL_FUTURE`).
    fn future(self) -> bool {
        !matches!(self, LockAll::Current)
    }

    /// Whether the mode locks pages only when touched (`MCL_ONFAULT`).
    fn on_fault(self) -> bool {
        matches!(self, LockAll::CurrentAndFutureOnFault)
    }
}

/// What became of one step of [`Hardening::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The step was not asked for; nothing was done or checked for it.
    NotAsked,
    /// The step was made by this call.
    Applied,
    /// The process was already in the state the step leads to; no call was
    /// made for it.
    AlreadyInForce,
}

/// The process-wide settings [`Hardening`] changes, as the kernel reports
/// them: `getrlimit(RLIMIT_CORE)`, `prctl(PR_GET_DUMPABLE)`,
/// `/proc/self/status` and `/proc/self/smaps`. Sizes are in bytes.
///
/// Whether every mapping is locked is read from the mappings' `lo` flag in
/// smaps, not from `VmLck` against `VmSize`: the kernel never locks
/// `[vvar]`, `[vdso]` and other special mappings, so `VmLck` stays a few
/// pages short of `VmSize` even under mlockall(2), while a process that
/// mlocks most of its memory by hand could come close without being locked
/// whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessState {
    /// `RLIMIT_CORE` soft limit (`None`: unlimited); 0 means no core file.
    pub core_soft_limit: Option<u64>,
    /// `RLIMIT_CORE` hard limit, up to which the soft one can be raised
    /// again without privilege.
    pub core_hard_limit: Option<u64>,
    /// `PR_GET_DUMPABLE` is not 0: the process may dump core, and processes
    /// of its user may ptrace it and open its `/proc/<pid>/mem`.
    pub dumpable: bool,
    /// `VmSize`: every mapping; what mlockall(2) compares with
    /// `RLIMIT_MEMLOCK`.
    pub mapped: u64,
    /// `VmRSS`: pages in RAM.
    pub resident: u64,
    /// `VmLck`: the size of the locked mappings (whole mappings, whether
    /// their pages are in RAM yet or not).
    pub locked: u64,
    /// The sum of smaps `Locked:`: locked pages that are in RAM now. Under
    /// [`LockAll::CurrentAndFutureOnFault`] it grows as pages are touched.
    pub locked_resident: u64,
    /// The size of the mappings that mlockall(2) would lock and that are not
    /// locked (the special mappings the kernel never locks left out). 0
    /// means every mapping is locked.
    pub unlocked: u64,
    /// Whether the kernel locks mappings made from now on (`MCL_FUTURE`),
    /// found by making and removing one `PROT_NONE` page and reading its
    /// VmFlags (`lo`); `None` if that probe failed.
    pub future_locked: Option<bool>,
    /// Whether those new mappings are locked on fault (`MCL_ONFAULT`,
    /// VmFlags `lf` on the probe page); `None` when new mappings are not
    /// locked or it could not be seen.
    pub future_on_fault: Option<bool>,
}

impl ProcessState {
    /// No core file: the `RLIMIT_CORE` soft limit is 0.
    pub fn core_dumps_off(&self) -> bool {
        self.core_soft_limit == Some(0)
    }

    /// Every mapping that can be locked is locked.
    pub fn all_locked(&self) -> bool {
        self.unlocked == 0
    }

    /// The state `mode` leads to is in force: every mapping locked, and new
    /// ones locked, on fault or not, exactly as the mode says. How the
    /// mappings there now were locked (on fault or not) is not compared.
    fn locked_as(&self, mode: LockAll) -> bool {
        let future = match self.future_locked {
            Some(false) => !mode.future(),
            Some(true) => mode.future() && self.future_on_fault == Some(mode.on_fault()),
            None => false,
        };
        self.all_locked() && future
    }
}

/// What [`Hardening::apply`] did: each step's outcome, and the process's
/// state before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// [`Hardening::no_core_dumps`].
    pub no_core_dumps: Step,
    /// [`Hardening::not_dumpable`].
    pub not_dumpable: Step,
    /// [`Hardening::lock_all`], and the mode asked for.
    pub lock_all: (Step, Option<LockAll>),
    /// The state read before any step was made.
    pub before: ProcessState,
    /// The state read after the last step.
    pub after: ProcessState,
}

/// Process-wide hardening, opted into step by step and applied at once.
///
/// lockedmem keeps its own pages out of core dumps, swap and fork children
/// without touching process-wide settings. This builder changes those
/// settings, and only those asked for:
///
/// - [`no_core_dumps`](Hardening::no_core_dumps): the `RLIMIT_CORE` soft
///   limit to 0, so a crash writes no core of the rest of the process's
///   memory (where copies of secrets made by other code live);
/// - [`not_dumpable`](Hardening::not_dumpable): `PR_SET_DUMPABLE` 0, so
///   processes of the same user can neither ptrace this one nor read its
///   memory through `/proc/<pid>/mem`;
/// - [`lock_all`](Hardening::lock_all): mlockall(2), so no page of the
///   process is written to swap.
///
/// Root (`CAP_SYS_PTRACE`, `CAP_SYS_RESOURCE`) is not stopped by any of
/// them.
///
/// # Order
/// [`apply`](Hardening::apply) reads the state first and checks that the
/// lock would be allowed, before it changes anything: a lock that
/// `RLIMIT_MEMLOCK` would refuse is [`Error::MemlockLimit`] with nothing
/// applied. It then locks (mlockall(2) is all or nothing in the kernel: a
/// refusal changes no mapping), lowers the core limit and clears the
/// dumpable flag, in that order, skipping each step already in force. The
/// last two are not expected to fail (they need no privilege); if one does
/// (a seccomp filter, a security module), the steps before it stay applied.
///
/// # Example
/// ```no_run
/// use lockedmem::{Hardening, LockAll};
///
/// let report = Hardening::new()
///     .no_core_dumps()
///     .not_dumpable()
///     .lock_all(LockAll::CurrentAndFutureOnFault)
///     .apply()?;
/// eprintln!("hardening: {report:?}");
/// # Ok::<(), lockedmem::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a Hardening does nothing until `apply` is called"]
pub struct Hardening {
    no_core_dumps: bool,
    not_dumpable: bool,
    lock_all: Option<LockAll>,
}

impl Hardening {
    /// A builder with no step asked for.
    pub fn new() -> Hardening {
        Hardening::default()
    }

    /// Set the `RLIMIT_CORE` soft limit to 0: a crash writes no core file.
    /// The hard limit is left as it is, so the soft one can be raised again
    /// (`setrlimit(2)`, `ulimit -c`) without privilege, to debug.
    ///
    /// With a `core_pattern` that pipes cores to a helper (systemd-coredump,
    /// apport) the kernel starts the helper anyway and hands it the limit
    /// (`%c`); the usual helpers honour a 0 and store nothing, but that is
    /// their choice. [`not_dumpable`](Hardening::not_dumpable) stops the
    /// dump in the kernel, whatever the pattern.
    pub fn no_core_dumps(mut self) -> Hardening {
        self.no_core_dumps = true;
        self
    }

    /// `prctl(PR_SET_DUMPABLE, 0)`: no core file, and processes of the same
    /// user without `CAP_SYS_PTRACE` can neither ptrace(2) this process nor
    /// open its `/proc/<pid>/mem`, `/proc/<pid>/environ` and the like
    /// (which then belong to root). The process itself can no longer open
    /// `/proc/self/mem` either unless it runs as root.
    ///
    /// The kernel resets the flag when the process changes its user or
    /// group IDs or execs a set-user-ID program; apply it after dropping
    /// privileges.
    pub fn not_dumpable(mut self) -> Hardening {
        self.not_dumpable = true;
        self
    }

    /// Lock every page of the process in RAM with mlockall(2), in `mode`
    /// (see [`LockAll`]; [`LockAll::CurrentAndFutureOnFault`] is the usual
    /// choice).
    ///
    /// Without `CAP_IPC_LOCK`, the kernel refuses the lock when the
    /// process's mapped size (`VmSize`) exceeds the `RLIMIT_MEMLOCK` soft
    /// limit; [`apply`](Hardening::apply) checks that first and returns
    /// [`Error::MemlockLimit`] (its `requested` is the mapped size) having
    /// changed nothing. Most hosts' default limit (8 MiB, or 64 KiB on
    /// older ones) is far below a process's mapped size: raise it
    /// (`LimitMEMLOCK=` in a systemd unit) or grant `CAP_IPC_LOCK`.
    ///
    /// munlockall(2) is never called, on failure or otherwise: it would
    /// unlock this crate's boxes too.
    pub fn lock_all(mut self, mode: LockAll) -> Hardening {
        self.lock_all = Some(mode);
        self
    }

    /// Reads the process's state without changing it (beyond making and
    /// removing one `PROT_NONE` page to see whether new mappings are
    /// locked).
    ///
    /// # Errors
    /// [`Error::Hardening`] if `/proc/self/status` or `/proc/self/smaps`
    /// cannot be read (no /proc mounted) or `prctl(PR_GET_DUMPABLE)` fails;
    /// always on macOS and the BSDs, which have neither (`Unsupported`).
    pub fn current() -> Result<ProcessState, Error> {
        let (core_soft_limit, core_hard_limit) = os::core_limit();
        let dumpable = os::dumpable().map_err(failed("prctl(PR_GET_DUMPABLE)"))?;
        let sizes = os::memory_sizes().map_err(failed("read /proc/self/status"))?;
        let view = os::lock_view().map_err(failed("read /proc/self/smaps"))?;
        let future = os::future_lock().ok();
        Ok(ProcessState {
            core_soft_limit,
            core_hard_limit,
            dumpable,
            mapped: sizes.mapped,
            resident: sizes.resident,
            locked: sizes.locked,
            locked_resident: view.locked_resident,
            unlocked: view.unlocked,
            future_locked: future.map(|f| f.locked),
            future_on_fault: future.and_then(|f| f.on_fault.filter(|_| f.locked)),
        })
    }

    /// Applies the steps asked for, in the order described on [`Hardening`],
    /// and reports each.
    ///
    /// # Errors
    /// - [`Error::MemlockLimit`] if the lock asked for would exceed
    ///   `RLIMIT_MEMLOCK` (checked before anything is changed, and again by
    ///   the kernel): nothing was applied.
    /// - [`Error::Os`] (`mlockall`) if the kernel refused the lock for
    ///   another reason: nothing was applied.
    /// - [`Error::Hardening`] if the state cannot be read (nothing applied)
    ///   or a step after the lock failed (the steps before it stay applied).
    pub fn apply(&self) -> Result<Report, Error> {
        let before = Hardening::current()?;

        // Validate everything before changing anything.
        let lock = match self.lock_all {
            Some(mode) if !before.locked_as(mode) => {
                check_lock_allowed(&before)?;
                Some(mode)
            }
            _ => None,
        };

        // Lock first: it is the one step with a plausible failure (another
        // thread mapping memory since the check), and the kernel makes no
        // change when it fails.
        let lock_step = match (self.lock_all, lock) {
            (None, _) => Step::NotAsked,
            (Some(_), None) => Step::AlreadyInForce,
            (Some(_), Some(mode)) => {
                os::lock_all(mode.future(), mode.on_fault()).map_err(lock_failed)?;
                Step::Applied
            }
        };

        let core_step = if !self.no_core_dumps {
            Step::NotAsked
        } else if before.core_dumps_off() {
            Step::AlreadyInForce
        } else {
            // The hard limit as it is now, left alone.
            let (_, hard) = os::core_limit();
            os::set_core_limit(Some(0), hard).map_err(failed("setrlimit(RLIMIT_CORE)"))?;
            Step::Applied
        };

        let dumpable_step = if !self.not_dumpable {
            Step::NotAsked
        } else if !before.dumpable {
            Step::AlreadyInForce
        } else {
            os::set_not_dumpable().map_err(failed("prctl(PR_SET_DUMPABLE, 0)"))?;
            Step::Applied
        };

        Ok(Report {
            no_core_dumps: core_step,
            not_dumpable: dumpable_step,
            lock_all: (lock_step, self.lock_all),
            before,
            after: Hardening::current()?,
        })
    }
}

/// Refuses, as the kernel would, a lock of every mapping of a process in
/// `state`: without `CAP_IPC_LOCK`, mlockall(MCL_CURRENT) requires the
/// mapped size in pages (`total_vm`) to be at most the soft limit in whole
/// pages (and a soft limit above 0 at all).
fn check_lock_allowed(state: &ProcessState) -> Result<(), Error> {
    if os::has_cap_ipc_lock().unwrap_or(false) {
        return Ok(());
    }
    let limit = limits::memlock_limit();
    let Some(soft) = limit.soft else {
        return Ok(());
    };
    let page = os::page_size() as u64;
    if soft > 0 && state.mapped / page <= soft / page {
        return Ok(());
    }
    Err(Error::MemlockLimit {
        call: MemlockCall::LockAll,
        requested: usize::try_from(state.mapped).unwrap_or(usize::MAX),
        soft_limit: limit.soft,
        hard_limit: limit.hard,
        locked_by_crate: crate::alloc::locked_bytes(),
    })
}

/// The error for a failed mlockall(2): the limit (`ENOMEM`, or `EPERM` for
/// a zero limit), with the mapped size as the request, or any other error.
fn lock_failed(e: io::Error) -> Error {
    if limits::is_limit_error(&e) {
        let limit = limits::memlock_limit();
        let mapped = os::memory_sizes().map_or(0, |s| s.mapped);
        Error::MemlockLimit {
            call: MemlockCall::LockAll,
            requested: usize::try_from(mapped).unwrap_or(usize::MAX),
            soft_limit: limit.soft,
            hard_limit: limit.hard,
            locked_by_crate: crate::alloc::locked_bytes(),
        }
    } else {
        Error::os("mlockall", 0, e)
    }
}

/// Maps an `io::Error` from `call` to [`Error::Hardening`].
fn failed(call: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Hardening { call, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_their_flags() {
        assert!(!LockAll::Current.future() && !LockAll::Current.on_fault());
        assert!(LockAll::CurrentAndFuture.future() && !LockAll::CurrentAndFuture.on_fault());
        let m = LockAll::CurrentAndFutureOnFault;
        assert!(m.future() && m.on_fault());
    }

    // Reads Linux's /proc.
    #[cfg(target_os = "linux")]
    #[test]
    fn current_reads_the_kernel_state() {
        let state = Hardening::current().unwrap();
        assert!(state.mapped >= state.resident);
        assert!(state.mapped > 0 && state.resident > 0);
        assert!(state.locked <= state.mapped);
        assert!(state.future_locked.is_some());
        assert_eq!(state.core_soft_limit, os::core_limit().0);
        let debug = format!("{state:?}");
        for field in ["core_soft_limit", "dumpable", "unlocked", "future_locked"] {
            assert!(debug.contains(field), "{field} missing from {debug}");
        }
    }

    // Reads Linux's /proc.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_empty_builder_changes_nothing() {
        let report = Hardening::new().apply().unwrap();
        assert_eq!(report.no_core_dumps, Step::NotAsked);
        assert_eq!(report.not_dumpable, Step::NotAsked);
        assert_eq!(report.lock_all, (Step::NotAsked, None));
        assert_eq!(report.before.core_soft_limit, report.after.core_soft_limit);
        assert_eq!(report.before.dumpable, report.after.dumpable);
    }

    #[test]
    fn the_error_names_the_call() {
        let e = failed("prctl(PR_SET_DUMPABLE, 0)")(os::error_for(os::Trouble::Denied));
        let msg = e.to_string();
        assert!(msg.contains("prctl(PR_SET_DUMPABLE, 0) failed"), "{msg}");
        assert!(matches!(
            lock_failed(os::error_for(os::Trouble::LockLimit)),
            Error::MemlockLimit { .. }
        ));
        assert!(matches!(
            lock_failed(os::error_for(os::Trouble::Other)),
            Error::Os {
                call: "mlockall",
                ..
            }
        ));
    }
}
