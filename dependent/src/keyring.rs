//! Many keys at once: their seeds side by side in one allocation of locked
//! memory.

use std::fmt;

use allocator_api2::vec::Vec as LockedAllocVec;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use lockedmem::{Backing, ForkPolicy, Isolation, LockPolicy, LockedAlloc, LockedBox};

use crate::{KeyError, KeyOptions, SEED_LEN, SigningKey};

/// Seeds of many keys (a service's key per tenant) in one growing vector
/// whose every block is locked, guarded memory, wiped when it is freed, and
/// so whenever the vector grows. Their public keys are kept beside them in
/// ordinary memory.
pub struct Keyring {
    seeds: LockedAllocVec<u8, LockedAlloc>,
    public: Vec<VerifyingKey>,
}

impl Default for Keyring {
    fn default() -> Self {
        Keyring::new()
    }
}

impl Keyring {
    /// An empty keyring in locked, page-isolated memory, zeros in fork
    /// children.
    pub fn new() -> Keyring {
        Keyring::in_memory(LockedAlloc::new())
    }

    /// An empty keyring whose memory may go unlocked where the lock limit
    /// is reached (`best_effort`), and whose seeds fork children never see.
    pub fn for_workers(best_effort: bool) -> Keyring {
        let lock = if best_effort {
            LockPolicy::BestEffort
        } else {
            LockPolicy::Require
        };
        Keyring::in_memory(LockedAlloc::with(
            lock,
            ForkPolicy::Exclude,
            Isolation::Page,
        ))
    }

    /// An empty keyring in secret memory (memfd_secret(2)); where the host
    /// has none, growing it fails with [`KeyError::KeyringFull`].
    pub fn in_secret_memory() -> Keyring {
        Keyring::in_memory(LockedAlloc::new().backing(Backing::SecretMem))
    }

    fn in_memory(alloc: LockedAlloc) -> Keyring {
        Keyring {
            seeds: LockedAllocVec::new_in(alloc),
            public: Vec::new(),
        }
    }

    /// Adds a copy of `key`; returns its index.
    ///
    /// # Errors
    /// [`KeyError::KeyringFull`] if the vector cannot grow.
    pub fn add(&mut self, key: &SigningKey) -> Result<usize, KeyError> {
        self.seeds
            .try_reserve(SEED_LEN)
            .map_err(|_| KeyError::KeyringFull)?;
        key.with_seed(|s| self.seeds.extend_from_slice(s));
        self.public.push(key.verifying_key());
        Ok(self.public.len() - 1)
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.public.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.public.is_empty()
    }

    /// The public key of key `index`.
    pub fn verifying_key(&self, index: usize) -> Option<VerifyingKey> {
        self.public.get(index).copied()
    }

    /// Signs `message` with key `index`.
    pub fn sign(&self, index: usize, message: &[u8]) -> Option<Signature> {
        let seed = self.seeds.get(index * SEED_LEN..(index + 1) * SEED_LEN)?;
        let seed: &[u8; SEED_LEN] = seed.try_into().ok()?;
        Some(ed25519_dalek::SigningKey::from_bytes(seed).sign(message))
    }

    /// Every seed, one after another, copied into one locked box (a backup
    /// to encrypt and write out).
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn export(&self) -> Result<LockedBox<[u8]>, KeyError> {
        let mut out = LockedBox::<[u8]>::new_zeroed_slice(self.seeds.len())?;
        out.copy_from_slice(&self.seeds);
        Ok(out)
    }

    /// As [`export`](Self::export), in memory made as `options` say.
    ///
    /// # Errors
    /// As [`SigningKey::generate_with`].
    pub fn export_with(&self, options: &KeyOptions) -> Result<LockedBox<[u8]>, KeyError> {
        let mut out = options.lockedmem().zeroed_slice::<u8>(self.seeds.len())?;
        out.copy_from_slice(&self.seeds);
        Ok(out)
    }

    /// Forgets every key: the seeds' memory is freed, and so wiped.
    pub fn clear(&mut self) {
        self.seeds.clear();
        self.seeds.shrink_to_fit();
        self.public.clear();
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.public.len())
            .field("allocator", self.seeds.allocator())
            .finish_non_exhaustive()
    }
}
