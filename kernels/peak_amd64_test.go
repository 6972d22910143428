//go:build !purego

package kernels

import (
	"testing"

	"github.com/klauspost/cpuid/v2"
)

// BenchmarkAVX512StepPeak measures the ceiling for a vector-only AVX-512
// GEMM: one step (XOR, VPOPCNTQ, add) per 512 binary MACs is the fewest
// instructions any VPOPCNTQ kernel needs, and here the steps run with no
// loads or stores at all. gbops is in the units of the GEMM benchmarks, so
// BenchmarkBGemm/avx512vector ÷ this is the share of the peak the vector
// GEMM reaches. The hybrid avx512 GEMM can pass it: see below.
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

// BenchmarkHybridStepPeak asks whether scalar POPCNTQ steps on the integer
// ports add throughput to the vector steps of BenchmarkAVX512StepPeak:
// each iteration runs the same 16 vector steps plus S scalar steps
// (MOVQ, XORQ, POPCNTQ, ADDQ per 64 MACs), and gbops counts both streams.
// scalar-only is the integer side's ceiling on its own. On Zen 5 (EPYC,
// family 0x1A) the iteration time stays that of S=0 up to S=12 (+9–10%
// gbops), S=16 adds little more: the integer work rides in dispatch slots
// the vector pipes leave free. bgemm_hybrid_amd64.s builds on this.
func BenchmarkHybridStepPeak(b *testing.B) {
	if !cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512VPOPCNTDQ) {
		b.Skip("this CPU has no AVX-512 VPOPCNTQ")
	}
	const iters = 1 << 16
	cases := []struct {
		name   string
		scalar int // scalar steps per iteration
		vector int // vector steps per iteration
		run    func(int)
	}{
		{"S=0", 0, 16, peakStepsAVX512},
		{"S=2", 2, 16, peakStepsHybrid2},
		{"S=4", 4, 16, peakStepsHybrid4},
		{"S=6", 6, 16, peakStepsHybrid6},
		{"S=8", 8, 16, peakStepsHybrid8},
		{"S=12", 12, 16, peakStepsHybrid12},
		{"S=16", 16, 16, peakStepsHybrid16},
		{"scalar-only", 16, 0, peakStepsScalar},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.run(iters)
			}
			macs := float64(iters) * float64(c.vector*512+c.scalar*64) * float64(b.N)
			b.ReportMetric(macs/b.Elapsed().Seconds()/1e9, "gbops")
		})
	}
}
