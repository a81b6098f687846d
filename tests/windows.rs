//! Windows, seen from outside the crate's bookkeeping: the page states and
//! protections `VirtualQuery` reports, the working set `QueryWorkingSetEx`
//! reports, child processes that must die of an access violation, the
//! console's input mode read through a handle of the test's own, and the
//! memory the last wipe leaves, read by an exception filter of the test's.
//!
//! Run under Wine in CI. Wine 8's `VirtualLock` returns success and locks
//! nothing: the test of the lock says so and asserts that limitation there,
//! and asserts the lock on Windows.
#![cfg(windows)]

mod common;

// The doctor's `main` is not called here; its copy of tests/common/windows.rs
// is the same file as `common::windows`.
#[allow(dead_code, unreachable_pub, clippy::duplicate_mod)]
#[path = "../examples/doctor.rs"]
mod doctor;

use std::io::{Read, Write};
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::process::{Command, Stdio};

use common::windows::{self as win, MEM_COMMIT, PAGE_NOACCESS, PAGE_READONLY};
use common::{child, end_of, page_size, start_of};
use lockedmem::{
    Backing, DumpPolicy, Error, ForkPolicy, Host, LockedBox, LockedString, Options, Signal,
};

/// `CREATE_NO_WINDOW`: the child gets a console of its own, without a
/// window (Wine gives it a headless one).
const CREATE_NO_WINDOW: u32 = 0x0800_0000;

/// `STATUS_CONTROL_C_EXIT`: how the default console control handler, and
/// the crate's last wipe on a control event, end the process.
const CONTROL_C_EXIT: u32 = 0xC000_013A;

#[test]
fn a_write_one_byte_past_a_box_is_an_access_violation() {
    let out = child::run("a_write_one_byte_past_a_box_is_an_access_violation", || {
        let b = LockedBox::<[u8; 32]>::new([7; 32]).unwrap();
        let past = end_of(&*b) as *mut u8;
        win::die_of_a_fault_at(past as usize);
        // SAFETY: none; the guard page must stop it.
        unsafe { past.write_volatile(1) };
        println!("the write past the box did not fault");
    });
    child::assert_exit_code(&out, win::ACCESS_VIOLATION);
    assert!(!child::stdout(&out).contains("did not fault"));
}

#[test]
fn a_read_one_byte_past_a_multi_page_box_is_an_access_violation() {
    let out = child::run(
        "a_read_one_byte_past_a_multi_page_box_is_an_access_violation",
        || {
            let b = LockedBox::<[u8; 5000]>::new_zeroed().unwrap();
            let past = end_of(&*b) as *const u8;
            win::die_of_a_fault_at(past as usize);
            // SAFETY: none; the guard page must stop it.
            let byte = unsafe { past.read_volatile() };
            println!("the read past the box did not fault: {byte}");
        },
    );
    child::assert_exit_code(&out, win::ACCESS_VIOLATION);
}

/// The data pages are committed read-write, the pages before and after
/// them are inaccessible (reserved, or committed `PAGE_NOACCESS`) and part
/// of the same reservation: the guards are the crate's, not whatever lies
/// next to its memory.
#[test]
fn virtual_query_shows_noaccess_guards_around_read_write_data() {
    let page = page_size();
    for len in [32, 5000] {
        let b = LockedBox::<[u8]>::new_zeroed_slice(len).unwrap();
        let (start, end) = (start_of(&*b), end_of(&*b));
        assert_eq!(end % page, 0, "{len}: the value ends flush with its page");
        let data = win::region(start);
        assert!(data.read_write(), "{len}: data {data:?}");
        assert!(win::region(end - 1).read_write(), "{len}: last byte");
        let first_page = start & !(page - 1);
        for guard in [first_page - page, end] {
            let g = win::region(guard);
            assert!(g.inaccessible(), "{len}: guard at {guard:#x}: {g:?}");
            assert_eq!(
                g.allocation_base, data.allocation_base,
                "{len}: the guard at {guard:#x} is part of the box's reservation"
            );
        }
    }
}

