//! `Signal`: the signals [`wipe_on_signals`](crate::wipe_on_signals)
//! takes, named, so that a program needs no `libc` to name them.
#![forbid(unsafe_code)]

use std::fmt;

use crate::os;

/// A signal number, with a constant for each signal that
/// [`wipe_on_signals`](crate::wipe_on_signals) takes: those that arrive
/// from outside and end the process by default.
///
/// ```no_run
/// use lockedmem::Signal;
///
/// lockedmem::wipe_on_signals(&[Signal::TERM, Signal::INT, Signal::HUP])?;
/// // Real-time signals count from SIGRTMIN, which the C library sets.
/// lockedmem::wipe_on_signals(&[Signal::realtime(2)])?;
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// Any number converts into a `Signal` (`From<i32>`), so numbers a program
/// already has (from `libc`, a configuration) work as well;
/// `wipe_on_signals` refuses those it does not take. There are no
/// constants for signals it refuses (`SIGKILL`, `SIGSEGV`, `SIGCHLD`, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Signal(i32);

impl Signal {
    /// `SIGHUP`: the terminal hung up, or the service manager asks.
    #[doc(alias = "SIGHUP")]
    pub const HUP: Signal = Signal(os::sig::HUP);
    /// `SIGINT`: Ctrl-C.
    #[doc(alias = "SIGINT")]
    pub const INT: Signal = Signal(os::sig::INT);
    /// `SIGQUIT`: Ctrl-\\ (its default action dumps core, which the wipe
    /// leaves empty of secrets).
    #[doc(alias = "SIGQUIT")]
    pub const QUIT: Signal = Signal(os::sig::QUIT);
    /// `SIGTERM`: `kill`, systemd's stop, a container's stop.
    #[doc(alias = "SIGTERM")]
    pub const TERM: Signal = Signal(os::sig::TERM);
    /// `SIGUSR1`.
    #[doc(alias = "SIGUSR1")]
    pub const USR1: Signal = Signal(os::sig::USR1);
    /// `SIGUSR2`.
    #[doc(alias = "SIGUSR2")]
    pub const USR2: Signal = Signal(os::sig::USR2);
    /// `SIGALRM`: a timer set with alarm(2) or setitimer(2).
    #[doc(alias = "SIGALRM")]
    pub const ALRM: Signal = Signal(os::sig::ALRM);
    /// `SIGVTALRM`: a virtual-time timer.
    #[doc(alias = "SIGVTALRM")]
    pub const VTALRM: Signal = Signal(os::sig::VTALRM);
    /// `SIGPROF`: a profiling timer.
    #[doc(alias = "SIGPROF")]
    pub const PROF: Signal = Signal(os::sig::PROF);
    /// `SIGXCPU`: the CPU time limit (`RLIMIT_CPU`) was reached.
    #[doc(alias = "SIGXCPU")]
    pub const XCPU: Signal = Signal(os::sig::XCPU);
    /// `SIGXFSZ`: the file size limit (`RLIMIT_FSIZE`) was exceeded.
    #[doc(alias = "SIGXFSZ")]
    pub const XFSZ: Signal = Signal(os::sig::XFSZ);
    /// `SIGPWR`: a power failure was announced.
    #[doc(alias = "SIGPWR")]
    pub const PWR: Signal = Signal(os::sig::PWR);

    /// The real-time signal `SIGRTMIN + n`. `SIGRTMIN` is the C library's
    /// (it keeps the first few for itself), so this is known only at run
    /// time; `wipe_on_signals` refuses `n` past `SIGRTMAX`.
    #[doc(alias = "SIGRTMIN")]
    pub fn realtime(n: u8) -> Signal {
        let first = *os::realtime_signals().start();
        Signal(first.saturating_add(i32::from(n)))
    }

    /// The signal numbered `number`, taken or not.
    pub const fn from_raw(number: i32) -> Signal {
        Signal(number)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The C name of a named signal (one this platform has).
    fn name(self) -> Option<&'static str> {
        const NAMES: [(Signal, &str); 12] = [
            (Signal::HUP, "SIGHUP"),
            (Signal::INT, "SIGINT"),
            (Signal::QUIT, "SIGQUIT"),
            (Signal::TERM, "SIGTERM"),
            (Signal::USR1, "SIGUSR1"),
            (Signal::USR2, "SIGUSR2"),
            (Signal::ALRM, "SIGALRM"),
            (Signal::VTALRM, "SIGVTALRM"),
            (Signal::PROF, "SIGPROF"),
            (Signal::XCPU, "SIGXCPU"),
            (Signal::XFSZ, "SIGXFSZ"),
            (Signal::PWR, "SIGPWR"),
        ];
        NAMES
            .iter()
            .find(|&&(s, _)| s == self && os::signal_exists(s.0))
            .map(|&(_, name)| name)
    }
}

impl From<i32> for Signal {
    fn from(number: i32) -> Signal {
        Signal(number)
    }
}

impl From<Signal> for i32 {
    fn from(signal: Signal) -> i32 {
        signal.0
    }
}

/// The C name (`SIGTERM`, `SIGRTMIN+2`), else the number.
impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let realtime = os::realtime_signals();
        let rt = self.0 - realtime.start();
        match self.name() {
            Some(name) => f.write_str(name),
            None if realtime.contains(&self.0) => write!(f, "SIGRTMIN+{rt}"),
            None => write!(f, "signal {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(Signal::TERM.as_raw(), os::sig::TERM);
        assert_eq!(Signal::from(os::sig::INT), Signal::INT);
        assert_eq!(i32::from(Signal::HUP), os::sig::HUP);
        assert_eq!(format!("{:?}", Signal::TERM), "SIGTERM");
        assert_eq!(format!("{:?}", Signal::from_raw(9)), "signal 9");
        assert!(format!("{:?}", Signal::realtime(200)).starts_with("signal "));
        let realtime = os::realtime_signals();
        if !realtime.is_empty() {
            assert_eq!(format!("{:?}", Signal::realtime(0)), "SIGRTMIN+0");
            assert_eq!(Signal::realtime(3).as_raw(), realtime.start() + 3);
        }
    }
}
