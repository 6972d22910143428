package bop

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/internal/binio"
)

// WarmupFormat is the momentum encoding `--momentum auto` trains in before
// and while it chooses, and the reference arm of the race: an 8-bit
// stochastic e3m4 whose largest value is about 2^7·τ. Its range is set from
// τ alone because nothing has been measured yet: Bop flips on |m| > τ, so the
// values that decide flips sit near τ, and the momenta of the MNIST models
// stay below about 100·τ. Stochastic rounding keeps γ-sized updates in
// expectation where nearest rounding would drop them. Measured on mlp-l (1
// epoch, τ = 1e-7) it reached 96.21% against fp32's 96.47%, and its momenta
// are half those of a 16-bit warm-up: a 16-bit one would raise the peak RSS
// 19% above a run with 6-bit momenta fixed (48.1 against 40.4 MiB).
func WarmupFormat(tau float32) fp.Format {
	t := float64(tau)
	if !(t > 0) || math.IsInf(t, 0) {
		t = 1e-6 // no threshold: the default τ's range
	}
	f := fp.Format{Exp: 3, Mant: 4, Rounding: fp.Stochastic}
	top := int(math.Floor(math.Log2(t))) + 7
	f.Bias = 7 + 1 - top // largest value ≈ 2^top (e3 has exponent fields up to 7)
	lo, hi := fp.BiasRange(f.Exp, f.Mant, false)
	f.Bias = min(max(f.Bias, lo), hi)
	return f
}

// Warming reports whether formats are those of an `auto` run that has not
// chosen yet: the warm-up format, or fp32 (what earlier versions warmed up
// in, so their checkpoints resume into the selection).
func Warming(formats []fp.Format, tau float32) bool {
	w := WarmupFormat(tau)
	for _, f := range formats {
		if f != w && f.Bits() != 32 {
			return false
		}
	}
	return len(formats) > 0
}

// Score is a held-out evaluation: mean softmax cross-entropy and accuracy
// over N examples.
type Score struct {
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	N        int     `json:"n"`
}

// floor is the lowest accuracy within tol of the reference score r: tol,
// or one held-out example when that is more (a 48-example set cannot tell
// half a point).
func (r Score) floor(tol float64) float64 {
	if r.N > 0 {
		tol = max(tol, 1/float64(r.N))
	}
	return r.Accuracy - tol
}

// SelectOptions configure Select. Zero fields take the defaults in brackets.
type SelectOptions struct {
	// Warmup steps in the warm-up format before the traced steps [0]: the
	// momenta grow from zero with time constant 1/γ steps, so the race must
	// start from momenta near their working size.
	Warmup int
	// TraceSteps more warm-up steps record the gradients of Samples weights
	// per layer for the pre-filter [30 steps, 2048 weights].
	TraceSteps, Samples int
	// RaceSteps is K: every arm trains K steps from the warm start and is
	// scored (an arm below the reference by twice the tolerance stops
	// there), then K more steps and is judged by the second score [100].
	RaceSteps int
	// Tolerance is how much held-out accuracy (a fraction: 0.005 = half a
	// point) a candidate may lose against the reference arm by the end of
	// training [0.005]; the race allows half of it after 2K steps.
	Tolerance float64
	// MinBits..MaxBits are the candidate widths [4 .. the warm-up width − 1].
	MinBits, MaxBits int
	// Layers that hold less than 1/32 of the weights keep the reference
	// format: their momenta cost little, and each of their weights weighs
	// more (a first conv layer's few hundred shape whole channels). Uniform
	// races them with the others instead.
	Uniform bool
	// PerLayer pre-filters each layer's range on its own trace and, after
	// the race, tries the largest layer one width lower than the winner.
	PerLayer bool
	Seed     uint64
	// Rewind puts the training stream back where the race began, so every
	// arm trains on the same batches (and training goes on from there after
	// the choice). Nil: arms take consecutive batches, which adds noise.
	Rewind func() error
	// Scratch holds the warm start between arms. A file keeps it out of
	// memory; nil keeps it in memory, where its momenta count against the
	// 16-bit budget.
	Scratch io.ReadWriteSeeker
	// OnMemory, when set, is told at every phase the momentum bytes held:
	// live momenta (by capacity), their copy in a memory scratch, and any
	// layer that is being converted counted twice.
	OnMemory func(phase string, momentumBytes int64)
	// Exhaustive races every candidate for 2K steps instead of stopping at
	// the first that qualifies (the choice is the same; for measurements).
	Exhaustive bool
	// Logf reports the phases and each arm's scores.
	Logf func(format string, args ...any)
	// Search limits the pre-filter when eval is nil (no held-out data):
	// the fewest-bit stochastic candidate within its lost-ratio and
	// flip-disagreement limits is then taken without a race.
	Search fp.SearchOptions
}

