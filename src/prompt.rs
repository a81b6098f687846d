//! `prompt_password`: a passphrase read from the terminal with echo off,
//! straight into locked memory, the terminal restored on every path. The
//! terminal itself, and what restores it, is the platform's (`os::Tty`).
#![forbid(unsafe_code)]

use std::io;

use crate::error::Error;
use crate::os;
use crate::string::LockedString;

/// The longest passphrase accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 4096;

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
    let tty = os::Tty::open_quiet().map_err(|e| terminal_error(e.call, e.source))?;
    tty.write(prompt.as_bytes())
        .map_err(|source| Error::Io { source })?;
    let line = LockedString::read_line(tty.reader(), MAX_PASSWORD_LEN);
    // Echo was off: the user's Enter did not move the cursor.
    let _ = tty.write(b"\n");
    drop(tty);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::{Trouble, error_for};

    #[test]
    fn only_a_missing_terminal_is_no_terminal() {
        let e = terminal_error("open /dev/tty", error_for(Trouble::NoTerminal));
        assert!(matches!(e, Error::NoTerminal { .. }), "{e}");
        for t in [
            Trouble::NoDescriptors,
            Trouble::SystemFiles,
            Trouble::Denied,
            Trouble::NoMemory,
            Trouble::Other,
        ] {
            let e = terminal_error("open /dev/tty", error_for(t));
            assert!(
                matches!(
                    e,
                    Error::Terminal {
                        call: "open /dev/tty",
                        ..
                    }
                ),
                "{t:?}: {e}"
            );
        }
    }
}
