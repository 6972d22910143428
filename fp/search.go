package fp

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// Trace is a recording of Bop on a sample of the weights of one layer over
// several steps, made by the optimizer with FP32 momenta.
type Trace struct {
	Gamma, Tau float32
	W0         []int8      // initial weight signs (+1/-1) of the sampled weights
	M0         []float32   // initial momenta (fp32) of the sampled weights
	G          [][]float32 // G[t][i]: gradient of sampled weight i at step t
}

// Validate checks the shapes and values of a trace, naming what is wrong.
func (tr *Trace) Validate() error {
	if !(tr.Gamma > 0 && tr.Gamma <= 1) {
		return fmt.Errorf("fp: trace gamma %g is not in (0,1]", tr.Gamma)
	}
	if !(tr.Tau >= 0) || math.IsInf(float64(tr.Tau), 0) {
		return fmt.Errorf("fp: trace tau %g is not a finite value ≥ 0", tr.Tau)
	}
	if len(tr.W0) != len(tr.M0) {
		return fmt.Errorf("fp: trace has %d weights but %d momenta", len(tr.W0), len(tr.M0))
	}
	if len(tr.W0) == 0 {
		return errors.New("fp: trace has no weights")
	}
	if len(tr.G) == 0 {
		return errors.New("fp: trace has no steps")
	}
	for i, w := range tr.W0 {
		if w != 1 && w != -1 {
			return fmt.Errorf("fp: trace weight %d is %d, want +1 or -1", i, w)
		}
	}
	for i, m := range tr.M0 {
		if !isFinite(m) {
			return fmt.Errorf("fp: trace momentum %d is %g", i, m)
		}
	}
	for t, g := range tr.G {
		if len(g) != len(tr.W0) {
			return fmt.Errorf("fp: trace step %d has %d gradients for %d weights", t, len(g), len(tr.W0))
		}
		for i, x := range g {
			if !isFinite(x) {
				return fmt.Errorf("fp: trace gradient [%d][%d] is %g", t, i, x)
			}
		}
	}
	return nil
}

func isFinite(x float32) bool { return math.Float32bits(x)&0x7f800000 != 0x7f800000 }

// flips applies Bop's flip rule (w·m > τ flips w; the momentum is kept) and
// calls seen(i) for every weight that flipped.
func applyFlips(w []int8, m []float32, tau float32, seen func(i int)) {
	for i, mi := range m {
		if (w[i] > 0 && mi > tau) || (w[i] < 0 && mi < -tau) {
			w[i] = -w[i]
			seen(i)
		}
	}
}

// TraceStats is what replaying a trace in one format did.
type TraceStats struct {
	Counts StepCounts // summed over all steps
	// Flips is the number of weight flips the format made, ReferenceFlips
	// the number FP32 made; FlipMismatches counts (step, weight) pairs that
	// flipped in exactly one of the two runs and FlipUnion those that
	// flipped in at least one.
	Flips, ReferenceFlips, FlipMismatches, FlipUnion int64
}

// FlipDisagreement is the Jaccard distance between the sets of (step,
// weight) flips of the format and of FP32: FlipMismatches/FlipUnion. It is
// symmetric, 0 when both flip exactly the same weights at the same steps
// (or neither flips at all) and 1 when no flip is shared.
func (s TraceStats) FlipDisagreement() float64 { return ratio(s.FlipMismatches, s.FlipUnion) }

// reference is the FP32 replay of a (subsampled) trace.
type reference struct {
	tr    Trace
	flips [][]uint64 // flips[t]: bitset of weights that flipped at step t
	total int64
}

func newReference(tr Trace) reference {
	n := len(tr.W0)
	ref := reference{tr: tr, flips: make([][]uint64, len(tr.G))}
	m := slices.Clone(tr.M0)
	w := slices.Clone(tr.W0)
	for t, g := range tr.G {
		for i := range m {
			m[i] += tr.Gamma * (g[i] - m[i])
		}
		bits := make([]uint64, (n+63)/64)
		applyFlips(w, m, tr.Tau, func(i int) {
			bits[i/64] |= 1 << (i % 64)
			ref.total++
		})
		ref.flips[t] = bits
	}
	return ref
}

// maxMagnitude is the largest |m| of the FP32 replay (all steps). It
// keeps one running maximum rather than every magnitude: the search only
// needs the top of the range, and a list of all of them (steps × weights ×
// layers float64s, copied again when layers are joined) was the largest
// allocation of an encoding search.
func (ref *reference) maxMagnitude() float64 {
	tr := ref.tr
	m := slices.Clone(tr.M0)
	var hi float32
	for _, g := range tr.G {
		for i := range m {
			m[i] += tr.Gamma * (g[i] - m[i])
			hi = max(hi, m[i], -m[i])
		}
	}
	return float64(hi)
}

// replayScratch holds a worker's buffers so candidates do not allocate.
type replayScratch struct {
	m     []float32
	w     []int8
	codes []uint32
	table []float32 // decode table of the candidate; not shared (see decodeCacheSize)
}

