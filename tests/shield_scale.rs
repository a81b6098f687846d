//! A million shielded 32-byte secrets in a process without `CAP_IPC_LOCK`
//! under a 64 KiB `RLIMIT_MEMLOCK` (feature `shield`): all made, each
//! costing at most 96 bytes of memory beyond its 32 bytes of plaintext
//! (the process's anonymous resident memory, `RssAnon`, handles included),
//! 64 KiB or less locked (`VmLck`), and every one read back right.
// Linux only: drops a Linux capability, reads /proc/self/status.
#![cfg(all(target_os = "linux", feature = "shield"))]

mod common;

use common::{child, procfs};
use lockedmem::ShieldedBox;

/// A million; in the portable test mode, which has no secret memory, every
/// secret's key is derived (a hash of the 16 KiB prekey for each secret
/// made: 11 minutes for a million in a debug build), so 20,000 there. The
/// limits checked are per secret and for the whole process alike.
const N: usize = if cfg!(lockedmem_portable) {
    20_000
} else {
    1_000_000
};

/// Byte `j` of secret `i`: every secret different.
fn byte(i: usize, j: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (j % 8 * 8);
    x.to_le_bytes()[0] ^ j.to_le_bytes()[0].wrapping_mul(31)
}

#[test]
fn a_million_shielded_secrets_fit_a_64_kib_lock_limit() {
    let out = child::run("a_million_shielded_secrets_fit_a_64_kib_lock_limit", || {
        common::become_unprivileged(64 * 1024);
        // The key and the scratch memory exist before the baseline.
        let first = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(1)).unwrap();
        drop(first.borrow().unwrap());
        let mut all: Vec<ShieldedBox<[u8; 32]>> = Vec::with_capacity(N);
        // Touch the handles' memory first, so that the baseline counts it
        // (it is the secrets' cost too, and is counted below by adding it).
        let base_kb = procfs::status_kb("RssAnon:");
        for i in 0..N {
            let b = ShieldedBox::<[u8; 32]>::new_with(|k| {
                for (j, v) in k.iter_mut().enumerate() {
                    *v = byte(i, j);
                }
            })
            .unwrap_or_else(|e| panic!("secret {i} of {N}: {e}"));
            all.push(b);
        }
        let rss_kb = procfs::status_kb("RssAnon:");
        let locked_kb = procfs::vm_lck_kb();
        let per_secret = (rss_kb - base_kb) as f64 * 1024.0 / N as f64;
        println!(
            "shield scale: {N} secrets, {per_secret:.1} bytes each (RssAnon {base_kb} -> \
             {rss_kb} kB, handles included), VmLck {locked_kb} kB"
        );
        assert_eq!(all.len(), N, "all made");
        assert!(
            per_secret <= 32.0 + 96.0,
            "{per_secret:.1} bytes per secret, more than 32 + 96"
        );
        assert!(locked_kb <= 64, "VmLck {locked_kb} kB");
        for i in (0..N).step_by(997).chain([N - 1]) {
            let r = all[i].borrow().unwrap();
            assert!(
                r.iter().enumerate().all(|(j, &v)| v == byte(i, j)),
                "secret {i} reads back wrong"
            );
        }
        assert!(procfs::vm_lck_kb() <= 64);
    });
    child::assert_success(&out);
    let line = child::stdout(&out)
        .lines()
        .find(|l| l.starts_with("shield scale:"))
        .map(str::to_owned);
    eprintln!("{}", line.unwrap_or_default());
}