// Arm is one raced encoding (or set of per-layer encodings).
type Arm struct {
	Formats   []fp.Format `json:"-"`
	Names     []string    `json:"formats"`
	Bits      float64     `json:"bits"`
	Scores    []Score     `json:"scores"` // after K and 2K steps
	Qualified bool        `json:"qualified"`
	Reason    string      `json:"reason,omitempty"`
	Seconds   float64     `json:"seconds"` // restore, steps and scoring
}

// Selection is what Select chose and why.
type Selection struct {
	Formats   []fp.Format       `json:"-"`
	Reference *Arm              `json:"reference,omitempty"`
	Arms      []Arm             `json:"arms"`
	Prefilter []fp.SearchResult `json:"-"`
	Scopes    []string          `json:"-"` // what each Prefilter result is for
	// Fallback: no candidate stayed within tolerance (or none could be
	// tried), so the reference format was kept.
	Fallback bool   `json:"fallback"`
	Reason   string `json:"reason"`
	// Steps are the training steps that stay in the model (warm-up and
	// trace); RaceSteps those the arms ran and the rewind undid.
	Steps     int     `json:"steps"`
	RaceSteps int     `json:"race_steps"`
	Seconds   float64 `json:"seconds"`
	PeakBytes int64   `json:"peak_momentum_bytes"`
}

// smallShare: layers with less than 1/smallShare of the weights keep the
// reference format unless SelectOptions.Uniform.
const smallShare = 32

// ErrNoCandidate is wrapped when the options leave no width to try.
var ErrNoCandidate = errors.New("no candidate encoding")

type selector struct {
	net      *bnn.Network
	o        *Optimizer
	next     func() (int, error)
	eval     func() (Score, error)
	opt      SelectOptions
	warm     []fp.Format // per layer
	arena    [][]uint64  // per layer: the warm-up momenta's storage, reused by every arm
	scratch  io.ReadWriteSeeker
	memory   *memScratch // scratch, when it is in memory
	snapMom  int64       // momentum bytes in the snapshot
	stream   binio.Stream
	peak     int64
	sel      *Selection
	raceFrom time.Time
}

// Select chooses the momentum encoding of an `auto` run by what it does to
// training: after a warm-up in WarmupFormat (the optimizer must hold it, or
// fp32, which is converted layer by layer), the last TraceSteps steps are
// traced and fp.Search picks, for each width, the range (bias) whose replay
// flips most like fp32, and a runner-up of another exponent width — the
// pre-filter. Then candidates race from the same warm start against the
// reference arm (the warm-up format, trained the same steps): each trains K
// steps on the training stream, is scored on held-out data by eval, trains K
// more and is judged (see verdict). The widths are walked from startBits
// (see race); a width whose first format is out races its runner-up. If no
// width qualifies, the reference format is kept and Fallback is set. Before
// returning, the warm start is restored in the chosen format, so training
// goes on from the end of the warm-up (on the same batches when Rewind is
// set).
//
// Momenta never take more than 16 bits per weight at any moment: each arm's
// codes live in the warm-up momenta's 8-bit storage, the warm start is kept
// in Scratch, and the chosen format is allocated only after that storage is
// released. The choice depends only on the seed, the stream and eval, not
// on the thread count.
//
// next fills net.Input() and net.Labels() and returns the rows; eval scores
// the network as it is on held-out data (nil: choose by the pre-filter).
func Select(net *bnn.Network, o *Optimizer, next func() (int, error), eval func() (Score, error), opt SelectOptions) (Selection, error) {
	start := time.Now()
	opt.TraceSteps = cmp.Or(opt.TraceSteps, 30)
	opt.Samples = cmp.Or(opt.Samples, 2048)
	opt.RaceSteps = cmp.Or(opt.RaceSteps, 100)
	opt.Tolerance = cmp.Or(opt.Tolerance, 0.005)
	opt.MinBits = cmp.Or(opt.MinBits, 4)
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	warm := WarmupFormat(o.cfg.Tau)
	if opt.MaxBits == 0 || opt.MaxBits >= warm.Bits() {
		opt.MaxBits = warm.Bits() - 1
	}
	switch {
	case opt.Warmup < 0 || opt.TraceSteps < 1 || opt.Samples < 1 || opt.RaceSteps < 1:
		return Selection{}, fmt.Errorf("bop: select: warm-up %d, trace %d steps of %d weights, race %d steps: want warm-up ≥ 0 and the others ≥ 1",
			opt.Warmup, opt.TraceSteps, opt.Samples, opt.RaceSteps)
	case !(opt.Tolerance >= 0 && opt.Tolerance < 1):
		return Selection{}, fmt.Errorf("bop: select: tolerance %g: want a fraction in [0, 1)", opt.Tolerance)
	case opt.MinBits < 2 || opt.MinBits > opt.MaxBits:
		return Selection{}, fmt.Errorf("bop: select: %w: widths %d..%d (candidates must be narrower than the %d-bit warm-up format)",
			ErrNoCandidate, opt.MinBits, opt.MaxBits, warm.Bits())
	case o.rec != nil || o.shadow != nil:
		return Selection{}, errors.New("bop: select: the optimizer is already tracing or tracking flip agreement")
	}
	sel := &Selection{}
	s := &selector{net: net, o: o, next: next, eval: eval, opt: opt, sel: sel, scratch: opt.Scratch}
	s.warm = make([]fp.Format, len(o.layers))
	for i := range s.warm {
		s.warm[i] = warm
	}
	if s.scratch == nil {
		s.memory = &memScratch{}
		s.scratch = s.memory
	}
	err := s.run()
	sel.Seconds = time.Since(start).Seconds()
	sel.PeakBytes = s.peak
	return *sel, err
}