// replay runs the trace in format f and compares flips with the reference.
func (ref *reference) replay(f Format, rng *Rand, s *replayScratch) TraceStats {
	tr := ref.tr
	n := len(tr.W0)
	s.m = append(s.m[:0], tr.M0...)
	s.w = append(s.w[:0], tr.W0...)
	s.codes = slices.Grow(s.codes[:0], n)[:n]
	// The optimizer stores its initial momenta in f before the first step.
	near := f
	near.Rounding = NearestEven
	near.EncodeSlice(s.codes, s.m, nil)
	var tab []float32
	if f.Bits() <= 16 {
		s.table = fillDecodeTable(s.table, near)
		tab = s.table
		for i, code := range s.codes {
			s.m[i] = tab[code]
		}
	} else {
		near.DecodeSlice(s.m, s.codes)
	}
	var st TraceStats
	st.ReferenceFlips = ref.total
	for t, g := range tr.G {
		st.Counts.Add(simulateStep(f, s.m, g, tr.Gamma, rng, tab))
		rb := ref.flips[t]
		w, m, tau := s.w, s.m, tr.Tau
		for i, mi := range m {
			flipped := (w[i] > 0 && mi > tau) || (w[i] < 0 && mi < -tau)
			if flipped {
				w[i] = -w[i]
				st.Flips++
			}
			refFlipped := rb[i/64]>>(i%64)&1 != 0
			if flipped != refFlipped {
				st.FlipMismatches++
			}
			if flipped || refFlipped {
				st.FlipUnion++
			}
		}
	}
	return st
}

// SimulateTrace replays a trace with momenta stored in f (initial momenta
// rounded to nearest, then each step with f.Rounding) and with FP32, each
// run flipping its own weights, and returns the counts and the flip
// comparison.
func SimulateTrace(f Format, tr Trace, rng *Rand) (TraceStats, error) {
	if err := f.Validate(); err != nil {
		return TraceStats{}, err
	}
	if err := tr.Validate(); err != nil {
		return TraceStats{}, err
	}
	ref := newReference(tr)
	return ref.replay(f, rng, &replayScratch{}), nil
}

// SearchOptions bound the encoding search. Zero fields take the defaults
// given in brackets.
type SearchOptions struct {
	MinBits, MaxBits int     // candidate code widths [4, 16]; 2..32 allowed
	MaxLostRatio     float64 // feasible if lost updates / updates ≤ this [0.2]
	MaxFlipDisagree  float64 // feasible if TraceStats.FlipDisagreement ≤ this [0.05]
	Stochastic       bool    // also try stochastic-rounding variants
	Seed             uint64  // seed of the stochastic rounding streams
	// MaxWeights subsamples each trace to at most this many weights, evenly
	// spaced [2048], so the search stays fast on small boards.
	MaxWeights int
}

// Candidate is one simulated format.
type Candidate struct {
	Format                                                       Format
	Bits                                                         int
	LostRatio, UnderflowRatio, SaturationRatio, FlipDisagreement float64
	Flips, ReferenceFlips                                        int64
	Feasible                                                     bool
}

// SearchResult is the ranking (feasible first, then fewest bits, then
// lowest flip disagreement, lost ratio, nearest before stochastic) and the
// best feasible candidate, if any.
type SearchResult struct {
	Ranking []Candidate
	Best    Candidate
	Found   bool
}

func (o *SearchOptions) setDefaults() error {
	o.MinBits = cmp.Or(o.MinBits, 4)
	o.MaxBits = cmp.Or(o.MaxBits, 16)
	o.MaxLostRatio = cmp.Or(o.MaxLostRatio, 0.2)
	o.MaxFlipDisagree = cmp.Or(o.MaxFlipDisagree, 0.05)
	o.MaxWeights = cmp.Or(o.MaxWeights, 2048)
	switch {
	case o.MinBits < 2 || o.MaxBits > 32 || o.MinBits > o.MaxBits:
		return fmt.Errorf("fp: search bits %d..%d: need 2 ≤ min ≤ max ≤ 32", o.MinBits, o.MaxBits)
	case o.MaxLostRatio < 0 || o.MaxLostRatio > 1:
		return fmt.Errorf("fp: search MaxLostRatio %g is not in [0,1]", o.MaxLostRatio)
	case o.MaxFlipDisagree < 0 || o.MaxFlipDisagree > 1:
		return fmt.Errorf("fp: search MaxFlipDisagree %g is not in [0,1]", o.MaxFlipDisagree)
	case o.MaxWeights < 1:
		return fmt.Errorf("fp: search MaxWeights %d is not positive", o.MaxWeights)
	}
	return nil
}

// subsample keeps at most max evenly spaced weights of a trace.
func subsample(tr Trace, max int) Trace {
	n := len(tr.W0)
	if n <= max {
		return tr
	}
	idx := make([]int, max)
	for k := range idx {
		idx[k] = k * n / max
	}
	out := Trace{Gamma: tr.Gamma, Tau: tr.Tau, W0: make([]int8, max), M0: make([]float32, max), G: make([][]float32, len(tr.G))}
	for k, i := range idx {
		out.W0[k], out.M0[k] = tr.W0[i], tr.M0[i]
	}
	for t, g := range tr.G {
		out.G[t] = make([]float32, max)
		for k, i := range idx {
			out.G[t][k] = g[i]
		}
	}
	return out
}

