//! `ShieldedBox<T>`: a secret kept encrypted at rest, decrypted into locked
//! scratch memory only while a guard is out (feature `shield`).
//!
//! # Design
//!
//! - **Ciphertext**: each secret is a slot of a chunk of page-isolated
//!   memory that is never locked (guarded, `MADV_DONTDUMP`, the default
//!   fork policy's advice, so `MADV_WIPEONFORK` on Linux): an 8-byte header
//!   (a lock bit, a live bit and the key's epoch; the slot's class and key
//!   ring), a 24-byte nonce, the ciphertext and a 16-byte tag. A 32-byte
//!   secret takes an 80-byte slot. Chunks are never given back; a dropped
//!   secret's slot is wiped and reused by the next secret of its size.
//! - **AEAD**: XChaCha20-Poly1305 (`aead`: RustCrypto's XChaCha20 and the
//!   crate's own Poly1305, `poly1305`, which says why). A nonce is 16 random bytes drawn with
//!   the key and a 64-bit counter of that key, so it never repeats under a
//!   key (a key cannot be used in a fork child). The associated data is the
//!   slot's address, the value's length and the info word: a ciphertext
//!   copied into another slot does not open there, and a changed header
//!   bit (the scratch memory's lock policy) is `Tampered` too.
//! - **Key**: a 16 KiB random prekey in a [`SealedBox`] (locked,
//!   `PROT_NONE` between uses, dump-excluded, `ForkPolicy::Exclude`); the
//!   key is BLAKE2b-256 of a label and the prekey. Where the key's backing
//!   is secret memory, prekey and derived key live in memfd_secret(2)
//!   pages and the derived key is kept; otherwise it is derived for each
//!   use into a locked scratch slot and wiped after, as OpenSSH does.
//!   `rekey` keeps the old and the new derived key in locked scratch
//!   memory while it runs.
//! - **Stack**: the AEAD and the hash keep copies of key material in their
//!   own stack frames; after each operation the stack below the caller is
//!   overwritten (`scrub_stack`).
//! - **Concurrency**: every read or write of a slot holds its lock bit, for
//!   one decryption or encryption. A ring holds the current key and, while
//!   a rekey runs, the previous one; a slot's epoch says which opens it.
//!   A writer holds the ring's read lock from choosing the key until the
//!   slot is published, so a rekey that installed a new key sees every slot
//!   written under the old one.
//! - **Fork**: the process generation that made the first key is recorded;
//!   in any other (a fork child) every operation is refused before it takes
//!   a lock a parent thread may have held.
#![allow(unsafe_code)]

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use blake2::Blake2b;
use blake2::digest::Digest;
use blake2::digest::consts::U32;

use crate::error::{Error, InitError};
use crate::fork;
use crate::locked_box::LockedBox;
use crate::plain::Plain;
use crate::policy::{Backing, ForkPolicy, Isolation, LockPolicy};
use crate::sealed::SealedBox;
use crate::store::Request;

/// Bytes of the prekey.
const PREKEY_LEN: usize = 16 * 1024;
/// Bytes of the derived key.
const KEY_LEN: usize = 32;
/// Bytes of a slot's header: the state word and the info word.
const HEADER: usize = 8;
/// Bytes of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Bytes of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Bytes of a slot beyond its payload.
const OVERHEAD: usize = HEADER + NONCE_LEN + TAG_LEN;
/// Bytes of a chunk's data; a slot larger than this gets a chunk of its own.
const CHUNK_BYTES: usize = 256 * 1024;
/// The label hashed in front of the prekey.
const LABEL: &[u8] = b"lockedmem shield key v1";

/// State word: a thread holds the slot.
const LOCKED: u32 = 1;
/// State word: the slot holds a secret.
const LIVE: u32 = 2;
/// State word: the key's epoch, above these two bits.
const EPOCH_SHIFT: u32 = 2;
/// Info word: the slot's class, below this mask.
const CLASS_MASK: u32 = (1 << 24) - 1;
/// Info word: the key ring (0: derived for each use, 1: secret memory
/// preferred).
const RING_BIT: u32 = 1 << 30;
/// Info word: scratch memory may go unlocked (`LockPolicy::BestEffort`).
const BEST_EFFORT_BIT: u32 = 1 << 31;

/// Bytes of stack overwritten after each operation: deeper than the AEAD's
/// and the hash's frames (unoptimised frames are several times larger:
/// `key_tests` finds the key on the stack with 64 KiB in a debug build).
/// So a thread that uses the shield needs this much stack free below its
/// caller (Rust's threads get 2 MiB unless told otherwise).
const SCRUB_BYTES: usize = if cfg!(debug_assertions) {
    128 * 1024
} else {
    8 * 1024
};

// ---------------------------------------------------------------- keys ---

/// One shield key: its prekey, and the derived key where that may be kept.
struct Key {
    /// 16 KiB from getrandom(2), `PROT_NONE` between uses.
    prekey: SealedBox<[u8; PREKEY_LEN]>,
    /// The derived key, kept only in secret memory.
    derived: Option<LockedBox<[u8; KEY_LEN]>>,
    /// The first 16 bytes of every nonce under this key (not secret).
    nonce_prefix: [u8; 16],
    /// The last 8 bytes of the next nonce.
    counter: AtomicU64,
    /// Which key of its ring this is (30 bits, wrapping).
    epoch: u32,
}