func (s *selector) run() error {
	o, opt := s.o, s.opt
	s.toWarm()
	s.report("warm-up")
	for k := 0; k < opt.Warmup; k++ {
		if err := s.step(); err != nil {
			return fmt.Errorf("bop: select: warm-up step %d: %w", k+1, err)
		}
		s.sel.Steps++
	}
	// Only the layers the race decides are traced: the small ones keep
	// the reference format whatever the trace says.
	groups, err := s.groups()
	if err != nil {
		return err
	}
	keep := make([]bool, len(o.layers))
	for _, g := range groups {
		for _, i := range g {
			keep[i] = true
		}
	}
	if err := o.startTrace(s.net, opt.Samples, opt.TraceSteps, opt.Seed, keep); err != nil {
		return err
	}
	for k := 0; k < opt.TraceSteps; k++ {
		if err := s.step(); err != nil {
			o.StopTrace()
			return fmt.Errorf("bop: select: traced step %d: %w", k+1, err)
		}
		s.sel.Steps++
	}
	traces := o.StopTrace()
	s.report("trace")
	cands, err := s.prefilter(traces, groups)
	traces = nil
	runtime.GC() // the traces go before the race allocates anything
	if err != nil {
		return err
	}
	if s.eval == nil {
		return s.choosePrefiltered(cands)
	}
	if err := s.snapshot(); err != nil {
		return err
	}
	s.report("snapshot")
	s.arenaFromWarm()
	s.raceFrom = time.Now()
	if err := s.race(cands); err != nil {
		return err
	}
	return s.finish(s.sel.Formats)
}

func (s *selector) step() error {
	m, err := s.next()
	if err != nil {
		return err
	}
	_, err = s.net.TrainStep(m, s.o)
	return err
}

// report tells OnMemory the momentum bytes held now (plus extra bytes
// held for a moment, such as a layer under conversion) and keeps the peak.
func (s *selector) report(phase string) { s.reportExtra(phase, 0) }

func (s *selector) reportExtra(phase string, extra int64) {
	b := extra + s.snapMomInMemory()
	for i, l := range s.o.layers {
		switch {
		case s.arena != nil && s.arena[i] != nil:
			b += int64(cap(s.arena[i])) * 8
		case l.momentum != nil:
			b += int64(cap(l.momentum.Words())) * 8
		}
	}
	s.peak = max(s.peak, b)
	if s.opt.OnMemory != nil {
		s.opt.OnMemory(phase, b)
	}
}

func (s *selector) snapMomInMemory() int64 {
	if s.memory == nil || len(s.memory.buf) == 0 {
		return 0
	}
	return s.snapMom
}

// toWarm converts momenta that are not in the warm-up format yet (fp32
// from an older checkpoint).
func (s *selector) toWarm() { s.convertLayers(s.warm, "convert to warm-up format") }

// convertLayers re-encodes each layer's momenta in formats, one layer at a
// time so only one layer is ever held twice; a layer already in its format
// stays as it is.
func (s *selector) convertLayers(formats []fp.Format, phase string) {
	for i, l := range s.o.layers {
		if l.momentum.Format() == formats[i] {
			continue
		}
		nv := fp.NewVector(formats[i], l.momentum.Len())
		s.reportExtra(phase, int64(nv.Bytes()))
		convertInto(nv, l.momentum, s.o.cfg.Seed, i)
		s.o.layers[i] = newLayerState(l.info, nv)
	}
	s.o.cfg.Formats = append([]fp.Format(nil), formats...)
}

