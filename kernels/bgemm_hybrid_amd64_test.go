//go:build !purego

package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/cpuid/v2"
)

func hasAVX512(tb testing.TB) bool {
	return cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512DQ, cpuid.AVX512VL,
		cpuid.AVX512VPOPCNTDQ, cpuid.BMI2)
}

// BenchmarkBGemmHybrid compares the avx512 BGemm (hybrid blocks) with
// avx512vector's (vector blocks only), one thread.
func BenchmarkBGemmHybrid(b *testing.B) {
	if !hasAVX512(b) {
		b.Skip("this CPU has no AVX-512 VPOPCNTQ")
	}
	for _, shape := range [][3]int{{100, 2048, 2048}, {256, 1024, 1024}} {
		m, n, k := shape[0], shape[1], shape[2]
		r := rand.New(rand.NewPCG(1, uint64(k)))
		kw := Words(k)
		a, bb := randBits(r, m, k, kw), randBits(r, n, k, kw)
		c := make([]int32, m*n)
		for _, v := range []struct {
			name  string
			bgemm func(c []int32, a, b []uint64, m, n, kw, k int)
		}{{"vector", bgemmVectorAVX512}, {"hybrid", bgemmAVX512}} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", v.name, m, n, k), func(b *testing.B) {
				for b.Loop() {
					v.bgemm(c, a, bb, m, n, kw, k)
				}
				b.ReportMetric(float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "gbops")
			})
		}
	}
}

// BenchmarkBGemmBlock times the microkernels alone on warm panels (100
// rows, 32 words, one k-block): gbops counts 32 columns for the vector
// block and 34 for the hybrid one.
func BenchmarkBGemmBlock(b *testing.B) {
	if !hasAVX512(b) {
		b.Skip("this CPU has no AVX-512 VPOPCNTQ")
	}
	const m, words = 100, 32
	r := rand.New(rand.NewPCG(5, 6))
	a := randBits(r, m, words*64, words)
	panels := make([]uint64, 4*hybridPanelStride)
	scalarB := randBits(r, 2, words*64, words) // the scalar columns' rows
	for i := range panels {
		panels[i] = r.Uint64()
	}
	const ldc = 2048
	c := make([]int32, m*ldc)
	b.Run("vector", func(b *testing.B) {
		for b.Loop() {
			bgemmBlockAVX512(&c[32*7], ldc, &a[0], words, &panels[0], words, m, ^uint32(0), words*64, 2)
		}
		b.ReportMetric(float64(m*32*words*64)*float64(b.N)/b.Elapsed().Seconds()/1e9, "gbops")
	})
	b.Run("hybrid", func(b *testing.B) {
		for b.Loop() {
			bgemmBlockHybridAVX512(&c[34*7], ldc, &a[0], words, &panels[0], words, m, words*64, 2, &scalarB[0], &c[34*7+32])
		}
		b.ReportMetric(float64(m*hybridCols*words*64)*float64(b.N)/b.Elapsed().Seconds()/1e9, "gbops")
	})
}

// TestBGemmHybridAndVectorBlocks checks the avx512 (hybrid blocks where
// they pay) and avx512vector BGemm, plain and scaled, and the avx512 GEMM
// with every possible number of hybrid blocks, against generic: column
// counts around multiples of the 34-column hybrid block (so hybrid blocks
// and vector blocks of every width after them run), row counts with every
// tail of 4, and k over 1..300 plus several 64-word k-blocks (the
// accumulating modes).
func TestBGemmHybridAndVectorBlocks(t *testing.T) {
	if !hasAVX512(t) {
		t.Skip("this CPU has no AVX-512 VPOPCNTQ")
	}
	prevImpl := Impl()
	defer func() { _ = Use(prevImpl) }()
	ns := []int{34, 35, 36, 42, 43, 66, 67, 68, 69, 70, 101, 102, 103, 33, 1}
	r := rand.New(rand.NewPCG(21, 22))
	for i, k := range kRange() {
		m, n := 1+r.IntN(10), ns[i%len(ns)]
		kw := Words(k) + r.IntN(2)
		a := misalignedU64(randBits(r, m, k, kw), 1+r.IntN(7))
		b := misalignedU64(randBits(r, n, k, kw), 1+r.IntN(7))
		want := make([]int32, m*n)
		bgemmGeneric(want, a, b, m, n, kw, k)
		check := func(what string, c []int32, whole []int32) {
			t.Helper()
			checkGuardsI32(t, what, whole)
			for j := range want {
				if c[j] != want[j] {
					t.Fatalf("%s: c[%d,%d] = %d, generic %d", what, j/n, j%n, c[j], want[j])
				}
			}
		}
		for h := 0; h <= n/hybridCols; h++ {
			whole, c := guardedI32(m * n)
			bgemmMixedAVX512(c, a, b, m, n, kw, k, h)
			check(fmt.Sprintf("%d hybrid blocks: m=%d n=%d kw=%d k=%d", h, m, n, kw, k), c, whole)
		}
		scale, shift := randFloats(r, n), randFloats(r, n)
		wantF := make([]float32, m*n)
		bgemmScaledGeneric(wantF, a, b, m, n, kw, k, scale, shift)
		for _, name := range []string{"avx512", "avx512vector"} {
			if err := Use(name); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("%s BGemm m=%d n=%d kw=%d k=%d", name, m, n, kw, k)
			whole, c := guardedI32(m * n)
			BGemm(c, a, b, m, n, kw, k)
			check(what, c, whole)
			wholeF, cf := guardedF32(m * n)
			BGemmScaled(cf, a, b, m, n, kw, k, scale, shift)
			checkGuardsF32(t, what+" (scaled)", wholeF)
			for j := range wantF {
				if cf[j] != wantF[j] {
					t.Fatalf("%s: BGemmScaled c[%d,%d] = %v, generic %v", what, j/n, j%n, cf[j], wantF[j])
				}
			}
		}
	}
}

func TestHybridBlocks(t *testing.T) {
	for n, want := range map[int]int{2048: 60, 1024: 28, 64: 0, 68: 2, 34: 1, 33: 0, 1: 0, 0: 0} {
		if got := hybridBlocks(n); got != want {
			t.Errorf("hybridBlocks(%d) = %d, want %d", n, got, want)
		}
	}
}