#[test]
fn a_sealed_box_is_noaccess_and_faults_on_read() {
    let sealed = LockedBox::<[u8; 32]>::new([9; 32]).unwrap().seal().unwrap();
    let at = {
        let r = sealed.borrow();
        let during = win::region(start_of(&*r));
        assert_eq!((during.state, during.protect), (MEM_COMMIT, PAGE_READONLY));
        assert_eq!(*r, [9; 32]);
        start_of(&*r)
    };
    let after = win::region(at);
    assert_eq!((after.state, after.protect), (MEM_COMMIT, PAGE_NOACCESS));
    drop(sealed);

    let out = child::run("a_sealed_box_is_noaccess_and_faults_on_read", || {
        let sealed = LockedBox::<[u8; 32]>::new([9; 32]).unwrap().seal().unwrap();
        let at = start_of(&*sealed.borrow()) as *const u8;
        win::die_of_a_fault_at(at as usize);
        // SAFETY: none; the sealed page must stop it.
        let byte = unsafe { at.read_volatile() };
        println!("the read of a sealed box did not fault: {byte}");
    });
    child::assert_exit_code(&out, win::ACCESS_VIOLATION);
}

/// A dropped box's bytes read as zeros where its slot stays committed (the
/// cache keeps it, read-write), and are gone where it does not; the box
/// that takes the slot again starts from zeros.
#[test]
fn dropped_and_recycled_memory_reads_as_zeros() {
    let mut a = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
    a.fill(0x77);
    let (start, end) = (start_of(&*a), end_of(&*a));
    drop(a);
    let r = win::region(start);
    if r.read_write() {
        for at in start..end {
            // SAFETY: a committed read-write page of this process
            // (VirtualQuery said so just above), read as bytes.
            let byte = unsafe { (at as *const u8).read_volatile() };
            assert_eq!(byte, 0, "byte at {at:#x} after the drop");
        }
    } else {
        assert!(r.inaccessible(), "{r:?}");
    }
    let b = LockedBox::<[u8; 32]>::new_with(|_| {}).unwrap();
    assert_eq!(end_of(&*b), end, "the slot was recycled");
    assert!(b.iter().all(|&x| x == 0), "contents reset");
    assert!(win::region(end).inaccessible(), "trailing guard");
}

/// `is_locked` says the crate's `VirtualLock` succeeded; whether the page
/// is locked is the working set's `Locked` bit. Wine 8's `VirtualLock`
/// succeeds and locks nothing: there the bit is clear, which this asserts
/// (so that a Wine that keeps locks makes this test fail, and be made to
/// prove them); on Windows the bit must be set.
#[test]
fn the_lock_is_asked_for_and_only_windows_keeps_it() {
    let b = LockedBox::<[u8; 32]>::new([1; 32]).unwrap();
    assert!(b.is_locked(), "VirtualLock was called and succeeded");
    assert!(lockedmem::locked_bytes() >= page_size());
    let at = start_of(&*b);
    let flags = win::working_set_flags(at);
    assert_ne!(flags & win::WS_VALID, 0, "in the working set: {flags:#x}");
    assert!(b.residency().unwrap().all_resident());
    if win::under_wine() {
        assert_eq!(
            flags & win::WS_LOCKED,
            0,
            "Wine now reports locked pages ({flags:#x}): assert the lock here"
        );
        eprintln!(
            "NOTE: under Wine, VirtualLock succeeds and locks nothing (the page's Locked bit \
             in QueryWorkingSetEx is clear): the lock itself is not proved here"
        );
    } else {
        assert_ne!(flags & win::WS_LOCKED, 0, "the page is locked: {flags:#x}");
    }
}

#[test]
fn host_reports_the_windows_mechanisms() {
    let host = Host::probe();
    assert_eq!(host.platform, "windows");
    assert_eq!(host.page_size, page_size());
    assert!(host.memlock.soft.is_some_and(|min| min > 0), "{host:?}");
    assert_eq!(host.memlock.hard, None);
    assert_eq!(host.lock_exempt, Some(false));
    assert!(
        host.fork_zeros && host.fork_exclusion,
        "no fork: every view holds"
    );
    assert_eq!(host.secret_memory, Ok(false));
    // WER's excluded blocks: Windows 10 1703 and later, and not Wine (whose
    // kernel32 exports the name from a stub that ends the process).
    assert_eq!(host.dump_exclusion, !win::under_wine(), "{host:?}");
}

