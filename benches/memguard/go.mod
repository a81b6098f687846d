// The memguard side of lockedmem's shield bench (README.md). Built offline:
// ./setup.sh puts each dependency below into ./third_party/ at the version
// memguard v0.22.5's own go.mod requires, and the `replace` lines point there,
// so `GOPROXY=off GOFLAGS=-mod=mod go build` never asks the network.
module lockedmem.invalid/benches/memguard

go 1.18

require github.com/awnumar/memguard v0.22.5

require (
	github.com/aead/chacha20 v0.0.0-20180709150244-8b13a72661da // indirect
	github.com/awnumar/memcall v0.2.0 // indirect
	golang.org/x/crypto v0.16.0 // indirect
	golang.org/x/sys v0.15.0 // indirect
	lukechampine.com/frand v1.4.2 // indirect
)

// memguard v0.22.5 (commit 4ed2841e9041c2c37e455b05446477445c0eaf07) and
// what it builds with.
replace github.com/awnumar/memguard => ./third_party/memguard

// mmap, mlock, mprotect, madvise wrappers: v0.2.0 (7d67f139acf4).
replace github.com/awnumar/memcall => ./third_party/memcall

// nacl/secretbox (XSalsa20-Poly1305) and blake2b: v0.16.0 (325b73534624).
replace golang.org/x/crypto => ./third_party/crypto

// golang.org/x/sys/unix: v0.15.0 (13b15b780d90).
replace golang.org/x/sys => ./third_party/sys

// Only memguard's examples import frand; the module graph still reads its
// go.mod and that of its own dependency (setup.sh writes a go.mod for
// aead/chacha20, which has none). frand v1.4.2 (38046b4646b3), chacha20
// 8b13a72661da.
replace lukechampine.com/frand => ./third_party/frand

replace github.com/aead/chacha20 => ./third_party/chacha20
