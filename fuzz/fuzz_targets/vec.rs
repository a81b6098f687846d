//! Drives two `LockedVec<u8>`s and two `LockedString`s through an arbitrary
//! sequence of operations beside a `Vec<u8>` / `String` model of each, and
//! panics as soon as a container and its model disagree.
//!
//! Checked after every operation, for every container: its length, its
//! contents, `capacity() >= len()` (vectors), `is_locked()`, and that
//! `as_ref()` agrees with `Deref`. Checked per operation: `try_reserve(n)`
//! leaves room for `n` more; `truncate`/`clear` keep the memory; a sealed
//! vector reads back its elements, is locked, and unseals to a box holding
//! them; `==` between containers is the models' equality; `read_line`
//! consumes no byte past the line's terminator and returns what the model
//! says (or the error it says); `read_from` takes the whole input or refuses
//! one longer than `max_len` with `InputTooLong`; `from_utf8` takes exactly
//! the valid UTF-8; `Debug` does not depend on the contents (flipping every
//! byte of a vector, or replacing every byte of a string, leaves it
//! unchanged).
//!
//! To add an operation: a variant of [`Op`] and an arm in [`State::apply`].
#![no_main]

use std::io::Write;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockedmem::{Error, LockedString, LockedVec};
use zeroize::Zeroize;

/// Operations per run; the rest of a longer input is ignored.
const MAX_OPS: usize = 128;
/// Most a `try_reserve` or `with_capacity` asks room for, with the current
/// length: 1 MiB, so that a run stays fast.
const MAX_RESERVE: usize = 1 << 20;

fuzz_target!(|ops: Vec<Op>| {
    let mut state = State::new();
    for op in ops.iter().take(MAX_OPS) {
        state.apply(op);
        state.check_all();
    }
});

/// A `max_len` for `read_line` / `read_from`, relative to the input's length
/// (where the answer changes), or absolute.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum MaxLen {
    /// The input's length (or the line's) plus `delta`, at least 0.
    Near(i8),
    Any(u16),
    /// `usize::MAX - k`.
    Huge(u8),
}

impl MaxLen {
    fn get(self, around: usize) -> usize {
        match self {
            MaxLen::Near(d) => around.saturating_add_signed(isize::from(d)),
            MaxLen::Any(n) => usize::from(n),
            MaxLen::Huge(k) => usize::MAX - usize::from(k),
        }
    }
}

/// How a sealed vector becomes a vector again.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Reopen {
    /// `LockedVec::new()` + `try_extend_from_slice(&sealed.borrow())`.
    FromBorrow,
    /// `sealed.unseal()`, then a new vector extended from the box.
    FromUnsealed,
}

/// One step. `v`/`s` pick one of the two vectors / strings (by parity).
#[derive(Arbitrary, Debug)]
enum Op {
    Push {
        v: bool,
        byte: u8,
    },
    Extend {
        v: bool,
        bytes: Vec<u8>,
    },
    Reserve {
        v: bool,
        additional: u32,
    },
    /// Replaces the vector with `LockedVec::with_capacity`.
    WithCapacity {
        v: bool,
        capacity: u32,
    },
    Truncate {
        v: bool,
        len: u16,
    },
    Clear {
        v: bool,
    },
    /// `zeroize::Zeroize::zeroize`: empties the vector.
    Zeroize {
        v: bool,
    },
    Seal {
        v: bool,
        reopen: Reopen,
    },
    /// `io::Write::write_all`, in pieces of `chunk` bytes (0: in one call;
    /// also tries an empty `write`).
    Write {
        v: bool,
        bytes: Vec<u8>,
        chunk: u8,
    },
    /// `LockedVec::read_from(&input[..], max_len)` replaces the vector if it
    /// succeeds.
    ReadFrom {
        v: bool,
        input: Vec<u8>,
        max_len: MaxLen,
    },
    /// `==` between the vectors (or a vector and itself).
    EqVec {
        a: bool,
        b: bool,
    },
    DebugVec {
        v: bool,
    },
    PushStr {
        s: bool,
        text: String,
    },
    PushChar {
        s: bool,
        c: char,
    },
    ClearStr {
        s: bool,
    },
    ZeroizeStr {
        s: bool,
    },
    /// `LockedString::read_line(&mut input, max_len)` replaces the string if
    /// it succeeds.
    ReadLine {
        s: bool,
        input: Vec<u8>,
        max_len: MaxLen,
    },
    EqStr {
        a: bool,
        b: bool,
    },
    DebugStr {
        s: bool,
    },
    /// `LockedString::from_utf8(vector)`: the string on success; the vector
    /// is consumed (and replaced by an empty one) either way.
    FromUtf8 {
        v: bool,
        s: bool,
    },
    /// `LockedString::into_bytes`: the string's bytes become the vector; the
    /// string is replaced by an empty one.
    IntoBytes {
        s: bool,
        v: bool,
    },
}

