//! `LockedVec<T>`: a growable vector whose every byte lives in the crate's
//! locked, guarded memory.
//!
//! The elements live in a `LockedBox<[T]>` of the vector's capacity (its
//! spare capacity is zeros, a valid `T` by `Plain`). Growing makes a new box,
//! copies the elements across inside locked memory, and frees the old box,
//! which wipes it: no byte goes through ordinary memory, and no unwiped copy
//! is left behind. Removed elements are dropped and their bytes wiped at once.
//!
//! Unsafe here is limited to copying elements between two boxes, dropping
//! elements in place, and zeroing the bytes they occupied.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr;

use crate::canary::wipe_bytes;
use crate::error::Error;
use crate::locked_box::LockedBox;
use crate::os;
use crate::plain::Plain;
use crate::policy::LockPolicy;
use crate::sealed::SealedBox;
use crate::store::Request;

/// Capacity in bytes a vector starts with when it first needs memory (unless
/// asked for more): small secrets fit without a second allocation.
const MIN_BYTES: usize = 64;

/// See [`LockedVec::jump_to_ready`]: bytes of input after which reading
/// moves to ready memory, and how many times larger that may be.
const JUMP_FROM: usize = 64 * 1024;
const JUMP_MAX: usize = 16;

/// A growable vector of `T` whose every byte lives in locked, guarded,
/// dump-proof memory.
///
/// ```
/// use lockedmem::LockedVec;
///
/// let mut key = LockedVec::<u8>::new();
/// key.try_extend_from_slice(b"correct horse")?;
/// key.try_push(b'!')?;
/// assert_eq!(&key[..], b"correct horse!");
/// assert!(key.is_locked());
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// Its memory comes from the same boxes as [`LockedBox`]'s: page-isolated
/// by default, packed if [`Options`](crate::Options) say so, locked and
/// advised as they say. The vector's *capacity* sits flush against a guard
/// page; an overflow past its length but within its capacity is not caught
/// (as with `Vec`).
///
/// The capacity grows to the next power of two (plus whatever the last
/// page holds besides), and the elements start on a cache line where the
/// pages leave room for it. Growing copies the elements into new locked
/// memory and wipes the old, so it needs the old and the new memory locked
/// at once. Under a tight `RLIMIT_MEMLOCK` (without `CAP_IPC_LOCK`) the
/// growth step that leaves the vector unable to double again takes all the
/// room the limit leaves beside the old memory, so a vector grown one
/// element at a time reaches at least two thirds of the room the limit
/// leaves it, for limits of 16 KiB and more (measured from empty: 12,272
/// bytes under 16 KiB, 45,040 under 64 KiB). Reserve the capacity up front,
/// with [`with_capacity`](LockedVec::with_capacity), to use all of it;
/// [`truncate`](LockedVec::truncate) and [`clear`](LockedVec::clear) wipe
/// the removed elements at once. `Debug` shows the length and capacity,
/// never an element.
pub struct LockedVec<T: Plain> {
    /// The elements, `len` of them, then zeros; `None` before the first
    /// allocation.
    buf: Option<LockedBox<[T]>>,
    len: usize,
    /// `buf`'s length (0 without one), kept here so that the fast paths do
    /// not go through the box.
    cap: usize,
    /// How new memory is made (its `len` is set per allocation).
    req: Request,
}

impl<T: Plain> LockedVec<T> {
    /// An empty vector; allocates nothing until the first element.
    pub fn new() -> Self {
        Self::with_request(Request::of::<T>(0))
    }

    /// An empty vector whose memory is made as `req` says.
    pub(crate) fn with_request(req: Request) -> Self {
        LockedVec {
            buf: None,
            len: 0,
            cap: 0,
            req,
        }
    }

    /// An empty vector with room for `capacity` elements.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`](crate::Options::zeroed_slice).
    pub fn with_capacity(capacity: usize) -> Result<Self, Error> {
        let mut v = Self::new();
        v.try_reserve(capacity)?;
        Ok(v)
    }

