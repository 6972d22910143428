package bnn

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPoolUnpool(t *testing.T) {
	const m, h, w, c = 2, 4, 6, 3
	r := rand.New(rand.NewPCG(1, 1))
	src := make([]float32, m*h*w*c)
	for i := range src {
		src[i] = float32(r.IntN(5)) // ties are common
	}
	dst := make([]float32, m*h/2*w/2*c)
	maxPool(dst, src, m, h, w, c)
	dp := make([]float32, len(dst))
	for i := range dp {
		dp[i] = float32(i + 1)
	}
	ds := make([]float32, len(src))
	for i := range ds {
		ds[i] = 99 // must be overwritten
	}
	unpool(ds, dp, src, m, h, w, c)
	at := func(b, y, x, ch int) int { return ((b*h+y)*w+x)*c + ch }
	var total float32
	for b := range m {
		for y := range h / 2 {
			for x := range w / 2 {
				for ch := range c {
					p := ((b*h/2+y)*w/2+x)*c + ch
					best, bi := float32(math.Inf(-1)), -1
					for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
						i := at(b, 2*y+d[0], 2*x+d[1], ch)
						if src[i] > best {
							best, bi = src[i], i
						}
					}
					if dst[p] != best {
						t.Fatalf("pool %d = %v, want %v", p, dst[p], best)
					}
					if ds[bi] != dp[p] {
						t.Fatalf("unpool: gradient %v not routed to the first maximum", dp[p])
					}
					total += dp[p]
				}
			}
		}
	}
	var sum float32
	for _, v := range ds {
		sum += v
	}
	if sum != total {
		t.Fatalf("unpool wrote %v in total, want %v (every other entry zero)", sum, total)
	}
}

// refConv is a direct 3×3 convolution (stride 1, padding pad) of an m×h×w×c
// input with out filters (weights[o][(dy*3+dx)*c+ch] = ±1) in float64.
func refConv(in []float64, wts []float64, m, h, w, c, out int, pad float64) []float64 {
	z := make([]float64, m*h*w*out)
	for b := range m {
		for y := range h {
			for x := range w {
				for o := range out {
					var s float64
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							for ch := range c {
								v := pad
								if yy, xx := y+dy, x+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
									v = in[((b*h+yy)*w+xx)*c+ch]
								}
								s += v * wts[o*9*c+((dy+1)*3+dx+1)*c+ch]
							}
						}
					}
					z[((b*h+y)*w+x)*out+o] = s
				}
			}
		}
	}
	return z
}

// refConvGrads returns ∂L/∂w (out × 9c) and ∂L/∂in (m×h×w×c) of refConv
// given ∂L/∂z; padded positions have no input gradient.
func refConvGrads(in, wts, dz []float64, m, h, w, c, out int, pad float64) (gw, gin []float64) {
	gw = make([]float64, out*9*c)
	gin = make([]float64, m*h*w*c)
	for b := range m {
		for y := range h {
			for x := range w {
				for o := range out {
					d := dz[((b*h+y)*w+x)*out+o]
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							for ch := range c {
								k := o*9*c + ((dy+1)*3+dx+1)*c + ch
								if yy, xx := y+dy, x+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
									i := ((b*h+yy)*w+xx)*c + ch
									gw[k] += d * in[i]
									gin[i] += d * wts[k]
								} else {
									gw[k] += d * pad
								}
							}
						}
					}
				}
			}
		}
	}
	return gw, gin
}

// TestConvMatchesReference runs conv(real, 64) → conv(binary, 64, pool) →
// dense output on random data and compares the forward activations and
// every gradient with direct float64 convolutions.
// withChunkRows sizes the conv chunks of networks built during the test.
func withChunkRows(t *testing.T, rows int) {
	old := chunkRows
	chunkRows = rows
	t.Cleanup(func() { chunkRows = old })
}

// TestConvMatchesReference runs the whole batch as one chunk, one image per
// chunk and two images per chunk (4×6 images: 24 GEMM rows each).
func TestConvMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		rows, images int
	}{{1024, 3}, {24, 1}, {48, 2}} {
		t.Run(fmt.Sprintf("chunk=%d", tc.images), func(t *testing.T) {
			withChunkRows(t, tc.rows)
			testConvMatchesReference(t, tc.images)
		})
	}
}