impl Key {
    /// A fresh key of `epoch`; `secret` asks for secret memory where it can
    /// be had (else anonymous memory and derivation on each use).
    fn new(secret: bool, epoch: u32) -> Result<Key, Error> {
        let backing = if secret {
            Backing::PreferSecretMem
        } else {
            Backing::Anonymous
        };
        let req = Request {
            backing,
            fork: ForkPolicy::Exclude,
            fork_chosen: true,
            ..Request::of::<[u8; PREKEY_LEN]>(1)
        };
        let prekey = LockedBox::<[u8; PREKEY_LEN]>::random_with(req)?;
        let in_secret = prekey.backing() == Backing::SecretMem;
        let prekey = prekey.seal()?;
        let derived = if in_secret {
            let req = Request {
                isolation: Isolation::Packed,
                backing: Backing::SecretMem,
                ..req.with_len_of::<[u8; KEY_LEN]>(1)
            };
            let mut d = LockedBox::<[u8; KEY_LEN]>::zeroed_with(req)?;
            derive(&prekey, &mut d);
            Some(d)
        } else {
            None
        };
        let prefix = LockedBox::<[u8; 16]>::random_with(Request {
            isolation: Isolation::Packed,
            ..Request::of::<[u8; 16]>(1)
        })?;
        let key = Key {
            prekey,
            derived,
            nonce_prefix: *prefix,
            counter: AtomicU64::new(0),
            epoch: epoch & (u32::MAX >> EPOCH_SHIFT),
        };
        scrub_stack();
        Ok(key)
    }

    /// Whether the derived key is kept (in secret memory).
    fn kept(&self) -> bool {
        self.derived.is_some()
    }

    /// The derived key: the kept one, or derived into `scratch` (a locked
    /// scratch slot the caller wipes by dropping it).
    ///
    /// # Errors
    /// What making the scratch slot returns, if `scratch` is `None` and the
    /// key is derived.
    fn bytes<'a>(
        &'a self,
        scratch: &'a mut Option<LockedBox<[u8; KEY_LEN]>>,
    ) -> Result<&'a [u8; KEY_LEN], Error> {
        if let Some(d) = &self.derived {
            return Ok(d);
        }
        let s = match scratch {
            Some(s) => s,
            None => scratch.insert(key_scratch()?),
        };
        derive(&self.prekey, s);
        Ok(s)
    }

    /// The next nonce under this key.
    fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        assert!(
            n != u64::MAX,
            "lockedmem: shield nonces used up; call rekey()"
        );
        let mut nonce = [0; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        nonce
    }
}

/// Locked scratch memory for a derived key.
fn key_scratch() -> Result<LockedBox<[u8; KEY_LEN]>, Error> {
    LockedBox::zeroed_with(Request {
        isolation: Isolation::Packed,
        ..Request::of::<[u8; KEY_LEN]>(1)
    })
}

/// BLAKE2b-256 of the label and the prekey, into `out`.
fn derive(prekey: &SealedBox<[u8; PREKEY_LEN]>, out: &mut [u8; KEY_LEN]) {
    let mut h = Blake2b::<U32>::new();
    h.update(LABEL);
    h.update(&prekey.borrow()[..]);
    h.finalize_into(out.into());
}

/// The keys of one ring.
struct Keys {
    current: Arc<Key>,
    /// The key being replaced while a rekey runs.
    previous: Option<Arc<Key>>,
}

impl Keys {
    /// The key of `epoch`, if the ring still has it.
    fn of(&self, epoch: u32) -> Option<&Arc<Key>> {
        if self.current.epoch == epoch {
            return Some(&self.current);
        }
        self.previous.as_ref().filter(|k| k.epoch == epoch)
    }
}

/// The two rings: 0 derives the key for each use, 1 keeps it in secret
/// memory where that can be had.
static RINGS: [RwLock<Option<Keys>>; 2] = [RwLock::new(None), RwLock::new(None)];
/// Serialises `rekey` calls.
static REKEY: Mutex<()> = Mutex::new(());
/// The process generation that first used the shield; 0 before.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Refuses every operation in a process other than the one that first used
/// the shield (a fork child): its locks may be held by threads that do not
/// exist there, and its keys are not there.
fn check_generation() -> Result<(), Error> {
    let here = fork::generation();
    // A load first: the common case writes nothing (no cache line bounces
    // between threads that borrow).
    if GENERATION.load(Ordering::Acquire) == here {
        return Ok(());
    }
    match GENERATION.compare_exchange(0, here, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(g) if g == here => Ok(()),
        Err(_) => Err(Error::ShieldKeyAbsent),
    }
}

fn read(ring: usize) -> std::sync::RwLockReadGuard<'static, Option<Keys>> {
    RINGS[ring].read().unwrap_or_else(PoisonError::into_inner)
}

