//! The one error type; every message says what failed and what to do about it.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use crate::os::Trouble;

/// Why a box could not be made, or a secret could not be read into one.
///
/// No variant carries a byte of any secret, and no message echoes input. A failed constructor leaves
/// nothing behind: no mapping, no locked page, no change to the count of
/// locked bytes.
///
/// `Display` says what failed and what to do about it, on one line.
/// `Debug` prints the same (as `anyhow`'s errors do), so that a `main`
/// returning `Result<(), Box<dyn std::error::Error>>`, which prints the
/// error's `Debug`, shows the advice too; `{:#?}` puts the variant's name
/// in front. Match on the variants to tell errors apart, not on the text.
///
/// ```
/// let e = lockedmem::LockedVec::from_hex("not hex").unwrap_err();
/// assert_eq!(format!("{e:?}"), e.to_string());
/// assert!(format!("{e:#?}").starts_with("Error::Decode: "));
/// ```
#[non_exhaustive]
pub enum Error {
    /// `RLIMIT_MEMLOCK` (on Windows, the minimum working set `VirtualLock` is
    /// held to) refused a lock: of a box's pages (under
    /// [`LockPolicy::Require`](crate::LockPolicy::Require)), or of the
    /// whole process ([`Hardening::lock_all`](crate::Hardening::lock_all));
    /// `call` says which, and the message's advice fits it.
    ///
    /// The crate never raises the limit itself.
    MemlockLimit {
        /// Which lock was refused.
        call: MemlockCall,
        /// Bytes the refused `mlock` asked for (whole pages).
        requested: usize,
        /// The soft limit in bytes at the time, `None` for unlimited.
        soft_limit: Option<u64>,
        /// The hard limit in bytes at the time, `None` for unlimited.
        hard_limit: Option<u64>,
        /// Bytes this crate already held locked when the request was made.
        locked_by_crate: usize,
    },
    /// The requested value, with its canary and guard pages, does not fit in
    /// the address space (`len * elem_size` overflows or exceeds
    /// `isize::MAX`), or it is larger than the machine's physical memory and
    /// could never be locked.
    TooLarge {
        /// Number of elements requested (1 for a sized value).
        len: usize,
        /// Size of one element in bytes.
        elem_size: usize,
    },
    /// The type asks for an alignment above the page size.
    Alignment {
        /// The type's alignment.
        align: usize,
        /// The system page size.
        page_size: usize,
    },
    /// The kernel does not offer a protection the options ask for (an
    /// `madvise` advice it answers with `EINVAL`, usually a kernel older than
    /// the one the advice appeared in).
    Unsupported {
        /// The call that was refused, such as `madvise(MADV_WIPEONFORK)`.
        call: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Any other system call failure.
    Os {
        /// The call that failed, such as `mmap` or `mprotect`.
        call: &'static str,
        /// Length of the range the call was made on, in bytes.
        len: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Reading a secret from a reader failed. What was read so far has been
    /// wiped.
    Io {
        /// The reader's error.
        source: io::Error,
    },
    /// The input was longer than the caller's limit. What was read has been
    /// wiped.
    InputTooLong {
        /// The limit, in bytes.
        max_len: usize,
    },
    /// The input was not UTF-8 where text was asked for. What was read has
    /// been wiped; the message does not say which bytes were wrong.
    InvalidUtf8,
    /// The input was not valid in the encoding, or did not decode to the
    /// length asked for. What was decoded has been wiped; the message does
    /// not say which characters were wrong.
    Decode {
        /// The encoding, such as `hex` or `base64`.
        encoding: &'static str,
    },
    /// There is no controlling terminal to prompt on: opening `/dev/tty`
    /// says so (`ENXIO`, or `ENOENT`/`ENODEV` where there is no such
    /// device), or what it opened is no terminal (`ENOTTY`); on Windows,
    /// the process has no console (`CONIN$` cannot be opened, or is no
    /// console input); the process runs without one (a service, a
    /// pipeline, CI). Any other failure is
    /// [`Error::Terminal`]. Pass the secret another way, such as
    /// standard input read through [`raw_stdin`](crate::raw_stdin).
    NoTerminal {
        /// What opening or querying `/dev/tty` (or `CONIN$`) said.
        source: io::Error,
    },
    /// The controlling terminal exists (or may: the kernel did not say
    /// there is none) but could not be used: opening `/dev/tty` or
    /// querying it failed for another reason, such as a process out of file
    /// descriptors (`EMFILE`). The message says what to do for the error.
    Terminal {
        /// The call that failed: `open /dev/tty` or `tcgetattr /dev/tty`.
        call: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The environment variable is not set.
    EnvVarNotSet {
        /// The variable's name.
        name: String,
    },
    /// A step of [`Hardening::apply`](crate::Hardening::apply), or reading
    /// the process's state for it, failed. The steps applied before it stay
    /// applied; [`Hardening::current`](crate::Hardening::current) shows what
    /// is in force.
    Hardening {
        /// The call that failed, such as `prctl(PR_SET_DUMPABLE, 0)` or
        /// `read /proc/self/smaps`.
        call: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// [`wipe_on_signals`](crate::wipe_on_signals) was given a signal it
    /// does not take: one that cannot be caught (`SIGKILL`, `SIGSTOP`), a
    /// fault or abort raised by the thread itself (`SIGSEGV`, `SIGBUS`,
    /// `SIGFPE`, `SIGILL`, `SIGTRAP`, `SIGSYS`, `SIGABRT`), one whose default
    /// action does not end the process, or no signal at all. Nothing was
    /// installed.
    UnsupportedSignal {
        /// The signal number given.
        signal: i32,
    },
    /// A shielded secret's ciphertext failed its authentication tag (feature
    /// `shield`): its bytes, nonce, tag or header were changed, or it was
    /// copied from another secret's memory. Nothing was decrypted; the
    /// scratch memory was wiped. The name says what the tag shows: the
    /// ciphertext is not what the crate wrote.
    Tampered,
    /// The shield's key does not exist in this process (feature `shield`):
    /// it is a fork(2) child of the process that made it, and the key (like
    /// a box made with `ForkPolicy::Exclude`) is not inherited. Shielded
    /// secrets cannot be read, written or made here.
    ShieldKeyAbsent,
}

/// The lock that `RLIMIT_MEMLOCK` refused, in [`Error::MemlockLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemlockCall {
    /// mlock(2) of a box's, vector's or allocator block's pages.
    Secret,
    /// mlockall(2) for [`Hardening::lock_all`](crate::Hardening::lock_all):
    /// without `CAP_IPC_LOCK` the kernel compares the whole mapped size
    /// (`VmSize`) with the limit, in every [`LockAll`](crate::LockAll)
    /// mode.
    LockAll,
}

impl Error {
    pub(crate) fn os(call: &'static str, len: usize, source: io::Error) -> Self {
        Error::Os { call, len, source }
    }
}

/// Formats an optional limit in bytes.
struct Limit(Option<u64>);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n} bytes"),
            None => f.write_str("unlimited"),
        }
    }
}