// convertInto re-encodes old into nv chunk by chunk, rounding with nv's
// format on the stream Convert uses for the layer.
func convertInto(nv, old *fp.Vector, seed uint64, layer int) {
	const chunk = 4096
	var buf [chunk]float32
	rng := fp.NewRand(seed, streamOf(-1, layer, 0, 0))
	for k := 0; k < old.Len(); k += chunk {
		b := buf[:min(chunk, old.Len()-k)]
		old.DecodeRange(b, k)
		nv.EncodeRange(k, b, &rng)
	}
}

// candidate is one pre-filtered format per searched group of layers.
type candidate struct {
	bits    int
	formats []fp.Format // per layer
	// alt is the runner-up of the width: per layer, the best-ranked format
	// with another exponent width (nil when the trace offers none). The
	// 30-step flip criterion ranks exponent widths poorly, so a width whose
	// first format fails the race gets a second try with it.
	alt   []fp.Format
	notes string
}

// prefilter runs fp.Search on the traces (one group, or one per layer with
// PerLayer) and keeps, for every width, the stochastic candidate whose
// replay flips most like fp32 (then loses the fewest updates): the width
// is what the race decides, the range is what the trace can tell.
// Stochastic only: at 4–7 bits nearest rounding drops every update smaller
// than half a step, which at γ = 1e-3 is nearly all of them.
func (s *selector) prefilter(traces []fp.Trace, groups [][]int) ([]candidate, error) {
	opt := s.opt
	so := opt.Search
	so.MinBits, so.MaxBits = opt.MinBits, opt.MaxBits
	so.Stochastic = true
	if so.Seed == 0 {
		so.Seed = opt.Seed
	}
	limits := so
	so.MaxLostRatio, so.MaxFlipDisagree = 1, 1 // rank all; the race decides
	best := map[int][]fp.Format{}              // width → per layer
	alt := map[int][]fp.Format{}               // width → per layer, nil until a group has a runner-up
	feasible := map[int]bool{}
	for w := opt.MinBits; w <= opt.MaxBits; w++ {
		best[w] = append([]fp.Format(nil), s.warm...)
		feasible[w] = true
	}
	var altOf []map[int]fp.Format // per group: width → runner-up
	for _, g := range groups {
		tr := make([]fp.Trace, len(g))
		for k, i := range g {
			tr[k] = traces[i]
		}
		res, err := fp.Search(tr, so)
		if err != nil {
			return nil, fmt.Errorf("bop: select: pre-filter of layers %s: %w", layerList(g), err)
		}
		res = onlyStochastic(res)
		s.sel.Prefilter = append(s.sel.Prefilter, res)
		s.sel.Scopes = append(s.sel.Scopes, "layers "+layerList(g))
		seen := map[int]bool{}
		runnerUp := map[int]fp.Format{}
		altOf = append(altOf, runnerUp)
		for _, c := range res.Ranking { // fewest bits, then lowest flip disagreement, lost ratio
			if seen[c.Bits] {
				if _, ok := runnerUp[c.Bits]; !ok && c.Format.Exp != best[c.Bits][g[0]].Exp {
					runnerUp[c.Bits] = c.Format
				}
				continue
			}
			seen[c.Bits] = true
			for _, i := range g {
				best[c.Bits][i] = c.Format
			}
			if c.LostRatio > limitOr(limits.MaxLostRatio, 0.9) || c.FlipDisagreement > limitOr(limits.MaxFlipDisagree, 0.1) {
				feasible[c.Bits] = false
			}
		}
		for w := opt.MinBits; w <= opt.MaxBits; w++ {
			if !seen[w] {
				delete(best, w)
			}
		}
	}
	for gi, g := range groups {
		for w, f := range altOf[gi] {
			if _, ok := best[w]; !ok {
				continue
			}
			if alt[w] == nil {
				alt[w] = append([]fp.Format(nil), best[w]...)
			}
			for _, i := range g {
				alt[w][i] = f
			}
		}
	}
	var out []candidate
	for w := opt.MinBits; w <= opt.MaxBits; w++ {
		if fs, ok := best[w]; ok {
			c := candidate{bits: w, formats: fs, alt: alt[w]}
			if feasible[w] {
				c.notes = "within the pre-filter limits"
			}
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bop: select: %w of %d..%d bits in the pre-filter", ErrNoCandidate, opt.MinBits, opt.MaxBits)
	}
	return out, nil
}

// groups are the layers the race decides, searched together (or one group
// per layer with PerLayer); layers with less than 1/smallShare of the
// weights are left out unless Uniform.
func (s *selector) groups() ([][]int, error) {
	opt := s.opt
	layers := s.net.Layers()
	total := 0
	for _, l := range layers {
		total += l.Weights
	}
	var groups [][]int
	for i, l := range layers {
		switch {
		case !opt.Uniform && l.Weights*smallShare < total:
			// Stays in the reference format.
		case opt.PerLayer || len(groups) == 0:
			groups = append(groups, []int{i})
		default:
			groups[0] = append(groups[0], i)
		}
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("bop: select: %w: every layer is small enough to stay in the reference format", ErrNoCandidate)
	}
	return groups, nil
}

func limitOr(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// choosePrefiltered is the choice without held-out data: the narrowest
// candidate within the pre-filter's limits, else the warm-up format. The
// momenta are converted in place, narrowing, so nothing is held twice.
func (s *selector) choosePrefiltered(cands []candidate) error {
	s.sel.Formats = s.warm
	s.sel.Fallback = true
	s.sel.Reason = "no held-out data and no candidate within the pre-filter limits: kept the warm-up format " + s.warm[0].String()
	for _, c := range cands {
		if c.notes != "" {
			s.sel.Formats, s.sel.Fallback = c.formats, false
			s.sel.Reason = fmt.Sprintf("no held-out data: the narrowest candidate within the pre-filter limits (%d bits)", c.bits)
			break
		}
	}
	if !s.sel.Fallback {
		s.convertLayers(s.sel.Formats, "convert to the chosen format")
	}
	s.report("chosen")
	s.opt.Logf("momentum auto: %s: %s", formatNames(s.sel.Formats), s.sel.Reason)
	return nil
}

// snapshot writes the warm start — weights, batch norm, step, γ, Adam
// state, counter totals and the momenta in their warm-up codes — to the
// scratch, a chunk at a time.
func (s *selector) snapshot() error {
	w := s.scratch
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("bop: select: snapshot: %w", err)
	}
	if s.memory != nil {
		s.memory.buf = s.memory.buf[:0]
	}
	if err := s.net.WriteParams(w); err != nil {
		return fmt.Errorf("bop: select: snapshot: %w", err)
	}
	o := s.o
	head := []uint64{uint64(o.step), uint64(math.Float32bits(o.gamma))}
	for _, c := range o.sum {
		head = append(head, uint64(c.Values), uint64(c.Changed), uint64(c.Lost), uint64(c.Underflow), uint64(c.Saturated), uint64(c.Flips))
	}
	if err := s.stream.WriteU64s(w, head); err != nil {
		return fmt.Errorf("bop: select: snapshot: %w", err)
	}
	for _, a := range o.adam {
		if err := s.stream.WriteF32s(w, a.m); err != nil {
			return fmt.Errorf("bop: select: snapshot: %w", err)
		}
		if err := s.stream.WriteF32s(w, a.v); err != nil {
			return fmt.Errorf("bop: select: snapshot: %w", err)
		}
	}
	s.snapMom = 0
	for i, l := range o.layers {
		if err := s.stream.WriteU64s(w, l.momentum.Words()); err != nil {
			return fmt.Errorf("bop: select: snapshot of layer %d momenta: %w", i, err)
		}
		s.snapMom += int64(l.momentum.Bytes())
	}
	return nil
}

func (s *selector) arenaFromWarm() {
	s.arena = make([][]uint64, len(s.o.layers))
	for i, l := range s.o.layers {
		s.arena[i] = l.momentum.Words()
	}
}

// restore puts the warm start back with the momenta re-encoded in formats:
// into the arena when there is one, else into newly allocated vectors.
func (s *selector) restore(formats []fp.Format, phase string) error {
	r := s.scratch
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("bop: select: restoring the warm start: %w", err)
	}
	if err := s.net.ReadParams(r); err != nil {
		return fmt.Errorf("bop: select: restoring the warm start: %w", err)
	}
	o := s.o
	head := make([]uint64, 2+6*len(o.sum))
	if err := s.stream.ReadU64s(r, head); err != nil {
		return fmt.Errorf("bop: select: restoring the warm start: %w", err)
	}
	o.step, o.gamma = int64(head[0]), math.Float32frombits(uint32(head[1]))
	for i := range o.sum {
		h := head[2+6*i:]
		o.sum[i] = Counters{StepCounts: fp.StepCounts{Values: int64(h[0]), Changed: int64(h[1]), Lost: int64(h[2]), Underflow: int64(h[3]), Saturated: int64(h[4])}, Flips: int64(h[5])}
	}
	clear(o.last)
	for _, a := range o.adam {
		if err := s.stream.ReadF32s(r, a.m); err != nil {
			return fmt.Errorf("bop: select: restoring Adam state: %w", err)
		}
		if err := s.stream.ReadF32s(r, a.v); err != nil {
			return fmt.Errorf("bop: select: restoring Adam state: %w", err)
		}
	}
	for i := range o.layers {
		info := o.layers[i].info
		n := info.Out * info.Stride
		f := formats[i]
		need := (n*f.Bits() + 63) / 64
		var words []uint64
		if s.arena != nil {
			words = s.arena[i][:need]
			clear(words)
		} else {
			words = make([]uint64, need)
		}
		v, err := fp.VectorFromWords(f, n, words)
		if err != nil {
			return fmt.Errorf("bop: select: layer %d momenta in %v: %w", i, f, err)
		}
		if err := s.readMomenta(r, v, i); err != nil {
			return err
		}
		o.layers[i] = newLayerState(info, v)
		if s.arena == nil {
			s.report(phase)
		}
	}
	o.cfg.Formats = append([]fp.Format(nil), formats...)
	s.report(phase)
	return nil
}