func testConvMatchesReference(t *testing.T, chunk int) {
	const m, h, w, classes = 3, 4, 6, 5
	spec, err := ParseSpec("conv:64,64p")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "d", "e"}
	n, err := New(spec, Shape{h, w, 2}, names, Options{Batch: m, Threads: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	randomize(n, rand.New(rand.NewPCG(5, 5)))
	if n.chunk != chunk {
		t.Fatalf("network runs %d images per conv chunk, want %d", n.chunk, chunk)
	}
	rec := newRecorder(n)
	if _, err := n.TrainStep(m, rec); err != nil {
		t.Fatal(err)
	}
	l0, l1, l2 := n.layers[0], n.layers[1], n.layers[2]
	// Forward, layer by layer, with the network's own sign decisions.
	bnRef := func(z []float64, rows, c int, l *layer) (xh, invStd []float64) {
		xh = make([]float64, len(z))
		invStd = make([]float64, c)
		for ch := range c {
			var mu, v float64
			for i := range rows {
				mu += z[i*c+ch]
			}
			mu /= float64(rows)
			for i := range rows {
				v += (z[i*c+ch] - mu) * (z[i*c+ch] - mu)
			}
			invStd[ch] = 1 / math.Sqrt(v/float64(rows)+bnEpsilon)
			for i := range rows {
				xh[i*c+ch] = (z[i*c+ch] - mu) * invStd[ch]
			}
		}
		return
	}
	checkSigns := func(li int, l *layer, xh []float64, rows int) []float64 {
		got := unpack(l.sign, rows, l.out)
		for i, v := range xh {
			y := float64(l.bn.gamma[i%l.out])*v + float64(l.bn.beta[i%l.out])
			if (y < 0) != (got[i] < 0) && math.Abs(y) > 1e-4 {
				t.Fatalf("layer %d activation %d: sign %v for y = %g", li, i, got[i], y)
			}
		}
		return got
	}
	x := f64(n.x[:m*h*w*2])
	w0 := unpack(l0.w, 64, 18)
	z0 := refConv(x, w0, m, h, w, 2, 64, 0)
	xh0, inv0 := bnRef(z0, m*h*w, 64, l0)
	a0 := checkSigns(0, l0, xh0, m*h*w)
	w1 := unpack(l1.w, 64, 9*64)
	z1 := refConv(a0, w1, m, h, w, 64, 64, 1)
	zp := make([]float32, m*h/2*w/2*64)
	z1f := make([]float32, len(z1))
	for i, v := range z1 {
		z1f[i] = float32(v)
	}
	maxPool(zp, z1f, m, h, w, 64)
	xh1, inv1 := bnRef(f64(zp), m*h/2*w/2, 64, l1)
	a1 := checkSigns(1, l1, xh1, m*h/2*w/2)
	w2 := unpack(l2.w, classes, l2.in)
	// Backward by hand, through the output block, pooling and both convs.
	// Output block dz via the same formulas as TestBackwardMatchesReference.
	z2 := make([]float64, m*classes)
	for i := range m {
		for j := range classes {
			for k := range l2.in {
				z2[i*classes+j] += a1[i*l2.in+k] * w2[j*l2.in+k]
			}
		}
	}
	xh2, inv2 := bnRef(z2, m, classes, l2)
	dy := make([]float64, m*classes)
	for i := range m {
		row := make([]float64, classes)
		mx := math.Inf(-1)
		for j := range classes {
			row[j] = float64(l2.bn.gamma[j])*xh2[i*classes+j] + float64(l2.bn.beta[j])
			mx = max(mx, row[j])
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		for j, v := range row {
			dy[i*classes+j] = math.Exp(v-mx) / s / m
		}
		dy[i*classes+int(n.labels[i])] -= 1.0 / m
	}
	bnBack := func(dy, xh, invStd []float64, rows, c int, l *layer, li int) []float64 {
		dz := make([]float64, len(dy))
		for ch := range c {
			var sdy, sdyx float64
			for i := range rows {
				sdy += dy[i*c+ch]
				sdyx += dy[i*c+ch] * xh[i*c+ch]
			}
			checkClose(t, "bn shift", rec.params[2*li+1][ch], sdy, 1e-2)
			checkClose(t, "bn scale", rec.params[2*li][ch], sdyx, 1e-2)
			for i := range rows {
				dz[i*c+ch] = float64(l.bn.gamma[ch]) * invStd[ch] * (dy[i*c+ch] - sdy/float64(rows) - xh[i*c+ch]*sdyx/float64(rows))
			}
		}
		return dz
	}
	compare := func(li int, got, want []float64) {
		var scale float64
		for _, v := range want {
			scale = max(scale, math.Abs(v))
		}
		if scale == 0 {
			t.Fatalf("layer %d: reference gradient is all zero", li)
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-4*scale+1e-7 {
				t.Fatalf("layer %d weight gradient %d: %g, reference %g", li, i, got[i], want[i])
			}
		}
	}
	dz2 := bnBack(dy, xh2, inv2, m, classes, l2, 2)
	gw2 := make([]float64, classes*l2.in)
	da1 := make([]float64, m*l2.in)
	for i := range m {
		for j := range classes {
			for k := range l2.in {
				gw2[j*l2.in+k] += dz2[i*classes+j] * a1[i*l2.in+k]
				da1[i*l2.in+k] += dz2[i*classes+j] * w2[j*l2.in+k]
			}
		}
	}
	compare(2, rec.w[2], gw2)
	mask1 := unpack(l1.mask, m*h/2*w/2, 64)
	for i := range da1 {
		if mask1[i] > 0 { // bit 0: |y| > 1, gradient stopped
			da1[i] = 0
		}
	}
	dzp := bnBack(da1, xh1, inv1, m*h/2*w/2, 64, l1, 1)
	dzpf := make([]float32, len(dzp))
	for i, v := range dzp {
		dzpf[i] = float32(v)
	}
	dz1f := make([]float32, len(z1))
	unpool(dz1f, dzpf, z1f, m, h, w, 64)
	gw1, da0 := refConvGrads(a0, w1, f64(dz1f), m, h, w, 64, 64, 1)
	compare(1, rec.w[1], gw1)
	mask0 := unpack(l0.mask, m*h*w, 64)
	for i := range da0 {
		if mask0[i] > 0 {
			da0[i] = 0
		}
	}
	dz0 := bnBack(da0, xh0, inv0, m*h*w, 64, l0, 0)
	gw0, _ := refConvGrads(x, w0, dz0, m, h, w, 2, 64, 0)
	compare(0, rec.w[0], gw0)
}

func TestConvSpecErrors(t *testing.T) {
	for _, c := range []struct {
		model string
		in    Shape
	}{
		{"conv:64,32,16", Shape{4, 4, 1}}, // binary conv over 32 channels
		{"conv:64p", Shape{5, 4, 1}},      // odd height pooled
		{"conv:32,d16", Shape{4, 4, 1}},   // dense over 32-channel maps
	} {
		spec, err := ParseSpec(c.model)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(spec, c.in, []string{"a", "b"}, Options{Batch: 2}); err == nil {
			t.Errorf("%s on %v accepted", c.model, c.in)
		}
	}
}

func TestConvModelRoundTrip(t *testing.T) {
	spec, err := ParseSpec("conv:64p,64,d40")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(spec, Shape{4, 6, 1}, []string{"x", "y", "z"}, Options{Batch: 4, Threads: 2, Seed: 8})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	for i := range n.x {
		n.x[i] = float32(r.NormFloat64())
	}
	f := &flipper{gamma: 0.2, tau: 0, adam: 0.05}
	for _, l := range n.Layers() {
		f.m = append(f.m, make([]float32, l.Out*l.Stride))
	}
	for range 3 {
		if _, err := n.TrainStep(4, f); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := n.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModel(bytes.NewReader(buf.Bytes()), Options{Batch: 4, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	copy(got.x, n.x)
	p1, p2 := make([]int32, 4), make([]int32, 4)
	if err := n.Evaluate(4, p1); err != nil {
		t.Fatal(err)
	}
	if err := got.Evaluate(4, p2); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(n.Logits(4), got.Logits(4)) || !slices.Equal(p1, p2) {
		t.Fatal("reloaded conv model computes different logits")
	}
}

// TestConvChunksAndThreads trains one step of a three-conv network (so the
// first layer's output gradient is recomputed through two conv layers) with
// different chunk sizes and thread counts: the same chunking gives
// bit-identical gradients for any thread count, and every chunking agrees
// with the whole-batch one up to float rounding.
func TestConvChunksAndThreads(t *testing.T) {
	const m, classes = 5, 3
	spec, err := ParseSpec("conv:64,64p,64,d32")
	if err != nil {
		t.Fatal(err)
	}
	run := func(rows, threads int) *recorder {
		withChunkRows(t, rows)
		n, err := New(spec, Shape{4, 6, 2}, []string{"a", "b", "c"}, Options{Batch: m, Threads: threads, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		randomize(n, rand.New(rand.NewPCG(6, 6)))
		rec := newRecorder(n)
		if _, err := n.TrainStep(m, rec); err != nil {
			t.Fatal(err)
		}
		// The step updated the running statistics; evaluation uses them.
		pred := make([]int32, m)
		if err := n.Evaluate(m, pred); err != nil {
			t.Fatal(err)
		}
		rec.params = append(rec.params, f64(n.Logits(m)))
		return rec
	}
	whole := run(1024, 1)
	for li, g := range whole.w[:3] {
		if slices.Max(g) == 0 && slices.Min(g) == 0 {
			t.Fatalf("layer %d: all-zero weight gradient, the test checks nothing", li)
		}
	}
	close := func(what string, got, want [][]float64) {
		for li := range want {
			var scale float64
			for _, v := range want[li] {
				scale = max(scale, math.Abs(v))
			}
			for i := range want[li] {
				if math.Abs(got[li][i]-want[li][i]) > 1e-4*scale {
					t.Fatalf("%s: layer %d gradient %d: %g, whole batch %g", what, li, i, got[li][i], want[li][i])
				}
			}
		}
	}
	for _, rows := range []int{24, 48, 72} {
		one := run(rows, 1)
		close(fmt.Sprintf("%d rows per chunk", rows), one.w, whole.w)
		close(fmt.Sprintf("%d rows per chunk, batch norm", rows), one.params, whole.params)
		for _, threads := range []int{2, 3} {
			got := run(rows, threads)
			for li := range one.w {
				if !slices.Equal(got.w[li], one.w[li]) {
					t.Fatalf("%d rows per chunk: layer %d gradient differs with %d threads", rows, li, threads)
				}
			}
			for i := range one.params {
				if !slices.Equal(got.params[i], one.params[i]) {
					t.Fatalf("%d rows per chunk: batch-norm gradient %d differs with %d threads", rows, i, threads)
				}
			}
		}
	}
}

// flipAll records gradients like recorder, then flips every weight of the
// tile, the most any optimizer can do to the weights during a step.
type flipAll struct{ *recorder }

func (f flipAll) FoldTile(worker int, t *WeightTile) {
	f.recorder.FoldTile(worker, t)
	for j := t.Row0; j < t.Row1; j++ {
		for k := t.Col0; k < t.Col1; k++ {
			t.Weights[j*t.RowWords+k>>6] ^= 1 << (k & 63)
		}
	}
}

// TestGradientsUseForwardWeights checks that no gradient of a step is
// computed with weights already flipped in that step, even though lower conv
// layers recompute their gradients through the layers above.
func TestGradientsUseForwardWeights(t *testing.T) {
	withChunkRows(t, 24)
	spec, err := ParseSpec("conv:64,64p,64,d32")
	if err != nil {
		t.Fatal(err)
	}
	run := func(opt func(*Network) Optimizer) *Network {
		n, err := New(spec, Shape{4, 6, 2}, []string{"a", "b", "c"}, Options{Batch: 4, Threads: 2, Seed: 12})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 7))
		for i := range n.x {
			n.x[i] = float32(r.NormFloat64())
		}
		for i := range n.labels {
			n.labels[i] = int32(r.IntN(3))
		}
		if _, err := n.TrainStep(4, opt(n)); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var plain, flipped *recorder
	run(func(n *Network) Optimizer { plain = newRecorder(n); return plain })
	run(func(n *Network) Optimizer { flipped = newRecorder(n); return flipAll{flipped} })
	for li := range plain.w {
		if !slices.Equal(plain.w[li], flipped.w[li]) {
			t.Errorf("layer %d: gradient changes when the optimizer flips weights during the step", li)
		}
	}
}
