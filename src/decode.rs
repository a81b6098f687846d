//! Secrets decoded from hex or base64 straight into locked memory, with
//! RustCrypto's constant-time decoders (`base16ct`, `base64ct`): no branch
//! or table lookup that depends on the bytes, and no plain copy of them,
//! but for base64ct's last partial block (one or two bytes), which it
//! decodes through a stack array it does not wipe.
#![forbid(unsafe_code)]

use base64ct::Encoding;

use crate::error::Error;
use crate::locked_box::LockedBox;
use crate::store::Request;
use crate::vec::LockedVec;

const HEX: Error = Error::Decode { encoding: "hex" };
const BASE64: Error = Error::Decode { encoding: "base64" };

impl<const N: usize> LockedBox<[u8; N]> {
    /// Decodes `hex` (upper or lower case, `2 * N` digits) into a new box.
    ///
    /// ```
    /// let key = lockedmem::LockedBox::<[u8; 4]>::from_hex("deadBEEF")?;
    /// assert_eq!(*key, [0xde, 0xad, 0xbe, 0xef]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] for a wrong length or a character that is not a hex
    /// digit (the box made for it is wiped); what making the box can return.
    pub fn from_hex(hex: &str) -> Result<Self, Error> {
        Self::from_hex_with(Request::of::<[u8; N]>(1), hex)
    }

    /// [`from_hex`](Self::from_hex), the box made as `req` says.
    pub(crate) fn from_hex_with(req: Request, hex: &str) -> Result<Self, Error> {
        if !hex_fits(hex.as_bytes(), N) {
            return Err(HEX);
        }
        let mut b = Self::zeroed_with(req)?;
        hex_exact(hex.as_bytes(), &mut b[..])?;
        Ok(b)
    }

    /// Decodes standard, padded `base64` (RFC 4648) of exactly `N` bytes
    /// into a new box.
    ///
    /// ```
    /// let key = lockedmem::LockedBox::<[u8; 4]>::from_base64("3q2+7w==")?;
    /// assert_eq!(*key, [0xde, 0xad, 0xbe, 0xef]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_hex`](Self::from_hex), for base64.
    pub fn from_base64(b64: &str) -> Result<Self, Error> {
        Self::from_base64_with(Request::of::<[u8; N]>(1), b64)
    }

    /// [`from_base64`](Self::from_base64), the box made as `req` says.
    pub(crate) fn from_base64_with(req: Request, b64: &str) -> Result<Self, Error> {
        if !base64_fits(b64.as_bytes(), N) {
            return Err(BASE64);
        }
        let mut b = Self::zeroed_with(req)?;
        base64_exact(b64.as_bytes(), &mut b[..])?;
        Ok(b)
    }
}

impl LockedVec<u8> {
    /// Decodes `hex` (upper or lower case, an even number of digits) into a
    /// new vector.
    ///
    /// ```
    /// let key = lockedmem::LockedVec::from_hex("00ff10")?;
    /// assert_eq!(&key[..], [0x00, 0xff, 0x10]);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] for an odd length or a character that is not a hex
    /// digit (what was decoded is wiped); what making the memory can return.
    pub fn from_hex(hex: &str) -> Result<Self, Error> {
        Self::from_hex_with(Request::of::<u8>(0), hex)
    }

    /// [`from_hex`](Self::from_hex), the memory made as `req` says.
    pub(crate) fn from_hex_with(req: Request, hex: &str) -> Result<Self, Error> {
        hex_vec(hex.as_bytes(), LockedVec::with_request(req))
    }

    /// Decodes standard, padded `base64` (RFC 4648) into a new vector.
    ///
    /// ```
    /// let key = lockedmem::LockedVec::from_base64("aHVudGVyMg==")?;
    /// assert_eq!(&key[..], b"hunter2");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_hex`](Self::from_hex), for base64.
    pub fn from_base64(b64: &str) -> Result<Self, Error> {
        Self::from_base64_with(Request::of::<u8>(0), b64)
    }

    /// [`from_base64`](Self::from_base64), the memory made as `req` says.
    pub(crate) fn from_base64_with(req: Request, b64: &str) -> Result<Self, Error> {
        base64_vec(b64.as_bytes(), LockedVec::with_request(req))
    }
}

