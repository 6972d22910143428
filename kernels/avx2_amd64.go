//go:build !purego

package kernels

import "unsafe"

// The AVX2 implementation (amd64 without AVX-512), registered in
// kernels_amd64.go. The GEMM counts bits with a nibble table
// (bgemm_avx2_amd64.s); the ±1 kernels expand sign bits by per-lane shifts
// and VBLENDVPS and add in the generic order (backward_avx2_amd64.s).

// bgemm2x8AVX2 computes raw popcounts for 2 rows of a and 8 panel columns:
//
//	for r := 0; r < 2; r++ {
//		for j := 0; j < 8; j++ {
//			counts[r*8+j] = Σ_{w<words} popcount(a[r*lda+w] ^ panels[((j/4)*words+w)*4+j%4])
//		}
//	}
//
// (words ≥ 1).
//
//go:noescape
func bgemm2x8AVX2(counts *uint64, a *uint64, lda int, panels *uint64, words int)

// signedSum1AVX2 writes 32 columns of one output:
//
//	for col := 0; col < 32; col++ {
//		var s float32
//		for t := 0; t < count; t++ {
//			s += signed(coef[t*coefStride], uint64(bits[t*bitsStride]>>col))
//		}
//		out[col] = s
//	}
//
// (count ≥ 1; bits are 32-bit halves of the packed words). Same order and
// operations as the generic code, so the results are identical.
//
//go:noescape
func signedSum1AVX2(out *float32, coef *float32, coefStride int, bits *uint32, bitsStride, count int)

// realGrad1AVX2 writes columns col < nfl (1 ≤ nfl ≤ 32) of one output:
//
//	out[col] = Σ_{t<count} coef[t*coefStride] * x[t*xStride+col]   (fused multiply-adds, t in order)
//
//go:noescape
func realGrad1AVX2(out *float32, nfl int, coef *float32, coefStride int, x *float32, xStride, count int)

// realGrad2AVX2 is realGrad1AVX2 with nfl = 32 for outputs o = 0, 1 at
// out[o*outPair:], with coefficients coef[o+t*coefStride].
//
//go:noescape
func realGrad2AVX2(out *float32, outPair int, coef *float32, coefStride int, x *float32, xStride, count int)

// realBin1x4AVX2 adds 4 partial dot products of RealBinGemm:
//
//	for l := 0; l < 4; l++ {
//		c[l] += Σ_{kk<32*chunks} x[kk] * (w[l*ldw+kk/32]>>(kk%32)&1 == 1 ? -1 : +1)
//	}
//
// computed as S − 2·Σ_{bit set} (chunks ≥ 1; w as 32-bit halves).
//
//go:noescape
func realBin1x4AVX2(c *float32, x *float32, w *uint32, ldw, chunks int)

func bgemmAVX2(c []int32, a, b []uint64, m, n, kw, k int) {
	if kw == 0 {
		clear(c)
		return
	}
	var panels [8 * kBlockWords]uint64
	var counts [16]uint64
	for j0 := 0; j0 < n; j0 += 8 {
		jn := min(8, n-j0)
		for w0 := 0; w0 < kw; w0 += kBlockWords {
			words := min(kBlockWords, kw-w0)
			interleavePanels(panels[:], b, j0, jn, kw, w0, words, 4)
			first, last := w0 == 0, w0+words == kw
			for i := 0; i < m; i += 2 {
				lda := kw
				if i+1 == m {
					lda = 0 // an odd last row: both block rows are row i
				}
				bgemm2x8AVX2(&counts[0], &a[i*kw+w0], lda, &panels[0], words)
				for r := 0; r < 2 && i+r < m; r++ {
					ci := c[(i+r)*n+j0 : (i+r)*n+j0+jn]
					for l := range ci {
						v := int32(counts[r*8+l])
						if !first {
							v += ci[l]
						}
						if last {
							v = int32(k) - 2*v
						}
						ci[l] = v
					}
				}
			}
		}
	}
}

