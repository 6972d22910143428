package fp

import (
	"math"
	"sort"
	"testing"
)

// propertyFormats cover the corners: 1 exponent bit, no mantissa, biases far
// from the default in both directions, the widest all-finite layouts, and
// formats whose normals are float32 subnormals.
var propertyFormats = []string{
	"e4m3", "e4m3b28", "e3m2b24", "e5m2b30", "e2m1", "e1m0", "e1m2", "e8m0b128",
	"e2m5b-3", "e6m9b40", "e3m12b5", "e4m3b140", "e5m10b-80", "e8m15b130", "e7m16b100", "e1m0b150",
}

// grid returns all non-negative values of f in code order (which is
// increasing value order for finite codes), as float64.
func grid(f Format) []float64 {
	c := newCodec(f)
	g := make([]float64, c.maxMag+1)
	for code := range g {
		g[code] = float64(f.Decode(uint32(code)))
	}
	return g
}

// referenceEncode finds the code of |x| by search over the grid: the
// nearest value (ties to the even code) or the largest value not above
// |x|, saturating at the largest magnitude.
func referenceEncode(g []float64, x float64, mode Rounding) uint32 {
	ax := math.Abs(x)
	k := sort.SearchFloat64s(g, ax) // first g[k] >= ax
	if k == len(g) {
		return uint32(len(g) - 1)
	}
	if g[k] == ax || k == 0 {
		return uint32(k)
	}
	lo, hi := k-1, k
	if mode == TowardZero {
		return uint32(lo)
	}
	dlo, dhi := ax-g[lo], g[hi]-ax
	switch {
	case dlo < dhi:
		return uint32(lo)
	case dhi < dlo:
		return uint32(hi)
	case lo%2 == 0:
		return uint32(lo)
	}
	return uint32(hi)
}

// probes returns float32 values that stress rounding for f: every grid
// value, its float32 neighbours, the exact midpoints and quarter points
// between grid values (when representable), values beyond the ends, and
// pseudo-random float32s across the exponent range.
func probes(f Format, g []float64) []float32 {
	var xs []float32
	add := func(v float64) {
		x := float32(v)
		if float64(x) == v || v > math.MaxFloat32 {
			xs = append(xs, x)
		}
	}
	step := 1
	if len(g) > 4096 {
		step = len(g) / 4096
	}
	for k := 0; k < len(g); k += step {
		v := g[k]
		add(v)
		b := math.Float32bits(float32(v))
		xs = append(xs, math.Float32frombits(b+1))
		if b > 0 {
			xs = append(xs, math.Float32frombits(b-1))
		}
		if k+1 < len(g) {
			for _, q := range []float64{0.25, 0.5, 0.75} {
				add(v + q*(g[k+1]-v))
			}
		}
	}
	top := g[len(g)-1]
	add(2 * top)
	add(1.5 * top)
	xs = append(xs, math.MaxFloat32, math.Float32frombits(1), math.Float32frombits(0x007fffff), float32(math.Inf(1)))
	r := NewRand(1, 0)
	for range 20000 {
		xs = append(xs, math.Float32frombits(r.Uint32()&0x7f7fffff))
	}
	return xs
}

func TestEncodeIsNearestTiesToEvenAndTowardZeroTruncates(t *testing.T) {
	for _, name := range propertyFormats {
		f := MustParseFormat(name)
		g := grid(f)
		c := newCodec(f)
		xs := probes(f, g)
		for _, mode := range []Rounding{NearestEven, TowardZero} {
			fm := f
			fm.Rounding = mode
			codes := make([]uint32, len(xs))
			fm.EncodeSlice(codes, xs, nil)
			for i, x := range xs {
				want := referenceEncode(g, float64(x), mode)
				if codes[i] != want {
					t.Fatalf("%s %v: EncodeSlice(%g = %#08x) = %#x (%g), want %#x (%g)", f, mode, x, math.Float32bits(x), codes[i], f.Decode(codes[i]), want, g[want])
				}
				if got := fm.Encode(x, nil); got != want {
					t.Fatalf("%s %v: Encode(%g) = %#x, want %#x", f, mode, x, got, want)
				}
				// Sign symmetry: -x encodes to the same magnitude with the sign bit.
				if got := fm.Encode(-x, nil); got != want|1<<c.signShift {
					t.Fatalf("%s %v: Encode(%g) = %#x, want %#x", f, mode, -x, got, want|1<<c.signShift)
				}
			}
		}
	}
}