struct State {
    vecs: [LockedVec<u8>; 2],
    vec_models: [Vec<u8>; 2],
    strs: [LockedString; 2],
    str_models: [String; 2],
}

fn ix(b: bool) -> usize {
    usize::from(b)
}

impl State {
    fn new() -> Self {
        State {
            vecs: [LockedVec::new(), LockedVec::new()],
            vec_models: [Vec::new(), Vec::new()],
            strs: [LockedString::new(), LockedString::new()],
            str_models: [String::new(), String::new()],
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Push { v, byte } => {
                let i = ix(*v);
                self.vecs[i]
                    .try_push(*byte)
                    .unwrap_or_else(|e| panic!("try_push: {e}"));
                self.vec_models[i].push(*byte);
            }
            Op::Extend { v, bytes } => {
                let i = ix(*v);
                self.vecs[i]
                    .try_extend_from_slice(bytes)
                    .unwrap_or_else(|e| panic!("try_extend_from_slice: {e}"));
                self.vec_models[i].extend_from_slice(bytes);
            }
            Op::Reserve { v, additional } => {
                let i = ix(*v);
                let len = self.vec_models[i].len();
                let additional = (*additional as usize) % (MAX_RESERVE.saturating_sub(len) + 1);
                let before = self.vecs[i].capacity();
                self.vecs[i]
                    .try_reserve(additional)
                    .unwrap_or_else(|e| panic!("try_reserve({additional}): {e}"));
                let cap = self.vecs[i].capacity();
                assert!(
                    cap >= len + additional,
                    "try_reserve({additional}) at len {len}: capacity {cap}"
                );
                if before >= len + additional {
                    assert_eq!(cap, before, "try_reserve grew a vector with room");
                }
            }
            Op::WithCapacity { v, capacity } => {
                let i = ix(*v);
                let capacity = (*capacity as usize) % (MAX_RESERVE + 1);
                let fresh = LockedVec::<u8>::with_capacity(capacity)
                    .unwrap_or_else(|e| panic!("with_capacity({capacity}): {e}"));
                assert!(fresh.is_empty(), "with_capacity: not empty");
                assert!(
                    fresh.capacity() >= capacity,
                    "with_capacity({capacity}): capacity {}",
                    fresh.capacity()
                );
                self.vecs[i] = fresh;
                self.vec_models[i].clear();
            }
            Op::Truncate { v, len } => {
                let i = ix(*v);
                let len = usize::from(*len);
                let cap = self.vecs[i].capacity();
                self.vecs[i].truncate(len);
                self.vec_models[i].truncate(len);
                assert_eq!(self.vecs[i].capacity(), cap, "truncate changed capacity");
            }
            Op::Clear { v } => {
                let i = ix(*v);
                let cap = self.vecs[i].capacity();
                self.vecs[i].clear();
                self.vec_models[i].clear();
                assert_eq!(self.vecs[i].capacity(), cap, "clear changed capacity");
            }
            Op::Zeroize { v } => {
                let i = ix(*v);
                let cap = self.vecs[i].capacity();
                self.vecs[i].zeroize();
                self.vec_models[i].clear();
                assert_eq!(self.vecs[i].capacity(), cap, "zeroize changed capacity");
            }
            Op::Seal { v, reopen } => {
                let i = ix(*v);
                let model = &self.vec_models[i];
                let vec = std::mem::take(&mut self.vecs[i]);
                let sealed = vec.seal().unwrap_or_else(|e| panic!("seal: {e}"));
                assert!(sealed.is_locked(), "sealed vector not locked");
                {
                    let r = sealed.borrow();
                    assert_eq!(r.len(), model.len(), "sealed: length");
                    assert!(*r == **model, "sealed: contents differ");
                }
                let mut fresh = LockedVec::new();
                match reopen {
                    Reopen::FromBorrow => {
                        fresh
                            .try_extend_from_slice(&sealed.borrow())
                            .unwrap_or_else(|e| panic!("extend from sealed: {e}"));
                        drop(sealed);
                    }
                    Reopen::FromUnsealed => {
                        let b = sealed.unseal();
                        assert!(b.is_locked(), "unsealed box not locked");
                        assert!(b[..] == **model, "unsealed: contents differ");
                        fresh
                            .try_extend_from_slice(&b)
                            .unwrap_or_else(|e| panic!("extend from unsealed: {e}"));
                    }
                }
                self.vecs[i] = fresh;
            }
            Op::Write { v, bytes, chunk } => {
                let i = ix(*v);
                let w = &mut self.vecs[i];
                assert_eq!(w.write(&[]).expect("empty write"), 0, "empty write");
                if *chunk == 0 {
                    w.write_all(bytes).expect("write_all");
                } else {
                    for piece in bytes.chunks(usize::from(*chunk)) {
                        w.write_all(piece).expect("write_all");
                    }
                }
                w.flush().expect("flush");
                self.vec_models[i].extend_from_slice(bytes);
            }
            Op::ReadFrom { v, input, max_len } => {
                let i = ix(*v);
                let max_len = max_len.get(input.len());
                let got = LockedVec::read_from(&input[..], max_len);
                if input.len() > max_len {
                    match got {
                        Err(Error::InputTooLong { max_len: m }) => {
                            assert_eq!(m, max_len, "InputTooLong reports another limit")
                        }
                        Err(e) => panic!(
                            "read_from({} bytes, {max_len}): expected InputTooLong, got {e:?}",
                            input.len()
                        ),
                        Ok(r) => panic!(
                            "read_from({} bytes, {max_len}): expected InputTooLong, got {} bytes",
                            input.len(),
                            r.len()
                        ),
                    }
                } else {
                    let r = got.unwrap_or_else(|e| {
                        panic!("read_from({} bytes, {max_len}): {e:?}", input.len())
                    });
                    assert_eq!(
                        r.len(),
                        input.len(),
                        "read_from(.., {max_len}): length, capacity {}",
                        r.capacity()
                    );
                    assert!(r[..] == input[..], "read_from: contents differ");
                    self.vecs[i] = r;
                    self.vec_models[i].clone_from(input);
                }
            }
            Op::EqVec { a, b } => {
                let (a, b) = (ix(*a), ix(*b));
                let want = self.vec_models[a] == self.vec_models[b];
                assert_eq!(self.vecs[a] == self.vecs[b], want, "LockedVec ==");
                assert_eq!(self.vecs[a] != self.vecs[b], !want, "LockedVec !=");
            }
            Op::DebugVec { v } => {
                let w = &mut self.vecs[ix(*v)];
                let before = format!("{w:?}");
                assert!(
                    before.starts_with("LockedVec"),
                    "unexpected Debug: {before}"
                );
                flip_bytes(w);
                let after = format!("{w:?}");
                flip_bytes(w);
                assert_eq!(before, after, "Debug depends on the vector's contents");
            }
            Op::PushStr { s, text } => {
                let i = ix(*s);
                self.strs[i]
                    .try_push_str(text)
                    .unwrap_or_else(|e| panic!("try_push_str: {e}"));
                self.str_models[i].push_str(text);
            }
            Op::PushChar { s, c } => {
                let i = ix(*s);
                self.strs[i]
                    .try_push(*c)
                    .unwrap_or_else(|e| panic!("try_push({c:?}): {e}"));
                self.str_models[i].push(*c);
            }
            Op::ClearStr { s } => {
                let i = ix(*s);
                self.strs[i].clear();
                self.str_models[i].clear();
            }
            Op::ZeroizeStr { s } => {
                let i = ix(*s);
                self.strs[i].zeroize();
                self.str_models[i].clear();
            }
            Op::ReadLine { s, input, max_len } => {
                let i = ix(*s);
                let nl = input.iter().position(|&b| b == b'\n');
                // What the model consumes: through the `\n`, or everything.
                let consumed = nl.map_or(input.len(), |n| n + 1);
                let raw = &input[..nl.unwrap_or(input.len())];
                let line = if nl.is_some() {
                    raw.strip_suffix(b"\r").unwrap_or(raw)
                } else {
                    raw
                };
                let max_len = max_len.get(line.len());
                let mut rest = &input[..];
                let got = LockedString::read_line(&mut rest, max_len);
                let taken = input.len() - rest.len();
                assert!(
                    taken <= consumed,
                    "read_line consumed {taken} bytes, the line ends after {consumed}"
                );
                match got {
                    Ok(r) => {
                        assert!(!input.is_empty(), "read_line: Ok on empty input");
                        assert!(
                            line.len() <= max_len,
                            "read_line: Ok for a {}-byte line, max_len {max_len}",
                            line.len()
                        );
                        assert_eq!(r.as_bytes(), line, "read_line: line differs");
                        assert_eq!(taken, consumed, "read_line: stopped early");
                        self.strs[i] = r;
                        self.str_models[i] = String::from_utf8(line.to_vec()).expect("model");
                    }
                    Err(Error::Io { source }) => {
                        assert!(input.is_empty(), "read_line: Io error on a slice: {source}");
                        assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
                    }
                    Err(Error::InputTooLong { max_len: m }) => {
                        assert_eq!(m, max_len, "InputTooLong reports another limit");
                        assert!(
                            line.len() > max_len,
                            "read_line: InputTooLong for a {}-byte line (of {} raw bytes), \
                             max_len {max_len}",
                            line.len(),
                            raw.len()
                        );
                    }
                    Err(Error::InvalidUtf8) => {
                        assert!(
                            line.len() <= max_len,
                            "read_line: InvalidUtf8 before InputTooLong"
                        );
                        assert!(
                            std::str::from_utf8(line).is_err(),
                            "read_line: InvalidUtf8 for valid UTF-8"
                        );
                        assert_eq!(taken, consumed, "read_line: stopped early");
                    }
                    Err(e) => panic!("read_line: unexpected {e:?}"),
                }
            }
            Op::EqStr { a, b } => {
                let (a, b) = (ix(*a), ix(*b));
                let want = self.str_models[a] == self.str_models[b];
                assert_eq!(self.strs[a] == self.strs[b], want, "LockedString ==");
                assert_eq!(self.strs[a] != self.strs[b], !want, "LockedString !=");
            }
            Op::DebugStr { s } => {
                let i = ix(*s);
                let before = format!("{:?}", self.strs[i]);
                assert!(
                    before.starts_with("LockedString"),
                    "unexpected Debug: {before}"
                );
                // Every byte replaced by a different ASCII byte, in the same
                // memory (valid UTF-8, so the string can be rebuilt).
                let other: Vec<u8> = self.str_models[i]
                    .bytes()
                    .map(|b| if b.is_ascii() { b ^ 1 } else { b'a' })
                    .collect();
                self.replace_str_bytes(i, &other);
                let after = format!("{:?}", self.strs[i]);
                let model = self.str_models[i].clone();
                self.replace_str_bytes(i, model.as_bytes());
                assert_eq!(before, after, "Debug depends on the string's contents");
            }
            Op::FromUtf8 { v, s } => {
                let (vi, si) = (ix(*v), ix(*s));
                let vec = std::mem::take(&mut self.vecs[vi]);
                let bytes = std::mem::take(&mut self.vec_models[vi]);
                match (LockedString::from_utf8(vec), String::from_utf8(bytes)) {
                    (Ok(r), Ok(m)) => {
                        self.strs[si] = r;
                        self.str_models[si] = m;
                    }
                    (Err(Error::InvalidUtf8), Err(_)) => {}
                    (Ok(_), Err(_)) => panic!("from_utf8: Ok for invalid UTF-8"),
                    (Err(e), _) => panic!("from_utf8: {e:?}"),
                }
            }
            Op::IntoBytes { s, v } => {
                let (si, vi) = (ix(*s), ix(*v));
                self.vecs[vi] = std::mem::take(&mut self.strs[si]).into_bytes();
                self.vec_models[vi] = std::mem::take(&mut self.str_models[si]).into_bytes();
            }
        }
    }

