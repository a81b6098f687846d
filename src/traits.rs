//! The ecosystem's traits for byte secrets: `AsRef<[u8]>`/`AsMut<[u8]>` for
//! handing them to crypto crates, `zeroize::Zeroize`,
//! `subtle::ConstantTimeEq`, and `PartialEq`/`Eq` built on it, so that `==`
//! on two secrets takes the same time wherever they differ.
//!
//! Implemented for `LockedBox<[u8; N]>`, `LockedBox<[u8]>`, `LockedVec<u8>`
//! and `LockedString`. (`*a == *b` on the dereferenced values still compiles
//! and is *not* constant-time: compare the containers.)
#![forbid(unsafe_code)]

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

use crate::locked_box::LockedBox;
use crate::string::LockedString;
use crate::vec::LockedVec;

macro_rules! byte_secret {
    ($(impl[$($g:tt)*] $t:ty;)*) => {$(
        impl<$($g)*> AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                &self[..]
            }
        }

        impl<$($g)*> AsMut<[u8]> for $t {
            fn as_mut(&mut self) -> &mut [u8] {
                &mut self[..]
            }
        }

        impl<$($g)*> ConstantTimeEq for $t {
            /// Constant time in the contents; the lengths, which are not
            /// secret, are compared first.
            fn ct_eq(&self, other: &Self) -> Choice {
                self[..].ct_eq(&other[..])
            }
        }

        impl<$($g)*> PartialEq for $t {
            /// Constant time in the contents ([`ConstantTimeEq`]).
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl<$($g)*> Eq for $t {}
    )*};
}

byte_secret! {
    impl[const N: usize] LockedBox<[u8; N]>;
    impl[] LockedBox<[u8]>;
    impl[] LockedVec<u8>;
}

impl<const N: usize> Zeroize for LockedBox<[u8; N]> {
    /// Zeroes the secret (volatile writes); the box stays usable.
    fn zeroize(&mut self) {
        self[..].zeroize();
    }
}

impl Zeroize for LockedBox<[u8]> {
    /// Zeroes the secret (volatile writes); the box stays usable.
    fn zeroize(&mut self) {
        self[..].zeroize();
    }
}

impl Zeroize for LockedVec<u8> {
    /// Wipes the elements and empties the vector; the memory is kept (its
    /// spare capacity is zeros already).
    fn zeroize(&mut self) {
        self.clear();
    }
}

impl AsRef<[u8]> for LockedString {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<str> for LockedString {
    fn as_ref(&self) -> &str {
        self
    }
}

impl ConstantTimeEq for LockedString {
    /// Constant time in the contents; the lengths are compared first.
    fn ct_eq(&self, other: &Self) -> Choice {
        self.as_bytes().ct_eq(other.as_bytes())
    }
}

impl PartialEq for LockedString {
    /// Constant time in the contents ([`ConstantTimeEq`]).
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for LockedString {}

impl Zeroize for LockedString {
    /// Wipes the text and empties the string; the memory is kept.
    fn zeroize(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_by_contents() {
        let a = LockedBox::<[u8; 4]>::new_with(|k| k.copy_from_slice(b"abcd")).unwrap();
        let b = LockedBox::<[u8; 4]>::new_with(|k| k.copy_from_slice(b"abcd")).unwrap();
        let c = LockedBox::<[u8; 4]>::new_with(|k| k.copy_from_slice(b"abce")).unwrap();
        assert!(a == b && a != c);
        assert_eq!(a.ct_eq(&c).unwrap_u8(), 0);
        let s = LockedBox::<[u8]>::from_slice(b"xy").unwrap();
        assert!(s != LockedBox::<[u8]>::from_slice(b"xyz").unwrap());
        let mut v = LockedVec::from_hex("0102").unwrap();
        assert!(v == LockedVec::from_hex("0102").unwrap());
        assert_eq!(v.as_ref(), [1, 2]);
        v.zeroize();
        assert!(v.is_empty());
        let mut t = LockedString::new();
        t.try_push_str("pw").unwrap();
        let mut u = LockedString::new();
        u.try_push_str("pw").unwrap();
        assert!(t == u);
        t.zeroize();
        assert!(t.is_empty() && t != u);
        let mut k = LockedBox::<[u8; 4]>::from_hex("ffffffff").unwrap();
        k.zeroize();
        assert_eq!(*k, [0; 4]);
    }
}
