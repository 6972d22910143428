package bop

import (
	"math/rand/v2"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// StepBenchRows and StepBenchCols are the tile StepBench folds: the weight
// gradient tile bnn hands the optimizer (32 output rows × up to 1024 inputs).
const StepBenchRows, StepBenchCols = 32, 1024

// StepBench prepares the Bop step benchmark shared by BenchmarkStep and
// bnnd bench: a layer of 32×1024 weights with momenta in format, and one
// tile of its gradients (normal, σ = 3e-5, fixed seed) already folded 100
// times so the momenta have the size the gradients give them. fold runs the
// fused step (update, encode, flip test) of the tile once, with the step
// kernel active when it is called; momenta is the count it updates.
func StepBench(format fp.Format) (fold func(), momenta int, err error) {
	spec := bnn.Spec{Name: "stepbench", Hidden: []bnn.LayerSpec{{Kind: bnn.Dense, Units: StepBenchRows}}}
	net, err := bnn.New(spec, bnn.Shape{Height: 1, Width: 1, Channels: StepBenchCols}, []string{"a", "b"}, bnn.Options{Batch: 2, Threads: 1, Seed: 1})
	if err != nil {
		return nil, 0, err
	}
	o, err := New(net, Config{Formats: []fp.Format{format}, Seed: 1})
	if err != nil {
		return nil, 0, err
	}
	r := rand.New(rand.NewPCG(1, 1))
	g := make([]float32, StepBenchRows*StepBenchCols)
	for i := range g {
		g[i] = float32(r.NormFloat64() * 3e-5)
	}
	tile := &bnn.WeightTile{Layer: 0, Row0: 0, Row1: StepBenchRows, Col0: 0, Col1: StepBenchCols, Cols: StepBenchCols,
		Grad: g, Weights: net.Weights(0), RowWords: StepBenchCols / 64}
	fold = func() { o.FoldTile(0, tile) }
	for range 100 {
		fold()
	}
	return fold, len(g), nil
}