/// What to do when the terminal could not be used, by the system's answer.
fn terminal_advice(source: &io::Error) -> &'static str {
    match crate::os::trouble(source, false) {
        Trouble::NoDescriptors => {
            "the process has no free file descriptor (RLIMIT_NOFILE): close descriptors it no \
             longer needs, or raise the limit (`ulimit -n`, LimitNOFILE= for a systemd unit)"
        }
        Trouble::SystemFiles => {
            "the system's table of open files is full: close files elsewhere, or raise \
             fs.file-max"
        }
        Trouble::Denied => {
            "the process may not use /dev/tty (its permissions, a sandbox or a security \
             module): allow it, or pass the secret on standard input through raw_stdin()"
        }
        Trouble::NoMemory => "the kernel is out of memory: try again later",
        Trouble::Interrupted => "a signal interrupted the call: try again",
        _ => {
            "the terminal exists but cannot be used: pass the secret on standard input \
              through raw_stdin()"
        }
    }
}

/// How to give the process more lockable memory, in every message about the
/// limit: the platform's advice.
const RAISE: &str = crate::os::RAISE_LOCK_LIMIT;

impl Error {
    /// The variant's name, for `{:#?}`.
    fn variant(&self) -> &'static str {
        match self {
            Error::MemlockLimit { .. } => "MemlockLimit",
            Error::TooLarge { .. } => "TooLarge",
            Error::Alignment { .. } => "Alignment",
            Error::Unsupported { .. } => "Unsupported",
            Error::Os { .. } => "Os",
            Error::Io { .. } => "Io",
            Error::InputTooLong { .. } => "InputTooLong",
            Error::InvalidUtf8 => "InvalidUtf8",
            Error::Decode { .. } => "Decode",
            Error::NoTerminal { .. } => "NoTerminal",
            Error::Terminal { .. } => "Terminal",
            Error::EnvVarNotSet { .. } => "EnvVarNotSet",
            Error::Hardening { .. } => "Hardening",
            Error::UnsupportedSignal { .. } => "UnsupportedSignal",
            Error::Tampered => "Tampered",
            Error::ShieldKeyAbsent => "ShieldKeyAbsent",
        }
    }
}

