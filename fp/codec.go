package fp

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// codec holds the per-format constants of the encoder, derived once per
// slice or vector operation so the inner loops are a handful of integer
// operations on float32 bits.
//
// Fast path: for a finite float32 whose magnitude bits a lie in
// [normLo, 0x7f800000), the value is normal in the target format too, and
// rounding the float32 bits themselves by shift = 23-Mant bits and removing
// the difference of the biases gives the code magnitude; a rounding carry
// into the exponent field is then exactly the right result. Everything else
// (zero, subnormal targets, float32 subnormals, Inf, NaN) takes slowEncode.
type codec struct {
	f         Format
	mant      uint32 // Mant
	signShift uint32 // Exp+Mant: position of the sign bit in a code
	shift     uint32 // 23-Mant: float32 mantissa bits dropped
	halfM1    uint32 // 2^(shift-1)-1 (0 when shift == 0)
	oddMask   uint32 // 1 when shift > 0: selects the kept LSB for ties-to-even
	oddFlip   uint32 // 1 when the kept LSB and the code LSB differ (Mant == 0 and odd bias difference)
	randMask  uint32 // 2^shift-1: random bits added for stochastic rounding
	normLo    uint32 // smallest float32 magnitude bits that are normal in f
	normSpan  uint32 // 0x7f800000 - normLo
	off       uint32 // (127-Bias)<<Mant, wrapping: float32 bits>>shift minus off = code
	maxMag    uint32 // code magnitude of MaxValue
	ovfNear   uint32 // code magnitude on overflow when rounding to nearest or stochastically
	ovfZero   uint32 // code magnitude on overflow when rounding toward zero
	magMask   uint32 // 2^(Exp+Mant)-1
	maxExp    int    // largest finite exponent field
	emin      int    // 1-Bias: exponent of the smallest normal
	codeMask  uint32 // 2^Bits-1
}

func newCodec(f Format) codec {
	c := codec{f: f}
	c.mant = uint32(f.Mant)
	c.signShift = uint32(f.Exp + f.Mant)
	c.shift = uint32(23 - f.Mant)
	if c.shift > 0 {
		c.halfM1 = 1<<(c.shift-1) - 1
		c.oddMask = 1
	}
	c.randMask = 1<<c.shift - 1
	lo := 128 - f.Bias // float32 biased exponent of f's smallest normal
	if lo < 1 {
		lo = 1
	}
	c.normLo = uint32(lo) << 23
	c.normSpan = 0x7f800000 - c.normLo
	c.off = uint32(int32(127-f.Bias) << f.Mant)
	if f.Mant == 0 {
		// The kept LSB of the float32 bits is then an exponent bit, and
		// removing off changes its parity when the biases differ by an odd amount.
		c.oddFlip = c.off & 1
	}
	c.maxExp = f.maxExpField()
	c.maxMag = uint32(c.maxExp)<<c.mant | (1<<c.mant - 1)
	c.magMask = 1<<c.signShift - 1
	c.codeMask = uint32(uint64(1)<<f.Bits() - 1)
	c.ovfNear, c.ovfZero = c.maxMag, c.maxMag
	if f.IEEE {
		c.ovfNear = c.maxMag + 1 // Inf
	}
	c.emin = 1 - f.Bias
	return c
}

// encode rounds x with the given mode; rng must be non-nil for Stochastic.
func (c *codec) encode(x float32, mode Rounding, rng *Rand) uint32 {
	switch mode {
	case Stochastic:
		return c.encodeStochastic(x, rng)
	case TowardZero:
		return c.encodeTowardZero(x)
	}
	return c.encodeNearest(x)
}

func (c *codec) encodeNearest(x float32) uint32 {
	b := math.Float32bits(x)
	a := b & 0x7fffffff
	if a-c.normLo >= c.normSpan {
		return c.slowEncode(b, NearestEven, nil)
	}
	mag := (a+c.halfM1+(a>>(c.shift&31)^c.oddFlip)&c.oddMask)>>(c.shift&31) - c.off
	if mag > c.maxMag {
		mag = c.ovfNear
	}
	return (b>>31)<<(c.signShift&31) | mag
}

