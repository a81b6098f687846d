// Command memguard-bench times what a memguard user pays to read a sealed
// 32-byte secret: Enclave.Open(), a read of the 32 bytes, and Destroy() of
// the LockedBuffer that Open returned. Beside it, for scale, the
// LockedBuffer alone: memguard.NewBuffer(32), a read, Destroy().
//
// Open (memguard v0.22.5, core/enclave.go) allocates a Buffer for the
// plaintext (mmap of a guard page, one data page and a guard page; madvise
// MADV_DONTDUMP; mlock; a random canary from crypto/rand; two mprotect
// calls for the guard pages), asks the Coffer for a view of the key (a
// second such Buffer, filled with BLAKE2b-256(right) XOR left under the
// Coffer's mutex), opens the XSalsa20-Poly1305 box into a heap slice and
// moves it into the Buffer, destroys the key view (mprotect, canary check,
// wipe, munlock, mprotect, munmap), and makes the plaintext Buffer read-only
// (mprotect). Destroy does to the plaintext Buffer what was done to the key
// view. README.md has the setup, offline.
//
//	memguard-bench              # 31 repetitions, medians
//	memguard-bench -once        # one repetition: "open_ns buffer_ns"
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/awnumar/memguard"
)

var sink uint32

func readSum(b []byte) uint32 {
	var s uint32
	for _, x := range b {
		s += uint32(x)
	}
	return s
}

// openCycle is one Open, read, Destroy.
func openCycle(e *memguard.Enclave) uint32 {
	buf, err := e.Open()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Open:", err)
		os.Exit(1)
	}
	s := readSum(buf.Bytes())
	buf.Destroy()
	return s
}

// bufferCycle is one NewBuffer(32), read, Destroy: a LockedBuffer without
// the key or the cipher.
func bufferCycle() uint32 {
	buf := memguard.NewBuffer(32)
	s := readSum(buf.Bytes())
	buf.Destroy()
	return s
}

// timeIt returns nanoseconds per call of f over n calls.
func timeIt(n int, f func() uint32) float64 {
	start := time.Now()
	var acc uint32
	for i := 0; i < n; i++ {
		acc += f()
	}
	el := time.Since(start)
	sink += acc
	return float64(el.Nanoseconds()) / float64(n)
}

func median(v []float64) float64 {
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	return w[len(w)/2]
}

func main() {
	once := flag.Bool("once", false, "one repetition; print \"open_ns buffer_ns\" on one line")
	reps := flag.Int("reps", 31, "repetitions (without -once)")
	n := flag.Int("n", 2000, "calls per repetition")
	warmup := flag.Int("warmup", 500, "untimed calls of each cycle first")
	flag.Parse()

	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = 0x5A
	}
	enclave := memguard.NewEnclave(secret) // wipes secret
	defer memguard.Purge()

	open := func() uint32 { return openCycle(enclave) }
	for i := 0; i < *warmup; i++ {
		sink += open() + bufferCycle()
	}
	// Open yields the 32 bytes 0x5A, a new buffer 32 zeros.
	if sink != uint32(*warmup)*32*0x5A {
		fmt.Fprintln(os.Stderr, "wrong plaintext")
		os.Exit(1)
	}

	if *once {
		a := timeIt(*n, open)
		b := timeIt(*n, bufferCycle)
		fmt.Printf("%.1f %.1f\n", a, b)
		return
	}
	var opens, bufs, ratios []float64
	for r := 0; r < *reps; r++ {
		var a, b float64
		if r%2 == 0 {
			a = timeIt(*n, open)
			b = timeIt(*n, bufferCycle)
		} else {
			b = timeIt(*n, bufferCycle)
			a = timeIt(*n, open)
		}
		opens = append(opens, a)
		bufs = append(bufs, b)
		ratios = append(ratios, a/b)
	}
	fmt.Printf("memguard, %d repetitions of %d calls, median ns (this run, for scale):\n", *reps, *n)
	fmt.Printf("  Enclave.Open + read 32 bytes + Destroy: %.0f\n", median(opens))
	fmt.Printf("  NewBuffer(32) + read + Destroy:         %.0f\n", median(bufs))
	fmt.Printf("  Open cycle / NewBuffer cycle (median of ratios): %.2f\n", median(ratios))
}
