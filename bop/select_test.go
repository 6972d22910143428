package bop

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// teacherTask is a learnable stream for the race: inputs are Gaussian and
// the label is the arg-max of a fixed random linear map, so held-out scores
// move with training. Batches depend on their position only, so the stream
// rewinds.
type teacherTask struct {
	net     *bnn.Network
	teacher [][]float32
	pos     int // next batch
	mark    int
	marked  bool
	rewinds int
}

const taskIn, taskClasses, taskBatch = 64, 4, 32

func newTeacherTask(t *testing.T, threads int) *teacherTask {
	t.Helper()
	net := testNet(t, []int{128}, taskIn, taskClasses, taskBatch, threads, 3)
	r := rand.New(rand.NewPCG(11, 12))
	tt := &teacherTask{net: net, teacher: make([][]float32, taskClasses)}
	for c := range tt.teacher {
		tt.teacher[c] = make([]float32, taskIn)
		for k := range tt.teacher[c] {
			tt.teacher[c][k] = float32(r.NormFloat64())
		}
	}
	return tt
}

func (tt *teacherTask) fill(batch int, seq uint64) {
	r := rand.New(rand.NewPCG(seq, 77))
	x, y := tt.net.Input(), tt.net.Labels()
	for i := range batch {
		row := x[i*taskIn : (i+1)*taskIn]
		for k := range row {
			row[k] = float32(r.NormFloat64())
		}
		best, bestV := 0, float32(math.Inf(-1))
		for c, w := range tt.teacher {
			var v float32
			for k := range row {
				v += w[k] * row[k]
			}
			if v > bestV {
				best, bestV = c, v
			}
		}
		y[i] = int32(best)
	}
}

func (tt *teacherTask) next() (int, error) {
	tt.fill(taskBatch, uint64(tt.pos))
	tt.pos++
	return taskBatch, nil
}

func (tt *teacherTask) rewind() error {
	if !tt.marked {
		tt.mark, tt.marked = tt.pos, true
	}
	tt.pos = tt.mark
	tt.rewinds++
	return nil
}

// eval scores 8 fixed held-out batches (sequence numbers far from the
// training stream's).
func (tt *teacherTask) eval() (Score, error) {
	pred := make([]int32, taskBatch)
	var s Score
	n := 0
	for b := range 8 {
		tt.fill(taskBatch, 1<<40+uint64(b))
		if err := tt.net.Evaluate(taskBatch, pred); err != nil {
			return Score{}, err
		}
		z := tt.net.Logits(taskBatch)
		for i := range taskBatch {
			y := tt.net.Labels()[i]
			row := z[i*taskClasses : (i+1)*taskClasses]
			hi := slices.Max(row)
			var sum float64
			for _, v := range row {
				sum += math.Exp(float64(v - hi))
			}
			s.Loss += math.Log(sum) - float64(row[y]-hi)
			if pred[i] == y {
				s.Accuracy++
			}
			n++
		}
	}
	s.Loss /= float64(n)
	s.Accuracy /= float64(n)
	s.N = n
	return s, nil
}

