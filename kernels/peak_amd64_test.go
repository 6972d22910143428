//go:build !purego

package kernels

import (
	"testing"

	"github.com/klauspost/cpuid/v2"
)

// BenchmarkAVX512StepPeak measures the ceiling for the AVX-512 GEMM: one
// step (XOR, VPOPCNTQ, add) per 512 binary MACs is the fewest instructions
// any VPOPCNTQ kernel needs, and here the steps run with no loads or
// stores at all. gbops is in the units of the GEMM benchmarks, so
// BenchmarkBGemm/avx512 ÷ this is the share of the peak the GEMM reaches.
func BenchmarkAVX512StepPeak(b *testing.B) {
	if !cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512VPOPCNTDQ) {
		b.Skip("this CPU has no AVX-512 VPOPCNTQ")
	}
	const iters = 1 << 16
	for b.Loop() {
		peakStepsAVX512(iters)
	}
	b.ReportMetric(float64(iters)*16*512*float64(b.N)/b.Elapsed().Seconds()/1e9, "gbops")
}