// readMomenta decodes layer i's warm-up codes from r, 4096 at a time, into v.
func (s *selector) readMomenta(r io.Reader, v *fp.Vector, i int) error {
	const chunk = 4096 // a multiple of 64 codes: whole words of any width
	wb := s.warm[i].Bits()
	words := make([]uint64, chunk*wb/64)
	var buf [chunk]float32
	rng := fp.NewRand(s.o.cfg.Seed, streamOf(-1, i, 0, 0))
	for k := 0; k < v.Len(); k += chunk {
		n := min(chunk, v.Len()-k)
		ws := words[:(n*wb+63)/64]
		if err := s.stream.ReadU64s(r, ws); err != nil {
			return fmt.Errorf("bop: select: restoring layer %d momenta: %w", i, err)
		}
		src, err := fp.VectorFromWords(s.warm[i], n, ws)
		if err != nil {
			return fmt.Errorf("bop: select: restoring layer %d momenta: %w", i, err)
		}
		if v.Format() == s.warm[i] {
			// Same codes: copy them, so the reference restarts exactly.
			for j := range n {
				v.Set(k+j, src.Get(j))
			}
			continue
		}
		src.DecodeRange(buf[:n], 0)
		v.EncodeRange(k, buf[:n], &rng)
	}
	return nil
}

