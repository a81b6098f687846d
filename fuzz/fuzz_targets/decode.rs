//! Compares the crate's hex and base64 decoders (`LockedVec::from_hex`,
//! `LockedVec::from_base64`, `LockedBox::<[u8; N]>::from_hex` and
//! `from_base64` for a few `N`) with plain reference decoders written here,
//! on arbitrary text and on encodings of arbitrary bytes, whole or edited.
//!
//! The reference is what the crate documents: hex is an even number of
//! digits, upper or lower case; base64 is RFC 4648 standard alphabet,
//! padded to a multiple of 4 with `=`, canonical (the unused bits of the
//! last character are zero, as base64ct requires), nothing else (no
//! whitespace, no `-`/`_`). A box decoder accepts exactly what decodes to
//! `N` bytes.
//!
//! Checked: the same bytes on success, or an error from both; the error is
//! `Error::Decode` naming the encoding, its `Display` and `Debug` do not
//! depend on the input and do not contain it (for inputs of 4 or more bytes
//! that are not words of the fixed message); a successful decoder's memory
//! is locked.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lockedmem::{Error, LockedBox, LockedVec};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEXL: &[u8; 16] = b"0123456789abcdef";
const HEXU: &[u8; 16] = b"0123456789ABCDEF";

/// What to decode.
#[derive(Arbitrary, Debug)]
enum Input {
    /// Any text.
    Raw(String),
    /// Hex of `bytes`, each digit upper case where `upper` has a 1 bit
    /// (cycled), then `edit`ed.
    Hex {
        bytes: Vec<u8>,
        upper: u64,
        edit: Option<Edit>,
    },
    /// Padded base64 of `bytes`, then `edit`ed.
    Base64 { bytes: Vec<u8>, edit: Option<Edit> },
}

/// A change to a valid encoding, to land just beside the valid inputs.
#[derive(Arbitrary, Debug)]
enum Edit {
    /// Replaces the character at `at` (modulo the length) with `c`.
    Set { at: u16, c: char },
    /// Inserts `c` at `at` (modulo the length + 1).
    Insert { at: u16, c: char },
    /// Removes the character at `at`.
    Remove { at: u16 },
    /// Sets bit `bit % 6` of the last non-padding base64 digit (the bits
    /// that must be zero, or not).
    LastBits { bit: u8 },
    /// Strips the trailing `=`s.
    Unpad,
    /// Appends `=`s.
    Pad { n: u8 },
}

fuzz_target!(|input: Input| {
    let text = match input {
        Input::Raw(s) => s,
        Input::Hex { bytes, upper, edit } => {
            let hex = encode_hex(&bytes, upper);
            assert_eq!(ref_hex(hex.as_bytes()), Some(bytes), "reference hex");
            edited(hex, edit)
        }
        Input::Base64 { bytes, edit } => {
            let b64 = encode_b64(&bytes);
            assert_eq!(ref_b64(b64.as_bytes()), Some(bytes), "reference base64");
            edited(b64, edit)
        }
    };
    check(&text);
});

fn check(s: &str) {
    let hex = ref_hex(s.as_bytes());
    let b64 = ref_b64(s.as_bytes());

    let got = LockedVec::from_hex(s);
    compare_vec("LockedVec::from_hex", s, "hex", got, hex.as_deref());
    let got = LockedVec::from_base64(s);
    compare_vec("LockedVec::from_base64", s, "base64", got, b64.as_deref());

    check_box::<0>(s, hex.as_deref(), b64.as_deref());
    check_box::<1>(s, hex.as_deref(), b64.as_deref());
    check_box::<2>(s, hex.as_deref(), b64.as_deref());
    check_box::<3>(s, hex.as_deref(), b64.as_deref());
    check_box::<16>(s, hex.as_deref(), b64.as_deref());
    check_box::<32>(s, hex.as_deref(), b64.as_deref());
}

fn check_box<const N: usize>(s: &str, hex: Option<&[u8]>, b64: Option<&[u8]>) {
    let want = |r: Option<&[u8]>| r.filter(|r| r.len() == N).map(<[u8]>::to_vec);
    compare_box::<N>(
        "from_hex",
        s,
        "hex",
        LockedBox::<[u8; N]>::from_hex(s),
        want(hex),
    );
    compare_box::<N>(
        "from_base64",
        s,
        "base64",
        LockedBox::<[u8; N]>::from_base64(s),
        want(b64),
    );
}

fn compare_vec(
    what: &str,
    s: &str,
    encoding: &str,
    got: Result<LockedVec<u8>, Error>,
    want: Option<&[u8]>,
) {
    match (got, want) {
        (Ok(v), Some(w)) => {
            assert!(v[..] == *w, "{what}({s:?}): {:?}, reference {w:?}", &v[..]);
            assert!(v.capacity() >= v.len());
            assert!(v.is_locked(), "{what}: not locked");
        }
        (Ok(v), None) => panic!("{what}({s:?}): Ok({:?}), reference refuses", &v[..]),
        (Err(e), Some(w)) => panic!("{what}({s:?}): {e:?}, reference decodes {w:?}"),
        (Err(e), None) => check_error(what, s, encoding, &e),
    }
}

