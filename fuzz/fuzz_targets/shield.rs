//! The shield's XChaCha20-Poly1305 (its own Poly1305 over RustCrypto's
//! XChaCha20) against RustCrypto's `chacha20poly1305`, and `ShieldedBox`
//! round trips, on arbitrary keys, nonces, associated data and messages.
//!
//! Checked: the same ciphertext and tag as the reference; what either
//! seals, the other opens to the plaintext; after an arbitrary edit of the
//! ciphertext, tag, nonce or associated data, the shield opens exactly
//! when the reference does (and then to the same bytes), and a refused
//! open leaves the buffer as it was; a `ShieldedBox::<[u8]>` of the
//! message borrows back to it, and after a write through `borrow_mut` to
//! the written bytes.
#![no_main]

use arbitrary::Arbitrary;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305};
use libfuzzer_sys::fuzz_target;
use lockedmem::ShieldedBox;
use lockedmem::fuzzing::{shield_open, shield_seal};

/// One change to a sealed message before it is opened.
#[derive(Arbitrary, Debug)]
enum Edit {
    None,
    Ciphertext { at: usize, xor: u8 },
    Tag { at: u8, xor: u8 },
    Nonce { at: u8, xor: u8 },
    Ad { at: usize, xor: u8 },
    Truncate { by: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    key: [u8; 32],
    nonce: [u8; 24],
    ad: Vec<u8>,
    msg: Vec<u8>,
    edit: Edit,
    rewrite: u8,
}

fuzz_target!(|input: Input| {
    let Input {
        key,
        nonce,
        ad,
        msg,
        edit,
        rewrite,
    } = input;
    let reference = XChaCha20Poly1305::new((&key).into());

    let mut ours = msg.clone();
    let tag = shield_seal(&key, &nonce, &ad, &mut ours);
    let mut theirs = msg.clone();
    let their_tag = reference
        .encrypt_in_place_detached((&nonce).into(), &ad, &mut theirs)
        .unwrap();
    assert_eq!(ours, theirs, "ciphertext");
    assert_eq!(tag, <[u8; 16]>::from(their_tag), "tag");

    let (mut ct, mut t, mut n, mut a) = (ours, tag, nonce, ad);
    match edit {
        Edit::None => {}
        Edit::Ciphertext { at, xor } if !ct.is_empty() => {
            let i = at % ct.len();
            ct[i] ^= xor;
        }
        Edit::Tag { at, xor } => t[usize::from(at) % 16] ^= xor,
        Edit::Nonce { at, xor } => n[usize::from(at) % 24] ^= xor,
        Edit::Ad { at, xor } if !a.is_empty() => {
            let i = at % a.len();
            a[i] ^= xor;
        }
        Edit::Truncate { by } => ct.truncate(ct.len().saturating_sub(usize::from(by))),
        _ => {}
    }
    let before = ct.clone();
    let mut mine = ct.clone();
    let opened = shield_open(&key, &n, &a, &mut mine, &t);
    let mut ref_buf = ct;
    let ref_opened = reference
        .decrypt_in_place_detached((&n).into(), &a, &mut ref_buf, Tag::from_slice(&t))
        .is_ok();
    assert_eq!(opened, ref_opened, "open agrees with the reference");
    if opened {
        assert_eq!(mine, ref_buf, "the same plaintext");
    } else {
        assert_eq!(mine, before, "a refused open changes nothing");
    }

    // The box, when the message is a whole secret.
    if !msg.is_empty() && msg.len() <= 4096 {
        let mut b = ShieldedBox::<[u8]>::from_slice(&msg).unwrap();
        assert_eq!(&*b.borrow().unwrap(), &msg[..]);
        b.borrow_mut().unwrap().fill(rewrite);
        assert!(b.borrow().unwrap().iter().all(|&x| x == rewrite));
    }
});