fn write(ring: usize) -> std::sync::RwLockWriteGuard<'static, Option<Keys>> {
    RINGS[ring].write().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` with the current key of `ring` (made if there is none yet),
/// holding the ring's read lock.
fn with_current<R>(ring: usize, f: impl FnOnce(&Arc<Key>) -> R) -> Result<R, Error> {
    loop {
        {
            let keys = read(ring);
            if let Some(k) = keys.as_ref() {
                return Ok(f(&k.current));
            }
        }
        let mut keys = write(ring);
        if keys.is_none() {
            *keys = Some(Keys {
                current: Arc::new(Key::new(ring == 1, 1)?),
                previous: None,
            });
        }
    }
}

// --------------------------------------------------------------- arena ---

/// Slots of one size.
struct Class {
    /// Bytes of a slot.
    slot_len: usize,
    /// Bytes of the value it holds.
    payload: usize,
    chunks: Vec<Chunk>,
    /// The chunks' first slots' addresses, sorted (every chunk of a class
    /// holds the same number of slots): what `holds` searches.
    starts: Vec<usize>,
    /// Freed slots, wiped.
    free: Vec<SlotPtr>,
}

impl Class {
    /// Whether `p` is the start of a slot of this class: the check that a
    /// class number read from a slot's header (memory anyone may write)
    /// is the slot's own before `free_slot` wipes `slot_len` bytes.
    fn holds(&self, p: SlotPtr) -> bool {
        let Some(first) = self.chunks.first() else {
            return false;
        };
        let chunk_len = first.slots * self.slot_len;
        let addr = p.0.as_ptr() as usize;
        let i = self.starts.partition_point(|&s| s <= addr);
        i > 0 && {
            let off = addr - self.starts[i - 1];
            off < chunk_len && off % self.slot_len == 0
        }
    }
}

/// A run of slots in never-locked memory.
struct Chunk {
    /// Owns the mapping; never dropped, never dereferenced after `base`
    /// was taken from it.
    _mem: LockedBox<[u64]>,
    base: SlotPtr,
    slots: usize,
    used: usize,
}

/// A slot's address.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SlotPtr(NonNull<u8>);

// SAFETY: a slot is shared memory reached only through its lock bit (the
// state word is atomic; the other bytes are read and written by whoever
// holds the lock), and chunks are never unmapped.
unsafe impl Send for SlotPtr {}

/// Every class, by index; the index is kept in each slot's info word.
static CLASSES: Mutex<Vec<Class>> = Mutex::new(Vec::new());

fn classes() -> std::sync::MutexGuard<'static, Vec<Class>> {
    CLASSES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A free slot for a `payload`-byte value, its class index, and its length.
fn alloc_slot(payload: usize) -> Result<(SlotPtr, u32, usize), Error> {
    let slot_len = (OVERHEAD + payload).next_multiple_of(8);
    let mut cs = classes();
    let index = match cs.iter().position(|c| c.payload == payload) {
        Some(i) => i,
        None => {
            cs.push(Class {
                slot_len,
                payload,
                chunks: Vec::new(),
                starts: Vec::new(),
                free: Vec::new(),
            });
            cs.len() - 1
        }
    };
    let class_id = u32::try_from(index)
        .ok()
        .filter(|&i| i <= CLASS_MASK)
        .ok_or(Error::TooLarge {
            len: payload,
            elem_size: 1,
        })?;
    let c = &mut cs[index];
    if let Some(p) = c.free.pop() {
        return Ok((p, class_id, slot_len));
    }
    if c.chunks.last().is_none_or(|k| k.used == k.slots) {
        let slots = (CHUNK_BYTES / slot_len).max(1);
        let words = slots * slot_len / 8;
        let req = Request::of::<u64>(words);
        let mut mem = LockedBox::<[u64]>::zeroed_slice_never_locked(req)?;
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).expect("a box's value is not null");
        let start = base.as_ptr() as usize;
        let at = c.starts.partition_point(|&s| s < start);
        c.starts.insert(at, start);
        c.chunks.push(Chunk {
            _mem: mem,
            base: SlotPtr(base),
            slots,
            used: 0,
        });
    }
    let k = c.chunks.last_mut().expect("a chunk with room");
    // SAFETY: `used < slots`, so the slot lies inside the chunk's value.
    let p = unsafe { k.base.0.add(k.used * slot_len) };
    k.used += 1;
    Ok((SlotPtr(p), class_id, slot_len))
}

/// Gives a slot back: wiped under its lock, then free.
fn free_slot(p: SlotPtr) {
    let state = state_of(p);
    lock_slot(state);
    let class = (info_of(p) & CLASS_MASK) as usize;
    let mut cs = classes();
    if !cs.get(class).is_some_and(|c| c.holds(p)) {
        header_changed(p);
    }
    let slot_len = cs[class].slot_len;
    // SAFETY: we hold the slot's lock; its bytes after the state word are
    // ours to write (`slot_len` bytes, inside its chunk).
    unsafe { ptr::write_bytes(at(p, 4), 0, slot_len - 4) };
    state.store(0, Ordering::Release);
    cs[class].free.push(p);
}

/// A slot's header names a class the slot is not of: its memory was
/// written from outside (a stray write, an attacker). Wiping by that class
/// would overwrite other slots or run past the chunk, so the process
/// stops, as it does on a smashed canary.
#[cold]
#[inline(never)]
fn header_changed(p: SlotPtr) -> ! {
    // The message names where, never what.
    eprintln!(
        "lockedmem: the header of the shielded secret at {:p} was overwritten (a stray write \
         into the ciphertext's memory); aborting",
        p.0
    );
    std::process::abort();
}

/// The address `off` bytes into the slot (its callers keep `off` within
/// the slot's length).
fn at(p: SlotPtr, off: usize) -> *mut u8 {
    p.0.as_ptr().wrapping_add(off)
}

/// The slot's state word.
fn state_of(p: SlotPtr) -> &'static AtomicU32 {
    // SAFETY: a slot starts 8-aligned in a chunk that is never unmapped; its
    // first word is only ever accessed atomically.
    unsafe { AtomicU32::from_ptr(p.0.as_ptr().cast::<u32>()) }
}

/// The slot's info word; read under the lock, or of a live slot (written
/// once, before it was published).
fn info_of(p: SlotPtr) -> u32 {
    // SAFETY: the second word of the slot, 4-aligned, inside the chunk;
    // written only by `shield`, under the slot's lock, before the slot is
    // published (a box holds its address only after that).
    unsafe { at(p, 4).cast::<u32>().read() }
}

/// A slot's lock bit, held: dropping it stores `word` (the state word
/// without the lock bit) and so releases the lock, also while a panic
/// unwinds. Without it a panic with the lock bit set (a refused mprotect
/// of the prekey panics in the middle of a derivation) left the slot
/// locked for good: every later borrow, drop and `rekey` spun on it.
struct Held<'a> {
    state: &'a AtomicU32,
    /// The state word stored on release.
    word: u32,
}

impl Held<'_> {
    /// Takes the slot's lock bit; `word` is the state word without it.
    fn take(state: &AtomicU32) -> Held<'_> {
        let word = lock_slot(state);
        Held { state, word }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.state.store(self.word, Ordering::Release);
    }
}

/// Takes the slot's lock bit; returns the state word without it. Held for
/// one decryption or encryption at most.
fn lock_slot(state: &AtomicU32) -> u32 {
    let mut spins = 0u32;
    loop {
        let s = state.load(Ordering::Relaxed);
        if s & LOCKED == 0
            && state
                .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return s;
        }
        spins += 1;
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The associated data of a slot: its address, the value's length and the
/// slot's info word (class, key ring, lock policy of the scratch memory:
/// a changed bit there is `Tampered` too, not a borrow into unlocked
/// scratch memory). The caller holds the slot locked, its info written.
fn associated(p: SlotPtr, len: usize) -> [u8; 20] {
    let mut ad = [0; 20];
    ad[..8].copy_from_slice(&(p.0.as_ptr() as usize as u64).to_le_bytes());
    ad[8..16].copy_from_slice(&(len as u64).to_le_bytes());
    ad[16..].copy_from_slice(&info_of(p).to_le_bytes());
    ad
}

/// Encrypts `plain` in place (it holds ciphertext afterwards) under the
/// derived key `k` with `nonce`, and writes nonce, ciphertext and tag into
/// the slot, which the caller holds locked.
fn seal_raw(p: SlotPtr, k: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN], plain: &mut [u8]) {
    let tag = aead::seal(k, nonce, &associated(p, plain.len()), plain);
    // SAFETY: the slot holds `OVERHEAD +
    // plain.len()` bytes (its class was chosen by that length) inside a
    // chunk that is never unmapped, the caller holds its lock, and `plain`
    // and `nonce` are memory elsewhere.
    unsafe {
        ptr::copy_nonoverlapping(nonce.as_ptr(), at(p, HEADER), NONCE_LEN);
    }
    // SAFETY: as above.
    unsafe {
        ptr::copy_nonoverlapping(plain.as_ptr(), at(p, HEADER + NONCE_LEN), plain.len());
    }
    // SAFETY: as above.
    unsafe {
        ptr::copy_nonoverlapping(
            tag.as_ptr(),
            at(p, HEADER + NONCE_LEN + plain.len()),
            TAG_LEN,
        );
    }
}

