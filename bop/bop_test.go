package bop

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

func TestFlipRule(t *testing.T) {
	const tau = 1e-6
	nan := float32(math.NaN())
	cases := []struct {
		neg  bool // weight −1
		m    float32
		flip bool
	}{
		{false, 2e-6, true}, // w=+1, m > τ: gradient says decrease w
		{false, tau, false}, // exactly τ: strict inequality
		{false, -5, false},  // opposite sign: keep
		{true, -2e-6, true}, // w=−1, m < −τ
		{true, -tau, false}, // exactly −τ
		{true, 3, false},    // opposite sign
		{false, 0, false},   // zero momentum
		{true, float32(math.Copysign(0, -1)), false},
		{false, nan, false}, // NaN never flips
		{true, nan, false},
		{false, float32(math.Inf(1)), true},
		{true, float32(math.Inf(-1)), true},
	}
	// Place the cases across a word boundary at column 64+60.
	row := make([]uint64, 4)
	m := make([]float32, len(cases))
	const col0 = 64
	for i, c := range cases {
		if c.neg {
			row[(col0+60+i)/64] |= 1 << ((col0 + 60 + i) % 64)
		}
		m[i] = c.m
	}
	before := slices.Clone(row)
	// The flip test is on [col0, col0+60+len) with zero momenta before the cases.
	full := append(make([]float32, 60), m...)
	flips := flipRow(row, col0, full, tau)
	want := int64(0)
	for i, c := range cases {
		bit := col0 + 60 + i
		changed := (row[bit/64]^before[bit/64])>>(bit%64)&1 == 1
		if changed != c.flip {
			t.Errorf("w=%v m=%g: flipped %v, want %v", map[bool]int{false: 1, true: -1}[c.neg], c.m, changed, c.flip)
		}
		if c.flip {
			want++
		}
	}
	if flips != want {
		t.Errorf("flip count %d, want %d", flips, want)
	}
	if row[0] != before[0] || row[3] != before[3] {
		t.Error("words outside the tile changed")
	}
	// τ = 0: any momentum of the weight's sign flips it.
	r2 := []uint64{0}
	if flipRow(r2, 0, []float32{1e-30, -1e-30}, 0); r2[0] != 1 {
		t.Errorf("τ=0: bits %b, want 1", r2[0])
	}
}

func testNet(t *testing.T, hidden []int, in, classes, batch, threads int, seed uint64) *bnn.Network {
	t.Helper()
	spec := bnn.Spec{Name: "test"}
	for _, h := range hidden {
		spec.Hidden = append(spec.Hidden, bnn.LayerSpec{Kind: bnn.Dense, Units: h})
	}
	names := make([]string, classes)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	n, err := bnn.New(spec, bnn.Shape{Height: 1, Width: 1, Channels: in}, names, bnn.Options{Batch: batch, Threads: threads, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	fill(n, seed)
	return n
}

func fill(n *bnn.Network, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 5))
	for i := range n.Input() {
		n.Input()[i] = float32(r.NormFloat64())
	}
	for i := range n.Labels() {
		n.Labels()[i] = int32(r.IntN(len(n.Classes())))
	}
}

