//! What `/proc/PID/environ` shows after `LockedString::from_env`: the
//! variable's whole entry is gone, the entries after it moved down (and
//! `environ` with them, so every other variable still reads right), and
//! nothing tells its length:
//!
//! - a single-threaded process without `CAP_SYS_RESOURCE` shrinks the
//!   block (`PR_SET_MM_MAP`): `/proc/self/environ` is exactly the other
//!   entries, and `env_end` in /proc/self/stat moved down by the entry's
//!   length;
//! - with another thread running (and no `CAP_SYS_RESOURCE`), the block
//!   keeps its size: the other entries, then as many zero bytes as the
//!   entry had. That is what remains visible, and this test says so.
//!
//! Each case runs in a child made single-threaded by this harness-less
//! test binary (libtest would run it on a thread of its own).
//!
//! Linux only: it reads `/proc/self/environ` and `/proc/self/stat`; on
//! other systems the binary runs no case.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod linux {
    use std::process::Command;

    use super::common::memscan;
    use lockedmem::LockedString;
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

    const CASE: &str = "LOCKEDMEM_ENV_BLOCK_CASE";
    const NAME: &str = "LOCKEDMEM_TEST_TOKEN";
    const SECOND: &str = "MIDDLE_TOKEN";
    const LEN: usize = 200;

    fn secret_char(i: usize) -> u8 {
        let x = (i as u64 ^ 0x3c6e_f372_fe94_f82b).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        b'a' + ((x >> 40) % 26) as u8
    }

    fn needle() -> memscan::Masked {
        memscan::Masked::from_fn(32, |i| secret_char(40 + i))
    }

    fn environ() -> Vec<u8> {
        std::fs::read("/proc/self/environ").unwrap()
    }

    /// `env_start..env_end` from /proc/self/stat (fields 50 and 51).
    fn env_range() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<u64> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        (f[50 - 3], f[51 - 3])
    }

    fn threads() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap();
        n.trim().parse().unwrap()
    }

    /// `block` without the entries of `names`.
    fn without(block: &[u8], names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in block.split_inclusive(|&b| b == 0) {
            if !names
                .iter()
                .any(|n| entry.starts_with(format!("{n}=").as_bytes()))
            {
                out.extend_from_slice(entry);
            }
        }
        out
    }

    /// What /proc/self/environ shows now without the two variables, and its
    /// whole length; the copy that held the secret is wiped.
    fn before() -> (Vec<u8>, usize) {
        let mut all = environ();
        let kept = without(&all, &[NAME, SECOND]);
        let len = all.len();
        zeroize::Zeroize::zeroize(&mut all);
        (kept, len)
    }

    /// Drops `CAP_SYS_RESOURCE`, with which `PR_SET_MM_ENV_END` would work.
    fn drop_sys_resource() {
        let mut caps = capabilities(None).expect("capget");
        caps.effective.remove(CapabilitySet::SYS_RESOURCE);
        caps.permitted.remove(CapabilitySet::SYS_RESOURCE);
        set_capabilities(None, caps).expect("capset");
    }

    /// Takes the two variables out and checks what every other variable reads.
    fn take_both() -> (LockedString, LockedString) {
        // SAFETY: no other thread touches the environment.
        let token = unsafe { LockedString::from_env(NAME) }.expect("set");
        // SAFETY: as above.
        let middle = unsafe { LockedString::from_env(SECOND) }.expect("set");
        assert_eq!(token.len(), LEN);
        assert_eq!(&*middle, "middle-value");
        // `environ` followed the entries that moved.
        assert_eq!(std::env::var("AAA_BEFORE").unwrap(), "before-value");
        assert_eq!(std::env::var("ZZZ_AFTER").unwrap(), "after-value");
        assert_eq!(std::env::var("ZZZZ_LAST").unwrap(), "last");
        assert!(std::env::var_os(NAME).is_none() && std::env::var_os(SECOND).is_none());
        (token, middle)
    }

    fn single() {
        drop_sys_resource();
        assert_eq!(threads(), 1);
        let (kept, before_len) = before();
        let (start, end) = env_range();
        assert_eq!(before_len as u64, end - start);
        assert_eq!(memscan::count(&needle()), 1, "in the block");
        let (token, _middle) = take_both();
        let after = environ();
        assert_eq!(after, kept, "exactly the other entries: no name, no zeros");
        let (start2, end2) = env_range();
        assert_eq!(start2, start);
        assert_eq!(end2 - start2, after.len() as u64, "env_end moved down");
        assert_eq!(memscan::count(&needle()), 1, "only in locked memory");
        drop(token);
        assert_eq!(memscan::count(&needle()), 0);
    }

    fn threaded() {
        drop_sys_resource();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        assert_eq!(threads(), 2);
        let (kept, before_len) = before();
        let (token, _middle) = take_both();
        let after = environ();
        assert_eq!(after.len(), before_len, "the block keeps its size");
        assert_eq!(&after[..kept.len()], &kept[..], "the other entries first");
        assert!(after[kept.len()..].iter().all(|&b| b == 0), "then zeros");
        // What remains visible: the entries' total length, as zeros at the end.
        let gone = (NAME.len() + 1 + LEN + 1) + (SECOND.len() + 1 + "middle-value".len() + 1);
        assert_eq!(after.len() - kept.len(), gone);
        assert!(!after.windows(NAME.len()).any(|w| w == NAME.as_bytes()));
        assert_eq!(memscan::count(&needle()), 1, "only in locked memory");
        drop(token);
        drop(tx);
        other.join().unwrap().unwrap_err();
    }

    pub(super) fn main() {
        match std::env::var(CASE).as_deref() {
            Ok("single") => return single(),
            Ok("threaded") => return threaded(),
            Ok(other) => panic!("unknown case {other}"),
            Err(_) => {}
        }
        let value: String = (0..LEN).map(|i| secret_char(i) as char).collect();
        let mut failed = 0;
        for case in ["single", "threaded"] {
            // Sorted by name, as std passes them: entries before, between and
            // after the two that are taken out.
            let out = Command::new(std::env::current_exe().unwrap())
                .env_clear()
                .env("AAA_BEFORE", "before-value")
                .env(CASE, case)
                .env(NAME, &value)
                .env(SECOND, "middle-value")
                .env("ZZZ_AFTER", "after-value")
                .env("ZZZZ_LAST", "last")
                .output()
                .unwrap();
            if out.status.success() {
                println!("test {case} ... ok");
            } else {
                failed += 1;
                println!(
                    "test {case} ... FAILED\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        println!(
            "\ntest result: {}. {} passed; {failed} failed",
            if failed == 0 { "ok" } else { "FAILED" },
            2 - failed
        );
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
}
