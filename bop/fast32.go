package bop

import (
	"math"
	"math/bits"
	"unsafe"

	"github.com/bnnd/bnnd/fp"
)

// fp32 momenta are plain float32 values: encoding is the identity, so their
// Bop step needs no codec. step32 does the momentum update and the flip
// test in one pass over a tile row, viewing the vector's words as float32
// (code i is the low half of word i/2 when i is even, as fp packs it, which
// is float32 element i on the little-endian machines bnnd targets).

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func isFP32(f fp.Format) bool {
	return f.Exp == 8 && f.Mant == 23 && f.Bias == 127 && f.IEEE
}

// step32 updates momenta m[j] (j < len(g)) toward g with rate gamma, writes
// the new values to mOut and flips the weights of row (bits col0+j) whose
// momentum passed the threshold. It returns the counts.
func step32(m []float32, g []float32, gamma, tau float32, row []uint64, col0 int, mOut []float32) Counters {
	var c Counters
	c.Values = int64(len(g))
	var changed, lost, sat, flips int
	m = m[:len(g)]
	mOut = mOut[:len(g)]
	for w := 0; w*64 < len(g); w++ {
		lo, hi := w*64, min(w*64+64, len(g))
		word := row[col0/64+w]
		ms, gs, outs := m[lo:hi], g[lo:hi], mOut[lo:hi]
		var flip uint64
		for j, gj := range gs {
			old := ms[j]
			// The product is rounded on its own: Go would fuse it into an
			// FMA on arm64 but not on amd64, and a checkpoint must continue
			// bit for bit on either.
			mn := old + float32(gamma*(gj-old))
			ms[j] = mn
			outs[j] = mn
			ob, nb := math.Float32bits(old), math.Float32bits(mn)
			// Branch-free counting: the outcomes are data-dependent coin flips.
			same := b2i(ob == nb)
			changed += 1 - same
			lost += same & b2i(gj != old)
			sat += b2i(nb&0x7fffffff == 0x7f800000)
			neg := word >> uint(j) & 1
			flip |= (neg&b2u(mn < -tau) | (neg^1)&b2u(mn > tau)) << uint(j)
		}
		row[col0/64+w] = word ^ flip
		flips += bits.OnesCount64(flip)
	}
	c.Changed, c.Lost, c.Saturated, c.Flips = int64(changed), int64(lost), int64(sat), int64(flips)
	return c
}

// float32View returns the fp32 vector's codes as float32 values.
func float32View(v *fp.Vector) []float32 {
	w := v.Words()
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&w[0])), v.Len())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