// TestFusedUpdateMatchesReference folds a random tile into random momenta
// and compares codes, weights and counters with a plain scalar Bop update
// using the same random stream, for each rounding mode.
func TestFusedUpdateMatchesReference(t *testing.T) {
	formats := []fp.Format{
		fp.MustParseFormat("fp32"),
		fp.MustParseFormat("fp16"),
		fp.MustParseFormat("bf16"),
		fp.MustParseFormat("e4m3b10"),
		fp.MustParseFormat("e3m2b24s"),
		fp.MustParseFormat("e5m6b22s"),
	}
	tz := fp.MustParseFormat("e4m3b20")
	tz.Rounding = fp.TowardZero
	formats = append(formats, tz)
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			net := testNet(t, []int{40, 8}, 150, 3, 4, 1, 3)
			o, err := New(net, Config{Gamma: 0.05, Tau: 1e-7, Formats: []fp.Format{f}, Seed: 42})
			if err != nil {
				t.Fatal(err)
			}
			o.step = 7
			r := rand.New(rand.NewPCG(1, uint64(f.Bits())))
			scale := math.Ldexp(1, -f.Bias+2)
			if f.Bits() == 32 || f.IEEE {
				scale = 1e-6
			}
			v := o.Momentum(1)
			for i := range v.Len() {
				v.Set(i, f.Encode(float32(r.NormFloat64()*scale), nil))
			}
			const row0, row1, col0, col1 = 1, 3, 0, 40
			grad := make([]float32, (row1-row0)*(col1-col0))
			for i := range grad {
				grad[i] = float32(r.NormFloat64() * scale * 3)
			}
			grad[0] = f.Decode(v.Get(row0*64 + col0)) // g == m: never "lost"
			w := net.Weights(1)
			oldW := slices.Clone(w)
			oldCodes := make([]uint32, v.Len())
			for i := range oldCodes {
				oldCodes[i] = v.Get(i)
			}
			tile := &bnn.WeightTile{Layer: 1, Row0: row0, Row1: row1, Col0: col0, Col1: col1, Cols: 64, Grad: grad, Weights: w, RowWords: 1}
			o.FoldTile(0, tile)
			o.EndStep(net.RealParams())

			rng := fp.NewRand(42, streamOf(7, 1, row0, col0))
			var want Counters
			for j := row0; j < row1; j++ {
				var key uint32 // each row's step draws a key; element k rounds with StepRand(key, k-col0)
				if f.Rounding == fp.Stochastic {
					key = fp.StepKey(&rng)
				}
				for k := col0; k < col1; k++ {
					idx := j*64 + k
					code := oldCodes[idx]
					m := f.Decode(code)
					g := grad[(j-row0)*(col1-col0)+k-col0]
					mn := m + float32(o.Gamma()*(g-m))
					nc := f.EncodeStep(mn, key, k-col0)
					want.Values++
					if nc != code {
						want.Changed++
					} else if g != m {
						want.Lost++
					}
					if got := v.Get(idx); got != nc {
						t.Fatalf("momentum (%d,%d): code %#x, reference %#x", j, k, got, nc)
					}
					neg := oldW[j]>>k&1 == 1
					d := f.Decode(nc)
					flip := (neg && d < -1e-7) || (!neg && d > 1e-7)
					if flip {
						want.Flips++
					}
					if got := (w[j]^oldW[j])>>k&1 == 1; got != flip {
						t.Fatalf("weight (%d,%d): flipped %v, reference %v (m=%g)", j, k, got, flip, d)
					}
				}
			}
			got := o.LastStep()[1]
			if got.Values != want.Values || got.Changed != want.Changed || got.Lost != want.Lost || got.Flips != want.Flips {
				t.Errorf("counters %+v, reference %+v", got, want)
			}
			if w[0] != oldW[0] || w[3] != oldW[3] {
				t.Error("rows outside the tile changed")
			}
		})
	}
}

