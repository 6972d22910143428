// Package train is the epoch-based training engine behind `bnnd train` and
// `bnnd calibrate`: shuffled batches of a sensors.Dataset dealt into a
// bnn.Network's input buffers, epochs of training steps, and accuracy on a
// test set. Printing, progress bars and flags stay with the command.
//
// Everything is deterministic for a given seed and thread count: the
// shuffle of epoch e depends on (seed, e) only, and the decoding of a batch
// is split over threads without changing which example lands in which row.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/kernels"
	"github.com/bnnd/bnnd/sensors"
)

// ErrEpochEnd is what Batcher.Next returns once an epoch has no full batch
// left; the Batcher has then already reshuffled for the next epoch.
var ErrEpochEnd = errors.New("end of epoch")

// shuffleStream is the second PCG word of every shuffle, so the shuffle
// stream differs from other generators seeded with the same seed (weights,
// stochastic rounding). Changing it changes every training run.
const shuffleStream = 0x5368756666 // "Shuff"

// Batcher deals shuffled batches of a dataset into a network's Input and
// Labels buffers: each epoch visits the examples in a fresh order, skips
// unlabelled ones, and drops the partial batch at the end.
type Batcher struct {
	ds      sensors.Dataset
	net     *bnn.Network
	threads int
	seed    uint64
	order   []int
	pos     int
	epoch   int
	skip    []bool // examples held out of training for now (Exclude)
}

// NewBatcher deals batches of net.Options().Batch examples from ds into
// net, decoding each batch on threads workers (at least 1), in an order
// drawn from seed.
func NewBatcher(ds sensors.Dataset, net *bnn.Network, threads int, seed uint64) *Batcher {
	b := &Batcher{ds: ds, net: net, threads: max(threads, 1), seed: seed, order: make([]int, ds.Len())}
	b.shuffle()
	return b
}

// Epoch is the number of epochs completed (the one Next is dealing from,
// counted from 0).
func (b *Batcher) Epoch() int { return b.epoch }

func (b *Batcher) shuffle() {
	for i := range b.order {
		b.order[i] = i
	}
	r := rand.New(rand.NewPCG(b.seed, uint64(b.epoch)+shuffleStream))
	r.Shuffle(len(b.order), func(i, j int) { b.order[i], b.order[j] = b.order[j], b.order[i] })
	b.pos = 0
}

// Next fills the first rows of the network's Input and Labels with a full
// batch of labelled examples and returns the batch size. When the epoch has
// too few examples left for a full batch (the rest are dropped) it
// reshuffles for the next epoch and returns ErrEpochEnd; the following call
// deals from the new epoch.
func (b *Batcher) Next() (int, error) {
	batch := b.net.Options().Batch
	size := b.ds.Shape().Size()
	x, labels := b.net.Input(), b.net.Labels()
	if err := checkShape(b.ds, b.net); err != nil {
		return 0, err
	}
	m := 0
	for m < batch {
		if b.pos+(batch-m) > len(b.order) {
			b.epoch++
			b.shuffle()
			return 0, ErrEpochEnd
		}
		// Decode the batch in parallel; unlabelled examples are skipped
		// (their slot is refilled by the next loop round).
		idx := b.order[b.pos : b.pos+batch-m]
		b.pos += len(idx)
		base := m
		kernels.Parallel(b.threads, len(idx), (len(idx)+b.threads-1)/b.threads, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row := base + r
				if b.skip != nil && b.skip[idx[r]] {
					labels[row] = -1
					continue
				}
				labels[row] = int32(b.ds.Example(idx[r], x[row*size:(row+1)*size]))
			}
		})
		for r := base; r < base+len(idx); r++ {
			if labels[r] >= 0 {
				if m != r {
					copy(x[m*size:(m+1)*size], x[r*size:(r+1)*size])
					labels[m] = labels[r]
				}
				m++
			}
		}
	}
	return m, nil
}

// Mark is a position in a Batcher's stream.
type Mark struct{ epoch, pos int }

// Mark returns the current position, for Rewind.
func (b *Batcher) Mark() Mark { return Mark{b.epoch, b.pos} }

// Rewind makes the stream deal again from m: the order of an epoch depends
// only on the seed and the epoch, so it is drawn again rather than kept.
func (b *Batcher) Rewind(m Mark) {
	if m.epoch != b.epoch {
		b.epoch = m.epoch
		b.shuffle()
	}
	b.pos = m.pos
}

// Exclude keeps the examples idx out of the batches until Exclude(nil), as
// if unlabelled: a held-out slice for choosing the momentum encoding that
// goes back into training afterwards.
func (b *Batcher) Exclude(idx []int) {
	if idx == nil {
		b.skip = nil
		return
	}
	b.skip = make([]bool, b.ds.Len())
	for _, i := range idx {
		b.skip[i] = true
	}
}

// errNoBatch means an epoch ended before it dealt a single full batch.
var errNoBatch = errors.New("a whole epoch holds no full batch of labelled examples")

// NextAcrossEpochs is Next carrying on with the next epoch at the end of
// one, for steps that do not care about epochs (calibration warm-up).
func (b *Batcher) NextAcrossEpochs() (int, error) {
	m, err := b.Next()
	if errors.Is(err, ErrEpochEnd) {
		m, err = b.Next()
		if errors.Is(err, ErrEpochEnd) {
			return 0, errNoBatch
		}
	}
	return m, err
}

// checkShape makes sure examples of ds fill rows of net's input exactly,
// since a mismatch would write past a row or leave part of it stale.
func checkShape(ds sensors.Dataset, net *bnn.Network) error {
	if got, want := ds.Shape().Size(), net.InputShape().Size(); got != want {
		return fmt.Errorf("dataset examples have %d values (shape %v), the network takes %d (%v)", got, ds.Shape(), want, net.InputShape())
	}
	return nil
}

