//! The memfd_secret(2) file behind a secret mapping: made (and listed, for
//! fork children to close) under the fork gate, mapped run by run by
//! `pages::open`, closed when the last handle to it goes.
#![allow(unsafe_code)]

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::alloc::atfork::{ForkGate, Listed, list_fd};
use crate::error::Error;
use crate::limits;
use crate::os;

/// The memfd_secret(2) file behind a mapping's open runs. Its pages live
/// (and hold what was written to them) until the last mapping of them and
/// the descriptor are gone: the kernel can neither discard nor punch them,
/// so a run is wiped by writing zeros before it is closed.
#[derive(Debug, Clone)]
pub(crate) struct SecretFile {
    fd: Arc<SecretFd>,
    /// The first byte of the mapping, at file offset 0.
    base: usize,
}

impl SecretFile {
    /// Makes the file for a mapping of `len` bytes at `base`.
    pub(super) fn new(base: NonNull<u8>, len: usize) -> Result<Self, Error> {
        // From the new descriptor to its listing, no fork(2) may happen: a
        // child would keep a descriptor its handler does not know of, and
        // with it every secret the parent later writes to the file.
        let gate = ForkGate::enter();
        let fd = os::SecretFile::new().map_err(secretmem_error)?;
        fd.set_len(len)
            .map_err(|e| Error::os("ftruncate", len, e))?;
        let fd = Arc::new(SecretFd::listed(fd));
        drop(gate);
        Ok(SecretFile {
            fd,
            base: base.as_ptr() as usize,
        })
    }

    /// Where `data`, an address in the file's mapping, lies in the file: its
    /// offset in the mapping.
    pub(super) fn offset_of(&self, data: NonNull<u8>) -> usize {
        data.as_ptr() as usize - self.base
    }

    /// Maps `len` bytes of the file, from `offset`, in place of
    /// `data..data + len` (see [`os::SecretFile::map_fixed`]).
    ///
    /// # Safety
    /// As [`os::SecretFile::map_fixed`]'s: the range is the caller's own and
    /// nothing relies on what it held, which is replaced.
    pub(super) unsafe fn map_fixed(
        &self,
        data: NonNull<u8>,
        len: usize,
        offset: usize,
    ) -> Result<(), os::Refused> {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.fd.fd.map_fixed(data, len, offset) }
    }
}

/// A secret file's descriptor, listed so that a fork(2) child closes it at
/// once: the child inherits the descriptor table, and with it a way to map
/// the parent's secret pages that `MADV_DONTFORK` on the mappings does not
/// take away (`O_CLOEXEC` covers exec(2) only; Linux has no close-on-fork).
#[derive(Debug)]
struct SecretFd {
    /// Taken only by `Drop`.
    fd: ManuallyDrop<os::SecretFile>,
    entry: &'static Listed,
}

impl SecretFd {
    /// Lists `fd`; the caller holds the [`ForkGate`].
    fn listed(fd: os::SecretFile) -> Self {
        let fd = ManuallyDrop::new(fd);
        let entry = list_fd(fd.raw());
        SecretFd { fd, entry }
    }
}

impl Drop for SecretFd {
    /// Unlists the descriptor and closes it, with no fork(2) in between: a
    /// child forked after the unlisting would keep it open, one forked
    /// after the close (and a reuse of the number) must not close it.
    fn drop(&mut self) {
        let _gate = ForkGate::enter();
        self.entry.unlist();
        // SAFETY: `fd` is taken once, here, and not used again.
        drop(unsafe { ManuallyDrop::take(&mut self.fd) });
    }
}

/// The error for secret memory the system refused to make: `Unsupported`
/// where the platform or kernel lacks it, `Os` otherwise.
pub(crate) fn secretmem_error(r: os::Refused) -> Error {
    limits::refused(r, 0)
}
