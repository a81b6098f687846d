//! The terminal for a prompt, on Windows: the console's input (`CONIN$`)
//! with echo off, restored on every path out.
//!
//! The console's own line editing stays on (`ENABLE_LINE_INPUT`, so
//! Backspace works as the user expects) and so does Ctrl-C's processing
//! (`ENABLE_PROCESSED_INPUT`); only `ENABLE_ECHO_INPUT` is taken away. While
//! the prompt waits, a console control handler (`SetConsoleCtrlHandler`)
//! puts the saved mode back on Ctrl-C, Ctrl-Break, the console's closing,
//! logoff and shutdown, then lets the handlers before it (by default, the
//! one that ends the process) do what they would have done. An error or a
//! panic while reading restores the mode through `Drop`. A read that Ctrl-C
//! or Ctrl-Break ends is an error (`ERROR_OPERATION_ABORTED`), also where a
//! handler of the program's swallows the event: the part of the line typed
//! before it is never taken for the answer.
//!
//! The line is read one UTF-16 unit at a time with `ReadConsoleW` and
//! handed out as UTF-8, one byte at a time, into the caller's locked
//! buffer; the few bytes of a character in flight are zeroed once handed
//! out. The console host (conhost) holds the line in its own process while
//! it is typed, which no code in this process can reach.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::windows::io::AsRawHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use windows_sys::Win32::Foundation::{ERROR_OPERATION_ABORTED, FALSE, HANDLE, TRUE};
use windows_sys::Win32::System::Console::{
    CONSOLE_MODE, ENABLE_ECHO_INPUT, ENABLE_LINE_INPUT, ENABLE_PROCESSED_INPUT, GetConsoleMode,
    ReadConsoleW, SetConsoleCtrlHandler, SetConsoleMode, WriteConsoleW,
};
use windows_sys::core::BOOL;

use super::cpu::zero_bytes;

/// What failed when the console could not be opened or set up: the call,
/// and the system's answer (`trouble` tells a missing console).
#[derive(Debug)]
pub(crate) struct TtyError {
    pub(crate) call: &'static str,
    pub(crate) source: io::Error,
}

/// The console, echo off while this lives; a prompt at a time,
/// process-wide. Dropping it restores the console's input mode and removes
/// the control handler.
pub(crate) struct Tty {
    input: File,
    output: File,
    restore: Option<Restore>,
    _one: MutexGuard<'static, ()>,
}

/// One prompt at a time, process-wide: the control handler's state is
/// global.
static PROMPT: Mutex<()> = Mutex::new(());

/// What the control handler restores: the input handle (as an address) and
/// its saved mode, while a prompt waits.
static WAITING: Mutex<Option<(usize, CONSOLE_MODE)>> = Mutex::new(None);

/// A control event arrived while the prompt waited.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `ERROR_OPERATION_ABORTED`, as `io::Error::raw_os_error` gives it.
const ABORTED: i32 = i32::from_ne_bytes(ERROR_OPERATION_ABORTED.to_ne_bytes());

fn tty_error(call: &'static str) -> impl FnOnce(io::Error) -> TtyError {
    move |source| TtyError { call, source }
}

