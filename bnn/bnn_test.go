package bnn

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		name  string
		units []int
		kinds []LayerKind
	}{
		{"mlp-s", []int{256, 256}, []LayerKind{Dense, Dense}},
		{"mlp-l", []int{2048, 2048}, []LayerKind{Dense, Dense}},
		{"mlp:5,7,9", []int{5, 7, 9}, []LayerKind{Dense, Dense, Dense}},
		{"cnn", []int{64, 64, 2048}, []LayerKind{Conv3x3, Conv3x3, Dense}},
	} {
		s, err := ParseSpec(c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(s.Hidden) != len(c.units) {
			t.Fatalf("%s: %d layers, want %d", c.name, len(s.Hidden), len(c.units))
		}
		for i, l := range s.Hidden {
			if l.Units != c.units[i] || l.Kind != c.kinds[i] {
				t.Errorf("%s layer %d = %+v, want %v %d", c.name, i, l, c.kinds[i], c.units[i])
			}
		}
	}
	for _, bad := range []string{"", "mlp", "mlp:", "mlp:0", "mlp:12,x", "rnn:4", "mlp:99999999", "conv:d4,8"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		} else if !strings.Contains(err.Error(), "model") {
			t.Errorf("ParseSpec(%q) error %q does not name the model", bad, err)
		}
	}
}

// recorder is an Optimizer that keeps the full gradients and flips nothing.
type recorder struct {
	w      [][]float64 // per layer, Out×In
	in     []int
	params [][]float64
}

func newRecorder(n *Network) *recorder {
	r := &recorder{}
	for _, l := range n.Layers() {
		r.w = append(r.w, make([]float64, l.Weights))
		r.in = append(r.in, l.In)
		if l.Stride != 64*((l.In+63)/64) {
			panic("momentum stride is not the padded row length")
		}
	}
	return r
}

func (r *recorder) FoldTile(_ int, t *WeightTile) {
	cols := t.Col1 - t.Col0
	for j := t.Row0; j < t.Row1; j++ {
		for k := t.Col0; k < t.Col1; k++ {
			r.w[t.Layer][j*r.in[t.Layer]+k] = float64(t.Grad[(j-t.Row0)*cols+k-t.Col0])
		}
	}
}

func (r *recorder) EndStep(ps []RealParam) {
	r.params = r.params[:0]
	for _, p := range ps {
		g := make([]float64, len(p.Grad))
		for i, v := range p.Grad {
			g[i] = float64(v)
		}
		r.params = append(r.params, g)
	}
}

