//! This library's error type, and how lockedmem's errors map into it.

use std::fmt;
use std::io;

use lockedmem::{InitError, MemlockCall};

/// What went wrong with a key. No variant carries a byte of a key, or of
/// the text a key was read from.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// Not enough lockable memory for the key: raise `RLIMIT_MEMLOCK`,
    /// drop other keys, or make keys with [`KeyOptions::best_effort`](crate::KeyOptions::best_effort).
    OutOfLockedMemory {
        /// Bytes asked for.
        requested: usize,
        /// The soft `RLIMIT_MEMLOCK` (`None`: unlimited).
        soft_limit: Option<u64>,
        /// Whether it was locking the whole process (hardening) that failed,
        /// rather than a key.
        whole_process: bool,
    },
    /// This host cannot protect a key as asked; names what it refused.
    Unsupported {
        /// The mechanism refused.
        what: &'static str,
    },
    /// The key's text is not what it should be (names why, never the text).
    Malformed {
        /// What was wrong.
        why: &'static str,
    },
    /// Keypair bytes whose public half is not the seed's public key.
    PublicKeyMismatch,
    /// There is no terminal to prompt on.
    NoTerminal,
    /// The environment variable that should hold the key is not set.
    NotInEnvironment {
        /// The variable's name.
        name: String,
    },
    /// A signal the last wipe cannot be installed for.
    Signal {
        /// Its number.
        number: i32,
    },
    /// A keyring could not grow: its allocator refused the memory (see
    /// [`process::diagnostics`](crate::process::diagnostics) for the limit).
    KeyringFull,
    /// Reading the key failed.
    Io(io::Error),
    /// Any other failure of the memory the key lives in; lockedmem's message
    /// says what to do.
    Memory(lockedmem::Error),
}

impl From<lockedmem::Error> for KeyError {
    fn from(e: lockedmem::Error) -> KeyError {
        use lockedmem::Error as E;
        match e {
            E::MemlockLimit {
                call,
                requested,
                soft_limit,
                ..
            } => KeyError::OutOfLockedMemory {
                requested,
                soft_limit,
                whole_process: match call {
                    MemlockCall::Secret => false,
                    MemlockCall::LockAll => true,
                    _ => false,
                },
            },
            E::Unsupported { call, .. } => KeyError::Unsupported { what: call },
            E::InputTooLong { .. } => KeyError::Malformed { why: "too long" },
            E::InvalidUtf8 => KeyError::Malformed { why: "not UTF-8" },
            E::Decode { encoding } => KeyError::Malformed { why: encoding },
            E::NoTerminal { .. } => KeyError::NoTerminal,
            E::EnvVarNotSet { name } => KeyError::NotInEnvironment { name },
            E::UnsupportedSignal { signal } => KeyError::Signal { number: signal },
            E::Io { source } => KeyError::Io(source),
            // The rest keep lockedmem's own advice: a size or alignment no
            // key has, a system call that failed, the terminal, hardening.
            e @ (E::TooLarge { .. }
            | E::Alignment { .. }
            | E::Os { .. }
            | E::Terminal { .. }
            | E::Hardening { .. }) => KeyError::Memory(e),
            e => KeyError::Memory(e),
        }
    }
}

impl From<io::Error> for KeyError {
    fn from(e: io::Error) -> KeyError {
        KeyError::Io(e)
    }
}

/// A key's initialiser failed ([`InitError::Init`]) or its memory could not
/// be had ([`InitError::Alloc`]).
impl<E: Into<KeyError>> From<InitError<E>> for KeyError {
    fn from(e: InitError<E>) -> KeyError {
        match e {
            InitError::Alloc(e) => e.into(),
            InitError::Init(e) => e.into(),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::OutOfLockedMemory {
                requested,
                soft_limit,
                whole_process,
            } => {
                let what = if *whole_process {
                    "the process"
                } else {
                    "a key"
                };
                match soft_limit {
                    Some(limit) => write!(
                        f,
                        "locking {requested} bytes for {what} would pass RLIMIT_MEMLOCK \
                         ({limit} bytes): raise the limit or use fewer keys"
                    ),
                    None => write!(f, "locking {requested} bytes for {what} was refused"),
                }
            }
            KeyError::Unsupported { what } => {
                write!(f, "this host cannot protect the key as asked: {what}")
            }
            KeyError::Malformed { why } => write!(f, "the key is malformed: {why}"),
            KeyError::PublicKeyMismatch => {
                f.write_str("the keypair's public key does not belong to its seed")
            }
            KeyError::NoTerminal => f.write_str("no terminal to ask for the key on"),
            KeyError::NotInEnvironment { name } => write!(f, "{name} is not set"),
            KeyError::Signal { number } => {
                write!(
                    f,
                    "signal {number} cannot wipe the keys before the process dies"
                )
            }
            KeyError::KeyringFull => {
                f.write_str("the keyring cannot grow: no more lockable memory")
            }
            KeyError::Io(e) => write!(f, "reading the key: {e}"),
            KeyError::Memory(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyError::Io(e) => Some(e),
            KeyError::Memory(e) => Some(e),
            _ => None,
        }
    }
}