func TestEncodeIsMonotonic(t *testing.T) {
	for _, name := range propertyFormats {
		f := MustParseFormat(name)
		xs := probes(f, grid(f))
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		prev := float32(0)
		for _, x := range xs {
			v := f.Decode(f.Encode(x, nil))
			if v < prev {
				t.Fatalf("%s: Decode(Encode(%g)) = %g < %g of a smaller input", f, x, v, prev)
			}
			prev = v
		}
	}
}

func TestDecodeEncodeRoundTripsEveryCode(t *testing.T) {
	for _, name := range append(propertyFormats, "fp16", "bf16") {
		f := MustParseFormat(name)
		c := newCodec(f)
		n := uint64(1) << f.Bits()
		step := uint64(1)
		if n > 1<<17 {
			step = n>>17 | 1
		}
		for code := uint64(0); code < n; code += step {
			x := f.Decode(uint32(code))
			if x != x { // NaN: any NaN code is fine
				if y := f.Decode(f.Encode(x, nil)); y == y {
					t.Fatalf("%s: NaN code %#x re-encodes to non-NaN %g", f, code, y)
				}
				continue
			}
			for _, mode := range []Rounding{NearestEven, Stochastic, TowardZero} {
				fm := f
				fm.Rounding = mode
				r := NewRand(uint64(code), 0)
				if got := fm.Encode(x, &r); uint64(got) != code {
					t.Fatalf("%s %v: Encode(Decode(%#x) = %g) = %#x", f, mode, code, x, got)
				}
			}
		}
		if got, want := f.Decode(uint32(c.maxMag)), float32(f.MaxValue()); got != want {
			t.Errorf("%s: largest code decodes to %g, MaxValue says %g", f, got, want)
		}
		if got, want := f.Decode(1), float32(f.MinSubnormal()); got != want {
			t.Errorf("%s: code 1 decodes to %g, MinSubnormal says %g", f, got, want)
		}
	}
}

func TestSaturationAndSpecials(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, name := range []string{"e4m3b28", "e3m2b24s", "e2m1z"} {
		f := MustParseFormat(name)
		c := newCodec(f)
		r := NewRand(3, 3)
		for _, x := range []float32{inf, 1e30, math.MaxFloat32, 2 * float32(f.MaxValue())} {
			if got := f.Encode(x, &r); got != c.maxMag {
				t.Errorf("%s: Encode(%g) = %#x, want saturation at %#x", f, x, got, c.maxMag)
			}
			if got := f.Encode(-x, &r); got != c.maxMag|1<<c.signShift {
				t.Errorf("%s: Encode(%g) = %#x, want negative saturation", f, -x, got)
			}
		}
		if got := f.Encode(nan, &r); got != 0 {
			t.Errorf("%s: Encode(NaN) = %#x, want +0 (all-finite formats have no NaN)", f, got)
		}
	}
	fp16 := MustParseFormat("fp16")
	if got := fp16.Encode(70000, nil); got != 0x7c00 {
		t.Errorf("fp16 Encode(70000) = %#x, want Inf 0x7c00", got)
	}
	if got := MustParseFormat("fp16z").Encode(70000, nil); got != 0x7bff {
		t.Errorf("fp16z Encode(70000) = %#x, want max finite 0x7bff", got)
	}
}

