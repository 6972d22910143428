package fp

import (
	"math"
	"testing"
)

func FuzzEncodeDecodeRoundTrip(f *testing.F) {
	f.Add(uint8(4), uint8(3), int16(28), uint32(0x34a10fb0), uint8(0), uint64(1))
	f.Add(uint8(5), uint8(10), int16(15), uint32(0x477fe000), uint8(0), uint64(1))
	f.Add(uint8(3), uint8(2), int16(24), uint32(0x80000001), uint8(1), uint64(2))
	f.Add(uint8(1), uint8(0), int16(150), uint32(0x00400000), uint8(2), uint64(3))
	f.Add(uint8(8), uint8(7), int16(127), uint32(0x7fc00001), uint8(0), uint64(4))
	f.Fuzz(func(t *testing.T, exp, mant uint8, bias int16, xbits uint32, mode uint8, seed uint64) {
		fm := Format{Exp: int(exp), Mant: int(mant), Bias: int(bias), Rounding: Rounding(mode % 3)}
		if exp == 5 && mant == 10 && bias == 15 || exp == 8 && (mant == 7 || mant == 23) && bias == 127 {
			fm.IEEE = true
		}
		if fm.Validate() != nil {
			return
		}
		x := math.Float32frombits(xbits)
		rng := NewRand(seed, 0)
		code := fm.Encode(x, &rng)
		if uint64(code) >= 1<<fm.Bits() {
			t.Fatalf("%s: Encode(%g) = %#x has more than %d bits", fm, x, code, fm.Bits())
		}
		v := fm.Decode(code)
		if x != x {
			if fm.IEEE && v == v {
				t.Fatalf("%s: NaN encoded to non-NaN %g", fm, v)
			}
			return
		}
		// Every code re-encodes to itself under every rounding.
		if got := fm.Encode(v, &rng); got != code {
			t.Fatalf("%s: Encode(Decode(%#x) = %g) = %#x", fm, code, v, got)
		}
		ax, av := math.Abs(float64(x)), math.Abs(float64(v))
		if v != 0 && math.Signbit(float64(v)) != math.Signbit(float64(x)) {
			t.Fatalf("%s: Encode(%g) decodes to %g with the other sign", fm, x, v)
		}
		maxV := fm.MaxValue()
		if ax > maxV {
			if !fm.IEEE && av != maxV {
				t.Fatalf("%s: %g beyond MaxValue %g decodes to %g, want saturation", fm, x, maxV, v)
			}
			return
		}
		step := fm.Step(ax)
		switch fm.Rounding {
		case NearestEven:
			if math.Abs(av-ax) > step/2 {
				t.Fatalf("%s: nearest Encode(%g) decodes to %g, more than half a step (%g) away", fm, x, v, step)
			}
		case TowardZero:
			if av > ax || ax-av >= step {
				t.Fatalf("%s: toward-zero Encode(%g) decodes to %g", fm, x, v)
			}
		case Stochastic:
			if math.Abs(av-ax) >= step {
				t.Fatalf("%s: stochastic Encode(%g) decodes to %g, not a neighbour", fm, x, v)
			}
		}
	})
}