/// `DumpPolicy::Exclude` is refused, naming the call, where the system has
/// no `WerRegisterExcludedMemoryBlock`, and honoured where it has it; the
/// default (`BestEffort`) makes the box either way.
#[test]
fn dump_exclusion_is_refused_only_where_wer_is_missing() {
    let excluded = Options::new()
        .dumps(DumpPolicy::Exclude)
        .zeroed::<[u8; 32]>();
    if Host::probe().dump_exclusion {
        excluded.unwrap();
    } else {
        assert!(matches!(
            excluded,
            Err(Error::Unsupported {
                call: "WerRegisterExcludedMemoryBlock",
                ..
            })
        ));
    }
    Options::new()
        .dumps(DumpPolicy::BestEffort)
        .zeroed::<[u8; 32]>()
        .unwrap();
}

#[test]
fn secret_memory_is_refused_and_every_fork_policy_is_moot() {
    assert!(matches!(
        Options::new()
            .backing(Backing::SecretMem)
            .zeroed::<[u8; 32]>(),
        Err(Error::Unsupported {
            call: "memfd_secret",
            ..
        })
    ));
    let preferred = Options::new()
        .backing(Backing::PreferSecretMem)
        .zeroed::<[u8; 32]>()
        .unwrap();
    assert_eq!(preferred.backing(), Backing::Anonymous);
    for fork in [ForkPolicy::Wipe, ForkPolicy::Exclude, ForkPolicy::Keep] {
        let b = Options::new().fork(fork).random::<32>().unwrap();
        assert!(b.is_locked(), "{fork:?}");
    }
}

/// The value is taken out of the environment: gone from it for this
/// process and for a process started afterwards, and non-ASCII text comes
/// through the UTF-16 environment intact.
#[test]
fn a_variable_taken_from_the_environment_is_gone() {
    if child::is_child() {
        // The child of the test below: the variable is not in its
        // environment.
        child::run("a_variable_taken_from_the_environment_is_gone", || {
            assert!(std::env::var_os("LOCKEDMEM_WIN_TOKEN").is_none());
        });
        return;
    }
    // SAFETY: this test alone touches this variable, and no other thread
    // reads the environment meanwhile (only std's functions do, under
    // their lock, and `from_env` uses the system's, which take the PEB's).
    unsafe { std::env::set_var("LOCKEDMEM_WIN_TOKEN", "t0k\u{e9}n-\u{1d11e}") };
    // SAFETY: as above.
    let token = unsafe { LockedString::from_env("LOCKEDMEM_WIN_TOKEN") }.unwrap();
    assert_eq!(&*token, "t0k\u{e9}n-\u{1d11e}");
    assert!(std::env::var_os("LOCKEDMEM_WIN_TOKEN").is_none());
    // SAFETY: as above.
    let again = unsafe { LockedString::from_env("LOCKEDMEM_WIN_TOKEN") };
    assert!(matches!(again, Err(Error::EnvVarNotSet { .. })));
    let out = child::run("a_variable_taken_from_the_environment_is_gone", || {
        assert!(std::env::var_os("LOCKEDMEM_WIN_TOKEN").is_none());
    });
    child::assert_success(&out);
}

/// A value that is no UTF-16 text (an unpaired surrogate) is refused as
/// `InvalidUtf8`, and removed all the same.
#[test]
fn a_variable_that_is_no_text_is_refused_and_removed() {
    use std::os::windows::ffi::OsStringExt;
    let value = std::ffi::OsString::from_wide(&[0x61, 0xD800, 0x62]);
    // SAFETY: as in the test above.
    unsafe { std::env::set_var("LOCKEDMEM_WIN_BAD", &value) };
    // SAFETY: as above.
    let taken = unsafe { LockedString::from_env("LOCKEDMEM_WIN_BAD") };
    assert!(matches!(taken, Err(Error::InvalidUtf8)), "{taken:?}");
    assert!(std::env::var_os("LOCKEDMEM_WIN_BAD").is_none());
}