// candidateFormats lists the formats to simulate: for every width and
// exponent size, the biases whose largest value lies between τ (smaller,
// and no weight could ever flip) and twice the largest |m| seen (larger only
// wastes range at the bottom, where the small momenta are).
func candidateFormats(opt SearchOptions, tau, maxAbs float64) []Format {
	lowExp := math.Floor(math.Log2(math.Max(tau, 1e-38)))
	highExp := math.Ceil(math.Log2(math.Max(maxAbs, tau))) + 1
	var out []Format
	add := func(f Format) {
		out = append(out, f)
		if opt.Stochastic {
			f.Rounding = Stochastic
			out = append(out, f)
		}
	}
	for bits := opt.MinBits; bits <= opt.MaxBits; bits++ {
		for e := 1; e <= 8 && e <= bits-1; e++ {
			m := bits - 1 - e
			if m > 23 {
				continue
			}
			f := Format{Exp: e, Mant: m}
			lo, hi := BiasRange(e, m, false)
			for top := int(lowExp); top <= int(highExp); top++ {
				// MaxValue ≈ 2^(maxExpField-Bias+1); choose the bias that puts it at 2^top.
				f.Bias = f.maxExpField() + 1 - top
				if f.Bias < lo || f.Bias > hi || f.MaxValue() <= tau {
					continue
				}
				add(f)
			}
		}
		if bits == 16 {
			add(FP16)
			add(BF16)
		}
	}
	return out
}

// Search simulates candidate encodings on one or more traces (layers) and
// ranks them; it picks the fewest-bit format whose lost-update ratio and
// flip disagreement with FP32 stay within the limits on all traces
// together. Call it per layer for per-layer formats. Candidates are
// simulated in parallel; the result depends only on the traces and options.
func Search(traces []Trace, opt SearchOptions) (SearchResult, error) {
	if err := opt.setDefaults(); err != nil {
		return SearchResult{}, err
	}
	if len(traces) == 0 {
		return SearchResult{}, errors.New("fp: search needs at least one trace")
	}
	refs := make([]reference, len(traces))
	maxAbs, tau := 0.0, 0.0
	for k, tr := range traces {
		if err := tr.Validate(); err != nil {
			return SearchResult{}, fmt.Errorf("trace %d: %w", k, err)
		}
		refs[k] = newReference(subsample(tr, opt.MaxWeights))
		maxAbs = math.Max(maxAbs, refs[k].maxMagnitude())
		tau = math.Max(tau, float64(tr.Tau))
	}
	maxAbs = math.Max(maxAbs, tau)
	formats := candidateFormats(opt, tau, maxAbs)
	ranking := make([]Candidate, len(formats))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.NumCPU() {
		wg.Go(func() {
			var s replayScratch
			for ci := range next {
				f := formats[ci]
				rng := NewRand(opt.Seed, uint64(ci))
				var total TraceStats
				for k := range refs {
					st := refs[k].replay(f, &rng, &s)
					total.Counts.Add(st.Counts)
					total.Flips += st.Flips
					total.ReferenceFlips += st.ReferenceFlips
					total.FlipMismatches += st.FlipMismatches
					total.FlipUnion += st.FlipUnion
				}
				c := Candidate{
					Format: f, Bits: f.Bits(),
					LostRatio:        total.Counts.LostRatio(),
					UnderflowRatio:   total.Counts.UnderflowRatio(),
					SaturationRatio:  total.Counts.SaturationRatio(),
					FlipDisagreement: total.FlipDisagreement(),
					Flips:            total.Flips, ReferenceFlips: total.ReferenceFlips,
				}
				c.Feasible = c.LostRatio <= opt.MaxLostRatio && c.FlipDisagreement <= opt.MaxFlipDisagree
				ranking[ci] = c
			}
		})
	}
	for ci := range formats {
		next <- ci
	}
	close(next)
	wg.Wait()
	sort.SliceStable(ranking, func(i, j int) bool { return candidateLess(ranking[i], ranking[j]) })
	res := SearchResult{Ranking: ranking}
	if len(ranking) > 0 && ranking[0].Feasible {
		res.Best, res.Found = ranking[0], true
	}
	return res, nil
}

func candidateLess(a, b Candidate) bool {
	switch {
	case a.Feasible != b.Feasible:
		return a.Feasible
	case a.Bits != b.Bits:
		return a.Bits < b.Bits
	case a.FlipDisagreement != b.FlipDisagreement:
		return a.FlipDisagreement < b.FlipDisagreement
	case a.LostRatio != b.LostRatio:
		return a.LostRatio < b.LostRatio
	case a.Format.Rounding != b.Format.Rounding:
		return a.Format.Rounding < b.Format.Rounding // nearest needs no random numbers
	}
	return a.Format.String() < b.Format.String()
}
