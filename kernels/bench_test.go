package kernels_test

import (
	"testing"

	"github.com/bnnd/bnnd/kernels"
	"github.com/bnnd/bnnd/kernels/kbench"
)

// The benchmarks run every kbench case with every available
// implementation, one thread, as Benchmark<Kernel>/<impl>/<shape> so
// benchstat can compare implementations; b.ReportMetric adds gbops.
func BenchmarkBGemm(b *testing.B)          { benchKernel(b, "bgemm") }
func BenchmarkBGemmScaled(b *testing.B)    { benchKernel(b, "bgemmscaled") }
func BenchmarkBConv3x3(b *testing.B)       { benchKernel(b, "bconv3x3") }
func BenchmarkIm2Col3x3Bits(b *testing.B)  { benchKernel(b, "im2col3x3bits") }
func BenchmarkBinGradInput(b *testing.B)   { benchKernel(b, "bingradinput") }
func BenchmarkBinGradWeight(b *testing.B)  { benchKernel(b, "bingradweight") }
func BenchmarkRealGradWeight(b *testing.B) { benchKernel(b, "realgradweight") }
func BenchmarkRealBinGemm(b *testing.B)    { benchKernel(b, "realbingemm") }

func benchKernel(b *testing.B, kernel string) {
	prev := kernels.Impl()
	defer func() { _ = kernels.Use(prev) }()
	for _, impl := range kernels.Available() {
		for _, c := range kbench.Cases() {
			if c.Kernel != kernel {
				continue
			}
			b.Run(impl+"/"+c.Shape, func(b *testing.B) {
				if err := kernels.Use(impl); err != nil {
					b.Fatal(err)
				}
				call := c.Setup(1)
				b.ResetTimer()
				for b.Loop() {
					call()
				}
				b.ReportMetric(c.Ops*float64(b.N)/b.Elapsed().Seconds()/1e9, "gbops")
			})
		}
	}
}