func (c *codec) encodeTowardZero(x float32) uint32 {
	b := math.Float32bits(x)
	a := b & 0x7fffffff
	if a-c.normLo >= c.normSpan {
		return c.slowEncode(b, TowardZero, nil)
	}
	mag := a>>(c.shift&31) - c.off
	if mag > c.maxMag {
		mag = c.ovfZero
	}
	return (b>>31)<<(c.signShift&31) | mag
}

func (c *codec) encodeStochastic(x float32, rng *Rand) uint32 {
	b := math.Float32bits(x)
	a := b & 0x7fffffff
	if a-c.normLo >= c.normSpan {
		return c.slowEncode(b, Stochastic, rng)
	}
	mag := (a+rng.Uint32()&c.randMask)>>(c.shift&31) - c.off
	if mag > c.maxMag {
		mag = c.ovfNear
	}
	return (b>>31)<<(c.signShift&31) | mag
}

// slowEncode handles every float32 the fast paths do not: zeros, values
// that are subnormal in f or in float32, Inf and NaN.
func (c *codec) slowEncode(b uint32, mode Rounding, rng *Rand) uint32 {
	sign := (b >> 31) << c.signShift
	a := b & 0x7fffffff
	switch {
	case a == 0:
		return sign
	case a >= 0x7f800000: // Inf or NaN
		if a > 0x7f800000 { // NaN
			if !c.f.IEEE {
				return 0 // all-finite formats have no NaN; a NaN momentum restarts from zero
			}
			// Keep the top payload bits and set the quiet bit (as x448/float16 does).
			return sign | (c.maxMag + 1) | 1<<(c.mant-1) | (a&0x7fffff)>>c.shift
		}
		if c.f.IEEE {
			return sign | (c.maxMag + 1)
		}
		return sign | c.maxMag
	}
	// Normalise to sig·2^(u-23) with sig in [2^23, 2^24).
	e := int(a >> 23)
	sig := uint64(a & 0x7fffff)
	if e == 0 {
		lz := bits.LeadingZeros32(uint32(sig)) - 8 // shift that brings the top bit to bit 23
		sig <<= uint(lz)
		e = 1 - lz
	} else {
		sig |= 1 << 23
	}
	u := e - 127
	shift := 23 - c.f.Mant
	bexp := u + c.f.Bias
	if u < c.emin { // subnormal in f: quantum 2^(emin-Mant)
		shift += c.emin - u
		bexp = 1
	}
	if bexp > c.maxExp+1 {
		return sign | c.overflow(mode)
	}
	var flip uint64 // makes ties go to the even code when Mant == 0 (see oddFlip)
	if c.f.Mant == 0 {
		flip = uint64(bexp-1) & 1
	}
	r := roundShift(sig, uint(shift), flip, mode, rng)
	mag := uint64(bexp-1)<<c.mant + r
	if mag > uint64(c.maxMag) {
		return sign | c.overflow(mode)
	}
	return sign | uint32(mag)
}

func (c *codec) overflow(mode Rounding) uint32 {
	if mode == TowardZero {
		return c.ovfZero
	}
	return c.ovfNear
}

// roundShift returns sig/2^shift rounded with mode (sig < 2^24); flip
// inverts which quotient parity counts as even for ties.
func roundShift(sig uint64, shift uint, flip uint64, mode Rounding, rng *Rand) uint64 {
	if shift == 0 {
		return sig
	}
	switch mode {
	case TowardZero:
		if shift >= 64 {
			return 0
		}
		return sig >> shift
	case Stochastic:
		if shift >= 64 {
			return 0 // below 2^-40 of the quantum: the bias this leaves is negligible
		}
		var rnd uint64
		if shift <= 32 {
			rnd = uint64(rng.Uint32())
		} else {
			rnd = rng.Uint64()
		}
		return (sig + rnd&(1<<shift-1)) >> shift
	}
	if shift > 25 { // sig < 2^24 < half a quantum
		return 0
	}
	return (sig + 1<<(shift-1) - 1 + (sig>>shift^flip)&1) >> shift
}

