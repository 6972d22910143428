package fp

import (
	"fmt"
	"testing"
)

// Benchmarks are named impl/width and report values/s (one core: run with
// -cpu 1). Momenta-like inputs: a few 1e-7 with both signs.

const benchN = 4096

func benchMomenta(n int) []float32 {
	r := NewRand(1, 1)
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = (r.Float32() - 0.5) * 2e-6
	}
	return xs
}

var benchFormats = []string{"e2m3b26", "e4m3b28", "e5m10b24", "fp32"} // widths 6, 8, 16, 32

func reportValues(b *testing.B, perOp int) {
	b.ReportMetric(float64(perOp)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range benchFormats {
		f := MustParseFormat(name)
		xs := benchMomenta(benchN)
		v := NewVector(f, benchN)
		v.EncodeRange(0, xs, nil)
		codes := make([]uint32, benchN)
		f.EncodeSlice(codes, xs, nil)
		dst := make([]float32, benchN)
		b.Run(fmt.Sprintf("packed/%d", f.Bits()), func(b *testing.B) {
			for b.Loop() {
				v.DecodeRange(dst, 0)
			}
			reportValues(b, benchN)
		})
		b.Run(fmt.Sprintf("slice/%d", f.Bits()), func(b *testing.B) {
			for b.Loop() {
				f.DecodeSlice(dst, codes)
			}
			reportValues(b, benchN)
		})
		b.Run(fmt.Sprintf("scalar/%d", f.Bits()), func(b *testing.B) {
			for b.Loop() {
				for i, c := range codes {
					dst[i] = f.Decode(c)
				}
			}
			reportValues(b, benchN)
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range benchFormats {
		xs := benchMomenta(benchN)
		codes := make([]uint32, benchN)
		for _, mode := range []Rounding{NearestEven, Stochastic, TowardZero} {
			f := MustParseFormat(name)
			f.Rounding = mode
			r := NewRand(2, 2)
			b.Run(fmt.Sprintf("%v/%d", mode, f.Bits()), func(b *testing.B) {
				for b.Loop() {
					f.EncodeSlice(codes, xs, &r)
				}
				reportValues(b, benchN)
			})
		}
		f := MustParseFormat(name)
		v := NewVector(f, benchN)
		b.Run(fmt.Sprintf("packed-nearest-even/%d", f.Bits()), func(b *testing.B) {
			for b.Loop() {
				v.EncodeRange(0, xs, nil)
			}
			reportValues(b, benchN)
		})
	}
}

// BenchmarkStep is the fused decode–update–encode momentum step.
func BenchmarkStep(b *testing.B) {
	for _, name := range benchFormats {
		for _, mode := range []Rounding{NearestEven, Stochastic} {
			f := MustParseFormat(name)
			f.Rounding = mode
			v := NewVector(f, benchN)
			v.EncodeRange(0, benchMomenta(benchN), nil)
			g := benchMomenta(benchN)
			for i := range g {
				g[i] *= 30 // gradients are larger than momenta
			}
			mOut := make([]float32, benchN)
			r := NewRand(3, 3)
			b.Run(fmt.Sprintf("%v/%d", mode, f.Bits()), func(b *testing.B) {
				for b.Loop() {
					v.Step(0, g, 1e-3, &r, mOut)
				}
				reportValues(b, benchN)
			})
		}
	}
}

// BenchmarkSearch is the whole encoding search on one layer's trace of
// 2048 sampled weights × 100 steps, 4..16 bits, with stochastic variants.
func BenchmarkSearch(b *testing.B) {
	tr := []Trace{syntheticTrace(2048, 100, 1)}
	var candidates int
	for b.Loop() {
		res, err := Search(tr, SearchOptions{Stochastic: true, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		candidates = len(res.Ranking)
	}
	b.ReportMetric(float64(candidates), "candidates")
	b.ReportMetric(float64(candidates)*2048*100*float64(b.N)/b.Elapsed().Seconds(), "value-steps/s")
}
