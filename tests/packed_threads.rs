//! Packed boxes made on many threads, checked in the kernel's view (VmLck)
//! of a child process.
//!
//! The rule: without `CAP_IPC_LOCK`, a packed lock is refused only when no
//! locked page of that size class, of any thread, has a free slot; and
//! packed pages emptied after their thread exited do not stay locked.
//!
//! Each test changes or measures process-wide state (capabilities, the
//! lock limit, VmLck), so each runs in a child process of its own
//! (`common::child::run`).

mod common;

use std::sync::mpsc;
use std::thread;

use common::{
    assert_no_cap_ipc_lock, become_unprivileged, bytes_delta, child, kb_delta_bytes, packed,
    page_size, procfs,
};
use lockedbox::{Error, Isolation};

/// The `RLIMIT_MEMLOCK` of many hosts and containers.
const LIMIT: u64 = 64 * 1024;

/// 1,024 packed 32-byte boxes fit in 64 KiB (README), also when each is
/// made on a thread of its own that exits right after.
#[test]
fn packed_boxes_from_1024_short_lived_threads_all_fit_in_64_kib() {
    let out = child::run(
        "packed_boxes_from_1024_short_lived_threads_all_fit_in_64_kib",
        || {
            become_unprivileged(LIMIT);
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
    child::expect_success(
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
fn a_packed_refusal_means_no_thread_has_a_free_slot() {
    let out = child::run("a_packed_refusal_means_no_thread_has_a_free_slot", || {
        become_unprivileged(LIMIT);
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
    });
    child::expect_success(
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
fn each_packed_size_is_refused_only_when_every_threads_pages_of_it_are_full() {
    let out = child::run(
        "each_packed_size_is_refused_only_when_every_threads_pages_of_it_are_full",
        || {
            become_unprivileged(LIMIT);
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
    child::expect_success(
        &out,
        "each packed size refused only when its locked pages, of every thread, are full",
    );
}

/// A thread that made a packed box and exited leaves its page to the pool;
/// once the box is dropped the page is empty and must not stay locked: 1,000
/// such threads in turn must not leave 1,000 locked pages behind.
#[test]
fn packed_pages_of_exited_threads_do_not_stay_locked_once_emptied() {
    let out = child::run(
        "packed_pages_of_exited_threads_do_not_stay_locked_once_emptied",
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
                kb_delta_bytes(lck, base_lck),
                bytes_delta(bytes, base_bytes),
                "expected locked_bytes() to match VmLck"
            );
        },
    );
    child::expect_success(
        &out,
        "no locked packed page left behind by 1,000 exited threads whose boxes were dropped",
    );
}