/// The message, as `Display` gives it (`{:#?}`: the variant's name first),
/// so that what prints an error's `Debug` shows the advice.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "Error::{}: ", self.variant())?;
        }
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MemlockLimit {
                call: MemlockCall::Secret,
                requested,
                soft_limit,
                hard_limit,
                locked_by_crate,
            } => write!(
                f,
                "{} of {requested} bytes refused by {} (soft limit {}, hard limit {}; \
                 lockedmem already holds {locked_by_crate} bytes locked): {RAISE}, \
                 drop boxes you no longer need, or accept unlocked pages with \
                 LockPolicy::BestEffort",
                crate::os::LOCK_CALL,
                crate::os::LOCK_LIMIT,
                Limit(*soft_limit),
                Limit(*hard_limit),
            ),
            Error::MemlockLimit {
                call: MemlockCall::LockAll,
                requested,
                soft_limit,
                hard_limit,
                ..
            } => write!(
                f,
                "mlockall of the process's {requested} mapped bytes refused by {} \
                 (soft limit {}, hard limit {}; every LockAll mode asks for the whole mapped \
                 size, VmSize): {RAISE} (to at least the mapped size), or leave lock_all out \
                 (the crate's boxes lock their own pages); nothing was applied",
                crate::os::LOCK_LIMIT,
                Limit(*soft_limit),
                Limit(*hard_limit),
            ),
            Error::TooLarge { len, elem_size } => write!(
                f,
                "a secret of {len} element(s) of {elem_size} bytes, with its canary and guard \
                 pages, does not fit in the address space or in physical memory: ask for fewer \
                 elements"
            ),
            Error::Alignment { align, page_size } => write!(
                f,
                "the type's alignment of {align} bytes exceeds the page size of {page_size} \
                 bytes, which a value placed flush against a guard page cannot honour: use a \
                 type with a smaller alignment"
            ),
            Error::Unsupported { call, source } => write!(
                f,
                "{call} is not supported here ({source}): choose options that do not \
                 need it (see `cargo run --example doctor` for what this host offers)"
            ),
            Error::Os { call, len, source } => write!(
                f,
                "{call} on {len} bytes failed: {source}; the process may be out of memory or \
                 address space, or at vm.max_map_count"
            ),
            Error::Io { source } => write!(
                f,
                "reading the secret failed: {source}; what was read has been wiped"
            ),
            Error::InputTooLong { max_len } => write!(
                f,
                "the input is longer than the limit of {max_len} bytes; what was read has been \
                 wiped: raise the limit if the input is legitimate"
            ),
            Error::InvalidUtf8 => f.write_str(
                "the input is not valid UTF-8; what was read has been wiped (the bytes are not \
                 shown)",
            ),
            Error::NoTerminal { source } => write!(
                f,
                "no controlling terminal to prompt on ({}: {source}): pass the secret \
                 another way, such as a pipe or a file on standard input read with \
                 LockedString::read_line(lockedmem::raw_stdin(), max_len) (not \
                 std::io::stdin(), whose buffer keeps a copy)",
                crate::os::TERMINAL,
            ),
            Error::Terminal { call, source } => {
                write!(f, "{call} failed: {source}; {}", terminal_advice(source))
            }
            Error::EnvVarNotSet { name } => write!(
                f,
                "the environment variable {name} is not set: set it, or pass the secret another \
                 way"
            ),
            Error::Hardening { call, source } => write!(
                f,
                "hardening the process: {call} failed: {source}; the steps before it stay \
                 applied (Hardening::current() shows what is in force); a seccomp filter or \
                 security module may forbid the call, or /proc may not be mounted"
            ),
            Error::UnsupportedSignal { signal } => write!(
                f,
                "signal {signal} cannot trigger the last wipe: wipe_on_signals takes {}; for \
                 faults and aborts use wipe_on_panic or wipe_all_and_abort",
                crate::os::WIPE_SIGNALS,
            ),
            Error::Decode { encoding } => write!(
                f,
                "the input is not valid {encoding} of the expected length; what was decoded has \
                 been wiped (the input is not shown)"
            ),
            Error::Tampered => f.write_str(
                "a shielded secret failed its authentication tag: its memory was changed, or \
                 copied from another secret's; nothing was decrypted: treat the secret as lost \
                 and the process's memory as written to by someone else",
            ),
            Error::ShieldKeyAbsent => f.write_str(
                "the shield's key does not exist in this fork(2) child (it is not inherited): \
                 read shielded secrets in the parent, or pass what the child needs before \
                 forking",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unsupported { source, .. }
            | Error::Os { source, .. }
            | Error::Io { source }
            | Error::NoTerminal { source }
            | Error::Terminal { source, .. }
            | Error::Hardening { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a box with a fallible initialiser could not be made: the memory, or
/// the initialiser (whose error is the caller's own type, with no
/// conversion needed). The half-written box has been wiped.
#[derive(Debug)]
pub enum InitError<E> {
    /// The memory could not be made; the initialiser did not run.
    Alloc(Error),
    /// The initialiser failed.
    Init(E),
}

impl<E: fmt::Display> fmt::Display for InitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Alloc(e) => e.fmt(f),
            InitError::Init(e) => write!(f, "initialising the secret failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for InitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Alloc(e) => Some(e),
            InitError::Init(e) => Some(e),
        }
    }
}

