package bop

import (
	"fmt"
	"testing"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// BenchmarkTrainStep is one Bop training step of mlp-l (784-2048-2048-10,
// batch 100) on random data; samples/s = 100 / (ns/op · 1e-9).
func BenchmarkTrainStep(b *testing.B) {
	for _, format := range []string{"fp32", "e4m3b28", "e3m2b24s"} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads%d", format, threads), func(b *testing.B) {
				net := testNet(&testing.T{}, []int{2048, 2048}, 784, 10, 100, threads, 1)
				o, err := New(net, Config{Formats: []fp.Format{fp.MustParseFormat(format)}})
				if err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := net.TrainStep(100, o); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(100*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}

// BenchmarkFold is the fused Bop step (update, encode, flip test) on one
// 1024-wide tile row, by format; ns/op ÷ 1024 = ns per momentum.
func BenchmarkFold(b *testing.B) {
	for _, format := range []string{"fp32", "fp16", "e4m3b28", "e3m2b24s", "e3m3b24"} {
		b.Run(format, func(b *testing.B) {
			net := testNet(&testing.T{}, []int{32}, 1024, 2, 2, 1, 1)
			o, err := New(net, Config{Formats: []fp.Format{fp.MustParseFormat(format)}})
			if err != nil {
				b.Fatal(err)
			}
			g := make([]float32, 32*1024)
			for i := range g {
				g[i] = float32(i%7-3) * 1e-6
			}
			tile := &bnn.WeightTile{Layer: 0, Row0: 0, Row1: 32, Col0: 0, Col1: 1024, Cols: 1024, Grad: g, Weights: net.Weights(0), RowWords: 16}
			for b.Loop() {
				o.FoldTile(0, tile)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32*1024), "ns/momentum")
		})
	}
}

// stepBenchFormats are the momentum encodings BenchmarkStep times: the
// widths that matter most (4–8 bits, stochastic 5 and 6) and up to 16.
var stepBenchFormats = []string{"e2m1b20s", "e2m2b21s", "e2m3b21s", "e3m2b24s", "e4m3b28", "e4m3b28s", "e5m6b24s", "e5m10b24s"}

// foldBench times StepBench's fold in ns per momentum.
func foldBench(b *testing.B, format string) {
	fold, momenta, err := StepBench(fp.MustParseFormat(format))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		fold()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*momenta), "ns/momentum")
}

// BenchmarkStep is the fused Bop step (update, encode, flip test) by step
// kernel and momentum format, with fp32 momenta (one Go loop, no kernel)
// alongside: compare ns/momentum of BenchmarkStep/fp32 and
// BenchmarkStep/<kernel>/<format> from the same run.
func BenchmarkStep(b *testing.B) {
	b.Run("fp32", func(b *testing.B) { foldBench(b, "fp32") })
	prev := fp.StepImpl()
	defer func() { _ = fp.UseStep(prev) }()
	for _, impl := range fp.StepImpls() {
		for _, format := range stepBenchFormats {
			b.Run(impl+"/"+format, func(b *testing.B) {
				if err := fp.UseStep(impl); err != nil {
					b.Fatal(err)
				}
				foldBench(b, format)
			})
		}
	}
}
