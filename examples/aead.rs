//! A ChaCha20-Poly1305 key (RustCrypto `chacha20poly1305`) kept in a
//! `LockedBox`.
//!
//! ```text
//! cargo run --example aead                    # a fresh key from the OS RNG
//! cargo run --example aead -- KEY_FILE        # 64 hex digits in a file
//! echo "$HEX" | cargo run --example aead -- /dev/stdin
//! ```
//!
//! There is deliberately no `--key HEX` argument: argv is readable by every
//! user through /proc/PID/cmdline and stays in the process's own stack.
//!
//! # Where the key leaves the locked pages
//!
//! The key is written straight into the box (by getrandom(2), or by the
//! crate's constant-time hex decoder from a locked vector holding the
//! file's text, read there by `LockedVec::read_from`), but
//! chacha20poly1305 0.10 cannot use it there. For each [`seal`] or [`open`]:
//!
//! - `ChaCha20Poly1305::new` copies the 32 key bytes into the cipher object,
//!   here a temporary on the stack of `seal`/`open`. Its `Drop` zeroizes that
//!   copy; the crate always does this (it has no "zeroize" feature to turn
//!   on). Bytes left behind if the compiler moves the object are not wiped.
//! - The operation expands key and nonce into a ChaCha20 state (16 words, 8
//!   of them the key) on the stack; chacha20poly1305 enables chacha20's
//!   "zeroize", so that state and its keystream buffer are wiped on drop. The
//!   SIMD backends (SSE2/AVX2, picked at run time) load the state into vector
//!   registers and stack temporaries that nobody wipes.
//! - The per-message Poly1305 key (r, s) comes from the first keystream
//!   block. chacha20poly1305 does not enable poly1305's optional "zeroize",
//!   so this crate's dev-dependencies turn it on: the Poly1305 state is
//!   wiped on drop too. (That key is only good for forging under one nonce;
//!   it does not reveal the ChaCha20 key.)
//!
//! All of that is ordinary stack memory: not locked, not excluded from core
//! dumps. The box protects the key at rest; while a cipher call runs, copies
//! exist outside it, and some of them outlive the call.

use std::error::Error;
use std::fs::File;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use lockedmem::{LockedBox, LockedVec};

/// ChaCha20-Poly1305 key length in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Poly1305 tag length in bytes; [`seal`] appends the tag to the ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// A key that lives only in locked, guarded, dump-proof pages.
pub(crate) type SecretKey = LockedBox<[u8; KEY_LEN]>;
type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A fresh key, drawn by getrandom(2) straight into the locked pages.
pub(crate) fn random_key() -> Result<SecretKey> {
    Ok(LockedBox::random()?)
}

/// A key decoded from 64 hex digits (surrounding ASCII whitespace ignored)
/// straight into the locked pages, by the crate's constant-time decoder.
/// Errors never quote the input.
pub(crate) fn key_from_hex(hex: &[u8]) -> Result<SecretKey> {
    let text = std::str::from_utf8(hex.trim_ascii())
        .map_err(|_| format!("a key is {} hex digits", 2 * KEY_LEN))?;
    Ok(LockedBox::from_hex(text)?)
}

/// A key from a file holding its hex digits. The text is the key too, so
/// read(2) puts it into locked memory rather than a `String` or `Vec`.
pub(crate) fn key_from_file(path: &Path) -> Result<SecretKey> {
    let text = LockedVec::read_from(File::open(path)?, 4 * KEY_LEN)
        .map_err(|e| format!("reading the key file: {e}"))?;
    key_from_hex(&text)
}

/// Encrypts `msg`, authenticating `aad` too; returns ciphertext || tag.
pub(crate) fn seal(key: &SecretKey, nonce: &Nonce, aad: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    // The cipher object (a copy of the key) lives for this statement only.
    let sealed = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
        .encrypt(nonce, Payload { msg, aad })
        .map_err(|_| "message too long")?;
    Ok(sealed)
}

/// Checks and decrypts ciphertext || tag. The plaintext is only ever
/// written into locked pages: the ciphertext is copied into a box and
/// decrypted there, in place, once the tag has been verified.
pub(crate) fn open(
    key: &SecretKey,
    nonce: &Nonce,
    aad: &[u8],
    sealed: &[u8],
) -> Result<LockedBox<[u8]>> {
    let ct_len = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or("shorter than a tag")?;
    let (ciphertext, tag) = sealed.split_at(ct_len);
    let mut plaintext = LockedBox::from_slice(ciphertext)?;
    ChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
        .decrypt_in_place_detached(nonce, aad, &mut plaintext, Tag::from_slice(tag))
        .map_err(|_| "authentication failed: wrong key, nonce or AAD, or altered data")?;
    Ok(plaintext)
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let key = match (args.next(), args.next()) {
        (None, _) => random_key()?,
        (Some(path), None) => key_from_file(Path::new(&path))?,
        _ => return Err("usage: aead [KEY_FILE]".into()),
    };
    // `Debug` shows the type, size and lock state, never a key byte.
    println!("key: {key:?}");
    println!("key pages mlocked: {}", key.is_locked());

    let msg = b"attack at dawn";
    let aad = b"header v1";
    // Random 96-bit nonces: fine for up to ~2^32 messages under one key.
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = seal(&key, &nonce, aad, msg)?;
    println!(
        "sealed {} plaintext bytes into {} bytes (ciphertext + {TAG_LEN}-byte tag)",
        msg.len(),
        sealed.len()
    );

    let opened = open(&key, &nonce, aad, &sealed)?;
    assert_eq!(&opened[..], msg);
    println!(
        "opened: round trip OK, plaintext in locked pages: {}",
        opened.is_locked()
    );
    Ok(())
}
