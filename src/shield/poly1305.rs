//! Poly1305 (RFC 8439, section 2.5) over one whole message, for the
//! shield's AEAD.
//!
//! Why not RustCrypto's `poly1305`: on x86-64 it picks its AVX2 backend at
//! run time, whose helpers (the `Add`, `Mul` and `From` impls on its
//! vector types) are not compiled with AVX2 enabled, so in a build for
//! the baseline x86-64 (every distribution's, and cargo's default) each
//! intrinsic in them is a call of its own, and the backend's setup
//! (powers of `r` for four-way blocks) is paid on every message. For the
//! shield's messages (four blocks for a 32-byte secret) that made one
//! borrow cost three times what it costs with the portable backend
//! (`benches/README.md`, "Shielding"), and a library cannot choose the
//! backend for the applications that use it. This one is the portable
//! algorithm: three limbs of 44, 44 and 42 bits, products in `u128`,
//! no branch and no table indexed by secret data. It is checked against
//! the RFC's vectors and, on random keys and messages of every length up
//! to 300 bytes and on values that stress the final reduction, against
//! RustCrypto's `poly1305` (a dev-dependency).

use zeroize::Zeroize;

/// The low 44 bits.
const M44: u64 = (1 << 44) - 1;
/// The low 42 bits.
const M42: u64 = (1 << 42) - 1;
/// RFC 8439's clamp of `r`: the top four bits of each 32-bit word and the
/// bottom two bits of the upper three cleared.
const CLAMP: u128 = 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;

/// A one-time authenticator under one 32-byte key, fed whole 16-byte
/// blocks (and at most one short last block). Wiped on drop.
pub(super) struct Poly1305 {
    /// `r`, clamped, in limbs of 44, 44 and 40 bits.
    r: [u64; 3],
    /// `s`, added at the end.
    s: u128,
    /// The accumulator, in limbs of 44, 44 and 42 bits (a limb may run a
    /// few bits over between blocks; `finish` normalises).
    h: [u64; 3],
}

/// The 128-bit little-endian number in `block`.
fn le128(block: &[u8; 16]) -> u128 {
    u128::from_le_bytes(*block)
}

/// The low 64 bits of `x` (the truncation is the point).
#[allow(clippy::cast_possible_truncation)]
const fn low64(x: u128) -> u64 {
    x as u64
}

/// `a * b` as a 128-bit product (one `mul` instruction, constant time).
const fn mul(a: u64, b: u64) -> u128 {
    (a as u128) * (b as u128)
}

impl Poly1305 {
    /// The authenticator for the one-time key `key` (`r` then `s`).
    pub(super) fn new(key: &[u8; 32]) -> Poly1305 {
        let (r, s) = key.split_at(16);
        let r = le128(r.try_into().expect("16 bytes")) & CLAMP;
        let s = le128(s.try_into().expect("16 bytes"));
        Poly1305 {
            r: [low64(r) & M44, low64(r >> 44) & M44, low64(r >> 88)],
            s,
            h: [0; 3],
        }
    }

    /// Adds the 129-bit number `m + hibit * 2^128` to the accumulator and
    /// multiplies it by `r`, modulo 2^130 - 5.
    fn block(&mut self, m: u128, hibit: u64) {
        let [r0, r1, r2] = self.r;
        // 2^132 = 4 * 2^130, which is 4 * 5 modulo p: the products that
        // reach past 2^132 come back multiplied by 20.
        let (s1, s2) = (r1 * 20, r2 * 20);
        // Limbs below 2^45, 2^45 and 2^43; r0, r1 < 2^44, r2 < 2^40: every
        // sum below is under 2^93.
        let h0 = self.h[0] + (low64(m) & M44);
        let h1 = self.h[1] + (low64(m >> 44) & M44);
        let h2 = self.h[2] + low64(m >> 88) + (hibit << 40);
        let d0 = mul(h0, r0) + mul(h1, s2) + mul(h2, s1);
        let d1 = mul(h0, r1) + mul(h1, r0) + mul(h2, s2) + (d0 >> 44);
        let d2 = mul(h0, r2) + mul(h1, r1) + mul(h2, r0) + (d1 >> 44);
        // What passes 2^130 (d2 >> 42 < 2^51) comes back times 5.
        let h0 = (low64(d0) & M44) + low64(d2 >> 42) * 5;
        let h1 = (low64(d1) & M44) + (h0 >> 44);
        self.h = [h0 & M44, h1, low64(d2) & M42];
    }

