package fp

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// vectorFormats has one format of every width 2..32 that the package allows.
func vectorFormats() []Format {
	var fs []Format
	for w := 2; w <= 32; w++ {
		e := min(8, w-1)
		m := w - 1 - e
		if m > 23 {
			continue
		}
		f := Format{Exp: e, Mant: m, Bias: DefaultBias(e)}
		lo, hi := BiasRange(e, m, false)
		f.Bias = max(lo, min(hi, f.Bias))
		if w == 32 {
			f = FP32
		}
		fs = append(fs, f)
	}
	return fs
}

func TestVectorGetSetAndBytes(t *testing.T) {
	for _, f := range vectorFormats() {
		for _, n := range []int{0, 1, 7, 63, 64, 65, 200} {
			v := NewVector(f, n)
			if want := (n*f.Bits() + 63) / 64 * 8; v.Bytes() != want || len(v.Words())*8 != want {
				t.Fatalf("%s n=%d: Bytes = %d, want %d", f, n, v.Bytes(), want)
			}
			ref := make([]uint32, n)
			r := NewRand(uint64(n), uint64(f.Bits()))
			mask := uint32(uint64(1)<<f.Bits() - 1)
			for round := range 3 * n {
				i := int(r.Uint32() % uint32(n))
				code := r.Uint32()
				v.Set(i, code)
				ref[i] = code & mask
				if round%5 == 0 {
					for j := range n {
						if got := v.Get(j); got != ref[j] {
							t.Fatalf("%s n=%d: after Set(%d), Get(%d) = %#x, want %#x", f, n, i, j, got, ref[j])
						}
					}
				}
			}
			// Round trip through the checkpoint form.
			w, err := VectorFromWords(f, n, slices.Clone(v.Words()))
			if err != nil {
				t.Fatalf("%s n=%d: VectorFromWords: %v", f, n, err)
			}
			for j := range n {
				if w.Get(j) != ref[j] {
					t.Fatalf("%s n=%d: restored code %d differs", f, n, j)
				}
			}
		}
	}
}

func TestVectorFromWordsRejectsBadInput(t *testing.T) {
	f := MustParseFormat("e3m2b24")
	if _, err := VectorFromWords(f, 100, make([]uint64, 9)); err == nil || !strings.Contains(err.Error(), "need 10 words, got 9") {
		t.Errorf("short store: %v", err)
	}
	words := make([]uint64, 10)
	words[9] = 1 << 63
	if _, err := VectorFromWords(f, 100, words); err == nil || !strings.Contains(err.Error(), "padding") {
		t.Errorf("dirty padding: %v", err)
	}
	if _, err := VectorFromWords(Format{Exp: 9}, 1, nil); err == nil {
		t.Error("invalid format accepted")
	}
}

func TestVectorDecodeEncodeRanges(t *testing.T) {
	for _, f := range append(vectorFormats(), MustParseFormat("e4m3b28"), MustParseFormat("e5m10b20")) {
		const n = 300
		v := NewVector(f, n)
		r := NewRand(9, 9)
		codes := make([]uint32, n)
		mask := uint32(uint64(1)<<f.Bits() - 1)
		for i := range codes {
			codes[i] = r.Uint32() & mask
			v.Set(i, codes[i])
		}
		for _, start := range []int{0, 1, 5, 8, 13, 64} {
			for _, length := range []int{0, 1, 3, 8, 17, 64, n - 64} {
				if start+length > n {
					continue
				}
				dst := make([]float32, length+2)
				dst[length], dst[length+1] = 42, 42 // guard band
				v.DecodeRange(dst[:length], start)
				for j := range length {
					want := f.Decode(codes[start+j])
					if math.Float32bits(dst[j]) != math.Float32bits(want) && !(want != want && dst[j] != dst[j]) {
						t.Fatalf("%s: DecodeRange(start %d, len %d)[%d] = %g, want %g", f, start, length, j, dst[j], want)
					}
				}
				if dst[length] != 42 || dst[length+1] != 42 {
					t.Fatalf("%s: DecodeRange wrote past its range", f)
				}
			}
		}
		// EncodeRange writes only its range.
		src := []float32{1e-7, -3e-7, 0.5, 1e-30, 2}
		v.EncodeRange(7, src, nil)
		for i := range n {
			want := codes[i]
			if i >= 7 && i < 7+len(src) {
				want = f.Encode(src[i-7], nil)
			}
			if got := v.Get(i); got != want {
				t.Fatalf("%s: after EncodeRange, code %d = %#x, want %#x", f, i, got, want)
			}
		}
	}
}

func TestVectorRangePanicsNameTheRange(t *testing.T) {
	v := NewVector(MustParseFormat("e4m3b28"), 10)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "[8,12) out of range [0,10)") {
			t.Errorf("panic = %v", r)
		}
	}()
	v.DecodeRange(make([]float32, 4), 8)
}

// TestStepMatchesScalarDefinition checks the fused step, for every width
// fast path and every rounding, against the definition written with Decode
// and Encode, including the counts.
func TestStepMatchesScalarDefinition(t *testing.T) {
	withEachStepImpl(t, func(string) { testStepMatchesScalarDefinition(t) })
}

