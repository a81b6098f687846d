//! The terminal for a prompt, on Unix: `/dev/tty` with echo off, restored
//! on every path out.
//!
//! While the prompt waits, handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! restore the terminal and then re-raise the signal with the disposition
//! it had before, so that Ctrl-C or a `kill` ends the process as it would
//! have, with echo back on (as OpenSSH's readpassphrase does). An error or a
//! panic while reading restores the terminal through `Drop`.
//!
//! Unsafe here is limited to the statics the signal handler reads (written
//! only while no handler is installed, under the prompt's mutex) and the
//! installation of the handler.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustix::termios::LocalModes;

use super::unix::{
    SignalAction, TerminalModes, errno, raise_signal, readable_within, set_errno,
    set_signal_action, set_terminal, terminal_modes,
};

/// What failed when the terminal could not be opened or set up: the call,
/// and the system's answer (`trouble` tells a missing terminal).
#[derive(Debug)]
pub(crate) struct TtyError {
    pub(crate) call: &'static str,
    pub(crate) source: io::Error,
}

/// The controlling terminal, echo off while this lives; a prompt at a time,
/// process-wide. Dropping it restores the terminal and the signal
/// dispositions.
pub(crate) struct Tty {
    file: File,
    restore: Option<Restore>,
    _one: MutexGuard<'static, ()>,
}

impl Tty {
    /// Opens `/dev/tty`, saves its modes, installs the restoring handlers
    /// and turns echo off.
    pub(crate) fn open_quiet() -> Result<Tty, TtyError> {
        let one = PROMPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map_err(|source| TtyError {
                call: "open /dev/tty",
                source,
            })?;
        let fd = file.as_fd();
        let modes = terminal_modes(fd).map_err(|source| TtyError {
            call: "tcgetattr /dev/tty",
            source,
        })?;
        SIGNALLED.store(0, Ordering::Relaxed);
        // SAFETY: no handler of ours is installed (we hold PROMPT, and the
        // last prompt uninstalled its own before releasing it).
        unsafe { SAVED_MODES.set(modes.clone()) };
        TTY_FD.store(file.as_raw_fd(), Ordering::Relaxed);
        let mut tty = Tty {
            restore: Some(Restore {
                fd: file.as_raw_fd(),
                modes: modes.clone(),
                handlers: false,
            }),
            file,
            _one: one,
        };
        install_handlers().map_err(|source| TtyError {
            call: "sigaction",
            source,
        })?;
        if let Some(r) = tty.restore.as_mut() {
            r.handlers = true;
        }
        let mut quiet = modes;
        quiet.local_modes &=
            !(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK | LocalModes::ECHONL);
        set_terminal(tty.file.as_fd(), &quiet).map_err(|source| TtyError {
            call: "tcsetattr /dev/tty",
            source,
        })?;
        Ok(tty)
    }

    /// Writes `bytes` to the terminal.
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.file).write_all(bytes)
    }

    /// The terminal as a reader, one byte at a time (see [`TtyReader`]).
    pub(crate) fn reader(&self) -> impl Read + '_ {
        TtyReader(&self.file)
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        // The modes and dispositions first, then the descriptor (`file`)
        // and the mutex, in field order.
        drop(self.restore.take());
    }
}

/// The signals that end a prompt with the terminal restored.
const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// One prompt at a time, process-wide: the handler's state is global.
static PROMPT: Mutex<()> = Mutex::new(());

/// The terminal's descriptor while a prompt waits, else -1.
static TTY_FD: AtomicI32 = AtomicI32::new(-1);

/// The signal that interrupted the prompt, else 0.
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// Plain data the signal handler reads: written only with no handler
/// installed and `PROMPT` held, read only by the handler while installed.
struct HandlerData<T>(UnsafeCell<MaybeUninit<T>>);

// SAFETY: written only while no handler that reads it is installed (and by
// one thread, holding `PROMPT`); while a handler is installed it is only
// read. The accesses never overlap.
unsafe impl<T> Sync for HandlerData<T> {}

impl<T> HandlerData<T> {
    /// The value last written.
    ///
    /// # Safety
    /// A value was written, and no write runs meanwhile (see the type).
    unsafe fn get(&self) -> &T {
        // SAFETY: no write runs meanwhile (the caller's contract).
        let slot = unsafe { &*self.0.get() };
        // SAFETY: a value was written (the caller's contract).
        unsafe { slot.assume_init_ref() }
    }