func bgemmScaledAVX2(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	ints := unsafe.Slice((*int32)(unsafe.Pointer(&c[0])), len(c))
	bgemmAVX2(ints, a, b, m, n, kw, k)
	for i := 0; i < m; i++ {
		row := c[i*n : i*n+n]
		for j, v := range ints[i*n : i*n+n] {
			row[j] = float32(float32(v)*scale[j]) + shift[j]
		}
	}
}

// halves views packed words as their 32-bit halves (amd64 is little-endian,
// so half 2w is bits 0..31 of word w).
func halves(words []uint64) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(&words[0])), 2*len(words))
}

// signedRowAVX2 writes out[col] for col < len(out) (a row of up to any
// length, starting on a 32-bit half of bits): Σ_t coef[t*coefStride]·±1.
func signedRowAVX2(out []float32, coef []float32, coefStride int, bits []uint32, bitsStride, count int) {
	var edge [32]float32
	for c0 := 0; c0 < len(out); c0 += 32 {
		if len(out)-c0 >= 32 {
			signedSum1AVX2(&out[c0], &coef[0], coefStride, &bits[c0/32], bitsStride, count)
			continue
		}
		signedSum1AVX2(&edge[0], &coef[0], coefStride, &bits[c0/32], bitsStride, count)
		copy(out[c0:], edge[:])
	}
}

func binGradInputAVX2(dx []float32, dy []float32, w []uint64, m, n, k int) {
	if n == 0 {
		clear(dx)
		return
	}
	kw := Words(k)
	bits := halves(w)
	for i := 0; i < m; i++ {
		signedRowAVX2(dx[i*k:i*k+k], dy[i*n:], 1, bits, 2*kw, n)
	}
}

func binGradWeightTileAVX2(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	kw := Words(k)
	bits := halves(a)
	width := k1 - k0
	var edge [32]float32
	// Column chunks outside, output rows inside: the chunk's bits (one
	// 32-bit half per row of a) stay in L1 for every output row.
	for c0 := 0; c0 < width; c0 += 32 {
		half := (k0 + c0) / 32
		for j := j0; j < j1; j++ {
			out := tile[(j-j0)*width+c0 : (j-j0+1)*width]
			if len(out) >= 32 {
				signedSum1AVX2(&out[0], &dy[j], n, &bits[half], 2*kw, m)
				continue
			}
			signedSum1AVX2(&edge[0], &dy[j], n, &bits[half], 2*kw, m)
			copy(out, edge[:])
		}
	}
}

func realGradWeightTileAVX2(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	width := k1 - k0
	// Column chunks outside so the m×32 block of x stays in L1.
	for c0 := 0; c0 < width; c0 += 32 {
		nfl := min(32, width-c0)
		j := j0
		if nfl == 32 {
			for ; j+2 <= j1; j += 2 {
				realGrad2AVX2(&tile[(j-j0)*width+c0], width, &dy[j], n, &x[k0+c0], k, m)
			}
		}
		for ; j < j1; j++ {
			realGrad1AVX2(&tile[(j-j0)*width+c0], nfl, &dy[j], n, &x[k0+c0], k, m)
		}
	}
}

func realBinGemmAVX2(c []float32, x []float32, w []uint64, m, n, k int) {
	clear(c)
	if k == 0 {
		return
	}
	kw := Words(k)
	bits := halves(w)
	full, rest := k/32, k%32
	var tail [32]float32 // the last k%32 inputs of a row, zero-padded
	var one [4]float32   // the 4 copies of a single column's result
	for i := 0; i < m; i++ {
		xi := x[i*k : i*k+k]
		if rest > 0 {
			copy(tail[:], xi[full*32:])
			clear(tail[rest:])
		}
		// block adds columns j..j+3 (ldw = 2kw) or 4 copies of column j
		// (ldw = 0) into out.
		block := func(out *float32, j, ldw int) {
			if full > 0 {
				realBin1x4AVX2(out, &xi[0], &bits[j*2*kw], ldw, full)
			}
			if rest > 0 {
				realBin1x4AVX2(out, &tail[0], &bits[j*2*kw+full], ldw, 1)
			}
		}
		ci := c[i*n : i*n+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			block(&ci[j], j, 2*kw)
		}
		for ; j < n; j++ {
			one = [4]float32{}
			block(&one[0], j, 0)
			ci[j] = one[0]
		}
	}
}
