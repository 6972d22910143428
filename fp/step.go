package fp

import (
	"fmt"
	"math"
	"math/bits"
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
type StepCounts struct {
	Values    int64 `json:"values"`
	Changed   int64 `json:"changed"`
	Lost      int64 `json:"lost"`
	Underflow int64 `json:"underflow"`
	Saturated int64 `json:"saturated"`
}

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

// stepKernel holds the constants of one step call and its counters, laid
// out for the vector kernels (step_amd64.s, step_arm64.s read it at the
// offsets checked by TestStepKernelLayout).
type stepKernel struct {
	lo        uint32  // 0: smallest float32 magnitude normal in f
	span      uint32  // 4: 0x7f800000 - lo
	subSpan   uint32  // 8: lo - 0x00800000: float32-normal magnitudes subnormal in f
	subBase   uint32  // 12: subBase - biased exponent = the subnormal shift
	shift     uint32  // 16: 23 - Mant
	off       uint32  // 20: (127-Bias)<<Mant, wrapping
	halfM1    uint32  // 24: 2^(shift-1)-1
	flip      uint32  // 28: tie parity flip (nearest, Mant == 0)
	randMask  uint32  // 32: 2^shift-1
	maxMag    uint32  // 36
	ovf       uint32  // 40: magnitude stored on overflow
	signShift uint32  // 44
	magMask   uint32  // 48
	maxBits   uint32  // 52: float32 bits of MaxValue
	gamma     float32 // 56
	mode      uint32  // 60: the Rounding in effect
	key       uint32  // 64: StepKey of the call (stochastic)
	flipT     uint32  // 68: flip when flipT < magnitude <= flipHi ...
	flipHi    uint32  // 72: ... and the sign equals the weight bit
	_         uint32
	changed   int64 // 80
	lost      int64 // 88
	underflow int64 // 96
	saturated int64 // 104
	flips     int64 // 112
	// For the kernels that work on the packed words (AVX-512).
	table  *float32    // 120: the decode table
	layout *stepLayout // 128: byte permutes for this width
}

// stepper is the per-call state of a fused momentum step.
type stepper struct {
	c    *codec
	odd  uint32 // 1 unless Mant == 23 (nothing is dropped)
	mode Rounding
	k    stepKernel
}

func newStepper(c *codec, mode Rounding, rng *Rand, gamma float32) stepper {
	if mode == Stochastic && rng == nil {
		mode = NearestEven
	}
	s := stepper{c: c, mode: mode}
	k := &s.k
	k.lo, k.span, k.shift, k.off = c.normLo, c.normSpan, c.shift, c.off
	k.subSpan = c.normLo - 0x00800000
	k.subBase = uint32(151 - c.f.Mant - c.f.Bias)
	k.maxMag, k.signShift, k.magMask = c.maxMag, c.signShift, c.magMask
	k.maxBits = math.Float32bits(float32(c.f.MaxValue()))
	k.gamma, k.mode = gamma, uint32(mode)
	k.ovf = c.ovfNear
	switch mode {
	case NearestEven:
		k.halfM1, k.flip = c.halfM1, c.oddFlip
		s.odd = c.oddMask
	case Stochastic:
		k.randMask = c.randMask
		k.key = StepKey(rng)
	case TowardZero:
		k.ovf = c.ovfZero
	}
	return s
}

// counts returns the step counters gathered so far.
func (s *stepper) counts() StepCounts {
	return StepCounts{Changed: s.k.changed, Lost: s.k.lost, Underflow: s.k.underflow, Saturated: s.k.saturated}
}

// block runs the step on unpacked codes: ms[i] = Decode(codes[i]) on
// entry; on return codes[i] is the new code. j0 is the position of codes[0]
// in the call (it selects the rounding bits, see StepRand). The encoder's
// fast path is written out here because Go will not inline it (it calls the
// slow path), and a call per value would cost as much as the work.
//
// The update m + float32(γ·(g−m)) rounds the product on its own: Go fuses
// x*y+z into one FMA on arm64 but not on amd64, and a checkpoint must
// continue bit for bit on either.
//
// Values that are float32-normal but subnormal in f take the encoder's
// arithmetic with the quantum 2^sh; below 2^-31 of the quantum (sh > 31) a
// stochastic rounding first drops the sh-31 low bits of the significand so
// that 32 random bits suffice (the bias this leaves is below 2^-31 of the
// quantum). Nearest-even and toward-zero give exactly Encode's code.
func (s *stepper) block(codes []uint32, ms []float32, g []float32, j0 int) {
	c := s.c
	k := &s.k
	ms = ms[:len(codes)]
	g = g[:len(codes)]
	lo, span, shift, signShift, off, maxMag := k.lo, k.span, k.shift, k.signShift, k.off, k.maxMag
	halfM1, odd, flip, randMask, ovf := k.halfM1, s.odd, k.flip, k.randMask, k.ovf
	subSpan, subBase := k.subSpan, k.subBase
	stochastic, nearest := s.mode == Stochastic, s.mode == NearestEven
	gamma, magMask, maxBits, key := k.gamma, k.magMask, k.maxBits, k.key
	var changed, lost, underflow, saturated int64
	for i, code := range codes {
		m, gi := ms[i], g[i]
		mn := m + float32(gamma*(gi-m))
		b := math.Float32bits(mn)
		a := b & 0x7fffffff
		var nc uint32
		if a-lo < span {
			add := halfM1 + (a>>(shift&31)^flip)&odd
			if stochastic {
				add = StepRand(key, j0+i) & randMask
			}
			mag := (a+add)>>(shift&31) - off
			if mag > maxMag {
				mag = ovf
			}
			nc = (b>>31)<<(signShift&31) | mag
		} else if a-0x00800000 < subSpan {
			// Normal in float32 but subnormal in f: momenta that have decayed
			// towards zero, common in training. sh ≥ 24-Mant ≥ 1.
			sh := subBase - a>>23
			sc := min(sh, 31)
			x := (a&0x7fffff | 1<<23) >> (sh - sc)
			var add uint32
			if stochastic {
				add = StepRand(key, j0+i) & (1<<sc - 1)
			} else if nearest {
				add = 1<<(sc-1) - 1 + (x>>sc)&1
			}
			mag := (x + add) >> sc
			if mag > maxMag {
				mag = ovf
			}
			nc = (b>>31)<<(signShift&31) | mag
		} else if a == 0 {
			nc = (b >> 31) << (signShift & 31)
		} else if stochastic {
			r := stepElemRand(key, j0+i)
			nc = c.slowEncode(b, Stochastic, &r)
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
	k.changed += changed
	k.lost += lost
	k.underflow += underflow
	k.saturated += saturated
}

// setFlip prepares Bop's flip test on codes: m' > τ exactly when the
// magnitude code exceeds that of the largest value ≤ τ (decoding is
// monotonic in the magnitude), and NaN codes (above Inf) never flip.
func (s *stepper) setFlip(v *Vector, tau float32) {
	top := uint64(v.c.maxMag)
	if v.f.IEEE {
		top++ // Inf flips, NaN does not
	}
	lo, hi := uint64(0), top // decode(lo) ≤ τ (lo = 0 decodes to 0)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if v.decode(uint32(mid)) <= tau {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	s.k.flipT, s.k.flipHi = uint32(lo), uint32(top)
}

// flipWord returns the flip mask of up to 64 new codes whose weights are
// the low bits of word (bit 1 = w = −1 flips when m' < −τ, bit 0 when m' > τ).
func (s *stepper) flipWord(codes []uint32, word uint64) uint64 {
	t, hi, magMask, signShift := s.k.flipT, s.k.flipHi, s.k.magMask, s.k.signShift&31
	var flip uint64
	for i, c := range codes {
		mag := c & magMask
		big := b2u(mag > t && mag <= hi)
		neg := uint64(c >> signShift & 1)
		flip |= big & ^(neg ^ word>>uint(i)) << uint(i)
	}
	return flip & (^uint64(0) >> (64 - uint(len(codes))))
}

// flipBits applies the flip test to codes whose weights are bits
// [bit0, bit0+len(codes)) of row, at any alignment.
func (s *stepper) flipBits(codes []uint32, row []uint64, bit0 int) {
	for len(codes) > 0 {
		w, off := bit0/64, uint(bit0%64)
		n := min(len(codes), 64-int(off))
		f := s.flipWord(codes[:n], row[w]>>off) << off
		row[w] ^= f
		s.k.flips += int64(bits.OnesCount64(f))
		codes, bit0 = codes[n:], bit0+n
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Step is the fused Bop momentum step on codes [start, start+len(g)):
//
//	m = Decode(code); m' = m + float32(gamma*(g[j]-m)); code' = Encode(m'); store code'
//	mOut[j] = Decode(code')   (so the caller can run the flip test without decoding again)
//
// mOut may be nil; otherwise it must be at least len(g) long. Rounding is the
// vector format's (nil rng with Stochastic falls back to NearestEven); a
// stochastic step draws one key from rng and rounds element j with
// StepRand(key, j). It does not allocate.
func (v *Vector) Step(start int, g []float32, gamma float32, rng *Rand, mOut []float32) StepCounts {
	v.checkRange(start, len(g))
	if mOut != nil && len(mOut) < len(g) {
		panic(fmt.Sprintf("fp: Step: mOut has %d elements, need %d", len(mOut), len(g)))
	}
	s := newStepper(&v.c, v.f.Rounding, rng, gamma)
	v.run(&s, start, g, mOut, nil, 0)
	cnt := s.counts()
	cnt.Values = int64(len(g))
	return cnt
}

// StepFlip is Step followed by Bop's flip test (package bop), fused: with
// m'[j] the new momentum of code start+j and bit col0+j of row its weight
// (bit 1 = −1), the bit flips when it is 1 and m'[j] < −tau, or 0 and
// m'[j] > tau (NaN never flips). It returns the counts and the number of
// flips. tau must be ≥ 0; row must hold bit col0+len(g)-1. It does not
// allocate.
func (v *Vector) StepFlip(start int, g []float32, gamma float32, rng *Rand, row []uint64, col0 int, tau float32) (StepCounts, int64) {
	v.checkRange(start, len(g))
	if col0 < 0 || len(g) > 0 && (col0+len(g)-1)/64 >= len(row) {
		panic(fmt.Sprintf("fp: StepFlip: bits [%d,%d) out of a row of %d words", col0, col0+len(g), len(row)))
	}
	if !(tau >= 0) {
		panic(fmt.Sprintf("fp: StepFlip: tau %g must be ≥ 0", tau))
	}
	s := newStepper(&v.c, v.f.Rounding, rng, gamma)
	s.setFlip(v, tau)
	v.run(&s, start, g, nil, row, col0)
	cnt := s.counts()
	cnt.Values = int64(len(g))
	return cnt, s.k.flips
}

// stepBlock is how many codes the fused step unpacks at a time (on the
// stack): one 64-bit word of weights, and width whole words of codes.
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

// run steps codes [start, start+len(g)), writing mOut if not nil and
// running the flip test on row if not nil. Codes up to the first multiple
// of 64 and the tail go one by one; the 64-code blocks between them are
// unpacked whole words at a time and handed to the active step kernel.
func (v *Vector) run(s *stepper, start int, g, mOut []float32, row []uint64, col0 int) {
	n := len(g)
	if v.table == nil {
		v.stepGeneric(s, start, g, mOut, 0, row, col0)
		return
	}
	head := min((stepBlock-start%stepBlock)%stepBlock, n)
	if head > 0 {
		v.stepGeneric(s, start, g[:head], sub(mOut, 0), 0, row, col0)
	}
	active := stepImpls.Active.Impl
	kind, wordsKernel := active.kind, active.words
	if wordsKernel {
		s.k.table, s.k.layout = &v.table[0], &stepLayouts[v.width]
	}
	// The kernels flip whole words: block k's weights must be one word.
	aligned := row != nil && (start-col0)%64 == 0
	tab := v.table
	var in, out [stepBlock]uint32
	var ms [stepBlock]float32
	j := head
	for ; n-j >= stepBlock; j += stepBlock {
		words := v.words[(start+j)/stepBlock*int(v.width):][:v.width]
		gb := (*[stepBlock]float32)(g[j : j+stepBlock])
		var rw *uint64
		if aligned {
			rw = &row[(col0+j)/64]
		}
		x0 := s.k.key + uint32(j)*stepGolden
		base := (start + j) / stepBlock * int(v.width)
		if !wordsKernel || base+int(v.width)+active.overread > len(v.words) ||
			!stepWordsArch(kind, &s.k, &words[0], gb, &out, rw, x0) {
			v.unpack64Arch(kind, words, &in, &ms)
			// The generic step goes straight to the Go loop: the kernels'
			// contract loop computes both parameter sets for every value,
			// 25 instructions more per momentum on arm64 for 8-bit codes.
			if kind == stepGenericKind || !stepBlockArch(kind, &s.k, &in, &ms, gb, &out, rw, x0) {
				// The generic step, or a block with a value outside the
				// kernel's range: the Go loop does it (kernels commit
				// nothing when they decline a block).
				out = in
				s.block(out[:], ms[:], gb[:], j)
				if rw != nil {
					f := s.flipWord(out[:], *rw)
					*rw ^= f
					s.k.flips += int64(bits.OnesCount64(f))
				}
			}
			v.pack64Arch(kind, words, &out)
		}
		if row != nil && !aligned {
			s.flipBits(out[:], row, col0+j)
		}
		if mOut != nil {
			o := mOut[j : j+stepBlock]
			for k, c := range out {
				o[k] = tab[c]
			}
		}
	}
	if j < n {
		v.stepGeneric(s, start+j, g[j:], sub(mOut, j), j, row, col0)
	}
}

// unpack64 unpacks the 64 codes of width whole words and decodes them.
func (v *Vector) unpack64(words []uint64, codes *[stepBlock]uint32, ms *[stepBlock]float32) {
	tab := v.table
	if v.width == 8 {
		t := (*[256]float32)(tab)
		for k, w := range words[:8] {
			c := codes[8*k : 8*k+8 : 8*k+8]
			m := ms[8*k : 8*k+8 : 8*k+8]
			for b := range 8 {
				code := uint8(w >> (8 * b))
				c[b] = uint32(code)
				m[b] = t[code]
			}
		}
		return
	}
	// Chunks of g codes (g·width ≤ 64 bits) read as one 64-bit window
	// from the word they start in and the next one, branch-free (the
	// pattern of chunks that straddle two words would mispredict).
	width := v.width
	mask := uint64(len(tab) - 1) // == v.mask, written so that tab[x&mask] needs no bounds check
	g := uint(8)
	if width > 8 {
		g = 4
	}
	last := width - 1
	words = words[:width]
	for k := uint(0); k < stepBlock; k += g {
		p := k * width
		wi, off := p/64, p%64
		x := words[wi]>>off | words[min(wi+1, last)]<<(64-off) // 0 when off == 0
		c := codes[k : k+g : k+g]
		m := ms[k : k+g : k+g]
		for i := range c {
			code := x & mask
			x >>= width & 63
			c[i] = uint32(code)
			m[i] = tab[code]
		}
	}
}

// pack64 packs 64 codes into width whole words.
func (v *Vector) pack64(words []uint64, codes *[stepBlock]uint32) {
	if v.width == 8 {
		for k := range words[:8] {
			c := codes[8*k : 8*k+8 : 8*k+8]
			words[k] = uint64(uint8(c[0])) | uint64(uint8(c[1]))<<8 | uint64(uint8(c[2]))<<16 | uint64(uint8(c[3]))<<24 |
				uint64(uint8(c[4]))<<32 | uint64(uint8(c[5]))<<40 | uint64(uint8(c[6]))<<48 | uint64(uint8(c[7]))<<56
		}
		return
	}
	// Chunks of g codes (g·width ≤ 64 bits) assembled in a register and
	// ORed into the word they start in and the next one.
	width, mask := v.width, v.mask
	g := uint(8)
	if width > 8 {
		g = 4
	}
	last := width - 1
	words = words[:width]
	clear(words)
	for k := uint(0); k < stepBlock; k += g {
		c := codes[k : k+g : k+g]
		var x uint64
		for i := len(c) - 1; i >= 0; i-- {
			x = x<<(width&63) | uint64(c[i])&mask
		}
		p := k * width
		wi, off := p/64, p%64
		words[wi] |= x << off
		words[min(wi+1, last)] |= x >> (64 - off) // 0 when off == 0 (Go shifts by 64 give 0)
	}
}

// stepGeneric steps codes one by one with get/set; j0 is the position of
// g[0] in the call.
func (v *Vector) stepGeneric(s *stepper, start int, g []float32, mOut []float32, j0 int, row []uint64, col0 int) {
	var codes [stepBlock]uint32
	var ms [stepBlock]float32
	for j := 0; j < len(g); j += stepBlock {
		n := min(stepBlock, len(g)-j)
		for k := range n {
			codes[k] = uint32(v.get(uint(start + j + k)))
			ms[k] = v.decode(codes[k])
		}
		s.block(codes[:n], ms[:n], g[j:j+n], j0+j)
		for k := range n {
			v.set(uint(start+j+k), uint64(codes[k]))
			if mOut != nil {
				mOut[j+k] = v.decode(codes[k])
			}
		}
		if row != nil {
			s.flipBits(codes[:n], row, col0+j0+j)
		}
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
			s.block(codes[:n], ms[:n], g[j:j+n], j)
			for k, code := range codes[:n] {
				out[k] = tab[code]
			}
		} else {
			f.DecodeSlice(ms[:n], codes[:n])
			s.block(codes[:n], ms[:n], g[j:j+n], j)
			f.DecodeSlice(out, codes[:n])
		}
	}
	cnt := s.counts()
	cnt.Values = int64(len(g))
	return cnt
}

// EncodeStep is the code the fused step (Step, StepFlip, SimulateStep)
// stores for the new momentum x at position j of a call whose key is key
// (see StepRand): Encode(x) for nearest-even and toward-zero, and for
// stochastic rounding Encode with the element's own random bits. It is
// the scalar definition tests and tools compare the step with.
func (f Format) EncodeStep(x float32, key uint32, j int) uint32 {
	if x == 0 || f.Rounding != Stochastic {
		return f.Encode(x, nil)
	}
	c := newCodec(f)
	s := stepper{c: &c, mode: Stochastic, odd: c.oddMask}
	s.k = stepKernel{lo: c.normLo, span: c.normSpan, shift: c.shift, off: c.off, subSpan: c.normLo - 0x00800000,
		subBase: uint32(151 - f.Mant - f.Bias), maxMag: c.maxMag, ovf: c.ovfNear, signShift: c.signShift,
		magMask: c.magMask, randMask: c.randMask, gamma: 1, mode: uint32(Stochastic), key: key}
	codes, ms, g := [1]uint32{}, [1]float32{}, [1]float32{x}
	s.block(codes[:], ms[:], g[:], j)
	return codes[0]
}
