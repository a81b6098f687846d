//! Looking for secrets in a process's memory from outside the crate: every
//! mapping of this process (through /proc/self/mem) or of a thread of
//! another one (through /proc/PID/task/TID/mem, as its ptrace tracer), in
//! one scan loop ([`scan`]) that hands each window of memory to the
//! matchers:
//!
//! - whole copies of each secret and 16-byte fragments of it (a vector
//!   register saved in a signal frame holds 16, 32 or 64 bytes of what the
//!   interrupted code copied, at any offset of the secret);
//! - the XSAVE areas of x86-64 signal frames (`FP_XSTATE_MAGIC1` at byte
//!   464, its size and `FP_XSTATE_MAGIC2` right after the area), with the
//!   register bytes that are not zero.
//!
//! The secrets are kept XOR-masked ([`Masked`]) and compared byte by byte
//! under the mask, so the scan itself never makes a copy of what it looks
//! for; what it reads of this process's memory is wiped when it is done.
//!
//! A mapping the kernel will not let a tracer read is a failure, except
//! the kernel's own (`[vvar]`, `[vvar_vclock]`, `[vsyscall]`) and secret
//! memory (`/secretmem`), which nothing but the process itself can read:
//! [`scan`] lists it in [`Report::secretmem`] and the simple counts
//! ([`count`], [`count_in`]) refuse it, so that no scan passes by not
//! having looked. A mapping that went away between the maps listing and its
//! reading is skipped (it no longer holds anything).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

/// The mask the needles are kept under.
pub const MASK: u8 = 0x5a;
const MASK_WORD: u64 = u64::from_ne_bytes([MASK; 8]);

/// The shortest run of a secret's bytes that counts as a fragment.
pub const FRAGMENT: usize = 16;

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;
/// Bytes each window shares with the next, so that a match (a secret, an
/// XSAVE area) that starts in one window is seen whole there.
const OVERLAP: usize = 64 * 1024;

/// A secret (a needle) kept under [`MASK`].
pub struct Masked(Vec<u8>);