func testStepMatchesScalarDefinition(t *testing.T) {
	names := []string{"e4m3b28", "e4m3b28s", "e4m3b28z", "e5m10b24", "e5m10b24s", "fp32", "e3m2b24s", "e6m9b30", "e2m1b20", "fp16", "bf16s", "e2m3b21s", "e2m2b21s"}
	for _, name := range names {
		f := MustParseFormat(name)
		const n = 203
		r := NewRand(5, 1)
		m0 := make([]float32, n)
		g := make([]float32, n)
		for i := range m0 {
			m0[i] = float32(r.Float32()-0.5) * 2e-6
			g[i] = float32(r.Float32()-0.5) * 4e-4
		}
		g[3] = m0[3]       // no update: never lost
		m0[4], g[4] = 0, 0 // zero stays zero
		g[5] = 1           // saturates in the compact formats
		g[6] = 1e-12       // underflows from zero
		m0[6] = 0
		for _, start := range []int{0, 3, 8} {
			v := NewVector(f, n)
			v.EncodeRange(0, m0, nil)
			codes := make([]uint32, n)
			for i := range codes {
				codes[i] = v.Get(i)
			}
			gamma := float32(0.01)
			length := n - start - 2
			mOut := make([]float32, length)
			r1, r2 := NewRand(77, 1), NewRand(77, 1)
			got := v.Step(start, g[start:start+length], gamma, &r1, mOut)
			var want StepCounts
			key := StepKey(&r2) // a stochastic step rounds element j with StepRand(key, j)
			for j := range length {
				i := start + j
				c := codes[i]
				m := f.Decode(c)
				mn := m + float32(gamma*(g[i]-m))
				nc := f.EncodeStep(mn, key, j)
				want.Values++
				if nc != c {
					want.Changed++
				} else if g[i] != m {
					want.Lost++
				}
				if f.Decode(nc) == 0 && mn != 0 {
					want.Underflow++
				}
				if math.Abs(float64(mn)) > f.MaxValue() {
					want.Saturated++
				}
				if v.Get(i) != nc {
					t.Fatalf("%s start %d: code %d = %#x, want %#x", f, start, i, v.Get(i), nc)
				}
				if mOut[j] != f.Decode(nc) {
					t.Fatalf("%s: mOut[%d] = %g, want %g", f, j, mOut[j], f.Decode(nc))
				}
			}
			for _, i := range []int{0, 1, n - 1} { // outside the range: untouched
				if (i < start || i >= start+length) && v.Get(i) != codes[i] {
					t.Fatalf("%s: Step changed code %d outside [%d,%d)", f, i, start, start+length)
				}
			}
			if got != want {
				t.Fatalf("%s start %d: counts %+v, want %+v", f, start, got, want)
			}
			// SimulateStep agrees on plain slices.
			m := make([]float32, length)
			for j := range m {
				m[j] = f.Decode(codes[start+j])
			}
			r3 := NewRand(77, 1)
			if sc := SimulateStep(f, m, g[start:start+length], gamma, &r3); sc != want {
				t.Fatalf("%s: SimulateStep counts %+v, want %+v", f, sc, want)
			}
			for j := range m {
				if m[j] != mOut[j] {
					t.Fatalf("%s: SimulateStep m[%d] = %g, Step gave %g", f, j, m[j], mOut[j])
				}
			}
		}
	}
}

func TestStepCountsLostUpdates(t *testing.T) {
	// fp16 keeps only the subnormal quantum 2^-24 ≈ 6e-8 near 3e-7: an
	// update of γ·(g−m) = 1e-3·1e-5 = 1e-8 is lost; e4m3b28 (step 2^-25 ≈
	// 3e-8 there) loses it as well, but fp32 keeps it.
	m := []float32{3e-7}
	g := []float32{1e-5 + 3e-7}
	for name, lost := range map[string]int64{"fp16": 1, "e4m3b28": 1, "fp32": 0} {
		f := MustParseFormat(name)
		mm := []float32{f.Decode(f.Encode(m[0], nil))}
		c := SimulateStep(f, mm, g, 1e-3, nil)
		if c.Lost != lost {
			t.Errorf("%s: lost %d, want %d (%v)", name, c.Lost, lost, c)
		}
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	for _, name := range []string{"e4m3b28", "e4m3b28s", "e3m2b24s", "e5m10b24", "fp32"} {
		f := MustParseFormat(name)
		v := NewVector(f, 1000)
		src := make([]float32, 1000)
		for i := range src {
			src[i] = float32(i) * 1e-9
		}
		dst := make([]float32, 1000)
		codes := make([]uint32, 1000)
		r := NewRand(1, 1)
		allocs := testing.AllocsPerRun(10, func() {
			v.EncodeRange(3, src[:900], &r)
			v.DecodeRange(dst[:990], 5)
			v.Step(1, src[:998], 1e-3, &r, dst)
			f.EncodeSlice(codes, src, &r)
			f.DecodeSlice(dst, codes)
			SimulateStep(f, dst, src, 1e-3, &r)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run of the hot paths", f, allocs)
		}
	}
}

func TestDecodeFP32MatchesDecode(t *testing.T) {
	for _, b := range []uint32{0, 1, 0x80000001, 0x3f800000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7f800001, 0xffc00000, 0x7fbfffff} {
		if got, want := math.Float32bits(decodeFP32(b)), math.Float32bits(FP32.Decode(b)); got != want {
			t.Errorf("decodeFP32(%#x) = %#x, Decode says %#x", b, got, want)
		}
	}
}