/// `GetConsoleMode(handle)`.
///
/// # References
/// - [GetConsoleMode](https://learn.microsoft.com/en-us/windows/console/getconsolemode)
#[doc(alias = "GetConsoleMode")]
fn console_mode(handle: HANDLE) -> io::Result<CONSOLE_MODE> {
    let mut mode = 0;
    // SAFETY: writes one mode into our local; a handle that is no console
    // makes it fail (`ERROR_INVALID_HANDLE`).
    if unsafe { GetConsoleMode(handle, &raw mut mode) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(mode)
}

/// `SetConsoleMode(handle, mode)`.
///
/// # References
/// - [SetConsoleMode](https://learn.microsoft.com/en-us/windows/console/setconsolemode)
#[doc(alias = "SetConsoleMode")]
fn set_console_mode(handle: HANDLE, mode: CONSOLE_MODE) -> io::Result<()> {
    // SAFETY: takes a handle and a number; no memory of ours.
    if unsafe { SetConsoleMode(handle, mode) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Tty {
    /// Opens the console's input and output (`CONIN$`, `CONOUT$`), saves
    /// the input mode, installs the restoring control handler and turns
    /// echo off.
    pub(crate) fn open_quiet() -> Result<Tty, TtyError> {
        let one = PROMPT.lock().unwrap_or_else(PoisonError::into_inner);
        let open = |path| OpenOptions::new().read(true).write(true).open(path);
        let input = open("CONIN$").map_err(tty_error("CreateFile CONIN$"))?;
        let output = open("CONOUT$").map_err(tty_error("CreateFile CONOUT$"))?;
        let handle = input.as_raw_handle();
        let saved = console_mode(handle).map_err(tty_error("GetConsoleMode CONIN$"))?;
        INTERRUPTED.store(false, Ordering::SeqCst);
        *WAITING.lock().unwrap_or_else(PoisonError::into_inner) = Some((handle as usize, saved));
        let mut tty = Tty {
            input,
            output,
            restore: Some(Restore {
                handle: handle as usize,
                saved,
                handler: false,
            }),
            _one: one,
        };
        // SAFETY: `on_control` is a handler of the right type that only
        // takes a mutex, sets the console mode and an atomic.
        if unsafe { SetConsoleCtrlHandler(Some(on_control), TRUE) } == 0 {
            return Err(TtyError {
                call: "SetConsoleCtrlHandler",
                source: io::Error::last_os_error(),
            });
        }
        if let Some(r) = tty.restore.as_mut() {
            r.handler = true;
        }
        let quiet = (saved | ENABLE_LINE_INPUT | ENABLE_PROCESSED_INPUT) & !ENABLE_ECHO_INPUT;
        set_console_mode(handle, quiet).map_err(tty_error("SetConsoleMode CONIN$"))?;
        Ok(tty)
    }

    /// Writes `bytes` (UTF-8; anything else shown as U+FFFD) to the console
    /// with `WriteConsoleW`.
    ///
    /// # References
    /// - [WriteConsoleW](https://learn.microsoft.com/en-us/windows/console/writeconsole)
    pub(crate) fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let text: Vec<u16> = String::from_utf8_lossy(bytes).encode_utf16().collect();
        let mut done = 0;
        while done < text.len() {
            let n = u32::try_from(text.len() - done).unwrap_or(u32::MAX);
            let mut written = 0;
            // SAFETY: reads `n` units of `text` from `done`, which stay
            // borrowed for the call; writes one count into our local.
            let ok = unsafe {
                WriteConsoleW(
                    self.output.as_raw_handle(),
                    text[done..].as_ptr(),
                    n,
                    &raw mut written,
                    std::ptr::null(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += written as usize;
        }
        Ok(())
    }

    /// The console as a reader of UTF-8 bytes (see [`TtyReader`]).
    pub(crate) fn reader(&self) -> impl Read + '_ {
        TtyReader {
            input: &self.input,
            pending: [0; 4],
            at: 0,
            len: 0,
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        // The mode and the handler first, then the handles and the mutex,
        // in field order.
        drop(self.restore.take());
    }
}

/// Puts the console's input mode back and removes the control handler;
/// on every path out of the prompt, panics included.
struct Restore {
    /// The input handle, open while the `Tty` holding this lives.
    handle: usize,
    saved: CONSOLE_MODE,
    handler: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // Under the mutex, so that a control handler running now either
        // restored the mode before, or finds nothing to restore after.
        let mut waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = set_console_mode(self.handle as HANDLE, self.saved);
        *waiting = None;
        drop(waiting);
        if self.handler {
            // SAFETY: removes the handler added by `open_quiet`.
            unsafe { SetConsoleCtrlHandler(Some(on_control), FALSE) };
        }
    }
}

/// The console control handler while a prompt waits, on the thread the
/// system starts for the event: restores the saved input mode, records the
/// interruption, and returns `FALSE`, so that the handlers registered
/// before it run as they would have (the default one ends the process).
unsafe extern "system" fn on_control(_event: u32) -> BOOL {
    let waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((handle, saved)) = *waiting {
        let _ = set_console_mode(handle as HANDLE, saved);
        INTERRUPTED.store(true, Ordering::SeqCst);
    }
    FALSE
}

/// The console's input, as UTF-8 bytes: `ReadConsoleW` of one UTF-16 unit
/// at a time (a surrogate pair takes two), each character encoded into
/// `pending` and handed out a byte per call, then zeroed. An unpaired
/// surrogate comes out as U+FFFD. After a control event, reading fails.
struct TtyReader<'a> {
    input: &'a File,
    pending: [u8; 4],
    at: usize,
    len: usize,
}

impl TtyReader<'_> {
    /// `ReadConsoleW` of one UTF-16 unit; `None` at the end of the input
    /// (no unit read); `ERROR_OPERATION_ABORTED` when Ctrl-C or Ctrl-Break
    /// ended the read (the call succeeds then, with no unit read).
    ///
    /// # References
    /// - [ReadConsoleW](https://learn.microsoft.com/en-us/windows/console/readconsole)
    fn unit(&mut self) -> io::Result<Option<u16>> {
        let mut unit = 0u16;
        let mut n = 0u32;
        // SAFETY: reads at most one unit into `unit` and a count into `n`,
        // both ours.
        let ok = unsafe {
            ReadConsoleW(
                self.input.as_raw_handle(),
                (&raw mut unit).cast::<c_void>(),
                1,
                &raw mut n,
                std::ptr::null(),
            )
        };
        let got = if ok == 0 {
            Err(io::Error::last_os_error())
        } else if n == 0 {
            // Ctrl-C and Ctrl-Break end the read with success, no unit and
            // `ERROR_OPERATION_ABORTED`, before the control handler (on a
            // thread of its own) has run: that is no end of the input, or
            // the line typed so far would be handed out as the answer.
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(ABORTED) {
                Err(e)
            } else {
                Ok(None)
            }
        } else {
            Ok(Some(unit))
        };
        // SAFETY: our own local, written once more before it goes.
        unsafe { zero_bytes((&raw mut unit).cast::<u8>(), 2) };
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "the prompt was interrupted by a console event",
            ));
        }
        got
    }

    /// Reads the next character into `pending`; `false` at the end.
    fn fill(&mut self) -> io::Result<bool> {
        let Some(first) = self.unit()? else {
            return Ok(false);
        };
        let c = if (0xD800..0xDC00).contains(&first) {
            match self.unit()? {
                Some(second) => char::decode_utf16([first, second])
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
                None => char::REPLACEMENT_CHARACTER,
            }
        } else {
            char::from_u32(u32::from(first)).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        self.len = c.encode_utf8(&mut self.pending).len();
        self.at = 0;
        Ok(true)
    }
}

impl Read for TtyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.len && !self.fill()? {
            return Ok(0);
        }
        buf[0] = self.pending[self.at];
        self.at += 1;
        if self.at == self.len {
            // SAFETY: our own buffer; nothing holds a reference into it.
            unsafe { zero_bytes(self.pending.as_mut_ptr(), self.pending.len()) };
        }
        Ok(1)
    }
}

impl Drop for TtyReader<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `read`.
        unsafe { zero_bytes(self.pending.as_mut_ptr(), self.pending.len()) };
    }
}
