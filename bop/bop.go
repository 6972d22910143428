// Package bop is the Bop optimizer (Helwegen et al. 2019) over momenta stored
// in compact fp encodings, with Adam for the real parameters, per-layer
// counters, and the calibration that picks the encodings.
//
// The update (docs/engine.md, "Optimizer") per binary weight w with gradient g = ∂L/∂w:
//
//	m ← m + γ(g − m)            (stored in the layer's fp.Format)
//	w ← −w  if w·m > τ          (sign(m) == sign(w) and |m| > τ)
//
// Gradient descent moves w toward −sign(g); a momentum of the same sign as
// w, larger than τ, says w sits on the wrong side, so it flips. The momentum
// is kept after a flip (it then has the opposite sign of the new w).
// The update is fused: each weight-gradient tile from bnn is folded into the
// momenta (decode, update, encode with the format's rounding, flip test,
// write back) as soon as it is computed; no full float gradient exists.
package bop

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// Decay lowers γ during training: every Every steps γ ← γ·Factor (Every = 1
// gives an exponential decay). Zero values disable it.
type Decay struct {
	Every  int64
	Factor float64
}

// Config are the optimizer's hyper-parameters.
type Config struct {
	Gamma   float32     // momentum rate γ (default 1e-3)
	Tau     float32     // flip threshold τ (default 1e-6)
	Formats []fp.Format // momentum encoding: one for all layers, or one per layer (default fp32)
	AdamLR  float32     // Adam learning rate for batch-norm parameters (default 1e-2)
	Seed    uint64      // stochastic-rounding streams
	Decay   Decay
}

func (c *Config) defaults() {
	if c.Gamma == 0 {
		c.Gamma = 1e-3
	}
	if c.Tau == 0 {
		c.Tau = 1e-6
	}
	if c.AdamLR == 0 {
		c.AdamLR = 1e-2
	}
	if len(c.Formats) == 0 {
		c.Formats = []fp.Format{fp.MustParseFormat("fp32")}
	}
}

// Counters are what the momentum steps and flip tests did.
type Counters struct {
	fp.StepCounts       // momenta updated, codes changed, lost, underflowed, saturated
	Flips         int64 `json:"flips"` // weights flipped
}

// Add accumulates o into c.
func (c *Counters) Add(o Counters) {
	c.StepCounts.Add(o.StepCounts)
	c.Flips += o.Flips
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// FlipRate is Flips/Values: the fraction of weights flipped per update.
func (c Counters) FlipRate() float64 { return ratio(c.Flips, c.Values) }

type layerState struct {
	info     bnn.LayerInfo
	momentum *fp.Vector
	fp32     []float32 // the momenta as float32 when the format is fp32 (fast path)
}

func newLayerState(info bnn.LayerInfo, v *fp.Vector) layerState {
	ls := layerState{info: info, momentum: v}
	if isFP32(v.Format()) && littleEndian {
		ls.fp32 = float32View(v)
	}
	return ls
}

type adamState struct {
	m, v []float32
}

// Optimizer implements bnn.Optimizer.
type Optimizer struct {
	cfg    Config
	gamma  float32
	step   int64
	layers []layerState
	adam   []adamState
	// Per worker: counters by layer for the running step, and the decoded
	// new momenta of one tile row for the flip test.
	work    [][]Counters
	mOut    [][]float32
	rowCopy [][]uint64
	last    []Counters // the last finished step, by layer
	sum     []Counters // since creation (or ResetTotals), by layer
	rec     *recorder
	shadow  *shadow
}

// New creates the optimizer for net with zero momenta.
func New(net *bnn.Network, cfg Config) (*Optimizer, error) {
	cfg.defaults()
	layers := net.Layers()
	if len(cfg.Formats) != 1 && len(cfg.Formats) != len(layers) {
		return nil, fmt.Errorf("bop: %d momentum formats for %d layers (want 1 or %d)", len(cfg.Formats), len(layers), len(layers))
	}
	if !(cfg.Gamma > 0 && cfg.Gamma <= 1) {
		return nil, fmt.Errorf("bop: gamma %g outside (0, 1]", cfg.Gamma)
	}
	if !(cfg.Tau >= 0) || math.IsInf(float64(cfg.Tau), 0) {
		return nil, fmt.Errorf("bop: tau %g must be finite and ≥ 0", cfg.Tau)
	}
	if cfg.Decay.Every < 0 || cfg.Decay.Factor < 0 || cfg.Decay.Factor > 1 {
		return nil, fmt.Errorf("bop: gamma decay every %d steps by ×%g: want every ≥ 0 and factor in [0, 1]", cfg.Decay.Every, cfg.Decay.Factor)
	}
	o := &Optimizer{cfg: cfg, gamma: cfg.Gamma}
	widest := 0
	for i, li := range layers {
		f := cfg.formatFor(i)
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("bop: layer %d momentum format: %w", i, err)
		}
		o.layers = append(o.layers, newLayerState(li, fp.NewVector(f, li.Out*li.Stride)))
		widest = max(widest, li.In)
	}
	for _, p := range net.RealParams() {
		o.adam = append(o.adam, adamState{m: make([]float32, len(p.Value)), v: make([]float32, len(p.Value))})
	}
	threads := net.Options().Threads
	o.work = make([][]Counters, threads)
	o.mOut = make([][]float32, threads)
	o.rowCopy = make([][]uint64, threads)
	for w := range threads {
		o.work[w] = make([]Counters, len(layers))
		o.mOut[w] = make([]float32, widest)
		o.rowCopy[w] = make([]uint64, (widest+63)/64)
	}
	o.last = make([]Counters, len(layers))
	o.sum = make([]Counters, len(layers))
	return o, nil
}

