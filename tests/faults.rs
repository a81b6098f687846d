//! Regression tests for faults from the issue tracker, one test (or pair of
//! tests) per fault. Each states the rule the crate must keep and checks it
//! from outside: through the public API, /proc and the kernel's answers.
//!
//! Tests that change or measure process-wide state (capabilities, rlimits,
//! VmLck, the mapping count, fork) run in a child process of their own
//! (`common::child::run`).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Output;
use std::sync::mpsc;
use std::thread;

use common::{
    Seen, become_unprivileged, child, in_fork, page_size, procfs, start_of, the_childs_copy,
};
use lockedbox::{Error, Isolation, LockPolicy, LockedBox, Options, Plain};
use rustix::thread::{CapabilitySet, capabilities};

/// The `RLIMIT_MEMLOCK` of many hosts and containers.
const LIMIT: u64 = 64 * 1024;

fn packed() -> Options {
    Options::new().isolation(Isolation::Packed)
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        child::stdout(out),
        child::stderr(out)
    )
}

/// The child ran its body to the end; `expected` says what that proves.
fn expect_success(out: &Output, expected: &str) {
    assert!(
        out.status.success(),
        "expected {expected}; the child failed\n{}",
        describe(out)
    );
}

/// Asserts, in a thread of a child that called `become_unprivileged`, that
/// the thread has no `CAP_IPC_LOCK`: threads inherit the capabilities of
/// the thread that spawned them, so `RLIMIT_MEMLOCK` applies to them too.
fn assert_no_cap_ipc_lock() {
    let caps = capabilities(None).expect("expected capget(2) to work");
    assert!(
        !caps.effective.contains(CapabilitySet::IPC_LOCK),
        "expected a thread spawned after become_unprivileged to lack CAP_IPC_LOCK"
    );
}

fn status_kb(key: &str) -> u64 {
    let text =
        std::fs::read_to_string("/proc/self/status").expect("expected to read /proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("expected {key} in /proc/self/status"))
}

/// Growth of `VmLck` (in kB) since `base`, in bytes; negative if it fell.
fn lck_delta_bytes(now_kb: u64, base_kb: u64) -> i64 {
    (i64::try_from(now_kb).expect("expected VmLck to fit an i64")
        - i64::try_from(base_kb).expect("expected VmLck to fit an i64"))
        * 1024
}

/// Growth of `locked_bytes()` since `base`; negative if it fell.
fn bytes_delta(now: usize, base: usize) -> i64 {
    i64::try_from(now).expect("expected locked_bytes() to fit an i64")
        - i64::try_from(base).expect("expected locked_bytes() to fit an i64")
}

/// `VmLck` in kB, read without allocating and without making a mapping:
/// usable while the process is at `vm.max_map_count`.
fn vm_lck_kb_no_alloc() -> u64 {
    let mut buf = [0u8; 16 * 1024];
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "expected to open /proc/self/status");
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: reads into the unused tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => len += n,
            _ => break,
        }
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    buf[..len]
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"VmLck:"))
        .map(|rest| {
            rest.iter()
                .filter(|d| d.is_ascii_digit())
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
        })
        .expect("expected a VmLck line in /proc/self/status")
}

/// One-page anonymous mappings made until mmap(2) fails with `ENOMEM`: the
/// process is then at `vm.max_map_count`, where any split of a mapping (by
/// mprotect, mlock, munlock) fails with `ENOMEM`. Consecutive mappings
/// alternate `PROT_READ` and `PROT_NONE`, so that the kernel cannot merge
/// them.
struct Filler {
    maps: Vec<usize>,
}

impl Filler {
    fn to_the_limit() -> Filler {
        let max: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .expect("expected to read /proc/sys/vm/max_map_count")
            .trim()
            .parse()
            .expect("expected vm.max_map_count to be a number");
        let page = page_size();
        // Allocated up front: nothing below may need a new mapping.
        let mut maps = Vec::with_capacity(max + 64);
        loop {
            let prot = if maps.len() % 2 == 0 {
                libc::PROT_READ
            } else {
                libc::PROT_NONE
            };
            // SAFETY: a fresh anonymous mapping at an address the kernel
            // picks; nothing else is affected.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                let errno = std::io::Error::last_os_error().raw_os_error();
                assert_eq!(
                    errno,
                    Some(libc::ENOMEM),
                    "expected mmap to fail with ENOMEM at vm.max_map_count"
                );
                break;
            }
            maps.push(p as usize);
            assert!(
                maps.len() <= max + 32,
                "expected mmap to fail within vm.max_map_count = {max} mappings"
            );
        }
        // Give one back, so that a small allocation (a panic message) can
        // still get a mapping; a split still fails (map_count >= max).
        let mut f = Filler { maps };
        f.unmap_one();
        f
    }

    fn unmap_one(&mut self) {
        if let Some(p) = self.maps.pop() {
            // SAFETY: one of our own filler pages, which nothing refers into.
            let r = unsafe { libc::munmap(p as *mut libc::c_void, page_size()) };
            assert_eq!(r, 0, "expected munmap of a filler page to succeed");
        }
    }

    fn release(&mut self) {
        while !self.maps.is_empty() {
            self.unmap_one();
        }
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.release();
    }
}