/// `raw_stdin` reads no further than the line: what follows is still in
/// the pipe for the next reader.
#[test]
fn raw_stdin_reads_a_line_and_leaves_the_rest() {
    const VAR: &str = "LOCKEDMEM_WIN_STDIN_CHILD";
    if std::env::var_os(VAR).is_some() {
        let line = LockedString::read_line(lockedmem::raw_stdin(), 64).unwrap();
        let mut rest = String::new();
        std::io::stdin().read_to_string(&mut rest).unwrap();
        println!("line={}|rest={rest}|", &*line);
        return;
    }
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([
            "raw_stdin_reads_a_line_and_leaves_the_rest",
            "--exact",
            "--nocapture",
        ])
        .env(VAR, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"s3cret\r\nthe rest\n")
        .unwrap();
    let out = c.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("line=s3cret|rest=the rest\n|"), "{stdout}");
}

/// Types `text` into the console of this process, as key events
/// (`WriteConsoleInputW`).
fn type_into_console(text: &str) {
    use windows_sys::Win32::System::Console::{
        INPUT_RECORD, KEY_EVENT, LEFT_CTRL_PRESSED, WriteConsoleInputW,
    };
    let conin = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("CONIN$")
        .unwrap();
    let mut records = Vec::new();
    for unit in text.encode_utf16() {
        for down in [1, 0] {
            // SAFETY: an all-zero INPUT_RECORD is valid plain data.
            let mut r: INPUT_RECORD = unsafe { std::mem::zeroed() };
            r.EventType = u16::try_from(KEY_EVENT).unwrap();
            r.Event.KeyEvent.bKeyDown = down;
            r.Event.KeyEvent.wRepeatCount = 1;
            r.Event.KeyEvent.uChar.UnicodeChar = unit;
            match unit {
                0x0D => r.Event.KeyEvent.wVirtualKeyCode = 0x0D,
                0x03 => {
                    r.Event.KeyEvent.wVirtualKeyCode = u16::from(b'C');
                    r.Event.KeyEvent.dwControlKeyState = LEFT_CTRL_PRESSED;
                }
                _ => {}
            }
            records.push(r);
        }
    }
    let mut written = 0;
    // SAFETY: the records are ours, borrowed for the call.
    let ok = unsafe {
        WriteConsoleInputW(
            conin.as_raw_handle(),
            records.as_ptr(),
            u32::try_from(records.len()).unwrap(),
            &raw mut written,
        )
    };
    assert_ne!(ok, 0, "WriteConsoleInputW");
}

/// The input mode of this process's console, through a handle of our own.
fn console_mode() -> u32 {
    use windows_sys::Win32::System::Console::GetConsoleMode;
    let conin = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("CONIN$")
        .unwrap();
    let mut mode = 0;
    // SAFETY: a console handle of ours; writes one mode into our local.
    let ok = unsafe { GetConsoleMode(conin.as_raw_handle(), &raw mut mode) };
    assert_ne!(ok, 0, "GetConsoleMode");
    mode
}

/// Runs the test `name` again in a child process that has a console of
/// its own (`CREATE_NO_WINDOW`), with `VAR` set; its output.
fn run_with_console(name: &str, var: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, "1")
        .creation_flags(CREATE_NO_WINDOW)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `ENABLE_ECHO_INPUT`.
const ECHO: u32 = 0x4;

/// What a child ends with when its prompt never turned echo off.
const ECHO_NEVER_OFF: u32 = 0xEC0E;

