package kernels

import (
	"fmt"
	"math"
	"math/bits"
)

func f32frombits(b uint32) float32 { return math.Float32frombits(b) }
func f32bits(f float32) uint32     { return math.Float32bits(f) }

// checkGemm validates the shared arguments of BGemm and BGemmScaled.
func checkGemm(kernel string, clen int, a, b []uint64, m, n, kw, k int) {
	checkDims(kernel, m, n, kw, k)
	if k > 64*kw {
		panic(fmt.Sprintf("kernels.%s: k=%d valid bits do not fit in kw=%d words per row", kernel, k, kw))
	}
	checkLen(kernel, "c", clen, m*n)
	checkLen(kernel, "a", len(a), m*kw)
	checkLen(kernel, "b", len(b), n*kw)
}

// BGemm is the forward binary matrix product. a holds m packed rows and b
// holds n packed rows, each kw words long (kw ≥ Words(k)); only the first k
// bits of each row are valid and all bits after them must be zero. It writes
//
//	c[i*n+j] = k − 2·popcount(a_i XOR b_j)
//
// the ±1 dot product of row i of a and row j of b.
func BGemm(c []int32, a, b []uint64, m, n, kw, k int) {
	checkGemm("BGemm", len(c), a, b, m, n, kw, k)
	if m == 0 || n == 0 {
		return
	}
	impls.Active.Impl.bgemm(c[:m*n], a[:m*kw], b[:n*kw], m, n, kw, k)
}

// BGemmScaled is BGemm with a per-column affine map applied in the same
// pass (batch-norm folded into the product):
//
//	c[i*n+j] = float32(k − 2·popcount(a_i XOR b_j))*scale[j] + shift[j]
//
// computed as one float32 multiply and one add (no fused multiply-add), so
// every implementation gives the same bits.
func BGemmScaled(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	checkGemm("BGemmScaled", len(c), a, b, m, n, kw, k)
	checkLen("BGemmScaled", "scale", len(scale), n)
	checkLen("BGemmScaled", "shift", len(shift), n)
	if m == 0 || n == 0 {
		return
	}
	impls.Active.Impl.bgemmScaled(c[:m*n], a[:m*kw], b[:n*kw], m, n, kw, k, scale[:n], shift[:n])
}

// bgemmGeneric is the pure-Go BGemm: one row of a against four rows of b at
// a time so each word of a is loaded once per four popcounts.
func bgemmGeneric(c []int32, a, b []uint64, m, n, kw, k int) {
	for i := 0; i < m; i++ {
		ai := a[i*kw : i*kw+kw]
		ci := c[i*n : i*n+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			b0 := b[j*kw : j*kw+kw]
			b1 := b[(j+1)*kw : (j+1)*kw+kw]
			b2 := b[(j+2)*kw : (j+2)*kw+kw]
			b3 := b[(j+3)*kw : (j+3)*kw+kw]
			var p0, p1, p2, p3 int
			for w, x := range ai {
				p0 += bits.OnesCount64(x ^ b0[w])
				p1 += bits.OnesCount64(x ^ b1[w])
				p2 += bits.OnesCount64(x ^ b2[w])
				p3 += bits.OnesCount64(x ^ b3[w])
			}
			ci[j] = int32(k - 2*p0)
			ci[j+1] = int32(k - 2*p1)
			ci[j+2] = int32(k - 2*p2)
			ci[j+3] = int32(k - 2*p3)
		}
		for ; j < n; j++ {
			bj := b[j*kw : j*kw+kw]
			p := 0
			for w, x := range ai {
				p += bits.OnesCount64(x ^ bj[w])
			}
			ci[j] = int32(k - 2*p)
		}
	}
}

// bgemmScaledGeneric is BGemmScaled in pure Go.
func bgemmScaledGeneric(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	for i := 0; i < m; i++ {
		ai := a[i*kw : i*kw+kw]
		ci := c[i*n : i*n+n]
		for j := range ci {
			bj := b[j*kw : j*kw+kw]
			p := 0
			for w, x := range ai {
				p += bits.OnesCount64(x ^ bj[w])
			}
			// Two roundings (multiply, then add) on purpose: the
			// assembly versions must match bit for bit, and Go would
			// be allowed to fuse x*y+z on arm64 without the explicit
			// conversion.
			prod := float32(float32(k-2*p) * scale[j])
			ci[j] = prod + shift[j]
		}
	}
}