// ---------------------------------------------------------------------------
// Fault 1: packed density across threads.
//
// Rule: without CAP_IPC_LOCK, a packed lock is refused only when no locked
// page of that size class, of any thread, has a free slot; and packed pages
// emptied after their thread exited do not stay locked.

/// 1,024 packed 32-byte boxes fit in 64 KiB (README), also when each is
/// made on a thread of its own that exits right after.
#[test]
fn fault1_packed_boxes_made_on_short_lived_threads_reach_1024() {
    let out = child::run(
        "fault1_packed_boxes_made_on_short_lived_threads_reach_1024",
        || {
            common::become_unprivileged(LIMIT);
            let want = usize::try_from(LIMIT).expect("expected the limit to fit a usize") / 64;
            let mut boxes = Vec::with_capacity(want);
            for i in 0..want {
                let made = thread::spawn(|| {
                    assert_no_cap_ipc_lock();
                    packed().zeroed::<[u8; 32]>()
                })
                .join()
                .expect("expected the box-making thread not to panic");
                match made {
                    Ok(b) => boxes.push(b),
                    Err(e) => panic!(
                        "expected {want} live packed 32-byte boxes under a 64 KiB RLIMIT_MEMLOCK, \
                         each made on a fresh short-lived thread and kept by the main thread; \
                         box {i} was refused: {e:?} (VmLck {} kB)",
                        procfs::vm_lck_kb()
                    ),
                }
            }
            assert!(
                boxes
                    .iter()
                    .all(|b| b.is_locked() && b.isolation() == Isolation::Packed),
                "expected every box to be packed and locked"
            );
            println!("{} boxes, VmLck {} kB", boxes.len(), procfs::vm_lck_kb());
        },
    );
    expect_success(
        &out,
        "1,024 locked packed 32-byte boxes from 1,024 short-lived threads under 64 KiB",
    );
}

/// A long-lived thread that makes packed boxes of the sizes it is told and
/// keeps them until it is stopped.
struct Worker {
    orders: mpsc::Sender<Option<usize>>,
    results: mpsc::Receiver<Result<(), Error>>,
    handle: thread::JoinHandle<()>,
}

impl Worker {
    fn spawn() -> Worker {
        let (orders, order_rx) = mpsc::channel::<Option<usize>>();
        let (result_tx, results) = mpsc::channel();
        let handle = thread::spawn(move || {
            assert_no_cap_ipc_lock();
            let mut boxes = Vec::new();
            while let Ok(Some(size)) = order_rx.recv() {
                let made = packed().zeroed_slice::<u8>(size).map(|b| {
                    assert!(
                        b.is_locked() && b.isolation() == Isolation::Packed,
                        "expected a locked packed box of {size} bytes"
                    );
                    boxes.push(b);
                });
                result_tx
                    .send(made)
                    .expect("expected the main thread to listen");
            }
        });
        Worker {
            orders,
            results,
            handle,
        }
    }

    /// Has the thread make one packed box of `size` bytes.
    fn make(&self, size: usize) -> Result<(), Error> {
        self.orders
            .send(Some(size))
            .expect("expected the worker thread alive");
        self.results
            .recv()
            .expect("expected the worker thread not to panic")
    }

    fn stop(self) {
        self.orders
            .send(None)
            .expect("expected the worker thread alive");
        self.handle
            .join()
            .expect("expected the worker thread not to panic");
    }
}

