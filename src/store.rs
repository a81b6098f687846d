//! What a box owns: the memory its value lives in. [`LockedBox`] is a typed
//! view of a [`Store`]; a new kind of memory is a new variant here, and the
//! box does not change.
//!
//! [`LockedBox`]: crate::LockedBox
#![allow(unsafe_code)]

use std::io;
use std::ptr::{self, NonNull};

use crate::error::Error;
use crate::fork::EXCLUDED;
use crate::layout::{CANARY_LEN, Layout, LayoutError, PackedLayout};
use crate::limits;
use crate::os;
use crate::packed::PackedSlot;
use crate::policy::{Backing, DumpPolicy, ForkPolicy, Isolation, LockPolicy};
use crate::region::{Kind, Region};
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) use crate::residency::Residency;

/// Notes `e` (see [`note_refusal`]) and hands it back: the error path of a
/// packed store, out of line.
#[cold]
#[inline(never)]
fn refused(e: Error) -> Error {
    note_refusal(&e);
    e
}

/// Remembers a refusal of memfd_secret(2) as unsupported (see
/// `SECRETMEM_REFUSED`).
fn note_refusal(e: &Error) {
    if let Error::Unsupported {
        call: "memfd_secret",
        ..
    } = e
    {
        SECRETMEM_REFUSED.store(true, Ordering::Relaxed);
    }
}

/// Bytes of a cache line, where [`Request::room`] starts a value if the
/// pages leave room for it.
const CACHE_LINE: usize = 64;

/// Where a box's value lives.
pub(crate) enum Store {
    /// Data pages of its own between guard pages.
    Page(Region),
    /// A slot between canaries on a page shared with other small values.
    Packed(PackedSlot),
}

/// What a new store is for: the value's shape and the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) len: usize,
    pub(crate) elem_size: usize,
    pub(crate) align: usize,
    pub(crate) lock: LockPolicy,
    pub(crate) fork: ForkPolicy,
    /// Whether `fork` was chosen (rather than left at its default, which
    /// secret memory changes to `Exclude`).
    pub(crate) fork_chosen: bool,
    pub(crate) isolation: Isolation,
    pub(crate) backing: Backing,
    pub(crate) dumps: DumpPolicy,
}

impl Request {
    /// How many elements the memory made for this request holds room for:
    /// `len`, or more where the memory is larger anyway (a page-isolated
    /// box has whole data pages, its value flush against their end).
    pub(crate) fn room(&self) -> usize {
        let Some(size) = self.len.checked_mul(self.elem_size) else {
            return self.len;
        };
        if self.packed_layout(size).is_some() || self.elem_size == 0 {
            return self.len;
        }
        match Layout::new(size, self.align, os::page_size()) {
            // Whole elements fit between the canary and the end of the
            // data pages, and the value stays aligned (`elem_size` is a
            // multiple of the alignment). Where the pages have room for it,
            // the value starts a cache line into them, so that it begins on
            // a cache line as the buffers it is copied from usually do: on
            // AMD Zen the kernel's `rep movsb` into memory 1 to 31 bytes
            // past the source's offset in a cache line runs about 4x slower
            // (a pipe read into a page at offset 16: 510 µs a MiB against
            // 140 µs at offset 0 or 64).
            Ok(l) => {
                let lined = l.data_len.saturating_sub(CACHE_LINE) / self.elem_size;
                if lined >= self.len {
                    lined
                } else {
                    (l.data_len - CANARY_LEN) / self.elem_size
                }
            }
            Err(_) => self.len,
        }
    }

    /// Bytes of locked memory the memory for this request costs on its
    /// own: its data pages if page-isolated; 0 if packed (a slot on a page
    /// shared with others) or zero-sized.
    pub(crate) fn locked_cost(&self) -> usize {
        let Some(size) = self.len.checked_mul(self.elem_size) else {
            return usize::MAX;
        };
        if self.packed_layout(size).is_some() || size == 0 {
            return 0;
        }
        Layout::new(size, self.align, os::page_size()).map_or(usize::MAX, |l| l.data_len)
    }

    /// The most elements page-isolated memory of at most `bytes` bytes of
    /// data pages holds (see [`room`](Request::room)); 0 if none fit.
    pub(crate) fn capacity_within(&self, bytes: usize) -> usize {
        let pages = bytes / os::page_size();
        if self.elem_size == 0 || pages == 0 {
            return 0;
        }
        // That many elements and the canary fill the pages exactly; `room`
        // keeps to the same pages.
        let fits = (pages * os::page_size() - CANARY_LEN) / self.elem_size;
        Request { len: fits, ..*self }.room()
    }

