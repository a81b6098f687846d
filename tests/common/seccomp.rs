//! Seccomp filters that make mprotect(2), or any one system call, fail with
//! a chosen errno on the calling thread: a way, from outside the crate, to
//! prove that code makes no mprotect call (it would fail) and to see what
//! the crate does when a call fails or is filtered as container runtimes
//! filter memfd_secret(2).
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "BPF instruction fields are fixed-width encodings of small constants"
)]

use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, sock_filter, sock_fprog};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;

// Offsets into struct seccomp_data.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG2_LOW: u32 = 16 + 2 * 8; // low 32 bits of args[2] on little endian

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// From now on, on this thread, every call of system call `nr` fails with
/// `errno`; nothing else changes.
pub fn fail_syscall(nr: libc::c_long, errno: i32) {
    let fail = SECCOMP_RET_ERRNO | (errno as u32 & 0xffff);
    install(vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1),
        stmt(BPF_RET | BPF_K, fail),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    ]);
}

/// From now on, on this thread, mprotect calls whose `prot` equals `prot`
/// (any prot if `None`) fail with `errno`; nothing else changes.
pub fn fail_mprotect(prot: Option<i32>, errno: i32) {
    let mut prog = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
    ];
    let fail = SECCOMP_RET_ERRNO | (errno as u32 & 0xffff);
    match prot {
        None => {
            prog.push(jump(
                BPF_JMP | BPF_JEQ | BPF_K,
                libc::SYS_mprotect as u32,
                0,
                1,
            ));
            prog.push(stmt(BPF_RET | BPF_K, fail));
        }
        Some(p) => {
            prog.push(jump(
                BPF_JMP | BPF_JEQ | BPF_K,
                libc::SYS_mprotect as u32,
                0,
                3,
            ));
            prog.push(stmt(BPF_LD | BPF_W | BPF_ABS, ARG2_LOW));
            prog.push(jump(BPF_JMP | BPF_JEQ | BPF_K, p as u32, 0, 1));
            prog.push(stmt(BPF_RET | BPF_K, fail));
        }
    }
    prog.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    install(prog);
}

/// Installs `prog` as this thread's seccomp filter.
fn install(mut prog: Vec<sock_filter>) {
    let fprog = sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain prctl call with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "no_new_privs");
    // SAFETY: PR_SET_SECCOMP reads the filter program, which `prog` and
    // `fprog` keep alive for the call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &raw const fprog,
        )
    };
    assert_eq!(
        rc,
        0,
        "install seccomp filter: {}",
        std::io::Error::last_os_error()
    );
}