/// So that `?` works in a function returning `io::Result`.
impl From<InitError<io::Error>> for io::Error {
    fn from(e: InitError<io::Error>) -> io::Error {
        match e {
            InitError::Alloc(e) => e.into(),
            InitError::Init(e) => e,
        }
    }
}

/// So that `?` works in a function returning `lockedmem::Error`.
impl From<InitError<Error>> for Error {
    fn from(e: InitError<Error>) -> Error {
        match e {
            InitError::Alloc(e) | InitError::Init(e) => e,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::MemlockLimit { .. } | Error::TooLarge { .. } => io::ErrorKind::OutOfMemory,
            Error::Alignment { .. } | Error::UnsupportedSignal { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::Os { source, .. }
            | Error::Io { source }
            | Error::Terminal { source, .. }
            | Error::Hardening { source, .. } => source.kind(),
            Error::InputTooLong { .. } | Error::InvalidUtf8 | Error::Decode { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::EnvVarNotSet { .. } | Error::NoTerminal { .. } => io::ErrorKind::NotFound,
            Error::Tampered => io::ErrorKind::InvalidData,
            Error::ShieldKeyAbsent => io::ErrorKind::NotFound,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_message_names_the_limit_and_the_numbers() {
        let e = Error::MemlockLimit {
            call: MemlockCall::Secret,
            requested: 4096,
            soft_limit: Some(65536),
            hard_limit: None,
            locked_by_crate: 61440,
        };
        let msg = e.to_string();
        for needle in [
            crate::os::LOCK_LIMIT,
            "4096 bytes",
            "65536 bytes",
            "unlimited",
            "61440",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg:?}");
        }
        assert!(!msg.contains('\n'));
    }

    /// One error of every variant; those that come from input are made by
    /// the crate from input holding `SECRET`.
    fn every_variant() -> Vec<Error> {
        const SECRET: &str = "S3CR3T-in-the-input";
        let read_line = |input: &[u8], max| crate::LockedString::read_line(input, max);
        let failing_reader = {
            struct Fails;
            impl io::Read for Fails {
                fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                    Err(io::ErrorKind::BrokenPipe.into())
                }
            }
            crate::LockedVec::read_from(Fails, 64)
        };
        let mut line = SECRET.as_bytes().to_vec();
        line.extend_from_slice(b"\xff\n");
        vec![
            Error::MemlockLimit {
                call: MemlockCall::Secret,
                requested: 4096,
                soft_limit: Some(65536),
                hard_limit: None,
                locked_by_crate: 61440,
            },
            Error::MemlockLimit {
                call: MemlockCall::LockAll,
                requested: 1 << 30,
                soft_limit: Some(65536),
                hard_limit: Some(65536),
                locked_by_crate: 0,
            },
            Error::TooLarge {
                len: usize::MAX,
                elem_size: 8,
            },
            Error::Alignment {
                align: 1 << 20,
                page_size: 4096,
            },
            Error::Unsupported {
                call: "madvise(MADV_WIPEONFORK)",
                source: io::Error::from(io::ErrorKind::Unsupported),
            },
            Error::os("mmap", 8192, crate::os::error_for(Trouble::NoMemory)),
            failing_reader.unwrap_err(),
            read_line(SECRET.as_bytes(), 4).unwrap_err(),
            read_line(&line, 64).unwrap_err(),
            crate::LockedVec::from_hex(SECRET).unwrap_err(),
            crate::LockedVec::from_base64(SECRET).unwrap_err(),
            Error::NoTerminal {
                source: crate::os::error_for(Trouble::NoTerminal),
            },
            Error::Terminal {
                call: "open /dev/tty",
                source: crate::os::error_for(Trouble::NoDescriptors),
            },
            Error::EnvVarNotSet {
                name: "API_TOKEN".into(),
            },
            Error::Hardening {
                call: "prctl(PR_SET_DUMPABLE, 0)",
                source: crate::os::error_for(Trouble::Denied),
            },
            Error::UnsupportedSignal { signal: 9 },
            Error::Tampered,
            Error::ShieldKeyAbsent,
        ]
    }

    /// Every variant's `Debug` is its `Display`, one line that gives
    /// advice, and no variant's text holds a byte of the input.
    #[test]
    fn every_variant_debugs_as_it_displays_and_shows_no_input() {
        let mut seen = [false; 16];
        for e in every_variant() {
            let i = match &e {
                Error::MemlockLimit { .. } => 0,
                Error::TooLarge { .. } => 1,
                Error::Alignment { .. } => 2,
                Error::Unsupported { .. } => 3,
                Error::Os { .. } => 4,
                Error::Io { .. } => 5,
                Error::InputTooLong { .. } => 6,
                Error::InvalidUtf8 => 7,
                Error::Decode { .. } => 8,
                Error::NoTerminal { .. } => 9,
                Error::EnvVarNotSet { .. } => 10,
                Error::Hardening { .. } => 11,
                Error::UnsupportedSignal { .. } => 12,
                Error::Terminal { .. } => 13,
                Error::Tampered => 14,
                Error::ShieldKeyAbsent => 15,
            };
            seen[i] = true;
            let display = e.to_string();
            let debug = format!("{e:?}");
            let pretty = format!("{e:#?}");
            assert_eq!(debug, display);
            assert_eq!(pretty, format!("Error::{}: {display}", e.variant()));
            assert!(!display.contains('\n'), "{display}");
            // Each says what to do: advice follows a colon or a semicolon.
            assert!(
                display.contains(": ") || display.contains("; "),
                "{display}"
            );
            for text in [&display, &pretty] {
                for needle in ["S3CR", "3CR3T", "in-the-input", "53 33 43", "83, 51, 67"] {
                    assert!(!text.contains(needle), "{needle} in {text}");
                }
            }
            // Through `Box<dyn Error>`, as `main` prints it.
            let boxed: Box<dyn std::error::Error> = Box::new(e);
            assert_eq!(format!("{boxed:?}"), display);
        }
        assert!(
            seen.iter().all(|&s| s),
            "a variant without a case: {seen:?}"
        );
    }

    #[test]
    fn memlock_advice_fits_the_call() {
        let all = every_variant();
        let [secret, lock_all] = [&all[0], &all[1]].map(ToString::to_string);
        let raise = crate::os::RAISE_LOCK_LIMIT;
        for needle in [raise, crate::os::LOCK_LIMIT, "BestEffort", "drop boxes"] {
            assert!(secret.contains(needle), "{needle} not in {secret}");
        }
        for needle in ["mlockall", raise, "VmSize", "leave lock_all out"] {
            assert!(lock_all.contains(needle), "{needle} not in {lock_all}");
        }
        for wrong in ["BestEffort", "drop boxes"] {
            assert!(!lock_all.contains(wrong), "{wrong} in {lock_all}");
        }
    }

    #[test]
    fn io_error_keeps_the_message_and_source() {
        let e = Error::os("mmap", 8192, crate::os::error_for(Trouble::NoMemory));
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::OutOfMemory);
        assert!(io.to_string().contains("mmap on 8192 bytes failed"));
    }
}
