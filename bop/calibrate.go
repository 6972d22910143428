package bop

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// recorder samples the gradients of a fixed random subset of each layer's
// weights during a warm-up, building one fp.Trace per layer.
type recorder struct {
	steps  int
	t      int
	stop   bool
	layers []recLayer
}

type recLayer struct {
	idx   []int // sorted momentum indices of the sampled weights
	trace fp.Trace
}

// capture stores the gradients g of momentum indices [base, base+len(g)) that
// are sampled. Tiles never overlap, so concurrent captures write disjoint
// entries.
func (r *recorder) capture(layer, base int, g []float32) {
	if r.stop || r.t >= r.steps {
		return
	}
	rl := &r.layers[layer]
	if len(rl.idx) == 0 {
		return
	}
	row := rl.trace.G[r.t]
	for s := sort.SearchInts(rl.idx, base); s < len(rl.idx) && rl.idx[s] < base+len(g); s++ {
		row[s] = g[rl.idx[s]-base]
	}
}

func (r *recorder) endStep() {
	if !r.stop {
		r.t++
	}
}

func (r *recorder) done() bool { return r.t >= r.steps }

// StartTrace begins recording, for the next steps training steps, the
// gradients of samples weights per layer (chosen with seed), with the
// weights' signs and momenta as they are now.
func (o *Optimizer) StartTrace(net *bnn.Network, samples, steps int, seed uint64) error {
	return o.startTrace(net, samples, steps, seed, nil)
}

// startTrace is StartTrace for the layers with keep[i] (all when keep is
// nil); the others get an empty trace. Their samples are drawn all the
// same, so the traced layers sample the weights StartTrace would.
func (o *Optimizer) startTrace(net *bnn.Network, samples, steps int, seed uint64, keep []bool) error {
	if samples < 1 || steps < 1 {
		return fmt.Errorf("bop: trace of %d samples × %d steps: both must be ≥ 1", samples, steps)
	}
	r := &recorder{steps: steps}
	rng := rand.New(rand.NewPCG(seed, 0x7472616365))
	for i, l := range o.layers {
		idx := momentumIndices(sample(rng, l.info.Weights, samples), l.info)
		if keep != nil && !keep[i] {
			r.layers = append(r.layers, recLayer{trace: fp.Trace{Gamma: o.gamma, Tau: o.cfg.Tau}})
			continue
		}
		tr := fp.Trace{Gamma: o.gamma, Tau: o.cfg.Tau, W0: make([]int8, len(idx)), M0: make([]float32, len(idx)), G: make([][]float32, steps)}
		f := l.momentum.Format()
		for s, x := range idx {
			tr.W0[s] = net.WeightSign(i, x/l.info.Stride, x%l.info.Stride)
			tr.M0[s] = f.Decode(l.momentum.Get(x))
		}
		for t := range tr.G {
			tr.G[t] = make([]float32, len(idx))
		}
		r.layers = append(r.layers, recLayer{idx: idx, trace: tr})
	}
	o.rec = r
	return nil
}

// StopTrace ends recording and returns the traces, one per layer, holding
// the steps recorded so far.
func (o *Optimizer) StopTrace() []fp.Trace {
	r := o.rec
	o.rec = nil
	if r == nil {
		return nil
	}
	out := make([]fp.Trace, len(r.layers))
	for i, rl := range r.layers {
		out[i] = rl.trace
		if out[i].G != nil {
			out[i].G = out[i].G[:r.t]
		}
	}
	return out
}

// CalibrationOptions configure Calibrate.
type CalibrationOptions struct {
	// Warmup fp32 steps run before recording, so the momenta approach the
	// magnitudes they keep during training (they grow from zero with time
	// constant 1/γ steps) and the search sees realistic values.
	Warmup   int
	Steps    int  // recorded fp32 steps (default 30)
	Samples  int  // weights sampled per layer (default 4096)
	PerLayer bool // one encoding per layer instead of one for all layers
	// BestEffort picks, when no candidate meets the limits, the one with the
	// lowest flip disagreement (then lost ratio, then fewest bits) instead
	// of failing.
	BestEffort bool
	// StochasticOnly keeps only stochastic-rounding candidates in the
	// ranking (Search.Stochastic must be set).
	StochasticOnly bool
	// FP32Below keeps fp32 momenta for layers with fewer weights than this
	// and leaves them out of the search: their momenta cost little memory,
	// and each of their weights matters more (a first conv layer has a few
	// hundred, each shaping a whole channel).
	FP32Below int
	Seed      uint64
	Search    fp.SearchOptions
}

// Calibration is what Calibrate found.
type Calibration struct {
	Results []fp.SearchResult // one for all searched layers, or one per layer
	Scopes  []string          // what each result is for: "all layers", "layer 2", "layers 1,2"
	Formats []fp.Format       // the chosen encodings (1 or one per layer)
	Traces  []fp.Trace
}

