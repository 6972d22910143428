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

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
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

// one updates the momentum m (stored as code) towards g and returns the new
// code; it counts what happened. Values is added by the caller.
func (s *stepper) one(code uint32, m, g float32) uint32 {
	mn := m + s.gamma*(g-m)
	var nc uint32
	switch s.mode {
	case Stochastic:
		nc = s.c.encodeStochastic(mn, s.rng)
	case TowardZero:
		nc = s.c.encodeTowardZero(mn)
	default:
		nc = s.c.encodeNearest(mn)
	}
	same := nc == code
	s.cnt.Changed += b2i(!same)
	s.cnt.Lost += b2i(same && g != m)
	s.cnt.Underflow += b2i(nc&s.c.magMask == 0 && mn != 0)
	s.cnt.Saturated += b2i(abs32(mn) > s.maxV)
	return nc
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

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
	switch v.width {
	case 8:
		v.step8(&s, start, g, mOut)
	case 16:
		v.stepTable(&s, start, g, mOut)
	case 32:
		v.step32(&s, start, g, mOut)
	default:
		v.stepGeneric(&s, start, g, mOut)
	}
	s.cnt.Values = int64(len(g))
	return s.cnt
}

func (v *Vector) decode(code uint32) float32 {
	if v.table != nil {
		return v.table[code]
	}
	return v.f.Decode(code)
}

func (v *Vector) stepGeneric(s *stepper, start int, g []float32, mOut []float32) {
	for j, gj := range g {
		i := uint(start + j)
		code := uint32(v.get(i))
		nc := s.one(code, v.decode(code), gj)
		v.set(i, uint64(nc))
		if mOut != nil {
			mOut[j] = v.decode(nc)
		}
	}
}

func (v *Vector) stepTable(s *stepper, start int, g []float32, mOut []float32) {
	tab := v.table
	for j, gj := range g {
		i := uint(start + j)
		code := uint32(v.get(i))
		nc := s.one(code, tab[code], gj)
		v.set(i, uint64(nc))
		if mOut != nil {
			mOut[j] = tab[nc&0xffff]
		}
	}
}

// step8 works on whole words of eight byte-aligned codes, reading and
// writing each word once.
func (v *Vector) step8(s *stepper, start int, g []float32, mOut []float32) {
	head := (8 - start%8) % 8
	if head > len(g) {
		head = len(g)
	}
	tab := (*[256]float32)(v.table)
	if head > 0 {
		v.stepTable(s, start, g[:head], sub(mOut, 0))
	}
	j := head
	for ; len(g)-j >= 8; j += 8 {
		k := (start + j) / 8
		w := v.words[k]
		var nw uint64
		gs := g[j : j+8 : j+8]
		for b := range 8 {
			code := uint32(uint8(w >> (8 * b)))
			nc := s.one(code, tab[code], gs[b])
			nw |= uint64(nc) << (8 * b)
		}
		v.words[k] = nw
		if mOut != nil {
			out := mOut[j : j+8 : j+8]
			for b := range 8 {
				out[b] = tab[uint8(nw>>(8*b))]
			}
		}
	}
	if j < len(g) {
		v.stepTable(s, start+j, g[j:], sub(mOut, j))
	}
}

func sub(s []float32, from int) []float32 {
	if s == nil {
		return nil
	}
	return s[from:]
}

// step32 works on codes that are plain float32-sized words.
func (v *Vector) step32(s *stepper, start int, g []float32, mOut []float32) {
	for j, gj := range g {
		i := uint(start + j)
		k, shift := i/2, 32*(i%2)
		code := uint32(v.words[k] >> shift)
		nc := s.one(code, v.f.Decode(code), gj)
		v.words[k] = v.words[k]&^(0xffffffff<<shift) | uint64(nc)<<shift
		if mOut != nil {
			mOut[j] = v.f.Decode(nc)
		}
	}
}

// SimulateStep runs one momentum step on plain float32 momenta as if they
// were stored in f: for each i, m[i] is encoded (it must already be
// representable, e.g. the result of a previous SimulateStep or of
// Decode(Encode(x)); otherwise it is first rounded to nearest), moved
// towards g[i] by gamma, re-encoded with f.Rounding, and replaced by the
// decoded new value. It returns the counts of the step. m and g must have
// the same length.
func SimulateStep(f Format, m, g []float32, gamma float32, rng *Rand) StepCounts {
	if len(m) != len(g) {
		panic(fmt.Sprintf("fp: SimulateStep: %d momenta but %d gradients", len(m), len(g)))
	}
	c := newCodec(f)
	s := newStepper(&c, f.Rounding, rng, gamma)
	if f.Bits() <= 16 {
		tab := decodeTable(f)
		mask := uint32(len(tab) - 1)
		for i, gi := range g {
			code := c.encodeNearest(m[i])
			nc := s.one(code, tab[code&mask], gi)
			m[i] = tab[nc&mask]
		}
	} else {
		for i, gi := range g {
			code := c.encodeNearest(m[i])
			nc := s.one(code, f.Decode(code), gi)
			m[i] = f.Decode(nc)
		}
	}
	s.cnt.Values = int64(len(g))
	return s.cnt
}
