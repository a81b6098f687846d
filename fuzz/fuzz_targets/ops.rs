//! Drives an arbitrary sequence of operations against live boxes and a plain
//! model of each, and panics as soon as a box and its model disagree.
//!
//! Checked after every operation: the touched box holds exactly its model's
//! bytes; a box made under `LockPolicy::Require` is locked; the crate's count
//! of locked bytes equals what the live boxes account for. Checked when a box
//! is made: it starts all-zero (or equal to its source), a locked one is
//! wholly resident and counts whole pages covering value and canary, and its
//! `Debug` output shows none of its bytes. At the end every live box is
//! compared again, then all are dropped and the count must return to where it
//! started.
//!
//! Slice boxes can be sealed and unsealed; a sealed box is read through one
//! or two overlapping `Ref`s and written through a `RefMut`, against the same
//! model.
//!
//! To add an operation: a variant of [`Op`] and an arm in [`State::apply`].
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockedmem::{ForkPolicy, Isolation, LockPolicy, LockedBox, Options, Plain, SealedBox};

/// Operations per run; the rest of a longer input is ignored.
const MAX_OPS: usize = 64;
/// Live `LockedBox<[u8]>`s at once; creations beyond are skipped.
const MAX_SLICES: usize = 16;
/// Live `LockedBox<[u64; 8]>`s at once.
const MAX_SIZED: usize = 8;
/// The usual page size, only used to aim lengths at page boundaries.
const PAGE: usize = 4096;
/// Longest slice box: a few pages, so that a run stays fast.
const MAX_LEN: usize = 3 * PAGE + 100;
/// Length of the canary in front of every value.
const CANARY_LEN: usize = 16;

/// The sized value type under test.
type Words = [u64; 8];

fuzz_target!(|ops: Vec<Op>| {
    let mut state = State::new();
    for op in ops.iter().take(MAX_OPS) {
        state.apply(op);
    }
    state.finish();
});

/// Mirror of [`LockPolicy`], which has no `Arbitrary`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Lock {
    Require,
    BestEffort,
}

impl From<Lock> for LockPolicy {
    fn from(l: Lock) -> Self {
        match l {
            Lock::Require => LockPolicy::Require,
            Lock::BestEffort => LockPolicy::BestEffort,
        }
    }
}

/// Mirror of [`ForkPolicy`].
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fork {
    Wipe,
    Exclude,
    Keep,
}

impl From<Fork> for ForkPolicy {
    fn from(f: Fork) -> Self {
        match f {
            Fork::Wipe => ForkPolicy::Wipe,
            Fork::Exclude => ForkPolicy::Exclude,
            Fork::Keep => ForkPolicy::Keep,
        }
    }
}

/// A slice length in `0..=MAX_LEN`, biased towards zero, small lengths and
/// the edges where the value (plus canary) spills into another page.
#[derive(Arbitrary, Debug)]
enum Len {
    Zero,
    Small(u8),
    /// `pages * PAGE`, less the canary if `before_canary`, plus `delta`.
    NearPage {
        pages: u8,
        before_canary: bool,
        delta: i8,
    },
    Any(u16),
}

impl Len {
    fn get(&self) -> usize {
        match *self {
            Len::Zero => 0,
            Len::Small(n) => usize::from(n),
            Len::NearPage {
                pages,
                before_canary,
                delta,
            } => {
                let base = usize::from(pages % 4) * PAGE;
                let base = if before_canary {
                    base.saturating_sub(CANARY_LEN)
                } else {
                    base
                };
                base.saturating_add_signed(isize::from(delta)).min(MAX_LEN)
            }
            Len::Any(n) => usize::from(n) % (MAX_LEN + 1),
        }
    }
}

/// Bytes to put in a box: a distinctive pattern or the given bytes repeated.
#[derive(Arbitrary, Debug)]
enum Content {
    Pattern(u8),
    Bytes(Vec<u8>),
}

impl Content {
    fn make(&self, len: usize) -> Vec<u8> {
        match self {
            Content::Pattern(seed) => (0..len)
                .map(|i| seed.wrapping_add((i * 31 + (i >> 8)) as u8) | 1)
                .collect(),
            Content::Bytes(b) if b.is_empty() => vec![0; len],
            Content::Bytes(b) => b.iter().copied().cycle().take(len).collect(),
        }
    }
}

