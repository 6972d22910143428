//go:build !purego

package kernels

import "unsafe"

// The hybrid AVX-512 GEMM (bgemm_hybrid_amd64.s): each block computes
// 4 rows × 34 columns, 32 of them with VPOPCNTQ and 2 with scalar POPCNTQ
// on the integer ports, which the vector loop leaves idle.

const (
	hybridScalarCols  = 2                            // columns per block done with scalar POPCNTQ
	hybridCols        = panelRows + hybridScalarCols // columns per hybrid block
	hybridPanelStride = kBlockWords*8 + 72           // words between panels: PSTRIDE/8 in the .s file
)

// bgemmBlockHybridAVX512 is one k-block of BGemm for 34 columns:
//
//	for i := 0; i < rows; i++ {
//		for j := 0; j < 34; j++ {
//			out := &c[i*ldc+j]
//			if j >= 32 {
//				out = &cs[i*ldc+j-32]
//			}
//			cnt := 0
//			for w := 0; w < words; w++ {
//				cnt += bits.OnesCount64(a[i*lda+w] ^ b_j[w])
//			}
//			if mode&1 != 0 { cnt += *out } // a later k-block
//			if mode&2 != 0 { cnt = k - 2*cnt } // the last k-block
//			*out = cnt
//		}
//	}
//
// where b_j[w] = panels[(j/8)*hybridPanelStride + w*8 + j%8] for j < 32,
// b_32 = bs[:words] and b_33 = bs[lda:lda+words]. 1 ≤ words ≤ kBlockWords,
// rows ≥ 1.
//
//go:noescape
func bgemmBlockHybridAVX512(c *int32, ldc int, a *uint64, lda int, panels *uint64, words int, rows int, k int, mode int, bs *uint64, cs *int32)

// interleaveHybridPanels copies words words from column w0 of b rows
// j0..j0+31 into the hybrid panel layout.
func interleaveHybridPanels(dst []uint64, b []uint64, j0, kw, w0, words int) {
	blocks := words / 8
	if blocks > 0 {
		transpose8AVX512(&dst[0], hybridPanelStride, &b[j0*kw+w0], kw, blocks, panelRows/8)
	}
	for p := 0; p < panelRows/8 && 8*blocks < words; p++ {
		row0 := (j0 + 8*p) * kw
		panel := dst[p*hybridPanelStride : (p+1)*hybridPanelStride]
		for l := 0; l < 8; l++ {
			row := b[row0+l*kw+w0 : row0+l*kw+w0+words]
			for w := 8 * blocks; w < words; w++ {
				panel[w*8+l] = row[w]
			}
		}
	}
}

// bgemmHybridAVX512 computes columns [0, 34h) of BGemm (kw ≥ 1,
// h ≤ n/34) with h hybrid blocks; the caller does the rest. Block t does
// the vector columns 32t..32t+31 and the scalar columns 32h+2t and
// 32h+2t+1, so the vector columns keep the alignment of c.
func bgemmHybridAVX512(c []int32, a, b []uint64, m, n, kw, k, h int, panels []uint64) {
	for t := 0; t < h; t++ {
		j0, s0 := t*panelRows, h*panelRows+t*hybridScalarCols
		for w0 := 0; w0 < kw; w0 += kBlockWords {
			words := min(kBlockWords, kw-w0)
			interleaveHybridPanels(panels, b, j0, kw, w0, words)
			mode := 0
			if w0 > 0 {
				mode |= 1
			}
			if w0+words == kw {
				mode |= 2
			}
			bgemmBlockHybridAVX512(&c[j0], n, &a[w0], kw, &panels[0], words, m, k, mode, &b[s0*kw+w0], &c[s0])
		}
	}
}

// alignedPanels returns the part of buf from its first 64-byte boundary
// (len(buf) − 7 words): a Go array is only 8-byte aligned, and panel
// loads split across two cache lines cost the hybrid GEMM about 5% on
// 100×2048×2048.
func alignedPanels(buf []uint64) []uint64 {
	skip := (-int(uintptr(unsafe.Pointer(&buf[0])) / 8)) & 7
	return buf[skip : skip+len(buf)-7]
}