/// Copies the slot's ciphertext into `out` and decrypts it there under the
/// derived key `k`; on a failed tag `out` is zeroed and the error is
/// [`Error::Tampered`]. The caller holds the slot locked.
fn open_raw(p: SlotPtr, k: &[u8; KEY_LEN], out: &mut [u8]) -> Result<(), Error> {
    let mut nonce = [0; NONCE_LEN];
    let mut tag = [0; TAG_LEN];
    // SAFETY: as in `seal_raw`: the slot holds
    // `OVERHEAD + out.len()` bytes and is locked by the caller; `out` is
    // memory elsewhere.
    unsafe {
        ptr::copy_nonoverlapping(at(p, HEADER), nonce.as_mut_ptr(), NONCE_LEN);
    }
    // SAFETY: as above.
    unsafe {
        ptr::copy_nonoverlapping(at(p, HEADER + NONCE_LEN), out.as_mut_ptr(), out.len());
    }
    // SAFETY: as above.
    unsafe {
        ptr::copy_nonoverlapping(
            at(p, HEADER + NONCE_LEN + out.len()),
            tag.as_mut_ptr(),
            TAG_LEN,
        );
    }
    aead::open(k, &nonce, &associated(p, out.len()), out, &tag).map_err(|aead::BadTag| {
        zeroize::Zeroize::zeroize(out);
        Error::Tampered
    })
}

/// [`seal_raw`] under `key`, its derived key in `scratch` if it is derived.
fn encrypt_into(
    p: SlotPtr,
    key: &Key,
    scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
    plain: &mut [u8],
) -> Result<(), Error> {
    let nonce = key.next_nonce();
    seal_raw(p, key.bytes(scratch)?, &nonce, plain);
    wipe_scratch(scratch);
    Ok(())
}

/// [`open_raw`] under `key`, its derived key in `scratch` if it is derived.
fn decrypt_from(
    p: SlotPtr,
    key: &Key,
    scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
    out: &mut [u8],
) -> Result<(), Error> {
    let opened = open_raw(p, key.bytes(scratch)?, out);
    wipe_scratch(scratch);
    opened
}

/// Wipes a derived key out of its scratch slot (which stays for reuse).
fn wipe_scratch(scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>) {
    if let Some(s) = scratch.as_mut() {
        zeroize::Zeroize::zeroize(&mut s[..]);
    }
}

/// Overwrites the stack below the caller's frame, where the AEAD and the
/// hash left copies of key material.
#[inline(never)]
fn scrub_stack() {
    let mut buf = mem::MaybeUninit::<[u8; SCRUB_BYTES]>::uninit();
    // SAFETY: writes `SCRUB_BYTES` bytes into our own stack buffer.
    unsafe { ptr::write_bytes(buf.as_mut_ptr(), 0, 1) };
    std::hint::black_box(&mut buf);
}

/// Writes a new slot from `plain` (encrypted in place) and returns it.
fn shield(plain: &mut [u8], ring: usize, best_effort: bool) -> Result<SlotPtr, Error> {
    check_generation()?;
    let mut scratch = None;
    if ring_derives(ring) {
        scratch = Some(key_scratch()?);
    }
    let (p, class, _) = alloc_slot(plain.len())?;
    let mut info = class;
    if ring == 1 {
        info |= RING_BIT;
    }
    if best_effort {
        info |= BEST_EFFORT_BIT;
    }
    let state = state_of(p);
    let written = with_current(ring, |key| {
        // Released as free (0) unless published below.
        let mut held = Held::take(state);
        held.word = 0;
        // SAFETY: the slot's info word, written under its lock.
        unsafe { at(p, 4).cast::<u32>().write(info) };
        let r = encrypt_into(p, key, &mut scratch, plain);
        if r.is_ok() {
            held.word = LIVE | (key.epoch << EPOCH_SHIFT);
        }
        drop(held);
        r
    })
    .and_then(|r| r);
    drop(scratch);
    scrub_stack();
    match written {
        Ok(()) => Ok(p),
        Err(e) => {
            // Never published: free again.
            classes()[class as usize].free.push(p);
            Err(e)
        }
    }
}

/// Decrypts the slot into `out`.
fn unshield(
    p: SlotPtr,
    out: &mut [u8],
    scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
) -> Result<(), Error> {
    check_generation()?;
    let held = Held::take(state_of(p));
    let s = held.word;
    let ring = usize::from(info_of(p) & RING_BIT != 0);
    let epoch = s >> EPOCH_SHIFT;
    let opened = {
        let keys = read(ring);
        match keys.as_ref().and_then(|k| k.of(epoch)) {
            Some(key) if s & LIVE != 0 => decrypt_from(p, key, scratch, out),
            _ => Err(Error::Tampered),
        }
    };
    drop(held);
    scrub_stack();
    opened
}