// raceShare is the part of the tolerance an arm may lose after 2K steps
// whatever its loss (see verdict).
// The gap to the reference keeps growing after the race: in the measured
// MNIST runs a candidate's gap at the end of training was about twice its
// gap after 200 steps (mlp-s 5-bit: 0.26 point after 200 steps, about 0.6
// after 1200; mlp-l 6-bit: 0.24, then 0.41 after 600), so the race asks
// for half the tolerance to leave the whole of it at the end.
const raceShare = 0.5

// lossBand is how much higher than the reference's an arm's held-out loss
// may be after 2K steps, whatever its accuracy. The loss weighs every
// example and foretold the end of training better than the accuracy did:
// on mlp-l, arms 0.14 and 0.08 point behind the reference after 200 steps
// but 6% and 7% above it in loss ended 1.5 points behind after 4 epochs,
// while cnn's 4-bit arm (3.6% above) ended 0.15 point behind.
const lossBand = 0.05

// startBits is the width the race tries first: 6-bit stochastic momenta
// stayed within a point of fp32 on every model of the MNIST table, so the
// walk from there usually takes two arms.
const startBits = 6

// race runs the reference for 2K steps, then walks the widths from
// startBits: down while candidates qualify, or up until one does. The
// winner is the narrowest qualifying width next to a failing one, so a
// narrow arm that got lucky is only taken if the one above it qualified
// too; an arm that fails by bad luck costs bits, never accuracy.
func (s *selector) race(cands []candidate) error {
	opt, sel := s.opt, s.sel
	ref, err := s.arm(s.warm, nil, "reference")
	if err != nil {
		return err
	}
	sel.Reference = &ref
	opt.Logf("momentum auto: reference %s: held-out accuracy %.4f after %d steps, %.4f after %d (loss %.4f, %.4f) (%.1f s)",
		formatNames(s.warm), ref.Scores[0].Accuracy, opt.RaceSteps, ref.Scores[1].Accuracy, 2*opt.RaceSteps, ref.Scores[0].Loss, ref.Scores[1].Loss, ref.Seconds)
	raced := make([]*Arm, len(cands)) // per width: the arm that qualified, else the last one raced
	var arms []Arm
	get := func(i int) (*Arm, error) {
		if raced[i] != nil {
			return raced[i], nil
		}
		c := cands[i]
		for _, fs := range [][]fp.Format{c.formats, c.alt} {
			if fs == nil {
				continue
			}
			a, err := s.arm(fs, ref.Scores, fmt.Sprintf("%d bits", c.bits))
			if err != nil {
				return nil, err
			}
			s.logArm(a)
			arms = append(arms, a)
			raced[i] = &a
			if a.Qualified {
				break
			}
		}
		return raced[i], nil
	}
	if opt.Exhaustive {
		for i := range cands {
			if _, err := get(i); err != nil {
				return err
			}
		}
	}
	first := 0
	for i, c := range cands {
		if c.bits <= startBits {
			first = i
		}
	}
	win := -1
	a, err := get(first)
	if err != nil {
		return err
	}
	if a.Qualified {
		win = first
		for i := first - 1; i >= 0; i-- {
			if a, err = get(i); err != nil {
				return err
			}
			if !a.Qualified {
				break
			}
			win = i
		}
	} else {
		for i := first + 1; i < len(cands); i++ {
			if a, err = get(i); err != nil {
				return err
			}
			if a.Qualified {
				win = i
				break
			}
		}
	}
	sel.Arms = arms
	var formats []fp.Format
	if win >= 0 {
		formats = raced[win].Formats
		if opt.PerLayer {
			a, ok, err := s.lowerLargest(formats, cands, ref.Scores)
			if err != nil {
				return err
			}
			if ok {
				s.logArm(a)
				sel.Arms = append(sel.Arms, a)
				if a.Qualified {
					formats = a.Formats
				}
			}
		}
	}
	if formats == nil {
		sel.Formats, sel.Fallback = s.warm, true
		sel.Reason = fmt.Sprintf("no candidate of %d..%d bits kept held-out accuracy within %.2g points of the reference (%.2g with no higher loss; or one held-out example): kept the reference format %s",
			opt.MinBits, opt.MaxBits, 100*raceShare*opt.Tolerance, 100*opt.Tolerance, s.warm[0])
		opt.Logf("momentum auto: %s", sel.Reason)
		return nil
	}
	sel.Formats = formats
	sel.Reason = fmt.Sprintf("the narrowest width whose held-out accuracy after %d steps stayed within %.2g points of the reference's, or within %.2g with no higher loss, and whose loss stayed within %.0f%% of it (the next narrower one did not, or none is left)",
		2*opt.RaceSteps, 100*raceShare*opt.Tolerance, 100*opt.Tolerance, 100*lossBand)
	return nil
}