/// Four long-lived threads each make one packed 32-byte box (each on a
/// page of its own today); then one of them makes boxes until refused. The
/// refusal is only right once every 64-byte slot of the 64 KiB is taken: the
/// other threads' pages have free slots until then.
#[test]
fn fault1_a_packed_refusal_means_no_thread_has_a_free_slot() {
    let out = child::run(
        "fault1_a_packed_refusal_means_no_thread_has_a_free_slot",
        || {
            common::become_unprivileged(LIMIT);
            let workers: Vec<Worker> = (0..4).map(|_| Worker::spawn()).collect();
            for w in &workers {
                w.make(32)
                    .expect("expected the first box of each thread to be made");
            }
            let mut total = workers.len();
            let err = loop {
                match workers[0].make(32) {
                    Ok(()) => total += 1,
                    Err(e) => break e,
                }
                assert!(total <= 4096, "expected a refusal by 4,096 boxes");
            };
            assert!(
                matches!(err, Error::MemlockLimit { .. }),
                "expected MemlockLimit, got {err:?}"
            );
            let want = usize::try_from(LIMIT).expect("expected the limit to fit a usize") / 64;
            println!(
                "live boxes at the refusal: {total}, VmLck {} kB",
                procfs::vm_lck_kb()
            );
            assert_eq!(
                total,
                want,
                "expected the refusal only when all {want} 64-byte slots of the 64 KiB limit are \
                 taken, by any thread (VmLck {} kB)",
                procfs::vm_lck_kb()
            );
            for w in workers {
                w.stop();
            }
        },
    );
    expect_success(
        &out,
        "a MemlockLimit for 32-byte packed boxes only when every locked 64-byte slot is taken",
    );
}

/// Four long-lived threads take turns, one box per turn, cycling through
/// the seven packed slot sizes (64 bytes to 4 KiB: values of 32, 96, 224,
/// 480, 992, 2016 and 2048 bytes, each with two 16-byte canaries). Whenever
/// a size is refused, the live boxes of that size must fill whole pages (no
/// locked page of that size has a free slot), and at the end every locked
/// page is a full one.
#[test]
fn fault1_every_packed_size_is_refused_only_when_its_pages_are_full() {
    let out = child::run(
        "fault1_every_packed_size_is_refused_only_when_its_pages_are_full",
        || {
            common::become_unprivileged(LIMIT);
            assert_eq!(
                procfs::vm_lck_kb(),
                0,
                "expected nothing locked in the fresh child"
            );
            let page = page_size();
            let sizes = [32usize, 96, 224, 480, 992, 2016, 2048];
            let slot = |c: usize| 64usize << c;
            let per_page = |c: usize| page / slot(c);
            let workers: Vec<Worker> = (0..4).map(|_| Worker::spawn()).collect();
            let mut live = [0usize; 7];
            let mut refused = [false; 7];
            let mut turn = 0usize;
            while !refused.iter().all(|&r| r) {
                assert!(
                    turn < 20_000,
                    "expected every size refused within 20,000 turns"
                );
                let (t, c) = (turn % workers.len(), turn % sizes.len());
                match workers[t].make(sizes[c]) {
                    Ok(()) => live[c] += 1,
                    Err(Error::MemlockLimit { .. }) => {
                        assert_eq!(
                            live[c] % per_page(c),
                            0,
                            "turn {turn}: thread {t} was refused a {}-byte packed box \
                             ({}-byte slots, {} a page) while {} boxes of that size were live: \
                             some locked page of that size had a free slot; expected a refusal \
                             only when none has (live per size: {live:?}, VmLck {} kB)",
                            sizes[c],
                            slot(c),
                            per_page(c),
                            live[c],
                            procfs::vm_lck_kb()
                        );
                        refused[c] = true;
                    }
                    Err(e) => panic!("expected a box or MemlockLimit, got {e:?}"),
                }
                turn += 1;
            }
            let full_pages: usize = (0..7).map(|c| live[c] / per_page(c)).sum();
            let locked = procfs::vm_lck_kb() * 1024;
            println!(
                "turns {turn}, live per size {live:?}, VmLck {} kB",
                locked / 1024
            );
            assert_eq!(
                locked,
                (full_pages * page) as u64,
                "expected every locked page to be a full packed page (live per size {live:?})"
            );
            assert!(
                locked + page as u64 > LIMIT,
                "expected refusals only when no further page fits under the limit \
                 (VmLck {} kB of {} kB)",
                locked / 1024,
                LIMIT / 1024
            );
            for w in workers {
                w.stop();
            }
        },
    );
    expect_success(
        &out,
        "each packed size refused only when its locked pages, of every thread, are full",
    );
}