/// Encrypts `plain` into the slot again under the current key.
fn reshield(
    p: SlotPtr,
    plain: &mut [u8],
    scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
) -> Result<(), Error> {
    check_generation()?;
    let state = state_of(p);
    let ring = usize::from(info_of(p) & RING_BIT != 0);
    let written = with_current(ring, |key| {
        // Released as it was (the old ciphertext stays) unless published.
        let mut held = Held::take(state);
        let r = encrypt_into(p, key, scratch, plain);
        if r.is_ok() {
            held.word = LIVE | (key.epoch << EPOCH_SHIFT);
        }
        drop(held);
        r
    })
    .and_then(|r| r);
    scrub_stack();
    written
}

/// Whether a ring derives its key on each use (or has no key yet).
fn ring_derives(ring: usize) -> bool {
    read(ring).as_ref().is_none_or(|k| !k.current.kept())
}

/// Replaces the shield keys and re-encrypts every live shielded secret under
/// the new ones.
///
/// Each secret is locked for its own re-encryption only: a borrow of it
/// waits at most that long, and borrows of others do not wait. Secrets made
/// or written back while it runs are encrypted under the new key. The old
/// and the new derived key are held in locked scratch memory while it runs
/// (wiped after). A secret whose ciphertext fails its tag is left as it is:
/// borrowing it gives [`Error::Tampered`] then as before.
///
/// ```
/// # #[cfg(feature = "shield")] {
/// let key = lockedmem::ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(7))?;
/// lockedmem::rekey()?;
/// assert_eq!(key.borrow()?[0], 7);
/// # }
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// # Errors
/// What making a new key can return (as
/// [`LockedBox::random`](crate::LockedBox::random) for its 16 KiB
/// prekey; nothing is changed then), and [`Error::MemlockLimit`] when the
/// scratch memory for re-encrypting a secret that requires its lock cannot
/// be locked (a secret made with `LockPolicy::BestEffort` is re-encrypted
/// in scratch memory that may go unlocked, as its borrows are; scratch
/// memory is made only for secrets that exist): every secret stays
/// readable then (under the old key or the new, both kept), and the next
/// `rekey` finishes the move first. A rekey holds a second prekey per
/// ring while it runs (16 KiB locked, and for the kept key a page of
/// secret memory): at a 64 KiB lock limit with both rings in use (secrets
/// with the key in secret memory and secrets with `Backing::Anonymous`)
/// there is no room for them, and every `rekey` is `MemlockLimit`.
/// [`Error::ShieldKeyAbsent`] in a fork(2) child of the process that made
/// the keys.
///
/// # Panics
/// If mprotect fails on the prekey's pages (as
/// [`SealedBox::borrow`](crate::SealedBox::borrow)).
pub fn rekey() -> Result<(), Error> {
    check_generation()?;
    let _one = REKEY.lock().unwrap_or_else(PoisonError::into_inner);
    for ring in 0..2 {
        let Some((current, pending)) = read(ring)
            .as_ref()
            .map(|k| (Arc::clone(&k.current), k.previous.clone()))
        else {
            continue;
        };
        // An earlier rekey that failed part-way left secrets under its old
        // key: they move to the current one first.
        if let Some(old) = pending {
            migrate(ring, &old, &current)?;
        }
        let new = Arc::new(Key::new(ring == 1, current.epoch.wrapping_add(1))?);
        {
            let mut keys = write(ring);
            let k = keys.as_mut().expect("a ring is never emptied");
            let old = mem::replace(&mut k.current, Arc::clone(&new));
            k.previous = Some(old);
        }
        migrate(ring, &current, &new)?;
    }
    Ok(())
}

/// Re-encrypts `ring`'s secrets under `old` with `new`, then drops `old`
/// from the ring. On error `old` stays, so that no secret becomes
/// unreadable; the next `rekey` finishes the move.
fn migrate(ring: usize, old: &Key, new: &Key) -> Result<(), Error> {
    let mut old_scratch = Some(key_scratch()?);
    let mut new_scratch = Some(key_scratch()?);
    let run = rekey_ring(ring, old, new, &mut old_scratch, &mut new_scratch);
    drop((old_scratch, new_scratch));
    scrub_stack();
    run?;
    if let Some(k) = write(ring).as_mut() {
        k.previous = None;
    }
    Ok(())
}

/// Re-encrypts the live slots of `ring` that `old` encrypted under `new`,
/// one slot locked at a time. The derived keys are made once, into the
/// scratch slots.
fn rekey_ring(
    ring: usize,
    old: &Key,
    new: &Key,
    old_scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
    new_scratch: &mut Option<LockedBox<[u8; KEY_LEN]>>,
) -> Result<(), Error> {
    let old_k = old.bytes(old_scratch)?;
    let new_k = new.bytes(new_scratch)?;
    // Every slot published before the new key was installed is in a chunk
    // of this snapshot (its writer held the ring's read lock until then).
    let snapshot: Vec<(SlotPtr, usize, usize, usize)> = classes()
        .iter()
        .flat_map(|c| {
            c.chunks
                .iter()
                .map(move |k| (k.base, k.used, c.slot_len, c.payload))
        })
        .collect();
    // Scratch for the plaintext, made when a slot needs it (not for a
    // class with no secret under `old`): one that requires its lock, and
    // one for best-effort secrets, whose borrows may go unlocked too; each
    // as long as the largest secret it held yet.
    let mut bufs: [Option<LockedBox<[u8]>>; 2] = [None, None];
    for (base, used, slot_len, payload) in snapshot {
        let mut i = 0;
        while i < used {
            // SAFETY: slot `i < used` lies inside the chunk.
            let p = SlotPtr(unsafe { base.0.add(i * slot_len) });
            let mut held = Held::take(state_of(p));
            let s = held.word;
            let info = info_of(p);
            let mine = usize::from(info & RING_BIT != 0) == ring;
            if s & LIVE == 0 || !mine || s >> EPOCH_SHIFT != old.epoch {
                i += 1;
                continue; // released as it was
            }
            let best_effort = info & BEST_EFFORT_BIT != 0;
            let buf = &mut bufs[usize::from(best_effort)];
            let Some(b) = buf.as_mut().filter(|b| b.len() >= payload) else {
                // Made with the slot released; then it is looked at again.
                drop(held);
                drop(buf.take()); // wiped
                *buf = Some(scratch_bytes(payload, best_effort)?);
                continue;
            };
            let b = &mut b[..payload];
            if open_raw(p, old_k, b).is_ok() {
                seal_raw(p, new_k, &new.next_nonce(), b);
                held.word = LIVE | (new.epoch << EPOCH_SHIFT);
            } // else left as it is: it stays `Tampered`.
            drop(held);
            i += 1;
        }
    }
    Ok(())
}

