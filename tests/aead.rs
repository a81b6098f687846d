//! The `aead` example's code, run against the AEAD_CHACHA20_POLY1305 test
//! vector of RFC 8439, section 2.8.2.
// Linux only: scans its own memory through /proc/self/mem (common::memscan).
#![cfg(target_os = "linux")]

#[allow(dead_code)] // the example's `main`
#[path = "../examples/aead.rs"]
mod aead_example;

use aead_example::{KEY_LEN, TAG_LEN, key_from_file, key_from_hex, open, random_key, seal};
use chacha20poly1305::aead::{AeadCore, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

/// Key 80 81 .. 9f.
const KEY_HEX: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const NONCE: [u8; 12] = [
    0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
];
const AAD: [u8; 12] = [
    0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
];
const PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: \
    If I could offer you only one tip for the future, sunscreen would be it.";
/// The published ciphertext, laid out as in the RFC.
#[rustfmt::skip]
const CIPHERTEXT: [u8; 114] = [
    0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2,
    0xa4, 0xad, 0xed, 0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee, 0x62, 0xd6,
    0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9, 0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda, 0x92, 0x72, 0x8b,
    0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05, 0xd6, 0xa5, 0xb6, 0x7e, 0xcd, 0x3b, 0x36,
    0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae, 0xe3, 0x28, 0x09, 0x1b, 0x58,
    0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85, 0x80, 0x8b, 0x48, 0x31, 0xd7, 0xbc,
    0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5, 0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b,
    0x61, 0x16,
];
/// The published tag, 1a:e1:0b:59:4f:09:e2:6a:7e:90:2e:cb:d0:60:06:91.
const TAG: [u8; TAG_LEN] = [
    0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91,
];

#[test]
fn rfc8439_aead_vector() {
    let key = key_from_hex(KEY_HEX.as_bytes()).unwrap();
    assert!(key.is_locked());
    assert!(key.iter().copied().eq(0x80..=0x9f));
    let nonce = Nonce::from(NONCE);

    let sealed = seal(&key, &nonce, &AAD, PLAINTEXT).unwrap();
    assert_eq!(sealed, [&CIPHERTEXT[..], &TAG[..]].concat());

    let opened = open(&key, &nonce, &AAD, &sealed).unwrap();
    assert_eq!(&opened[..], PLAINTEXT);
    assert!(opened.is_locked());

    let mut forged = sealed.clone();
    *forged.last_mut().unwrap() ^= 0x01; // last bit of the tag
    assert!(open(&key, &nonce, &AAD, &forged).is_err());
    assert!(open(&key, &nonce, b"other AAD", &sealed).is_err());
    assert!(open(&key, &nonce, &AAD, &sealed[..TAG_LEN - 1]).is_err());
}

#[test]
fn key_file_and_bad_hex() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("aead-test-key.hex");
    std::fs::write(&path, format!("{}\n", KEY_HEX.to_uppercase())).unwrap();
    let from_file = key_from_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(*from_file, *key_from_hex(KEY_HEX.as_bytes()).unwrap());

    assert!(key_from_hex(&KEY_HEX.as_bytes()[2..]).is_err()); // too short
    assert!(key_from_hex(format!("{KEY_HEX}00").as_bytes()).is_err()); // too long
    assert!(key_from_hex(KEY_HEX.replace('8', "g").as_bytes()).is_err()); // not hex
    assert_eq!(KEY_HEX.len(), 2 * KEY_LEN);
}

#[test]
fn random_key_round_trip() {
    let key = random_key().unwrap();
    assert!(key.is_locked());
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = seal(&key, &nonce, b"", PLAINTEXT).unwrap();
    assert_eq!(sealed.len(), PLAINTEXT.len() + TAG_LEN);
    assert_eq!(&open(&key, &nonce, b"", &sealed).unwrap()[..], PLAINTEXT);
}

/// Where the key is while and after the cipher runs: a scan of the whole
/// process's memory (in a child) for the key's bytes. The box holds one
/// copy; `ChaCha20Poly1305::new` and the cipher's state make more, on the
/// stack, some of which outlive the call (see the example's docs).
#[test]
fn copies_the_cipher_leaves_behind() {
    #[path = "common/mod.rs"]
    mod common;
    let out = common::child::run("copies_the_cipher_leaves_behind", || {
        let key = random_key().unwrap();
        // The needle is made from the key one byte at a time, masked.
        let needle = common::memscan::Masked::from_fn(32, |i| key[i]);
        let at_rest = common::memscan::count(&needle);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = std::hint::black_box(seal(&key, &nonce, b"", b"hello").unwrap());
        let after = common::memscan::count(&needle);
        drop(sealed);
        println!("key copies: at rest {at_rest}, after one seal {after}");
        assert_eq!(at_rest, 1, "only the box holds the key at rest");
        assert!(after >= at_rest);
        // What `Deref` lets through: a plain copy in ordinary memory.
        let plain = std::hint::black_box(key.to_vec());
        assert_eq!(
            common::memscan::count(&needle),
            after + 1,
            "key.to_vec() is one more copy, outside the box"
        );
        drop(plain);
        let tail = common::memscan::Masked::from_fn(16, |i| key[16 + i]);
        println!(
            "after the copy was dropped, its last 16 bytes are found {} times (once is the box)",
            common::memscan::count(&tail)
        );
    });
    common::child::assert_success(&out);
    println!("{}", common::child::stdout(&out));
}