// Encode rounds x to the nearest code according to f.Rounding. rng is only
// used for Stochastic rounding; a nil rng then falls back to NearestEven.
// Out-of-range magnitudes saturate at MaxValue in all-finite formats and
// become Inf in IEEE formats (except toward zero). NaN encodes as a quiet
// NaN in IEEE formats and as +0 in all-finite formats, which have no NaN.
// f must be valid (see Validate); the result is undefined otherwise.
func (f Format) Encode(x float32, rng *Rand) uint32 {
	c := newCodec(f)
	mode := f.Rounding
	if mode == Stochastic && rng == nil {
		mode = NearestEven
	}
	return c.encode(x, mode, rng)
}

// pow2 returns 2^k as a float32 for k in [-149, 127].
func pow2(k int) float32 {
	if k >= -126 {
		return math.Float32frombits(uint32(k+127) << 23)
	}
	return math.Float32frombits(1 << uint(k+149))
}

// Decode returns the value of code (bits above Bits() are ignored). Every
// value is exactly a float32, so this is exact.
func (f Format) Decode(code uint32) float32 {
	m := uint(f.Mant)
	sign := (code >> (uint(f.Exp) + m) & 1) << 31
	e := int(code>>m) & (1<<f.Exp - 1)
	mant := code & (1<<m - 1)
	if f.IEEE && e == 1<<f.Exp-1 {
		if mant == 0 {
			return math.Float32frombits(sign | 0x7f800000)
		}
		return math.Float32frombits(sign | 0x7fc00000 | mant<<(23-m))
	}
	if e == 0 {
		v := float32(mant) * pow2(1-f.Bias-f.Mant)
		return math.Float32frombits(sign | math.Float32bits(v))
	}
	if fe := e - f.Bias + 127; fe >= 1 {
		return math.Float32frombits(sign | uint32(fe)<<23 | mant<<(23-m))
	}
	v := float32(mant|1<<m) * pow2(e-f.Bias-f.Mant)
	return math.Float32frombits(sign | math.Float32bits(v))
}

// EncodeSlice encodes src into dst[:len(src)] (see Encode). It panics if
// dst is shorter than src.
func (f Format) EncodeSlice(dst []uint32, src []float32, rng *Rand) {
	dst = dst[:len(src)]
	c := newCodec(f)
	switch {
	case f.Rounding == Stochastic && rng != nil:
		c.encodeSliceStochastic(dst, src, rng)
	case f.Rounding == TowardZero:
		c.encodeSliceTowardZero(dst, src)
	default:
		c.encodeSliceNearest(dst, src)
	}
}

// The slice loops repeat the fast paths of encodeNearest and friends with
// the constants in locals: Go does not inline a function that also calls
// the slow path, and the call would cost as much as the work.

func (c *codec) encodeSliceNearest(dst []uint32, src []float32) {
	dst = dst[:len(src)]
	lo, span, shift, halfM1, odd, flip := c.normLo, c.normSpan, c.shift, c.halfM1, c.oddMask, c.oddFlip
	off, maxMag, ovf, signShift := c.off, c.maxMag, c.ovfNear, c.signShift
	for i, x := range src {
		b := math.Float32bits(x)
		a := b & 0x7fffffff
		if a-lo >= span {
			dst[i] = c.slowEncode(b, NearestEven, nil)
			continue
		}
		mag := (a+halfM1+(a>>(shift&31)^flip)&odd)>>(shift&31) - off
		if mag > maxMag {
			mag = ovf
		}
		dst[i] = (b>>31)<<(signShift&31) | mag
	}
}