func (c *Config) formatFor(layer int) fp.Format {
	if len(c.Formats) == 1 {
		return c.Formats[0]
	}
	return c.Formats[layer]
}

// Gamma is the current (possibly decayed) γ.
func (o *Optimizer) Gamma() float32 { return o.gamma }

// Tau is the flip threshold.
func (o *Optimizer) Tau() float32 { return o.cfg.Tau }

// Steps is the number of finished training steps.
func (o *Optimizer) Steps() int64 { return o.step }

// Formats returns each layer's momentum encoding.
func (o *Optimizer) Formats() []fp.Format {
	out := make([]fp.Format, len(o.layers))
	for i, l := range o.layers {
		out[i] = l.momentum.Format()
	}
	return out
}

// Momentum is layer i's momentum vector: index j*Stride+kk for weight
// (j, kk) (see bnn.LayerInfo.Stride).
func (o *Optimizer) Momentum(i int) *fp.Vector { return o.layers[i].momentum }

// LastStep returns the counters of the last finished step, by layer.
func (o *Optimizer) LastStep() []Counters { return o.last }

// Totals returns the counters summed since New or ResetTotals, by layer.
func (o *Optimizer) Totals() []Counters { return o.sum }

// ResetTotals zeroes the running sums.
func (o *Optimizer) ResetTotals() { clear(o.sum) }

// streamOf names the stochastic-rounding stream of one tile in one step:
// (step, layer, first row, first column) fix it, so the result does not
// depend on which worker folds the tile.
func streamOf(step int64, layer, row0, col0 int) uint64 {
	x := uint64(step)*0x9e3779b97f4a7c15 ^ uint64(layer)<<56 ^ uint64(row0)<<28 ^ uint64(col0)
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	return x ^ x>>29
}

// FoldTile folds one weight-gradient tile into the momenta and flips the
// weights whose momentum passed the threshold (bnn.Optimizer).
func (o *Optimizer) FoldTile(worker int, t *bnn.WeightTile) {
	ls := &o.layers[t.Layer]
	cnt := &o.work[worker][t.Layer]
	cols := t.Col1 - t.Col0
	rng := fp.NewRand(o.cfg.Seed, streamOf(o.step, t.Layer, t.Row0, t.Col0))
	mOut := o.mOut[worker][:cols]
	for j := t.Row0; j < t.Row1; j++ {
		g := t.Grad[(j-t.Row0)*cols : (j-t.Row0+1)*cols]
		if o.rec != nil {
			o.rec.capture(t.Layer, j*t.Cols+t.Col0, g)
		}
		base := j*t.Cols + t.Col0
		row := t.Weights[j*t.RowWords : (j+1)*t.RowWords]
		if ls.fp32 != nil {
			var before []uint64
			if o.shadow != nil {
				// The shadow compares against the weights before this row's flips.
				before = o.rowCopy[worker][:len(row)]
				copy(before, row)
			}
			cnt.Add(step32(ls.fp32[base:base+cols], g, o.gamma, o.cfg.Tau, row, t.Col0, mOut))
			if o.shadow != nil {
				o.shadow.observe(worker, t.Layer, base, t.Col0, g, mOut, before, o.gamma, o.cfg.Tau)
			}
			continue
		}
		if o.shadow == nil {
			// The fused step and flip test (vector kernels where the CPU has them).
			sc, flips := ls.momentum.StepFlip(base, g, o.gamma, &rng, row, t.Col0, o.cfg.Tau)
			cnt.StepCounts.Add(sc)
			cnt.Flips += flips
			continue
		}
		cnt.StepCounts.Add(ls.momentum.Step(base, g, o.gamma, &rng, mOut))
		o.shadow.observe(worker, t.Layer, base, t.Col0, g, mOut, row, o.gamma, o.cfg.Tau)
		cnt.Flips += flipRow(row, t.Col0, mOut, o.cfg.Tau)
	}
}

