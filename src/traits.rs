//! The ecosystem's traits for byte secrets: `AsRef<[u8]>`/`AsMut<[u8]>` for
//! handing them to crypto crates, `zeroize::Zeroize`,
//! `subtle::ConstantTimeEq`, and `PartialEq`/`Eq` built on it, so that `==`
//! on two secrets takes the same time wherever they differ.
//!
//! Implemented for `LockedBox<[u8; N]>`, `LockedBox<[u8]>`, `LockedVec<u8>`
//! and `LockedString`. (`*a == *b` on the dereferenced values still compiles
//! and is *not* constant-time: compare the containers.)
//!
//! Each of them also compares with a plain byte slice, in either order
//! (`stored == presented` for `presented: &[u8]` or `[u8]`), and the string
//! with `str` and `&str`, through the same constant-time comparison: a
//! presented token need not be boxed first.
//!
//! What is constant-time, in every comparison here: the time does not
//! depend on the bytes, nor on where the first difference is. What is not:
//! the lengths. Slices of different lengths compare unequal at once, so the
//! time tells whether the lengths were equal, and a longer comparison takes
//! longer. Lengths are not treated as secret; pad or hash first where they
//! are.
//!
//! `zeroize::ZeroizeOnDrop` is implemented for every container whose `Drop`
//! zeroes all the bytes it held; each impl says why it holds.
#![forbid(unsafe_code)]

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::sealed::SealedBox;
use crate::string::LockedString;
use crate::vec::LockedVec;

/// Whether `a` and `b` are equal, in time that depends on their lengths
/// only (`subtle`'s comparison of slices).
fn ct_bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

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

        impl<$($g)*> PartialEq<[u8]> for $t {
            /// Constant time in the bytes: the time does not depend on
            /// them or on where they differ. Not in the lengths: slices of
            /// different lengths are unequal at once, so the time tells
            /// whether the lengths were equal (lengths are not secret).
            fn eq(&self, other: &[u8]) -> bool {
                ct_bytes_eq(&self[..], other)
            }
        }

        impl<$($g)*> PartialEq<&[u8]> for $t {
            /// Constant time in the contents; the lengths are compared
            /// first.
            fn eq(&self, other: &&[u8]) -> bool {
                ct_bytes_eq(&self[..], other)
            }
        }

        impl<$($g)*> PartialEq<$t> for [u8] {
            /// Constant time in the contents; the lengths are compared
            /// first.
            fn eq(&self, other: &$t) -> bool {
                ct_bytes_eq(self, &other[..])
            }
        }

        impl<$($g)*> PartialEq<$t> for &[u8] {
            /// Constant time in the contents; the lengths are compared
            /// first.
            fn eq(&self, other: &$t) -> bool {
                ct_bytes_eq(self, &other[..])
            }
        }
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

macro_rules! string_eq {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for LockedString {
            /// Constant time in the contents; the lengths are compared
            /// first.
            fn eq(&self, other: &$other) -> bool {
                ct_bytes_eq(self.as_bytes(), AsRef::<[u8]>::as_ref(other))
            }
        }

        impl PartialEq<LockedString> for $other {
            /// Constant time in the contents; the lengths are compared
            /// first.
            fn eq(&self, other: &LockedString) -> bool {
                ct_bytes_eq(AsRef::<[u8]>::as_ref(self), other.as_bytes())
            }
        }
    )*};
}

string_eq!([u8], &[u8], str, &str);

// `ZeroizeOnDrop`: each container's `Drop` zeroes every byte it held.

/// Dropping the box drops the value in place, then zeroes the canary and
/// every byte of the value with volatile writes (a packed box: its whole
/// slot) before the slot is cached or given back, also when dropping the
/// value panics. Not covered, as for any `ZeroizeOnDrop`: a box that is
/// never dropped (`mem::forget`, a process that exits without unwinding);
/// and a smashed canary aborts the process instead (after checking, before
/// wiping). A fork child's copy of a `ForkPolicy::Exclude` box holds no
/// bytes to wipe.
impl<T: ?Sized + Plain> ZeroizeOnDrop for LockedBox<T> {}

/// A vector's memory is one box holding its elements and then zeros: its
/// `Drop` drops the elements and frees the box, which zeroes all of it (see
/// `LockedBox`). Growth and `truncate` wiped what they left behind already.
impl<T: Plain> ZeroizeOnDrop for LockedVec<T> {}

/// A string is a `LockedVec<u8>` (see there).
impl ZeroizeOnDrop for LockedString {}

/// Dropping a sealed box opens its pages and drops it as the `LockedBox` it
/// was, which zeroes it (see `LockedBox`).
impl<T: ?Sized + Plain> ZeroizeOnDrop for SealedBox<T> {}

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
