//! Feature `allocator-api2`: [`LockedAlloc`], an allocator whose blocks are
//! the crate's locked, guarded, dump-proof memory, wiped when they are freed
//! (and so when a collection grows or shrinks, which moves it).
//!
//! Unsafe here is limited to implementing the `Allocator` trait, whose
//! contract the bookkeeping below keeps.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use crate::policy::{Backing, DumpPolicy, ForkPolicy, Isolation, LockPolicy};
use crate::store::{Request, Store};

/// The live blocks, by address: each block's store, freed (checked, wiped,
/// given back) by `deallocate`.
static BLOCKS: Mutex<Option<HashMap<usize, Store>>> = Mutex::new(None);

/// An allocator whose every block is locked, guarded, dump-proof memory,
/// for a foreign crate's state: `allocator_api2::vec::Vec<T, LockedAlloc>`,
/// hashbrown's maps (which use `allocator-api2` 0.2), or argon2's memory
/// blocks (`hash_password_into_with_memory`).
///
/// ```
/// use allocator_api2::vec::Vec;
/// use lockedmem::LockedAlloc;
///
/// let mut scratch: Vec<u64, LockedAlloc> = Vec::new_in(LockedAlloc::new());
/// scratch.extend_from_slice(&[1, 2, 3]);
/// scratch.resize(10_000, 7); // grows: the old block is wiped when freed
/// assert_eq!(scratch[9_999], 7);
/// ```
///
/// Each block is a box of its own (page-isolated by default, packed if
/// [`LockedAlloc::with`] says so), with its canary checked and its bytes
/// wiped when it is freed; growing or shrinking moves the contents to a new
/// block and frees the old one. Blocks are found again by address in a
/// process-wide table behind a mutex, so an allocation costs a lookup more
/// than a box; it suits large, long-lived blocks better than many tiny ones.
/// Alignments above the page size are refused. The table's mutex is a
/// `std` one: in a fork(2) child of a multi-threaded process, allocating or
/// freeing through `LockedAlloc` can wait forever if another thread held it
/// at the fork (as with `malloc` in such a child). A lock refused for
/// `RLIMIT_MEMLOCK` is an allocation failure (`AllocError`) unless the
/// allocator was made with [`LockPolicy::BestEffort`].
///
/// # In a fork(2) child
///
/// Blocks under [`ForkPolicy::Wipe`] (the default) read as zeros in a fork
/// child, and under [`ForkPolicy::Keep`] as the parent's copy. Blocks under
/// [`ForkPolicy::Exclude`], and all blocks of [`Backing::SecretMem`], do not
/// exist in the child: the crate's `pthread_atfork` child handler maps an
/// inaccessible placeholder (`PROT_NONE`) over each such range right after
/// fork(2), so nothing else is mapped there while the child lives, and
/// every read or write through a pointer into such a block (a collection
/// the child inherited) dies by `SIGSEGV`, every time. The child may drop
/// those collections: freeing such a block changes nothing there (the
/// placeholder stays). A child made without the atfork handlers
/// (`vfork(2)`, raw `clone(2)`, `_Fork`) gets no placeholders, and neither
/// does a range another atfork child handler maps something into first.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(docsrs, doc(cfg(feature = "allocator-api2")))]
pub struct LockedAlloc {
    lock: LockPolicy,
    fork: ForkPolicy,
    fork_chosen: bool,
    isolation: Isolation,
    backing: Backing,
}

impl Default for LockedAlloc {
    fn default() -> Self {
        Self::new()
    }
}

impl LockedAlloc {
    /// The default policies: locked (or fail), page-isolated blocks, and
    /// the platform's default fork policy: wiped in fork children
    /// (`ForkPolicy::Wipe`) where the platform can give a child zeros
    /// (Linux, FreeBSD, OpenBSD), absent from them (`ForkPolicy::Exclude`)
    /// where it cannot (macOS, and Linux's portable test mode); Windows
    /// has no fork. `Host::probe().fork_zeros` tells which.
    pub const fn new() -> Self {
        LockedAlloc {
            lock: LockPolicy::Require,
            fork: ForkPolicy::Wipe,
            fork_chosen: false,
            isolation: Isolation::Page,
            backing: Backing::Anonymous,
        }
    }

    /// An allocator with these policies.
    pub const fn with(lock: LockPolicy, fork: ForkPolicy, isolation: Isolation) -> Self {
        LockedAlloc {
            lock,
            fork,
            fork_chosen: true,
            isolation,
            backing: Backing::Anonymous,
        }
    }

    /// The same allocator with blocks of `backing` memory (see
    /// [`Backing`]); an allocator from [`new`](Self::new) then uses the
    /// fork policy that backing defaults to.
    ///
    /// ```no_run
    /// use lockedmem::{Backing, LockedAlloc};
    ///
    /// let secret = LockedAlloc::new().backing(Backing::SecretMem);
    /// let mut blocks = allocator_api2::vec::Vec::<u64, _>::new_in(secret);
    /// blocks.resize(1024, 0);
    /// ```
    pub const fn backing(self, backing: Backing) -> Self {
        LockedAlloc { backing, ..self }
    }
}

/// A well-aligned dangling pointer for a zero-sized block.
fn dangling(align: usize) -> NonNull<[u8]> {
    let p = NonNull::new(std::ptr::without_provenance_mut::<u8>(align)).expect("align > 0");
    NonNull::slice_from_raw_parts(p, 0)
}

// SAFETY: `allocate` returns memory of at least `layout.size()` bytes at
// `layout.align()`, zeroed, valid until `deallocate` is called with it (the
// store behind it lives in `BLOCKS` until then), and not handed to anyone
// else meanwhile; copies of a `LockedAlloc` share `BLOCKS`, so a block
// allocated through one copy can be freed through another.
unsafe impl Allocator for LockedAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout.align()));
        }
        // A store's value is a multiple of its alignment.
        let size = layout.pad_to_align().size();
        let store = Store::new(Request {
            len: size,
            elem_size: 1,
            align: layout.align(),
            lock: self.lock,
            fork: self.fork,
            fork_chosen: self.fork_chosen,
            isolation: self.isolation,
            backing: self.backing,
            dumps: DumpPolicy::BestEffort,
        })
        .map_err(|_| AllocError)?;
        let ptr = store.value_ptr();
        debug_assert_eq!(ptr.as_ptr().align_offset(layout.align()), 0);
        let mut blocks = BLOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        blocks
            .get_or_insert_with(HashMap::new)
            .insert(ptr.as_ptr() as usize, store);
        Ok(NonNull::slice_from_raw_parts(ptr, size))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // Fresh blocks are zero already.
        self.allocate(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return;
        }
        let store = BLOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            .and_then(|b| b.remove(&(ptr.as_ptr() as usize)));
        let Some(store) = store else {
            // Not one of ours: the caller broke `deallocate`'s contract.
            eprintln!("lockedmem: LockedAlloc asked to free a block it did not allocate; aborting");
            std::process::abort();
        };
        store.free(); // canary checked, then wiped and cached or closed
    }
}
