//! Secret memory where the system has none (every platform but Linux, and
//! Linux's portable test mode keeps Linux's own file): memory out of the
//! kernel's direct map, which Linux gives with memfd_secret(2), does not
//! exist on macOS, the BSDs or Windows. The type has no value, so every
//! attempt to make one is refused and nothing else can be reached.

// `map_fixed` is unsafe to match Linux's signature; it cannot be called.
#![allow(unsafe_code)]

use std::convert::Infallible;
use std::io;
use std::ptr::NonNull;

use super::types::Refused;

/// A secret-memory file: no value of this type exists here.
#[derive(Debug)]
pub(crate) struct SecretFile(Infallible);

impl Drop for SecretFile {
    /// Never runs (no value exists); there as on Linux, where dropping the
    /// file closes it.
    fn drop(&mut self) {
        match self.0 {}
    }
}

impl SecretFile {
    /// Always refused: `Unsupported`, naming the Linux call the backing
    /// stands for.
    pub(crate) fn new() -> Result<SecretFile, Refused> {
        Err(Refused::missing("memfd_secret"))
    }

    /// Never called: no value exists.
    pub(crate) fn raw(&self) -> i32 {
        match self.0 {}
    }

    /// Never called: no value exists.
    pub(crate) fn set_len(&self, _len: usize) -> io::Result<()> {
        match self.0 {}
    }

    /// Never called: no value exists.
    ///
    /// # Safety
    /// None needed: it cannot be called.
    pub(crate) unsafe fn map_fixed(
        &self,
        _addr: NonNull<u8>,
        _len: usize,
        _offset: usize,
    ) -> Result<(), Refused> {
        match self.0 {}
    }
}

/// Whether secret memory can be made: `Ok(false)`, the system lacks it.
pub(crate) fn secretmem_available() -> io::Result<bool> {
    Ok(false)
}