/// How a slice box is made.
#[derive(Arbitrary, Debug)]
enum How {
    /// `Options::new().lock(..).fork(..).zeroed_slice(len)`.
    Zeroed,
    /// `LockedBox::from_slice` (default policies; `lock` and `fork` unused).
    FromSlice(Content),
}

/// How a sized box is made.
#[derive(Arbitrary, Debug)]
enum SizedHow {
    /// `LockedBox::new_with`, checking the zeros it is handed.
    NewWith(Words),
    /// `LockedBox::new`.
    New(Words),
    /// `Options::new().lock(..).fork(..).zeroed()`.
    /// With `true`, `Isolation::Packed`.
    Zeroed(Lock, Fork, bool),
}

/// One step. `which` picks a live box modulo their number (no-op if none);
/// offsets and lengths are clamped into the box.
#[derive(Arbitrary, Debug)]
enum Op {
    Create {
        len: Len,
        lock: Lock,
        fork: Fork,
        packed: bool,
        how: How,
    },
    /// `lockedmem::trim()`: gives back cached slots and empty packed pages;
    /// live boxes must not notice.
    Trim,
    Write {
        which: u8,
        offset: u16,
        bytes: Vec<u8>,
    },
    Fill {
        which: u8,
        offset: u16,
        len: u16,
        byte: u8,
    },
    FillAll {
        which: u8,
        byte: u8,
    },
    Read {
        which: u8,
        start: u16,
        end: u16,
    },
    Drop {
        which: u8,
    },
    /// Moves a box to the end of the list (the box value moves in memory).
    Move {
        which: u8,
    },
    Debug {
        which: u8,
    },
    CreateSized {
        how: SizedHow,
    },
    WriteSized {
        which: u8,
        index: u8,
        value: u64,
    },
    DropSized {
        which: u8,
    },
    /// Seals a slice box (it moves to the sealed list).
    Seal {
        which: u8,
    },
    /// Reads a range of a sealed box through a `Ref`; with `nested`, through
    /// a second `Ref` taken while the first is out, dropped in either order.
    BorrowRead {
        which: u8,
        start: u16,
        end: u16,
        nested: bool,
        inner_first: bool,
    },
    /// Writes into a sealed box through a `RefMut`.
    BorrowWrite {
        which: u8,
        offset: u16,
        bytes: Vec<u8>,
    },
    /// Unseals a sealed box (it moves back to the slice list).
    Unseal {
        which: u8,
    },
    DropSealed {
        which: u8,
    },
}

/// A live box, its model, and what it was made with.
struct Slot<T: ?Sized + lockedmem::Plain, M> {
    b: LockedBox<T>,
    model: M,
    lock: LockPolicy,
    /// How the box is isolated.
    isolation: Isolation,
}

type SliceSlot = Slot<[u8], Vec<u8>>;
type SizedSlot = Slot<Words, Words>;

/// A sealed slice box and its model.
struct SealedSlot {
    b: SealedBox<[u8]>,
    model: Vec<u8>,
    lock: LockPolicy,
}

struct State {
    slices: Vec<SliceSlot>,
    sized: Vec<SizedSlot>,
    sealed: Vec<SealedSlot>,
    /// `lockedmem::locked_bytes()` before the run, after a trim.
    baseline: usize,
}

fn pick(which: u8, live: usize) -> Option<usize> {
    (live > 0).then(|| usize::from(which) % live)
}

/// `offset` clamped into `0..=len`.
fn clamp(offset: u16, len: usize) -> usize {
    usize::from(offset) % (len + 1)
}