/// Locked scratch bytes (packed where small).
fn scratch_bytes(len: usize, best_effort: bool) -> Result<LockedBox<[u8]>, Error> {
    LockedBox::zeroed_slice_with(scratch_request::<u8>(len, best_effort))
}

/// The request for scratch memory of `len` `U`s.
fn scratch_request<U>(len: usize, best_effort: bool) -> Request {
    Request {
        isolation: Isolation::Packed,
        lock: if best_effort {
            LockPolicy::BestEffort
        } else {
            LockPolicy::Require
        },
        ..Request::of::<U>(len)
    }
}

// ------------------------------------------------------------- the box ---

/// Which key ring a backing asks for: 0 derives the key for each use, 1
/// keeps prekey and key in secret memory where that can be had.
pub(crate) fn ring_of(backing: Backing) -> usize {
    match backing {
        Backing::Anonymous => 0,
        Backing::SecretMem | Backing::PreferSecretMem => 1,
    }
}

/// A secret kept encrypted at rest: XChaCha20-Poly1305 ciphertext in
/// unlocked memory, decrypted into locked scratch memory only while a
/// guard is out (feature `shield`).
///
/// The ciphertext lives in memory that is not locked (so a million 32-byte
/// secrets fit any `RLIMIT_MEMLOCK`), but that is left out of core dumps
/// and, by default, given to a fork(2) child as zeros. The key is hashed
/// from a 16 KiB random prekey kept `PROT_NONE` between uses; where
/// memfd_secret(2) exists (the default for [`ShieldedBox::new_with`]:
/// `Backing::PreferSecretMem`), prekey and key live in secret memory and
/// the key is kept there; otherwise the key is derived from the prekey for
/// each use and wiped after, so no 32-byte key sits anywhere in memory
/// between uses. [`rekey`] replaces the key and re-encrypts every secret.
///
/// ```
/// # #[cfg(feature = "shield")] {
/// use lockedmem::ShieldedBox;
///
/// let mut key = ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(7))?;
/// {
///     let k = key.borrow()?;          // decrypted into locked scratch memory
///     assert_eq!(k[0], 7);
/// }                                   // wiped
/// key.borrow_mut()?[1] = 9;           // encrypted again, under a new nonce
/// assert_eq!(key.borrow()?[..2], [7, 9]);
/// println!("{key:?}");                // type and size, no byte
/// # }
/// # Ok::<(), lockedmem::Error>(())
/// ```
///
/// A ciphertext that fails its tag (a flipped bit, a ciphertext copied from
/// another slot) is [`Error::Tampered`] on borrow, never wrong plaintext.
/// In a fork(2) child of the process that made the key every operation is
/// [`Error::ShieldKeyAbsent`].
///
/// What it does not stop: code running in the process (it can borrow, or
/// read a guard's scratch memory while one is out), and where the key is
/// not in secret memory, root or a debugger reading all of the process's
/// memory (prekey and ciphertext together give the secret); a writer who
/// puts an older ciphertext of the same secret back (it still opens: the
/// tag binds the slot and its header, not a version).
///
/// After each operation the stack below it is overwritten, where the
/// cipher and the hash left key material: 8 KiB in optimised builds,
/// 128 KiB in debug builds, whose frames are larger. A thread with less
/// stack than that free overflows it (Rust's threads have 2 MiB).
///
/// The value's bytes are encrypted as they are, so `T` must have no
/// padding bytes ([`Plain`]'s contract says so for types held here).
pub struct ShieldedBox<T: ?Sized + Plain> {
    /// The slot: its address; for a slice, the length too.
    slot: NonNull<T>,
    /// The box owns a `T` (encrypted).
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its slot; every access to the slot's bytes holds the
// slot's lock bit, from whatever thread. Sending the box sends the `T`.
unsafe impl<T: ?Sized + Plain + Send> Send for ShieldedBox<T> {}
// SAFETY: through `&ShieldedBox<T>` threads get `ShieldRef`s, each over a
// scratch copy of its own (a `&T`); decryptions are serialised by the
// slot's lock bit.
unsafe impl<T: ?Sized + Plain + Sync> Sync for ShieldedBox<T> {}

/// The bytes of a `Plain` value, to be encrypted or decrypted in place.
fn bytes_mut<T: ?Sized + Plain>(v: &mut T) -> &mut [u8] {
    let len = mem::size_of_val(v);
    // SAFETY: `v` is `len` bytes of memory we borrow mutably; `u8` has
    // alignment 1, and every byte pattern is a `u8`; every byte is
    // initialised, since `Plain`'s contract rules out padding in a type a
    // `ShieldedBox` holds (a `T` has no other gaps). Decrypted bytes are
    // the bytes of a `T` that was encrypted (the tag proves it), so the
    // `T` stays valid.
    unsafe { std::slice::from_raw_parts_mut(ptr::from_mut(v).cast::<u8>(), len) }
}

impl<T: ?Sized + Plain> ShieldedBox<T> {
    fn slot(&self) -> SlotPtr {
        SlotPtr(self.slot.cast::<u8>())
    }

