//! Feature `serde`: secrets deserialized straight into locked memory. The
//! JSON document is wiped by the test after parsing; a scan of the child's
//! whole memory then finds the secret once, in the locked container.
#![cfg(feature = "serde")]

mod common;

use common::{child, memscan};
use lockedbox::{LockedBox, LockedString, LockedVec};
use zeroize::Zeroize;

#[derive(serde::Deserialize)]
struct Config {
    name: String,
    key: LockedString,
    raw: LockedVec<u8>,
    fixed: LockedBox<[u8; 4]>,
}

fn secret_char(i: usize) -> u8 {
    b'a' + ((i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93) >> 58) as u8 % 26
}

#[test]
fn every_shape_deserializes() {
    let json = br#"{"name":"svc","key":"p\u00e4ss","raw":[1,2,255],"fixed":"abcd"}"#;
    let c: Config = serde_json::from_slice(json).unwrap();
    assert_eq!(c.name, "svc");
    assert_eq!(&*c.key, "päss");
    assert_eq!(&c.raw[..], [1, 2, 255]);
    assert_eq!(*c.fixed, *b"abcd");
    assert!(c.key.is_locked() && c.raw.is_locked() && c.fixed.is_locked());
    let v: LockedVec<u8> = serde_json::from_str(r#""bytes""#).unwrap();
    assert_eq!(&v[..], b"bytes");
    let b: LockedBox<[u8; 3]> = serde_json::from_str("[7,8,9]").unwrap();
    assert_eq!(*b, [7, 8, 9]);
}

#[test]
fn bad_input_is_an_error_that_does_not_echo_it() {
    for (json, what) in [
        (r#""toolongsecret""#, "fixed"),
        ("[1,2]", "fixed"),
        ("[1,2,3,4,5]", "fixed"),
        ("[1,2,300]", "fixed"),
    ] {
        let e = serde_json::from_str::<LockedBox<[u8; 4]>>(json).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("toolongsecret"), "{what}: {msg}");
    }
    // Found by a second reader: numbers, booleans and out-of-range bytes
    // were quoted in the messages.
    for json in [
        "918273645",
        "-1234.5678",
        "true",
        "[1,2,918273645]",
        "[1,2,-987654]",
        "[1,2,3.25]",
    ] {
        for msg in [
            serde_json::from_str::<LockedBox<[u8; 4]>>(json).map(drop),
            serde_json::from_str::<LockedVec<u8>>(json).map(drop),
            serde_json::from_str::<LockedString>(json).map(drop),
        ]
        .into_iter()
        .filter_map(Result::err)
        .map(|e| e.to_string())
        {
            for secret in ["918273645", "1234", "true", "987654", "3.25"] {
                assert!(!msg.contains(secret), "{json}: {msg}");
            }
        }
    }
    let e = serde_json::from_str::<LockedString>("[104,105]").unwrap_err();
    assert!(e.to_string().contains("string"), "{e}");
}

#[test]
fn deserialized_secrets_leave_one_copy() {
    let out = child::run("deserialized_secrets_leave_one_copy", || {
        // The document, made character by character, then wiped by us.
        let mut doc = Vec::new();
        doc.extend_from_slice(br#"{"name":"svc","key":""#);
        doc.extend((0..64).map(secret_char));
        doc.extend_from_slice(br#"","raw":"x","fixed":"abcd"}"#);
        let c: Config = serde_json::from_slice(&doc).unwrap();
        doc.zeroize();
        drop(doc);
        assert_eq!(c.key.len(), 64);
        let needle = memscan::Masked::from_fn(32, secret_char);
        assert_eq!(memscan::count(&needle), 1, "once, in the locked string");
        drop(c);
        assert_eq!(memscan::count(&needle), 0, "wiped");
    });
    child::assert_success(&out);
}
