package bnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/bnnd/bnnd/kernels"
)

// Options size a Network's buffers and its parallelism.
type Options struct {
	Batch   int    // most examples per step; every buffer is sized for it
	Threads int    // worker goroutines for matmuls and gradient tiles (≥ 1)
	Seed    uint64 // initial weight signs
}

// RealParam is one real-valued parameter vector (batch-norm scale or shift)
// with the gradient of the last training step, for Adam.
type RealParam struct {
	Name  string
	Value []float32
	Grad  []float32
}

// WeightTile is one tile of a layer's weight gradient, handed to the
// Optimizer as soon as it is computed. Grad[(j−Row0)*(Col1−Col0)+(kk−Col0)]
// is ∂L/∂w[j][kk]. The momentum index of weight (j, kk) is j*Cols+kk. The
// Optimizer may flip bits of Weights in rows [Row0,Row1), bits [Col0,Col1)
// only: other workers own the other tiles.
type WeightTile struct {
	Layer      int
	Row0, Row1 int // output units
	Col0, Col1 int // inputs; Col0 is a multiple of 64
	Cols       int // inputs per row
	Grad       []float32
	Weights    []uint64 // the layer's packed weights, RowWords words per row
	RowWords   int
}

// Optimizer receives the weight-gradient tiles of a training step and, at its
// end, the real parameters with their gradients. FoldTile is called from up
// to Options.Threads goroutines at once, worker ∈ [0, Threads), each tile
// exactly once; the set of tiles and their bounds depend only on the shapes,
// so an Optimizer whose randomness is keyed by the tile is deterministic for
// any thread count.
type Optimizer interface {
	FoldTile(worker int, t *WeightTile)
	EndStep(params []RealParam)
}

// Tile sizes of the weight gradient: 32 output rows × up to 1024 inputs
// (128 KiB of float32 per worker) keeps a tile in L2 while it is folded into
// the momenta.
const (
	tileRows = 32
	tileCols = 1024
)

// layer is a dense block: binary weights → batch norm → sign (or softmax for
// the last one).
type layer struct {
	index     int
	in, out   int
	kw        int // words per weight row (= Words(in))
	ow        int // words per activation row (= Words(out))
	realInput bool
	last      bool
	w         []uint64 // out rows × kw words
	bn        batchNorm
	// Kept for the backward pass: 2 bits per activation.
	sign, mask []uint64 // batch rows × ow words
	// The real-input layer keeps its pre-activations (batch × out float32):
	// recomputing them costs a real×binary GEMM, the most expensive matmul of
	// the forward pass, while binary layers recompute theirs by popcount.
	kept     []float32
	rowTiles int
	colTiles int
}

// Network is a binarized network with its training buffers.
type Network struct {
	spec    Spec
	in      Shape
	classes []string
	opt     Options
	norm    Normalizer
	layers  []*layer

	x      []float32 // input batch, Batch × in.Size()
	labels []int32

	z      []float32 // pre-activations of one layer, Batch × widest
	dy, dx []float32 // gradient rows, Batch × widest
	ones   []float32 // identity batch-norm for BGemmScaled
	zeros  []float32
	tiles  [][]float32  // one gradient tile per worker
	wtiles []WeightTile // one descriptor per worker
	params []RealParam
}

