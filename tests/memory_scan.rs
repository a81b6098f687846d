//! The memory scan every memory proof rests on (`common::memscan`) finds
//! what it must: whole copies of a secret at any alignment, 16-byte
//! fragments of it at any offset (and nothing shorter), and the XSAVE
//! areas of signal frames with the data registers that are not zero, in
//! the legacy area and in every extended component this CPU saves (AVX,
//! AVX-512, AMX tile data), each found from CPUID here, apart from the
//! scan's own table. Run in
//! a child process, so that no other test's memory changes under the scan.
// Linux only: scans its own memory through /proc/self/mem (common::memscan).
#![cfg(target_os = "linux")]

mod common;

use common::child;
use common::memscan::{self, Masked, Target};

fn byte(i: usize) -> u8 {
    // Distinct enough that no run of the needle repeats inside it.
    (i.to_le_bytes()[0]).wrapping_mul(37).wrapping_add(11) ^ 0xa5
}

const LEN: usize = 64;

fn needle() -> Masked {
    Masked::from_fn(LEN, byte)
}

fn put(buf: &mut [u8], at: usize, from: usize, len: usize) {
    for i in 0..len {
        buf[at + i] = std::hint::black_box(byte(from + i));
    }
}

fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: a valid, exclusive reference to one byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

#[test]
fn whole_copies_and_fragments_are_found_at_every_alignment() {
    let out = child::run(
        "whole_copies_and_fragments_are_found_at_every_alignment",
        || {
            let n = needle();
            let base = memscan::scan(Target::Own, &[&n]);
            assert_eq!(base.full[0], 0, "{:?}", base.hits);
            assert_eq!(base.fragments[0], 0, "{:?}", base.hits);
            let mut buf = vec![0u8; 64 * 1024];
            // Whole copies at the eight alignments.
            for k in 0..8 {
                put(&mut buf, 1024 * k + k, 0, LEN);
            }
            // A fragment of exactly 16 bytes from every offset 0..=48, at
            // shifting alignments, and one of 15 bytes (not counted). The
            // lengths are written out, not taken from the scan's own
            // constant: 16 bytes (an `xmm` register) is what it must find.
            for o in 0..=LEN - 16 {
                put(&mut buf, 16 * 1024 + 256 * o + o % 8, o, 16);
            }
            put(&mut buf, 40 * 1024 + 3, 5, 15);
            let r = memscan::scan(Target::Own, &[&n]);
            assert_eq!(r.full[0], 8, "{:#?}", r.hits);
            assert_eq!(r.fragments[0], 8 + (LEN - 16 + 1), "{:#?}", r.hits);
            assert!(
                r.hits.iter().all(|h| h.len >= 16),
                "a run shorter than 16 bytes counted: {:#?}",
                r.hits
            );
            wipe(&mut buf);
            let after = memscan::scan(Target::Own, &[&n]);
            assert_eq!(after.fragments[0], 0, "wiped: {:#?}", after.hits);
        },
    );
    child::assert_success(&out);
}

/// A 64-byte aligned block holding a made-up XSAVE area of `size` bytes:
/// `FP_XSTATE_MAGIC1`, `extended_size`, `xstate_size` in the software bytes,
/// `FP_XSTATE_MAGIC2` right after it, and `XSTATE_BV` saying the SSE
/// registers were saved.
fn fake_frame(block: &mut [u8], size: usize) {
    fake_frame_with(block, size, 0b10);
}

/// As [`fake_frame`], with `XSTATE_BV` given.
fn fake_frame_with(block: &mut [u8], size: usize, xstate_bv: u64) {
    let size32 = u32::try_from(size).unwrap();
    block[464..468].copy_from_slice(&0x4650_5853u32.to_ne_bytes());
    block[468..472].copy_from_slice(&(size32 + 4).to_ne_bytes());
    block[480..484].copy_from_slice(&size32.to_ne_bytes());
    block[512..520].copy_from_slice(&xstate_bv.to_ne_bytes());
    block[size..size + 4].copy_from_slice(&0x4650_5845u32.to_ne_bytes());
}