    /// Elements in the vector.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the vector has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the vector holds room for without growing.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Whether the vector's memory is mlocked (`true` while it has none).
    pub fn is_locked(&self) -> bool {
        self.buf.as_ref().is_none_or(|b| b.is_locked())
    }

    /// What memory the vector's elements live in, once it has any (see
    /// [`LockedBox::backing`]); `None` before its first allocation.
    pub fn backing(&self) -> Option<crate::Backing> {
        self.buf.as_ref().map(LockedBox::backing)
    }

    /// Makes room for at least `additional` more elements.
    ///
    /// # Errors
    /// As [`Options::zeroed_slice`](crate::Options::zeroed_slice); the vector
    /// is unchanged then.
    #[inline]
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), Error> {
        if additional <= self.cap - self.len {
            return Ok(());
        }
        self.grow_for(additional)
    }

    /// The slow half of `try_reserve`: grows to at least twice the capacity.
    #[cold]
    #[inline(never)]
    fn grow_for(&mut self, additional: usize) -> Result<(), Error> {
        let needed = self.len.checked_add(additional).ok_or(Error::TooLarge {
            len: usize::MAX,
            elem_size: std::mem::size_of::<T>(),
        })?;
        let min = MIN_BYTES / std::mem::size_of::<T>().max(1);
        // The next power of two above the capacity: about twice it, and,
        // since a page-isolated box holds a canary besides its value, the
        // memory that holds 2^k elements holds `room()` more up to the next
        // page, so input of a power-of-two length needs no further step.
        let doubled = self
            .cap
            .checked_add(1)
            .and_then(usize::checked_next_power_of_two)
            .unwrap_or(usize::MAX);
        let capacity = needed.max(doubled).max(min.max(1));
        // Whatever the memory holds room for anyway (a page-isolated box has
        // whole pages) becomes capacity too.
        let planned = Request {
            len: capacity,
            ..self.req
        }
        .room();
        let capacity = self.last_step(planned, needed).unwrap_or(planned);
        self.move_to(capacity)
    }

    /// Near `RLIMIT_MEMLOCK`, the capacity to grow to instead of `planned`
    /// (at least `needed`): growth holds the old and the new memory locked
    /// at once, so once the vector could not double again after this step,
    /// this step is its last, and it takes all the room the limit leaves
    /// beside the old memory. Doubling until then, and the rest in the last
    /// step, reaches at least two thirds of the room the limit leaves the
    /// vector (it doubles from `x` only while `x` and `2x` fit, so its last
    /// `x` is at most a third of it). `None`: keep to `planned` (no limit
    /// binds, the lock is best-effort, or doubling can go on).
    fn last_step(&self, planned: usize, needed: usize) -> Option<usize> {
        if self.req.lock != LockPolicy::Require {
            return None;
        }
        let cost = |len: usize| Request { len, ..self.req }.locked_cost();
        let new = cost(planned);
        if new == 0 {
            return None; // packed: no page of its own
        }
        let room = Request::lock_room()?;
        let old = if self.buf.is_some() {
            cost(self.cap)
        } else {
            0
        };
        let next = Request {
            len: planned
                .checked_add(1)
                .and_then(usize::checked_next_power_of_two)
                .unwrap_or(usize::MAX),
            ..self.req
        }
        .room();
        if new.saturating_add(cost(next)) <= room.saturating_add(old) {
            return None; // it can double again after this step
        }
        let most = Request { len: 1, ..self.req }.capacity_within(room);
        (most > planned && most >= needed).then_some(most)
    }

    /// Before a growth while reading input of unknown length that has
    /// already filled `JUMP_FROM` bytes: moves to the largest slot, with
    /// room for at most `limit` elements and `JUMP_MAX` times the present
    /// capacity, that the allocator holds locked and ready, if that is more
    /// than the next growth step would give. Input read again and again (a
    /// file loaded on every request) then lands in ready memory after one
    /// copy of its first part, where doubling would copy and wipe about its
    /// whole length in steps.
    fn jump_to_ready(&mut self, limit: usize) -> Result<(), Error> {
        let size = std::mem::size_of::<T>().max(1);
        if self.cap.saturating_mul(size) < JUMP_FROM {
            return Ok(());
        }
        let most = limit.min(self.cap.saturating_mul(JUMP_MAX));
        let Some(room) = self.req.with_len_of::<T>(most).ready_room() else {
            return Ok(());
        };
        let step = self.cap.saturating_mul(2);
        if room > step {
            self.move_to(room)?;
        }
        Ok(())
    }

    /// Moves the elements into new memory of exactly `capacity` elements (at
    /// least the length); the old memory is wiped and freed.
    fn move_to(&mut self, capacity: usize) -> Result<(), Error> {
        debug_assert!(capacity >= self.len);
        let mut fresh = LockedBox::<[T]>::zeroed_slice_with(Request {
            len: capacity,
            ..self.req
        })?;
        if let Some(old) = self.buf.take() {
            // SAFETY: `len` initialised elements of the old box, copied into
            // the first `len` (zeroed, unused) elements of the new one; two
            // boxes, so the ranges are disjoint. The old elements are not
            // dropped: they now live in `fresh`.
            unsafe {
                ptr::copy_nonoverlapping(old.as_ptr(), fresh.as_mut_ptr(), self.len);
            }
            old.free_without_drop();
        }
        self.buf = Some(fresh);
        self.cap = capacity;
        Ok(())
    }

    /// Appends `value`, growing if needed.
    ///
    /// # Errors
    /// As [`try_reserve`](LockedVec::try_reserve); `value` is dropped then.
    ///
    /// # Panics
    /// In a fork(2) child, for a vector whose memory its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude), as dereferencing
    /// it does.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), Error> {
        self.try_reserve(1)?;
        let len = self.len;
        let buf = self.buf.as_mut().expect("reserved");
        let slot: *mut T = &raw mut buf[len];
        // SAFETY: a spare element, in bounds (reserved above), holding zeros
        // that are no value to drop (`Plain`); it is overwritten in place.
        unsafe { ptr::write(slot, value) };
        self.len += 1;
        Ok(())
    }

    /// Appends a copy of `src`, growing if needed.
    ///
    /// # Errors
    /// As [`try_reserve`](LockedVec::try_reserve); the vector is unchanged
    /// then.
    pub fn try_extend_from_slice(&mut self, src: &[T]) -> Result<(), Error>
    where
        T: Copy,
    {
        self.try_reserve(src.len())?;
        if let Some(buf) = self.buf.as_mut() {
            buf[self.len..self.len + src.len()].copy_from_slice(src);
        }
        self.len += src.len();
        Ok(())
    }

    /// The zeroed elements past the length, for writing in place (the caller
    /// then extends the length with [`set_len_within`]).
    pub(crate) fn spare(&mut self) -> &mut [T] {
        let len = self.len;
        self.buf.as_mut().map_or(&mut [], |b| &mut b[len..])
    }

    /// Counts `n` more elements of the spare capacity as part of the vector
    /// (they were written through [`spare`](LockedVec::spare)).
    pub(crate) fn set_len_within(&mut self, n: usize) {
        assert!(n <= self.cap - self.len, "within the spare capacity");
        self.len += n;
    }

    /// Keeps the first `len` elements; the others are dropped and their bytes
    /// wiped at once. Does nothing if `len >= self.len()`.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let Some(buf) = self.buf.as_mut() else {
            return;
        };
        let removed = self.len - len;
        // Shrink first, so that a panicking `Drop` of `T` leaves the vector
        // consistent (the rest of the removed elements then leak, and their
        // bytes are wiped all the same).
        self.len = len;
        let tail: *mut [T] = &raw mut buf[len..len + removed];
        let bytes = removed * std::mem::size_of::<T>();
        // The removed bytes are wiped even if dropping an element panics.
        struct WipeOnExit(*mut u8, usize);
        impl Drop for WipeOnExit {
            fn drop(&mut self) {
                // SAFETY: the removed elements' bytes, in the box's writable
                // memory; they are not used again (dropped, or leaked by a
                // panicking `Drop`), and zeros are a valid `T` (`Plain`), as
                // the spare capacity must hold.
                unsafe { wipe_bytes(self.0, self.1) };
            }
        }
        let _wipe = WipeOnExit(tail.cast::<u8>(), bytes);
        // SAFETY: the removed elements are initialised and no longer part of
        // the vector; each is dropped once, in place.
        unsafe { ptr::drop_in_place(tail) };
    }

    /// Removes every element, dropping them and wiping their bytes at once;
    /// the memory is kept.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// A copy of the vector in new locked memory made as this vector's is
    /// (its [`Options`](crate::Options)), with room for its length. The
    /// elements are copied from locked memory to locked memory.
    ///
    /// ```
    /// let key = lockedmem::LockedVec::from_hex("00ff")?;
    /// let copy = key.try_clone()?;
    /// assert!(copy == key);
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`try_reserve`](LockedVec::try_reserve); nothing is made then.
    ///
    /// # Panics
    /// In a fork(2) child, for a vector whose memory its parent made with
    /// [`ForkPolicy::Exclude`](crate::ForkPolicy::Exclude), as
    /// dereferencing it does.
    pub fn try_clone(&self) -> Result<Self, Error>
    where
        T: Copy,
    {
        let mut copy = Self::with_request(self.req);
        copy.try_extend_from_slice(self)?;
        Ok(copy)
    }

    /// Seals the elements: moves them into a box of exactly their length
    /// (flush against its guard page; the vector's memory is wiped) and
    /// seals that (as `LockedBox::seal` does).
    ///
    /// ```
    /// let mut v = lockedmem::LockedVec::<u8>::new();
    /// v.try_extend_from_slice(b"token")?;
    /// let sealed = v.seal()?;
    /// assert_eq!(&sealed.borrow()[..], b"token");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// What making the new box or sealing can return; the elements are
    /// dropped and wiped then.
    pub fn seal(mut self) -> Result<SealedBox<[T]>, Error> {
        if self.cap != self.len {
            self.move_to(self.len)?;
        }
        let exact = match self.buf.take() {
            Some(b) => b,
            None => LockedBox::<[T]>::zeroed_slice_with(Request { len: 0, ..self.req })?,
        };
        self.len = 0;
        self.cap = 0;
        exact.seal()
    }
}