/// Waits until the console's echo is off (the prompt has set it up). A
/// prompt that never turns it off ends the child with [`ECHO_NEVER_OFF`]
/// after ten seconds, rather than leave it waiting for input forever.
fn wait_for_echo_off() {
    for _ in 0..1000 {
        if console_mode() & ECHO == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    eprintln!("the prompt never turned echo off");
    win::terminate(ECHO_NEVER_OFF)
}

/// While the prompt waits, the console's echo is off (read through the
/// test's own handle on another thread, which then types the passphrase);
/// afterwards the mode is what it was.
#[test]
fn the_prompt_turns_echo_off_and_restores_the_mode() {
    const VAR: &str = "LOCKEDMEM_WIN_PROMPT_CHILD";
    if std::env::var_os(VAR).is_some() {
        let before = console_mode();
        assert_ne!(before & ECHO, 0, "echo on to begin with: {before:#x}");
        let typist = std::thread::spawn(|| {
            wait_for_echo_off();
            let during = console_mode();
            type_into_console("pa\u{df}\u{df} w\u{f6}rd\r");
            during
        });
        let pass = lockedmem::prompt_password("Passphrase: ").unwrap();
        let during = typist.join().unwrap();
        assert_eq!(&*pass, "pa\u{df}\u{df} w\u{f6}rd");
        assert_eq!(during & ECHO, 0);
        assert_eq!(console_mode(), before, "the mode is restored");
        println!("prompt ok: echo off while waiting, mode restored");
        return;
    }
    let out = run_with_console("the_prompt_turns_echo_off_and_restores_the_mode", VAR);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("prompt ok"),
        "{}",
        child::describe(&out)
    );
}

/// Ctrl-C while the prompt waits: the crate's control handler restores
/// the mode, then the handlers before it run; the test's own, registered
/// before the prompt, reads the mode and ends the process with what it
/// found.
#[test]
fn ctrl_c_at_the_prompt_restores_the_mode() {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    const VAR: &str = "LOCKEDMEM_WIN_PROMPT_CTRL_C_CHILD";
    const ECHO_ON: u32 = 0xEC40;
    const ECHO_OFF: u32 = 0xEC0F;
    unsafe extern "system" fn seen(_event: u32) -> i32 {
        let code = if console_mode() & ECHO != 0 {
            ECHO_ON
        } else {
            ECHO_OFF
        };
        win::terminate(code)
    }
    if std::env::var_os(VAR).is_some() {
        assert_ne!(console_mode() & ECHO, 0);
        // SAFETY: `seen` has the handler's type.
        assert_ne!(unsafe { SetConsoleCtrlHandler(Some(seen), 1) }, 0);
        std::thread::spawn(|| {
            wait_for_echo_off();
            type_into_console("\u{3}");
        });
        let pass = lockedmem::prompt_password("Passphrase: ");
        println!("the prompt returned: {:?}", pass.map(|p| p.len()));
        return;
    }
    let out = run_with_console("ctrl_c_at_the_prompt_restores_the_mode", VAR);
    assert_eq!(
        win::exit_code(&out),
        Some(ECHO_ON),
        "{}",
        child::describe(&out)
    );
}

/// Ctrl-C in the middle of a line, with a handler of the program's that
/// swallows the event (the process goes on): the prompt fails, and never
/// hands out the part typed before it as the answer. `ReadConsoleW` ends
/// such a read with success and nothing read (`ERROR_OPERATION_ABORTED`),
/// which is no end of the input. Under Wine 8.0 the crate's handler has
/// always run by the time the read returns, so this passes there with or
/// without the check of `ERROR_OPERATION_ABORTED`; on Windows nothing
/// orders the read's return and the handler's thread.
#[test]
fn ctrl_c_swallowed_mid_line_fails_the_prompt() {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    const VAR: &str = "LOCKEDMEM_WIN_PROMPT_SWALLOWED_CHILD";
    unsafe extern "system" fn swallow(_event: u32) -> i32 {
        1
    }
    if std::env::var_os(VAR).is_some() {
        // SAFETY: `swallow` has the handler's type.
        assert_ne!(unsafe { SetConsoleCtrlHandler(Some(swallow), 1) }, 0);
        std::thread::spawn(|| {
            wait_for_echo_off();
            type_into_console("ab\u{3}");
            // If Ctrl-C does not end the read, the line ends here.
            std::thread::sleep(std::time::Duration::from_millis(500));
            type_into_console("cd\r");
        });
        match lockedmem::prompt_password("Passphrase: ") {
            Ok(p) => println!("answer of {} bytes", p.len()),
            Err(e) => println!("prompt failed: {e}"),
        }
        return;
    }
    let out = run_with_console("ctrl_c_swallowed_mid_line_fails_the_prompt", VAR);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("prompt failed"),
        "{}",
        child::describe(&out)
    );
}

