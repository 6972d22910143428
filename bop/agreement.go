package bop

import (
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/bnnd/bnnd/bnn"
)

// shadow runs an fp32 Bop beside the real one on a sample of weights: each
// sampled weight has an fp32 momentum and its own sign, fed the same
// gradients as the real (compact) momentum. Comparing the flips of the two
// measures how faithfully the encoding reproduces fp32 Bop on the live
// gradient stream.
type shadow struct {
	layers []shadowLayer
}

type shadowLayer struct {
	idx []int     // sorted momentum indices
	m   []float32 // fp32 momenta
	neg []bool    // shadow weight is −1
	// Per worker counts, merged in EndStep.
	work []FlipAgreement
	sum  FlipAgreement
}

// FlipAgreement counts flips of the sampled weights: by both the encoded
// momenta and the fp32 shadow, by the encoding only, by fp32 only.
type FlipAgreement struct {
	Both, EncodedOnly, FP32Only int64
}

// Agreement is Both / (Both + EncodedOnly + FP32Only): 1 when the encoding
// flips exactly the weights fp32 would (1 also when neither flipped).
func (a FlipAgreement) Agreement() float64 {
	u := a.Both + a.EncodedOnly + a.FP32Only
	if u == 0 {
		return 1
	}
	return float64(a.Both) / float64(u)
}

// Add accumulates o into a.
func (a *FlipAgreement) Add(o FlipAgreement) {
	a.Both += o.Both
	a.EncodedOnly += o.EncodedOnly
	a.FP32Only += o.FP32Only
}

// TrackFlipAgreement starts the fp32 shadow on samples weights per layer.
func (o *Optimizer) TrackFlipAgreement(net *bnn.Network, samples int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x736861646f77))
	sh := &shadow{}
	for i, l := range o.layers {
		idx := momentumIndices(sample(rng, l.info.Weights, samples), l.info)
		sl := shadowLayer{idx: idx, m: make([]float32, len(idx)), neg: make([]bool, len(idx)), work: make([]FlipAgreement, len(o.work))}
		f := l.momentum.Format()
		for s, x := range idx {
			sl.m[s] = f.Decode(l.momentum.Get(x))
			sl.neg[s] = net.WeightSign(i, x/l.info.Stride, x%l.info.Stride) < 0
		}
		sh.layers = append(sh.layers, sl)
	}
	o.shadow = sh
}

// FlipAgreement returns the shadow comparison by layer (nil when not tracked).
func (o *Optimizer) FlipAgreement() []FlipAgreement {
	if o.shadow == nil {
		return nil
	}
	out := make([]FlipAgreement, len(o.shadow.layers))
	for i, l := range o.shadow.layers {
		out[i] = l.sum
	}
	return out
}

// observe compares, for the sampled weights among momentum indices [base,
// base+len(g)), the real flip decision (new momenta mOut, weights row before
// flipping) with the shadow's, and advances the shadow.
func (sh *shadow) observe(worker, layer, base, col0 int, g, mOut []float32, row []uint64, gamma, tau float32) {
	sl := &sh.layers[layer]
	cnt := &sl.work[worker]
	for s := sort.SearchInts(sl.idx, base); s < len(sl.idx) && sl.idx[s] < base+len(g); s++ {
		c := sl.idx[s] - base
		bit := col0 + c
		neg := row[bit/64]>>(bit%64)&1 == 1
		m := mOut[c]
		real := (neg && m < -tau) || (!neg && m > tau)
		sm := sl.m[s] + gamma*(g[c]-sl.m[s])
		sl.m[s] = sm
		ref := (sl.neg[s] && sm < -tau) || (!sl.neg[s] && sm > tau)
		if ref {
			sl.neg[s] = !sl.neg[s]
		}
		switch {
		case real && ref:
			cnt.Both++
		case real:
			cnt.EncodedOnly++
		case ref:
			cnt.FP32Only++
		}
	}
}

func (sh *shadow) endStep() {
	for i := range sh.layers {
		sl := &sh.layers[i]
		for w := range sl.work {
			sl.sum.Add(sl.work[w])
			sl.work[w] = FlipAgreement{}
		}
	}
}

// sample draws k distinct indices from [0, n) (Floyd's algorithm), sorted.
func sample(r *rand.Rand, n, k int) []int {
	k = min(k, n)
	set := make(map[int]struct{}, k)
	out := make([]int, 0, k)
	for j := n - k; j < n; j++ {
		t := r.IntN(j + 1)
		if _, dup := set[t]; dup {
			t = j
		}
		set[t] = struct{}{}
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// momentumIndices maps weight numbers s = j*In+kk (sorted) to momentum
// indices j*Stride+kk (still sorted).
func momentumIndices(ws []int, info bnn.LayerInfo) []int {
	for i, s := range ws {
		ws[i] = s/info.In*info.Stride + s%info.In
	}
	return ws
}
