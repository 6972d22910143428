package fp

import (
	"math"
	"math/bits"
)

// stepBlockGeneric is the contract of the vector step kernels, the Go loop
// each of them replaces, on one block of 64 unpacked codes whose decoded
// values are ms (g: the gradients, x0: StepRand's hash input of element 0,
// key + j0·0x9e3779b9):
//
//	for i := range 64 {
//		mn := ms[i] + float32(k.gamma*(g[i]-ms[i]))
//		a := |bits(mn)|
//		normal in f:            x, s, o := a, k.shift, k.off
//		float32-normal, subnormal in f (a-2^23 < k.subSpan):
//		                        sh := k.subBase - a>>23; s = min(sh, 31); x = (a&0x7fffff|1<<23) >> (sh-s); o = 0
//		zero:                   magnitude 0
//		otherwise (float32 subnormal, Inf, NaN): return false
//		add := nearest: 2^(s-1)-1 + (x>>s ^ flip)&1 (flip only when normal); stochastic: StepRand & (2^s-1); toward zero: 0
//		mag := (x+add)>>s - o, k.ovf if above k.maxMag
//		out[i] = sign<<k.signShift | mag
//		count changed (out != in), lost (out == in, g != m), underflow (mag == 0, mn != 0), saturated (a > k.maxBits)
//		flip test on row bit i if row != nil: k.flipT < mag <= k.flipHi and sign == bit
//	}
//
// which is stepper.block restricted to the values its fast paths handle.
// On false nothing but out has been written (counters and row are
// committed only for a whole block).
func stepBlockGeneric(k *stepKernel, in *[stepBlock]uint32, ms, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	var changed, lost, underflow, saturated int64
	var pos, neg uint64
	// Both parameter sets are computed and one selected (conditional
	// moves): which applies is a data-dependent coin that would mispredict.
	mode := Rounding(k.mode)
	for i := range stepBlock {
		m, gi := ms[i], g[i]
		mn := m + float32(k.gamma*(gi-m))
		b := math.Float32bits(mn)
		a := b & 0x7fffffff
		normal := a-k.lo < k.span
		if !normal && a-0x00800000 >= k.subSpan && a != 0 {
			return false
		}
		sh := k.subBase - a>>23
		s := min(sh, 31)
		x := (a&0x7fffff | 1<<23) >> (sh - s)
		var o, fl uint32
		if normal {
			x, s, o, fl = a, k.shift, k.off, k.flip
		}
		var add uint32
		switch mode {
		case NearestEven:
			add = 1<<(s-1) - 1 + (x>>s^fl)&1
		case Stochastic:
			add = mix32(x0+uint32(i)*stepGolden) & (1<<s - 1)
		}
		mag := (x+add)>>s - o
		if mag > k.maxMag {
			mag = k.ovf
		}
		if a == 0 {
			mag = 0
		}
		nc := b>>31<<(k.signShift&31) | mag
		out[i] = nc
		same := b2i(nc == in[i])
		changed += 1 - same
		lost += same & b2i(gi != m)
		underflow += b2i(mag == 0) & b2i(a != 0)
		saturated += b2i(a > k.maxBits)
		big := b2u(mag > k.flipT && mag <= k.flipHi)
		pos |= big &^ uint64(b>>31) << i
		neg |= big & uint64(b>>31) << i
	}
	k.changed += changed
	k.lost += lost
	k.underflow += underflow
	k.saturated += saturated
	if row != nil {
		w := *row
		f := w&neg | ^w&pos
		*row = w ^ f
		k.flips += int64(bits.OnesCount64(f))
	}
	return true
}
