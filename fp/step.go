package fp

import (
	"fmt"
	"math"
)

// StepCounts counts what one momentum step did to a range of codes.
//
//	Values:    momenta updated.
//	Changed:   the stored code changed.
//	Lost:      the code did not change although g != m, i.e. the update
//	           γ·(g−m) was rounded away (the paper's metric).
//	Underflow: the new momentum is not zero but was stored as ±0.
//	Saturated: |m'| exceeded MaxValue and was clamped (or became Inf in an
//	           IEEE format).
type StepCounts struct{ Values, Changed, Lost, Underflow, Saturated int64 }

// Add accumulates o into c.
func (c *StepCounts) Add(o StepCounts) {
	c.Values += o.Values
	c.Changed += o.Changed
	c.Lost += o.Lost
	c.Underflow += o.Underflow
	c.Saturated += o.Saturated
}

// LostRatio is Lost/Values (0 for no values).
func (c StepCounts) LostRatio() float64 { return ratio(c.Lost, c.Values) }

// UnderflowRatio is Underflow/Values.
func (c StepCounts) UnderflowRatio() float64 { return ratio(c.Underflow, c.Values) }

// SaturationRatio is Saturated/Values.
func (c StepCounts) SaturationRatio() float64 { return ratio(c.Saturated, c.Values) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (c StepCounts) String() string {
	return fmt.Sprintf("%d values: %d changed, %d lost (%.3g), %d underflowed, %d saturated",
		c.Values, c.Changed, c.Lost, c.LostRatio(), c.Underflow, c.Saturated)
}

// stepper is the per-call state of a fused momentum step.
type stepper struct {
	c     *codec
	mode  Rounding
	rng   *Rand
	gamma float32
	maxV  float32 // MaxValue as float32 (exact)
	cnt   StepCounts
}

func newStepper(c *codec, mode Rounding, rng *Rand, gamma float32) stepper {
	if mode == Stochastic && rng == nil {
		mode = NearestEven
	}
	return stepper{c: c, mode: mode, rng: rng, gamma: gamma, maxV: float32(c.f.MaxValue())}
}

// block runs the step on unpacked codes: ms[i] = Decode(codes[i]) on
// entry; on return codes[i] is the new code. The encoder's fast path is
// written out here because Go will not inline it (it calls the slow path),
// and a call per value would cost as much as the work.
func (s *stepper) block(codes []uint32, ms []float32, g []float32) {
	c := s.c
	ms = ms[:len(codes)]
	g = g[:len(codes)]
	lo, span, shift, signShift, off, maxMag := c.normLo, c.normSpan, c.shift, c.signShift, c.off, c.maxMag
	var halfM1, odd, flip, randMask uint32
	ovf := c.ovfNear
	switch s.mode {
	case NearestEven:
		halfM1, odd, flip = c.halfM1, c.oddMask, c.oddFlip
	case Stochastic:
		randMask = c.randMask
	case TowardZero:
		ovf = c.ovfZero
	}
	stochastic := s.mode == Stochastic
	gamma, magMask := s.gamma, c.magMask
	maxBits := math.Float32bits(s.maxV)
	// subBase-e is slowEncode's shift for a float32-normal value with biased
	// exponent e that is subnormal in f.
	subBase := uint32(151 - c.f.Mant - c.f.Bias)
	var r Rand // the generator state in registers; written back around slowEncode
	if stochastic {
		r = *s.rng
	}
	var changed, lost, underflow, saturated int64
	for i, code := range codes {
		m, gi := ms[i], g[i]
		mn := m + gamma*(gi-m)
		b := math.Float32bits(mn)
		a := b & 0x7fffffff
		var nc uint32
		if a-lo < span {
			add := halfM1 + (a>>(shift&31)^flip)&odd
			if stochastic {
				add = r.Uint32() & randMask
			}
			mag := (a+add)>>(shift&31) - off
			if mag > maxMag {
				mag = ovf
			}
			nc = (b>>31)<<(signShift&31) | mag
		} else if sh := subBase - a>>23; a < lo && a >= 0x00800000 && (sh <= 32 || !stochastic) {
			// Normal in float32 but subnormal in f: momenta that have decayed
			// towards zero, common enough in training to be worth a fast
			// path. It is slowEncode's arithmetic with bexp = 1 (so no tie
			// flip), drawing the same random numbers; sh ≥ 24-Mant ≥ 1.
			sig := a&0x7fffff | 1<<23
			var mag uint32
			switch {
			case stochastic:
				mag = uint32((uint64(sig) + uint64(r.Uint32())&(1<<sh-1)) >> sh)
			case s.mode == TowardZero:
				mag = sig >> sh
			case sh <= 25:
				mag = (sig + 1<<(sh-1) - 1 + (sig>>sh)&1) >> sh
			}
			if mag > maxMag {
				mag = ovf
			}
			nc = (b>>31)<<(signShift&31) | mag
		} else if a == 0 {
			nc = (b >> 31) << (signShift & 31)
		} else if stochastic {
			*s.rng = r
			nc = c.slowEncode(b, Stochastic, s.rng)
			r = *s.rng
		} else {
			nc = c.slowEncode(b, s.mode, nil)
		}
		codes[i] = nc
		// Branch-free counting: the outcomes are data-dependent coin flips
		// that would mispredict.
		same := b2i(nc == code)
		changed += 1 - same
		lost += same & b2i(gi != m)
		underflow += b2i(nc&magMask == 0) & b2i(mn != 0)
		saturated += b2i(a > maxBits) // |m'| > MaxValue (NaN included)
	}
	if stochastic {
		*s.rng = r
	}
	s.cnt.Changed += changed
	s.cnt.Lost += lost
	s.cnt.Underflow += underflow
	s.cnt.Saturated += saturated
}

// Step is the fused Bop momentum step on codes [start, start+len(g)):
//
//	m = Decode(code); m' = m + gamma*(g[j]-m); code' = Encode(m', rng); store code'
//	mOut[j] = Decode(code')   (so the caller can run the flip test without decoding again)
//
// mOut may be nil; otherwise it must be at least len(g) long. Rounding is the
// vector format's (nil rng with Stochastic falls back to NearestEven). It
// does not allocate.
func (v *Vector) Step(start int, g []float32, gamma float32, rng *Rand, mOut []float32) StepCounts {
	v.checkRange(start, len(g))
	if mOut != nil && len(mOut) < len(g) {
		panic(fmt.Sprintf("fp: Step: mOut has %d elements, need %d", len(mOut), len(g)))
	}
	s := newStepper(&v.c, v.f.Rounding, rng, gamma)
	switch {
	case v.width == 8:
		v.step8(&s, start, g, mOut)
	case v.table != nil:
		v.stepPacked(&s, start, g, mOut)
	default:
		v.stepGeneric(&s, start, g, mOut)
	}
	s.cnt.Values = int64(len(g))
	return s.cnt
}

// stepBlock is how many codes the fused step unpacks at a time (on the stack).
const stepBlock = 64

func (v *Vector) decode(code uint32) float32 {
	if v.table != nil {
		return v.table[code]
	}
	if v.width == 32 {
		return decodeFP32(code)
	}
	return v.f.Decode(code)
}

// stepGeneric unpacks blocks of codes of any width with get/set.
func (v *Vector) stepGeneric(s *stepper, start int, g []float32, mOut []float32) {
	var codes [stepBlock]uint32
	var ms [stepBlock]float32
	for j := 0; j < len(g); j += stepBlock {
		n := min(stepBlock, len(g)-j)
		for k := range n {
			codes[k] = uint32(v.get(uint(start + j + k)))
			ms[k] = v.decode(codes[k])
		}
		s.block(codes[:n], ms[:n], g[j:j+n])
		for k := range n {
			v.set(uint(start+j+k), uint64(codes[k]))
			if mOut != nil {
				mOut[j+k] = v.decode(codes[k])
			}
		}
	}
}

// step8 handles byte-aligned codes whole words (eight codes) at a time; the
// unaligned head and tail go through stepGeneric.
func (v *Vector) step8(s *stepper, start int, g []float32, mOut []float32) {
	head := min((8-start%8)%8, len(g))
	if head > 0 {
		v.stepGeneric(s, start, g[:head], sub(mOut, 0))
	}
	tab := (*[256]float32)(v.table)
	var codes [stepBlock]uint32
	var ms [stepBlock]float32
	j := head
	for len(g)-j >= 8 {
		n := min(stepBlock, (len(g)-j)/8*8)
		words := v.words[(start+j)/8:][:n/8]
		for k, w := range words {
			c := codes[8*k : 8*k+8 : 8*k+8]
			m := ms[8*k : 8*k+8 : 8*k+8]
			for b := range 8 {
				code := uint8(w >> (8 * b))
				c[b] = uint32(code)
				m[b] = tab[code]
			}
		}
		s.block(codes[:n], ms[:n], g[j:j+n])
		for k := range words {
			c := codes[8*k : 8*k+8 : 8*k+8]
			var w uint64
			for b := range 8 {
				w |= uint64(uint8(c[b])) << (8 * b)
			}
			words[k] = w
		}
		if mOut != nil {
			out := mOut[j : j+n]
			for k, c := range codes[:n] {
				out[k] = tab[uint8(c)]
			}
		}
		j += n
	}
	if j < len(g) {
		v.stepGeneric(s, start+j, g[j:], sub(mOut, j))
	}
}

// stepPacked handles widths other than 8 with a decode table, 64 codes (=
// width whole words) at a time, unpacking and packing them as bit streams;
// the codes before the first multiple of 64 and the tail go through
// stepGeneric.
func (v *Vector) stepPacked(s *stepper, start int, g []float32, mOut []float32) {
	head := min((stepBlock-start%stepBlock)%stepBlock, len(g))
	if head > 0 {
		v.stepGeneric(s, start, g[:head], sub(mOut, 0))
	}
	tab := v.table
	width, mask := v.width, v.mask
	var codes [stepBlock]uint32
	var ms [stepBlock]float32
	j := head
	for ; len(g)-j >= stepBlock; j += stepBlock {
		words := v.words[(start+j)/stepBlock*int(width):][:width]
		var acc uint64 // unread bits of the previous word, from bit 0
		var have uint  // how many
		wi := 0
		for k := range codes {
			var code uint64
			if have >= width {
				code = acc & mask
				acc >>= width
				have -= width
			} else {
				next := words[wi]
				wi++
				code = (acc | next<<have) & mask
				acc = next >> (width - have)
				have += 64 - width
			}
			codes[k] = uint32(code)
			ms[k] = tab[code]
		}
		s.block(codes[:], ms[:], g[j:j+stepBlock])
		acc, have, wi = 0, 0, 0
		for _, c := range codes {
			code := uint64(c) & mask
			acc |= code << have
			have += width
			if have >= 64 {
				words[wi] = acc
				wi++
				have -= 64
				acc = code >> (width - have)
			}
		}
		if mOut != nil {
			out := mOut[j : j+stepBlock]
			for k, c := range codes {
				out[k] = tab[c]
			}
		}
	}
	if j < len(g) {
		v.stepGeneric(s, start+j, g[j:], sub(mOut, j))
	}
}

// b2i is 1 for true and 0 for false (compiled to a flag move, no branch).
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func sub(s []float32, from int) []float32 {
	if s == nil {
		return nil
	}
	return s[from:]
}

// SimulateStep runs one momentum step on plain float32 momenta as if they
// were stored in f: for each i, m[i] is encoded (it must already be
// representable, e.g. the result of a previous SimulateStep or of
// Decode(Encode(x)); otherwise it is first rounded to nearest), moved
// towards g[i] by gamma, re-encoded with f.Rounding, and replaced by the
// decoded new value. It returns the counts of the step. m and g must have
// the same length. It does not allocate.
func SimulateStep(f Format, m, g []float32, gamma float32, rng *Rand) StepCounts {
	if len(m) != len(g) {
		panic(fmt.Sprintf("fp: SimulateStep: %d momenta but %d gradients", len(m), len(g)))
	}
	var tab []float32
	if f.Bits() <= 16 {
		tab = decodeTable(f)
	}
	return simulateStep(f, m, g, gamma, rng, tab)
}

// simulateStep is SimulateStep with the decode table of f given (nil when
// Bits > 16), so the encoding search can use its own reused table instead
// of filling the shared cache with every candidate.
func simulateStep(f Format, m, g []float32, gamma float32, rng *Rand, tab []float32) StepCounts {
	c := newCodec(f)
	s := newStepper(&c, f.Rounding, rng, gamma)
	var codes [stepBlock]uint32
	var ms [stepBlock]float32
	for j := 0; j < len(g); j += stepBlock {
		n := min(stepBlock, len(g)-j)
		c.encodeSliceNearest(codes[:n], m[j:j+n])
		out := m[j : j+n]
		if tab != nil {
			for k, code := range codes[:n] {
				ms[k] = tab[code]
			}
			s.block(codes[:n], ms[:n], g[j:j+n])
			for k, code := range codes[:n] {
				out[k] = tab[code]
			}
		} else {
			f.DecodeSlice(ms[:n], codes[:n])
			s.block(codes[:n], ms[:n], g[j:j+n])
			f.DecodeSlice(out, codes[:n])
		}
	}
	s.cnt.Values = int64(len(g))
	return s.cnt
}