/// A thread that made a packed box and exited leaves its page to the pool;
/// once the box is dropped the page is empty and must not stay locked: 1,000
/// such threads in turn must not leave 1,000 locked pages behind.
#[test]
fn fault1_packed_pages_of_exited_threads_do_not_stay_locked() {
    let out = child::run(
        "fault1_packed_pages_of_exited_threads_do_not_stay_locked",
        || {
            let base_lck = procfs::vm_lck_kb();
            let base_bytes = lockedbox::locked_bytes();
            for _ in 0..1000 {
                let b = thread::spawn(|| packed().zeroed::<[u8; 32]>())
                    .join()
                    .expect("expected the box-making thread not to panic")
                    .expect("expected a packed box (CAP_IPC_LOCK: no limit)");
                assert!(b.is_locked(), "expected the packed box to be locked");
                drop(b); // on the main thread, after its maker exited
            }
            let lck = procfs::vm_lck_kb();
            let bytes = lockedbox::locked_bytes();
            println!(
                "VmLck {base_lck} kB -> {lck} kB, locked_bytes {base_bytes} -> {bytes} \
                 after 1,000 threads, before any trim"
            );
            assert!(
                lck <= base_lck + 64,
                "expected VmLck to stay within 64 kB of its baseline ({base_lck} kB) with no box \
                 alive after 1,000 threads each made a packed box that the main thread dropped; \
                 it is {lck} kB"
            );
            assert_eq!(
                lck_delta_bytes(lck, base_lck),
                bytes_delta(bytes, base_bytes),
                "expected locked_bytes() to match VmLck"
            );
        },
    );
    expect_success(
        &out,
        "no locked packed page left behind by 1,000 exited threads whose boxes were dropped",
    );
}

// ---------------------------------------------------------------------------
// Fault 2: closed slab slots never merge back.
//
// Rule: a slab costs at most 3 + 2 × (open slots) lines of /proc/self/maps,
// whatever its history, and `stats().mappings` is never below the lines the
// crate's memory takes there. The crate's lines are counted independently:
// mappings marked MADV_DONTDUMP (VmFlags `dd`, not the kernel's own `pf`).

/// The crate's lines of /proc/self/maps, above `base`.
fn crate_lines(base: usize) -> usize {
    procfs::dontdump_mapping_count() - base
}

#[test]
fn fault2_a_slab_whose_slots_all_closed_takes_at_most_three_lines() {
    let out = child::run(
        "fault2_a_slab_whose_slots_all_closed_takes_at_most_three_lines",
        || {
            lockedbox::set_cache_limit(0);
            let base = procfs::dontdump_mapping_count();
            println!("dd mappings before the first box: {base}");
            let boxes: Vec<_> = (0..64)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
                .collect();
            let open = crate_lines(base);
            let stats = lockedbox::stats();
            assert!(
                open >= 64,
                "expected at least one line per open slot (64), counted {open}"
            );
            assert!(
                stats.mappings >= open,
                "expected stats().mappings ({}) >= the {open} lines counted with 64 boxes live",
                stats.mappings
            );
            drop(boxes);
            let closed = crate_lines(base);
            let stats = lockedbox::stats();
            println!(
                "lines: {open} with 64 live boxes, {closed} after dropping them \
                 (stats().mappings {})",
                stats.mappings
            );
            assert!(
                closed <= 3,
                "expected the slab that held the 64 boxes (README: one slab holds 64 one-page \
                 slots) to take at most 3 lines of /proc/self/maps once all its slots closed, \
                 counted {closed}"
            );
            assert!(
                stats.mappings >= closed,
                "expected stats().mappings ({}) never below the {closed} lines the crate's \
                 memory takes in /proc/self/maps",
                stats.mappings
            );
            lockedbox::trim();
            assert_eq!(
                crate_lines(base),
                0,
                "expected no line of the crate's left after trim with no box alive"
            );
        },
    );
    expect_success(
        &out,
        "a slab with every slot closed again to take at most 3 lines",
    );
}

#[test]
fn fault2_a_hundred_churned_slabs_take_at_most_five_lines_each() {
    let out = child::run(
        "fault2_a_hundred_churned_slabs_take_at_most_five_lines_each",
        || {
            lockedbox::set_cache_limit(0);
            let base = procfs::dontdump_mapping_count();
            // 100 slabs of 64 slots, every slot opened, then all but one per
            // slab closed again.
            let mut boxes: Vec<_> = (0..100 * 64)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
                .collect();
            let mut i = 0;
            boxes.retain(|_| {
                i += 1;
                (i - 1) % 64 == 0
            });
            assert_eq!(boxes.len(), 100, "expected one box kept per 64");
            let lines = crate_lines(base);
            let stats = lockedbox::stats();
            println!(
                "lines with 100 live boxes after the churn: {lines} \
                 (stats().mappings {})",
                stats.mappings
            );
            assert_eq!(stats.page_boxes, 100, "expected 100 live page boxes");
            let bound = 100 * (3 + 2) + 3;
            assert!(
                lines <= bound,
                "expected at most 3 + 2 lines per slab with one open slot (at most {bound} \
                 lines for 100 slabs, and one empty slab), counted {lines}"
            );
            assert!(
                stats.mappings >= lines,
                "expected stats().mappings ({}) never below the {lines} lines the crate's \
                 memory takes in /proc/self/maps",
                stats.mappings
            );
        },
    );
    expect_success(
        &out,
        "100 churned slabs with one open slot each to take at most 5 lines each",
    );
}

