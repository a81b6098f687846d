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
pub fn smaps() -> Vec<Vma> {
    let text = fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut vmas: Vec<Vma> = Vec::new();
    for line in text.lines() {
        if let Some(vma) = parse_header(line) {
            vmas.push(vma);
            continue;
        }
        let Some(vma) = vmas.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            vma.flags = rest.split_whitespace().map(str::to_owned).collect();
        } else if let Some(rest) = line.strip_prefix("Locked:") {
            vma.locked_kb = kb(rest);
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            vma.rss_kb = kb(rest);
        }
    }
    vmas
}

/// `start-end perms offset dev inode [path]`, the header of each smaps entry
/// and each line of /proc/self/maps.
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

fn kb(field: &str) -> u64 {
    field
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The VMA holding `addr`, if any.
pub fn vma_at(addr: usize) -> Option<Vma> {
    smaps().into_iter().find(|v| v.contains(addr))
}

/// Permissions of the mapping holding `addr`, from /proc/self/maps.
pub fn perms_at(addr: usize) -> Option<String> {
    let text = fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .filter_map(parse_header)
        .find(|v| v.contains(addr))
        .map(|v| v.perms)
}

/// Number of mappings (VMAs) of this process: lines of /proc/self/maps.
pub fn mapping_count() -> usize {
    fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// Anonymous mappings marked `MADV_DONTDUMP` (VmFlags `dd`, without the
/// `pf` of the kernel's own [vvar] pages): this crate's slabs and mappings,
/// and nothing the allocator or the thread library makes, so the count does
/// not move with malloc's own mappings.
pub fn dontdump_mapping_count() -> usize {
    smaps()
        .iter()
        .filter(|v| v.has("dd") && !v.has("pf"))
        .count()
}

/// `VmLck` from /proc/self/status, in kB: memory this process has mlocked.
pub fn vm_lck_kb() -> u64 {
    status_kb("VmLck:")
}

/// `VmSize` from /proc/self/status, in kB: every mapping of this process.
pub fn vm_size_kb() -> u64 {
    status_kb("VmSize:")
}

fn status_kb(key: &str) -> u64 {
    let text = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(kb)
        .unwrap_or_else(|| panic!("{key} missing from /proc/self/status"))
}
