//! A secret taken out of the environment lives only in locked memory: a
//! scan of the child's whole memory finds it once, and its environment
//! block (`/proc/self/environ`) and `std::env` no longer have it.

mod common;

use std::process::Command;

use common::{child, memscan};
use lockedbox::{Error, LockedString};

const CHILD: &str = "LOCKEDBOX_ENV_TEST_CHILD";
const NAME: &str = "LOCKEDBOX_TEST_API_TOKEN";

fn secret_char(i: usize) -> u8 {
    let x = (i as u64 ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    b'A' + ((x >> 40) % 26) as u8
}

fn needle(from: usize) -> memscan::Masked {
    memscan::Masked::from_fn(32, |i| secret_char(from + i))
}

#[test]
fn a_secret_moves_out_of_the_environment() {
    if std::env::var_os(CHILD).is_some() {
        assert_eq!(memscan::count(&needle(0)), 1, "in the environment block");
        // SAFETY: this child runs one test on one thread; nothing else
        // touches the environment.
        let token = unsafe { LockedString::from_env(NAME) }.expect("the variable is set");
        assert_eq!(token.len(), 200);
        assert!(token.is_locked());
        assert!(std::env::var_os(NAME).is_none(), "removed");
        let environ = std::fs::read("/proc/self/environ").unwrap();
        let holds_value = environ
            .windows(16)
            .any(|w| w.iter().enumerate().all(|(k, &b)| b == secret_char(k)));
        assert!(!holds_value, "the value is gone from /proc/self/environ");
        for from in [0, 100, 168] {
            assert_eq!(
                memscan::count(&needle(from)),
                1,
                "only in locked memory ({from})"
            );
        }
        drop(token);
        assert_eq!(memscan::count(&needle(0)), 0, "wiped");
        // SAFETY: as above.
        let missing = unsafe { LockedString::from_env(NAME) };
        assert!(matches!(missing, Err(Error::EnvVarNotSet { .. })));
        std::process::exit(0);
    }
    let value: String = (0..200).map(|i| secret_char(i) as char).collect();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_secret_moves_out_of_the_environment",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(NAME, value)
        .output()
        .unwrap();
    child::assert_success(&out);
}