impl State {
    fn new() -> Self {
        State {
            slices: Vec::new(),
            sized: Vec::new(),
            sealed: Vec::new(),
            baseline: {
                lockedmem::trim();
                lockedmem::locked_bytes()
            },
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create {
                len,
                lock,
                fork,
                packed,
                how,
            } => {
                if self.slices.len() >= MAX_SLICES {
                    return;
                }
                let len = len.get();
                let (b, model, lock) = match how {
                    How::Zeroed => {
                        let b = Options::new()
                            .lock((*lock).into())
                            .fork((*fork).into())
                            .isolation(isolation(*packed))
                            .zeroed_slice::<u8>(len)
                            .unwrap_or_else(|e| panic!("zeroed_slice({len}): {e}"));
                        (b, vec![0; len], (*lock).into())
                    }
                    How::FromSlice(content) => {
                        let src = content.make(len);
                        let b = LockedBox::from_slice(&src)
                            .unwrap_or_else(|e| panic!("from_slice({len}): {e}"));
                        (b, src, LockPolicy::Require)
                    }
                };
                let mut b = b;
                check_new(&b, len);
                assert_eq!(&b[..], &model[..], "new box differs from its source");
                check_debug(&mut b, flip_bytes);
                self.slices.push(Slot {
                    isolation: b.isolation(),
                    b,
                    model,
                    lock,
                });
                self.check_slice(self.slices.len() - 1);
            }
            Op::Write {
                which,
                offset,
                bytes,
            } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = &mut self.slices[i];
                let off = clamp(*offset, s.model.len());
                let n = bytes.len().min(s.model.len() - off);
                s.b[off..off + n].copy_from_slice(&bytes[..n]);
                s.model[off..off + n].copy_from_slice(&bytes[..n]);
                self.check_slice(i);
            }
            Op::Fill {
                which,
                offset,
                len,
                byte,
            } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = &mut self.slices[i];
                let off = clamp(*offset, s.model.len());
                let end = off + usize::from(*len).min(s.model.len() - off);
                s.b[off..end].fill(*byte);
                s.model[off..end].fill(*byte);
                self.check_slice(i);
            }
            Op::FillAll { which, byte } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = &mut self.slices[i];
                s.b.fill(*byte);
                s.model.fill(*byte);
                self.check_slice(i);
            }
            Op::Read { which, start, end } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = &self.slices[i];
                let (a, z) = (clamp(*start, s.model.len()), clamp(*end, s.model.len()));
                let (a, z) = (a.min(z), a.max(z));
                assert_eq!(s.b.get(a..z), s.model.get(a..z), "read {a}..{z}");
                self.check_slice(i);
            }
            Op::Drop { which } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                self.check_slice(i);
                let s = self.slices.swap_remove(i);
                drop(s.b);
            }
            Op::Move { which } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = self.slices.remove(i);
                self.slices.push(s);
                self.check_slice(self.slices.len() - 1);
            }
            Op::Debug { which } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                check_debug(&mut self.slices[i].b, flip_bytes);
            }
            Op::CreateSized { how } => {
                if self.sized.len() >= MAX_SIZED {
                    return;
                }
                let (b, model, lock) = match how {
                    SizedHow::NewWith(init) => {
                        let b = LockedBox::<Words>::new_with(|v| {
                            assert_eq!(*v, [0; 8], "new_with got non-zero memory");
                            *v = *init;
                        })
                        .unwrap_or_else(|e| panic!("new_with: {e}"));
                        (b, *init, LockPolicy::Require)
                    }
                    SizedHow::New(value) => {
                        let b = LockedBox::new(*value).unwrap_or_else(|e| panic!("new: {e}"));
                        (b, *value, LockPolicy::Require)
                    }
                    SizedHow::Zeroed(lock, fork, packed) => {
                        let b = Options::new()
                            .lock((*lock).into())
                            .fork((*fork).into())
                            .isolation(isolation(*packed))
                            .zeroed::<Words>()
                            .unwrap_or_else(|e| panic!("zeroed: {e}"));
                        (b, [0; 8], (*lock).into())
                    }
                };
                let mut b = b;
                check_new(&b, size_of::<Words>());
                check_debug(&mut b, flip_words);
                self.sized.push(Slot {
                    isolation: b.isolation(),
                    b,
                    model,
                    lock,
                });
                self.check_sized(self.sized.len() - 1);
            }
            Op::WriteSized {
                which,
                index,
                value,
            } => {
                let Some(i) = pick(*which, self.sized.len()) else {
                    return;
                };
                let s = &mut self.sized[i];
                let k = usize::from(*index) % s.model.len();
                s.b[k] = *value;
                s.model[k] = *value;
                self.check_sized(i);
            }
            Op::DropSized { which } => {
                let Some(i) = pick(*which, self.sized.len()) else {
                    return;
                };
                self.check_sized(i);
                let s = self.sized.swap_remove(i);
                drop(s.b);
            }
            Op::Trim => {
                lockedmem::trim();
                for i in 0..self.slices.len() {
                    self.check_slice(i);
                }
                for i in 0..self.sized.len() {
                    self.check_sized(i);
                }
                for i in 0..self.sealed.len() {
                    self.check_sealed(i);
                }
            }
            Op::Seal { which } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = self.slices.swap_remove(i);
                let mut b = s.b.seal().unwrap_or_else(|e| panic!("seal: {e}"));
                check_debug_sealed(&mut b);
                self.sealed.push(SealedSlot {
                    b,
                    model: s.model,
                    lock: s.lock,
                });
                self.check_sealed(self.sealed.len() - 1);
            }
            Op::BorrowRead {
                which,
                start,
                end,
                nested,
                inner_first,
            } => {
                let Some(i) = pick(*which, self.sealed.len()) else {
                    return;
                };
                let s = &self.sealed[i];
                let (a, z) = (clamp(*start, s.model.len()), clamp(*end, s.model.len()));
                let (a, z) = (a.min(z), a.max(z));
                let outer = s.b.borrow();
                assert_eq!(outer.get(a..z), s.model.get(a..z), "sealed read {a}..{z}");
                if *nested {
                    let inner = s.b.borrow();
                    assert_eq!(&inner[..], &s.model[..], "nested read");
                    if *inner_first {
                        drop(inner);
                        assert_eq!(&outer[..], &s.model[..], "outer after inner");
                    } else {
                        drop(outer);
                        assert_eq!(&inner[..], &s.model[..], "inner after outer");
                    }
                }
                check_lock_sealed(&s.b, s.lock);
            }
            Op::BorrowWrite {
                which,
                offset,
                bytes,
            } => {
                let Some(i) = pick(*which, self.sealed.len()) else {
                    return;
                };
                let s = &mut self.sealed[i];
                let off = clamp(*offset, s.model.len());
                let n = bytes.len().min(s.model.len() - off);
                s.b.borrow_mut()[off..off + n].copy_from_slice(&bytes[..n]);
                s.model[off..off + n].copy_from_slice(&bytes[..n]);
                self.check_sealed(i);
            }
            Op::Unseal { which } => {
                let Some(i) = pick(*which, self.sealed.len()) else {
                    return;
                };
                let s = self.sealed.swap_remove(i);
                let b = s.b.unseal();
                assert_eq!(
                    b.isolation(),
                    Isolation::Page,
                    "sealing moves a box to its own pages"
                );
                self.slices.push(Slot {
                    isolation: b.isolation(),
                    b,
                    model: s.model,
                    lock: s.lock,
                });
                self.check_slice(self.slices.len() - 1);
            }
            Op::DropSealed { which } => {
                let Some(i) = pick(*which, self.sealed.len()) else {
                    return;
                };
                self.check_sealed(i);
                let s = self.sealed.swap_remove(i);
                drop(s.b);
            }
        }
        self.check_accounting();
    }

    fn check_sealed(&self, i: usize) {
        let s = &self.sealed[i];
        let r = s.b.borrow();
        assert_eq!(r.len(), s.model.len(), "sealed box {i}: length");
        assert!(*r == *s.model, "sealed box {i}: contents differ");
        drop(r);
        check_lock_sealed(&s.b, s.lock);
    }

    fn check_slice(&self, i: usize) {
        let s = &self.slices[i];
        assert_eq!(s.b.len(), s.model.len(), "slice box {i}: length");
        if let Some(k) = (0..s.model.len()).find(|&k| s.b[k] != s.model[k]) {
            panic!(
                "slice box {i} ({} bytes): byte {k} is {:#04x}, model has {:#04x}",
                s.model.len(),
                s.b[k],
                s.model[k]
            );
        }
        check_lock(&s.b, s.lock);
    }

    fn check_sized(&self, i: usize) {
        let s = &self.sized[i];
        assert_eq!(*s.b, s.model, "sized box {i}: contents differ");
        check_lock(&s.b, s.lock);
    }

    /// The crate's counters agree with the live boxes.
    fn check_accounting(&self) {
        let page = |i: &Isolation| *i == Isolation::Page;
        let page_boxes = self.slices.iter().filter(|s| page(&s.isolation)).count()
            + self.sized.iter().filter(|s| page(&s.isolation)).count()
            + self.sealed.len();
        let packed_boxes = self.slices.len() + self.sized.len() + self.sealed.len() - page_boxes;
        let st = lockedmem::stats();
        assert_eq!(
            (st.page_boxes, st.packed_boxes),
            (page_boxes, packed_boxes),
            "stats() does not count the live boxes: {st:?}"
        );
        assert_eq!(st.locked_bytes, lockedmem::locked_bytes());
        assert!(
            st.cached_bytes <= lockedmem::cache_limit(),
            "cache over its limit: {st:?}"
        );
        assert!(st.locked_bytes >= st.cached_bytes);
    }

    /// Compares every live box, then drops them all.
    fn finish(mut self) {
        for i in 0..self.slices.len() {
            self.check_slice(i);
            check_debug(&mut self.slices[i].b, flip_bytes);
        }
        for i in 0..self.sized.len() {
            self.check_sized(i);
            check_debug(&mut self.sized[i].b, flip_words);
        }
        for i in 0..self.sealed.len() {
            self.check_sealed(i);
        }
        self.check_accounting();
        for s in self.sealed.drain(..) {
            drop(s.b);
        }
        for s in self.slices.drain(..) {
            drop(s.b);
        }
        for s in self.sized.drain(..) {
            drop(s.b);
        }
        let st = lockedmem::stats();
        assert_eq!((st.page_boxes, st.packed_boxes), (0, 0), "{st:?}");
        lockedmem::trim();
        assert_eq!(
            lockedmem::locked_bytes(),
            self.baseline,
            "locked bytes leaked"
        );
        let st = lockedmem::stats();
        assert_eq!(
            (st.cached_slots, st.mappings),
            (0, 0),
            "trim left something: {st:?}"
        );
    }
}

