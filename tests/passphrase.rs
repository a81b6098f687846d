//! The `passphrase` example's key derivation and MAC, on known values:
//! Argon2id from RFC 9106 (section 5.3) with its memory blocks in locked
//! memory, and HMAC-SHA-256 from RFC 4231 (test case 1).
#![cfg(feature = "allocator-api2")]

#[allow(dead_code)] // the example's `main`
#[path = "../examples/passphrase.rs"]
mod passphrase;

use argon2::{AssociatedData, ParamsBuilder};
use lockedmem::LockedBox;

#[test]
fn rfc9106_argon2id_in_locked_memory() {
    let params = ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .output_len(32)
        .data(AssociatedData::new(&[4; 12]).unwrap())
        .build()
        .unwrap();
    let key = passphrase::derive_key(&[1; 32], &[2; 16], &[3; 8], params).unwrap();
    assert!(key.is_locked());
    assert_eq!(
        *key,
        [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ]
    );
}

#[test]
fn rfc4231_hmac_sha256_case_1() {
    // The RFC's key is 20 bytes of 0x0b; HMAC pads a key to the block size
    // with zeros, so the same key zero-padded to 32 bytes gives the same MAC.
    let key = LockedBox::<[u8; 32]>::new_with(|k| k[..20].fill(0x0b)).unwrap();
    let tag = passphrase::mac(&key, &b"Hi There"[..]).unwrap();
    assert_eq!(
        tag,
        [
            0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b,
            0xf1, 0x2b, 0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c,
            0x2e, 0x32, 0xcf, 0xf7,
        ]
    );
}
