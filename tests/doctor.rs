//! The doctor (`cargo run --example doctor`, the README's first command)
//! runs here and its report is compared with the API: every section names
//! public items that exist (this file names each of them in code, so a
//! removed or renamed item fails to compile here), every public item the
//! doctor is meant to cover has its section, every field of `Host`,
//! `ProcessState` and `Stats` (read from their `Debug` form at run time, so
//! a field added later is caught too) has its line, the host lines say what
//! `Host::probe` says, every protection check passes, and no line claims
//! what the crate no longer does.
//!
//! The report is the example's own `report` function, compiled into this
//! test from examples/doctor.rs: the test always runs the current doctor,
//! never a stale binary, and needs no `cargo run`. It runs in a child
//! process, as the doctor does: it counts VmLck and mappings, which other
//! tests' boxes would move.
// Linux only: runs the doctor, which reads /proc; reads /proc (common::procfs:
// smaps VmFlags, maps, status).
#![cfg(target_os = "linux")]

mod common;

// The example's `main` is not called here, and its copy of
// tests/common/procfs.rs is the same file as `common::procfs`.
#[allow(dead_code, unreachable_pub, clippy::duplicate_mod)]
#[path = "../examples/doctor.rs"]
mod doctor;

use common::child;
use lockedmem::{Backing, Hardening, Host, Isolation, LockedBox};

/// The public items the doctor's sections name, each with a path to it that
/// only compiles while it exists (the functions are never called).
fn public_items() -> Vec<(&'static str, fn())> {
    vec![
        ("Host::probe", || {
            let _ = Host::probe;
        }),
        ("Hardening::current", || {
            let _ = Hardening::current;
        }),
        ("LockedBox", || {
            let _ = LockedBox::<[u8; 32]>::new_zeroed;
        }),
        ("Isolation::Page", || {
            let _ = Isolation::Page;
        }),
        ("Isolation::Packed", || {
            let _ = Isolation::Packed;
        }),
        ("Backing::SecretMem", || {
            let _ = Backing::SecretMem;
        }),
        ("stats", || {
            let _ = lockedmem::stats;
        }),
        ("trim", || {
            let _ = lockedmem::trim;
        }),
        ("wipe_on_signals", || {
            let _ = || lockedmem::wipe_on_signals(&[libc::SIGTERM]);
        }),
        ("wipe_on_panic", || {
            let _ = lockedmem::wipe_on_panic;
        }),
        ("wipe_all_and_abort", || {
            let _ = lockedmem::wipe_all_and_abort;
        }),
    ]
}

/// The field names of a struct's derived `Debug` form, `Name { a: .., b: .. }`,
/// at the top level (nested structs' fields left out).
fn debug_fields(debug: &str) -> Vec<String> {
    let inner = debug
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map(|(inner, _)| inner)
        .unwrap_or_else(|| panic!("not a struct's Debug form: {debug}"));
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&inner[start..]);
    let names: Vec<String> = fields
        .iter()
        .filter_map(|f| f.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name != "..")
        .collect();
    assert!(!names.is_empty(), "no field in {debug}");
    names
}

/// The report's sections: title line, then its lines.
fn sections(report: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in report.lines() {
        if let Some(title) = line.strip_prefix("== ").and_then(|l| l.strip_suffix(" ==")) {
            sections.push((title.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line.to_owned());
        } else {
            panic!("a line before the first section: {line:?}");
        }
    }
    sections
}

/// The public items a section title names: `what (A, B::c)`.
fn items_of(title: &str) -> Vec<String> {
    let inside = title
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("section {title:?} names no public item in parentheses"));
    inside.split(", ").map(str::to_owned).collect()
}

/// The section whose title starts with `what`, and its lines.
fn section<'a>(all: &'a [(String, Vec<String>)], what: &str) -> &'a [String] {
    &all.iter()
        .find(|(title, _)| title.starts_with(what))
        .unwrap_or_else(|| panic!("no section {what:?} in the report"))
        .1
}

