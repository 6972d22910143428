// Package kbench defines the kernel benchmarks shared by the kernels
// package's `go test -bench` benchmarks and `bnnd bench`: the shapes named
// in the project's issue, the operation counts behind the gbops figures,
// and a timing loop. Its JSON records match bench/cref's, so the two can be
// compared line by line.
package kbench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bnnd/bnnd/kernels"
)

// Case is one kernel on one shape.
type Case struct {
	Kernel string // bgemm, bgemmscaled, bconv3x3, bingradinput, bingradweight, realgradweight, realbingemm
	Shape  string // e.g. 256x1024x1024 (m×n×k) or 32x14x14x64->64 (batch×h×w×c→cout)
	// Ops is the number of multiply-accumulates (binary or float) of one
	// call: gbops = Ops / seconds / 1e9.
	Ops float64
	// Setup allocates the operands (random, fixed seed) and returns one
	// call of the kernel, split across threads goroutines with
	// kernels.Parallel.
	Setup func(threads int) func()
}

// Result is one measurement, printed as one JSON object by bnnd bench.
type Result struct {
	Impl    string  `json:"impl"`
	Kernel  string  `json:"kernel"`
	Shape   string  `json:"shape"`
	Threads int     `json:"threads"`
	Seconds float64 `json:"seconds"` // best time of one call
	GBops   float64 `json:"gbops"`
}

func randBits(r *rand.Rand, rows, k int) []uint64 {
	kw := kernels.Words(k)
	s := make([]uint64, rows*kw)
	for i := 0; i < rows; i++ {
		for w := 0; w < kw; w++ {
			v := r.Uint64()
			if rem := k - 64*w; rem < 64 {
				v &= 1<<rem - 1
			}
			s[i*kw+w] = v
		}
	}
	return s
}

func randFloats(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// grain splits rows into one chunk per thread: every kernel computes each
// output the same way whatever block it falls in, so the results do not
// depend on the split, and one big call per thread keeps per-call set-up
// (such as the GEMM's panel packing) out of the figures.
func grain(rows, threads int) int {
	threads = max(threads, 1)
	return (rows + threads - 1) / threads
}

// split is one call of body over rows [0, rows), split across threads
// goroutines by kernels.Parallel in chunks of chunk rows.
func split(threads, rows, chunk int, body func(lo, hi int)) func() {
	return func() { kernels.Parallel(threads, rows, chunk, body) }
}

func gemmCase(m, n, k int) []Case {
	shape := fmt.Sprintf("%dx%dx%d", m, n, k)
	ops := float64(m) * float64(n) * float64(k)
	kw := kernels.Words(k)
	return []Case{
		{Kernel: "bgemm", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(1, uint64(k)))
			a, b, c := randBits(r, m, k), randBits(r, n, k), make([]int32, m*n)
			return split(threads, m, grain(m, threads), func(lo, hi int) {
				kernels.BGemm(c[lo*n:hi*n], a[lo*kw:hi*kw], b, hi-lo, n, kw, k)
			})
		}},
		{Kernel: "bgemmscaled", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(2, uint64(k)))
			a, b, c := randBits(r, m, k), randBits(r, n, k), make([]float32, m*n)
			scale, shift := randFloats(r, n), randFloats(r, n)
			return split(threads, m, grain(m, threads), func(lo, hi int) {
				kernels.BGemmScaled(c[lo*n:hi*n], a[lo*kw:hi*kw], b, hi-lo, n, kw, k, scale, shift)
			})
		}},
	}
}

func convCase(batch, hw, c, cout int) Case {
	return Case{
		Kernel: "bconv3x3",
		Shape:  fmt.Sprintf("%dx%dx%dx%d->%d", batch, hw, hw, c, cout),
		Ops:    float64(batch) * float64(hw*hw) * float64(cout) * float64(9*c),
		Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(3, uint64(hw)))
			cw := kernels.Words(c)
			src := randBits(r, batch*hw*hw, c)
			wts := randBits(r, cout, 9*cw*64)
			out := make([]int32, batch*hw*hw*cout)
			scratch := make([]uint64, kernels.BConv3x3ScratchWords(batch, hw, hw, c))
			per := hw * hw
			// One image per chunk: each has its own scratch rows.
			return split(threads, batch, 1, func(lo, hi int) {
				kernels.BConv3x3(out[lo*per*cout:hi*per*cout], src[lo*per*cw:hi*per*cw], wts,
					hi-lo, hw, hw, c, cout, scratch[lo*per*9*cw:hi*per*9*cw])
			})
		},
	}
}

