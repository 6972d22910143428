package fp

import (
	"fmt"
	"math"
)

// Vector holds n codes of one Format, each Bits() wide, packed without
// padding into little-endian 64-bit words: code i occupies bits
// [i·w, (i+1)·w) of the concatenated words, so a code may straddle two
// words. Its memory is exactly ceil(n·w/64)·8 bytes (see Bytes).
//
// A Vector is not safe for concurrent writes to codes that share a word;
// callers that split work across goroutines should split at multiples of
// 64 codes (any width then starts on a word boundary).
type Vector struct {
	f     Format
	c     codec
	n     int
	width uint
	mask  uint64
	words []uint64
	table []float32 // decode table when width ≤ 16
}

func wordsFor(n, width int) int { return (n*width + 63) / 64 }

// NewVector returns a vector of n codes, all zero (= +0). It panics if f is
// invalid or n is negative; validate user-supplied formats first.
func NewVector(f Format, n int) *Vector {
	if err := f.Validate(); err != nil {
		panic(err)
	}
	if n < 0 {
		panic(fmt.Sprintf("fp: NewVector: negative length %d", n))
	}
	return newVector(f, n, make([]uint64, wordsFor(n, f.Bits())))
}

func newVector(f Format, n int, words []uint64) *Vector {
	v := &Vector{f: f, c: newCodec(f), n: n, width: uint(f.Bits()), words: words}
	v.mask = 1<<v.width - 1
	if v.width <= 16 {
		v.table = decodeTable(f)
	}
	return v
}

// VectorFromWords wraps a checkpointed backing store (from Words) without
// copying. It checks that f is valid, that words has exactly
// ceil(n·Bits/64) words and that the unused bits of the last word are zero.
func VectorFromWords(f Format, n int, words []uint64) (*Vector, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("fp: vector format: %w", err)
	}
	if n < 0 {
		return nil, fmt.Errorf("fp: vector length %d is negative", n)
	}
	want := wordsFor(n, f.Bits())
	if len(words) != want {
		return nil, fmt.Errorf("fp: %d codes of %s (%d bits) need %d words, got %d", n, f, f.Bits(), want, len(words))
	}
	if used := uint(n*f.Bits()) % 64; used != 0 && words[want-1]>>used != 0 {
		return nil, fmt.Errorf("fp: padding bits of the last word are not zero (word %d = %#x): wrong format or length", want-1, words[want-1])
	}
	return newVector(f, n, words), nil
}

// Len is the number of codes.
func (v *Vector) Len() int { return v.n }

// Format is the vector's format.
func (v *Vector) Format() Format { return v.f }

// Bytes is the memory of the packed codes: exactly ceil(n·Bits/64)·8.
func (v *Vector) Bytes() int { return len(v.words) * 8 }

// Words is the backing store (not a copy), for checkpoints.
func (v *Vector) Words() []uint64 { return v.words }

// SetRounding changes the rounding used by EncodeRange and Step; the codes
// do not change (rounding is not part of the stored representation).
func (v *Vector) SetRounding(r Rounding) { v.f.Rounding = r; v.c.f.Rounding = r }

func (v *Vector) checkIndex(i int) {
	if uint(i) >= uint(v.n) {
		panic(fmt.Sprintf("fp: vector index %d out of range [0,%d)", i, v.n))
	}
}

func (v *Vector) checkRange(start, n int) {
	if start < 0 || n < 0 || start > v.n-n {
		panic(fmt.Sprintf("fp: vector range [%d,%d) out of range [0,%d)", start, start+n, v.n))
	}
}

// Get returns code i.
func (v *Vector) Get(i int) uint32 {
	v.checkIndex(i)
	return uint32(v.get(uint(i)))
}

func (v *Vector) get(i uint) uint64 {
	p := i * v.width
	w, off := p/64, p%64
	x := v.words[w] >> off
	if off+v.width > 64 {
		x |= v.words[w+1] << (64 - off)
	}
	return x & v.mask
}

// Set stores code i; bits above the width are ignored.
func (v *Vector) Set(i int, code uint32) {
	v.checkIndex(i)
	v.set(uint(i), uint64(code))
}

func (v *Vector) set(i uint, code uint64) {
	code &= v.mask
	p := i * v.width
	w, off := p/64, p%64
	v.words[w] = v.words[w]&^(v.mask<<off) | code<<off
	if off+v.width > 64 {
		sh := 64 - off
		v.words[w+1] = v.words[w+1]&^(v.mask>>sh) | code>>sh
	}
}