    /// Feeds `data`: whole 16-byte blocks, then, if its length is not a
    /// multiple of 16, the rest as a short last block (so call it once,
    /// or only with multiples of 16 before the last call).
    pub(super) fn update(&mut self, data: &[u8]) {
        self.feed(data, false);
    }

    /// Feeds `data`, zero-padded to a multiple of 16 bytes (as RFC 8439's
    /// AEAD does with the associated data and the ciphertext).
    pub(super) fn update_padded(&mut self, data: &[u8]) {
        self.feed(data, true);
    }

    /// Whole blocks, then the rest: zero-padded to a whole block if
    /// `padded`, else a short block (its bytes, a 1, zeros; no 2^128).
    fn feed(&mut self, data: &[u8], padded: bool) {
        let mut blocks = data.chunks_exact(16);
        for b in &mut blocks {
            self.block(le128(b.try_into().expect("16 bytes")), 1);
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            last[..rest.len()].copy_from_slice(rest);
            if padded {
                self.block(le128(&last), 1);
            } else {
                last[rest.len()] = 1;
                self.block(le128(&last), 0);
            }
            last.zeroize();
        }
    }

    /// The tag: the accumulator reduced modulo 2^130 - 5, plus `s`, modulo
    /// 2^128.
    pub(super) fn finish(mut self) -> [u8; 16] {
        let [mut h0, mut h1, mut h2] = self.h;
        // Two rounds of carries leave h0 < 2^44, h2 < 2^42 and h1 at most
        // 2^44: h < 2^130 + 2^88, well below 2p.
        for _ in 0..2 {
            h2 += h1 >> 44;
            h1 &= M44;
            h0 += (h2 >> 42) * 5;
            h2 &= M42;
            h1 += h0 >> 44;
            h0 &= M44;
        }
        // g = h + 5 - 2^130 = h - p; it is negative (its top bit set) iff
        // h < p, and then h is kept, else g. No branch on either.
        let g0 = h0 + 5;
        let g1 = h1 + (g0 >> 44);
        let g2 = (h2 + (g1 >> 44)).wrapping_sub(1 << 42);
        let keep_g = (g2 >> 63).wrapping_sub(1);
        let h0 = (h0 & !keep_g) | (g0 & M44 & keep_g);
        let h1 = (h1 & !keep_g) | (g1 & M44 & keep_g);
        let h2 = (h2 & !keep_g) | (g2 & keep_g);
        // Modulo 2^128: what a shift carries past bit 127 is dropped.
        let h = u128::from(h0)
            .wrapping_add(u128::from(h1) << 44)
            .wrapping_add(u128::from(h2) << 88);
        let tag = h.wrapping_add(self.s).to_le_bytes();
        self.h = [h0, h1, h2];
        tag
    }
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s.zeroize();
        self.h.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::Poly1305;
    use poly1305::universal_hash::KeyInit;

    fn tag(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut p = Poly1305::new(key);
        p.update(msg);
        p.finish()
    }