// im2colCase times the gather that BConv3x3 runs before its GEMM, to show
// what share of the convolution it takes (Ops: words written).
func im2colCase(batch, hw, c int) Case {
	cw := kernels.Words(c)
	return Case{
		Kernel: "im2col3x3bits",
		Shape:  fmt.Sprintf("%dx%dx%dx%d", batch, hw, hw, c),
		Ops:    float64(batch * hw * hw * 9 * cw),
		Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(8, uint64(hw)))
			src := randBits(r, batch*hw*hw, c)
			dst := make([]uint64, kernels.BConv3x3ScratchWords(batch, hw, hw, c))
			per := hw * hw
			return split(threads, batch, 1, func(lo, hi int) {
				kernels.Im2Col3x3Bits(dst[lo*per*9*cw:hi*per*9*cw], src[lo*per*cw:hi*per*cw], hi-lo, hw, hw, c)
			})
		},
	}
}

func backwardCases(m, n, k int) []Case {
	shape := fmt.Sprintf("%dx%dx%d", m, n, k)
	ops := float64(m) * float64(n) * float64(k)
	return []Case{
		{Kernel: "bingradinput", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(4, uint64(k)))
			dy, w, dx := randFloats(r, m*n), randBits(r, n, k), make([]float32, m*k)
			return split(threads, m, grain(m, threads), func(lo, hi int) {
				kernels.BinGradInput(dx[lo*k:hi*k], dy[lo*n:hi*n], w, hi-lo, n, k)
			})
		}},
		{Kernel: "bingradweight", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(5, uint64(k)))
			dy, a, g := randFloats(r, m*n), randBits(r, m, k), make([]float32, n*k)
			// Tiles of 64 output rows × all k, as the Bop step takes them.
			return split(threads, n, max(64, grain(n, threads)), func(lo, hi int) {
				kernels.BinGradWeightTile(g[lo*k:hi*k], dy, a, m, n, k, lo, hi, 0, k)
			})
		}},
		{Kernel: "realgradweight", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(6, uint64(k)))
			dy, x, g := randFloats(r, m*n), randFloats(r, m*k), make([]float32, n*k)
			return split(threads, n, max(64, grain(n, threads)), func(lo, hi int) {
				kernels.RealGradWeightTile(g[lo*k:hi*k], dy, x, m, n, k, lo, hi, 0, k)
			})
		}},
		{Kernel: "realbingemm", Shape: shape, Ops: ops, Setup: func(threads int) func() {
			r := rand.New(rand.NewPCG(7, uint64(k)))
			x, w, c := randFloats(r, m*k), randBits(r, n, k), make([]float32, m*n)
			return split(threads, m, grain(m, threads), func(lo, hi int) {
				kernels.RealBinGemm(c[lo*n:hi*n], x[lo*k:hi*k], w, hi-lo, n, k)
			})
		}},
	}
}

// Cases returns every benchmark: binary GEMM 256×1024×1024 and
// 100×2048×2048; 3×3 binary conv 64→64 channels on 14×14 and 28×28,
// batch 32 (and its im2col gather alone); and the backward kernels (and the first layer's real×binary
// product) on 100×2048×2048.
func Cases() []Case {
	var cs []Case
	cs = append(cs, gemmCase(256, 1024, 1024)...)
	cs = append(cs, gemmCase(100, 2048, 2048)...)
	cs = append(cs, convCase(32, 14, 64, 64), convCase(32, 28, 64, 64))
	cs = append(cs, im2colCase(32, 14, 64), im2colCase(32, 28, 64))
	cs = append(cs, backwardCases(100, 2048, 2048)...)
	return cs
}

// Measure runs call at least 3 times and for at least minTime, and returns
// the best single time (the least disturbed by other processes).
func Measure(call func(), minTime time.Duration) time.Duration {
	call() // warm caches and page in the operands
	best := time.Duration(1<<63 - 1)
	start := time.Now()
	for reps := 0; reps < 3 || time.Since(start) < minTime; reps++ {
		t0 := time.Now()
		call()
		if d := time.Since(t0); d < best {
			best = d
		}
	}
	return best
}

// Run measures one case with the active implementation.
func Run(c Case, threads int, minTime time.Duration) Result {
	d := Measure(c.Setup(threads), minTime)
	return Result{
		Impl: kernels.Impl(), Kernel: c.Kernel, Shape: c.Shape, Threads: max(threads, 1),
		Seconds: d.Seconds(), GBops: c.Ops / d.Seconds() / 1e9,
	}
}