#[test]
fn xsave_areas_are_found_with_their_registers() {
    let out = child::run("xsave_areas_are_found_with_their_registers", || {
        let n = needle();
        const SIZE: usize = 1024;
        let mut buf = vec![0u8; 8192];
        let at = buf.as_ptr().align_offset(64) + 64;
        fake_frame(&mut buf[at..], SIZE);
        // A 32-byte piece of the secret in xmm2..xmm3 (bytes 192..224).
        put(&mut buf, at + 192, 7, 32);
        let r = memscan::scan(Target::Own, &[&n]);
        let addr = buf.as_ptr() as usize + at;
        let frame = r
            .frames
            .iter()
            .find(|f| f.addr == addr)
            .unwrap_or_else(|| panic!("the area at {addr:#x} was not found: {:#?}", r.frames));
        assert_eq!(frame.size, SIZE);
        assert_eq!(frame.dirty, vec![(1, 192)]);
        assert_eq!(frame.holds, vec![0]);
        // Zeroed registers, the software bytes left: found and scrubbed.
        wipe(&mut buf[at + 160..at + 416]);
        let r = memscan::scan(Target::Own, &[&n]);
        let frame = r
            .frames
            .iter()
            .find(|f| f.addr == addr)
            .expect("still found");
        assert!(frame.is_scrubbed(), "{frame:?}");
        // A broken closing magic is no area.
        buf[at + SIZE] ^= 1;
        let r = memscan::scan(Target::Own, &[&n]);
        assert!(r.frames.iter().all(|f| f.addr != addr));
    });
    child::assert_success(&out);
}

/// The extended data components this CPU saves in an XSAVE area (standard
/// format), from CPUID leaf 0xD as the kernel lays them out: `(component,
/// offset, size)`. Read here, not taken from the scan, so that a scan that
/// misses a component fails below.
#[cfg(target_arch = "x86_64")]
fn extended_components() -> Vec<(u32, usize, usize)> {
    // AVX (`ymm` upper halves), AVX-512 (`zmm` upper halves, `zmm16`-`zmm31`)
    // and AMX tile data: registers that hold data, as opposed to masks,
    // keys and configuration.
    [2u32, 6, 7, 18]
        .into_iter()
        .filter_map(|i| {
            // SAFETY: CPUID is present on every x86-64 CPU; leaf 0xD
            // sub-leaf `i` only describes state component `i`.
            #[allow(unused_unsafe)]
            let r = unsafe { std::arch::x86_64::__cpuid_count(0xd, i) };
            (r.eax != 0 && r.ebx != 0).then_some((i, r.ebx as usize, r.eax as usize))
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn xsave_areas_show_their_extended_registers() {
    let out = child::run("xsave_areas_show_their_extended_registers", || {
        let n = needle();
        let components = extended_components();
        assert!(
            components.iter().any(|&(i, _, _)| i == 2),
            "every x86-64 CPU this crate is tested on has AVX: {components:?}"
        );
        for (i, offset, size) in components {
            let area = (offset + size).next_multiple_of(64);
            let mut buf = vec![0u8; area + 4096];
            let at = buf.as_ptr().align_offset(64) + 64;
            fake_frame_with(&mut buf[at..], area, 0b10 | 1 << i);
            // 16 bytes of the secret in the component's last register bytes.
            let piece = offset + size - 16;
            put(&mut buf, at + piece, 9, 16);
            let addr = buf.as_ptr() as usize + at;
            let r = memscan::scan(Target::Own, &[&n]);
            let frame = r
                .frames
                .iter()
                .find(|f| f.addr == addr)
                .unwrap_or_else(|| panic!("component {i}: no area at {addr:#x}"));
            assert_eq!(frame.size, area, "component {i}");
            assert_eq!(frame.dirty, vec![(i, piece)], "component {i}");
            assert_eq!(frame.holds, vec![0], "component {i}");
            // Not saved (`XSTATE_BV` clear): stale stack, not registers; the
            // piece is still found as a fragment.
            buf[at + 512..at + 520].copy_from_slice(&0b10u64.to_ne_bytes());
            let r = memscan::scan(Target::Own, &[&n]);
            let frame = r.frames.iter().find(|f| f.addr == addr).expect("found");
            assert!(frame.is_scrubbed(), "component {i}: {frame:?}");
            assert_eq!(frame.holds, vec![0], "component {i}");
            wipe(&mut buf);
        }
    });
    child::assert_success(&out);
}