/// Bytes of the scratch read that asks whether input remains.
const PROBE: usize = 64;

/// One read(2) into `buf`, retried on `EINTR`.
fn read_some(reader: &mut impl io::Read, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        match reader.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(Error::Io { source }),
        }
    }
}

impl<T: Plain> Default for LockedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Plain> Drop for LockedVec<T> {
    /// Drops the elements, then wipes and frees the memory (canaries checked).
    fn drop(&mut self) {
        let Some(buf) = self.buf.take() else {
            return;
        };
        let len = self.len;
        self.len = 0;
        if !buf.present() {
            // A fork child's copy of a vector whose pages were left in the
            // parent (`ForkPolicy::Exclude`, and secret memory): there are
            // no elements here to drop, and touching them would panic.
            drop(buf);
            return;
        }
        // Check and free the memory whether or not dropping an element panics.
        struct Free<T: Plain>(Option<LockedBox<[T]>>);
        impl<T: Plain> Drop for Free<T> {
            fn drop(&mut self) {
                if let Some(b) = self.0.take() {
                    b.free_without_drop();
                }
            }
        }
        let mut free = Free(Some(buf));
        let live = &mut free.0.as_mut().expect("just set")[..len];
        // SAFETY: the vector's `len` elements are initialised and dropped
        // once, here; the spare capacity (zeros) holds no value to drop.
        unsafe { ptr::drop_in_place(live) };
    }
}