// ---------------------------------------------------------------------------
// Fault 3: trim() at vm.max_map_count.
//
// Rule: locked_bytes() always matches what is really locked (VmLck); a page
// trim cannot close is still accounted open, and a later trim closes it.

#[test]
fn fault3_trim_at_max_map_count_keeps_locked_bytes_true() {
    let out = child::run(
        "fault3_trim_at_max_map_count_keeps_locked_bytes_true",
        || {
            let page = page_size();
            let base_lck = procfs::vm_lck_kb();
            let base_bytes = lockedbox::locked_bytes();
            // Three packed pages' worth of 32-byte boxes (64 a page).
            let mut boxes: Vec<_> = (0..3 * 64)
                .map(|_| {
                    packed()
                        .zeroed::<[u8; 32]>()
                        .expect("expected a packed box")
                })
                .collect();
            let mut pages: Vec<usize> =
                boxes.iter().map(|b| start_of(&**b) / page * page).collect();
            pages.sort_unstable();
            pages.dedup();
            assert_eq!(
                pages.len(),
                3,
                "expected 192 packed 32-byte boxes on 3 pages"
            );
            let middle = pages[1];
            let merged = procfs::vma_at(pages[0]).expect("expected the first page mapped");
            println!(
                "open packed pages {pages:x?}; the mapping holding the first is {:#x}-{:#x} \
                 ({} pages)",
                merged.start,
                merged.end,
                merged.len() / page
            );
            boxes.retain(|b| start_of(&**b) / page * page != middle);
            assert_eq!(
                boxes.len(),
                128,
                "expected 64 boxes dropped, on the middle page"
            );
            let open_bytes = lockedbox::locked_bytes();
            assert_eq!(
                lck_delta_bytes(procfs::vm_lck_kb(), base_lck),
                bytes_delta(open_bytes, base_bytes),
                "expected locked_bytes() to match VmLck before the test proper"
            );

            // At the limit, closing the middle page needs a split.
            let mut filler = Filler::to_the_limit();
            lockedbox::trim();
            let at_limit_bytes = lockedbox::locked_bytes();
            let at_limit_lck = vm_lck_kb_no_alloc();
            let fillers = filler.maps.len();
            filler.release();

            println!(
                "{fillers} filler mappings; at the limit after trim: locked_bytes {at_limit_bytes} \
                 (was {open_bytes}), VmLck {at_limit_lck} kB"
            );
            assert_eq!(
                lck_delta_bytes(at_limit_lck, base_lck),
                bytes_delta(at_limit_bytes, base_bytes),
                "expected locked_bytes() ({at_limit_bytes}) to match VmLck ({at_limit_lck} kB) \
                 after trim() at vm.max_map_count"
            );
            assert!(
                at_limit_bytes == open_bytes || at_limit_bytes == open_bytes - page,
                "expected the emptied page either still accounted open ({open_bytes}) or really \
                 closed ({}), locked_bytes() is {at_limit_bytes}",
                open_bytes - page
            );

            // Away from the limit, trim closes it.
            lockedbox::trim();
            let bytes = lockedbox::locked_bytes();
            let lck = procfs::vm_lck_kb();
            assert_eq!(
                bytes,
                open_bytes - page,
                "expected the emptied page closed by trim() once below vm.max_map_count"
            );
            assert_eq!(
                lck_delta_bytes(lck, base_lck),
                bytes_delta(bytes, base_bytes),
                "expected VmLck ({lck} kB) to match locked_bytes() ({bytes}) after the second trim"
            );
            let vma = procfs::vma_at(middle).expect("expected the page still mapped");
            assert!(
                vma.perms == "---p" && !vma.has("lo"),
                "expected the emptied page PROT_NONE and unlocked, found {} {:?}",
                vma.perms,
                vma.flags
            );
            drop(boxes);
        },
    );
    expect_success(
        &out,
        "trim() at vm.max_map_count to keep locked_bytes() equal to VmLck, and a later trim \
         to close the page",
    );
}

// ---------------------------------------------------------------------------
// Fault 4: BestEffort boxes larger than RAM, and the wipe of untouched pages.

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("expected to read /proc/meminfo");
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("expected MemTotal in /proc/meminfo")
        * 1024
}

