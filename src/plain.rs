//! The marker for types a box may hold.
//!
//! `unsafe` here only declares and implements the marker trait; the module
//! performs no unsafe operation.
#![allow(unsafe_code)]

/// A type whose every byte lives inline and for which all-zero bytes are a
/// valid value.
///
/// A box hands out memory that the kernel filled with zeros, so it must be
/// able to treat those zeros as a `T`; and it can only keep bytes out of swap,
/// core dumps and children if all of them are inside its own pages.
///
/// Implemented for the integer primitives, arrays of `Plain` types and slices
/// of them. Implement it for your own key structs:
///
/// ```
/// use lockedmem::{LockedBox, Plain};
///
/// #[repr(C)]
/// struct SigningKey {
///     secret: [u8; 32],
///     counter: u64,
/// }
///
/// // SAFETY: only integers and arrays of integers, all valid as zeros; no
/// // pointers, no interior mutability.
/// unsafe impl Plain for SigningKey {}
///
/// let key = LockedBox::<SigningKey>::new_with(|k| {
///     k.secret.copy_from_slice(&[7; 32]);
///     k.counter = 1;
/// })?;
/// assert_eq!(key.counter, 1);
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// # Safety
/// Implementing `Plain` for `T` promises that:
/// - a `T` made of all-zero bytes is a valid value (no references, no
///   `NonNull`, no `NonZero*`, no enum without a zero discriminant);
/// - `T` owns no memory outside itself: no `Box`, `Vec`, `String`, `Arc` or
///   other pointer to heap memory (those bytes would escape the locked pages,
///   and a zeroed pointer is not valid anyway);
/// - `T` has no interior mutability (`Cell`, `RefCell`, atomics, any
///   `UnsafeCell`): a sealed box lends `&T` over read-only pages, where a
///   write through a shared reference would fault.
///
/// - if `T` is ever held in a `ShieldedBox` (feature `shield`), `T` has no
///   padding bytes: the shield reads every byte of a `T` to encrypt it,
///   and padding is uninitialised after a whole-value assignment, which
///   Rust does not allow to be read. The integers, and arrays and slices
///   of them, have none.
///
/// Otherwise padding bytes are allowed and are wiped like every other
/// byte; prefer `#[repr(C)]` without padding so that nothing is left
/// uninitialised.
pub unsafe trait Plain {}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: an integer is inline and every bit pattern, zero
            // included, is a valid value.
            unsafe impl Plain for $t {}
        )*
    };
}

plain!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

// SAFETY: an array is its elements laid out inline; if each element is inline
// and valid as zeros, so is the array.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

// SAFETY: as for arrays; the length lives in the (fat) pointer to the slice,
// not in the slice's bytes.
unsafe impl<T: Plain> Plain for [T] {}