impl<T: Plain> Deref for LockedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.buf.as_ref().map_or(&[], |b| &b[..self.len])
    }
}

impl<T: Plain> DerefMut for LockedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let len = self.len;
        self.buf.as_mut().map_or(&mut [], |b| &mut b[..len])
    }
}

impl<T: Plain> fmt::Debug for LockedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedVec")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Appends what is written: `std::io::copy(&mut reader, &mut vec)` fills
/// locked memory.
impl io::Write for LockedVec<u8> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_extend_from_slice(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LockedVec<u8> {
    /// A vector of `len` random bytes, drawn by getrandom(2) straight into
    /// locked memory.
    ///
    /// # Errors
    /// As [`with_capacity`](Self::with_capacity); [`Error::Os`] if
    /// getrandom(2) fails (what was drawn is wiped then).
    pub fn random(len: usize) -> Result<Self, Error> {
        Self::random_with(Request::of::<u8>(0), len)
    }

    /// [`random`](Self::random), the memory made as `req` says.
    pub(crate) fn random_with(req: Request, len: usize) -> Result<Self, Error> {
        let mut v = Self::with_request(req);
        v.try_reserve(len)?;
        os::random(&mut v.spare()[..len]).map_err(|e| Error::os("getrandom", len, e))?;
        v.set_len_within(len);
        Ok(v)
    }

    /// Reads `reader` to its end straight into locked memory: each read(2)
    /// writes into the vector's spare capacity, never into an ordinary
    /// buffer. (So give it an unbuffered reader: a `File`, a pipe, and for
    /// standard input [`raw_stdin`](crate::raw_stdin), not
    /// [`std::io::stdin`], which reads ahead into a buffer of its own that
    /// nobody wipes.)
    ///
    /// The vector grows as [`try_reserve`](Self::try_reserve) does, except
    /// that input past 64 KiB moves at once into the largest slot the
    /// crate's cache of large slots holds ready (see
    /// [`large_cache_limit`](crate::large_cache_limit)) of at most 16 times
    /// the present capacity and `max_len`, if that is more than the next
    /// step: input read again and again then costs no mlock and one copy
    /// of its first 64 KiB. The result's capacity may then exceed its
    /// length by more than doubling would leave.
    ///
    /// ```
    /// let key = lockedmem::LockedVec::read_from(&b"hunter2"[..], 64)?;
    /// assert_eq!(&key[..], b"hunter2");
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InputTooLong`] if the input is longer than `max_len` bytes
    /// (at most `max_len + 1` bytes are read to find out);
    /// [`Error::Io`] if the reader fails; what making the memory can return.
    /// What was read is wiped in every case.
    pub fn read_from(reader: impl io::Read, max_len: usize) -> Result<Self, Error> {
        Self::read_from_with(Request::of::<u8>(0), reader, max_len)
    }

    /// [`read_from`](Self::read_from), the memory made as `req` says.
    pub(crate) fn read_from_with(
        req: Request,
        mut reader: impl io::Read,
        max_len: usize,
    ) -> Result<Self, Error> {
        let mut v = LockedVec::with_request(req);
        // When the vector is full, whether input remains is asked with a
        // small read into this locked scratch box, so that the end of the
        // input costs no growth.
        let mut probe: Option<LockedBox<[u8; PROBE]>> = None;
        // Bytes worth reading: one past the limit tells that input remains
        // (and `usize::MAX` means no limit at all).
        let limit = max_len.saturating_add(1);
        loop {
            if v.len > max_len {
                return Err(Error::InputTooLong { max_len });
            }
            if v.len == v.cap && v.cap > 0 {
                let p = match probe.as_mut() {
                    Some(p) => p,
                    None => probe.insert(LockedBox::zeroed_with(Request {
                        isolation: crate::policy::Isolation::Packed,
                        ..v.req.with_len_of::<[u8; PROBE]>(1)
                    })?),
                };
                let want = PROBE.min(limit - v.len);
                let n = match read_some(&mut reader, &mut p[..want])? {
                    0 => return Ok(v),
                    n => n,
                };
                v.jump_to_ready(limit)?;
                v.try_extend_from_slice(&p[..n])?;
                p[..n].fill(0);
                continue;
            }
            if v.len == v.cap {
                v.try_reserve(MIN_BYTES.min(limit))?;
            }
            let want = (limit - v.len).min(v.cap - v.len);
            match read_some(&mut reader, &mut v.spare()[..want])? {
                0 => return Ok(v),
                n => v.set_len_within(n),
            }
        }
    }
}
