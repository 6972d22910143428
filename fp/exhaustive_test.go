package fp

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"
)

func TestFP16DecodeAllCodesMatchesX448(t *testing.T) {
	f := MustParseFormat("fp16")
	vals := make([]float32, 1<<16)
	codes := make([]uint32, 1<<16)
	for i := range codes {
		codes[i] = uint32(i)
	}
	f.DecodeSlice(vals, codes)
	for i := range 1 << 16 {
		want := float16.Frombits(uint16(i)).Float32()
		got := f.Decode(uint32(i))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("Decode(%#04x) = %g (%#08x), x448 says %g (%#08x)", i, got, math.Float32bits(got), want, math.Float32bits(want))
		}
		if math.Float32bits(vals[i]) != math.Float32bits(want) {
			t.Fatalf("DecodeSlice code %#04x = %g, x448 says %g", i, vals[i], want)
		}
	}
}

// checkAllFloat32 encodes every float32 bit pattern with f.EncodeSlice, in
// chunks split across runtime.NumCPU() goroutines, and compares each code
// with reference(bits). It reports the first few mismatches.
//
// Under -short it checks every 65521st pattern. Under the race detector
// every pattern costs about 80 ns (EncodeSlice's loads and stores are
// instrumented), so all 2^32 would take ~6 CPU-minutes per format; there it
// checks every 31st pattern (139 million, all exponents and every residue
// of the low mantissa bits), and the plain `go test ./fp` run checks all
// 2^32 (about 20 CPU-seconds per format). FP_TEST_STRIDE=n overrides.
func checkAllFloat32(t *testing.T, f Format, reference func(b uint32) uint32) {
	t.Helper()
	stride := uint64(1)
	if testing.Short() {
		stride = 65521 // prime, so all exponent/mantissa positions get hit
	} else if raceEnabled {
		stride = 31
	}
	if s := os.Getenv("FP_TEST_STRIDE"); s != "" {
		stride, _ = strconv.ParseUint(s, 10, 64)
	}
	const chunk = 1 << 16
	var next atomic.Uint64
	var failures atomic.Int32
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			src := make([]float32, chunk)
			dst := make([]uint32, chunk)
			for failures.Load() == 0 {
				first := next.Add(chunk*stride) - chunk*stride
				if first >= 1<<32 {
					return
				}
				n := fillPatterns(src, first, stride)
				f.EncodeSlice(dst[:n], src[:n], nil)
				if i := firstMismatch(dst[:n], src[:n], reference); i >= 0 {
					b := math.Float32bits(src[i])
					failures.Add(1)
					mu.Lock()
					msgs = append(msgs, fmt.Sprintf("%s: Encode(%g = %#08x) = %#x, reference says %#x", f, src[i], b, dst[i], reference(b)))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, m := range msgs {
		if i == 5 {
			break
		}
		t.Error(m)
	}
}

// fillPatterns stores the float32s with bit patterns first, first+stride,
// ... (below 2^32) into src and returns how many it stored.
//
//go:norace
func fillPatterns(src []float32, first, stride uint64) int {
	n := 0
	for x := first; n < len(src) && x < 1<<32; x += stride {
		src[n] = math.Float32frombits(uint32(x))
		n++
	}
	return n
}

// firstMismatch returns the first i with codes[i] != reference(bits of
// src[i]), or -1. It is exempt from race instrumentation: the buffers are
// private to one goroutine, and instrumenting 2^32 loads would make the
// exhaustive test take minutes under -race.
//
//go:norace
func firstMismatch(codes []uint32, src []float32, reference func(uint32) uint32) int {
	for i, got := range codes {
		if got != reference(math.Float32bits(src[i])) {
			return i
		}
	}
	return -1
}

func TestFP16EncodeAllFloat32MatchesX448(t *testing.T) {
	checkAllFloat32(t, FP16, func(b uint32) uint32 {
		return uint32(float16.Fromfloat32(math.Float32frombits(b)).Bits())
	})
}

// bf16Reference rounds a float32 to bfloat16 by comparing the distances to
// the two truncation neighbours in float64 (ties to even, overflow to Inf,
// NaN quieted keeping its top payload bits): independent of the bit tricks
// the encoder uses.
func bf16Reference(b uint32) uint32 {
	sign := b >> 31 << 15
	a := b & 0x7fffffff
	if a > 0x7f800000 {
		return sign | 0x7f80 | 0x40 | (a&0x7fffff)>>16
	}
	if a == 0x7f800000 {
		return sign | 0x7f80
	}
	lo := a >> 16
	value := func(code uint32) float64 {
		if code == 0x7f80 {
			return math.Ldexp(1, 128) // the next step of the grid, which overflows
		}
		return float64(math.Float32frombits(code << 16))
	}
	x := float64(math.Float32frombits(a))
	dlo, dhi := x-value(lo), value(lo+1)-x
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | (lo + 1)
	case lo%2 == 0:
		return sign | lo
	default:
		return sign | (lo + 1)
	}
}

func TestBF16EncodeAllFloat32MatchesReference(t *testing.T) {
	checkAllFloat32(t, BF16, bf16Reference)
}

func TestBF16DecodeIsUpperHalfOfFloat32(t *testing.T) {
	f := MustParseFormat("bf16")
	for code := range uint32(1 << 16) {
		got := math.Float32bits(f.Decode(code))
		want := code << 16
		if code&0x7f80 == 0x7f80 && code&0x7f != 0 {
			want |= 0x00400000 // NaNs come back quiet
		}
		if got != want {
			t.Fatalf("Decode(%#04x) = %#08x, want %#08x", code, got, want)
		}
	}
}