#[test]
fn fault4_a_best_effort_box_larger_than_ram_is_too_large() {
    let out = child::run(
        "fault4_a_best_effort_box_larger_than_ram_is_too_large",
        || {
            let len = (64u64 << 30).max(4 * mem_total());
            let len = usize::try_from(len).expect("expected a 64-bit target");
            let made = Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed_slice::<u8>(len);
            let verdict = match &made {
                Err(Error::TooLarge { .. }) => None,
                Err(e) => Some(format!("Err({e:?})")),
                Ok(b) => Some(format!("Ok({b:?})")),
            };
            if let Ok(b) = made {
                // Dropping it would wipe (touch) every page.
                std::mem::forget(b);
            }
            if let Some(got) = verdict {
                panic!(
                    "expected Err(TooLarge) for a BestEffort box of {len} bytes, larger than physical \
                 memory ({} bytes), got {got}",
                    mem_total()
                );
            }
        },
    );
    expect_success(&out, "Err(TooLarge) for a BestEffort box larger than RAM");
}

#[test]
fn fault4_dropping_an_untouched_unlocked_box_does_not_fault_it_in() {
    let out = child::run(
        "fault4_dropping_an_untouched_unlocked_box_does_not_fault_it_in",
        || {
            // mlock is refused, so BestEffort makes the box unlocked and
            // nothing faults its pages in.
            common::become_unprivileged(LIMIT);
            let before = status_kb("VmHWM:");
            let b = Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed_slice::<u8>(1 << 30)
                .expect("expected an unlocked 1 GiB BestEffort box");
            assert!(!b.is_locked(), "expected the 1 GiB box to be unlocked");
            let resident = b.residency().expect("expected mincore to work");
            drop(b);
            let after = status_kb("VmHWM:");
            println!(
                "VmHWM {before} kB -> {after} kB; {} of {} pages resident before the drop",
                resident.resident, resident.total
            );
            assert!(
                after - before < 64 * 1024,
                "expected peak RSS (VmHWM) to grow by far less than 1 GiB (< 64 MiB) through \
                 making and dropping an untouched 1 GiB box; it grew by {} MiB",
                (after - before) / 1024
            );
        },
    );
    expect_success(
        &out,
        "dropping an untouched unlocked 1 GiB box not to fault in its pages",
    );
}

// ---------------------------------------------------------------------------
// Fault 5: a sealed, unlocked box at vm.max_map_count.

#[test]
fn fault5_a_sealed_unlocked_box_borrows_and_drops_at_max_map_count() {
    let out = child::run(
        "fault5_a_sealed_unlocked_box_borrows_and_drops_at_max_map_count",
        || {
            common::become_unprivileged(0);
            let mut b = Options::new()
                .lock(LockPolicy::BestEffort)
                .zeroed::<[u8; 32]>()
                .expect("expected an unlocked BestEffort box");
            assert!(!b.is_locked(), "expected the box to be unlocked (limit 0)");
            assert_eq!(
                b.isolation(),
                Isolation::Page,
                "expected a page-isolated box"
            );
            b.fill(0x5A);
            let addr = start_of(&*b);
            let sealed = b.seal().expect("expected seal() to succeed");
            let vma = procfs::vma_at(addr).expect("expected the sealed page mapped");
            println!(
                "sealed data page {addr:#x} lies in a {} mapping of {} pages",
                vma.perms,
                vma.len() / page_size()
            );

            let mut filler = Filler::to_the_limit();
            let read = catch_unwind(AssertUnwindSafe(|| *sealed.borrow()));
            // Dropping it at the limit must not abort either.
            drop(sealed);
            filler.release();

            match read {
                Ok(v) => assert!(
                    v.iter().all(|&x| x == 0x5A),
                    "expected the sealed value to read back at vm.max_map_count"
                ),
                Err(_) => panic!(
                    "expected borrow() of a sealed unlocked box not to panic at vm.max_map_count"
                ),
            }
        },
    );
    expect_success(
        &out,
        "borrow() and drop of a sealed unlocked box to work at vm.max_map_count",
    );
}

// ---------------------------------------------------------------------------
// Fault 6: a smashed canary goes unreported when T's Drop panics.

#[repr(C)]
struct PanicsOnDrop {
    bytes: [u8; 32],
}

// SAFETY: bytes only, valid as zeros, no pointers or interior mutability.
unsafe impl Plain for PanicsOnDrop {}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("PanicsOnDrop::drop panics, as the test wants");
    }
}

/// Flips the byte right before the value: the last byte of the canary that
/// sits in front of it (page-isolated), or of the front canary (a packed
/// 32-byte value fills its slot up to the back canary).
fn smash_byte_before<T: ?Sized>(value: &T) {
    let p = std::ptr::with_exposed_provenance_mut::<u8>(start_of(value) - 1);
    // SAFETY: deliberately outside the value, inside the box's own slot
    // (mapped read-write): the test is about whether dropping the box
    // notices the change.
    let old = unsafe { p.read_volatile() };
    // SAFETY: as above.
    unsafe { p.write_volatile(!old) };
}

