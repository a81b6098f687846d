//! `Signal` names the signals `wipe_on_signals` takes, with no `libc`: the
//! kernel's view of the process (`SigCgt` in /proc/self/status, the
//! signals it has a handler for) shows each one caught afterwards, and a
//! refused one changes nothing.
// Linux only: reads SigCgt in /proc/self/status.
#![cfg(target_os = "linux")]

mod common;

use common::child;
use lockedmem::{Error, Signal};

/// The signals this process catches, from the kernel's `SigCgt` mask.
fn caught() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .expect("SigCgt");
    u64::from_str_radix(mask.trim(), 16).unwrap()
}

fn bit(sig: Signal) -> u64 {
    1 << (sig.as_raw() - 1)
}

#[test]
fn named_signals_are_caught_afterwards() {
    let out = child::run("named_signals_are_caught_afterwards", || {
        let wanted = [Signal::TERM, Signal::HUP, Signal::realtime(1)];
        let before = caught();
        for &s in &wanted {
            assert_eq!(before & bit(s), 0, "{s:?} caught already");
        }
        // A refused signal (past SIGRTMAX) installs nothing, not even the
        // valid ones before it.
        let past = u8::try_from(libc::SIGRTMAX() - libc::SIGRTMIN() + 1).unwrap();
        let e = lockedmem::wipe_on_signals(&[Signal::TERM, Signal::realtime(past)]).unwrap_err();
        assert!(matches!(e, Error::UnsupportedSignal { .. }), "{e:?}");
        assert_eq!(caught(), before);
        lockedmem::wipe_on_signals(&wanted).unwrap();
        let after = caught();
        for &s in &wanted {
            assert_ne!(after & bit(s), 0, "{s:?} not caught");
        }
        // Numbers still work.
        lockedmem::wipe_on_signals(&[libc::SIGUSR1]).unwrap();
        assert_ne!(caught() & bit(Signal::USR1), 0);
    });
    child::assert_success(&out);
}