    /// Bytes more the crate can lock for memory that requires its lock
    /// before `RLIMIT_MEMLOCK` refuses; `None` where no limit binds (see
    /// `Region::lock_room`).
    pub(crate) fn lock_room() -> Option<usize> {
        Region::lock_room()
    }

    /// The most elements, at most `len`, that a page-isolated slot already
    /// locked and waiting in the allocator's cache of large slots holds
    /// room for (see [`room`](Request::room)), if there is one. A request
    /// for that many elements is then likely to get that slot (unless
    /// another thread takes it first).
    pub(crate) fn ready_room(&self) -> Option<usize> {
        if self.elem_size == 0 {
            return None;
        }
        let size = self.len.checked_mul(self.elem_size)?;
        let max = Layout::new(size, self.align, os::page_size())
            .ok()?
            .data_len;
        let kind = match self.kinds() {
            Ok((Some(kind), _) | (None, Some(kind))) => kind,
            _ => return None,
        };
        let data_len = Region::largest_ready(max, kind)?;
        let lined = data_len.checked_sub(CACHE_LINE)? / self.elem_size;
        (lined > 0).then_some(lined.min(self.len))
    }

    /// Where a value of `size` bytes goes in a packed slot, if this request
    /// asks for packing and the value can be packed; otherwise it is
    /// page-isolated.
    #[inline(always)]
    fn packed_layout(&self, size: usize) -> Option<PackedLayout> {
        if self.isolation != Isolation::Packed {
            return None;
        }
        PackedLayout::new(size, self.align, os::page_size())
    }

    /// The error for a request too large to make.
    #[cold]
    fn too_large(&self) -> Error {
        Error::TooLarge {
            len: self.len,
            elem_size: self.elem_size,
        }
    }

    /// `len` elements of `T`, with this request's policies.
    pub(crate) fn with_len_of<T>(&self, len: usize) -> Self {
        Request {
            len,
            elem_size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
            ..*self
        }
    }

    /// `len` elements of `T`, with the default options.
    pub(crate) fn of<T>(len: usize) -> Self {
        Request {
            len,
            elem_size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
            lock: LockPolicy::default(),
            fork: ForkPolicy::default(),
            fork_chosen: false,
            isolation: Isolation::default(),
            backing: Backing::default(),
            dumps: DumpPolicy::default(),
        }
    }

    /// The fork policy the request gets: the one chosen, else `Exclude` for
    /// (possibly) secret memory and the default otherwise.
    fn fork_policy(&self) -> ForkPolicy {
        match self.backing {
            _ if self.fork_chosen => self.fork,
            Backing::Anonymous if os::FORK_ZEROS => ForkPolicy::Wipe,
            Backing::Anonymous | Backing::SecretMem | Backing::PreferSecretMem => {
                ForkPolicy::Exclude
            }
        }
    }

    /// The kinds of memory to try, in order: secret memory if asked for
    /// (and possible), and anonymous memory if that may stand in.
    fn kinds(&self) -> Result<(Option<Kind>, Option<Kind>), Error> {
        let fork = self.fork_policy();
        let anonymous = Some(Kind::anonymous(fork));
        match self.backing {
            Backing::Anonymous => Ok((None, anonymous)),
            Backing::SecretMem if fork != ForkPolicy::Exclude => Err(Error::Unsupported {
                call: "memfd_secret(2) memory under a fork policy other than Exclude",
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a fork child would share secret memory, which the kernel cannot wipe \
                     (MADV_WIPEONFORK is EINVAL there): use ForkPolicy::Exclude",
                ),
            }),
            Backing::SecretMem => Ok((Some(Kind::SECRET), None)),
            Backing::PreferSecretMem if fork != ForkPolicy::Exclude => Ok((None, anonymous)),
            Backing::PreferSecretMem if !secretmem_may_work() => Ok((None, anonymous)),
            Backing::PreferSecretMem => Ok((Some(Kind::SECRET), anonymous)),
        }
    }
}

/// Set once memfd_secret(2) was refused as unsupported in this process (a
/// missing call, secret memory disabled, a seccomp filter): `PreferSecretMem`
/// then goes straight to anonymous memory.
static SECRETMEM_REFUSED: AtomicBool = AtomicBool::new(false);

fn secretmem_may_work() -> bool {
    !SECRETMEM_REFUSED.load(Ordering::Relaxed)
}

