package bnn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bnnd/bnnd/kernels"
)

// Options size a Network's buffers and its parallelism.
type Options struct {
	Batch   int    // most examples per step; every buffer is sized for it
	Threads int    // worker goroutines for matmuls and gradient tiles (≥ 1)
	Seed    uint64 // initial weight signs

	// Outputs is the number of output units, reserved for classes added
	// later with AddClass (a person teaching a board names them as they
	// come); 0 means len(classes). Units of classes not yet added take no
	// part in the loss, so they keep their initial weights until then.
	Outputs int
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
// is ∂L/∂w[j][kk]. The momentum index of weight (j, kk) is j*Cols+kk, with
// Cols = 64·RowWords: rows are padded to whole 64-code blocks so that no two
// tiles ever share a word of a packed momentum vector, whatever its code
// width (tiles are folded concurrently). The
// Optimizer may flip bits of Weights in rows [Row0,Row1), bits [Col0,Col1)
// only: other workers own the other tiles.
type WeightTile struct {
	Layer      int
	Row0, Row1 int // output units
	Col0, Col1 int // inputs; Col0 is a multiple of 64
	Cols       int // momentum row stride: 64·RowWords ≥ inputs per row
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

// chunkRows is about how many GEMM rows (output positions) a conv layer
// computes at once: a chunk of images large enough to keep the kernels busy
// and small enough that no buffer grows with the batch. Tests vary it.
var chunkRows = 1024

// layer is one block: binary weights (dense, or a 3×3 conv run as im2col +
// GEMM, optionally 2×2 max-pooled) → batch norm → sign (or softmax for the
// last one). Every block is a GEMM of gemmRows rows per example, in inputs
// (K) and out outputs, producing actRows activation rows per example.
type layer struct {
	index     int
	kind      LayerKind
	in, out   int // GEMM inputs K (dense: inputs; conv: 9·channels) and outputs
	kw        int // words per weight row (= Words(in))
	ow        int // words per activation row (= Words(out))
	realInput bool
	last      bool
	w         []uint64 // out rows × kw words
	bn        batchNorm
	// Conv geometry (input height, width, channels); pool halves h and w.
	h, wd, c int
	pool     bool
	gemmRows int // GEMM rows per example: h·w for conv, 1 for dense
	actRows  int // activation rows per example after pooling
	// Kept for the backward pass: 2 bits per activation. Pre-activations
	// are recomputed in the backward pass.
	sign, mask []uint64 // batch·actRows rows × ow words
	rowTiles   int
	colTiles   int
	// A conv layer works on a chunk of images at a time (Network.chunk), so
	// these hold one chunk only: im2col rows (bits, or real pixels for the
	// first layer), pre-activations before and after pooling, the gradient
	// before pooling and the gradient of the layer's output.
	cols          []uint64
	colsF         []float32
	z, zp, dz, dy []float32
	// grad is a conv layer's weight gradient, summed over the chunks tile
	// by tile (tile (j0,j1,k0,k1) at j0·in + (j1−j0)·k0). Conv weights are
	// few (out × 9·channels), and every tile needs all the images.
	grad []float32
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

	dy, dx []float32 // gradient rows of dense layers, and dense pre-activations
	// chunk is the number of images a conv layer handles at once; it depends
	// on the shapes only, so results do not depend on the thread count.
	chunk int
	// convTop is ∂L/∂(output of the top conv layer) for the whole batch,
	// written by the dense layer above; gradients further down the conv
	// stack are recomputed a chunk at a time instead of kept.
	convTop []float32
	dcols   []float32 // one image's im2col-shaped input gradient
	ones    []float32 // identity batch-norm for BGemmScaled
	zeros   []float32
	tiles   [][]float32  // one gradient tile per worker
	wtiles  []WeightTile // one descriptor per worker
	params  []RealParam
}

// New builds a network for inputs of shape in and the given classes (with
// room for opt.Outputs classes in all), with random weight signs drawn from
// opt.Seed.
func New(spec Spec, in Shape, classes []string, opt Options) (*Network, error) {
	if in.Size() <= 0 {
		return nil, fmt.Errorf("bnn: input shape %v is empty", in)
	}
	if opt.Outputs == 0 {
		opt.Outputs = len(classes)
	}
	if opt.Outputs < 2 {
		return nil, fmt.Errorf("bnn: need at least 2 classes, have %d", opt.Outputs)
	}
	if len(classes) > opt.Outputs {
		return nil, fmt.Errorf("bnn: %d classes for %d output units", len(classes), opt.Outputs)
	}
	if err := checkClassNames(classes); err != nil {
		return nil, err
	}
	if opt.Batch < 1 {
		return nil, fmt.Errorf("bnn: batch size %d, want ≥ 1", opt.Batch)
	}
	if opt.Threads < 1 {
		opt.Threads = 1
	}
	n := &Network{spec: spec, in: in, classes: append([]string(nil), classes...), opt: opt}
	B := opt.Batch
	// The geometry flowing through the layers: h×w×c activations per example.
	h, w, c := in.Height, in.Width, in.Channels
	hidden := append(append([]LayerSpec(nil), spec.Hidden...), LayerSpec{Kind: Dense, Units: opt.Outputs})
	var gradW, convRows int
	for i, ls := range hidden {
		l := &layer{index: i, kind: ls.Kind, out: ls.Units, realInput: i == 0, last: i == len(hidden)-1,
			h: h, wd: w, c: c, pool: ls.Pool, gemmRows: 1, actRows: 1}
		where := fmt.Sprintf("bnn: model %q layer %d", spec.Name, i+1)
		switch ls.Kind {
		case Dense:
			l.in = h * w * c
			if !l.realInput && c%64 != 0 && h*w > 1 {
				return nil, fmt.Errorf("%s: dense after conv needs a multiple of 64 channels, have %d", where, c)
			}
			h, w, c = 1, 1, ls.Units
			gradW = max(gradW, l.out)
			if !l.realInput {
				gradW = max(gradW, l.in)
			}
		case Conv3x3:
			if i > 0 && n.layers[i-1].kind != Conv3x3 {
				return nil, fmt.Errorf("%s: a conv layer after a dense layer", where)
			}
			if !l.realInput && c%64 != 0 {
				return nil, fmt.Errorf("%s: a binary conv needs a multiple of 64 input channels, have %d", where, c)
			}
			if ls.Pool && (h%2 != 0 || w%2 != 0) {
				return nil, fmt.Errorf("%s: 2×2 pooling needs even height and width, have %d×%d", where, h, w)
			}
			l.in = 9 * c
			l.gemmRows = h * w
			if ls.Pool {
				h, w = h/2, w/2
			}
			l.actRows = h * w
			c = ls.Units
			convRows = max(convRows, l.gemmRows)
		default:
			return nil, fmt.Errorf("%s: unknown layer kind %v", where, ls.Kind)
		}
		l.kw, l.ow = kernels.Words(l.in), kernels.Words(l.out)
		l.w = make([]uint64, l.out*l.kw)
		l.bn = newBatchNorm(l.out)
		if !l.last {
			l.sign = make([]uint64, B*l.actRows*l.ow)
			l.mask = make([]uint64, B*l.actRows*l.ow)
		}
		l.rowTiles = (l.out + tileRows - 1) / tileRows
		l.colTiles = (l.in + tileCols - 1) / tileCols
		n.layers = append(n.layers, l)
	}
	n.chunk = B
	if convRows > 0 {
		n.chunk = min(max(chunkRows/convRows, 1), B)
	}
	dcolFloats := 0
	for _, l := range n.layers {
		if l.kind != Conv3x3 {
			continue
		}
		rows := n.chunk * l.gemmRows
		if l.realInput {
			l.colsF = make([]float32, rows*l.in)
		} else {
			l.cols = make([]uint64, rows*l.kw)
			dcolFloats = max(dcolFloats, l.gemmRows*l.in)
		}
		l.z = make([]float32, rows*l.out)
		if l.pool {
			l.zp = make([]float32, n.chunk*l.actRows*l.out)
			l.dz = make([]float32, rows*l.out)
		}
		l.dy = make([]float32, n.chunk*l.actRows*l.out)
		l.grad = make([]float32, l.out*l.in)
	}
	n.randomizeWeights(opt.Seed)
	n.x = make([]float32, B*in.Size())
	n.labels = make([]int32, B)
	n.dy = make([]float32, B*gradW)
	n.dx = make([]float32, B*gradW)
	n.dcols = make([]float32, dcolFloats)
	widest := 0
	for _, l := range n.layers {
		widest = max(widest, l.out)
	}
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

// Outputs is the number of output units: the most classes the network can
// have (see Options.Outputs).
func (n *Network) Outputs() int { return n.opt.Outputs }

// AddClass adds a class and returns its label. Its output unit was part of
// the network from the start, so nothing trained so far changes.
func (n *Network) AddClass(name string) (int, error) {
	if len(n.classes) >= n.opt.Outputs {
		return -1, fmt.Errorf("bnn: cannot add class %q: the model has room for %d classes and has them all", name, n.opt.Outputs)
	}
	if err := checkClassNames(append(n.classes[:len(n.classes):len(n.classes)], name)); err != nil {
		return -1, err
	}
	n.classes = append(n.classes, name)
	return len(n.classes) - 1, nil
}

func checkClassNames(classes []string) error {
	seen := make(map[string]bool, len(classes))
	for i, c := range classes {
		if c == "" {
			return fmt.Errorf("bnn: class %d has an empty name", i)
		}
		if seen[c] {
			return fmt.Errorf("bnn: class %q appears twice", c)
		}
		seen[c] = true
	}
	return nil
}

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
	Weights int // In*Out binary weights
	// Stride is the momentum row stride (64·Words(In)): the momentum of
	// weight (j, kk) has index j*Stride+kk, and a layer needs Out*Stride
	// momenta, the padding ones never updated.
	Stride int
	Real   bool
}

// Layers describes the layers, input first.
func (n *Network) Layers() []LayerInfo {
	out := make([]LayerInfo, len(n.layers))
	for i, l := range n.layers {
		out[i] = LayerInfo{Index: i, In: l.in, Out: l.out, Weights: l.in * l.out, Stride: 64 * l.kw, Real: l.realInput}
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
	if len(n.classes) == 0 {
		return errors.New("bnn: no classes to predict yet")
	}
	n.forward(m, false)
	c, outs := len(n.classes), n.opt.Outputs
	for i := 0; i < m; i++ {
		pred[i] = int32(argmax(n.dx[i*outs : i*outs+c]))
	}
	return nil
}

// EstimateStatistics sets every batch-norm layer's running statistics to
// their mean over the next batches that next deals into Input (forward
// passes only: weights and trained parameters do not change). Training keeps
// the running statistics as an average over recent steps, whose weights have
// flipped since — the first layer flips a few of its weights every step — so
// evaluating right after training mixes statistics of networks that no
// longer exist; after this it uses those of the network as it is.
func (n *Network) EstimateStatistics(batches int, next func() (int, error)) error {
	defer func() {
		for _, l := range n.layers {
			l.bn.keep = bnMomentum
		}
	}()
	for k := range batches {
		m, err := next()
		if err != nil {
			return fmt.Errorf("bnn: batch-norm statistics, batch %d: %w", k+1, err)
		}
		if m < 2 || m > n.opt.Batch {
			return fmt.Errorf("bnn: batch-norm statistics from a batch of %d rows, want 2..%d", m, n.opt.Batch)
		}
		for _, l := range n.layers {
			l.bn.keep = float32(k) / float32(k+1) // running mean of the batches so far
		}
		n.forward(m, true)
	}
	return nil
}

// Logits returns the output of the last Evaluate: m rows of Outputs()
// normalised logits, of which the first len(Classes()) belong to classes;
// valid until the next Evaluate or TrainStep (whose backward pass reuses
// the buffer).
func (n *Network) Logits(m int) []float32 { return n.dx[:m*n.opt.Outputs] }

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

// gemm writes rows GEMM rows of layer l into z (rows × out): real inputs x,
// or packed bits a.
func (n *Network) gemm(l *layer, z, x []float32, a []uint64, rows int) {
	grain := (rows + n.opt.Threads - 1) / n.opt.Threads
	if x != nil {
		kernels.Parallel(n.opt.Threads, rows, grain, func(lo, hi int) {
			kernels.RealBinGemm(z[lo*l.out:hi*l.out], x[lo*l.in:hi*l.in], l.w, hi-lo, l.out, l.in)
		})
		return
	}
	kernels.Parallel(n.opt.Threads, rows, grain, func(lo, hi int) {
		kernels.BGemmScaled(z[lo*l.out:hi*l.out], a[lo*l.kw:hi*l.kw], l.w, hi-lo, l.out, l.kw, l.in, n.ones[:l.out], n.zeros[:l.out])
	})
}

// denseInput is a dense layer's input for the whole batch: the real input
// batch or the previous layer's sign bits.
func (n *Network) denseInput(l *layer) ([]float32, []uint64) {
	if l.realInput {
		return n.x, nil
	}
	return nil, n.layers[l.index-1].sign
}

// densePre writes a dense layer's pre-activations for m examples into buf.
func (n *Network) densePre(l *layer, m int, buf []float32) []float32 {
	z := buf[:m*l.out]
	x, a := n.denseInput(l)
	n.gemm(l, z, x, a, m)
	return z
}

func (n *Network) forward(m int, train bool) {
	for _, l := range n.layers {
		if l.kind == Conv3x3 {
			n.convForward(l, m, train)
			continue
		}
		y := n.densePre(l, m, n.dx)
		if train {
			l.bn.trainForward(y, m)
		} else {
			l.bn.evalForward(y, m)
		}
		if !l.last {
			packSignMask(l.sign, l.mask, y, m, l.out, l.ow)
		}
	}
}

// maxPool takes the maximum of each 2×2 window: src is m×h×w×c (NHWC), dst
// m×(h/2)×(w/2)×c. Pooling comes before batch norm and sign (conv → pool →
// BN → sign, as in larq's BNNs), on the exact integer pre-activations.
func maxPool(dst, src []float32, m, h, w, c int) {
	ph, pw := h/2, w/2
	for b := 0; b < m; b++ {
		for y := 0; y < ph; y++ {
			for x := 0; x < pw; x++ {
				out := dst[((b*ph+y)*pw+x)*c : ((b*ph+y)*pw+x+1)*c]
				r0 := src[((b*h+2*y)*w+2*x)*c:]
				r1 := src[((b*h+2*y+1)*w+2*x)*c:]
				for ch := range out {
					out[ch] = max(r0[ch], r0[c+ch], r1[ch], r1[c+ch])
				}
			}
		}
	}
}

// unpool routes each pooled gradient to the first maximal input of its
// window (row-major order) and zeroes the rest: dsrc is m×h×w×c.
func unpool(dsrc, dpool, src []float32, m, h, w, c int) {
	clear(dsrc)
	ph, pw := h/2, w/2
	for b := 0; b < m; b++ {
		for y := 0; y < ph; y++ {
			for x := 0; x < pw; x++ {
				d := dpool[((b*ph+y)*pw+x)*c:]
				for ch := 0; ch < c; ch++ {
					best := ((b*h+2*y)*w+2*x)*c + ch
					i1 := best + c
					i2 := best + w*c
					i3 := best + w*c + c
					if src[i1] > src[best] {
						best = i1
					}
					if src[i2] > src[best] {
						best = i2
					}
					if src[i3] > src[best] {
						best = i3
					}
					dsrc[best] = d[ch]
				}
			}
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
	c, outs := len(n.classes), n.opt.Outputs
	var res StepResult
	inv := 1 / float32(m)
	for i := 0; i < m; i++ {
		logit := n.dx[i*outs : i*outs+c]
		// Units of classes not added yet get no gradient.
		clear(n.dy[i*outs+c : (i+1)*outs])
		d := n.dy[i*outs : i*outs+c]
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
		if l.kind == Conv3x3 {
			if n.layers[li+1].kind == Dense {
				n.convTop = dy[:m*l.actRows*l.out]
			}
			n.convBackward(l, m)
			continue
		}
		// Recompute the pre-activations instead of keeping them: the weights
		// of this layer have not flipped yet in this step, so they are
		// exact. They go to dx, which receives the input gradient only
		// after they have been used.
		y := n.densePre(l, m, dx)
		dz := dy[:m*l.out]
		l.bn.backward(y, dz, m)
		if li > 0 {
			prev := n.layers[li-1]
			d := dx[:m*l.in]
			kernels.Parallel(n.opt.Threads, m, n.grain(m), func(lo, hi int) {
				kernels.BinGradInput(d[lo*l.in:hi*l.in], dz[lo*l.out:hi*l.out], l.w, hi-lo, l.out, l.in)
			})
			applyMask(d, prev.mask, m*prev.actRows, prev.out, prev.ow)
		}
		x, a := n.denseInput(l)
		n.foldTiles(l, opt, func(worker, j0, j1, k0, k1 int) []float32 {
			tile := n.tiles[worker][:(j1-j0)*(k1-k0)]
			if x != nil {
				kernels.RealGradWeightTile(tile, dz, x[:m*l.in], m, l.out, l.in, j0, j1, k0, k1)
			} else {
				kernels.BinGradWeightTile(tile, dz, a[:m*l.kw], m, l.out, l.in, j0, j1, k0, k1)
			}
			return tile
		})
		dy, dx = dx, dy
	}
	// Conv layers fold last: the gradient of a lower conv layer is
	// recomputed through the ones above it, with their weights as they
	// were in the forward pass.
	for _, l := range n.layers {
		if l.kind == Conv3x3 {
			n.foldTiles(l, opt, func(_, j0, j1, k0, k1 int) []float32 { return l.gradTile(j0, j1, k0, k1) })
		}
	}
	opt.EndStep(n.params)
}

// tileBounds are the output rows [j0,j1) and inputs [k0,k1) of tile t.
func (l *layer) tileBounds(t int) (j0, j1, k0, k1 int) {
	j0 = (t / l.colTiles) * tileRows
	k0 = (t % l.colTiles) * tileCols
	return j0, min(j0+tileRows, l.out), k0, min(k0+tileCols, l.in)
}

// foldTiles hands layer l's weight gradient to the optimizer one tile at a
// time: grad returns tile (j0,j1,k0,k1), computed by the worker that folds it
// into the momenta and flips weights before it takes its next tile.
func (n *Network) foldTiles(l *layer, opt Optimizer, grad func(worker, j0, j1, k0, k1 int) []float32) {
	forEachWorker(n.opt.Threads, l.rowTiles*l.colTiles, func(worker, t int) {
		j0, j1, k0, k1 := l.tileBounds(t)
		wt := &n.wtiles[worker]
		*wt = WeightTile{Layer: l.index, Row0: j0, Row1: j1, Col0: k0, Col1: k1, Cols: 64 * l.kw,
			Grad: grad(worker, j0, j1, k0, k1), Weights: l.w, RowWords: l.kw}
		opt.FoldTile(worker, wt)
	})
}

// forEachWorker runs fn(worker, i) for every i in [0,n) on up to threads
// goroutines; worker identifies the goroutine so fn can use its own scratch.
func forEachWorker(threads, n int, fn func(worker, i int)) {
	kernels.ParallelWorkers(threads, n, 1, func(worker, i, _ int) { fn(worker, i) })
}