// New builds a network for inputs of shape in and len(classes) classes, with
// random weight signs drawn from opt.Seed.
func New(spec Spec, in Shape, classes []string, opt Options) (*Network, error) {
	if in.Size() <= 0 {
		return nil, fmt.Errorf("bnn: input shape %v is empty", in)
	}
	if len(classes) < 2 {
		return nil, fmt.Errorf("bnn: need at least 2 classes, have %d", len(classes))
	}
	if opt.Batch < 1 {
		return nil, fmt.Errorf("bnn: batch size %d, want ≥ 1", opt.Batch)
	}
	if opt.Threads < 1 {
		opt.Threads = 1
	}
	n := &Network{spec: spec, in: in, classes: append([]string(nil), classes...), opt: opt}
	width := in.Size()
	sizes := []int{}
	for i, ls := range spec.Hidden {
		if ls.Kind != Dense {
			return nil, fmt.Errorf("bnn: model %q layer %d: %v layers are not supported yet", spec.Name, i+1, ls.Kind)
		}
		sizes = append(sizes, ls.Units)
	}
	sizes = append(sizes, len(classes))
	widest := width
	for i, out := range sizes {
		l := &layer{
			index: i, in: width, out: out,
			kw: kernels.Words(width), ow: kernels.Words(out),
			realInput: i == 0, last: i == len(sizes)-1,
		}
		l.w = make([]uint64, out*l.kw)
		l.bn = newBatchNorm(out)
		if l.realInput {
			l.kept = make([]float32, opt.Batch*out)
		}
		if !l.last {
			l.sign = make([]uint64, opt.Batch*l.ow)
			l.mask = make([]uint64, opt.Batch*l.ow)
		}
		l.rowTiles = (out + tileRows - 1) / tileRows
		l.colTiles = (width + tileCols - 1) / tileCols
		n.layers = append(n.layers, l)
		widest = max(widest, out)
		width = out
	}
	n.randomizeWeights(opt.Seed)
	n.x = make([]float32, opt.Batch*in.Size())
	n.labels = make([]int32, opt.Batch)
	n.z = make([]float32, opt.Batch*widest)
	n.dy = make([]float32, opt.Batch*widest)
	n.dx = make([]float32, opt.Batch*widest)
	n.ones = make([]float32, widest)
	n.zeros = make([]float32, widest)
	for i := range n.ones {
		n.ones[i] = 1
	}
	tileLen := tileRows * min(tileCols, maxIn(n.layers))
	n.tiles = make([][]float32, opt.Threads)
	for i := range n.tiles {
		n.tiles[i] = make([]float32, tileLen)
	}
	n.wtiles = make([]WeightTile, opt.Threads)
	for _, l := range n.layers {
		n.params = append(n.params,
			RealParam{Name: fmt.Sprintf("layer%d.bn.scale", l.index), Value: l.bn.gamma, Grad: l.bn.dgamma},
			RealParam{Name: fmt.Sprintf("layer%d.bn.shift", l.index), Value: l.bn.beta, Grad: l.bn.dbeta})
	}
	return n, nil
}

func maxIn(ls []*layer) int {
	m := 0
	for _, l := range ls {
		m = max(m, l.in)
	}
	return m
}

func (n *Network) randomizeWeights(seed uint64) {
	for _, l := range n.layers {
		r := rand.New(rand.NewPCG(seed, uint64(l.index)+0x9e3779b97f4a7c15))
		for j := 0; j < l.out; j++ {
			row := l.w[j*l.kw : (j+1)*l.kw]
			for k := range row {
				row[k] = r.Uint64()
			}
			if tail := l.in % 64; tail != 0 {
				row[l.kw-1] &= 1<<tail - 1 // padding bits stay zero
			}
		}
	}
}

// Spec returns the architecture.
func (n *Network) Spec() Spec { return n.spec }

// InputShape is the per-example input shape.
func (n *Network) InputShape() Shape { return n.in }

// Classes are the class names; label i is Classes()[i].
func (n *Network) Classes() []string { return n.classes }

// Options returns the batch size, thread count and seed the network was built with.
func (n *Network) Options() Options { return n.opt }

// Input is the input batch buffer: row i (InputShape().Size() values) is
// example i of the next step.
func (n *Network) Input() []float32 { return n.x }

// Labels is the label buffer of the next training step or evaluation.
func (n *Network) Labels() []int32 { return n.labels }

// RealParams are the batch-norm scales and shifts with their gradients.
func (n *Network) RealParams() []RealParam { return n.params }

// LayerInfo describes one layer's binary weights.
type LayerInfo struct {
	Index   int
	In, Out int // inputs and output units
	Weights int // In*Out binary weights (= momenta)
	Real    bool
}

// Layers describes the layers, input first.
func (n *Network) Layers() []LayerInfo {
	out := make([]LayerInfo, len(n.layers))
	for i, l := range n.layers {
		out[i] = LayerInfo{Index: i, In: l.in, Out: l.out, Weights: l.in * l.out, Real: l.realInput}
	}
	return out
}

// Weights is layer i's packed weights: Out rows of Words(In) words, bit 1 = −1.
func (n *Network) Weights(i int) []uint64 { return n.layers[i].w }

// WeightSign returns weight (j, kk) of layer i as ±1.
func (n *Network) WeightSign(i, j, kk int) int8 {
	l := n.layers[i]
	if l.w[j*l.kw+kk>>6]>>(kk&63)&1 == 1 {
		return -1
	}
	return 1
}

