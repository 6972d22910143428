//go:build !purego

package kernels

import (
	"unsafe"

	"github.com/klauspost/cpuid/v2"
)

// The NEON implementation. The assembly (bgemm_arm64.s, backward_arm64.s)
// computes fixed-size register blocks; the Go code here walks the blocks,
// points partial blocks at valid rows and scratch outputs, and computes the
// few leftover columns with scalar loops that add in the same order, so
// every result equals the generic one bit for bit.
//
// ASIMD is mandatory in ARMv8-A and Go's arm64 port assumes it; the cpuid
// bit is still consulted so that a kernel or emulator that hides it makes
// "neon" unavailable instead of faulting.
func init() {
	impls.Register(implEntry{
		Name:      "neon",
		Available: cpuid.CPU.Supports(cpuid.ASIMD),
		Impl: impl{
			bgemm:              bgemmNEON,
			bgemmScaled:        bgemmScaledNEON,
			realBinGemm:        realBinGemmNEON,
			binGradInput:       binGradInputNEON,
			binGradWeightTile:  binGradWeightTileNEON,
			realGradWeightTile: realGradWeightTileNEON,
		},
	})
}

// bgemm4x4NEON computes a 4×4 block: for r, j < 4,
//
//	p := popcount(a_r[0:kw] XOR b_j[0:kw])
//	scale == nil: (*int32)(c)[r*ldc+j] = int32(k − 2p)
//	otherwise:   (*float32)(c)[r*ldc+j] = float32(float32(k−2p)*scale[j]) + shift[j]
//
// Every pointer must have kw ≥ 1 readable words (scale, shift: 4 floats).
//
//go:noescape
func bgemm4x4NEON(c unsafe.Pointer, ldc int, a0, a1, a2, a3, b0, b1, b2, b3 *uint64, kw, k int, scale, shift *float32)

// signedSum4x16NEON: for q < 4 and col < 16·chunks,
//
//	s := accumulate ? out[q*ostride+col] : +0
//	out[q*ostride+col] = s + Σ_{r<count, in order} v[q*vq+r*vr]·(bits[r*bstride+col/64] bit col%64 ? −1 : +1)
//
// (count, chunks ≥ 1; strides in elements).
//
//go:noescape
func signedSum4x16NEON(out *float32, ostride int, v *float32, vq, vr int, bits *uint64, bstride, count, chunks int, accumulate bool)

// realBin4x8NEON: for q < 4 and l < 8,
//
//	c[q*ldc+l] = Σ_{kk<k, in order} x[q*ldx+kk]·(w[l*ldw+kk/64] bit kk%64 ? −1 : +1)
//
// (k ≥ 1; strides in elements).
//
//go:noescape
func realBin4x8NEON(c *float32, ldc int, x *float32, ldx int, w *uint64, ldw, k int)

// realGradTile4x16NEON: for q < 4 and col < 16·chunks,
//
//	out[q*ostride+col] = Σ_{r<count, in order} v[q*vq+r*vr]·x[r*xstride+col]   (fused multiply-adds)
//
// (count, chunks ≥ 1; strides in elements).
//
//go:noescape
func realGradTile4x16NEON(out *float32, ostride int, v *float32, vq, vr int, x *float32, xstride, count, chunks int)

// bgemmBlocks walks the m×n output in 4×4 blocks. Full blocks are written
// in place; a block cut by the edge repeats the last valid row of a or b
// and lands in scratch, from which only the valid part is copied.
// ints is the int32 output (nil for the scaled variant), floats the float32 one.
func bgemmBlocks(ints []int32, floats []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	var scratch [16]uint32 // int32 or float32 bits of a partial block
	var edgeScale, edgeShift [4]float32
	for i0 := 0; i0 < m; i0 += 4 {
		rows := min(4, m-i0)
		a0, a1, a2, a3 := rows4(a, i0, rows, kw)
		for j0 := 0; j0 < n; j0 += 4 {
			cols := min(4, n-j0)
			b0, b1, b2, b3 := rows4(b, j0, cols, kw)
			var sc, sh *float32
			if scale != nil {
				if cols == 4 {
					sc, sh = &scale[j0], &shift[j0]
				} else {
					for j := range 4 {
						edgeScale[j], edgeShift[j] = scale[j0+min(j, cols-1)], shift[j0+min(j, cols-1)]
					}
					sc, sh = &edgeScale[0], &edgeShift[0]
				}
			}
			if rows == 4 && cols == 4 {
				var out unsafe.Pointer
				if ints != nil {
					out = unsafe.Pointer(&ints[i0*n+j0])
				} else {
					out = unsafe.Pointer(&floats[i0*n+j0])
				}
				bgemm4x4NEON(out, n, a0, a1, a2, a3, b0, b1, b2, b3, kw, k, sc, sh)
				continue
			}
			bgemm4x4NEON(unsafe.Pointer(&scratch[0]), 4, a0, a1, a2, a3, b0, b1, b2, b3, kw, k, sc, sh)
			for r := range rows {
				for j := range cols {
					if ints != nil {
						ints[(i0+r)*n+j0+j] = int32(scratch[r*4+j])
					} else {
						floats[(i0+r)*n+j0+j] = f32frombits(scratch[r*4+j])
					}
				}
			}
		}
	}
}

// rows4 points at the four packed rows (kw words each) of x that a block
// starting at row r0 reads: r0..r0+3, with the last of the count valid
// rows repeated past the edge.
func rows4(x []uint64, r0, count, kw int) (p0, p1, p2, p3 *uint64) {
	last := count - 1
	return &x[r0*kw], &x[(r0+min(1, last))*kw], &x[(r0+min(2, last))*kw], &x[(r0+min(3, last))*kw]
}