// DecodeRange sets dst[j] = Decode(code[start+j]) for j < len(dst).
func (v *Vector) DecodeRange(dst []float32, start int) {
	v.checkRange(start, len(dst))
	switch {
	case v.width == 8:
		decodeRange8(dst, v.words, start, (*[256]float32)(v.table))
	case v.width == 16:
		decodeRange16(dst, v.words, start, (*[65536]float32)(v.table))
	case v.width == 32: // only fp32 is 32 bits wide
		for j := range dst {
			k := start + j
			dst[j] = decodeFP32(uint32(v.words[k/2] >> (32 * (k % 2))))
		}
	case v.table != nil:
		for j := range dst {
			dst[j] = v.table[v.get(uint(start+j))]
		}
	default:
		for j := range dst {
			dst[j] = v.f.Decode(uint32(v.get(uint(start + j))))
		}
	}
}

// decodeFP32 is FP32.Decode: the bits themselves, with NaNs made quiet.
func decodeFP32(code uint32) float32 {
	if code&0x7f800000 == 0x7f800000 && code&0x7fffff != 0 {
		code |= 0x00400000
	}
	return math.Float32frombits(code)
}

// decodeRange8 decodes byte-aligned codes: whole words of eight codes at a
// time, with the partial words at both ends done one code at a time.
func decodeRange8(dst []float32, words []uint64, start int, tab *[256]float32) {
	i := 0
	for ; i < len(dst) && (start+i)%8 != 0; i++ {
		k := start + i
		dst[i] = tab[uint8(words[k/8]>>(8*(k%8)))]
	}
	ws := words[(start+i)/8:]
	for ; len(dst)-i >= 8; i += 8 {
		w := ws[0]
		ws = ws[1:]
		d := dst[i : i+8 : i+8]
		d[0] = tab[uint8(w)]
		d[1] = tab[uint8(w>>8)]
		d[2] = tab[uint8(w>>16)]
		d[3] = tab[uint8(w>>24)]
		d[4] = tab[uint8(w>>32)]
		d[5] = tab[uint8(w>>40)]
		d[6] = tab[uint8(w>>48)]
		d[7] = tab[uint8(w>>56)]
	}
	for ; i < len(dst); i++ {
		k := start + i
		dst[i] = tab[uint8(words[k/8]>>(8*(k%8)))]
	}
}

func decodeRange16(dst []float32, words []uint64, start int, tab *[65536]float32) {
	i := 0
	for ; i < len(dst) && (start+i)%4 != 0; i++ {
		k := start + i
		dst[i] = tab[uint16(words[k/4]>>(16*(k%4)))]
	}
	ws := words[(start+i)/4:]
	for ; len(dst)-i >= 4; i += 4 {
		w := ws[0]
		ws = ws[1:]
		d := dst[i : i+4 : i+4]
		d[0] = tab[uint16(w)]
		d[1] = tab[uint16(w>>16)]
		d[2] = tab[uint16(w>>32)]
		d[3] = tab[uint16(w>>48)]
	}
	for ; i < len(dst); i++ {
		k := start + i
		dst[i] = tab[uint16(words[k/4]>>(16*(k%4)))]
	}
}

// EncodeRange sets code[start+j] = Encode(src[j], rng) using the vector's
// format and rounding (nil rng with Stochastic falls back to NearestEven).
// It does not allocate.
func (v *Vector) EncodeRange(start int, src []float32, rng *Rand) {
	v.checkRange(start, len(src))
	f := v.f
	if f.Rounding == Stochastic && rng == nil {
		f.Rounding = NearestEven
	}
	var codes [stepBlock]uint32
	for j := 0; j < len(src); j += stepBlock {
		n := min(stepBlock, len(src)-j)
		switch f.Rounding {
		case Stochastic:
			v.c.encodeSliceStochastic(codes[:n], src[j:j+n], rng)
		case TowardZero:
			v.c.encodeSliceTowardZero(codes[:n], src[j:j+n])
		default:
			v.c.encodeSliceNearest(codes[:n], src[j:j+n])
		}
		k := start + j
		if v.width == 8 && k%8 == 0 && n%8 == 0 {
			words := v.words[k/8:][:n/8]
			for w := range words {
				c := codes[8*w : 8*w+8 : 8*w+8]
				words[w] = uint64(uint8(c[0])) | uint64(uint8(c[1]))<<8 | uint64(uint8(c[2]))<<16 | uint64(uint8(c[3]))<<24 |
					uint64(uint8(c[4]))<<32 | uint64(uint8(c[5]))<<40 | uint64(uint8(c[6]))<<48 | uint64(uint8(c[7]))<<56
			}
			continue
		}
		for i, code := range codes[:n] {
			v.set(uint(k+i), uint64(code))
		}
	}
}