func (s *selector) logArm(a Arm) {
	line := fmt.Sprintf("momentum auto: arm %s (%.2f bits):", strings.Join(a.Names, ","), a.Bits)
	for k, sc := range a.Scores {
		line += fmt.Sprintf(" accuracy %.4f loss %.4f after %d steps;", sc.Accuracy, sc.Loss, (k+1)*s.opt.RaceSteps)
	}
	if a.Qualified {
		line += " within tolerance"
	} else {
		line += " out: " + a.Reason
	}
	line += fmt.Sprintf(" (%.1f s)", a.Seconds)
	s.opt.Logf("%s", line)
}

// lowerLargest tries the largest raced layer one width lower than in
// formats, the others unchanged: per-layer choices pay where the weights are.
func (s *selector) lowerLargest(formats []fp.Format, cands []candidate, ref []Score) (Arm, bool, error) {
	largest := -1
	for i, l := range s.net.Layers() {
		if formats[i] != s.warm[i] && (largest < 0 || l.Weights > s.net.Layers()[largest].Weights) {
			largest = i
		}
	}
	if largest < 0 {
		return Arm{}, false, nil
	}
	w := formats[largest].Bits() - 1
	for _, c := range cands {
		if c.bits == w {
			fs := append([]fp.Format(nil), formats...)
			fs[largest] = c.formats[largest]
			a, err := s.arm(fs, ref, fmt.Sprintf("layer %d at %d bits", largest, w))
			return a, true, err
		}
	}
	return Arm{}, false, nil
}

// arm restores the warm start in formats, trains K steps, scores, and (if
// ref is nil or the score is within tolerance) trains K more and scores.
func (s *selector) arm(formats []fp.Format, ref []Score, what string) (a Arm, err error) {
	a = Arm{Formats: formats, Names: formatStrings(formats), Bits: s.bits(formats)}
	t0 := time.Now()
	defer func() { a.Seconds = time.Since(t0).Seconds() }()
	if err := s.restore(formats, "race: "+what); err != nil {
		return a, err
	}
	if s.opt.Rewind != nil {
		if err := s.opt.Rewind(); err != nil {
			return a, fmt.Errorf("bop: select: rewinding the training stream for %s: %w", what, err)
		}
	}
	for round := range 2 {
		for k := 0; k < s.opt.RaceSteps; k++ {
			if err := s.step(); err != nil {
				return a, fmt.Errorf("bop: select: %s, race step %d: %w", what, round*s.opt.RaceSteps+k+1, err)
			}
			s.sel.RaceSteps++
		}
		sc, err := s.eval()
		if err != nil {
			return a, fmt.Errorf("bop: select: scoring %s: %w", what, err)
		}
		a.Scores = append(a.Scores, sc)
		if ref != nil {
			if why := s.verdict(sc, ref[round], round); why != "" && a.Reason == "" {
				a.Reason = why
				if !s.opt.Exhaustive {
					return a, nil
				}
			}
		}
	}
	a.Qualified = ref != nil && a.Reason == ""
	return a, nil
}