fn check_lock_sealed(b: &SealedBox<[u8]>, lock: LockPolicy) {
    if lock == LockPolicy::Require {
        assert!(
            b.is_locked(),
            "a sealed LockPolicy::Require box is not locked"
        );
    }
}

fn check_lock<T: ?Sized + lockedmem::Plain>(b: &LockedBox<T>, lock: LockPolicy) {
    if lock == LockPolicy::Require {
        assert!(b.is_locked(), "a LockPolicy::Require box is not locked");
    }
}

/// Checks a fresh box of `size` value bytes: a locked one is wholly
/// resident, on as many pages as its isolation needs.
fn check_new<T: ?Sized + Plain>(b: &LockedBox<T>, size: usize) {
    if !b.is_locked() {
        return;
    }
    let r = b.residency().expect("mincore on a fresh box");
    assert!(r.all_resident(), "locked box not resident: {r:?}");
    match b.isolation() {
        // A packed slot is on one page.
        Isolation::Packed => assert_eq!(r.total, 1, "{size}-byte packed box"),
        // Whole pages covering value and canary, less than a page spare.
        Isolation::Page => {
            let needed = size + CANARY_LEN;
            assert!(
                r.total * PAGE >= needed && (r.total - 1) * PAGE < needed,
                "{} pages for a {size}-byte value",
                r.total
            );
        }
    }
}