    /// Stores `value`.
    ///
    /// # Safety
    /// No handler that reads it is installed, and no other thread writes or
    /// reads it (hold `PROMPT`).
    unsafe fn set(&self, value: T) {
        // SAFETY: exclusive access (the caller's contract).
        unsafe { (*self.0.get()).write(value) };
    }
}

static SAVED_MODES: HandlerData<TerminalModes> =
    HandlerData(UnsafeCell::new(MaybeUninit::uninit()));
static OLD_ACTIONS: HandlerData<[SignalAction; 4]> =
    HandlerData(UnsafeCell::new(MaybeUninit::uninit()));

/// Restores the terminal, puts back the signal's previous disposition and
/// raises the signal again, which then takes its course once this returns.
/// Async-signal-safe: one ioctl, sigaction, raise, atomics.
extern "C" fn on_signal(sig: libc::c_int) {
    // The code this interrupted may be about to read errno.
    let errno = errno();
    SIGNALLED.store(sig, Ordering::Relaxed);
    let fd = TTY_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: `fd` is the open terminal of the waiting prompt, which
        // closes it only after uninstalling this handler.
        let tty = unsafe { BorrowedFd::borrow_raw(fd) };
        // SAFETY: SAVED_MODES was written before this handler was
        // installed, and is not written while it is.
        let modes = unsafe { SAVED_MODES.get() };
        let _ = set_terminal(tty, modes);
    }
    if let Some(i) = SIGNALS.iter().position(|&s| s == sig) {
        // SAFETY: OLD_ACTIONS was written before this handler was
        // installed; restoring a saved disposition installs no new handler.
        let old = unsafe { &OLD_ACTIONS.get()[i] };
        // SAFETY: as above.
        let _ = unsafe { set_signal_action(sig, None, Some(old)) };
    }
    raise_signal(sig);
    set_errno(errno);
}

/// Puts the terminal and the signal dispositions back; on every path out
/// of the prompt, panics included.
struct Restore {
    /// The terminal's descriptor, open while the `Tty` holding this lives.
    fd: i32,
    modes: TerminalModes,
    handlers: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: the `Tty` that holds this keeps the descriptor open until
        // after this runs (it drops `restore` first).
        let tty = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = set_terminal(tty, &self.modes);
        if self.handlers {
            // SAFETY: written before the handlers were installed, and no
            // handler writes it.
            let old = unsafe { OLD_ACTIONS.get() };
            for (&sig, old) in SIGNALS.iter().zip(old) {
                // SAFETY: restoring a saved disposition.
                let _ = unsafe { set_signal_action(sig, None, Some(old)) };
            }
        }
        TTY_FD.store(-1, Ordering::Relaxed);
    }
}

/// The terminal, read one byte at a time. One of the prompt's signals ends
/// the prompt even when its disposition lets the process live on and the
/// handler ran on another thread (whose `raise` interrupts no read here):
/// the reader waits for input in slices of [`POLL_MS`] and checks for the
/// signal between them, so it never reads a byte once echo is back on.
struct TtyReader<'a>(&'a File);

/// How long a wait for input lasts before the reader looks for a signal.
const POLL_MS: i32 = 50;

impl Read for TtyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if SIGNALLED.load(Ordering::Relaxed) != 0 {
                return Err(io::Error::other("the prompt was interrupted by a signal"));
            }
            if readable_within(self.0.as_fd(), POLL_MS)? {
                break;
            }
        }
        if SIGNALLED.load(Ordering::Relaxed) != 0 {
            return Err(io::Error::other("the prompt was interrupted by a signal"));
        }
        // `EINTR` goes back to `read_line`, which tries again: past the
        // signal check above.
        (&mut &*self.0).read(buf)
    }
}

/// Saves the current dispositions of [`SIGNALS`] and installs `on_signal`
/// for each; on failure puts back those already replaced.
fn install_handlers() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is valid plain data (replaced below).
    let mut old: [SignalAction; 4] = unsafe { std::mem::zeroed() };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: reads the current disposition only (no handler given).
        old[i] = unsafe { set_signal_action(sig, None, None) }?;
    }
    // SAFETY: no handler of ours is installed yet, so nothing reads it.
    unsafe { OLD_ACTIONS.set(old) };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: `on_signal` is async-signal-safe (see its docs).
        if let Err(e) = unsafe { set_signal_action(sig, Some(on_signal), None) } {
            for (&s, o) in SIGNALS[..i].iter().zip(&old) {
                // SAFETY: restoring a saved disposition.
                let _ = unsafe { set_signal_action(s, None, Some(o)) };
            }
            return Err(e);
        }
    }
    Ok(())
}