func bgemmNEON(c []int32, a, b []uint64, m, n, kw, k int) {
	if kw == 0 {
		bgemmGeneric(c, a, b, m, n, kw, k)
		return
	}
	bgemmBlocks(c, nil, a, b, m, n, kw, k, nil, nil)
}

func bgemmScaledNEON(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	if kw == 0 {
		bgemmScaledGeneric(c, a, b, m, n, kw, k, scale, shift)
		return
	}
	bgemmBlocks(nil, c, a, b, m, n, kw, k, scale, shift)
}

// signedColumn returns Σ_{r<count} v[r*vr]·(bits[r*bstride+col/64] bit col%64 ? −1 : +1),
// adding in r order from +0 like the generic kernels: the scalar tail of
// signedSum4x16NEON.
func signedColumn(v []float32, vr int, bits []uint64, bstride, count, col int) float32 {
	var s float32
	for r := range count {
		s += signed(v[r*vr], bits[r*bstride+col>>6]>>(col&63))
	}
	return s
}

// signedTermBlock is how many terms signedSums hands the assembly at once:
// the assembly reads 2 bytes of every term's packed row per 16 columns, so
// a block touches signedTermBlock cache lines of packed rows, which must
// stay in L1 (8 KiB here) while it sweeps all the columns.
const signedTermBlock = 128

// signedSums computes, for q < rows and col < width,
//
//	out[q*ostride+col] = Σ_{r<count} v[q*vq+r*vr]·(bits[r*bstride+col/64] bit col%64 ? −1 : +1)
//
// with the assembly for blocks of 4 rows × 16 columns, the terms in blocks
// of signedTermBlock continuing the sums in out; a last partial row block
// runs one row at a time with all four assembly rows aliased to it
// (strides 0), and the last width%16 columns use signedColumn.
func signedSums(out []float32, ostride int, v []float32, vq, vr int, bits []uint64, bstride, count, rows, width int) {
	chunks := width / 16
	for q0 := 0; q0 < rows; q0 += 4 {
		for r0 := 0; chunks > 0 && r0 < count; r0 += signedTermBlock {
			terms := min(signedTermBlock, count-r0)
			vr0, br0 := r0*vr, r0*bstride
			if q0+4 <= rows {
				signedSum4x16NEON(&out[q0*ostride], ostride, &v[q0*vq+vr0], vq, vr, &bits[br0], bstride, terms, chunks, r0 > 0)
			} else {
				for q := q0; q < rows; q++ {
					signedSum4x16NEON(&out[q*ostride], 0, &v[q*vq+vr0], 0, vr, &bits[br0], bstride, terms, chunks, r0 > 0)
				}
			}
		}
		for q := q0; q < min(q0+4, rows); q++ {
			for col := chunks * 16; col < width; col++ {
				out[q*ostride+col] = signedColumn(v[q*vq:], vr, bits, bstride, count, col)
			}
		}
	}
}

func binGradInputNEON(dx []float32, dy []float32, w []uint64, m, n, k int) {
	if n == 0 {
		clear(dx)
		return
	}
	// dx row i, column kk: terms j with v = dy[i*n+j], bits = w row j.
	signedSums(dx, k, dy, n, 1, w, Words(k), n, m, k)
}

func binGradWeightTileNEON(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	// tile row j−j0, column kk−k0: terms i with v = dy[i*n+j], bits = a row
	// i from word k0/64 (k0 is a multiple of 64).
	kw := Words(k)
	signedSums(tile, k1-k0, dy[j0:], 1, n, a[k0/64:], kw, m, j1-j0, k1-k0)
}

func realBinGemmNEON(c []float32, x []float32, w []uint64, m, n, k int) {
	if k == 0 {
		clear(c)
		return
	}
	kw := Words(k)
	full := n / 8 * 8
	for i0 := 0; i0 < m; i0 += 4 {
		if full > 0 {
			if i0+4 <= m {
				for j0 := 0; j0 < full; j0 += 8 {
					realBin4x8NEON(&c[i0*n+j0], n, &x[i0*k], k, &w[j0*kw], kw, k)
				}
			} else {
				for i := i0; i < m; i++ {
					for j0 := 0; j0 < full; j0 += 8 {
						realBin4x8NEON(&c[i*n+j0], 0, &x[i*k], 0, &w[j0*kw], kw, k)
					}
				}
			}
		}
		for i := i0; i < min(i0+4, m); i++ {
			xi := x[i*k : i*k+k]
			for j := full; j < n; j++ {
				wj := w[j*kw : j*kw+kw]
				var s float32
				for kk, v := range xi {
					s += signed(v, wj[kk>>6]>>(kk&63))
				}
				c[i*n+j] = s
			}
		}
	}
}

func realGradWeightTileNEON(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	rows, width := j1-j0, k1-k0
	chunks := width / 16
	v := dy[j0:]
	xs := x[k0:]
	for q0 := 0; q0 < rows; q0 += 4 {
		if chunks > 0 {
			if q0+4 <= rows {
				realGradTile4x16NEON(&tile[q0*width], width, &v[q0], 1, n, &xs[0], k, m, chunks)
			} else {
				for q := q0; q < rows; q++ {
					realGradTile4x16NEON(&tile[q*width], 0, &v[q], 0, n, &xs[0], k, m, chunks)
				}
			}
		}
		for q := q0; q < min(q0+4, rows); q++ {
			for col := chunks * 16; col < width; col++ {
				var s float32
				for i := range m {
					s += v[i*n+q] * xs[i*k+col]
				}
				tile[q*width+col] = s
			}
		}
	}
}