/// Without a console, the prompt is `NoTerminal`.
#[test]
fn the_prompt_without_a_console_is_no_terminal() {
    let out = child::run("the_prompt_without_a_console_is_no_terminal", || {
        let e = lockedmem::prompt_password("Passphrase: ").unwrap_err();
        assert!(matches!(e, Error::NoTerminal { .. }), "{e}");
    });
    child::assert_success(&out);
}

#[test]
fn wipe_on_signals_takes_the_console_events_and_refuses_the_rest() {
    lockedmem::wipe_on_signals(&[Signal::INT, Signal::TERM]).unwrap();
    for sig in [Signal::HUP, Signal::QUIT, Signal::USR1, Signal::PWR] {
        assert!(
            matches!(
                lockedmem::wipe_on_signals(&[sig]),
                Err(Error::UnsupportedSignal { .. })
            ),
            "{sig:?}"
        );
    }
}

/// Ctrl-C with `wipe_on_signals(INT)`: the crate's handler wipes and ends
/// the process as the default handler would (`STATUS_CONTROL_C_EXIT`),
/// before any handler registered earlier runs (the test's, which would end
/// it with another code).
#[test]
fn ctrl_c_ends_the_process_through_the_wipe() {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    const VAR: &str = "LOCKEDMEM_WIN_CTRL_C_WIPE_CHILD";
    unsafe extern "system" fn earlier(_event: u32) -> i32 {
        win::terminate(0xBAD)
    }
    if std::env::var_os(VAR).is_some() {
        // SAFETY: `earlier` has the handler's type.
        assert_ne!(unsafe { SetConsoleCtrlHandler(Some(earlier), 1) }, 0);
        lockedmem::wipe_on_signals(&[Signal::INT]).unwrap();
        let _key = LockedBox::<[u8; 32]>::new([5; 32]).unwrap();
        type_into_console("\u{3}");
        std::thread::sleep(std::time::Duration::from_secs(30));
        println!("no control event came");
        return;
    }
    let out = run_with_console("ctrl_c_ends_the_process_through_the_wipe", VAR);
    assert_eq!(
        win::exit_code(&out),
        Some(CONTROL_C_EXIT),
        "{}",
        child::describe(&out)
    );
}

/// A crash (an access violation no handler takes) with `wipe_on_signals`
/// installed: the crate's unhandled-exception filter wipes, then calls the
/// filter installed before it: the test's, which finds the box's page
/// inaccessible, makes it readable, reads it and ends the process with a
/// code that says whether every byte is zero.
#[test]
fn a_crash_wipes_every_box_first() {
    use windows_sys::Win32::System::Diagnostics::Debug::{
        EXCEPTION_POINTERS, SetUnhandledExceptionFilter,
    };
    use windows_sys::Win32::System::Memory::{PAGE_READWRITE, VirtualProtect};
    const VAR: &str = "LOCKEDMEM_WIN_CRASH_CHILD";
    const WIPED: u32 = 0x5AFE;
    const NOT_WIPED: u32 = 0xBAD;
    const STILL_OPEN: u32 = 0x0BE4;
    static BOX_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    unsafe extern "system" fn check(_info: *const EXCEPTION_POINTERS) -> i32 {
        let at = BOX_AT.load(std::sync::atomic::Ordering::SeqCst);
        let r = win::region(at);
        if !r.inaccessible() {
            win::terminate(STILL_OPEN);
        }
        let mut old = 0;
        // SAFETY: the page of the box, which the wipe left inaccessible;
        // made readable to look at it.
        unsafe { VirtualProtect(at as *mut _, 32, PAGE_READWRITE, &raw mut old) };
        // SAFETY: readable now; 32 bytes of the box.
        let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, 32) };
        win::terminate(if bytes.iter().all(|&b| b == 0) {
            WIPED
        } else {
            NOT_WIPED
        })
    }
    if std::env::var_os(VAR).is_some() {
        // SAFETY: `check` has the filter's type.
        unsafe { SetUnhandledExceptionFilter(Some(check)) };
        lockedmem::wipe_on_signals(&[Signal::TERM]).unwrap();
        let key = LockedBox::<[u8; 32]>::new([0x5A; 32]).unwrap();
        BOX_AT.store(start_of(&*key), std::sync::atomic::Ordering::SeqCst);
        let past = end_of(&*key) as *mut u8;
        // SAFETY: none: the crash this test is about.
        unsafe { past.write_volatile(1) };
        println!("no crash");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["a_crash_wipes_every_box_first", "--exact", "--nocapture"])
        .env(VAR, "1")
        .output()
        .unwrap();
    assert_eq!(
        win::exit_code(&out),
        Some(WIPED),
        "{}",
        child::describe(&out)
    );
}

