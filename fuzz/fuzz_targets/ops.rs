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

use std::fmt::Debug;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockedbox::{ForkPolicy, LockPolicy, LockedBox, Options, SealedBox};

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
    Zeroed(Lock, Fork),
}

/// One step. `which` picks a live box modulo their number (no-op if none);
/// offsets and lengths are clamped into the box.
#[derive(Arbitrary, Debug)]
enum Op {
    Create {
        len: Len,
        lock: Lock,
        fork: Fork,
        how: How,
    },
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
struct Slot<T: ?Sized + lockedbox::Plain, M> {
    b: LockedBox<T>,
    model: M,
    lock: LockPolicy,
    /// What the box added to `lockedbox::locked_bytes()`.
    locked_bytes: usize,
}

type SliceSlot = Slot<[u8], Vec<u8>>;
type SizedSlot = Slot<Words, Words>;

/// A sealed slice box and its model.
struct SealedSlot {
    b: SealedBox<[u8]>,
    model: Vec<u8>,
    lock: LockPolicy,
    locked_bytes: usize,
}

struct State {
    slices: Vec<SliceSlot>,
    sized: Vec<SizedSlot>,
    sealed: Vec<SealedSlot>,
    /// `lockedbox::locked_bytes()` before the run.
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
            baseline: lockedbox::locked_bytes(),
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create {
                len,
                lock,
                fork,
                how,
            } => {
                if self.slices.len() >= MAX_SLICES {
                    return;
                }
                let len = len.get();
                let before = lockedbox::locked_bytes();
                let (b, model, lock) = match how {
                    How::Zeroed => {
                        let b = Options::new()
                            .lock((*lock).into())
                            .fork((*fork).into())
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
                let locked_bytes = check_new(&b, len, before);
                assert_eq!(&b[..], &model[..], "new box differs from its source");
                check_debug(&b, &model);
                self.slices.push(Slot {
                    b,
                    model,
                    lock,
                    locked_bytes,
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
                drop_box(s.b, s.locked_bytes);
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
                let s = &self.slices[i];
                check_debug(&s.b, &s.model);
            }
            Op::CreateSized { how } => {
                if self.sized.len() >= MAX_SIZED {
                    return;
                }
                let before = lockedbox::locked_bytes();
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
                    SizedHow::Zeroed(lock, fork) => {
                        let b = Options::new()
                            .lock((*lock).into())
                            .fork((*fork).into())
                            .zeroed::<Words>()
                            .unwrap_or_else(|e| panic!("zeroed: {e}"));
                        (b, [0; 8], (*lock).into())
                    }
                };
                let locked_bytes = check_new(&b, size_of::<Words>(), before);
                check_debug(&b, &words_bytes(&model));
                check_debug_words(&b, &model);
                self.sized.push(Slot {
                    b,
                    model,
                    lock,
                    locked_bytes,
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
                drop_box(s.b, s.locked_bytes);
            }
            Op::Seal { which } => {
                let Some(i) = pick(*which, self.slices.len()) else {
                    return;
                };
                let s = self.slices.swap_remove(i);
                let b = s.b.seal().unwrap_or_else(|e| panic!("seal: {e}"));
                check_debug(&b, &s.model);
                self.sealed.push(SealedSlot {
                    b,
                    model: s.model,
                    lock: s.lock,
                    locked_bytes: s.locked_bytes,
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
                self.slices.push(Slot {
                    b: s.b.unseal(),
                    model: s.model,
                    lock: s.lock,
                    locked_bytes: s.locked_bytes,
                });
                self.check_slice(self.slices.len() - 1);
            }
            Op::DropSealed { which } => {
                let Some(i) = pick(*which, self.sealed.len()) else {
                    return;
                };
                self.check_sealed(i);
                let s = self.sealed.swap_remove(i);
                drop_box(s.b, s.locked_bytes);
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

    /// The crate's count of locked bytes is what the live boxes added to it.
    fn check_accounting(&self) {
        let live: usize = self.slices.iter().map(|s| s.locked_bytes).sum::<usize>()
            + self.sized.iter().map(|s| s.locked_bytes).sum::<usize>()
            + self.sealed.iter().map(|s| s.locked_bytes).sum::<usize>();
        assert_eq!(
            lockedbox::locked_bytes(),
            self.baseline + live,
            "locked_bytes() does not match the live boxes"
        );
    }

    /// Compares every live box, then drops them all.
    fn finish(mut self) {
        for i in 0..self.slices.len() {
            self.check_slice(i);
            check_debug(&self.slices[i].b, &self.slices[i].model);
        }
        for i in 0..self.sized.len() {
            self.check_sized(i);
            check_debug_words(&self.sized[i].b, &self.sized[i].model);
        }
        for i in 0..self.sealed.len() {
            self.check_sealed(i);
        }
        self.check_accounting();
        for s in self.sealed.drain(..) {
            drop_box(s.b, s.locked_bytes);
        }
        for s in self.slices.drain(..) {
            drop_box(s.b, s.locked_bytes);
        }
        for s in self.sized.drain(..) {
            drop_box(s.b, s.locked_bytes);
        }
        assert_eq!(
            lockedbox::locked_bytes(),
            self.baseline,
            "locked bytes leaked"
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

fn check_lock<T: ?Sized + lockedbox::Plain>(b: &LockedBox<T>, lock: LockPolicy) {
    if lock == LockPolicy::Require {
        assert!(b.is_locked(), "a LockPolicy::Require box is not locked");
    }
}

/// Checks a fresh box of `size` value bytes made when `locked_bytes()` was
/// `before`; returns what it added to the count.
fn check_new<T: ?Sized + lockedbox::Plain>(b: &LockedBox<T>, size: usize, before: usize) -> usize {
    let after = lockedbox::locked_bytes();
    assert!(after >= before, "locked_bytes() fell while making a box");
    let added = after - before;
    if !b.is_locked() {
        assert_eq!(added, 0, "an unlocked box counted locked bytes");
        return 0;
    }
    let r = b.residency().expect("mincore on a fresh box");
    assert!(r.all_resident(), "locked box not resident: {r:?}");
    assert!(r.total >= 1, "no data page");
    assert_eq!(added % r.total, 0, "locked bytes not whole pages");
    let page = added / r.total;
    assert!(page.is_power_of_two(), "page size {page}");
    let needed = size + CANARY_LEN;
    assert!(
        added >= needed && added - needed < page,
        "{added} locked bytes for a {size}-byte value ({} pages)",
        r.total
    );
    added
}

/// Drops a box (sealed or not) and checks that the count of locked bytes
/// fell by what it added.
fn drop_box<B>(b: B, added: usize) {
    let before = lockedbox::locked_bytes();
    drop(b);
    assert_eq!(
        before - lockedbox::locked_bytes(),
        added,
        "dropping a box released a different count of locked bytes"
    );
}

fn words_bytes(w: &Words) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// `Debug` of a box must not show its bytes. Checked only when the first
/// bytes are distinctive enough not to match by chance (at least 8 bytes,
/// at least 4 distinct values), and only on a 16-byte window.
fn check_debug(b: &impl Debug, bytes: &[u8]) {
    let window = &bytes[..bytes.len().min(16)];
    if window.len() < 8 {
        return;
    }
    let mut distinct = window.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return;
    }
    let dbg = format!("{b:?}");
    assert!(
        dbg.starts_with("LockedBox") || dbg.starts_with("SealedBox"),
        "unexpected Debug: {dbg}"
    );
    let list = format!("{window:?}");
    let list = &list[1..list.len() - 1];
    let hex: String = window.iter().map(|x| format!("{x:02x}")).collect();
    let hex_upper = hex.to_uppercase();
    let leaks = dbg.contains(list)
        || dbg.contains(&hex)
        || dbg.contains(&hex_upper)
        || std::str::from_utf8(window).is_ok_and(|s| dbg.contains(s));
    assert!(!leaks, "Debug shows the box's bytes: {dbg}");
}

/// `Debug` of a sized box must not show its words either, in decimal or hex;
/// checked for the first word when it is large enough not to match by chance.
fn check_debug_words(b: &impl Debug, w: &Words) {
    if w[0] < 1 << 32 {
        return;
    }
    let dbg = format!("{b:?}");
    let leaks = dbg.contains(&w[0].to_string())
        || dbg.contains(&format!("{:x}", w[0]))
        || dbg.contains(&format!("{:X}", w[0]));
    assert!(!leaks, "Debug shows the box's first word: {dbg}");
}