// flipRow applies the Bop flip test to the weights at bits [col0, col0+len(m))
// of one packed row, given their new momenta, and returns how many flipped.
// Bit 1 is w = −1: it flips when m < −τ; bit 0 (w = +1) when m > τ.
func flipRow(row []uint64, col0 int, m []float32, tau float32) int64 {
	var flips int
	for w := 0; w*64 < len(m); w++ {
		chunk := m[w*64 : min(w*64+64, len(m))]
		word := row[col0/64+w]
		// Branch-free masks (whether a weight flips is a data-dependent
		// coin): below −τ and above τ, then each applies to its weights.
		var below, above uint64
		for b, v := range chunk {
			below |= b2u(v < -tau) << uint(b)
			above |= b2u(v > tau) << uint(b)
		}
		flip := word&below | ^word&above
		row[col0/64+w] = word ^ flip
		flips += bits.OnesCount64(flip)
	}
	return int64(flips)
}

// Adam's constants (Kingma & Ba).
const (
	adamBeta1   = 0.9
	adamBeta2   = 0.999
	adamEpsilon = 1e-7
)

// EndStep applies Adam to the batch-norm parameters, closes the step's
// counters and decays γ (bnn.Optimizer).
func (o *Optimizer) EndStep(params []bnn.RealParam) {
	o.step++
	t := float64(o.step)
	c1 := float32(1 - math.Pow(adamBeta1, t))
	c2 := float32(1 - math.Pow(adamBeta2, t))
	lr := o.cfg.AdamLR
	for i, p := range params {
		st := &o.adam[i]
		for k, g := range p.Grad {
			st.m[k] = adamBeta1*st.m[k] + (1-adamBeta1)*g
			st.v[k] = adamBeta2*st.v[k] + (1-adamBeta2)*g*g
			mh := st.m[k] / c1
			vh := st.v[k] / c2
			p.Value[k] -= lr * mh / (float32(math.Sqrt(float64(vh))) + adamEpsilon)
		}
	}
	for l := range o.last {
		o.last[l] = Counters{}
		for w := range o.work {
			o.last[l].Add(o.work[w][l])
			o.work[w][l] = Counters{}
		}
		o.sum[l].Add(o.last[l])
	}
	if o.shadow != nil {
		o.shadow.endStep()
	}
	if o.rec != nil {
		o.rec.endStep()
		if o.rec.done() {
			o.rec.stop = true
		}
	}
	if d := o.cfg.Decay; d.Every > 0 && o.step%d.Every == 0 {
		o.gamma = float32(float64(o.gamma) * d.Factor)
	}
}

// AddMemory adds the optimizer's part of the training state to m: momenta
// (by format), Adam state and its scratch.
func (o *Optimizer) AddMemory(m *bnn.Memory) {
	if m.MomentaByFormat == nil {
		m.MomentaByFormat = map[string]int64{}
	}
	for _, l := range o.layers {
		if l.momentum == nil {
			continue // released while Select restores the warm start
		}
		// By capacity: while Select races, an arm's codes take only part of
		// the storage it reuses.
		b := int64(cap(l.momentum.Words())) * 8
		m.Momenta += b
		m.MomentaByFormat[l.momentum.Format().String()] += b
	}
	for _, a := range o.adam {
		m.AdamState += int64(len(a.m)+len(a.v)) * 4
	}
	for w := range o.mOut {
		m.Buffers += int64(len(o.mOut[w]))*4 + int64(len(o.rowCopy[w]))*8 + int64(len(o.work[w]))*6*8
	}
	m.Buffers += int64(len(o.last)+len(o.sum)) * 6 * 8
}

// Convert re-encodes every layer's momenta in formats (one for all layers
// or one per layer), e.g. after an fp32 calibration warm-up. Values are
// rounded with each new format's own rounding mode.
func (o *Optimizer) Convert(formats []fp.Format) error {
	if len(formats) != 1 && len(formats) != len(o.layers) {
		return fmt.Errorf("bop: %d formats for %d layers", len(formats), len(o.layers))
	}
	const chunk = 4096
	buf := make([]float32, chunk)
	for i := range o.layers {
		f := formats[0]
		if len(formats) > 1 {
			f = formats[i]
		}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("bop: layer %d: %w", i, err)
		}
		old := o.layers[i].momentum
		nv := fp.NewVector(f, old.Len())
		rng := fp.NewRand(o.cfg.Seed, streamOf(-1, i, 0, 0))
		for s := 0; s < old.Len(); s += chunk {
			b := buf[:min(chunk, old.Len()-s)]
			old.DecodeRange(b, s)
			nv.EncodeRange(s, b, &rng)
		}
		o.layers[i] = newLayerState(o.layers[i].info, nv)
	}
	o.cfg.Formats = append([]fp.Format(nil), formats...)
	return nil
}

var errState = errors.New("malformed optimizer state")