/// The text of the line of `lines` labelled `name` (its first word).
fn field<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| {
            l.strip_prefix(name)
                .filter(|rest| rest.starts_with(' '))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no line for {name} in {lines:#?}"))
}

/// Words that mark a claim of something the crate does not do (yet): the
/// doctor once said "memfd_secret yes (probed only: boxes do not use it
/// yet)" long after boxes did.
const STALE: [&str; 6] = [
    "probed only",
    "not use it",
    "not used",
    "not yet",
    " yet)",
    "TODO",
];

#[test]
fn the_doctor_reports_the_api_as_it_is_and_verifies_every_protection() {
    let out = child::run(
        "the_doctor_reports_the_api_as_it_is_and_verifies_every_protection",
        || {
            let mut buf = Vec::new();
            let failed = doctor::report(&mut buf).expect("the report writes to a Vec");
            let report = String::from_utf8(buf).expect("the report is UTF-8");
            print!("{report}");
            assert_eq!(failed, 0, "expected every protection verified on this host");
            assert!(report.ends_with("all protections verified\n"));

            // Every section names public items that exist, and every item
            // the doctor covers has a section.
            let all = sections(&report);
            let known = public_items();
            for (name, _) in &known {
                assert!(
                    all.iter()
                        .any(|(t, _)| items_of(t).iter().any(|i| i == name)),
                    "no section of the doctor names {name}"
                );
            }
            for (title, _) in &all {
                for item in items_of(title) {
                    assert!(
                        known.iter().any(|(name, _)| *name == item),
                        "section {title:?} names {item:?}, which this test does not know as a \
                         public item of the crate"
                    );
                }
            }

            // Every field of Host, ProcessState and Stats has its line.
            let host = Host::probe();
            let host_lines: Vec<String> =
                [section(&all, "host "), section(&all, "core dumps ")].concat();
            for name in debug_fields(&format!("{host:?}")) {
                field(&host_lines, &name);
            }
            let state = Hardening::current().expect("Hardening::current");
            let hardening = section(&all, "process hardening");
            for name in debug_fields(&format!("{state:?}")) {
                field(hardening, &name);
            }
            let stats = format!("{:?}", lockedmem::stats());
            let stats_lines: Vec<&str> = report
                .lines()
                .filter(|l| l.starts_with("stats(): "))
                .collect();
            assert_eq!(
                stats_lines.len(),
                2,
                "stats() after the boxes and after trim"
            );
            for name in debug_fields(&stats) {
                for line in &stats_lines {
                    assert!(
                        line.contains(&format!(" {name} ")),
                        "stats() field {name} missing from {line}"
                    );
                }
            }

            // The host lines say what Host::probe says.
            let host_section = section(&all, "host ");
            assert!(
                field(host_section, "page_size").starts_with(&format!("{} bytes", host.page_size))
            );
            for (name, on) in [
                ("dump_exclusion", host.dump_exclusion),
                ("fork_zeros", host.fork_zeros),
                ("fork_exclusion", host.fork_exclusion),
            ] {
                let text = field(host_section, name);
                assert!(
                    text.starts_with(if on { "yes:" } else { "NO:" }),
                    "{name} is {on} but the doctor says {text:?}"
                );
            }
            if !host.dump_exclusion {
                // Where boxes cannot be kept out of a core file, the doctor
                // names the defence, and checks that no box claims it.
                assert!(
                    field(host_section, "dump_exclusion").contains("Hardening::no_core_dumps"),
                    "{host_section:#?}"
                );
                assert!(
                    report.contains("[ ok ] not left out of core dumps (no dd)"),
                    "{report}"
                );
            }
            let cap = field(host_section, "lock_exempt");
            assert_eq!(
                cap.starts_with("yes:"),
                host.lock_exempt == Some(true),
                "{cap}"
            );
            let secret = field(host_section, "secret_memory");
            let secret_box = section(&all, "a secret-memory box");
            if host.secret_memory == Ok(true) {
                assert!(
                    secret.starts_with("yes:") && secret.contains("Backing::SecretMem"),
                    "{secret}"
                );
                // And a box of it was made and checked.
                assert!(
                    secret_box.iter().any(|l| l.contains("backing: SecretMem")),
                    "{secret_box:#?}"
                );
                assert!(
                    secret_box
                        .iter()
                        .filter(|l| l.starts_with("[ ok ]"))
                        .count()
                        >= 3,
                    "{secret_box:#?}"
                );
            } else {
                assert!(secret.starts_with("no:"), "{secret}");
            }

            // No line claims what the crate does not do.
            for line in report.lines() {
                for stale in STALE {
                    assert!(!line.contains(stale), "stale claim {stale:?} in {line:?}");
                }
            }
        },
    );
    child::assert_success(&out);
    print!("{}", child::stdout(&out));
}

#[test]
fn debug_fields_reads_the_top_level_fields_of_a_debug_form() {
    assert_eq!(
        debug_fields("S { a: 1, b: Some(T { x: 2, y: 3 }), c: Err(NotFound), d: [1, 2] }"),
        ["a", "b", "c", "d"]
    );
    assert_eq!(debug_fields("S { a: 1, .. }"), ["a"]);
}
