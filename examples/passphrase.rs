//! Prompts for a passphrase, derives a key from it with Argon2id whose
//! working memory and output live in locked memory, and prints the
//! HMAC-SHA-256 of standard input under that key.
//!
//! ```text
//! echo "message" | cargo run --example passphrase --features allocator-api2
//! ```
//!
//! # Where the secrets are
//!
//! - The passphrase: read from `/dev/tty` with echo off, one byte at a time,
//!   straight into a `LockedString` (`prompt_password`).
//! - Argon2's memory blocks (the passphrase's expansion, 19 MiB with the
//!   default parameters): an `allocator_api2::vec::Vec<Block, LockedAlloc>`,
//!   locked, guarded, dump-proof, wiped when freed.
//! - The derived key: written by Argon2 straight into a `LockedBox`.
//! - Copies the crates make that this one cannot reach: argon2 keeps its
//!   intermediate hash state (H0) and block computations on the stack, and
//!   `Hmac::new_from_slice` keeps the key, padded, in the HMAC state; none
//!   of that is locked.
//!
//! The salt is fixed here to keep the example short; a real program stores
//! a random salt next to what it protects.

use std::error::Error;
use std::io::Read;

use allocator_api2::vec::Vec as AllocVec;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use lockedmem::{LockedAlloc, LockedBox};
use sha2::Sha256;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A 32-byte key that lives only in locked memory.
pub(crate) type Key = LockedBox<[u8; 32]>;

/// Argon2id (`params`, `secret` and `ad` as Argon2 takes them) of `pass`
/// and `salt`, its memory blocks in locked memory, the output written
/// straight into a box.
pub(crate) fn derive_key(pass: &[u8], salt: &[u8], secret: &[u8], params: Params) -> Result<Key> {
    let argon =
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params.clone())
            .map_err(|e| format!("argon2: {e}"))?;
    let mut blocks: AllocVec<Block, LockedAlloc> =
        AllocVec::with_capacity_in(params.block_count(), LockedAlloc::new());
    blocks.resize(params.block_count(), Block::default());
    let key = LockedBox::<[u8; 32]>::try_new_with(|out| {
        argon.hash_password_into_with_memory(pass, salt, out, &mut blocks[..])
    })
    .map_err(|e| format!("argon2: {e}"))?;
    Ok(key)
}

/// HMAC-SHA-256 of everything `input` holds, under `key`.
pub(crate) fn mac(key: &Key, mut input: impl Read) -> Result<[u8; 32]> {
    let mut h = <Hmac<Sha256>>::new_from_slice(key.as_ref()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 8192];
    loop {
        match input.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(h.finalize().into_bytes().into())
}

fn main() -> Result<()> {
    let pass = lockedmem::prompt_password("Passphrase: ")?;
    let key = derive_key(
        pass.as_bytes(),
        b"lockedmem example salt",
        &[],
        Params::default(),
    )?;
    drop(pass); // wiped
    let tag = mac(&key, std::io::stdin().lock())?;
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    println!("HMAC-SHA-256(stdin): {hex}");
    Ok(())
}
