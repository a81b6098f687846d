//! XChaCha20-Poly1305: RFC 8439's AEAD construction (section 2.8) over
//! XChaCha20 (draft-irtf-cfrg-xchacha: HChaCha20 of the key and the first
//! 16 bytes of the 24-byte nonce gives the ChaCha20 key, the last 8 bytes
//! the nonce). The cipher is RustCrypto's `chacha20`; the authenticator
//! is [`Poly1305`] (see there why). Tested against RustCrypto's
//! `chacha20poly1305` in both directions.

use chacha20::XChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::poly1305::Poly1305;

/// The cipher under `key` and `nonce`, and the authenticator whose
/// one-time key is the first 32 bytes of keystream block 0; the cipher
/// stands at block 1, where the message's keystream starts.
fn start(key: &[u8; 32], nonce: &[u8; 24]) -> (XChaCha20, Poly1305) {
    let mut cipher = XChaCha20::new(key.into(), nonce.into());
    let mut block0 = [0u8; 64];
    cipher.apply_keystream(&mut block0);
    let mac = Poly1305::new(block0[..32].try_into().expect("32 bytes"));
    block0.zeroize();
    (cipher, mac)
}

/// The tag over the associated data and the ciphertext, each zero-padded
/// to 16 bytes, then both lengths as 64-bit little-endian numbers.
fn tag(mut mac: Poly1305, ad: &[u8], ciphertext: &[u8]) -> [u8; 16] {
    mac.update_padded(ad);
    mac.update_padded(ciphertext);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(ad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ciphertext.len() as u64).to_le_bytes());
    mac.update(&lengths);
    mac.finish()
}

/// Encrypts `buf` in place under `key` and `nonce` and returns the tag
/// that binds it and `ad`. A nonce must never be used twice under a key.
pub(crate) fn seal(key: &[u8; 32], nonce: &[u8; 24], ad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let (mut cipher, mac) = start(key, nonce);
    cipher.apply_keystream(buf);
    tag(mac, ad, buf)
}

/// The tag check failed: the ciphertext, its tag, nonce or associated
/// data is not what [`seal`] wrote.
#[derive(Debug)]
pub(crate) struct BadTag;

/// Decrypts `buf` in place if `tag` is the tag of `ad` and the ciphertext
/// in `buf` under `key` and `nonce`; else leaves `buf` as it was (nothing
/// is decrypted before the tag is checked, in constant time).
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    ad: &[u8],
    buf: &mut [u8],
    tag_in: &[u8; 16],
) -> Result<(), BadTag> {
    let (mut cipher, mac) = start(key, nonce);
    let expected = tag(mac, ad, buf);
    if bool::from(expected.ct_eq(tag_in)) {
        cipher.apply_keystream(buf);
        Ok(())
    } else {
        Err(BadTag)
    }
}

#[cfg(test)]
mod tests {
    use super::{open, seal};
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305};

    /// xorshift64*, for replayable random inputs.
    struct Rng(u64);
    impl Rng {
        fn fill(&mut self, b: &mut [u8]) {
            for x in b {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                *x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes()[7];
            }
        }
    }

    /// What this module seals, RustCrypto's XChaCha20-Poly1305 opens, and
    /// the other way round: same ciphertext, same tag, for messages of 0 to
    /// 200 bytes and associated data of 0 to 40.
    #[test]
    fn same_as_rustcrypto_both_ways() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for len in 0..=200 {
            for ad_len in [0, 1, 15, 16, 17, 40] {
                let (mut key, mut nonce) = ([0u8; 32], [0u8; 24]);
                rng.fill(&mut key);
                rng.fill(&mut nonce);
                let mut ad = vec![0u8; ad_len];
                rng.fill(&mut ad);
                let mut plain = vec![0u8; len];
                rng.fill(&mut plain);
                let theirs = XChaCha20Poly1305::new((&key).into());

                let mut ours = plain.clone();
                let our_tag = seal(&key, &nonce, &ad, &mut ours);
                let mut rc = plain.clone();
                let rc_tag = theirs
                    .encrypt_in_place_detached((&nonce).into(), &ad, &mut rc)
                    .unwrap();
                assert_eq!(ours, rc, "ciphertext, length {len}");
                assert_eq!(our_tag, <[u8; 16]>::from(rc_tag), "tag, length {len}");

                let mut back = rc.clone();
                open(&key, &nonce, &ad, &mut back, &rc_tag.into()).unwrap();
                assert_eq!(back, plain);
                let mut back = ours.clone();
                theirs
                    .decrypt_in_place_detached(
                        (&nonce).into(),
                        &ad,
                        &mut back,
                        Tag::from_slice(&our_tag),
                    )
                    .unwrap();
                assert_eq!(back, plain);
            }
        }
    }

    /// Every bit of the ciphertext, tag, nonce and associated data flipped
    /// in turn: refused, and the buffer still holds the ciphertext.
    #[test]
    fn any_flipped_bit_is_refused_and_nothing_decrypted() {
        let mut rng = Rng(42);
        let (mut key, mut nonce, mut ad, mut plain) = ([0u8; 32], [0u8; 24], [0u8; 16], [0u8; 32]);
        rng.fill(&mut key);
        rng.fill(&mut nonce);
        rng.fill(&mut ad);
        rng.fill(&mut plain);
        let mut ct = plain;
        let tag = seal(&key, &nonce, &ad, &mut ct);
        for bit in 0..8 * (32 + 16 + 24 + 16) {
            let (mut c, mut t, mut n, mut a) = (ct, tag, nonce, ad);
            let (byte, mask) = (bit / 8 % 256, 1u8 << (bit % 8));
            match bit / 8 {
                i if i < 32 => c[i] ^= mask,
                i if i < 48 => t[i - 32] ^= mask,
                i if i < 72 => n[i - 48] ^= mask,
                i => a[i - 72] ^= mask,
            }
            let before = c;
            assert!(
                open(&key, &n, &a, &mut c, &t).is_err(),
                "bit {bit} (byte {byte})"
            );
            assert_eq!(c, before, "bit {bit}: the buffer was changed");
        }
        let mut c = ct;
        open(&key, &nonce, &ad, &mut c, &tag).unwrap();
        assert_eq!(c, plain);
    }
}