// TestDeterministicAcrossThreads: the same seed gives bit-identical weights
// and momenta with 1 and 3 threads, also with stochastic rounding.
func TestDeterministicAcrossThreads(t *testing.T) {
	run := func(threads int) (*bnn.Network, *Optimizer) {
		net := testNet(t, []int{40, 40}, 1100, 5, 16, threads, 9)
		o, err := New(net, Config{Gamma: 1e-2, Tau: 1e-6, Formats: []fp.Format{fp.MustParseFormat("e3m3b14s")}, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		for s := range 3 {
			fill(net, uint64(s))
			if _, err := net.TrainStep(16, o); err != nil {
				t.Fatal(err)
			}
		}
		return net, o
	}
	n1, o1 := run(1)
	n3, o3 := run(3)
	for l := range n1.Layers() {
		if !slices.Equal(n1.Weights(l), n3.Weights(l)) {
			t.Errorf("layer %d weights differ between 1 and 3 threads", l)
		}
		if !slices.Equal(o1.Momentum(l).Words(), o3.Momentum(l).Words()) {
			t.Errorf("layer %d momenta differ between 1 and 3 threads", l)
		}
		if o1.Totals()[l] != o3.Totals()[l] {
			t.Errorf("layer %d counters differ: %+v vs %+v", l, o1.Totals()[l], o3.Totals()[l])
		}
	}
	if c := o1.Totals()[0]; c.Flips == 0 || c.Changed == 0 {
		t.Errorf("no momentum changed or no weight flipped: %+v", c)
	}
}

// TestDefaultBiasFP8Underflows: with the default bias e4m3's smallest value
// is 2^-9 ≈ 2e-3, far above γ·g, so momenta underflow and nothing flips.
func TestDefaultBiasFP8Underflows(t *testing.T) {
	for _, c := range []struct {
		format    string
		wantFlips bool
	}{{"e4m3", false}, {"e4m3b20", true}} {
		net := testNet(t, []int{64}, 100, 4, 32, 2, 1)
		o, err := New(net, Config{Gamma: 1e-3, Tau: 1e-7, Formats: []fp.Format{fp.MustParseFormat(c.format)}})
		if err != nil {
			t.Fatal(err)
		}
		for s := range 20 {
			fill(net, uint64(s))
			if _, err := net.TrainStep(32, o); err != nil {
				t.Fatal(err)
			}
		}
		tot := o.Totals()[0]
		if (tot.Flips > 0) != c.wantFlips {
			t.Errorf("%s: %d flips, want flips: %v (%+v)", c.format, tot.Flips, c.wantFlips, tot)
		}
		if !c.wantFlips && tot.Underflow != tot.Values {
			t.Errorf("%s: %d of %d updates underflowed, want all", c.format, tot.Underflow, tot.Values)
		}
	}
}

func TestGammaDecay(t *testing.T) {
	net := testNet(t, []int{8}, 4, 2, 4, 1, 1)
	o, err := New(net, Config{Gamma: 1e-2, Decay: Decay{Every: 2, Factor: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := net.TrainStep(4, o); err != nil {
			t.Fatal(err)
		}
	}
	if g := o.Gamma(); math.Abs(float64(g)-2.5e-3) > 1e-9 {
		t.Errorf("γ after 5 steps with ×0.5 every 2 = %g, want 2.5e-3", g)
	}
}

func TestConfigErrors(t *testing.T) {
	net := testNet(t, []int{8}, 4, 2, 4, 1, 1)
	for _, cfg := range []Config{
		{Gamma: 2},
		{Gamma: -1},
		{Tau: float32(math.NaN())},
		{Formats: []fp.Format{fp.MustParseFormat("fp16"), fp.MustParseFormat("fp16"), fp.MustParseFormat("fp16")}},
		{Decay: Decay{Every: 3, Factor: 2}},
	} {
		if _, err := New(net, cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	net := testNet(t, []int{70}, 90, 3, 8, 2, 2)
	o, err := New(net, Config{Gamma: 1e-2, Formats: []fp.Format{fp.MustParseFormat("e4m3b12s"), fp.MustParseFormat("fp16")}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := net.TrainStep(8, o); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := o.WriteState(&buf); err != nil {
		t.Fatal(err)
	}
	state := buf.Bytes()
	o2, err := New(net, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.ReadState(bytes.NewReader(state)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := o2.WriteState(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(state, again.Bytes()) {
		t.Fatal("state changed in a write → read → write round trip")
	}
	if o2.Steps() != 3 || o2.Formats()[0].String() != "e4m3b12s" {
		t.Errorf("restored step %d formats %v", o2.Steps(), o2.Formats())
	}
	for _, cut := range []int{0, 10, 25, len(state) - 1} {
		if err := o2.ReadState(bytes.NewReader(state[:cut])); !errors.Is(err, ErrStateTruncated) {
			t.Errorf("truncated at %d: %v", cut, err)
		}
	}
	bad := bytes.Clone(state)
	bad[40] ^= 1
	if err := o2.ReadState(bytes.NewReader(bad)); !errors.Is(err, ErrStateChecksum) {
		t.Errorf("flipped bit: %v", err)
	}
	bad = bytes.Clone(state)
	bad[8] = 2
	if err := o2.ReadState(bytes.NewReader(bad)); !errors.Is(err, ErrStateVersion) {
		t.Errorf("version 2: %v", err)
	}
	other := testNet(t, []int{71}, 90, 3, 8, 1, 2)
	o3, _ := New(other, Config{})
	if err := o3.ReadState(bytes.NewReader(state)); err == nil {
		t.Error("state of another network shape accepted")
	}
}

func TestMemory(t *testing.T) {
	net := testNet(t, []int{100}, 64, 10, 8, 2, 1)
	o, err := New(net, Config{Formats: []fp.Format{fp.MustParseFormat("e3m2b20s"), fp.MustParseFormat("fp32")}})
	if err != nil {
		t.Fatal(err)
	}
	m := net.Memory()
	o.AddMemory(&m)
	// Rows padded to 64 codes: 100×64 six-bit momenta = 38400 bits = 600
	// words; 10×128 fp32 = 5120 B.
	if m.MomentaByFormat["e3m2b20s"] != 4800 || m.MomentaByFormat["fp32"] != 5120 || m.Momenta != 9920 {
		t.Errorf("momenta %d by format %v", m.Momenta, m.MomentaByFormat)
	}
	if want := int64((100 + 100 + 10 + 10) * 2 * 4); m.AdamState != want {
		t.Errorf("Adam state %d, want %d", m.AdamState, want)
	}
}

// TestFlipAgreement: fp32 momenta agree with their fp32 shadow exactly; a
// default-bias fp8 format, whose momenta all underflow, agrees on nothing.
func TestFlipAgreement(t *testing.T) {
	for _, c := range []struct {
		format string
		want   func(FlipAgreement) bool
	}{
		{"fp32", func(a FlipAgreement) bool { return a.Both > 0 && a.EncodedOnly == 0 && a.FP32Only == 0 }},
		{"e4m3", func(a FlipAgreement) bool { return a.Both == 0 && a.EncodedOnly == 0 && a.FP32Only > 0 }},
	} {
		net := testNet(t, []int{64}, 100, 4, 32, 2, 1)
		o, err := New(net, Config{Gamma: 1e-2, Tau: 1e-6, Formats: []fp.Format{fp.MustParseFormat(c.format)}})
		if err != nil {
			t.Fatal(err)
		}
		o.TrackFlipAgreement(net, 3000, 1)
		for s := range 10 {
			fill(net, uint64(s))
			if _, err := net.TrainStep(32, o); err != nil {
				t.Fatal(err)
			}
		}
		for l, a := range o.FlipAgreement() {
			if !c.want(a) {
				t.Errorf("%s layer %d: %+v (agreement %.3f)", c.format, l, a, a.Agreement())
			}
		}
	}
}

// TestCalibrate records a warm-up trace, searches, and converts the momenta.
// calibrationNet is a 100→64→4 network with an fp32 optimizer and a batch
// source that counts the batches it dealt.
func calibrationNet(t *testing.T) (*bnn.Network, *Optimizer, func() (int, error), *int) {
	t.Helper()
	net := testNet(t, []int{64}, 100, 4, 32, 2, 1)
	o, err := New(net, Config{Gamma: 1e-2, Tau: 1e-6})
	if err != nil {
		t.Fatal(err)
	}
	step := 0
	next := func() (int, error) {
		fill(net, uint64(step))
		step++
		return 32, nil
	}
	return net, o, next, &step
}

func TestCalibrate(t *testing.T) {
	net, o, next, step := calibrationNet(t)
	cal, err := Calibrate(net, o, next, CalibrationOptions{Steps: 6, Samples: 500, PerLayer: true, BestEffort: true,
		Search: fp.SearchOptions{MinBits: 6, MaxBits: 8, Stochastic: true}})
	if err != nil {
		t.Fatal(err)
	}
	if *step != 6 || o.Steps() != 6 {
		t.Errorf("warm-up ran %d batches, %d optimizer steps; want 6", *step, o.Steps())
	}
	if len(cal.Traces) != 2 || len(cal.Formats) != 2 || len(cal.Results) != 2 {
		t.Fatalf("per-layer calibration: %d traces, %d formats, %d results; want 2 each", len(cal.Traces), len(cal.Formats), len(cal.Results))
	}
	for l, tr := range cal.Traces {
		if len(tr.G) != 6 || len(tr.W0) != min(500, net.Layers()[l].Weights) {
			t.Errorf("layer %d trace: %d steps of %d weights", l, len(tr.G), len(tr.W0))
		}
		nonzero := 0
		for _, g := range tr.G {
			for _, v := range g {
				if v != 0 {
					nonzero++
				}
			}
		}
		if nonzero == 0 {
			t.Errorf("layer %d trace recorded no gradient", l)
		}
	}
	for l, f := range cal.Formats {
		if f.Bits() < 6 || f.Bits() > 8 {
			t.Errorf("layer %d: chose %v outside 6..8 bits", l, f)
		}
	}
	// Converting keeps every momentum within half a step of its fp32 value.
	before := make([]float32, o.Momentum(0).Len())
	o.Momentum(0).DecodeRange(before, 0)
	target := fp.MustParseFormat("e4m5b26")
	if err := o.Convert([]fp.Format{target}); err != nil {
		t.Fatal(err)
	}
	after := make([]float32, len(before))
	o.Momentum(0).DecodeRange(after, 0)
	for i := range before {
		want := target.Decode(target.Encode(before[i], nil))
		if after[i] != want {
			t.Fatalf("momentum %d: %g converted to %g, want %g", i, before[i], after[i], want)
		}
	}
	if got := o.Formats()[1]; got != target {
		t.Errorf("layer 1 format %v after Convert, want %v", got, target)
	}
	// Calibration needs fp32 momenta to start from.
	if _, err := Calibrate(net, o, next, CalibrationOptions{Steps: 2}); err == nil {
		t.Error("calibration from compact momenta accepted")
	}
}

// TestCalibrateFP32Below: layers with fewer weights than the limit keep fp32
// and stay out of the search, whether the rest share one format or not.
func TestCalibrateFP32Below(t *testing.T) {
	// Layers: 100→64 (6400 weights), 64→4 (256 weights).
	for _, perLayer := range []bool{false, true} {
		net, o, next, _ := calibrationNet(t)
		opt := CalibrationOptions{Steps: 4, Samples: 300, PerLayer: perLayer, BestEffort: true, FP32Below: 1000,
			Search: fp.SearchOptions{MinBits: 6, MaxBits: 6, Stochastic: true}}
		cal, err := Calibrate(net, o, next, opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(cal.Formats) != 2 || cal.Formats[1] != fp.MustParseFormat("fp32") || cal.Formats[0].Bits() != 6 {
			t.Errorf("per-layer %v: formats %v, want a 6-bit one then fp32", perLayer, cal.Formats)
		}
		if len(cal.Results) != 1 || !slices.Equal(cal.Scopes, []string{"layer 0"}) {
			t.Errorf("per-layer %v: %d results for %q, want one for layer 0", perLayer, len(cal.Results), cal.Scopes)
		}
		opt.FP32Below = 1 << 20
		if _, err := Calibrate(net, o, next, opt); err == nil || !strings.Contains(err.Error(), "nothing to search") {
			t.Errorf("per-layer %v: every layer kept fp32: error %v", perLayer, err)
		}
	}
}

// TestFoldTileSameForEveryStepKernel: FoldTile gives the same momenta,
// weights and counters with every compiled step kernel (rows of 300
// weights: whole 64-code blocks for the kernels plus a tail), also with
// the flip-agreement shadow (Step, then flipRow).
func TestFoldTileSameForEveryStepKernel(t *testing.T) {
	prev := fp.StepImpl()
	defer func() { _ = fp.UseStep(prev) }()
	for _, name := range []string{"e2m3b21s", "e2m2b21s", "e4m3b28", "e3m2b24z", "e5m10b24s"} {
		for _, shadow := range []bool{false, true} {
			type result struct {
				words, weights []uint64
				cnt            Counters
			}
			var want result
			for _, impl := range fp.StepImpls() {
				if err := fp.UseStep(impl); err != nil {
					t.Fatal(err)
				}
				net := testNet(t, []int{300, 8}, 150, 3, 4, 1, 3)
				o, err := New(net, Config{Gamma: 0.05, Tau: 1e-6, Formats: []fp.Format{fp.MustParseFormat(name)}, Seed: 42})
				if err != nil {
					t.Fatal(err)
				}
				if shadow {
					o.TrackFlipAgreement(net, 4096, 1)
				}
				r := rand.New(rand.NewPCG(3, 4))
				li := net.Layers()[1]
				grad := make([]float32, 5*li.In)
				for range 3 {
					for i := range grad {
						grad[i] = float32(r.NormFloat64() * 3e-5)
					}
					tile := &bnn.WeightTile{Layer: 1, Row0: 2, Row1: 7, Col0: 0, Col1: li.In, Cols: li.Stride, Grad: grad,
						Weights: net.Weights(1), RowWords: li.Stride / 64}
					o.FoldTile(0, tile)
					o.EndStep(net.RealParams())
				}
				got := result{slices.Clone(o.Momentum(1).Words()), slices.Clone(net.Weights(1)), o.Totals()[1]}
				if impl == "generic" {
					want = got
					continue
				}
				if !slices.Equal(got.words, want.words) || !slices.Equal(got.weights, want.weights) || got.cnt != want.cnt {
					t.Errorf("%s shadow %v: %s differs from generic: %+v, generic %+v", name, shadow, impl, got.cnt, want.cnt)
				}
			}
		}
	}
}