/// `wipe_all_and_abort` ends the process by `__fastfail` (Rust's `abort`).
#[test]
fn wipe_all_and_abort_aborts() {
    let out = child::run("wipe_all_and_abort_aborts", || {
        let _key = LockedBox::<[u8; 32]>::new([3; 32]).unwrap();
        let _sealed = LockedBox::<[u8; 64]>::new([4; 64]).unwrap().seal().unwrap();
        lockedmem::wipe_all_and_abort();
    });
    child::assert_exit_code(&out, win::FAST_FAIL);
}

/// Reads `child`'s stdout up to the line starting with `marker`; the lines
/// before it that start with `prefix`.
fn lines_until(out: &mut impl std::io::BufRead, prefix: &str, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert_ne!(n, 0, "the child ended before {marker:?}: {found:?}");
        let line = line.trim_end();
        if line.starts_with(marker) {
            return found;
        }
        if line.starts_with(prefix) {
            found.push(line.to_owned());
        }
    }
}

/// Another process (the parent) reads the boxes of a child with
/// `ReadProcessMemory`: each box's value while it lives, and zeros where
/// it was once it is dropped. Every shape is read: a page-isolated box, a
/// box of two pages, a packed box. The crate keeps a dropped box's pages
/// committed read-write in its cache (the default), so the read succeeds
/// and shows what the drop left; a page given back to the system would
/// not be readable at all, which the test also accepts, but it requires at
/// least the small boxes to have been read after the drop.
#[test]
fn another_process_reads_zeros_where_a_dropped_box_was() {
    use lockedmem::Isolation;
    const VAR: &str = "LOCKEDMEM_WIN_DROP_CHILD";
    const NAME: &str = "another_process_reads_zeros_where_a_dropped_box_was";
    if std::env::var_os(VAR).is_some() {
        let mut page = LockedBox::<[u8; 32]>::new_zeroed().unwrap();
        page.fill(0xA5);
        let mut two = LockedBox::<[u8]>::new_zeroed_slice(5000).unwrap();
        two.fill(0xA5);
        let mut packed = Options::new()
            .isolation(Isolation::Packed)
            .zeroed::<[u8; 32]>()
            .unwrap();
        packed.fill(0xA5);
        // On a line of its own: libtest's "test ... " has no newline yet.
        println!();
        for (what, at, len) in [
            ("page", start_of(&*page), page.len()),
            ("two-pages", start_of(&*two), two.len()),
            ("packed", start_of(&*packed), packed.len()),
        ] {
            println!("box {what} {at} {len}");
        }
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        drop((page, two, packed));
        println!("dropped");
        std::io::stdin().read_line(&mut line).unwrap();
        return;
    }
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(VAR, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(c.stdout.take().unwrap());
    let boxes: Vec<(String, usize, usize)> = lines_until(&mut stdout, "box ", "ready")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(boxes.len(), 3, "{boxes:?}");
    let child = win::OtherProcess::open(c.id());
    for (what, at, len) in &boxes {
        let bytes = child.read(*at, *len);
        assert_eq!(bytes, Some(vec![0xA5; *len]), "{what}: the live value");
    }
    stdin.write_all(b"drop\n").unwrap();
    lines_until(&mut stdout, "", "dropped");
    for (what, at, len) in &boxes {
        match child.read(*at, *len) {
            Some(bytes) => {
                let left = bytes.iter().filter(|&&b| b != 0).count();
                assert_eq!(left, 0, "{what}: {left} bytes not zero after the drop");
            }
            None => {
                assert!(
                    *len > 32,
                    "{what}: a small box's page stays cached, readable"
                );
                let r = child.region(*at);
                assert!(!r.read_write(), "{what}: unreadable, yet {r:?}");
            }
        }
    }
    stdin.write_all(b"end\n").unwrap();
    drop(stdin);
    let status = c.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `LockPolicy::Require` past `VirtualLock`'s quota (the minimum working
/// set, lowered here with `SetProcessWorkingSetSize` in a child) is
/// `Error::MemlockLimit`, naming `VirtualLock` and the advice to raise the
/// minimum working set or take `BestEffort`; `BestEffort` still makes the
/// box, unlocked. Wine keeps no quota (its `VirtualLock` succeeds and
/// locks nothing): there every box is made, which this asserts and says,
/// so that a Wine that enforces the quota fails here and gets the
/// Windows assertions.
#[test]
fn require_past_the_working_set_quota_is_the_lock_limit() {
    use lockedmem::{LockPolicy, MemlockCall};
    const NAME: &str = "require_past_the_working_set_quota_is_the_lock_limit";
    let out = child::run(NAME, || {
        let page = page_size();
        let (min, max) = (200 * page, 1024 * page);
        win::set_working_set(min, max);
        let opts = Options::new().lock(LockPolicy::Require);
        let tries = min / page + 64;
        let mut boxes = Vec::new();
        let mut refused = None;
        for _ in 0..tries {
            match opts.zeroed::<[u8; 32]>() {
                Ok(b) => boxes.push(b),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        if win::under_wine() {
            assert!(
                refused.is_none(),
                "Wine enforces the quota now: {refused:?}"
            );
            assert_eq!(boxes.len(), tries);
            assert!(boxes.iter().all(|b| b.is_locked()));
            eprintln!(
                "NOTE: under Wine, {tries} locked boxes fit a minimum working set of {min} \
                 bytes: Wine enforces no quota, so the refusal is asserted on Windows only"
            );
            return;
        }
        let e = refused.expect("the quota refused a lock");
        match &e {
            Error::MemlockLimit {
                call: MemlockCall::Secret,
                soft_limit,
                ..
            } => assert_eq!(*soft_limit, Some(min as u64), "{e}"),
            other => panic!("not the lock limit: {other:?}"),
        }
        let msg = e.to_string();
        for advice in [
            "VirtualLock",
            "SetProcessWorkingSetSizeEx",
            "LockPolicy::BestEffort",
        ] {
            assert!(msg.contains(advice), "{advice} missing from: {msg}");
        }
        let b = Options::new()
            .lock(LockPolicy::BestEffort)
            .zeroed::<[u8; 32]>()
            .unwrap();
        assert!(!b.is_locked());
    });
    child::assert_success(&out);
}

/// The doctor's report (examples/doctor.rs, compiled into this test, so
/// that the current doctor runs, never a stale binary) verifies every
/// protection it checks, in a child process as the doctor runs (CI also
/// runs the example itself under Wine).
#[test]
fn the_doctor_verifies_every_protection() {
    let out = child::run("the_doctor_verifies_every_protection", || {
        let mut report = Vec::new();
        let failed = doctor::report(&mut report).unwrap();
        let report = String::from_utf8(report).unwrap();
        println!("{report}");
        assert_eq!(failed, 0, "{report}");
        assert!(report.contains("all protections verified"), "{report}");
    });
    child::assert_success(&out);
}
