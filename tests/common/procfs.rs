//! The kernel's own view of this process, read from /proc, written
//! independently of the crate so that tests do not trust its bookkeeping.
//! Shared by the tests and `examples/doctor.rs` (through `#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::fs;

/// One virtual memory area from /proc/self/smaps.
#[derive(Debug, Clone)]
pub struct Vma {
    pub start: usize,
    pub end: usize,
    /// Permissions as in /proc/self/maps, such as `rw-p` or `---p`.
    pub perms: String,
    /// Two-letter VmFlags such as `lo` (locked), `dd` (don't dump),
    /// `wf` (wipe on fork), `dc` (don't copy on fork).
    pub flags: Vec<String>,
    /// `Locked:` in kB.
    pub locked_kb: u64,
    /// `Rss:` in kB.
    pub rss_kb: u64,
    /// What is mapped (empty for anonymous memory), such as
    /// `/secretmem (deleted)`.
    pub path: String,
}

impl Vma {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn contains(&self, addr: usize) -> bool {
        (self.start..self.end).contains(&addr)
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Every VMA of this process, in address order.
///
/// # Panics
///
/// If /proc/self/smaps cannot be read, or holds a line this parser does not
/// understand, or a VMA without its `VmFlags`, `Locked` or `Rss` line: a
/// missing field read as "no flag" or "0 kB" would let an assertion that
/// something is *not* locked or *not* resident pass whatever the truth.
pub fn smaps() -> Vec<Vma> {
    let text = fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    // Which of VmFlags, Locked, Rss each VMA had.
    let mut vmas: Vec<(Vma, [bool; 3])> = Vec::new();
    for line in text.lines() {
        if let Some(vma) = parse_header(line) {
            vmas.push((vma, [false; 3]));
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("neither a VMA nor a field line in smaps: {line:?}"));
        let (vma, seen) = vmas
            .last_mut()
            .unwrap_or_else(|| panic!("a field line before the first VMA in smaps: {line:?}"));
        match key {
            "VmFlags" => {
                vma.flags = value.split_whitespace().map(str::to_owned).collect();
                seen[0] = true;
            }
            "Locked" => {
                vma.locked_kb = kb(value);
                seen[1] = true;
            }
            "Rss" => {
                vma.rss_kb = kb(value);
                seen[2] = true;
            }
            _ => {}
        }
    }
    assert!(!vmas.is_empty(), "no VMA in /proc/self/smaps");
    vmas.into_iter()
        .map(|(vma, seen)| {
            assert_eq!(
                seen, [true; 3],
                "a VMA without its VmFlags, Locked or Rss line in smaps: {vma:?}"
            );
            vma
        })
        .collect()
}

/// `start-end perms offset dev inode [path]`, the header of each smaps entry
/// and each line of /proc/self/maps; `None` for anything else (a field line
/// of smaps).
fn parse_header(line: &str) -> Option<Vma> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let path = fields.skip(3).collect::<Vec<_>>().join(" ");
    Some(Vma {
        start,
        end,
        perms: perms.to_owned(),
        flags: Vec::new(),
        locked_kb: 0,
        rss_kb: 0,
        path,
    })
}

/// Every line of /proc/self/maps, each of which must parse: a line skipped
/// would make `perms_at` answer "not mapped" for memory that is. Lighter
/// than `smaps` (no flags, no sizes).
pub fn maps() -> Vec<Vma> {
    let text = fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .map(|l| parse_header(l).unwrap_or_else(|| panic!("a line of /proc/self/maps: {l:?}")))
        .collect()
}

/// A size field of /proc such as `    4 kB`, in kB.
///
/// # Panics
///
/// If the field is not a number of kB: never read as 0.
fn kb(field: &str) -> u64 {
    let digits = field
        .trim()
        .strip_suffix("kB")
        .unwrap_or_else(|| panic!("a size in kB in /proc: {field:?}"));
    digits
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("a size in kB in /proc: {field:?}: {e}"))
}

/// The VMA holding `addr`, if any.
pub fn vma_at(addr: usize) -> Option<Vma> {
    smaps().into_iter().find(|v| v.contains(addr))
}

/// Permissions of the mapping holding `addr`, from /proc/self/maps.
pub fn perms_at(addr: usize) -> Option<String> {
    maps()
        .into_iter()
        .find(|v| v.contains(addr))
        .map(|v| v.perms)
}

/// Number of mappings (VMAs) of this process: lines of /proc/self/maps.
pub fn mapping_count() -> usize {
    maps().len()
}

/// `vm.max_map_count`: how many mappings a process may have.
pub fn max_map_count() -> usize {
    let text = fs::read_to_string("/proc/sys/vm/max_map_count").expect("read vm.max_map_count");
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("vm.max_map_count {text:?}: {e}"))
}

/// `VmLck` from /proc/self/status, in kB: memory this process has mlocked.
pub fn vm_lck_kb() -> u64 {
    status_kb("VmLck:")
}

/// `VmLck` in bytes.
pub fn vm_lck_bytes() -> usize {
    usize::try_from(vm_lck_kb() * 1024).expect("VmLck fits a usize")
}

/// `VmSize` from /proc/self/status, in kB: every mapping of this process.
pub fn vm_size_kb() -> u64 {
    status_kb("VmSize:")
}

/// The field `key` (such as `VmHWM:`) of /proc/self/status, in kB.
///
/// # Panics
///
/// If the field is missing or not a size in kB.
pub fn status_kb(key: &str) -> u64 {
    let text = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(kb)
        .unwrap_or_else(|| panic!("{key} missing from /proc/self/status"))
}