impl Store {
    /// Memory for `req.len` elements, zeroed, canaries written.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if the value with its canary and guard pages does
    /// not fit in the address space or is larger than physical memory (under
    /// either lock policy); [`Error::Alignment`]; and what making the pages
    /// can return.
    #[inline]
    pub(crate) fn new(req: Request) -> Result<Self, Error> {
        let Some(size) = req.len.checked_mul(req.elem_size) else {
            return Err(req.too_large());
        };
        if req.dumps == DumpPolicy::Exclude && !os::dumps_excludable() {
            return Err(Error::Unsupported {
                call: os::DUMP_EXCLUSION,
                source: std::io::Error::from(std::io::ErrorKind::Unsupported),
            });
        }
        match req.kinds()? {
            (Some(secret), anonymous) => Self::of_kind(req, size, secret, anonymous),
            (None, anonymous) => {
                let kind = anonymous.expect("`kinds` names at least one kind");
                Self::of_kind(req, size, kind, None)
            }
        }
    }

    /// [`new`](Store::new) with memory of `kind`, or, where that fails in a
    /// way `stand_in` may answer, with memory of `stand_in` (see
    /// [`stand_in`](Store::stand_in)). The result is the function's tail on
    /// every path, so that it is written once, where the caller wants it.
    #[inline]
    fn of_kind(
        req: Request,
        size: usize,
        kind: Kind,
        stand_in: Option<Kind>,
    ) -> Result<Self, Error> {
        if let Some(layout) = req.packed_layout(size) {
            return match PackedSlot::new(layout, req.lock, kind) {
                Ok(slot) => Ok(Store::Packed(slot)),
                Err(e) => Self::stand_in(req, size, refused(e), stand_in),
            };
        }
        Self::page_of_kind(req, size, kind).or_else(|e| Self::stand_in(req, size, e, stand_in))
    }

    /// After `error` making secret memory for `PreferSecretMem`: anonymous
    /// memory (`stand_in`) stands in where secret memory is unsupported,
    /// the lock limit leaves it no room, or no secret file can be had (out
    /// of descriptors, `EMFILE`: anonymous memory needs none). Any other
    /// error, or none to stand in, is returned as it is.
    #[cold]
    #[inline(never)]
    fn stand_in(
        req: Request,
        size: usize,
        error: Error,
        stand_in: Option<Kind>,
    ) -> Result<Self, Error> {
        let Some(kind) = stand_in else {
            return Err(error);
        };
        let stands_in = match &error {
            Error::Unsupported { .. } | Error::MemlockLimit { .. } => true,
            Error::Os { source, .. } => os::trouble(source, false) == os::Trouble::NoDescriptors,
            _ => false,
        };
        if stands_in {
            Self::of_kind(req, size, kind, None)
        } else {
            Err(error)
        }
    }

    /// [`of_kind`](Store::of_kind) for a page-isolated store.
    #[inline(always)]
    fn page_of_kind(req: Request, size: usize, kind: Kind) -> Result<Self, Error> {
        let page_size = os::page_size();
        let layout = Layout::new(size, req.align, page_size).map_err(|e| match e {
            LayoutError::AlignTooLarge => Error::Alignment {
                align: req.align,
                page_size,
            },
            LayoutError::TooLarge | LayoutError::BadAlign | LayoutError::BadPageSize => {
                req.too_large()
            }
        })?;
        Self::page(layout, req.lock, kind)
            .inspect_err(note_refusal)
            .map_err(|e| match e {
                Error::TooLarge { .. } => req.too_large(),
                e => e,
            })
    }

    /// Page-isolated anonymous memory for `req.len` elements that is never
    /// locked (guarded, advised for dumps and the request's fork policy
    /// like any other; `req.lock` and `req.isolation` are not read): for
    /// bytes that are no secret in the clear, such as the shield's
    /// ciphertext.
    ///
    /// # Errors
    /// As [`new`](Store::new) for a page-isolated store, but never
    /// [`Error::MemlockLimit`].
    #[cfg(feature = "shield")]
    pub(crate) fn never_locked(req: Request) -> Result<Self, Error> {
        let page_size = os::page_size();
        let too_large = Error::TooLarge {
            len: req.len,
            elem_size: req.elem_size,
        };
        let size = req.len.checked_mul(req.elem_size).ok_or(too_large)?;
        let layout = Layout::new(size, req.align, page_size).map_err(|e| match e {
            LayoutError::AlignTooLarge => Error::Alignment {
                align: req.align,
                page_size,
            },
            _ => Error::TooLarge {
                len: req.len,
                elem_size: req.elem_size,
            },
        })?;
        let kind = Kind::anonymous(req.fork_policy());
        Region::create(layout, crate::policy::Locking::Never, kind).map(Store::Page)
    }