impl Masked {
    /// From a generator of the needle's bytes (never materialised unmasked).
    pub fn from_fn(len: usize, mut byte: impl FnMut(usize) -> u8) -> Masked {
        Masked((0..len).map(|i| byte(i) ^ MASK).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `byte` is the needle's byte `i`.
    fn is(&self, i: usize, byte: u8) -> bool {
        self.0[i] == byte ^ MASK
    }
}

/// Whose memory a scan reads.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// This process, through /proc/self/mem.
    Own,
    /// Thread `tid` of process `pid`, through /proc/PID/task/TID/mem (the
    /// thread's view works while the process exits and its main thread is
    /// gone).
    Thread { pid: i32, tid: i32 },
}

impl Target {
    fn dir(self) -> String {
        match self {
            Target::Own => "/proc/self".into(),
            Target::Thread { pid, tid } => format!("/proc/{pid}/task/{tid}"),
        }
    }
}

/// An x86-64 XSAVE area found in memory: a signal frame's saved registers.
#[derive(Debug, Clone)]
pub struct Frame {
    pub addr: usize,
    /// `xstate_size`: the area's bytes.
    pub size: usize,
    /// The data registers saved in the area that are not zero, by XSAVE
    /// component (0: x87 `st0`-`st7`, 1: SSE `xmm0`-`xmm15`, 2: the upper
    /// halves of `ymm0`-`ymm15`, 6: the upper halves of `zmm0`-`zmm15`,
    /// 7: `zmm16`-`zmm31`, ...), each with the offset of its first
    /// non-zero byte. Control and status words (x87 and SSE control,
    /// AVX-512 opmasks, PKRU) hold no data and are not looked at; a
    /// component the area's `XSTATE_BV` marks as not saved is stale stack,
    /// not registers (a secret there is still found as a fragment).
    pub dirty: Vec<(u32, usize)>,
    /// Which needles have a fragment inside the area.
    pub holds: Vec<usize>,
    /// The maps line of the mapping the area is in.
    pub mapping: String,
}

impl Frame {
    pub fn is_scrubbed(&self) -> bool {
        self.dirty.is_empty()
    }
}

/// A run of at least [`FRAGMENT`] bytes of a needle, found in memory.
#[derive(Debug, Clone)]
pub struct Hit {
    pub needle: usize,
    pub addr: usize,
    /// Where in the needle the run starts, and its length.
    pub offset: usize,
    pub len: usize,
    pub mapping: String,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per needle: whole copies.
    pub full: Vec<usize>,
    /// Per needle: runs of at least [`FRAGMENT`] of its bytes (whole copies
    /// included).
    pub fragments: Vec<usize>,
    /// Every run found.
    pub hits: Vec<Hit>,
    /// Every XSAVE area found.
    pub frames: Vec<Frame>,
    /// Secret-memory mappings, which the scan cannot read.
    pub secretmem: Vec<String>,
    /// Bytes read.
    pub bytes: usize,
}

impl Report {
    /// The XSAVE areas whose registers are not all zero.
    pub fn dirty_frames(&self) -> Vec<&Frame> {
        self.frames.iter().filter(|f| !f.is_scrubbed()).collect()
    }
}

/// How many times the needle occurs whole in the memory of this process.
/// Panics if a mapping cannot be read (secret memory included).
pub fn count(needle: &Masked) -> usize {
    let report = scan(Target::Own, &[needle]);
    refuse_secretmem(&report);
    report.full[0]
}

/// How many times the needle occurs whole in the memory of this process
/// outside secret memory, which no scan can read: for a test that checks
/// that nothing but a secret-memory box holds a secret (the box itself it
/// reads through its own mapping). Panics if any other mapping cannot be
/// read.
pub fn count_outside_secret_memory(needle: &Masked) -> usize {
    scan(Target::Own, &[needle]).full[0]
}

/// How many times each needle occurs whole in the memory of thread `tid`
/// of process `pid`, which the caller may read (its ptrace tracer). Panics
/// if a mapping cannot be read (secret memory included).
pub fn count_in(pid: i32, tid: i32, needles: &[&Masked]) -> Vec<usize> {
    let report = scan(Target::Thread { pid, tid }, needles);
    refuse_secretmem(&report);
    report.full
}

fn refuse_secretmem(report: &Report) {
    assert!(
        report.secretmem.is_empty(),
        "secret memory cannot be read through /proc/PID/mem, so this scan proves nothing \
         about it: {:?}",
        report.secretmem
    );
}

/// One mapping of the maps listing.
struct Mapping {
    range: Range<usize>,
    line: String,
    name: String,
}

fn mappings(dir: &str) -> Vec<Mapping> {
    let maps = std::fs::read_to_string(format!("{dir}/maps")).expect("read the maps");
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (a, b) = f.next()?.split_once('-')?;
            let name = f.nth(4).unwrap_or("").to_owned();
            Some(Mapping {
                range: usize::from_str_radix(a, 16).ok()?..usize::from_str_radix(b, 16).ok()?,
                line: l.to_owned(),
                name,
            })
        })
        .collect()
}

/// The kernel's own mappings, which no reader of /proc/PID/mem may read.
fn kernel_only(name: &str) -> bool {
    matches!(name, "[vvar]" | "[vvar_vclock]" | "[vsyscall]")
}

/// Whether a mapping of that name is anonymous memory (its pages hold
/// data only once touched).
fn anonymous(name: &str) -> bool {
    name.is_empty() || name == "[heap]" || name == "[stack]" || name.starts_with("[anon:")
}

/// Whether some page of `at..at + len` holds data, in RAM or in swap
/// (bits 63 and 62 of its pagemap entry): a page with neither was never
/// touched, or was discarded, and reads as zeros. Pages whose entry cannot
/// be read are taken to hold data.
fn holds_data(pagemap: &File, at: usize, len: usize) -> bool {
    let page = super::page_size();
    let pages = len.div_ceil(page);
    let mut entries = vec![0u8; pages * 8];
    if pagemap
        .read_exact_at(&mut entries, (at / page * 8) as u64)
        .is_err()
    {
        return true;
    }
    entries.chunks_exact(8).any(|e| {
        let e = u64::from_ne_bytes(e.try_into().unwrap());
        e & (3 << 62) != 0
    })
}

/// Reads `buf.len()` bytes at `at` through `mem`, again (up to 50 times,
/// 2 ms apart) while the read fails. A thread of the target that maps
/// secret memory over part of a `PROT_NONE` reservation and then puts a
/// placeholder back makes a read of the reservation fail (memfd_secret
/// pages cannot be read through /proc) while the maps, read again a moment
/// later, show the same range as before: the scan then reads the range as
/// it has become instead of taking it for an unreadable mapping. One that
/// stays unreadable still fails the scan.
fn read_settled(mem: &File, buf: &mut [u8], at: usize) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match mem.read_exact_at(buf, at as u64) {
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            done => return done,
        }
    }
}