// StepResult summarises one training step.
type StepResult struct {
	Loss    float64 // mean softmax cross-entropy over the batch
	Correct int     // examples whose arg-max matched the label
}

// TrainStep runs forward and backward on the first m rows of Input/Labels
// with batch statistics, hands every weight-gradient tile to opt as it is
// produced, then calls opt.EndStep with the batch-norm gradients.
func (n *Network) TrainStep(m int, opt Optimizer) (StepResult, error) {
	if m < 2 || m > n.opt.Batch {
		return StepResult{}, fmt.Errorf("bnn: training batch of %d rows, want 2..%d", m, n.opt.Batch)
	}
	if err := n.checkLabels(m); err != nil {
		return StepResult{}, err
	}
	n.forward(m, true)
	res := n.softmaxLoss(m)
	n.backward(m, opt)
	return res, nil
}

// Evaluate runs the first m rows in evaluation mode (running statistics) and
// writes each row's predicted class to pred (len ≥ m).
func (n *Network) Evaluate(m int, pred []int32) error {
	if m < 1 || m > n.opt.Batch {
		return fmt.Errorf("bnn: evaluation batch of %d rows, want 1..%d", m, n.opt.Batch)
	}
	if len(pred) < m {
		return fmt.Errorf("bnn: prediction buffer holds %d rows, need %d", len(pred), m)
	}
	n.forward(m, false)
	c := len(n.classes)
	for i := 0; i < m; i++ {
		pred[i] = int32(argmax(n.z[i*c : (i+1)*c]))
	}
	return nil
}

// Logits returns the output of the last Evaluate or TrainStep: m rows of
// len(Classes()) normalised logits (valid until the next call).
func (n *Network) Logits(m int) []float32 { return n.z[:m*len(n.classes)] }

var errLabel = errors.New("label out of range")

