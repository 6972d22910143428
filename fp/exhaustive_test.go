package fp

import (
	"fmt"
	"math"
	"runtime"
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

// checkAllFloat32 encodes every float32 bit pattern (every 65521st under
// -short) with f.EncodeSlice, in chunks split across runtime.NumCPU()
// goroutines, and compares each code with reference(bits). It reports the
// first few mismatches.
func checkAllFloat32(t *testing.T, f Format, reference func(b uint32) uint32) {
	t.Helper()
	stride := uint64(1)
	if testing.Short() {
		stride = 65521 // prime, so all exponent/mantissa positions get hit
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
				n := 0
				for x := first; x < first+chunk*stride && x < 1<<32; x += stride {
					src[n] = math.Float32frombits(uint32(x))
					n++
				}
				f.EncodeSlice(dst[:n], src[:n], nil)
				for i, got := range dst[:n] {
					b := math.Float32bits(src[i])
					if want := reference(b); got != want {
						failures.Add(1)
						mu.Lock()
						msgs = append(msgs, fmt.Sprintf("%s: Encode(%g = %#08x) = %#x, reference says %#x", f, src[i], b, got, want))
						mu.Unlock()
						break
					}
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