fn smash_and_drop(b: LockedBox<PanicsOnDrop>) {
    std::hint::black_box(&b.bytes);
    smash_byte_before(&*b);
    let r = catch_unwind(AssertUnwindSafe(|| drop(b)));
    println!("drop returned (unwound: {})", r.is_err());
}

fn expect_canary_abort(out: &Output, what: &str) {
    let err = child::stderr(out);
    assert!(
        out.status.signal() == Some(libc::SIGABRT)
            && err
                .lines()
                .any(|l| l.starts_with("lockedbox:") && l.contains("canary")),
        "expected the child to abort (SIGABRT) with the lockedbox canary message on stderr when \
         a {what} box whose canary was smashed is dropped and T's Drop panics\n{}",
        describe(out)
    );
}

#[test]
fn fault6_a_smashed_canary_is_reported_when_drop_panics() {
    let out = child::run(
        "fault6_a_smashed_canary_is_reported_when_drop_panics",
        || {
            smash_and_drop(LockedBox::<PanicsOnDrop>::new_zeroed().expect("expected a box"));
        },
    );
    expect_canary_abort(&out, "page-isolated");
}

#[test]
fn fault6_a_smashed_packed_canary_is_reported_when_drop_panics() {
    let out = child::run(
        "fault6_a_smashed_packed_canary_is_reported_when_drop_panics",
        || {
            let b = packed()
                .zeroed::<PanicsOnDrop>()
                .expect("expected a packed box");
            assert_eq!(b.isolation(), Isolation::Packed, "expected a packed box");
            smash_and_drop(b);
        },
    );
    expect_canary_abort(&out, "packed");
}

// ---------------------------------------------------------------------------
// Fault 7: locked_bytes() in a fork child.
//
// Rule: nothing is locked in a fork child (locks are not inherited); once
// its copies are dropped and trim() has run, locked_bytes() is 0 there.

/// In a fork child: exit 0 if locked_bytes() is 0, else report it on stderr
/// and exit 1.
fn fork_child_verdict() -> i32 {
    let n = lockedbox::locked_bytes();
    if n == 0 {
        return 0;
    }
    let msg = format!("fork child: locked_bytes() = {n} after trim(), expected 0\n");
    // SAFETY: write(2) of a buffer we own to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    1
}

#[test]
fn fault7_locked_bytes_in_a_fork_child_return_to_zero_after_trim() {
    let out = child::run(
        "fault7_locked_bytes_in_a_fork_child_return_to_zero_after_trim",
        || {
            let pages: Vec<_> = (0..10)
                .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box"))
                .collect();
            let packs: Vec<_> = (0..10)
                .map(|_| {
                    packed()
                        .zeroed::<[u8; 32]>()
                        .expect("expected a packed box")
                })
                .collect();
            drop(pages); // cached, still locked
            drop(packs); // an empty packed page, still open
            println!("parent: locked_bytes() = {}", lockedbox::locked_bytes());
            let seen = in_fork(|| {
                lockedbox::trim();
                fork_child_verdict()
            });
            assert_eq!(
                seen,
                Seen::Exited(0),
                "expected locked_bytes() == 0 in a fork child after trim()"
            );
        },
    );
    expect_success(&out, "locked_bytes() == 0 in a fork child after trim()");
}

#[test]
fn fault7_locked_bytes_in_a_fork_child_return_to_zero_after_dropping_its_copies() {
    let out = child::run(
        "fault7_locked_bytes_in_a_fork_child_return_to_zero_after_dropping_its_copies",
        || {
            let page_box = LockedBox::<[u8; 32]>::new_zeroed().expect("expected a box");
            let packed_box = packed()
                .zeroed::<[u8; 32]>()
                .expect("expected a packed box");
            println!("parent: locked_bytes() = {}", lockedbox::locked_bytes());
            let seen = in_fork(|| {
                drop(the_childs_copy(&page_box));
                drop(the_childs_copy(&packed_box));
                lockedbox::trim();
                fork_child_verdict()
            });
            assert_eq!(
                seen,
                Seen::Exited(0),
                "expected locked_bytes() == 0 in a fork child that dropped its copies of the \
                 boxes alive at the fork and called trim()"
            );
            assert!(
                page_box.is_locked() && packed_box.is_locked(),
                "expected the parent's boxes still locked"
            );
        },
    );
    expect_success(
        &out,
        "locked_bytes() == 0 in a fork child after dropping its copies and trim()",
    );
}