func (c *codec) encodeSliceTowardZero(dst []uint32, src []float32) {
	dst = dst[:len(src)]
	lo, span, shift := c.normLo, c.normSpan, c.shift
	off, maxMag, ovf, signShift := c.off, c.maxMag, c.ovfZero, c.signShift
	for i, x := range src {
		b := math.Float32bits(x)
		a := b & 0x7fffffff
		if a-lo >= span {
			dst[i] = c.slowEncode(b, TowardZero, nil)
			continue
		}
		mag := a>>(shift&31) - off
		if mag > maxMag {
			mag = ovf
		}
		dst[i] = (b>>31)<<(signShift&31) | mag
	}
}

func (c *codec) encodeSliceStochastic(dst []uint32, src []float32, rng *Rand) {
	dst = dst[:len(src)]
	lo, span, shift, randMask := c.normLo, c.normSpan, c.shift, c.randMask
	off, maxMag, ovf, signShift := c.off, c.maxMag, c.ovfNear, c.signShift
	r := *rng // keep the generator state in registers
	for i, x := range src {
		b := math.Float32bits(x)
		a := b & 0x7fffffff
		if a-lo >= span {
			dst[i] = c.slowEncode(b, Stochastic, &r)
			continue
		}
		mag := (a+r.Uint32()&randMask)>>(shift&31) - off
		if mag > maxMag {
			mag = ovf
		}
		dst[i] = (b>>31)<<(signShift&31) | mag
	}
	*rng = r
}

// DecodeSlice decodes src into dst[:len(src)]. It panics if dst is shorter
// than src.
func (f Format) DecodeSlice(dst []float32, src []uint32) {
	dst = dst[:len(src)]
	if f.Bits() <= 16 {
		tab := decodeTable(f)
		mask := uint32(len(tab) - 1)
		for i, code := range src {
			dst[i] = tab[code&mask]
		}
		return
	}
	for i, code := range src {
		dst[i] = f.Decode(code)
	}
}

// decodeCacheSize bounds the decode tables shared by Vectors, DecodeSlice
// and SimulateStep. A daemon uses one or a few formats at a time; keeping a
// table for every format ever seen would hold up to 256 KiB each for good
// (the encoding search alone tries hundreds, and builds its own tables).
const decodeCacheSize = 8

// decodeEntry is one cached table; tables are never written after they are
// published, so a Vector may keep using one after it leaves the cache.
type decodeEntry struct {
	f   Format // Rounding zeroed: it does not change values
	tab []float32
}

var (
	// decodeCache is an immutable snapshot, newest first, replaced whole
	// under decodeCacheMu: a lookup is one atomic load and a short scan.
	decodeCache   atomic.Pointer[[]decodeEntry]
	decodeCacheMu sync.Mutex
)

// decodeTable returns a shared table of all 2^Bits values of f (Bits ≤ 16,
// so at most 256 KiB). Only the decodeCacheSize most recently built tables
// stay cached.
func decodeTable(f Format) []float32 {
	f.Rounding = NearestEven
	if p := decodeCache.Load(); p != nil {
		for i := range *p {
			if (*p)[i].f == f {
				return (*p)[i].tab
			}
		}
	}
	return storeDecodeTable(f)
}

func storeDecodeTable(f Format) []float32 {
	decodeCacheMu.Lock()
	defer decodeCacheMu.Unlock()
	var old []decodeEntry
	if p := decodeCache.Load(); p != nil {
		old = *p
		for _, e := range old { // another goroutine may have built it meanwhile
			if e.f == f {
				return e.tab
			}
		}
	}
	t := fillDecodeTable(nil, f)
	next := make([]decodeEntry, 0, decodeCacheSize)
	next = append(next, decodeEntry{f, t})
	next = append(next, old[:min(len(old), decodeCacheSize-1)]...)
	decodeCache.Store(&next)
	return t
}

// fillDecodeTable writes the 2^Bits values of f (Bits ≤ 16) into dst,
// reusing its storage when large enough, and returns it.
func fillDecodeTable(dst []float32, f Format) []float32 {
	n := 1 << f.Bits()
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = f.Decode(uint32(i))
	}
	return dst
}
