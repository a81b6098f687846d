//! `prompt_password`: a passphrase read from the terminal with echo off,
//! straight into locked memory, the terminal restored on every path.
//!
//! While the prompt waits, handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT
//! restore the terminal and then re-raise the signal with the disposition
//! it had before, so that Ctrl-C or a `kill` ends the process as it would
//! have, with echo back on (as OpenSSH's readpassphrase does). An error or a
//! panic while reading restores the terminal through a guard's `Drop`.
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
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::termios::LocalModes;

use crate::error::Error;
use crate::os::{self, SignalAction, TerminalModes};
use crate::string::LockedString;

/// The longest passphrase accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 4096;

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
    let errno = os::errno();
    SIGNALLED.store(sig, Ordering::Relaxed);
    let fd = TTY_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: `fd` is the open terminal of the waiting prompt, which
        // closes it only after uninstalling this handler.
        let tty = unsafe { BorrowedFd::borrow_raw(fd) };
        // SAFETY: SAVED_MODES was written before this handler was
        // installed, and is not written while it is.
        let modes = unsafe { SAVED_MODES.get() };
        let _ = os::set_terminal(tty, modes);
    }
    if let Some(i) = SIGNALS.iter().position(|&s| s == sig) {
        // SAFETY: OLD_ACTIONS was written before this handler was
        // installed; restoring a saved disposition installs no new handler.
        let old = unsafe { &OLD_ACTIONS.get()[i] };
        // SAFETY: as above.
        let _ = unsafe { os::set_signal_action(sig, None, Some(old)) };
    }
    os::raise_signal(sig);
    os::set_errno(errno);
}

/// Puts the terminal and the signal dispositions back; on every path out
/// of the prompt, panics included.
struct Restore<'a> {
    tty: BorrowedFd<'a>,
    modes: TerminalModes,
    handlers: bool,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = os::set_terminal(self.tty, &self.modes);
        if self.handlers {
            // SAFETY: written before the handlers were installed, and no
            // handler writes it.
            let old = unsafe { OLD_ACTIONS.get() };
            for (&sig, old) in SIGNALS.iter().zip(old) {
                // SAFETY: restoring a saved disposition.
                let _ = unsafe { os::set_signal_action(sig, None, Some(old)) };
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
            if os::readable_within(self.0.as_fd(), POLL_MS)? {
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

/// Writes `prompt` to the controlling terminal (`/dev/tty`) and reads a
/// line from it with echo off, straight into locked memory, without its
/// terminator; then restores the terminal as it was.
///
/// ```no_run
/// let pass = lockedmem::prompt_password("Passphrase: ")?;
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// The terminal is restored on every path: a normal return, an error, a
/// panic while reading, and SIGINT, SIGTERM, SIGHUP or SIGQUIT arriving
/// while the prompt waits (restored, then the signal takes the course its
/// previous disposition gives it: by default the process ends). The prompt
/// installs handlers for those four signals while it waits and puts the
/// previous ones back afterwards; one prompt runs at a time. If the previous
/// disposition lets the process live on (ignored, or a handler of its own),
/// the prompt ends with [`Error::Io`] as soon as the signal arrives, from
/// whichever thread handled it, and reads nothing more. Ctrl-Z (SIGTSTP) is
/// left to the shell, which restores its own terminal settings when a job
/// stops; under a parent without job control the terminal stays without
/// echo while the process is stopped, and echo stays off when it continues.
///
/// # Errors
/// [`Error::NoTerminal`] without a controlling terminal;
/// [`Error::Terminal`] if `/dev/tty` could not be opened or queried for
/// another reason (such as `EMFILE`, out of file descriptors);
/// [`Error::InputTooLong`] past [`MAX_PASSWORD_LEN`] bytes;
/// [`Error::InvalidUtf8`]; [`Error::Io`] if reading fails, the input ends
/// before a line, or a signal whose disposition let the process live on
/// interrupted it. What was read is wiped in every case.
pub fn prompt_password(prompt: &str) -> Result<LockedString, Error> {
    let _one = PROMPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| terminal_error("open /dev/tty", e))?;
    let fd = tty.as_fd();
    let modes = os::terminal_modes(fd).map_err(|e| terminal_error("tcgetattr /dev/tty", e))?;
    SIGNALLED.store(0, Ordering::Relaxed);
    // SAFETY: no handler of ours is installed (we hold PROMPT, and the last
    // prompt uninstalled its own before releasing it).
    unsafe { SAVED_MODES.set(modes.clone()) };
    TTY_FD.store(tty.as_raw_fd(), Ordering::Relaxed);
    let mut restore = Restore {
        tty: fd,
        modes: modes.clone(),
        handlers: false,
    };
    install_handlers()?;
    restore.handlers = true;

    let mut quiet = modes;
    quiet.local_modes &=
        !(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK | LocalModes::ECHONL);
    os::set_terminal(fd, &quiet).map_err(|source| Error::Io { source })?;
    (&tty)
        .write_all(prompt.as_bytes())
        .map_err(|source| Error::Io { source })?;
    let line = LockedString::read_line(TtyReader(&tty), MAX_PASSWORD_LEN);
    // Echo was off: the user's Enter did not move the cursor.
    let _ = (&tty).write_all(b"\n");
    drop(restore);
    line
}

/// The error for `call` on `/dev/tty` failing with `e`:
/// [`Error::NoTerminal`] only where the kernel says there is no terminal
/// (`ENXIO`: no controlling terminal, see tty(4); `ENOENT`/`ENODEV`: no
/// `/dev/tty` device here; `ENOTTY`: what was opened is no terminal), else
/// [`Error::Terminal`] (out of descriptors, not allowed, ...).
fn terminal_error(call: &'static str, e: io::Error) -> Error {
    match os::trouble(&e, false) {
        os::Trouble::NoTerminal => Error::NoTerminal { source: e },
        _ => Error::Terminal { call, source: e },
    }
}

/// Saves the current dispositions of [`SIGNALS`] and installs `on_signal`
/// for each; on failure puts back those already replaced.
fn install_handlers() -> Result<(), Error> {
    // SAFETY: an all-zero sigaction is valid plain data (replaced below).
    let mut old: [SignalAction; 4] = unsafe { std::mem::zeroed() };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: reads the current disposition only (no handler given).
        old[i] = unsafe { os::set_signal_action(sig, None, None) }
            .map_err(|e| Error::os("sigaction", 0, e))?;
    }
    // SAFETY: no handler of ours is installed yet, so nothing reads it.
    unsafe { OLD_ACTIONS.set(old) };
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: `on_signal` is async-signal-safe (see its docs).
        if let Err(e) = unsafe { os::set_signal_action(sig, Some(on_signal), None) } {
            for (&s, o) in SIGNALS[..i].iter().zip(&old) {
                // SAFETY: restoring a saved disposition.
                let _ = unsafe { os::set_signal_action(s, None, Some(o)) };
            }
            return Err(Error::os("sigaction", 0, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_terminal_is_no_terminal() {
        for errno in [libc::ENXIO, libc::ENOENT, libc::ENODEV, libc::ENOTTY] {
            let e = terminal_error("open /dev/tty", io::Error::from_raw_os_error(errno));
            assert!(matches!(e, Error::NoTerminal { .. }), "{errno}: {e}");
        }
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::EACCES,
            libc::ENOMEM,
            libc::EIO,
        ] {
            let e = terminal_error("open /dev/tty", io::Error::from_raw_os_error(errno));
            assert!(
                matches!(
                    e,
                    Error::Terminal {
                        call: "open /dev/tty",
                        ..
                    }
                ),
                "{errno}: {e}"
            );
        }
    }
}