func taskOptimizer(t *testing.T, net *bnn.Network) *Optimizer {
	t.Helper()
	o, err := New(net, Config{Gamma: 1e-2, Tau: 1e-4, Seed: 7, Formats: []fp.Format{WarmupFormat(1e-4)}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// momentumBudget is 16 bits for every momentum slot of net.
func momentumBudget(net *bnn.Network) int64 {
	var n int64
	for _, l := range net.Layers() {
		n += int64(l.Out * l.Stride)
	}
	return 2 * n
}

type selectRun struct {
	sel     Selection
	weights [][]uint64
	momenta [][]uint64
	steps   int64
	pos     int
}

func runSelect(t *testing.T, threads int, opt SelectOptions) selectRun {
	t.Helper()
	tt := newTeacherTask(t, threads)
	o := taskOptimizer(t, tt.net)
	opt.Rewind = tt.rewind
	sel, err := Select(tt.net, o, tt.next, tt.eval, opt)
	if err != nil {
		t.Fatal(err)
	}
	r := selectRun{sel: sel, steps: o.Steps(), pos: tt.pos}
	for l := range tt.net.Layers() {
		r.weights = append(r.weights, slices.Clone(tt.net.Weights(l)))
		r.momenta = append(r.momenta, slices.Clone(o.Momentum(l).Words()))
	}
	return r
}

var raceOptions = SelectOptions{Warmup: 40, TraceSteps: 8, Samples: 512, RaceSteps: 12, MinBits: 4, Seed: 5}

// The race is reproducible for a seed: the same choice, scores, weights
// and momenta twice, and with 1 or 2 threads.
func TestSelectDeterministic(t *testing.T) {
	a := runSelect(t, 1, raceOptions)
	b := runSelect(t, 1, raceOptions)
	c := runSelect(t, 2, raceOptions)
	if len(a.sel.Arms) == 0 || a.sel.Reference == nil || len(a.sel.Reference.Scores) != 2 {
		t.Fatalf("no race: %+v", a.sel)
	}
	for name, o := range map[string]selectRun{"second run": b, "2 threads": c} {
		if !slices.Equal(formatStrings(a.sel.Formats), formatStrings(o.sel.Formats)) {
			t.Errorf("%s chose %v, first run %v", name, formatStrings(o.sel.Formats), formatStrings(a.sel.Formats))
		}
		if len(o.sel.Arms) != len(a.sel.Arms) {
			t.Fatalf("%s raced %d arms, first run %d", name, len(o.sel.Arms), len(a.sel.Arms))
		}
		for i := range a.sel.Arms {
			if !slices.Equal(a.sel.Arms[i].Scores, o.sel.Arms[i].Scores) {
				t.Errorf("%s: arm %v scored %v, first run %v", name, a.sel.Arms[i].Names, o.sel.Arms[i].Scores, a.sel.Arms[i].Scores)
			}
		}
		for l := range a.weights {
			if !slices.Equal(a.weights[l], o.weights[l]) || !slices.Equal(a.momenta[l], o.momenta[l]) {
				t.Errorf("%s: layer %d weights or momenta after the selection differ", name, l)
			}
		}
	}
	// Training goes on from the warm start: the arms' steps were undone.
	if want := int64(raceOptions.Warmup + raceOptions.TraceSteps); a.steps != want || a.pos != int(want) {
		t.Errorf("after the selection: %d optimizer steps, stream at batch %d; want both %d", a.steps, a.pos, want)
	}
}

// The warm start is restored exactly: after a race the network and the
// optimizer are where plain training of the warm-up steps leaves them, so a
// restore that missed any part of the state (weights, batch norm, Adam,
// step, γ, momenta) shows.
func TestSelectRestoresTheWarmStart(t *testing.T) {
	opt := raceOptions
	tt := newTeacherTask(t, 2)
	o := taskOptimizer(t, tt.net)
	warm := WarmupFormat(1e-4)
	scores := 0
	eval := func() (Score, error) { // only the reference qualifies: the warm format stays
		scores++
		if o.Formats()[0] == warm {
			return Score{Accuracy: 0.9}, nil
		}
		return Score{Accuracy: 0.5}, nil
	}
	opt.Rewind = tt.rewind
	if _, err := Select(tt.net, o, tt.next, eval, opt); err != nil {
		t.Fatal(err)
	}
	plain := newTeacherTask(t, 2)
	po := taskOptimizer(t, plain.net)
	for range opt.Warmup + opt.TraceSteps {
		m, _ := plain.next()
		if _, err := plain.net.TrainStep(m, po); err != nil {
			t.Fatal(err)
		}
	}
	if scores == 0 || tt.rewinds < 2 {
		t.Fatalf("no race ran (%d scores, %d rewinds)", scores, tt.rewinds)
	}
	for l := range tt.net.Layers() {
		if !slices.Equal(tt.net.Weights(l), plain.net.Weights(l)) {
			t.Errorf("layer %d weights differ from plain training's", l)
		}
		if !slices.Equal(o.Momentum(l).Words(), po.Momentum(l).Words()) {
			t.Errorf("layer %d momenta differ from plain training's", l)
		}
	}
	for i, p := range tt.net.RealParams() {
		if !slices.Equal(p.Value, plain.net.RealParams()[i].Value) {
			t.Errorf("batch-norm parameter %s differs from plain training's", p.Name)
		}
	}
	if o.Steps() != po.Steps() || o.Gamma() != po.Gamma() || !slices.Equal(o.Totals(), po.Totals()) {
		t.Errorf("optimizer at step %d γ %g, plain training at %d γ %g (or counters differ)", o.Steps(), o.Gamma(), po.Steps(), po.Gamma())
	}
	// The next steps see the same batches and give the same network.
	for range 3 {
		m, _ := tt.next()
		tt.net.TrainStep(m, o)
		m, _ = plain.next()
		plain.net.TrainStep(m, po)
	}
	for l := range tt.net.Layers() {
		if !slices.Equal(tt.net.Weights(l), plain.net.Weights(l)) {
			t.Errorf("layer %d weights differ from plain training's three steps later", l)
		}
	}
}

// No moment of the selection holds more than 16 bits of momenta per weight:
// checked at every phase through the optimizer's own accounting (live
// momenta by capacity) plus the warm start when it is kept in memory.
func TestSelectMomentumMemory(t *testing.T) {
	for _, scratch := range []string{"memory", "file"} {
		t.Run(scratch, func(t *testing.T) {
			tt := newTeacherTask(t, 2)
			o := taskOptimizer(t, tt.net)
			budget := momentumBudget(tt.net)
			opt := raceOptions
			opt.Rewind = tt.rewind
			opt.PerLayer = true
			if scratch == "file" {
				f, err := os.Create(filepath.Join(t.TempDir(), "warm"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				opt.Scratch = f
			}
			phases := map[string]bool{}
			opt.OnMemory = func(phase string, held int64) {
				phases[strings.SplitN(phase, ":", 2)[0]] = true
				var m bnn.Memory
				o.AddMemory(&m)
				if m.Momenta > held {
					t.Errorf("%s: the optimizer holds %d momentum bytes, the selection reports %d", phase, m.Momenta, held)
				}
				if held > budget {
					t.Errorf("%s: %d momentum bytes held, more than 16 bits per weight (%d)", phase, held, budget)
				}
			}
			sel, err := Select(tt.net, o, tt.next, tt.eval, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"warm-up", "trace", "snapshot", "race", "restore in the chosen format", "chosen"} {
				if !phases[p] && !(p == "restore in the chosen format" && sel.Fallback) {
					t.Errorf("phase %q never reported (saw %v)", p, phases)
				}
			}
			if sel.PeakBytes > budget || sel.PeakBytes == 0 {
				t.Errorf("peak %d momentum bytes, budget %d", sel.PeakBytes, budget)
			}
			var m bnn.Memory
			o.AddMemory(&m)
			for i, f := range o.Formats() {
				if f != sel.Formats[i] {
					t.Errorf("layer %d trains in %v, the selection chose %v", i, f, sel.Formats[i])
				}
			}
			exact := int64(0)
			for l := range tt.net.Layers() {
				exact += int64(o.Momentum(l).Bytes())
			}
			if m.Momenta != exact {
				t.Errorf("after the selection the momenta hold %d bytes, their codes need %d", m.Momenta, exact)
			}
		})
	}
}

// When no candidate stays within tolerance the reference format is kept,
// and the log says so.
func TestSelectFallback(t *testing.T) {
	tt := newTeacherTask(t, 2)
	o := taskOptimizer(t, tt.net)
	opt := raceOptions
	opt.Rewind = tt.rewind
	warm := WarmupFormat(1e-4)
	// A scorer that only the reference format satisfies.
	eval := func() (Score, error) {
		if o.Formats()[0] == warm {
			return Score{Loss: 0.1, Accuracy: 0.9}, nil
		}
		return Score{Loss: 0.2, Accuracy: 0.8}, nil
	}
	var log strings.Builder
	opt.Logf = func(format string, args ...any) { log.WriteString(strings.TrimSpace(format) + "\n") }
	sel, err := Select(tt.net, o, tt.next, eval, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Fallback || len(sel.Formats) != 2 || sel.Formats[0] != warm || sel.Formats[1] != warm {
		t.Errorf("fallback %v, formats %v; want the reference %v", sel.Fallback, formatStrings(sel.Formats), warm)
	}
	if got := slices.Compact(armBits(sel)); !slices.Equal(got, []int{6, 7}) {
		t.Errorf("arms of %v bits raced, want 6 then 7 (the walk up from 6; a width's runner-up right after it)", got)
	}
	for _, f := range o.Formats() {
		if f != warm {
			t.Errorf("the optimizer trains in %v after the fallback", f)
		}
	}
	if !strings.Contains(sel.Reason, "no candidate") {
		t.Errorf("reason %q does not say no candidate qualified", sel.Reason)
	}
	// Nothing to try at all is an error naming it.
	opt.MinBits = 8
	if _, err := Select(tt.net, taskOptimizer(t, tt.net), tt.next, eval, opt); !errors.Is(err, ErrNoCandidate) {
		t.Errorf("candidates of 8 bits and up: err %v, want ErrNoCandidate", err)
	}
}

func armBits(sel Selection) []int {
	var out []int
	for _, a := range sel.Arms {
		out = append(out, a.Formats[0].Bits())
	}
	return out
}

// The race walks down from 6 bits while arms qualify and takes the
// narrowest before the first that does not; a narrower width that would
// qualify again below a failing one is never reached.
func TestSelectWalk(t *testing.T) {
	for _, c := range []struct {
		ok   map[int]bool // widths whose arm keeps the reference's accuracy
		want int          // chosen width of layer 0
		arms []int
	}{
		{map[int]bool{5: true, 6: true, 7: true}, 5, []int{4, 5, 6}},
		{map[int]bool{4: true, 6: true, 7: true}, 6, []int{5, 6}},
		{map[int]bool{7: true}, 7, []int{6, 7}},
		{map[int]bool{4: true, 5: true, 6: true, 7: true}, 4, []int{4, 5, 6}},
	} {
		tt := newTeacherTask(t, 2)
		o := taskOptimizer(t, tt.net)
		opt := raceOptions
		opt.Rewind = tt.rewind
		eval := func() (Score, error) {
			if b := o.Formats()[0].Bits(); b == 8 || c.ok[b] {
				return Score{Accuracy: 0.9, N: 1000}, nil
			}
			return Score{Accuracy: 0.8, N: 1000}, nil
		}
		sel, err := Select(tt.net, o, tt.next, eval, opt)
		if err != nil {
			t.Fatal(err)
		}
		if got := sel.Formats[0].Bits(); got != c.want || sel.Fallback {
			t.Errorf("qualifying widths %v: chose %d bits (fallback %v), want %d", c.ok, got, sel.Fallback, c.want)
		}
		got := armBits(sel)
		times := map[int]int{}
		for _, b := range got {
			times[b]++
		}
		for b, n := range times {
			if n > 2 || c.ok[b] && n > 1 {
				t.Errorf("qualifying widths %v: %d bits raced %d times in %v (once if it qualifies, else at most with its runner-up)", c.ok, b, n, got)
			}
		}
		slices.Sort(got)
		if got = slices.Compact(got); !slices.Equal(got, c.arms) {
			t.Errorf("qualifying widths %v: raced %v, want %v", c.ok, got, c.arms)
		}
	}
}

// A width whose first format fails the race gets a second try with its
// runner-up (another exponent width), and is chosen if that qualifies.
func TestSelectRunnerUp(t *testing.T) {
	tt := newTeacherTask(t, 2)
	o := taskOptimizer(t, tt.net)
	opt := raceOptions
	opt.Rewind = tt.rewind
	opt.MinBits = 6
	var first6 *fp.Format
	eval := func() (Score, error) {
		f := o.Formats()[0]
		if f.Bits() == 6 && first6 == nil {
			first6 = &f
		}
		if f.Bits() == 8 || f.Bits() == 6 && f != *first6 {
			return Score{Accuracy: 0.9, N: 1000}, nil
		}
		return Score{Accuracy: 0.8, N: 1000}, nil
	}
	sel, err := Select(tt.net, o, tt.next, eval, opt)
	if err != nil {
		t.Fatal(err)
	}
	if first6 == nil {
		t.Fatal("no 6-bit arm raced")
	}
	if got := sel.Formats[0]; sel.Fallback || got.Bits() != 6 || got.Exp == first6.Exp {
		t.Errorf("chose %v (fallback %v), want the 6-bit runner-up of another exponent width than %v", got, sel.Fallback, *first6)
	}
	if got := armBits(sel); !slices.Equal(got, []int{6, 6}) {
		t.Errorf("arms of %v bits raced, want 6 twice", got)
	}
}

// Without held-out data the pre-filter alone chooses, converting in place.
func TestSelectWithoutHeldOut(t *testing.T) {
	tt := newTeacherTask(t, 2)
	o := taskOptimizer(t, tt.net)
	opt := raceOptions
	opt.Search = fp.SearchOptions{MaxLostRatio: 1, MaxFlipDisagree: 1}
	sel, err := Select(tt.net, o, tt.next, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Fallback || sel.Formats[0].Bits() != opt.MinBits || o.Formats()[0] != sel.Formats[0] {
		t.Errorf("chose %v (fallback %v), optimizer in %v; want the %d-bit candidate", formatStrings(sel.Formats), sel.Fallback, formatStrings(o.Formats()), opt.MinBits)
	}
	if tt.pos != opt.Warmup+opt.TraceSteps {
		t.Errorf("%d batches taken, want the warm-up's %d", tt.pos, opt.Warmup+opt.TraceSteps)
	}
}

func TestWarmupFormat(t *testing.T) {
	for _, tau := range []float32{1e-7, 1e-6, 1e-4, 0} {
		f := WarmupFormat(tau)
		if f.Bits() != 8 || f.Rounding != fp.Stochastic || f.Validate() != nil {
			t.Fatalf("τ %g: %v", tau, f)
		}
		if tau > 0 && !(f.MaxValue() > 32*float64(tau) && f.MaxValue() < 512*float64(tau)) {
			t.Errorf("τ %g: %v tops out at %g, want between 32τ and 512τ", tau, f, f.MaxValue())
		}
	}
	if got := WarmupFormat(1e-7).String(); got != "e3m4b25s" {
		t.Errorf("τ 1e-7: %s, want e3m4b25s (the measured one)", got)
	}
}

// After 2K steps an arm is in within half the tolerance, or within the
// whole of it when its loss is no higher than the reference's; a loss more
// than lossBand above the reference's is out whatever the accuracy.
func TestVerdict(t *testing.T) {
	s := &selector{opt: SelectOptions{Tolerance: 0.005, RaceSteps: 100}}
	ref := Score{Accuracy: 0.96, Loss: 0.15, N: 5000}
	for _, c := range []struct {
		sc    Score
		round int
		in    bool
	}{
		{Score{Accuracy: 0.9580, Loss: 0.155}, 1, true}, // 0.2 point, loss 3% higher
		{Score{Accuracy: 0.9620, Loss: 0.16}, 1, false}, // better accuracy, loss 7% higher
		{Score{Accuracy: 0.9565, Loss: 0.14}, 1, true},  // 0.35 point, lower loss
		{Score{Accuracy: 0.9565, Loss: 0.16}, 1, false}, // 0.35 point, higher loss
		{Score{Accuracy: 0.9540, Loss: 0.10}, 1, false}, // 0.6 point
		{Score{Accuracy: 0.9520, Loss: 0.30}, 0, true},  // after K: only 1 point or more is out
		{Score{Accuracy: 0.9490, Loss: 0.10}, 0, false},
	} {
		if got := s.verdict(c.sc, ref, c.round) == ""; got != c.in {
			t.Errorf("%+v after round %d: in %v, want %v (%s)", c.sc, c.round, got, c.in, s.verdict(c.sc, ref, c.round))
		}
	}
}
