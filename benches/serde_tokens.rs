//! A token service's start-up: 50,000 random 32-byte tokens, written as hex
//! strings in one JSON object (`{"t00000": "…64 hex digits…", …}`, about
//! 3.8 MB), parsed from a slice with `serde_json::from_slice`:
//!
//! - `locked`: into `HashMap<String, Hex<LockedBox<[u8; 32]>>>` inside
//!   `lockedmem::serde::with_options` with `Isolation::Packed` and
//!   `LockPolicy::BestEffort`, so every token is decoded from the document
//!   straight into a packed box (1,024 or so are locked, the rest go to the
//!   crate's unlocked packed pages);
//! - `plain`: into `HashMap<String, [u8; 32]>`, each value hex-decoded by
//!   the same constant-time decoder (`base16ct`) into an ordinary array:
//!   the baseline.
//!
//! Two more candidates say where the difference goes: `wide`, the plain
//! load with each value padded to the size of a `LockedBox<[u8; 32]>` (the
//! map's bigger entries: more to hash-table memory, more to move when it
//! grows), and `boxes`, the 50,000 packed best-effort boxes made into a
//! `Vec` without any parsing (the allocator's part).
//!
//! All run in a process without CAP_IPC_LOCK under a 64 KiB
//! RLIMIT_MEMLOCK, set before the crate touches memory. Each measurement
//! is a fresh child process (this binary run again with
//! `LOCKEDMEM_BENCH_CHILD` set), so each starts from an empty allocator
//! and an empty limit; each repetition runs every candidate once, in an
//! order that rotates. A child times only its load (the document is built
//! before the clock starts, the result dropped after it stops) and reports
//! it on stdout. Each ratio is the median of the per-repetition ratios to
//! the baseline.
//!
//! `cargo bench --features serde --bench serde_tokens`.

#[cfg(not(unix))]
fn main() {
    eprintln!(
        "serde_tokens runs under a 64 KiB RLIMIT_MEMLOCK, which only Unix has: nothing to run on this platform"
    );
}

#[cfg(unix)]
fn main() {
    bench::main();
}

#[cfg(unix)]
#[path = "common/limit.rs"]
mod limit;

/// The bench itself (Unix).
#[cfg(unix)]
mod bench {
    use std::collections::HashMap;
    use std::fmt;
    use std::hint::black_box;
    use std::process::Command;
    use std::time::Instant;

    use super::limit::limit_to_64_kib;
    use lockedmem::serde::{Hex, with_options};
    use lockedmem::{Isolation, LockPolicy, LockedBox, Options};
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    const TOKENS: usize = 50_000;
    const REPS: usize = 21;
    const VAR: &str = "LOCKEDMEM_BENCH_CHILD";

    /// The JSON document: `TOKENS` pseudo-random tokens (splitmix64), as hex.
    fn document() -> Vec<u8> {
        let mut state = 0x5eed_0f70_6b65_6e00_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut doc = Vec::with_capacity(TOKENS * 80);
        doc.push(b'{');
        for i in 0..TOKENS {
            if i > 0 {
                doc.push(b',');
            }
            doc.extend_from_slice(format!("\"t{i:05}\":\"").as_bytes());
            for _ in 0..4 {
                doc.extend_from_slice(format!("{:016x}", next()).as_bytes());
            }
            doc.push(b'"');
        }
        doc.push(b'}');
        doc
    }

    /// A plain `[u8; 32]` from hex, for the baseline.
    struct PlainHex([u8; 32]);