fn isolation(packed: bool) -> Isolation {
    if packed {
        Isolation::Packed
    } else {
        Isolation::Page
    }
}

/// `Debug` of a box must not depend on its contents: formatting it, flipping
/// every bit of the value and formatting it again must give the same text.
/// (Searching the text for the bytes gives false alarms: the fuzzer learns to
/// write the Debug text itself into a box.)
fn check_debug<T: ?Sized + Plain>(b: &mut LockedBox<T>, flip: impl Fn(&mut T)) {
    let before = format!("{b:?}");
    assert!(
        before.starts_with("LockedBox"),
        "unexpected Debug: {before}"
    );
    flip(b);
    let after = format!("{b:?}");
    flip(b);
    assert_eq!(before, after, "Debug depends on the box's contents");
}

fn flip_bytes(v: &mut [u8]) {
    v.iter_mut().for_each(|x| *x ^= 0xFF);
}

fn flip_words(v: &mut Words) {
    v.iter_mut().for_each(|x| *x ^= u64::MAX);
}

/// As `check_debug`, for a sealed box (flipped through a `RefMut`).
fn check_debug_sealed(b: &mut SealedBox<[u8]>) {
    let before = format!("{b:?}");
    assert!(
        before.starts_with("SealedBox"),
        "unexpected Debug: {before}"
    );
    flip_bytes(&mut b.borrow_mut());
    let after = format!("{b:?}");
    flip_bytes(&mut b.borrow_mut());
    assert_eq!(before, after, "Debug depends on the box's contents");
}