    /// Puts `bytes` (valid UTF-8, as long as the string) into string `i`'s
    /// memory, through `into_bytes` / `from_utf8`.
    fn replace_str_bytes(&mut self, i: usize, bytes: &[u8]) {
        let mut v = std::mem::take(&mut self.strs[i]).into_bytes();
        let cap = v.capacity();
        v.clear();
        v.try_extend_from_slice(bytes).expect("same length");
        assert_eq!(v.capacity(), cap, "refilling grew the vector");
        self.strs[i] = LockedString::from_utf8(v).expect("valid UTF-8");
    }

    fn check_all(&self) {
        for (i, (v, m)) in self.vecs.iter().zip(&self.vec_models).enumerate() {
            assert_eq!(v.len(), m.len(), "vector {i}: length");
            assert_eq!(v.is_empty(), m.is_empty(), "vector {i}: is_empty");
            assert!(
                v.capacity() >= v.len(),
                "vector {i}: capacity {} < len {}",
                v.capacity(),
                v.len()
            );
            if let Some(k) = (0..m.len()).find(|&k| v[k] != m[k]) {
                panic!(
                    "vector {i} ({} bytes): byte {k} is {:#04x}, model has {:#04x}",
                    m.len(),
                    v[k],
                    m[k]
                );
            }
            assert_eq!(AsRef::<[u8]>::as_ref(v), &m[..], "vector {i}: as_ref");
            assert!(v.is_locked(), "vector {i} not locked");
        }
        for (i, (s, m)) in self.strs.iter().zip(&self.str_models).enumerate() {
            assert_eq!(s.len(), m.len(), "string {i}: length");
            assert_eq!(s.is_empty(), m.is_empty(), "string {i}: is_empty");
            assert_eq!(&**s, m.as_str(), "string {i}: contents differ");
            assert_eq!(AsRef::<[u8]>::as_ref(s), m.as_bytes(), "string {i}: as_ref");
            assert_eq!(AsRef::<str>::as_ref(s), m.as_str(), "string {i}: as_ref");
            assert!(s.is_locked(), "string {i} not locked");
        }
    }
}

fn flip_bytes(v: &mut [u8]) {
    v.iter_mut().for_each(|x| *x ^= 0xFF);
}