    impl<'de> Deserialize<'de> for PlainHex {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = PlainHex;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("64 hex digits")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<PlainHex, E> {
                    let mut out = [0u8; 32];
                    match base16ct::mixed::decode(v, &mut out) {
                        Ok(d) if d.len() == 32 && v.len() == 64 => Ok(PlainHex(out)),
                        _ => Err(E::custom("not 64 hex digits")),
                    }
                }
            }
            d.deserialize_str(V)
        }
    }

    fn packed_best_effort() -> Options {
        Options::new()
            .isolation(Isolation::Packed)
            .lock(LockPolicy::BestEffort)
    }

    /// A value as large as a `LockedBox<[u8; 32]>`: the plain load with the
    /// locked load's map entries.
    struct Wide(PlainHex, [u8; size_of::<LockedBox<[u8; 32]>>() - 32]);

    impl<'de> Deserialize<'de> for Wide {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            PlainHex::deserialize(d).map(|p| Wide(p, [0; size_of::<LockedBox<[u8; 32]>>() - 32]))
        }
    }

    /// The candidates: what each child does, and how the table names it.
    const KINDS: [(&str, &str); 4] = [
        (
            "locked",
            "`HashMap<String, Hex<LockedBox<[u8; 32]>>>`, packed, best effort",
        ),
        ("plain", "`HashMap<String, [u8; 32]>` (the baseline)"),
        (
            "wide",
            "`HashMap<String, [u8; 32]>` padded to a box's size (part: map entries)",
        ),
        (
            "boxes",
            "50,000 packed best-effort boxes alone, no parsing (part: the boxes)",
        ),
    ];

    /// Does one candidate; prints the nanoseconds and how many tokens are
    /// locked.
    fn child(kind: &str) {
        limit_to_64_kib();
        let doc = document();
        let opts = packed_best_effort();
        // One box first, so process-wide set-up is not timed.
        drop(opts.zeroed::<[u8; 32]>().expect("a first box"));
        let (ns, locked) = match kind {
            "locked" => {
                let start = Instant::now();
                let map: HashMap<String, Hex<LockedBox<[u8; 32]>>> =
                    with_options(&opts, || serde_json::from_slice(black_box(&doc))).expect("parse");
                let ns = start.elapsed().as_nanos();
                assert_eq!(map.len(), TOKENS);
                let locked = map.values().filter(|b| b.is_locked()).count();
                black_box(&map);
                (ns, locked)
            }
            "plain" => {
                let start = Instant::now();
                let map: HashMap<String, PlainHex> =
                    serde_json::from_slice(black_box(&doc)).expect("parse");
                let ns = start.elapsed().as_nanos();
                assert_eq!(map.len(), TOKENS);
                black_box(map.values().map(|t| t.0[0]).fold(0, u8::wrapping_add));
                (ns, 0)
            }
            "wide" => {
                let start = Instant::now();
                let map: HashMap<String, Wide> =
                    serde_json::from_slice(black_box(&doc)).expect("parse");
                let ns = start.elapsed().as_nanos();
                assert_eq!(map.len(), TOKENS);
                black_box(
                    map.values()
                        .map(|t| t.0.0[0] ^ t.1[0])
                        .fold(0, u8::wrapping_add),
                );
                (ns, 0)
            }
            "boxes" => {
                let start = Instant::now();
                let boxes: Vec<_> = (0..TOKENS)
                    .map(|_| opts.zeroed::<[u8; 32]>().expect("box"))
                    .collect();
                let ns = start.elapsed().as_nanos();
                let locked = boxes.iter().filter(|b| b.is_locked()).count();
                black_box(&boxes);
                (ns, locked)
            }
            _ => panic!("unknown child {kind}"),
        };
        println!("{ns} {locked}");
    }

    /// Runs one child; its nanoseconds and locked count.
    fn run(kind: &str) -> (f64, usize) {
        let exe = std::env::current_exe().expect("current_exe");
        let out = Command::new(exe)
            .env(VAR, kind)
            .output()
            .expect("run the bench again");
        assert!(out.status.success(), "{kind} child: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut words = text.split_whitespace();
        let ns = words.next().and_then(|w| w.parse().ok()).expect("ns");
        let locked = words.next().and_then(|w| w.parse().ok()).expect("locked");
        (ns, locked)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub(super) fn main() {
        if let Ok(kind) = std::env::var(VAR) {
            return child(&kind);
        }
        if std::env::args().any(|a| a == "--list") {
            return; // cargo bench --list
        }
        let n = KINDS.len();
        let mut times = vec![Vec::new(); n];
        let mut ratios = vec![Vec::new(); n];
        let mut locked = vec![0; n];
        for rep in 0..REPS {
            let mut ns = vec![0.0; n];
            for k in 0..n {
                let i = (rep + k) % n; // the order rotates
                let (t, l) = run(KINDS[i].0);
                ns[i] = t;
                locked[i] = l;
            }
            for i in 0..n {
                times[i].push(ns[i] / 1e6);
                ratios[i].push(ns[i] / ns[1]);
            }
        }
        let ratio = median(ratios[0].clone());
        let verdict = if ratio <= 2.0 { "met" } else { "**missed**" };
        println!();
        println!(
            "{TOKENS} hex tokens from one JSON slice (about {} MB), 64 KiB RLIMIT_MEMLOCK, no \
         CAP_IPC_LOCK, {REPS} repetitions of one child process per candidate in rotating \
         order, medians",
            document().len() / 100_000 / 10
        );
        println!();
        println!("| candidate | time (ms) | locked | ratio to the baseline |");
        println!("| --- | ---: | ---: | ---: |");
        for i in 0..n {
            let note = if i == 0 {
                format!(" (target <= 2 x: {verdict})")
            } else {
                String::new()
            };
            println!(
                "| {} | {:.1} | {} | {:.2} x{note} |",
                KINDS[i].1,
                median(times[i].clone()),
                locked[i],
                median(ratios[i].clone())
            );
        }
    }
}