// EpochStats are the running totals of one epoch's training steps.
type EpochStats struct {
	Steps   int           // training steps taken
	Samples int           // examples trained on
	Correct int           // examples whose prediction (before the step) matched the label
	LossSum float64       // sum over examples of the softmax cross-entropy
	Time    time.Duration // time in batch decoding and training steps
}

// Loss is the mean loss per example, 0 before the first step.
func (s EpochStats) Loss() float64 {
	if s.Samples == 0 {
		return 0
	}
	return s.LossSum / float64(s.Samples)
}

// Accuracy is the fraction of examples predicted right, 0 before the first step.
func (s EpochStats) Accuracy() float64 {
	if s.Samples == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.Samples)
}

// RunEpoch trains net with opt on batches from b until the epoch ends. After
// each step it calls onStep (if not nil) with the totals so far, e.g. for a
// progress bar. It stops early with ctx's error when ctx is done.
func RunEpoch(ctx context.Context, net *bnn.Network, opt bnn.Optimizer, b *Batcher, onStep func(sofar EpochStats)) (EpochStats, error) {
	var s EpochStats
	for {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		t0 := time.Now()
		m, err := b.Next()
		if errors.Is(err, ErrEpochEnd) {
			return s, nil
		}
		if err != nil {
			return s, err
		}
		res, err := net.TrainStep(m, opt)
		if err != nil {
			return s, fmt.Errorf("training step %d of epoch %d: %w", s.Steps+1, b.Epoch()+1, err)
		}
		s.Time += time.Since(t0)
		s.Steps++
		s.Samples += m
		s.Correct += res.Correct
		s.LossSum += res.Loss * float64(m)
		if onStep != nil {
			onStep(s)
		}
	}
}

// RefreshStatistics sets net's batch-norm statistics from batches batches
// of ds (shuffled with seed, not touching any training batcher) before an
// evaluation; see bnn.Network.EstimateStatistics. batches 0 keeps the
// running averages of training.
func RefreshStatistics(net *bnn.Network, ds sensors.Dataset, threads, batches int, seed uint64) error {
	if batches <= 0 {
		return nil
	}
	b := NewBatcher(ds, net, threads, seed^0x5ba7)
	return net.EstimateStatistics(batches, b.NextAcrossEpochs)
}

// Evaluate returns the accuracy of net on the labelled examples of ds,
// decoding each batch on threads workers. It is an error when ds has no
// labelled example.
func Evaluate(ctx context.Context, net *bnn.Network, ds sensors.Dataset, threads int) (float64, error) {
	c, err := Confusion(ctx, net, ds, threads)
	if err != nil {
		return 0, err
	}
	return c.Accuracy(), nil
}

// ConfusionMatrix counts predictions by true class: Counts[label][predicted].
type ConfusionMatrix struct {
	Classes []string
	Counts  [][]int
}

// Total is the number of examples counted.
func (m ConfusionMatrix) Total() int {
	n := 0
	for _, row := range m.Counts {
		for _, k := range row {
			n += k
		}
	}
	return n
}

// Accuracy is the fraction of examples predicted as their label.
func (m ConfusionMatrix) Accuracy() float64 {
	right := 0
	for i, row := range m.Counts {
		right += row[i]
	}
	return float64(right) / float64(max(m.Total(), 1))
}

// Recall is, per class, the fraction of its examples predicted as it;
// NaN for a class without examples.
func (m ConfusionMatrix) Recall() []float64 {
	out := make([]float64, len(m.Counts))
	for i, row := range m.Counts {
		n := 0
		for _, k := range row {
			n += k
		}
		out[i] = math.NaN()
		if n > 0 {
			out[i] = float64(row[i]) / float64(n)
		}
	}
	return out
}

// Confusion runs net over the labelled examples of ds, decoding each batch
// on threads workers, and counts its predictions by true class. It is an
// error when ds has no labelled example.
func Confusion(ctx context.Context, net *bnn.Network, ds sensors.Dataset, threads int) (ConfusionMatrix, error) {
	threads = max(threads, 1)
	batch := net.Options().Batch
	size := ds.Shape().Size()
	x, labels := net.Input(), net.Labels()
	classes := net.Classes()
	cm := ConfusionMatrix{Classes: classes, Counts: make([][]int, len(classes))}
	for i := range cm.Counts {
		cm.Counts[i] = make([]int, len(classes))
	}
	if err := checkShape(ds, net); err != nil {
		return cm, err
	}
	pred := make([]int32, batch)
	for start := 0; start < ds.Len(); start += batch {
		if err := ctx.Err(); err != nil {
			return cm, err
		}
		m := min(batch, ds.Len()-start)
		kernels.Parallel(threads, m, (m+threads-1)/threads, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				labels[r] = int32(ds.Example(start+r, x[r*size:(r+1)*size]))
			}
		})
		if err := net.Evaluate(m, pred); err != nil {
			return cm, err
		}
		for r := 0; r < m; r++ {
			if l := labels[r]; l >= 0 && int(l) < len(classes) {
				cm.Counts[l][pred[r]]++
			}
		}
	}
	if cm.Total() == 0 {
		return cm, errors.New("test data has no labelled examples")
	}
	return cm, nil
}

// SumCounters adds up per-layer counters.
func SumCounters(cs []bop.Counters) bop.Counters {
	var t bop.Counters
	for _, c := range cs {
		t.Add(c)
	}
	return t
}