    /// Wraps `plain` (encrypted in place) into a new box; `retarget` makes
    /// the pointer to the slot (with the slice's length, for a slice).
    fn from_plain(
        mut plain: LockedBox<T>,
        ring: usize,
        best_effort: bool,
        retarget: impl FnOnce(NonNull<u8>) -> NonNull<T>,
    ) -> Result<Self, Error> {
        let p = shield(bytes_mut(&mut *plain), ring, best_effort)?;
        Ok(ShieldedBox {
            slot: retarget(p.0),
            _owns: PhantomData,
        })
    }

    /// Whether the scratch memory may go unlocked.
    fn best_effort(&self) -> bool {
        info_of(self.slot()) & BEST_EFFORT_BIT != 0
    }

    /// Decrypts into `plain`, a zeroed scratch box of the value's size.
    fn open_into(&self, mut plain: LockedBox<T>) -> Result<ShieldRef<'_, T>, Error> {
        let mut scratch = None;
        unshield(self.slot(), bytes_mut(&mut *plain), &mut scratch)?;
        Ok(ShieldRef {
            plain,
            _box: PhantomData,
        })
    }

    /// As [`open_into`](Self::open_into), for a guard that writes back.
    fn open_into_mut(&mut self, mut plain: LockedBox<T>) -> Result<ShieldRefMut<'_, T>, Error> {
        let mut key = None;
        let ring = usize::from(info_of(self.slot()) & RING_BIT != 0);
        if ring_derives(ring) {
            // Made now, so that writing back on drop cannot fail for want
            // of locked memory.
            key = Some(key_scratch()?);
        }
        unshield(self.slot(), bytes_mut(&mut *plain), &mut key)?;
        Ok(ShieldRefMut {
            plain,
            slot: self.slot(),
            key,
            _box: PhantomData,
        })
    }
}

impl<T: Plain> ShieldedBox<T> {
    /// A shielded secret whose value `init` writes in place, into locked
    /// scratch memory that is wiped once the value is encrypted. The key's
    /// backing is `Backing::PreferSecretMem`; the scratch memory requires
    /// its lock. [`Options::shielded_with`](crate::Options::shielded_with)
    /// chooses otherwise.
    ///
    /// If `init` panics, the scratch memory is wiped while unwinding.
    ///
    /// ```
    /// # #[cfg(feature = "shield")] {
    /// let key = lockedmem::ShieldedBox::<[u8; 32]>::new_with(|k| k.fill(1))?;
    /// assert_eq!(key.borrow()?[31], 1);
    /// # }
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::MemlockLimit`] if the scratch memory or the first key cannot
    /// be locked; what making the key's 16 KiB prekey returns (as
    /// [`LockedBox::random`]); [`Error::Os`] if the ciphertext's memory
    /// cannot be mapped; [`Error::ShieldKeyAbsent`] in a fork(2) child of
    /// the process that made the key. `init` is not called if the scratch
    /// memory cannot be had.
    ///
    /// # Panics
    /// If mprotect fails on the prekey's pages (as
    /// [`SealedBox::borrow`](crate::SealedBox::borrow)).
    pub fn new_with(init: impl FnOnce(&mut T)) -> Result<Self, Error> {
        Self::try_new_with(|v| {
            init(v);
            Ok::<(), Error>(())
        })
        .map_err(Error::from)
    }

    /// Like [`new_with`](Self::new_with), for an initialiser that can fail;
    /// on its error the scratch memory is wiped and the error comes back.
    ///
    /// ```
    /// # #[cfg(feature = "shield")] {
    /// use std::io::Read;
    /// let mut file: &[u8] = &[9; 32]; // a File in real code
    /// let key = lockedmem::ShieldedBox::<[u8; 32]>::try_new_with(|k| file.read_exact(k))?;
    /// assert_eq!(key.borrow()?[0], 9);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`InitError::Init`] with what `init` returns, or [`InitError::Alloc`]
    /// with what [`new_with`](Self::new_with) can return.
    ///
    /// # Panics
    /// As [`new_with`](Self::new_with).
    pub fn try_new_with<E>(
        init: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<Self, InitError<E>> {
        Self::try_init(ring_of(Backing::PreferSecretMem), false, init)
    }

    /// [`try_new_with`](Self::try_new_with) with the key ring and the
    /// scratch memory's lock policy given.
    pub(crate) fn try_init<E>(
        ring: usize,
        best_effort: bool,
        init: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<Self, InitError<E>> {
        let mut plain = LockedBox::<T>::zeroed_with(scratch_request::<T>(1, best_effort))
            .map_err(InitError::Alloc)?;
        init(&mut plain).map_err(InitError::Init)?;
        Self::from_plain(plain, ring, best_effort, NonNull::cast).map_err(InitError::Alloc)
    }

    /// Decrypts the value into locked scratch memory (a packed slot for
    /// values of up to 2 KiB) and lends it read-only; the scratch memory is
    /// wiped when the guard drops. Borrows of the same box from several
    /// threads each get a copy of their own.
    ///
    /// # Errors
    /// [`Error::Tampered`] if the ciphertext fails its tag (nothing is
    /// lent, the scratch memory is wiped); [`Error::MemlockLimit`] if the
    /// scratch memory cannot be locked (under `LockPolicy::Require`, the
    /// default); [`Error::ShieldKeyAbsent`] in a fork(2) child.
    ///
    /// # Panics
    /// As [`new_with`](Self::new_with), where the key is derived for each
    /// use.
    pub fn borrow(&self) -> Result<ShieldRef<'_, T>, Error> {
        check_generation()?;
        let plain = LockedBox::<T>::zeroed_with(scratch_request::<T>(1, self.best_effort()))?;
        self.open_into(plain)
    }

    /// Decrypts the value into locked scratch memory and lends it
    /// read-write; when the guard drops, the value is encrypted again under
    /// the current key and a fresh nonce, and the scratch memory wiped.
    ///
    /// # Errors
    /// As [`borrow`](Self::borrow).
    ///
    /// # Panics
    /// As [`borrow`](Self::borrow); the guard's drop panics if the value
    /// cannot be encrypted again (which needs no memory it did not make
    /// when it was lent).
    pub fn borrow_mut(&mut self) -> Result<ShieldRefMut<'_, T>, Error> {
        check_generation()?;
        let plain = LockedBox::<T>::zeroed_with(scratch_request::<T>(1, self.best_effort()))?;
        self.open_into_mut(plain)
    }
}