func TestSubnormalsAreKept(t *testing.T) {
	f := MustParseFormat("e4m3b28")
	ms := float32(f.MinSubnormal())
	for k := uint32(1); k < 8; k++ {
		x := float32(k) * ms
		if got := f.Encode(x, nil); got != k {
			t.Errorf("Encode(%d·2^-30) = %#x, want subnormal code %#x", k, got, k)
		}
	}
	if got := f.Encode(ms/2, nil); got != 0 {
		t.Errorf("half the smallest subnormal (a tie) = %#x, want 0 (even)", got)
	}
	if got := f.Encode(ms*0.5000001, nil); got != 1 {
		t.Errorf("just above half the smallest subnormal = %#x, want 1", got)
	}
}

// TestStochasticRoundingUnbiased checks E[Decode(Encode(x))] == x and that
// only the two neighbours ever come out. With N samples the mean of a
// two-point distribution with gap q has standard deviation
// q·sqrt(p(1-p)/N) ≤ q/(2·sqrt(N)); we allow 5 of those (a false failure
// has probability below 1e-6 per value).
func TestStochasticRoundingUnbiased(t *testing.T) {
	const n = 40000
	for _, name := range []string{"e3m2b24s", "e4m3b28s", "e5m2s", "e2m1b-1s", "fp16s", "e8m0b140s"} {
		f := MustParseFormat(name)
		g := grid(f)
		r := NewRand(42, 7)
		for _, frac := range []float64{0.1, 0.3, 0.5, 0.9} {
			// one gap between subnormals, one between normals, one in the top binade
			for _, k := range []int{1, len(g) / 2, len(g) - 2} {
				lo, hi := g[k], g[k+1]
				x := float32(lo + frac*(hi-lo))
				if float64(x) <= lo || float64(x) >= hi {
					continue
				}
				src := make([]float32, n)
				for i := range src {
					src[i] = x
				}
				codes := make([]uint32, n)
				f.EncodeSlice(codes, src, &r)
				sum := 0.0
				for i, code := range codes {
					if code != uint32(k) && code != uint32(k+1) {
						t.Fatalf("%s: stochastic Encode(%g) = %#x, not one of the neighbours %#x, %#x", f, x, code, k, k+1)
					}
					v := float64(f.Decode(code))
					if i%7 == 0 { // also exercise the scalar path
						if c := f.Encode(x, &r); c != uint32(k) && c != uint32(k+1) {
							t.Fatalf("%s: scalar stochastic Encode(%g) = %#x", f, x, c)
						}
					}
					sum += v
				}
				mean := sum / n
				bound := 5 * (hi - lo) / (2 * math.Sqrt(n))
				if math.Abs(mean-float64(x)) > bound {
					t.Errorf("%s: mean of %d stochastic roundings of %g = %g, off by %.3g > bound %.3g", f, n, x, mean, mean-float64(x), bound)
				}
			}
		}
	}
}

func TestStochasticNilRandFallsBackToNearest(t *testing.T) {
	f := MustParseFormat("e4m3b28s")
	x := float32(3.1e-7)
	if got, want := f.Encode(x, nil), MustParseFormat("e4m3b28").Encode(x, nil); got != want {
		t.Errorf("Encode with nil rng = %#x, want nearest %#x", got, want)
	}
}

func TestRandReproducibleAndStreamsDiffer(t *testing.T) {
	a, b, c := NewRand(1, 2), NewRand(1, 2), NewRand(1, 3)
	same, diff := 0, 0
	for range 1000 {
		x, y, z := a.Uint64(), b.Uint64(), c.Uint64()
		if x == y {
			same++
		}
		if x != z {
			diff++
		}
	}
	if same != 1000 || diff < 999 {
		t.Errorf("same seed/stream agreed %d/1000, other stream differed %d/1000", same, diff)
	}
	r := NewRand(0, 0)
	ones := 0
	for range 10000 {
		f := r.Float32()
		if f < 0 || f >= 1 {
			t.Fatalf("Float32 = %g outside [0,1)", f)
		}
		ones += int(r.Uint32() & 1)
	}
	if ones < 4700 || ones > 5300 { // 6 standard deviations
		t.Errorf("low bit was 1 in %d of 10000 draws", ones)
	}
}