/// Scans every mapping of `target` for the needles (whole and in
/// fragments) and for XSAVE areas.
pub fn scan(target: Target, needles: &[&Masked]) -> Report {
    let dir = target.dir();
    let index = Index::new(needles);
    let mut report = Report {
        full: vec![0; needles.len()],
        fragments: vec![0; needles.len()],
        ..Report::default()
    };
    let mem = File::open(format!("{dir}/mem")).expect("open the memory");
    let pagemap = File::open(format!("{dir}/pagemap")).expect("open the pagemap");
    let mut buf = vec![0u8; CHUNK];
    // Matches inside the scan's own buffer are what it just read.
    let own = match target {
        Target::Own => buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len(),
        Target::Thread { .. } => 0..0,
    };
    for m in mappings(&dir) {
        if kernel_only(&m.name) {
            continue;
        }
        if m.name.starts_with("/secretmem") {
            report.secretmem.push(m.line.clone());
            continue;
        }
        let mut at = m.range.start;
        while at < m.range.end {
            let len = CHUNK.min(m.range.end - at);
            let last = at + len == m.range.end;
            let owned = if last { len } else { CHUNK - OVERLAP };
            if anonymous(&m.name) && !holds_data(&pagemap, at, len) {
                // Never touched (or discarded): reads as zeros.
                at += owned;
                continue;
            }
            if let Err(e) = read_settled(&mem, &mut buf[..len], at) {
                let still = mappings(&dir)
                    .into_iter()
                    .any(|n| n.range == m.range && n.name == m.name);
                assert!(
                    !still,
                    "memscan: {} cannot be read at {at:#x} ({e}) and is still mapped: \
                     an unreadable mapping is a scan that did not look",
                    m.line
                );
                break;
            }
            report.bytes += len;
            let window = Window {
                addr: at,
                bytes: &buf[..len],
                owned,
                first: at == m.range.start,
                mapping: &m.line,
            };
            index.find(&window, &own, &mut report);
            find_frames(&window, &own, &mut report);
            at += owned;
        }
    }
    // What was read of this process may hold the secrets.
    for b in buf.iter_mut() {
        // SAFETY: a valid, exclusive reference to one byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    for frame in &mut report.frames {
        let inside = frame.addr..frame.addr + frame.size;
        let mut holds: Vec<usize> = report
            .hits
            .iter()
            .filter(|h| inside.contains(&h.addr))
            .map(|h| h.needle)
            .collect();
        holds.dedup();
        frame.holds = holds;
    }
    report
}

/// A window of memory: `bytes` start at `addr`; matches starting in
/// `bytes[..owned]` are this window's (the rest is read again by the next).
struct Window<'a> {
    addr: usize,
    bytes: &'a [u8],
    owned: usize,
    /// Whether the window starts at its mapping's start (so that a run
    /// reaching back to its first byte starts there, not in an earlier
    /// window).
    first: bool,
    mapping: &'a str,
}

/// The needles' 8-byte words, masked, for finding fragments: any run of
/// [`FRAGMENT`] bytes holds at least one 8-aligned word whole.
struct Index<'a> {
    needles: &'a [&'a Masked],
    words: HashMap<u64, Vec<(usize, usize)>>,
    /// A quick filter over a hash of the words.
    filter: Vec<bool>,
    /// Whether some needle holds eight zero bytes in a row.
    zero_word: bool,
}

fn bucket(w: u64) -> usize {
    ((w ^ (w >> 17) ^ (w >> 41)) & 0xffff) as usize
}