func (n *Network) checkLabels(m int) error {
	for i, y := range n.labels[:m] {
		if y < 0 || int(y) >= len(n.classes) {
			return fmt.Errorf("bnn: row %d: %w: %d not in 0..%d", i, errLabel, y, len(n.classes)-1)
		}
	}
	return nil
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// grain splits m batch rows evenly over the threads; GEMM rows are
// independent, so the split never changes a result.
func (n *Network) grain(m int) int { return (m + n.opt.Threads - 1) / n.opt.Threads }

// linear writes layer l's pre-activations for m rows into z (m × out).
func (n *Network) linear(l *layer, m int, z []float32) {
	if l.realInput {
		x := n.x
		kernels.Parallel(n.opt.Threads, m, n.grain(m), func(lo, hi int) {
			kernels.RealBinGemm(z[lo*l.out:hi*l.out], x[lo*l.in:hi*l.in], l.w, hi-lo, l.out, l.in)
		})
		return
	}
	a := n.layers[l.index-1].sign
	kernels.Parallel(n.opt.Threads, m, n.grain(m), func(lo, hi int) {
		kernels.BGemmScaled(z[lo*l.out:hi*l.out], a[lo*l.kw:hi*l.kw], l.w, hi-lo, l.out, l.kw, l.in, n.ones[:l.out], n.zeros[:l.out])
	})
}

func (n *Network) forward(m int, train bool) {
	for _, l := range n.layers {
		z := n.z[:m*l.out]
		n.linear(l, m, z)
		if train {
			if l.kept != nil {
				copy(l.kept, z)
			}
			l.bn.trainForward(z, m)
		} else {
			l.bn.evalForward(z, m)
		}
		if !l.last {
			packSignMask(l.sign, l.mask, z, m, l.out, l.ow)
		}
	}
}

// packSignMask keeps the two bits per activation the backward pass needs:
// sign (bit 1 = −1, y < 0) and the straight-through mask (bit 1 = |y| ≤ 1).
func packSignMask(sign, mask []uint64, y []float32, m, n, words int) {
	for i := 0; i < m; i++ {
		row := y[i*n : (i+1)*n]
		for w := 0; w < words; w++ {
			var s, k uint64
			chunk := row[w*64 : min(w*64+64, n)]
			for b, v := range chunk {
				if v < 0 {
					s |= 1 << b
				}
				if v >= -1 && v <= 1 {
					k |= 1 << b
				}
			}
			sign[i*words+w] = s
			mask[i*words+w] = k
		}
	}
}

// applyMask zeroes the gradient of every activation whose pre-sign value was
// outside [−1, 1] (the straight-through estimator).
func applyMask(d []float32, mask []uint64, m, n, words int) {
	for i := 0; i < m; i++ {
		row := d[i*n : (i+1)*n]
		for w := 0; w < words; w++ {
			bits := mask[i*words+w]
			chunk := row[w*64 : min(w*64+64, n)]
			for b := range chunk {
				if bits>>b&1 == 0 {
					chunk[b] = 0
				}
			}
		}
	}
}

// softmaxLoss turns the last layer's normalised outputs (in z) into the mean
// cross-entropy and writes ∂L/∂logits into dy.
func (n *Network) softmaxLoss(m int) StepResult {
	c := len(n.classes)
	var res StepResult
	inv := 1 / float32(m)
	for i := 0; i < m; i++ {
		logit := n.z[i*c : (i+1)*c]
		d := n.dy[i*c : (i+1)*c]
		label := int(n.labels[i])
		mx := logit[argmax(logit)]
		if argmax(logit) == label {
			res.Correct++
		}
		var sum float64
		for j, v := range logit {
			e := math.Exp(float64(v - mx))
			d[j] = float32(e)
			sum += e
		}
		res.Loss += math.Log(sum) - float64(logit[label]-mx)
		for j := range d {
			d[j] = float32(float64(d[j])/sum) * inv
		}
		d[label] -= inv
	}
	res.Loss /= float64(m)
	return res
}

func (n *Network) backward(m int, opt Optimizer) {
	dy, dx := n.dy, n.dx
	for li := len(n.layers) - 1; li >= 0; li-- {
		l := n.layers[li]
		z := n.z[:m*l.out]
		if l.kept != nil {
			z = l.kept[:m*l.out]
		} else {
			// Recompute the pre-activations instead of keeping them: the
			// weights of this layer have not flipped yet in this step, so z
			// is exact.
			n.linear(l, m, z)
		}
		dz := dy[:m*l.out]
		l.bn.backward(z, dz, m)
		if li > 0 {
			prev := n.layers[li-1]
			d := dx[:m*l.in]
			kernels.Parallel(n.opt.Threads, m, n.grain(m), func(lo, hi int) {
				kernels.BinGradInput(d[lo*l.in:hi*l.in], dz[lo*l.out:hi*l.out], l.w, hi-lo, l.out, l.in)
			})
			applyMask(d, prev.mask, m, l.in, prev.ow)
		}
		n.foldTiles(l, m, dz, opt)
		dy, dx = dx, dy
	}
	opt.EndStep(n.params)
}

// foldTiles produces layer l's weight gradient one tile at a time and hands
// each tile to the optimizer, which folds it into the momenta and flips
// weights before the worker computes its next tile.
func (n *Network) foldTiles(l *layer, m int, dz []float32, opt Optimizer) {
	count := l.rowTiles * l.colTiles
	run := func(worker, t int) {
		j0 := (t / l.colTiles) * tileRows
		j1 := min(j0+tileRows, l.out)
		k0 := (t % l.colTiles) * tileCols
		k1 := min(k0+tileCols, l.in)
		tile := n.tiles[worker][:(j1-j0)*(k1-k0)]
		if l.realInput {
			kernels.RealGradWeightTile(tile, dz, n.x[:m*l.in], m, l.out, l.in, j0, j1, k0, k1)
		} else {
			kernels.BinGradWeightTile(tile, dz, n.layers[l.index-1].sign[:m*l.kw], m, l.out, l.in, j0, j1, k0, k1)
		}
		wt := &n.wtiles[worker]
		*wt = WeightTile{Layer: l.index, Row0: j0, Row1: j1, Col0: k0, Col1: k1, Cols: l.in,
			Grad: tile, Weights: l.w, RowWords: l.kw}
		opt.FoldTile(worker, wt)
	}
	forEachWorker(n.opt.Threads, count, run)
}

// forEachWorker runs fn(worker, i) for every i in [0,n) on up to threads
// goroutines; worker identifies the goroutine so fn can use its own scratch.
func forEachWorker(threads, n int, fn func(worker, i int)) {
	threads = min(threads, n)
	if threads <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(threads - 1)
	work := func(worker int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(worker, i)
		}
	}
	for w := 1; w < threads; w++ {
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
}