    /// A page-isolated store for `layout`.
    #[inline(always)]
    fn page(layout: Layout, lock: LockPolicy, kind: Kind) -> Result<Self, Error> {
        if !limits::fits_in_ram(layout.data_len) {
            return Err(Error::TooLarge {
                len: 1,
                elem_size: layout.size,
            });
        }
        Region::create(layout, lock.into(), kind).map(Store::Page)
    }

    /// What memory the value lives in.
    pub(crate) fn backing(&self) -> Backing {
        let kind = match self {
            Store::Page(r) => r.kind(),
            Store::Packed(p) => p.kind(),
        };
        if kind.secret {
            Backing::SecretMem
        } else {
            Backing::Anonymous
        }
    }

    #[inline]
    pub(crate) fn value_ptr(&self) -> NonNull<u8> {
        match self {
            Store::Page(r) => r.value_ptr(),
            Store::Packed(p) => p.value_ptr(),
        }
    }

    /// Whether the memory exists in this process (not in a fork child of
    /// the maker of a [`ForkPolicy::Exclude`] box).
    #[inline(always)]
    pub(crate) fn present(&self) -> bool {
        match self {
            Store::Page(r) => r.present(),
            Store::Packed(p) => p.present(),
        }
    }

    /// Size of the value in bytes.
    pub(crate) fn size(&self) -> usize {
        match self {
            Store::Page(r) => r.size(),
            Store::Packed(p) => p.layout.size,
        }
    }

    pub(crate) fn is_locked(&self) -> bool {
        match self {
            Store::Page(r) => r.is_locked(),
            Store::Packed(p) => p.is_locked(),
        }
    }

    pub(crate) fn isolation(&self) -> Isolation {
        match self {
            Store::Page(_) => Isolation::Page,
            Store::Packed(_) => Isolation::Packed,
        }
    }

    pub(crate) fn residency(&self) -> io::Result<Residency> {
        if !self.present() {
            return Err(io::Error::other(EXCLUDED));
        }
        match self {
            Store::Page(r) => r.residency(),
            Store::Packed(p) => p.residency(),
        }
    }

    /// Makes the memory read-write if a sealed box left it otherwise, before
    /// the value is dropped.
    #[inline]
    pub(crate) fn open(&self) {
        if let Store::Page(r) = self {
            r.open();
        }
    }

    /// Aborts, with one line on stderr, if a canary changed. The memory
    /// must be present and readable.
    #[inline]
    pub(crate) fn verify(&self) {
        match self {
            Store::Page(r) => r.verify_canary(),
            Store::Packed(p) => p.verify(),
        }
    }

    /// Frees the memory without dropping a value in it (the owner dropped
    /// or moved it): the canaries are checked (aborting if one changed),
    /// then dropping the store wipes the memory and gives it back.
    pub(crate) fn free(self) {
        if self.present() {
            self.open();
            self.verify();
        }
        drop(self);
    }

    /// The store as data pages of its own: a packed value is first copied
    /// into a new page-isolated store (then its old slot is checked, wiped
    /// and freed). Returns the region and where the value now starts.
    ///
    /// # Errors
    /// What making the new pages returns; `self` is then dropped as it is
    /// (its value was not moved, and its owner drops it).
    /// `align` is the value's alignment.
    pub(crate) fn into_region(self, align: usize) -> Result<Region, Box<(Self, Error)>> {
        let slot = match self {
            Store::Page(region) => return Ok(region),
            Store::Packed(slot) => slot,
        };
        let size = slot.layout.size;
        let region = Layout::new(size, align, os::page_size())
            .map_err(|_| Error::TooLarge {
                len: 1,
                elem_size: size,
            })
            .and_then(|layout| Region::create(layout, LockPolicy::Require.into(), slot.kind()));
        let region = match region {
            Ok(r) => r,
            Err(e) => return Err(Box::new((Store::Packed(slot), e))),
        };
        // SAFETY: both ranges are `size` bytes: the packed value, live and
        // readable, and the new region's value bytes, read-write and ours
        // alone; they are in different slots, so disjoint.
        unsafe {
            ptr::copy_nonoverlapping(slot.value_ptr().as_ptr(), region.value_ptr().as_ptr(), size);
        }
        // The value's bytes now live in the region; the old slot is checked,
        // then wiped and freed (the value is not dropped there).
        slot.verify();
        drop(slot);
        Ok(region)
    }
}