    fn rustcrypto(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        poly1305::Poly1305::new(key.into())
            .compute_unpadded(msg)
            .into()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8439, section 2.5.2.
    #[test]
    fn rfc8439_vector() {
        let key: [u8; 32] = hex("85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:\
             01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b"
            .replace(':', " ")
            .as_str())
        .try_into()
        .unwrap();
        let msg = b"Cryptographic Forum Research Group";
        assert_eq!(
            tag(&key, msg).to_vec(),
            hex("a8 06 1d c1 30 51 36 c6 c2 2b 8b af 0c 01 27 a9")
        );
    }

    /// RFC 8439, appendix A.3, vectors 5 to 9: accumulators that pass p
    /// and 2^128, where the final reduction's carries and choice matter.
    #[test]
    fn rfc8439_appendix_a3() {
        let one = {
            let mut k = [0u8; 32];
            k[0] = 2;
            k
        };
        let ff16 = [0xffu8; 16];
        // #5: r = 2, s = 0, m = 2^128 - 1 (a full block): tag 3.
        assert_eq!(
            tag(&one, &ff16).to_vec(),
            hex("03000000000000000000000000000000")
        );
        // #6: r = 2, s = 2^128 - 1, m = 2: tag 3.
        let mut k6 = one;
        k6[16..].copy_from_slice(&ff16);
        let mut m6 = [0u8; 16];
        m6[0] = 2;
        assert_eq!(
            tag(&k6, &m6).to_vec(),
            hex("03000000000000000000000000000000")
        );
        // #7: r = 1, m = ff.. f0ff.. 11 00..: tag 5.
        let mut k7 = [0u8; 32];
        k7[0] = 1;
        let m7 = hex(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF F0FFFFFFFFFFFFFFFFFFFFFFFFFFFFFF \
             11000000000000000000000000000000",
        );
        assert_eq!(
            tag(&k7, &m7).to_vec(),
            hex("05000000000000000000000000000000")
        );
        // #8: tag 0.
        let m8 = hex(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF FBFEFEFEFEFEFEFEFEFEFEFEFEFEFEFE \
             01010101010101010101010101010101",
        );
        assert_eq!(
            tag(&k7, &m8).to_vec(),
            hex("00000000000000000000000000000000")
        );
        // #9: r = 2, m = fd ff..: tag fa ff...
        let mut m9 = [0xffu8; 16];
        m9[0] = 0xfd;
        assert_eq!(
            tag(&one, &m9).to_vec(),
            hex("FAFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF")
        );
    }

    /// A small deterministic generator (xorshift64*), so that a failure
    /// can be replayed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn fill(&mut self, b: &mut [u8]) {
            for x in b {
                *x = self.next().to_le_bytes()[0];
            }
        }
    }

    /// Against RustCrypto's `poly1305` on random keys and messages of every
    /// length from 0 to 300, and on keys and messages of all ones (the
    /// largest limbs, where the reduction's carries matter most).
    #[test]
    fn same_tags_as_rustcrypto() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut key = [0u8; 32];
        let mut msg = vec![0u8; 300];
        for len in 0..=300 {
            for round in 0..40 {
                match round {
                    0 => {
                        key = [0xff; 32];
                        msg.fill(0xff);
                    }
                    1 => {
                        key = [0xff; 32];
                        rng.fill(&mut msg);
                    }
                    _ => {
                        rng.fill(&mut key);
                        rng.fill(&mut msg);
                    }
                }
                assert_eq!(
                    tag(&key, &msg[..len]),
                    rustcrypto(&key, &msg[..len]),
                    "length {len}, round {round}"
                );
            }
        }
    }

    /// `update_padded` is the message zero-padded to whole blocks.
    #[test]
    fn padded_is_zero_padding() {
        let mut rng = Rng(7);
        for len in 0..=64 {
            let mut key = [0u8; 32];
            rng.fill(&mut key);
            let mut msg = vec![0u8; len];
            rng.fill(&mut msg);
            let mut p = Poly1305::new(&key);
            p.update_padded(&msg);
            let mut padded = msg.clone();
            padded.resize(len.div_ceil(16) * 16, 0);
            assert_eq!(p.finish(), rustcrypto(&key, &padded), "length {len}");
        }
    }
}
