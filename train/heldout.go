package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/sensors"
)

// subset is a view of some examples of a dataset.
type subset struct {
	sensors.Dataset
	idx []int
}

func (s subset) Len() int                         { return len(s.idx) }
func (s subset) Example(i int, dst []float32) int { return s.Dataset.Example(s.idx[i], dst) }

// HeldOut draws n examples of ds (seeded; sorted) to score the momentum
// encodings on while they are kept out of training (Batcher.Exclude), and
// returns their indices and the view of them.
func HeldOut(ds sensors.Dataset, n int, seed uint64) ([]int, sensors.Dataset) {
	n = min(n, ds.Len())
	r := rand.New(rand.NewPCG(seed, 0x686f6c64)) // "hold"
	// A copy, so the permutation of the whole set (8 bytes per example)
	// is garbage at once rather than kept alive by the slice.
	idx := slices.Clone(r.Perm(ds.Len())[:n])
	slices.Sort(idx)
	return idx, subset{ds, idx}
}

// Score is the mean softmax cross-entropy and the accuracy of net on the
// labelled examples of ds, with the batch-norm statistics as they are.
func Score(ctx context.Context, net *bnn.Network, ds sensors.Dataset, threads int) (bop.Score, error) {
	batch := net.Options().Batch
	size := ds.Shape().Size()
	x, labels := net.Input(), net.Labels()
	if err := checkShape(ds, net); err != nil {
		return bop.Score{}, err
	}
	c, outs := len(net.Classes()), net.Options().Outputs
	pred := make([]int32, batch)
	var loss float64
	correct, total := 0, 0
	for start := 0; start < ds.Len(); start += batch {
		if err := ctx.Err(); err != nil {
			return bop.Score{}, err
		}
		m := min(batch, ds.Len()-start)
		for r := 0; r < m; r++ {
			labels[r] = int32(ds.Example(start+r, x[r*size:(r+1)*size]))
		}
		if err := net.Evaluate(m, pred); err != nil {
			return bop.Score{}, err
		}
		z := net.Logits(m)
		for r := 0; r < m; r++ {
			y := labels[r]
			if y < 0 {
				continue
			}
			loss += bnn.CrossEntropy(z[r*outs:r*outs+c], int(y))
			total++
			if pred[r] == y {
				correct++
			}
		}
	}
	if total == 0 {
		return bop.Score{}, errors.New("held-out data has no labelled examples")
	}
	return bop.Score{Loss: loss / float64(total), Accuracy: float64(correct) / float64(total), N: total}, nil
}

// Scorer is the evaluator bop.Select races on: batch-norm statistics
// re-estimated on statBatches training batches (as before every test
// evaluation), then Score on the held-out view.
func Scorer(ctx context.Context, net *bnn.Network, trainDs, held sensors.Dataset, threads, statBatches int, seed uint64) func() (bop.Score, error) {
	// One batcher rewound before every score deals the batches
	// RefreshStatistics would, without a new order of the whole data set
	// (8 bytes per example) for each of the race's evaluations.
	var stats *Batcher
	var start Mark
	return func() (bop.Score, error) {
		if statBatches > 0 {
			if stats == nil {
				stats = NewBatcher(trainDs, net, threads, seed^0x5ba7)
				start = stats.Mark()
			}
			stats.Rewind(start)
			if err := net.EstimateStatistics(statBatches, stats.NextAcrossEpochs); err != nil {
				return bop.Score{}, fmt.Errorf("held-out score: %w", err)
			}
		}
		return Score(ctx, net, held, threads)
	}
}