fn compare_box<const N: usize>(
    what: &str,
    s: &str,
    encoding: &str,
    got: Result<LockedBox<[u8; N]>, Error>,
    want: Option<Vec<u8>>,
) {
    match (got, want) {
        (Ok(b), Some(w)) => {
            assert!(
                b[..] == w[..],
                "[u8; {N}]::{what}({s:?}): {:?}, reference {w:?}",
                &b[..]
            );
            assert!(b.is_locked(), "[u8; {N}]::{what}: not locked");
        }
        (Ok(b), None) => panic!(
            "[u8; {N}]::{what}({s:?}): Ok({:?}), reference refuses",
            &b[..]
        ),
        (Err(e), Some(w)) => panic!("[u8; {N}]::{what}({s:?}): {e:?}, reference decodes {w:?}"),
        (Err(e), None) => check_error(what, s, encoding, &e),
    }
}

/// A refusal is `Error::Decode` for the right encoding, and its messages
/// neither vary with nor show the input.
fn check_error(what: &str, s: &str, encoding: &str, e: &Error) {
    match e {
        Error::Decode { encoding: enc } => {
            assert_eq!(*enc, encoding, "{what}({s:?}): wrong encoding in {e:?}")
        }
        _ => panic!("{what}({s:?}): unexpected error {e:?}"),
    }
    // The same error for input no reference would take: "!".
    let canned = Error::Decode {
        encoding: if encoding == "hex" { "hex" } else { "base64" },
    };
    let (display, debug) = (e.to_string(), format!("{e:?}"));
    let (canned_display, canned_debug) = (canned.to_string(), format!("{canned:?}"));
    assert_eq!(display, canned_display, "{what}: Display varies with input");
    assert_eq!(debug, canned_debug, "{what}: Debug varies with input");
    if s.len() >= 4 {
        for text in [&display, &debug] {
            assert!(
                !text.contains(s) || canned_display.contains(s) || canned_debug.contains(s),
                "{what}: error shows the input {s:?}: {text}"
            );
        }
    }
}

fn edited(mut s: String, edit: Option<Edit>) -> String {
    let Some(edit) = edit else {
        return s;
    };
    // Character boundaries only, so that `s` stays a `String`.
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    match edit {
        Edit::Set { at, c } => {
            if let Some(&i) = bounds.get(usize::from(at) % bounds.len().max(1)) {
                let end = s[i..].chars().next().map_or(i, |ch| i + ch.len_utf8());
                s.replace_range(i..end, c.encode_utf8(&mut [0; 4]));
            }
        }
        Edit::Insert { at, c } => {
            let i = bounds
                .get(usize::from(at) % (bounds.len() + 1))
                .copied()
                .unwrap_or(s.len());
            s.insert(i, c);
        }
        Edit::Remove { at } => {
            if let Some(&i) = bounds.get(usize::from(at) % bounds.len().max(1)) {
                s.remove(i);
            }
        }
        Edit::LastBits { bit } => {
            let body = s.trim_end_matches('=').len();
            if body > 0 {
                let last = s.as_bytes()[body - 1];
                if let Some(v) = B64.iter().position(|&c| c == last) {
                    let flipped = B64[v ^ (1 << (bit % 6))];
                    s.replace_range(body - 1..body, &char::from(flipped).to_string());
                }
            }
        }
        Edit::Unpad => s.truncate(s.trim_end_matches('=').len()),
        Edit::Pad { n } => s.extend(std::iter::repeat_n('=', usize::from(n % 5))),
    }
    s
}

fn encode_hex(bytes: &[u8], upper: u64) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        for (j, nibble) in [b >> 4, b & 15].into_iter().enumerate() {
            let bit = (2 * i + j) % 64;
            let table = if upper >> bit & 1 == 1 { HEXU } else { HEXL };
            out.push(char::from(table[usize::from(nibble)]));
        }
    }
    out
}

fn encode_b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut acc = [0u8; 3];
        acc[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from(acc[0]) << 16 | u32::from(acc[1]) << 8 | u32::from(acc[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(B64[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Even length, every byte a hex digit of either case.
fn ref_hex(s: &[u8]) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// RFC 4648 base64, standard alphabet, padded, canonical.
fn ref_b64(s: &[u8]) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u32> {
        B64.iter().position(|&d| d == c).map(|v| v as u32)
    }
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let groups = s.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (g, quad) in s.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        // Padding only at the very end, and at most two `=`.
        if pad > 2 || (pad > 0 && g + 1 != groups) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &quad[..4 - pad] {
            acc = acc << 6 | digit(c)?;
        }
        acc <<= 6 * pad;
        // Canonical: the bits of the missing bytes are zero.
        if acc & ((1 << (8 * pad)) - 1) != 0 {
            return None;
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}
