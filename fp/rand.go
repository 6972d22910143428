package fp

import "math/bits"

// Rand is a small, fast pseudo-random generator (xoshiro128++) for
// stochastic rounding. It uses only 32-bit operations, so it is as fast on
// 32-bit ARM as on 64-bit machines. A Rand is a plain value with no locks and
// no global state: give each goroutine its own, derived from (seed, stream),
// and runs are reproducible for a given seed and work split.
type Rand struct {
	s0, s1, s2, s3 uint32
}

// splitMix64 advances *x and returns the next SplitMix64 output; it turns
// arbitrary seeds (including 0) into well-mixed generator states.
func splitMix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// NewRand returns a generator for stream number stream of seed seed.
// Different (seed, stream) pairs give independent-looking sequences.
func NewRand(seed, stream uint64) Rand {
	x := seed
	mixed := splitMix64(&x) ^ stream*0xd1342543de82ef95
	x = mixed
	a, b := splitMix64(&x), splitMix64(&x)
	r := Rand{uint32(a), uint32(a >> 32), uint32(b), uint32(b >> 32)}
	if r.s0|r.s1|r.s2|r.s3 == 0 { // the one state xoshiro must avoid
		r.s0 = 1
	}
	return r
}

// Uint32 returns 32 uniformly distributed random bits.
func (r *Rand) Uint32() uint32 {
	result := bits.RotateLeft32(r.s0+r.s3, 7) + r.s0
	t := r.s1 << 9
	r.s2 ^= r.s0
	r.s3 ^= r.s1
	r.s1 ^= r.s2
	r.s0 ^= r.s3
	r.s2 ^= t
	r.s3 = bits.RotateLeft32(r.s3, 11)
	return result
}

// Uint64 returns 64 uniformly distributed random bits.
func (r *Rand) Uint64() uint64 {
	hi := uint64(r.Uint32())
	return hi<<32 | uint64(r.Uint32())
}

// Float32 returns a uniform value in [0, 1) with 24 random bits.
func (r *Rand) Float32() float32 {
	return float32(r.Uint32()>>8) * (1.0 / (1 << 24))
}

// The fused momentum step (Vector.Step, Vector.StepFlip, SimulateStep)
// does not draw its rounding bits from a Rand in sequence: how many numbers
// the scalar encoder draws depends on each value (none for zero, two for a
// deep subnormal), so a vector unit could not know where lane k's numbers
// start. Instead each call draws one 32-bit key from the caller's Rand, and
// element j of the call gets StepRand(key, j): a pure function of the key
// and the element's position, the same for every implementation and any
// split of the work.

// stepGolden spreads consecutive indices over the 32-bit ring (odd, so
// j ↦ key + j·stepGolden is a bijection).
const stepGolden = 0x9e3779b9

// StepKey draws the key of one step call from rng (one Uint32).
func StepKey(rng *Rand) uint32 { return rng.Uint32() }

// StepRand is the 32 random bits of element j of a step call with key key:
// Wellons's lowbias32 integer hash of key + j·0x9e3779b9. The hash is a
// bijection, so the bits of one call's elements never repeat.
func StepRand(key uint32, j int) uint32 { return mix32(key + uint32(j)*stepGolden) }

func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// stepElemRand is the generator the scalar encoder gets for element j when
// the step's value is outside the vector kernels' range (float32
// subnormals, Inf, NaN): still a function of (key, j) only.
func stepElemRand(key uint32, j int) Rand {
	return NewRand(uint64(key)<<32|uint64(uint32(j)), 0x5eed)
}