func randomNet(t *testing.T, hidden []int, in Shape, classes, batch, threads int, seed uint64) *Network {
	t.Helper()
	spec := Spec{Name: "test"}
	for _, h := range hidden {
		spec.Hidden = append(spec.Hidden, LayerSpec{Kind: Dense, Units: h})
	}
	names := make([]string, classes)
	for i := range names {
		names[i] = string(rune('a' + i))
	}
	n, err := New(spec, in, names, Options{Batch: batch, Threads: threads, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	randomize(n, rand.New(rand.NewPCG(seed, 99)))
	return n
}

// randomize fills the input batch, the labels and the batch-norm parameters
// of n from r: non-trivial scale and shift so every term of the gradient
// matters.
func randomize(n *Network, r *rand.Rand) {
	for i := range n.x {
		n.x[i] = float32(r.NormFloat64())
	}
	for i := range n.labels {
		n.labels[i] = int32(r.IntN(len(n.classes)))
	}
	for _, l := range n.layers {
		for j := range l.bn.gamma {
			l.bn.gamma[j] = float32(0.5 + r.Float64())
			l.bn.beta[j] = float32(r.NormFloat64() * 0.3)
		}
	}
}

// refLoss is the loss of the output block in float64: inputs a (m×in),
// real-valued weights w (out×in), batch norm with batch statistics, softmax
// cross-entropy.
func refLoss(a, w []float64, gamma, beta []float64, labels []int32, m, in, out int) float64 {
	z := make([]float64, m*out)
	for i := range m {
		for j := range out {
			var s float64
			for k := range in {
				s += a[i*in+k] * w[j*in+k]
			}
			z[i*out+j] = s
		}
	}
	for j := range out {
		var mu, v float64
		for i := range m {
			mu += z[i*out+j]
		}
		mu /= float64(m)
		for i := range m {
			d := z[i*out+j] - mu
			v += d * d
		}
		v /= float64(m)
		for i := range m {
			z[i*out+j] = gamma[j]*(z[i*out+j]-mu)/math.Sqrt(v+bnEpsilon) + beta[j]
		}
	}
	var loss float64
	for i := range m {
		row := z[i*out : (i+1)*out]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		loss += math.Log(s) - (row[labels[i]] - mx)
	}
	return loss / float64(m)
}

func unpack(bits []uint64, m, n int) []float64 {
	w := (n + 63) / 64
	out := make([]float64, m*n)
	for i := range m {
		for k := range n {
			out[i*n+k] = 1
			if bits[i*w+k/64]>>(k%64)&1 == 1 {
				out[i*n+k] = -1
			}
		}
	}
	return out
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// checkClose compares a computed gradient with a finite difference.
func checkClose(t *testing.T, what string, got, want, scale float64) {
	t.Helper()
	if math.Abs(got-want) > 2e-3*scale+1e-4*math.Abs(want) {
		t.Errorf("%s: backward %.6g, finite difference %.6g", what, got, want)
	}
}

// gradCheckOutput checks the output block's weight, scale and shift
// gradients against central finite differences of refLoss, where a are the
// block's inputs (real pixels or the last hidden layer's ±1 activations).
func gradCheckOutput(t *testing.T, n *Network, a []float64, m int) {
	rec := newRecorder(n)
	if _, err := n.TrainStep(m, rec); err != nil {
		t.Fatal(err)
	}
	li := len(n.layers) - 1
	l := n.layers[li]
	w := unpack(l.w, l.out, l.in)
	gamma, beta := f64(l.bn.gamma), f64(l.bn.beta)
	loss := func() float64 { return refLoss(a, w, gamma, beta, n.labels, m, l.in, l.out) }
	const h = 1e-3
	diff := func(p *float64) float64 {
		old := *p
		*p = old + h
		up := loss()
		*p = old - h
		down := loss()
		*p = old
		return (up - down) / (2 * h)
	}
	var scale float64
	for _, g := range rec.w[li] {
		scale = max(scale, math.Abs(g))
	}
	if scale == 0 {
		t.Fatal("all weight gradients are zero")
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 40 {
		idx := r.IntN(len(w))
		checkClose(t, "weight", rec.w[li][idx], diff(&w[idx]), scale)
	}
	for j := range l.out {
		checkClose(t, "bn scale", rec.params[2*li][j], diff(&gamma[j]), scale)
		checkClose(t, "bn shift", rec.params[2*li+1][j], diff(&beta[j]), scale)
	}
}

// TestGradCheckRealInputLayer: a network with no hidden layer is real inputs
// → binary weights → batch norm → softmax; every gradient has a finite
// difference.
func TestGradCheckRealInputLayer(t *testing.T) {
	n := randomNet(t, nil, Shape{1, 1, 70}, 5, 16, 2, 1)
	gradCheckOutput(t, n, f64(n.x[:16*70]), 16)
}

// TestGradCheckBinaryOutputLayer: the output block over ±1 activations of a
// hidden layer (the sign has no finite difference, its output does).
func TestGradCheckBinaryOutputLayer(t *testing.T) {
	n := randomNet(t, []int{130}, Shape{2, 3, 5}, 4, 12, 3, 2)
	n.forward(12, true) // fills the hidden sign bits TrainStep will reproduce
	gradCheckOutput(t, n, unpack(n.layers[0].sign, 12, 130), 12)
}

// TestBatchNormBackward checks ∂L/∂z of batch norm (batch statistics)
// against finite differences for L = Σ c·y.
func TestBatchNormBackward(t *testing.T) {
	const m, nf = 9, 5
	r := rand.New(rand.NewPCG(3, 3))
	b := newBatchNorm(nf)
	for j := range nf {
		b.gamma[j] = float32(0.5 + r.Float64())
		b.beta[j] = float32(r.NormFloat64())
	}
	z := make([]float64, m*nf)
	c := make([]float64, m*nf)
	for i := range z {
		z[i] = r.NormFloat64() * 3
		c[i] = r.NormFloat64()
	}
	loss := func() float64 {
		zz := make([]float32, len(z))
		for i, v := range z {
			zz[i] = float32(v)
		}
		bb := newBatchNorm(nf)
		copy(bb.gamma, b.gamma)
		copy(bb.beta, b.beta)
		bb.trainForward(zz, m)
		var s float64
		for i, v := range zz {
			s += c[i] * float64(v)
		}
		return s
	}
	zz := make([]float32, len(z))
	for i, v := range z {
		zz[i] = float32(v)
	}
	b.trainForward(zz, m)
	for i, v := range z {
		zz[i] = float32(v)
	}
	dy := make([]float32, len(c))
	for i, v := range c {
		dy[i] = float32(v)
	}
	b.backward(zz, dy, m)
	const h = 1e-2
	for i := range z {
		old := z[i]
		z[i] = old + h
		up := loss()
		z[i] = old - h
		down := loss()
		z[i] = old
		fd := (up - down) / (2 * h)
		if math.Abs(float64(dy[i])-fd) > 2e-3+2e-3*math.Abs(fd) {
			t.Errorf("dz[%d] = %.6g, finite difference %.6g", i, dy[i], fd)
		}
	}
}

// TestBackwardMatchesReference compares every weight and batch-norm gradient
// of a two-hidden-layer network with a plain float64 implementation of the
// same forward pass and straight-through backward pass.
func TestBackwardMatchesReference(t *testing.T) {
	const m = 10
	hidden := []int{70, 33}
	n := randomNet(t, hidden, Shape{1, 5, 9}, 6, m, 2, 4)
	rec := newRecorder(n)
	if _, err := n.TrainStep(m, rec); err != nil {
		t.Fatal(err)
	}
	// Reference forward.
	type lay struct {
		a, xhat, mask []float64
		invStd        []float64
	}
	acts := f64(n.x[:m*45])
	refs := make([]lay, len(n.layers))
	var logits []float64
	for li, l := range n.layers {
		w := unpack(l.w, l.out, l.in)
		ref := lay{a: acts, xhat: make([]float64, m*l.out), mask: make([]float64, m*l.out), invStd: make([]float64, l.out)}
		y := make([]float64, m*l.out)
		for j := range l.out {
			z := make([]float64, m)
			var mu, v float64
			for i := range m {
				for k := range l.in {
					z[i] += acts[i*l.in+k] * w[j*l.in+k]
				}
				mu += z[i]
			}
			mu /= m
			for i := range m {
				v += (z[i] - mu) * (z[i] - mu)
			}
			ref.invStd[j] = 1 / math.Sqrt(v/m+bnEpsilon)
			for i := range m {
				xh := (z[i] - mu) * ref.invStd[j]
				ref.xhat[i*l.out+j] = xh
				y[i*l.out+j] = float64(l.bn.gamma[j])*xh + float64(l.bn.beta[j])
			}
		}
		refs[li] = ref
		if l.last {
			logits = y
			break
		}
		next := make([]float64, len(y))
		for i, v := range y {
			next[i] = 1
			if v < 0 {
				next[i] = -1
			}
			if math.Abs(v) <= 1 {
				refs[li].mask[i] = 1
			}
		}
		// The network's bits must agree except within rounding of the edges.
		got := unpack(l.sign, m, l.out)
		gotMask := unpack(l.mask, m, l.out)
		for i, v := range y {
			if got[i] != next[i] && math.Abs(v) > 1e-4 {
				t.Fatalf("layer %d activation %d: sign %v, reference y = %g", li, i, got[i], v)
			}
			if (gotMask[i] == -1) != (refs[li].mask[i] == 1) && math.Abs(math.Abs(v)-1) > 1e-4 {
				t.Fatalf("layer %d activation %d: mask bit wrong for y = %g", li, i, v)
			}
			refs[li].mask[i] = (1 - gotMask[i]) / 2 // use the network's decision at the edges
		}
		acts = got
	}
	// Reference backward.
	c := len(n.classes)
	dy := make([]float64, m*c)
	for i := range m {
		row := logits[i*c : (i+1)*c]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		for j, v := range row {
			dy[i*c+j] = math.Exp(v-mx) / s / m
		}
		dy[i*c+int(n.labels[i])] -= 1.0 / m
	}
	for li := len(n.layers) - 1; li >= 0; li-- {
		l := n.layers[li]
		ref := refs[li]
		w := unpack(l.w, l.out, l.in)
		dz := make([]float64, m*l.out)
		for j := range l.out {
			var sdy, sdyx float64
			for i := range m {
				sdy += dy[i*l.out+j]
				sdyx += dy[i*l.out+j] * ref.xhat[i*l.out+j]
			}
			checkClose(t, "bn shift", rec.params[2*li+1][j], sdy, 1e-2)
			checkClose(t, "bn scale", rec.params[2*li][j], sdyx, 1e-2)
			for i := range m {
				dz[i*l.out+j] = float64(l.bn.gamma[j]) * ref.invStd[j] * (dy[i*l.out+j] - sdy/m - ref.xhat[i*l.out+j]*sdyx/m)
			}
		}
		var scale float64
		gw := make([]float64, l.out*l.in)
		for j := range l.out {
			for k := range l.in {
				for i := range m {
					gw[j*l.in+k] += dz[i*l.out+j] * ref.a[i*l.in+k]
				}
				scale = max(scale, math.Abs(gw[j*l.in+k]))
			}
		}
		for i, g := range gw {
			if math.Abs(rec.w[li][i]-g) > 1e-4*scale+1e-7 {
				t.Fatalf("layer %d weight gradient %d: %g, reference %g", li, i, rec.w[li][i], g)
			}
		}
		if li == 0 {
			break
		}
		prev := refs[li-1]
		nd := make([]float64, m*l.in)
		for i := range m {
			for k := range l.in {
				var s float64
				for j := range l.out {
					s += dz[i*l.out+j] * w[j*l.in+k]
				}
				nd[i*l.in+k] = s * prev.mask[i*l.in+k]
			}
		}
		dy = nd
	}
}

// xorData fills the input with noisy points around the four corners
// (±1, ±1), labelled by the XOR of the corner's signs: not linearly
// separable, so the hidden layers must learn.
func xorData(r *rand.Rand, x []float32, labels []int32, m int) {
	for i := range m {
		sa, sb := r.IntN(2), r.IntN(2)
		x[2*i] = float32(float64(2*sa-1) + 0.3*r.NormFloat64())
		x[2*i+1] = float32(float64(2*sb-1) + 0.3*r.NormFloat64())
		labels[i] = int32(sa ^ sb)
	}
}

// flipper is a minimal latent-free Bop (fp32 momenta, no encoding) so the
// package can test learning without depending on bop.
type flipper struct {
	m          [][]float32
	gamma, tau float32
	adam       float32
}

func (f *flipper) FoldTile(_ int, t *WeightTile) {
	cols := t.Col1 - t.Col0
	for j := t.Row0; j < t.Row1; j++ {
		for k := t.Col0; k < t.Col1; k++ {
			m := &f.m[t.Layer][j*t.Cols+k]
			*m += f.gamma * (t.Grad[(j-t.Row0)*cols+k-t.Col0] - *m)
			word := &t.Weights[j*t.RowWords+k/64]
			w := float32(1)
			if *word>>(k%64)&1 == 1 {
				w = -1
			}
			if w**m > f.tau {
				*word ^= 1 << (k % 64)
			}
		}
	}
}

func (f *flipper) EndStep(ps []RealParam) {
	for _, p := range ps {
		for i, g := range p.Grad {
			p.Value[i] -= f.adam * g
		}
	}
}

func TestLearnsXOR(t *testing.T) {
	const batch = 64
	spec := Spec{Name: "xor", Hidden: []LayerSpec{{Kind: Dense, Units: 64}, {Kind: Dense, Units: 64}}}
	n, err := New(spec, Shape{1, 1, 2}, []string{"same", "differ"}, Options{Batch: batch, Threads: 2, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	f := &flipper{gamma: 1e-2, tau: 1e-4, adam: 1e-2}
	for _, l := range n.Layers() {
		f.m = append(f.m, make([]float32, l.Out*l.Stride))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1500 {
		xorData(r, n.x, n.labels, batch)
		if _, err := n.TrainStep(batch, f); err != nil {
			t.Fatal(err)
		}
	}
	pred := make([]int32, batch)
	correct := 0
	for range 10 {
		xorData(r, n.x, n.labels, batch)
		if err := n.Evaluate(batch, pred); err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			if pred[i] == n.labels[i] {
				correct++
			}
		}
	}
	if acc := float64(correct) / (10 * batch); acc < 0.9 {
		t.Fatalf("XOR accuracy %.3f after training, want ≥ 0.9", acc)
	}
}

func TestTrainStepErrors(t *testing.T) {
	n := randomNet(t, []int{8}, Shape{1, 1, 4}, 3, 4, 1, 1)
	if _, err := n.TrainStep(1, newRecorder(n)); err == nil {
		t.Error("batch of 1 accepted")
	}
	if _, err := n.TrainStep(5, newRecorder(n)); err == nil {
		t.Error("batch larger than the buffers accepted")
	}
	n.labels[2] = 3
	_, err := n.TrainStep(4, newRecorder(n))
	if !errors.Is(err, errLabel) || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("bad label: error %v, want one naming row 2", err)
	}
}

func TestModelRoundTrip(t *testing.T) {
	n := randomNet(t, []int{70, 20}, Shape{3, 4, 5}, 4, 8, 2, 11)
	f := &flipper{gamma: 0.1, tau: 0, adam: 0.1}
	for _, l := range n.Layers() {
		f.m = append(f.m, make([]float32, l.Out*l.Stride))
	}
	for range 3 {
		if _, err := n.TrainStep(8, f); err != nil {
			t.Fatal(err)
		}
	}
	n.spec = Spec{Name: "mlp:70,20", Hidden: n.spec.Hidden}
	n.SetNormalizer(Normalizer{Mean: []float32{1, 2, 3}, Std: []float32{4, 5, 6}})
	var buf bytes.Buffer
	if _, err := n.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	got, err := ReadModel(bytes.NewReader(file), Options{Batch: 8, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := got.WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, again.Bytes()) {
		t.Fatal("write → read → write changed the file")
	}
	copy(got.x, n.x)
	p1, p2 := make([]int32, 8), make([]int32, 8)
	if err := n.Evaluate(8, p1); err != nil {
		t.Fatal(err)
	}
	if err := got.Evaluate(8, p2); err != nil {
		t.Fatal(err)
	}
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatalf("prediction %d differs after reload: %d vs %d", i, p1[i], p2[i])
		}
	}
	if got.Normalizer().Std[2] != 6 || got.Classes()[3] != "d" {
		t.Error("normaliser or classes not restored")
	}

	bad := func(name string, b []byte, want error) {
		t.Helper()
		_, err := ReadModel(bytes.NewReader(b), Options{Batch: 8, Threads: 1})
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
	}
	for _, cut := range []int{0, 5, 19, 20, 100, len(file) - 1} {
		bad("truncated", file[:cut], ErrTruncated)
	}
	ver := bytes.Clone(file)
	ver[8] = 9
	bad("version", ver, ErrVersion)
	magic := bytes.Clone(file)
	magic[0] = 'X'
	bad("magic", magic, ErrBadMagic)
	for _, at := range []int{25, len(file) / 2, len(file) - 5, len(file) - 1} {
		flip := bytes.Clone(file)
		flip[at] ^= 0x10
		bad("flipped bit", flip, ErrChecksum)
	}
}

func TestMemoryCountsBuffers(t *testing.T) {
	n := randomNet(t, []int{100}, Shape{1, 1, 130}, 10, 32, 2, 1)
	m := n.Memory()
	// 130 inputs → 3 words per row × 100 rows; 100 inputs → 2 words × 10 rows.
	if want := int64((100*3 + 10*2) * 8); m.BinaryWeights != want {
		t.Errorf("binary weights %d B, want %d", m.BinaryWeights, want)
	}
	// Sign and mask bits: 32 rows × 2 words (100 activations) × 2.
	if want := int64(32 * 2 * 2 * 8); m.Activations != want {
		t.Errorf("activations %d B, want %d", m.Activations, want)
	}
	if want := int64(32*130*4 + 32*4); m.InputBatch != want {
		t.Errorf("input batch %d B, want %d", m.InputBatch, want)
	}
	if m.Total() != m.BinaryWeights+m.RealParams+m.Activations+m.GradientTiles+m.Buffers+m.InputBatch {
		t.Error("Total is not the sum of the parts")
	}
}

// TestEstimateStatistics: the running statistics become the mean of the
// per-batch statistics (variance unbiased), whatever they were before, and
// later training steps go back to the exponential average.
func TestEstimateStatistics(t *testing.T) {
	const batch = 6
	n := randomNet(t, []int{40, 24}, Shape{1, 1, 30}, 4, batch, 2, 5)
	r := rand.New(rand.NewPCG(8, 8))
	inputs := make([][]float32, 3)
	for i := range inputs {
		inputs[i] = make([]float32, len(n.x))
		for j := range inputs[i] {
			inputs[i][j] = float32(r.NormFloat64() + float64(i)) // batches differ
		}
	}
	deal := func(order ...int) func() (int, error) {
		return func() (int, error) {
			if len(order) == 0 {
				return 0, errors.New("no more batches")
			}
			copy(n.x, inputs[order[0]])
			order = order[1:]
			return batch, nil
		}
	}
	stats := func() (mean, vr [][]float32) {
		for _, l := range n.layers {
			mean = append(mean, slices.Clone(l.bn.runMean))
			vr = append(vr, slices.Clone(l.bn.runVar))
		}
		return
	}
	var means, vars [][][]float32
	for i := range inputs {
		if err := n.EstimateStatistics(1, deal(i)); err != nil {
			t.Fatal(err)
		}
		m, v := stats()
		means, vars = append(means, m), append(vars, v)
	}
	if err := n.EstimateStatistics(3, deal(0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	gotMean, gotVar := stats()
	for li := range gotMean {
		for j := range gotMean[li] {
			wantMean := (means[0][li][j] + means[1][li][j] + means[2][li][j]) / 3
			wantVar := (vars[0][li][j] + vars[1][li][j] + vars[2][li][j]) / 3
			if math.Abs(float64(gotMean[li][j]-wantMean)) > 1e-4*(1+math.Abs(float64(wantMean))) ||
				math.Abs(float64(gotVar[li][j]-wantVar)) > 1e-4*(1+float64(wantVar)) {
				t.Fatalf("layer %d unit %d: running mean %g var %g, want %g and %g", li, j, gotMean[li][j], gotVar[li][j], wantMean, wantVar)
			}
		}
	}
	if means[0][0][0] == means[1][0][0] {
		t.Fatal("batches with different inputs gave the same statistics: the test checks nothing")
	}
	if err := n.EstimateStatistics(2, deal(0)); err == nil || !strings.Contains(err.Error(), "batch 2") {
		t.Errorf("running out of batches: error %v, want one naming batch 2", err)
	}
	// Training averages again with the usual momentum.
	copy(n.x, inputs[0])
	before := n.layers[0].bn.runMean[0]
	if _, err := n.TrainStep(batch, newRecorder(n)); err != nil {
		t.Fatal(err)
	}
	want := bnMomentum*before + (1-bnMomentum)*n.layers[0].bn.mean[0]
	if got := n.layers[0].bn.runMean[0]; math.Abs(float64(got-want)) > 1e-5*(1+math.Abs(float64(want))) {
		t.Errorf("after a training step the running mean is %g, want %g", got, want)
	}
}