// ---------------------------------------------------------------------------
// Found by a second reader: empty slabs of neighbouring size classes merge
// (same protection, same advice), so unmapping one of them needs a split,
// which fails at vm.max_map_count. The slab must then stay accounted (and be
// unmapped by a later trim), not vanish from `stats()` while still mapped.

#[test]
fn review_an_empty_slab_that_cannot_be_unmapped_stays_counted() {
    let out = child::run(
        "review_an_empty_slab_that_cannot_be_unmapped_stays_counted",
        || {
            lockedbox::set_cache_limit(0);
            let base = procfs::dontdump_mapping_count();
            // Three slabs of different size classes, mapped one after the
            // other (the kernel places them side by side).
            let boxes = (
                LockedBox::<[u8; 5000]>::new_zeroed().expect("a two-page box"),
                LockedBox::<[u8; 32]>::new_zeroed().expect("a one-page box"),
                LockedBox::<[u8; 9000]>::new_zeroed().expect("a three-page box"),
            );
            drop(boxes);
            let merged = crate_lines(base);
            println!(
                "three empty slabs take {merged} lines; stats {:?}",
                lockedbox::stats()
            );
            let mut filler = Filler::to_the_limit();
            lockedbox::trim();
            // Counted once the filler is gone (reading /proc allocates);
            // nothing of the crate's changes in between.
            filler.release();
            let lines = crate_lines(base);
            let counted = lockedbox::stats().mappings;
            println!("at the limit after trim: {lines} lines, stats().mappings {counted}");
            assert!(
                counted >= lines,
                "expected stats().mappings ({counted}) never below the crate's lines of \
                 /proc/self/maps ({lines}) after trim() at vm.max_map_count"
            );
            lockedbox::trim();
            assert_eq!(
                crate_lines(base),
                0,
                "expected trim() below the limit to unmap every empty slab"
            );
            assert_eq!(lockedbox::stats().mappings, 0, "{:?}", lockedbox::stats());
        },
    );
    expect_success(
        &out,
        "an unmappable slab stays counted and a later trim unmaps it",
    );
}

// Found by a second reader: packed pages of one class opened at the same
// moment by several threads could leave seams the kernel does not merge,
// so `stats().mappings` counted fewer mappings than /proc/self/maps showed.

#[test]
fn review_concurrent_packed_opens_leave_no_uncounted_seam() {
    let out = child::run(
        "review_concurrent_packed_opens_leave_no_uncounted_seam",
        || {
            use std::sync::{Arc, Barrier};
            let base = procfs::dontdump_mapping_count();
            let threads = 16;
            let made = Arc::new(Barrier::new(threads + 1));
            let checked = Arc::new(Barrier::new(threads + 1));
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (made, checked) = (Arc::clone(&made), Arc::clone(&checked));
                    std::thread::spawn(move || {
                        let boxes: Vec<_> = (0..3000)
                            .map(|_| packed().zeroed::<[u8; 16]>().expect("a packed box"))
                            .collect();
                        made.wait();
                        checked.wait();
                        drop(boxes);
                    })
                })
                .collect();
            made.wait();
            let lines = crate_lines(base);
            let counted = lockedbox::stats().mappings;
            checked.wait();
            for w in workers {
                w.join().expect("a worker");
            }
            println!("{lines} lines, stats().mappings {counted}");
            assert!(
                counted >= lines,
                "expected stats().mappings ({counted}) never below the crate's lines of \
                 /proc/self/maps ({lines})"
            );
        },
    );
    expect_success(&out, "concurrent packed opens stay counted");
}

// Found by a second reader: after one refused lock, caching stayed off for
// as long as the crate held more than half the limit.

#[test]
fn review_caching_resumes_after_memlock_pressure() {
    let out = child::run("review_caching_resumes_after_memlock_pressure", || {
        become_unprivileged(64 * 1024);
        let live: Vec<_> = (0..10)
            .map(|_| LockedBox::<[u8; 32]>::new_zeroed().expect("a box"))
            .collect();
        // A burst to the limit: the crate reclaims, then refuses.
        let mut burst = Vec::new();
        while let Ok(b) = LockedBox::<[u8; 32]>::new_zeroed() {
            burst.push(b);
        }
        drop(burst);
        for _ in 0..5_000 {
            drop(LockedBox::<[u8; 32]>::new_zeroed().expect("a box"));
        }
        let st = lockedbox::stats();
        assert!(
            st.cached_slots > 0,
            "expected dropped slots cached again after the pressure passed, with 10 of 16 \
             pages live: {st:?}"
        );
        drop(live);
    });
    expect_success(&out, "caching resumes after a refusal");
}
