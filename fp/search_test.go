package fp

import (
	"math"
	"strings"
	"testing"
	"time"
)

// syntheticTrace imitates a Bop recording on an MNIST MLP with bnnd train's defaults:
// γ = 1e-3, τ = 1e-6, per-step gradients with a per-weight drift plus noise
// scaled so that the momenta (which start from their stationary
// distribution) have a median |m| of a few 1e-7 and a few weights cross τ.
func syntheticTrace(n, steps int, seed uint64) Trace {
	r := NewRand(seed, 0)
	normal := func() float64 { // Box–Muller
		u1 := float64(r.Float32()) + 1e-9
		u2 := float64(r.Float32())
		return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	}
	tr := Trace{Gamma: 1e-3, Tau: 1e-6, W0: make([]int8, n), M0: make([]float32, n), G: make([][]float32, steps)}
	drift := make([]float64, n)
	const noise = 1.5e-5
	for i := range n {
		drift[i] = normal() * 3e-7
		tr.M0[i] = float32(drift[i] + normal()*noise*math.Sqrt(1e-3/2))
		tr.W0[i] = 1
		if r.Uint32()&1 == 1 {
			tr.W0[i] = -1
		}
	}
	for t := range tr.G {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(drift[i] + normal()*noise)
		}
		tr.G[t] = g
	}
	return tr
}

func TestSimulateTraceReferenceAndHopelessFormats(t *testing.T) {
	tr := syntheticTrace(1024, 100, 1)
	st, err := SimulateTrace(FP32, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.ReferenceFlips == 0 {
		t.Fatal("synthetic trace has no flips; the test would prove nothing")
	}
	if st.FlipDisagreement() != 0 || st.Flips != st.ReferenceFlips || st.Counts.Lost != 0 {
		t.Errorf("fp32 replay differs from the fp32 reference: %+v", st)
	}
	// Default-bias e4m3 flushes every momentum to zero: no flip survives.
	st, _ = SimulateTrace(MustParseFormat("e4m3"), tr, nil)
	if st.Flips != 0 || st.FlipDisagreement() != 1 || st.Counts.UnderflowRatio() < 0.99 {
		t.Errorf("e4m3: %+v, disagreement %g; want no flips and everything underflowing", st, st.FlipDisagreement())
	}
	// fp16 loses most updates at these magnitudes (its subnormal step is 6e-8).
	st, _ = SimulateTrace(FP16, tr, nil)
	if st.Counts.LostRatio() < 0.5 {
		t.Errorf("fp16 lost ratio %g, want most updates lost", st.Counts.LostRatio())
	}
	// A well-biased 8-bit format keeps the momenta: few underflow, and it
	// flips weights.
	r := NewRand(1, 1)
	st, _ = SimulateTrace(MustParseFormat("e4m3b28s"), tr, &r)
	if st.Flips == 0 || st.FlipDisagreement() >= 1 || st.Counts.UnderflowRatio() > 0.05 {
		t.Errorf("e4m3b28s: %+v, flip disagreement %g", st, st.FlipDisagreement())
	}
}

func TestTraceValidate(t *testing.T) {
	tr := syntheticTrace(4, 2, 1)
	bad := []struct {
		mutate func(*Trace)
		want   string
	}{
		{func(tr *Trace) { tr.Gamma = 0 }, "gamma"},
		{func(tr *Trace) { tr.W0[2] = 0 }, "weight 2 is 0"},
		{func(tr *Trace) { tr.M0 = tr.M0[:3] }, "4 weights but 3 momenta"},
		{func(tr *Trace) { tr.G[1] = tr.G[1][:2] }, "step 1 has 2 gradients"},
		{func(tr *Trace) { tr.G[0][1] = float32(math.NaN()) }, "gradient [0][1]"},
		{func(tr *Trace) { tr.G = nil }, "no steps"},
	}
	for _, b := range bad {
		c := Trace{Gamma: tr.Gamma, Tau: tr.Tau, W0: append([]int8(nil), tr.W0...), M0: append([]float32(nil), tr.M0...)}
		for _, g := range tr.G {
			c.G = append(c.G, append([]float32(nil), g...))
		}
		b.mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("want error containing %q, got %v", b.want, err)
		}
	}
}