// verdict says why score sc, after round+1 times K steps, is out against
// the reference's r, or "" when it is in. After K steps only an arm clearly
// out (twice the tolerance) stops. After 2K an arm is in when its accuracy
// is within raceShare of the tolerance, or within the whole tolerance while
// its held-out loss is no higher than the reference's: between the two the
// accuracy difference is as large as its run-to-run noise (about 0.3 point
// on 5000 MNIST examples: a 7-bit arm scored 0.2 point below a 6-bit one
// of the same run), and the loss, which weighs every example rather than
// counting those that cross a decision boundary, decides.
func (s *selector) verdict(sc, r Score, round int) string {
	tol := s.opt.Tolerance
	steps := (round + 1) * s.opt.RaceSteps
	if round == 0 {
		if f := r.floor(2 * tol); sc.Accuracy < f {
			return fmt.Sprintf("accuracy %.4f < reference %.4f − %.4f after %d steps", sc.Accuracy, r.Accuracy, r.Accuracy-f, steps)
		}
		return ""
	}
	half, full := r.floor(raceShare*tol), r.floor(tol)
	switch {
	case sc.Loss > r.Loss*(1+lossBand):
		return fmt.Sprintf("loss %.4f > the reference's %.4f + %.0f%% after %d steps", sc.Loss, r.Loss, 100*lossBand, steps)
	case sc.Accuracy >= half:
		return ""
	case sc.Accuracy < full:
		return fmt.Sprintf("accuracy %.4f < reference %.4f − %.4f after %d steps", sc.Accuracy, r.Accuracy, r.Accuracy-full, steps)
	case sc.Loss > r.Loss:
		return fmt.Sprintf("accuracy %.4f < reference %.4f − %.4f and loss %.4f > the reference's %.4f after %d steps",
			sc.Accuracy, r.Accuracy, r.Accuracy-half, sc.Loss, r.Loss, steps)
	}
	return ""
}

// finish releases the arena and restores the warm start in formats, in
// vectors of their own size, so training goes on where the warm-up ended.
func (s *selector) finish(formats []fp.Format) error {
	same := true
	for i, f := range formats {
		same = same && f == s.warm[i]
	}
	if !same {
		for i := range s.o.layers {
			s.o.layers[i].momentum, s.o.layers[i].fp32 = nil, nil
		}
		s.arena = nil
		runtime.GC() // the next allocations reuse the arena's pages
	}
	if err := s.restore(formats, "restore in the chosen format"); err != nil {
		return err
	}
	s.arena = nil
	if s.opt.Rewind != nil {
		if err := s.opt.Rewind(); err != nil {
			return fmt.Errorf("bop: select: rewinding the training stream after the race: %w", err)
		}
	}
	if s.memory != nil {
		s.memory.buf = nil
	}
	s.report("chosen")
	s.opt.Logf("momentum auto: %s (%.2f bits) after %d warm-up and %d race steps, %.1f s racing: %s",
		formatNames(formats), s.bits(formats), s.sel.Steps, s.sel.RaceSteps, time.Since(s.raceFrom).Seconds(), s.sel.Reason)
	return nil
}

// bits is the mean width of formats over the weights.
func (s *selector) bits(formats []fp.Format) float64 {
	var b, n float64
	for i, l := range s.net.Layers() {
		b += float64(l.Weights * formats[i].Bits())
		n += float64(l.Weights)
	}
	if n == 0 {
		return 0
	}
	return b / n
}

func formatStrings(fs []fp.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// formatNames is "f" when every layer has format f, else "f0,f1,…".
func formatNames(fs []fp.Format) string {
	for _, f := range fs[1:] {
		if f != fs[0] {
			return strings.Join(formatStrings(fs), ",")
		}
	}
	if len(fs) == 0 {
		return ""
	}
	return fs[0].String()
}

// memScratch is an in-memory io.ReadWriteSeeker for Select without a file.
type memScratch struct {
	buf []byte
	off int
}

func (m *memScratch) Write(p []byte) (int, error) {
	if m.off > len(m.buf) {
		return 0, errors.New("bop: scratch write past the end")
	}
	m.buf = append(m.buf[:m.off], p...)
	m.off += len(p)
	return len(p), nil
}

func (m *memScratch) Read(p []byte) (int, error) {
	if m.off >= len(m.buf) {
		return 0, io.EOF
	}
	k := copy(p, m.buf[m.off:])
	m.off += k
	return k, nil
}

func (m *memScratch) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart || off < 0 {
		return 0, errors.New("bop: scratch seeks only from the start")
	}
	m.off = int(off)
	return off, nil
}
