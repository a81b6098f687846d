//! What depends on the processor, not the operating system: clearing the
//! vector registers, and zeroing bytes through a raw pointer.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

/// Writes `len` zero bytes at `at` with volatile writes the optimiser cannot
/// remove, one byte at a time, through a raw pointer: no reference into
/// the range is made (another thread may hold one), and no alignment is
/// needed. Allocates nothing; async-signal-safe.
///
/// # Safety
/// `at..at + len` is writable memory whose old contents no code relies on.
pub(crate) unsafe fn zero_bytes(at: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: `i < len`: inside the caller's range.
        let byte = unsafe { at.add(i) };
        // SAFETY: forwarded: a writable byte whose contents go.
        unsafe { byte.write_volatile(0) };
    }
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Zeroes the calling thread's caller-saved vector registers, where a
/// secret the thread just handled may still sit (glibc's `memcpy` leaves
/// parts of what it copied in them): on x86-64 `xmm0`-`xmm15` (or
/// `ymm0`-`ymm15` with AVX, `zmm0`-`zmm15` with AVX-512, by `vzeroall`) and
/// `zmm16`-`zmm31` with AVX-512; on aarch64 `v0`-`v7` and `v16`-`v31`.
/// Registers the calling convention preserves across calls (aarch64's
/// `d8`-`d15`) are left to the code that owns them. Async-signal-safe.
///
/// This is the crate's only inline assembly.
pub(crate) fn clear_vector_registers() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked just above).
            unsafe { x86::clear_avx512() };
        } else if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is present (checked just above).
            unsafe { x86::clear_avx() };
        } else {
            x86::clear_sse();
        }
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: zeroes caller-saved SIMD registers only, each declared
    // clobbered; no memory, stack or flags are touched.
    unsafe {
        std::arch::asm!(
            "movi v0.16b, #0",
            "movi v1.16b, #0",
            "movi v2.16b, #0",
            "movi v3.16b, #0",
            "movi v4.16b, #0",
            "movi v5.16b, #0",
            "movi v6.16b, #0",
            "movi v7.16b, #0",
            "movi v16.16b, #0",
            "movi v17.16b, #0",
            "movi v18.16b, #0",
            "movi v19.16b, #0",
            "movi v20.16b, #0",
            "movi v21.16b, #0",
            "movi v22.16b, #0",
            "movi v23.16b, #0",
            "movi v24.16b, #0",
            "movi v25.16b, #0",
            "movi v26.16b, #0",
            "movi v27.16b, #0",
            "movi v28.16b, #0",
            "movi v29.16b, #0",
            "movi v30.16b, #0",
            "movi v31.16b, #0",
            clobber_abi("C"),
            options(nomem, nostack, preserves_flags),
        );
    }
}

/// The x86-64 register clearing, one function per instruction set.
#[cfg(target_arch = "x86_64")]
mod x86 {
    /// `vzeroall`, then `zmm16`-`zmm31` zeroed.
    ///
    /// No `#[target_feature]` (AVX-512F's is stable only since Rust 1.89,
    /// after this crate's `rust-version`): the assembler takes the
    /// instructions as they are, and the code around it, compiled without
    /// AVX-512, never keeps a value in `zmm16`-`zmm31`, which the C ABI
    /// makes caller-saved anyway.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    pub(super) unsafe fn clear_avx512() {
        // SAFETY: the caller's contract (AVX-512F); zeroes caller-saved
        // vector registers only, all declared clobbered by the C ABI (or,
        // zmm16-31, unused by the compiled code, see above).
        unsafe {
            std::arch::asm!(
                "vzeroall",
                "vpxord zmm16, zmm16, zmm16",
                "vpxord zmm17, zmm17, zmm17",
                "vpxord zmm18, zmm18, zmm18",
                "vpxord zmm19, zmm19, zmm19",
                "vpxord zmm20, zmm20, zmm20",
                "vpxord zmm21, zmm21, zmm21",
                "vpxord zmm22, zmm22, zmm22",
                "vpxord zmm23, zmm23, zmm23",
                "vpxord zmm24, zmm24, zmm24",
                "vpxord zmm25, zmm25, zmm25",
                "vpxord zmm26, zmm26, zmm26",
                "vpxord zmm27, zmm27, zmm27",
                "vpxord zmm28, zmm28, zmm28",
                "vpxord zmm29, zmm29, zmm29",
                "vpxord zmm30, zmm30, zmm30",
                "vpxord zmm31, zmm31, zmm31",
                clobber_abi("C"),
                options(nomem, nostack, preserves_flags),
            );
        }
    }

    /// `vzeroall`: `ymm0`-`ymm15`.
    ///
    /// # Safety
    /// The CPU has AVX.
    pub(super) unsafe fn clear_avx() {
        // SAFETY: the caller's contract (AVX); zeroes caller-saved vector
        // registers only, all declared clobbered by the C ABI.
        unsafe {
            std::arch::asm!(
                "vzeroall",
                clobber_abi("C"),
                options(nomem, nostack, preserves_flags)
            );
        }
    }

    /// `xmm0`-`xmm15`, with SSE2 (every x86-64 CPU has it).
    pub(super) fn clear_sse() {
        // SAFETY: SSE2 is part of x86-64; zeroes caller-saved vector
        // registers only, all declared clobbered by the C ABI.
        unsafe {
            std::arch::asm!(
                "xorps xmm0, xmm0",
                "xorps xmm1, xmm1",
                "xorps xmm2, xmm2",
                "xorps xmm3, xmm3",
                "xorps xmm4, xmm4",
                "xorps xmm5, xmm5",
                "xorps xmm6, xmm6",
                "xorps xmm7, xmm7",
                "xorps xmm8, xmm8",
                "xorps xmm9, xmm9",
                "xorps xmm10, xmm10",
                "xorps xmm11, xmm11",
                "xorps xmm12, xmm12",
                "xorps xmm13, xmm13",
                "xorps xmm14, xmm14",
                "xorps xmm15, xmm15",
                clobber_abi("C"),
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}