func TestSearchFindsAWellBiasedFewBitFormat(t *testing.T) {
	traces := []Trace{syntheticTrace(3000, 60, 2), syntheticTrace(500, 60, 3)}
	opt := SearchOptions{Stochastic: true, Seed: 7, MaxWeights: 768}
	if testing.Short() || raceEnabled {
		opt.MaxBits = 12 // the race detector makes each simulated step ~10x slower
	}
	start := time.Now()
	res, err := Search(traces, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d candidates in %v", len(res.Ranking), time.Since(start))
	if !res.Found {
		t.Fatalf("no feasible format; top of ranking: %+v", res.Ranking[:3])
	}
	best := res.Best
	t.Logf("best %s: lost %.3f underflow %.3f flips %d/%d disagreement %.3f", best.Format, best.LostRatio, best.UnderflowRatio, best.Flips, best.ReferenceFlips, best.FlipDisagreement)
	if best.Format.Bias == DefaultBias(best.Format.Exp) {
		t.Errorf("best %s uses the default bias, which cannot reach momenta of 1e-7", best.Format)
	}
	if best.Bits >= 16 || best.LostRatio > 0.2 || best.FlipDisagreement > 0.05 {
		t.Errorf("best %+v is not a feasible format narrower than fp16", best)
	}
	if best.Format.MaxValue() <= 1e-6 {
		t.Errorf("best %s cannot represent τ", best.Format)
	}
	// The ranking is ordered and every feasible entry has at least Best's bits.
	for i := 1; i < len(res.Ranking); i++ {
		if candidateLess(res.Ranking[i], res.Ranking[i-1]) {
			t.Fatalf("ranking out of order at %d: %+v before %+v", i, res.Ranking[i-1], res.Ranking[i])
		}
	}
	for _, c := range res.Ranking {
		if c.Feasible && c.Bits < best.Bits {
			t.Fatalf("feasible %s has fewer bits than best %s", c.Format, best.Format)
		}
		if c.Feasible != (c.LostRatio <= 0.2 && c.FlipDisagreement <= 0.05) {
			t.Fatalf("%s: Feasible %v does not match its ratios", c.Format, c.Feasible)
		}
	}
	if opt.MaxBits >= 16 {
		seen := false
		for _, c := range res.Ranking {
			if c.Format == FP16 {
				seen = true
				if c.LostRatio < 0.5 || c.Feasible {
					t.Errorf("fp16 at these magnitudes: %+v; want most updates lost", c)
				}
			}
		}
		if !seen {
			t.Error("fp16 is missing from the 16-bit candidates")
		}
	}
	// Same inputs, same answer (checked on the 4..8-bit part to save time).
	opt.MaxBits = 8
	first, _ := Search(traces, opt)
	again, _ := Search(traces, opt)
	if len(again.Ranking) != len(first.Ranking) {
		t.Fatalf("search is not deterministic: %d vs %d candidates", len(again.Ranking), len(first.Ranking))
	}
	for i := range again.Ranking {
		if again.Ranking[i] != first.Ranking[i] {
			t.Fatalf("search is not deterministic: %+v vs %+v", again.Ranking[i], first.Ranking[i])
		}
	}
}

func TestSearchOptionErrors(t *testing.T) {
	tr := []Trace{syntheticTrace(8, 2, 1)}
	for _, opt := range []SearchOptions{{MinBits: 1}, {MinBits: 9, MaxBits: 8}, {MaxLostRatio: 2}, {MaxWeights: -1}} {
		if _, err := Search(tr, opt); err == nil {
			t.Errorf("options %+v accepted", opt)
		}
	}
	if _, err := Search(nil, SearchOptions{}); err == nil {
		t.Error("no traces accepted")
	}
	bad := syntheticTrace(8, 2, 1)
	bad.W0[0] = 3
	if _, err := Search([]Trace{tr[0], bad}, SearchOptions{}); err == nil || !strings.Contains(err.Error(), "trace 1") {
		t.Errorf("bad trace: %v", err)
	}
}