impl<T: Plain> ShieldedBox<[T]> {
    /// A shielded copy of `src`, made as [`new_with`](ShieldedBox::new_with)
    /// makes a value (the caller's `src` is not wiped).
    ///
    /// ```
    /// # #[cfg(feature = "shield")] {
    /// let token = lockedmem::ShieldedBox::<[u8]>::from_slice(b"a token")?;
    /// assert_eq!(&token.borrow()?[..], b"a token");
    /// assert_eq!(token.len(), 7);
    /// # }
    /// # Ok::<(), lockedmem::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`new_with`](ShieldedBox::new_with).
    ///
    /// # Panics
    /// As [`new_with`](ShieldedBox::new_with).
    pub fn from_slice(src: &[T]) -> Result<Self, Error>
    where
        T: Copy,
    {
        Self::from_slice_with(src, ring_of(Backing::PreferSecretMem), false)
    }

    /// [`from_slice`](Self::from_slice) with the key ring and the scratch
    /// memory's lock policy given.
    pub(crate) fn from_slice_with(src: &[T], ring: usize, best_effort: bool) -> Result<Self, Error>
    where
        T: Copy,
    {
        let len = src.len();
        let mut plain =
            LockedBox::<[T]>::zeroed_slice_with(scratch_request::<T>(len, best_effort))?;
        plain.copy_from_slice(src);
        Self::from_plain(plain, ring, best_effort, |p| {
            NonNull::slice_from_raw_parts(p.cast::<T>(), len)
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.slot.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As [`ShieldedBox::borrow`](ShieldedBox#method.borrow) for a sized
    /// value.
    ///
    /// # Errors
    /// As for a sized value.
    ///
    /// # Panics
    /// As for a sized value.
    pub fn borrow(&self) -> Result<ShieldRef<'_, [T]>, Error> {
        check_generation()?;
        let req = scratch_request::<T>(self.len(), self.best_effort());
        self.open_into(LockedBox::<[T]>::zeroed_slice_with(req)?)
    }

    /// As [`ShieldedBox::borrow_mut`](ShieldedBox#method.borrow_mut) for a
    /// sized value.
    ///
    /// # Errors
    /// As for a sized value.
    ///
    /// # Panics
    /// As for a sized value.
    pub fn borrow_mut(&mut self) -> Result<ShieldRefMut<'_, [T]>, Error> {
        check_generation()?;
        let req = scratch_request::<T>(self.len(), self.best_effort());
        self.open_into_mut(LockedBox::<[T]>::zeroed_slice_with(req)?)
    }
}

impl<T: ?Sized + Plain> Drop for ShieldedBox<T> {
    /// Wipes the ciphertext and frees the slot for the next secret of its
    /// size. In a fork(2) child of the process that made it, touches
    /// nothing (the child's copy is zeros, or absent, already).
    fn drop(&mut self) {
        if check_generation().is_ok() {
            free_slot(self.slot());
        }
    }
}

impl<T: ?Sized + Plain> fmt::Debug for ShieldedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldedBox")
            .field("type", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// A read-only borrow of a [`ShieldedBox`]'s value: a decrypted copy in
/// locked scratch memory, wiped when the guard drops.
pub struct ShieldRef<'a, T: ?Sized + Plain> {
    plain: LockedBox<T>,
    _box: PhantomData<&'a ShieldedBox<T>>,
}

impl<T: ?Sized + Plain> Deref for ShieldRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.plain
    }
}

impl<T: ?Sized + Plain> fmt::Debug for ShieldRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldRef")
            .field("type", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// A read-write borrow of a [`ShieldedBox`]'s value: a decrypted copy in
/// locked scratch memory, encrypted back into the box (under a fresh nonce)
/// and wiped when the guard drops.
pub struct ShieldRefMut<'a, T: ?Sized + Plain> {
    plain: LockedBox<T>,
    slot: SlotPtr,
    /// Scratch memory for a derived key, made when the guard was lent.
    key: Option<LockedBox<[u8; KEY_LEN]>>,
    _box: PhantomData<&'a mut ShieldedBox<T>>,
}

impl<T: ?Sized + Plain> Deref for ShieldRefMut<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.plain
    }
}

impl<T: ?Sized + Plain> DerefMut for ShieldRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.plain
    }
}

impl<T: ?Sized + Plain> Drop for ShieldRefMut<'_, T> {
    fn drop(&mut self) {
        match reshield(self.slot, bytes_mut(&mut *self.plain), &mut self.key) {
            // A fork child's copy of a guard: the key is not here.
            Ok(()) | Err(Error::ShieldKeyAbsent) => {}
            Err(e) => panic!("lockedmem: cannot encrypt a shielded secret again: {e}"),
        }
    }
}

impl<T: ?Sized + Plain> fmt::Debug for ShieldRefMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShieldRefMut")
            .field("type", &type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// The derived key of `backing`'s ring's current key, written into `out`:
/// for the tests in `key_tests`, which look for it in the process's memory
/// and in a core file. Not built outside `cargo test`.
#[cfg(all(test, target_os = "linux"))]
fn derived_key_into(backing: Backing, out: &mut LockedBox<[u8; KEY_LEN]>) -> Result<(), Error> {
    check_generation()?;
    let ring = ring_of(backing);
    let mut scratch = None;
    let r = with_current(ring, |k| {
        k.bytes(&mut scratch).map(|b| out.copy_from_slice(b))
    })
    .and_then(|r| r);
    drop(scratch);
    scrub_stack();
    r
}

pub(crate) mod aead;
mod poly1305;

// Where the derived key is not (a scan of the process, a core file): only
// the crate itself can name the key, so these tests live inside it.
#[cfg(all(test, target_os = "linux"))]
mod key_tests;

/// Whether `ring`'s current key lives in secret memory.
pub(crate) fn key_in_secret_memory(ring: usize) -> bool {
    !ring_derives(ring)
}