impl<'a> Index<'a> {
    fn new(needles: &'a [&'a Masked]) -> Self {
        let mut words: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
        let mut filter = vec![false; 1 << 16];
        for (n, m) in needles.iter().enumerate() {
            assert!(m.len() >= FRAGMENT, "a needle of at least {FRAGMENT} bytes");
            for o in 0..=m.len() - 8 {
                let w = u64::from_ne_bytes(m.0[o..o + 8].try_into().unwrap());
                words.entry(w).or_default().push((n, o));
                filter[bucket(w)] = true;
            }
        }
        let zero_word = words.contains_key(&MASK_WORD);
        Index {
            needles,
            words,
            filter,
            zero_word,
        }
    }

    fn find(&self, win: &Window<'_>, own: &Range<usize>, report: &mut Report) {
        let b = win.bytes;
        // SAFETY: every bit pattern is a valid u64; `align_to` hands out
        // only the aligned middle as words.
        let (head, words, _) = unsafe { b.align_to::<u64>() };
        let skip = head.len();
        for (k, &w) in words.iter().enumerate() {
            if w == 0 && !self.zero_word {
                continue;
            }
            let masked = w ^ MASK_WORD;
            if !self.filter[bucket(masked)] {
                continue;
            }
            let Some(places) = self.words.get(&masked) else {
                continue;
            };
            let i = skip + 8 * (k + 1);
            let at = i - 8;
            for &(n, o) in places {
                let needle = self.needles[n];
                let mut left = 0;
                while left < o && left < at && needle.is(o - left - 1, b[at - left - 1]) {
                    left += 1;
                }
                let mut right = 0;
                while o + 8 + right < needle.len()
                    && at + 8 + right < b.len()
                    && needle.is(o + 8 + right, b[at + 8 + right])
                {
                    right += 1;
                }
                let start = at - left;
                let len = left + 8 + right;
                let addr = win.addr + start;
                // Each run once: from the first word of the grid inside it
                // (any 16 bytes hold one whole), in the window that owns
                // its start.
                let aligned_first = skip + (start.saturating_sub(skip)).div_ceil(8) * 8;
                if len < FRAGMENT
                    || at != aligned_first
                    || start >= win.owned
                    || (start == 0 && !win.first)
                    || (own.start < addr + len && addr < own.end)
                {
                    continue;
                }
                report.fragments[n] += 1;
                if len == needle.len() {
                    report.full[n] += 1;
                }
                report.hits.push(Hit {
                    needle: n,
                    addr,
                    offset: o - left,
                    len,
                    mapping: win.mapping.to_owned(),
                });
            }
        }
    }
}

const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const SW_BYTES_AT: usize = 464;
const FXSAVE_LEN: usize = 512;
const XSTATE_MAX: usize = 64 * 1024;

fn word32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// XSAVE areas of signal frames: 64-byte aligned, `FP_XSTATE_MAGIC1` at
/// byte 464, `extended_size == xstate_size + 4`, and `FP_XSTATE_MAGIC2` at
/// `xstate_size`.
fn find_frames(win: &Window<'_>, own: &Range<usize>, report: &mut Report) {
    let b = win.bytes;
    let mut i = (64 - win.addr % 64) % 64;
    while i < win.owned && i + FXSAVE_LEN <= b.len() {
        let at = i;
        i += 64;
        if word32(b, at + SW_BYTES_AT) != FP_XSTATE_MAGIC1 {
            continue;
        }
        let size = word32(b, at + SW_BYTES_AT + 16) as usize;
        let extended = word32(b, at + SW_BYTES_AT + 4) as usize;
        if !(FXSAVE_LEN..=XSTATE_MAX).contains(&size)
            || extended != size + 4
            || at + size + 4 > b.len()
            || word32(b, at + size) != FP_XSTATE_MAGIC2
        {
            continue;
        }
        let addr = win.addr + at;
        if own.start < addr + size && addr < own.end {
            continue;
        }
        let area = &b[at..at + size];
        let dirty = dirty_registers(area);
        report.frames.push(Frame {
            addr,
            size,
            dirty,
            holds: Vec::new(),
            mapping: win.mapping.to_owned(),
        });
    }
}

/// Where each data component of an XSAVE area lies (standard format), from
/// CPUID leaf 0xD: `(component, offset, size)`.
fn data_components() -> Vec<(u32, usize, usize)> {
    let mut parts = vec![(0, 32, 128), (1, 160, 256)];
    #[cfg(target_arch = "x86_64")]
    for i in 2..19u32 {
        // Opmasks and PKRU are masks and a key, not data.
        if i == 5 || i == 9 {
            continue;
        }
        // SAFETY: CPUID is present on every x86-64 CPU; leaf 0xD sub-leaf
        // `i` only describes state component `i`.
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid_count(0xd, i) };
        // A user component has a non-zero size and offset.
        if r.eax != 0 && r.ebx != 0 {
            parts.push((i, r.ebx as usize, r.eax as usize));
        }
    }
    parts
}

/// The data components of an XSAVE area that were saved (`XSTATE_BV`)
/// and hold a non-zero byte.
fn dirty_registers(area: &[u8]) -> Vec<(u32, usize)> {
    let xstate_bv = u64::from_ne_bytes(area[FXSAVE_LEN..FXSAVE_LEN + 8].try_into().unwrap());
    data_components()
        .into_iter()
        .filter(|&(i, _, _)| xstate_bv & (1 << i) != 0)
        .filter_map(|(i, offset, size)| {
            let bytes = area.get(offset..offset + size)?;
            let first = bytes.iter().position(|&b| b != 0)?;
            Some((i, offset + first))
        })
        .collect()
}