// Calibrate runs opt.Warmup training steps with the optimizer's current
// (fp32) momenta, then opt.Steps more recording a gradient trace per layer, then lets fp.Search pick
// the encoding(s) under opt.Search's limits. next fills net.Input() and
// net.Labels() and returns the number of rows. The optimizer keeps its
// momenta; pass the result's Formats to Convert to continue in them.
func Calibrate(net *bnn.Network, o *Optimizer, next func() (int, error), opt CalibrationOptions) (Calibration, error) {
	if opt.Steps == 0 {
		opt.Steps = 30
	}
	if opt.Samples == 0 {
		opt.Samples = 4096
	}
	for i, f := range o.Formats() {
		if f.Bits() != 32 {
			return Calibration{}, fmt.Errorf("bop: calibration needs fp32 momenta, layer %d is %v", i, f)
		}
	}
	for s := 0; s < opt.Warmup; s++ {
		m, err := next()
		if err != nil {
			return Calibration{}, fmt.Errorf("bop: calibration warm-up step %d: %w", s, err)
		}
		if _, err := net.TrainStep(m, o); err != nil {
			return Calibration{}, fmt.Errorf("bop: calibration warm-up step %d: %w", s, err)
		}
	}
	if err := o.StartTrace(net, opt.Samples, opt.Steps, opt.Seed); err != nil {
		return Calibration{}, err
	}
	for s := 0; s < opt.Steps; s++ {
		m, err := next()
		if err != nil {
			o.StopTrace()
			return Calibration{}, fmt.Errorf("bop: calibration step %d: %w", s, err)
		}
		if _, err := net.TrainStep(m, o); err != nil {
			o.StopTrace()
			return Calibration{}, fmt.Errorf("bop: calibration step %d: %w", s, err)
		}
	}
	cal := Calibration{Traces: o.StopTrace()}
	if opt.Search.Seed == 0 {
		opt.Search.Seed = opt.Seed
	}
	// Group the searched layers: all together, or one group per layer.
	var groups [][]int
	var kept []int
	for i, l := range net.Layers() {
		switch {
		case l.Weights < opt.FP32Below:
			kept = append(kept, i)
		case opt.PerLayer || len(groups) == 0:
			groups = append(groups, []int{i})
		default:
			groups[0] = append(groups[0], i)
		}
	}
	if len(groups) == 0 {
		return cal, fmt.Errorf("bop: every layer has fewer than %d weights and keeps fp32 momenta: nothing to search", opt.FP32Below)
	}
	perLayer := make([]fp.Format, len(cal.Traces))
	for _, i := range kept {
		perLayer[i] = fp.MustParseFormat("fp32")
	}
	for _, layers := range groups {
		g := make([]fp.Trace, len(layers))
		for k, i := range layers {
			g[k] = cal.Traces[i]
		}
		scope := "all layers"
		switch {
		case len(layers) == 1 && (opt.PerLayer || len(kept) > 0):
			scope = fmt.Sprintf("layer %d", layers[0])
		case len(kept) > 0:
			scope = "layers " + layerList(layers)
		}
		res, err := fp.Search(g, opt.Search)
		if err != nil {
			return cal, fmt.Errorf("bop: encoding search for %s: %w", scope, err)
		}
		if opt.StochasticOnly {
			res = onlyStochastic(res)
		}
		if !res.Found {
			if !opt.BestEffort || len(res.Ranking) == 0 {
				return cal, fmt.Errorf("bop: encoding search for %s: no candidate of %d..%d bits meets the limits (lost ratio ≤ %g, flip disagreement ≤ %g)",
					scope, opt.Search.MinBits, opt.Search.MaxBits, opt.Search.MaxLostRatio, opt.Search.MaxFlipDisagree)
			}
			res.Best = closest(res.Ranking)
		}
		cal.Results = append(cal.Results, res)
		cal.Scopes = append(cal.Scopes, scope)
		for _, i := range layers {
			perLayer[i] = res.Best.Format
		}
	}
	cal.Formats = perLayer
	if !opt.PerLayer && len(kept) == 0 {
		cal.Formats = perLayer[:1] // one format for all layers
	}
	return cal, nil
}

// layerList writes layer indices as "1,2,5".
func layerList(layers []int) string {
	s := make([]string, len(layers))
	for k, i := range layers {
		s[k] = strconv.Itoa(i)
	}
	return strings.Join(s, ",")
}

// closest is the infeasible candidate nearest to fp32 behaviour.
func closest(rs []fp.Candidate) fp.Candidate {
	best := rs[0]
	for _, c := range rs[1:] {
		switch {
		case c.FlipDisagreement != best.FlipDisagreement:
			if c.FlipDisagreement < best.FlipDisagreement {
				best = c
			}
		case c.LostRatio != best.LostRatio:
			if c.LostRatio < best.LostRatio {
				best = c
			}
		case c.Bits < best.Bits:
			best = c
		}
	}
	return best
}

// onlyStochastic drops the nearest and toward-zero candidates of a search
// result, keeping the order, and re-picks the best.
func onlyStochastic(r fp.SearchResult) fp.SearchResult {
	out := fp.SearchResult{}
	for _, c := range r.Ranking {
		if c.Format.Rounding == fp.Stochastic {
			out.Ranking = append(out.Ranking, c)
		}
	}
	if len(out.Ranking) > 0 && out.Ranking[0].Feasible {
		out.Best, out.Found = out.Ranking[0], true
	}
	return out
}