// The decoders themselves, over memory the caller has made (with whatever
// options): the methods above and the `serde` helpers share them.

/// Whether `text` has the length of hex for `n` bytes (checked before any
/// memory is made for it).
pub(crate) fn hex_fits(text: &[u8], n: usize) -> bool {
    text.len() % 2 == 0 && text.len() / 2 == n
}

/// Whether `text` has the length of padded base64 for `n` bytes.
pub(crate) fn base64_fits(text: &[u8], n: usize) -> bool {
    // `n` is at most `isize::MAX` (the size of a value), so this cannot
    // overflow.
    text.len() == n.div_ceil(3) * 4
}

/// Decodes hex `text` into all of `out`.
///
/// # Errors
/// [`Error::Decode`] for a length other than `2 * out.len()` or a character
/// that is not a hex digit; `out` then holds what was decoded, for the
/// caller to wipe (dropping the box it is in does).
pub(crate) fn hex_exact(text: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let n = out.len();
    if !hex_fits(text, n) {
        return Err(HEX);
    }
    match base16ct::mixed::decode(text, out) {
        Ok(d) if d.len() == n => Ok(()),
        _ => Err(HEX),
    }
}

/// Decodes standard, padded base64 `text` into all of `out`.
///
/// # Errors
/// As [`hex_exact`], for base64 of `out.len()` bytes.
pub(crate) fn base64_exact(text: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let n = out.len();
    if !base64_fits(text, n) {
        return Err(BASE64);
    }
    match base64ct::Base64::decode(text, out) {
        Ok(d) if d.len() == n => Ok(()),
        _ => Err(BASE64),
    }
}

/// Decodes hex `text` into `v`, an empty vector whose options say how its
/// memory is made, reserving the room first.
///
/// # Errors
/// [`Error::Decode`] for an odd length or a character that is not a hex
/// digit; what reserving can return. `v` is dropped (wiped) then.
pub(crate) fn hex_vec(text: &[u8], mut v: LockedVec<u8>) -> Result<LockedVec<u8>, Error> {
    debug_assert!(v.is_empty());
    if text.len() % 2 != 0 {
        return Err(HEX);
    }
    let n = text.len() / 2;
    v.try_reserve(n)?;
    let got = base16ct::mixed::decode(text, &mut v.spare()[..n])
        .map_err(|_| HEX)?
        .len();
    v.set_len_within(got);
    Ok(v)
}

/// Decodes standard, padded base64 `text` into `v`, as [`hex_vec`] does.
///
/// # Errors
/// As [`hex_vec`], for base64.
pub(crate) fn base64_vec(text: &[u8], mut v: LockedVec<u8>) -> Result<LockedVec<u8>, Error> {
    debug_assert!(v.is_empty());
    let most = text.len() / 4 * 3;
    v.try_reserve(most)?;
    let got = base64ct::Base64::decode(text, &mut v.spare()[..most])
        .map_err(|_| BASE64)?
        .len();
    v.set_len_within(got);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses() {
        assert_eq!(
            *LockedBox::<[u8; 2]>::from_hex("0aFf").unwrap(),
            [0x0a, 0xff]
        );
        for bad in ["0a", "0aF", "0aFg", "0aFf00"] {
            assert!(matches!(
                LockedBox::<[u8; 2]>::from_hex(bad),
                Err(Error::Decode { encoding: "hex" })
            ));
        }
        assert_eq!(*LockedBox::<[u8; 1]>::from_base64("/w==").unwrap(), [0xff]);
        for bad in ["/w", "/w=", "/w==/w==", "!w=="] {
            assert!(LockedBox::<[u8; 1]>::from_base64(bad).is_err(), "{bad}");
        }
        assert!(LockedVec::from_hex("abc").is_err());
        assert!(LockedVec::from_hex("zz").is_err());
        assert_eq!(&LockedVec::from_hex("").unwrap()[..], b"");
        assert_eq!(&LockedVec::from_base64("").unwrap()[..], b"");
        assert!(LockedVec::from_base64("aGk").is_err(), "unpadded");
        let msg = LockedVec::from_hex("zz").unwrap_err().to_string();
        assert!(!msg.contains("zz"), "{msg}");
    }
}
