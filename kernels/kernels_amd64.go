//go:build !purego

package kernels

import (
	"unsafe"

	"github.com/klauspost/cpuid/v2"
)

// The amd64 implementations. The assembly computes fixed register blocks;
// the Go code here walks the blocks and handles the edges, either by
// letting the last block overlap the previous one (it recomputes a few
// outputs with the same operations, so they get the same values) or, when
// the matrix is smaller than one block, by repeating one row.

func init() {
	// Registered least preferred first.
	impls.Register(implEntry{
		Name:      "avx2",
		Available: cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3),
		Impl: impl{
			bgemm:              bgemmAVX2,
			bgemmScaled:        bgemmScaledAVX2,
			realBinGemm:        realBinGemmAVX2,
			binGradInput:       binGradInputAVX2,
			binGradWeightTile:  binGradWeightTileAVX2,
			realGradWeightTile: realGradWeightTileAVX2,
		},
	})
	// AVX-512: F and VL for the vector code, BW for 64-bit mask moves and
	// shifts, DQ for KMOVB, VPOPCNTDQ for VPOPCNTQ, BMI2 for BZHI.
	avx512 := cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512DQ, cpuid.AVX512VL,
		cpuid.AVX512VPOPCNTDQ, cpuid.BMI2)
	kernels512 := impl{
		bgemm:              bgemmAVX512,
		bgemmScaled:        bgemmScaledAVX512,
		realBinGemm:        realBinGemmAVX512,
		binGradInput:       binGradInputAVX512,
		binGradWeightTile:  binGradWeightTileAVX512,
		realGradWeightTile: realGradWeightTileAVX512,
	}
	// "avx512vector" is "avx512" with the GEMM on the vector pipes only
	// (bgemmBlockAVX512); "avx512" adds scalar POPCNTQ columns on the
	// integer ports (bgemm_hybrid_amd64.s).
	vector512 := kernels512
	vector512.bgemm, vector512.bgemmScaled = bgemmVectorAVX512, bgemmScaledVectorAVX512
	impls.Register(implEntry{Name: "avx512vector", Available: avx512, Impl: vector512})
	impls.Register(implEntry{Name: "avx512", Available: avx512, Impl: kernels512})
}

// bgemmBlockAVX512 is one k-block of BGemm for up to 32 columns:
//
//	for i := 0; i < rows; i++ {
//		for j := 0; j < 32; j++ {
//			if jmask>>j&1 == 0 { continue }
//			cnt := 0
//			for w := 0; w < words; w++ {
//				cnt += bits.OnesCount64(a[i*lda+w] ^ panels[((j/8)*words+w)*8+j%8])
//			}
//			if mode&1 != 0 { cnt += c[i*ldc+j] } // a later k-block
//			if mode&2 != 0 { cnt = k - 2*cnt }   // the last k-block
//			c[i*ldc+j] = cnt
//		}
//	}
//
// (rows, words ≥ 1; pointers as element 0 of the Go slices).
//
//go:noescape
func bgemmBlockAVX512(c *int32, ldc int, a *uint64, lda int, panels *uint64, words int, rows int, jmask uint32, k int, mode int)

// bgemmBlock8AVX512 is bgemmBlockAVX512 for jmask < 256: it reads only
// the first panel (columns 0..7) and is about four times faster.
//
//go:noescape
func bgemmBlock8AVX512(c *int32, ldc int, a *uint64, lda int, panel *uint64, words int, rows int, jmask uint32, k int, mode int)

// scaleColumnsAVX512 rewrites c (rows×n, int32 values stored in float32
// slots) in place: c[i*n+j] = float32(float32(int32 bits)·scale[j]) + shift[j].
//
//go:noescape
func scaleColumnsAVX512(c *float32, rows, n int, scale, shift *float32)

// transpose8AVX512 interleaves panels groups of 8 rows of src (row stride
// ld words) into the panel layout, 8 words per block, dstStride words
// between panels:
//
//	for p := 0; p < panels; p++ {
//		for w := 0; w < 8*blocks; w++ {
//			for l := 0; l < 8; l++ {
//				dst[p*dstStride+w*8+l] = src[(8*p+l)*ld+w]
//			}
//		}
//	}
//
// (blocks, panels ≥ 1).
//
//go:noescape
func transpose8AVX512(dst *uint64, dstStride int, src *uint64, ld, blocks, panels int)

// peakStepsAVX512 runs n×16 register-only XOR/VPOPCNTQ/add steps (the GEMM
// loop's work per 512 binary MACs) for BenchmarkAVX512StepPeak.
func peakStepsAVX512(n int)

// signedSum4AVX512 writes columns col < nfl (1 ≤ nfl ≤ 64) of 4 outputs:
//
//	for o := 0; o < 4; o++ {
//		for col := 0; col < nfl; col++ {
//			out[o*outPair+col] = Σ_{t<count} coef[o*coefPair+t*coefStride] * (bits[t*bitsStride]>>col&1 == 1 ? -1 : +1)
//		}
//	}
//
// computed as S − 2·Σ_{bit set} (count ≥ 1).
//
//go:noescape
func signedSum4AVX512(out *float32, outPair, nfl int, coef *float32, coefStride, coefPair int, bits *uint64, bitsStride, count int)

// realGrad4AVX512 writes columns col < nfl (1 ≤ nfl ≤ 64) of 4 outputs:
//
//	out[o*outPair+col] = Σ_{t<count} coef[o*coefPair+t*coefStride] * x[t*xStride+col]   (fused multiply-adds)
//
//go:noescape
func realGrad4AVX512(out *float32, outPair, nfl int, coef *float32, coefStride, coefPair int, x *float32, xStride, count int)

// realBin2x4AVX512 computes a 2×4 block of RealBinGemm:
//
//	for q := 0; q < 2; q++ {
//		for l := 0; l < 4; l++ {
//			c[q*ldc+l] = Σ_{kk<k} x[q*ldx+kk] * (w[l*ldw+kk/64]>>(kk%64)&1 == 1 ? -1 : +1)
//		}
//	}
//
// computed as S − 2·Σ_{bit set} (k ≥ 1).
//
//go:noescape
func realBin2x4AVX512(c *float32, ldc int, x *float32, ldx int, w *uint64, ldw, k int)

const (
	panelRows   = 32 // rows of b per interleaved panel set (4 vectors of 8)
	kBlockWords = 64 // words of k per panel block: 32×64 words = 16 KiB on the stack
)

// interleavePanels copies words words from column w0 of b rows j0..j0+jn−1
// into dst in the layout the GEMM microkernels read, lanes rows per vector
// (see bgemm_amd64.s). Lanes for rows ≥ jn keep stale values: their results
// are never stored.
func interleavePanels(dst []uint64, b []uint64, j0, jn, kw, w0, words, lanes int) {
	for l := 0; l < jn; l++ {
		base := (l/lanes)*words*lanes + l%lanes
		row := b[(j0+l)*kw+w0 : (j0+l)*kw+w0+words]
		for w, v := range row {
			dst[base+w*lanes] = v
		}
	}
}

// interleavePanels8 is interleavePanels with 8 lanes, whole panels of 8
// rows moved 8 words at a time by transpose8AVX512 (the scalar copy took
// about an eighth of the 100×2048×2048 GEMM).
func interleavePanels8(dst []uint64, b []uint64, j0, jn, kw, w0, words int) {
	blocks := words / 8
	if blocks > 0 && jn >= 8 {
		transpose8AVX512(&dst[0], words*8, &b[j0*kw+w0], kw, blocks, jn/8)
	}
	for p := 0; p < jn/8 && 8*blocks < words; p++ {
		row0 := (j0 + 8*p) * kw
		for l := 0; l < 8; l++ {
			row := b[row0+l*kw+w0 : row0+l*kw+w0+words]
			for w := 8 * blocks; w < words; w++ {
				dst[(p*words+w)*8+l] = row[w]
			}
		}
	}
	if full := jn / 8 * 8; full < jn { // a last, partial panel
		interleavePanels(dst[full*words:], b, j0+full, jn-full, kw, w0, words, 8)
	}
}

// bgemmAVX512 does the columns in hybrid 34-column blocks and vector
// blocks, as many hybrid ones as make the GEMM fastest (hybridBlocks).
func bgemmAVX512(c []int32, a, b []uint64, m, n, kw, k int) {
	if kw == 0 { // k = 0: every dot product is empty
		clear(c)
		return
	}
	bgemmMixedAVX512(c, a, b, m, n, kw, k, hybridBlocks(n))
}

// bgemmMixedAVX512 is BGemm (kw ≥ 1) with h ≤ n/34 hybrid blocks for
// columns [0, 34h) and vector blocks for the rest.
func bgemmMixedAVX512(c []int32, a, b []uint64, m, n, kw, k, h int) {
	// One buffer for both kinds of panels: Go zeroes it on every call.
	var buf [4*hybridPanelStride + 7]uint64
	panels := alignedPanels(buf[:])
	bgemmHybridAVX512(c, a, b, m, n, kw, k, h, panels)
	bgemmVectorColumnsAVX512(c, a, b, m, n, kw, k, h*hybridCols, panels)
}

// hybridBlocks returns how many hybrid blocks make BGemm with n columns
// fastest, from block costs measured on 100×2048×2048 (in hundredths of
// a 32-column vector block): a 34-column hybrid block 101, a block of 8 or
// fewer columns (bgemmBlock8AVX512) 35. Hybrid blocks pay only when they
// leave fewer vector blocks: 2048 columns take 60 (and an 8-column
// block), 1024 take 28 (and 72 columns: measured 2% faster than 30 and
// 4 columns), 64 columns none (one hybrid block would still leave 30).
func hybridBlocks(n int) int {
	vectorCost := func(cols int) int {
		switch rem := cols % panelRows; {
		case rem == 0:
			return cols / panelRows * 100
		case rem <= 8:
			return cols/panelRows*100 + 35
		default:
			return cols/panelRows*100 + 100
		}
	}
	best, bestCost := 0, vectorCost(n)
	for h := 1; h <= n/hybridCols; h++ {
		if cost := h*101 + vectorCost(n-h*hybridCols); cost < bestCost {
			best, bestCost = h, cost
		}
	}
	return best
}

// bgemmVectorAVX512 does every column in vector blocks.
func bgemmVectorAVX512(c []int32, a, b []uint64, m, n, kw, k int) {
	if kw == 0 {
		clear(c)
		return
	}
	var buf [panelRows*kBlockWords + 7]uint64
	bgemmVectorColumnsAVX512(c, a, b, m, n, kw, k, 0, alignedPanels(buf[:]))
}

// bgemmVectorColumnsAVX512 computes columns start..n−1 of BGemm (kw ≥ 1)
// in blocks of up to 32 columns; panels holds panelRows×kBlockWords words
// and starts on a 64-byte boundary.
func bgemmVectorColumnsAVX512(c []int32, a, b []uint64, m, n, kw, k, start int, panels []uint64) {
	for j0 := start; j0 < n; j0 += panelRows {
		jn := min(panelRows, n-j0)
		jmask := uint32(uint64(1)<<jn - 1)
		for w0 := 0; w0 < kw; w0 += kBlockWords {
			words := min(kBlockWords, kw-w0)
			interleavePanels8(panels, b, j0, jn, kw, w0, words)
			mode := 0
			if w0 > 0 {
				mode |= 1
			}
			if w0+words == kw {
				mode |= 2
			}
			if jn <= 8 {
				bgemmBlock8AVX512(&c[j0], n, &a[w0], kw, &panels[0], words, m, jmask, k, mode)
			} else {
				bgemmBlockAVX512(&c[j0], n, &a[w0], kw, &panels[0], words, m, jmask, k, mode)
			}
		}
	}
}

func bgemmScaledAVX512(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	bgemmScaledWith(bgemmAVX512, c, a, b, m, n, kw, k, scale, shift)
}

func bgemmScaledVectorAVX512(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	bgemmScaledWith(bgemmVectorAVX512, c, a, b, m, n, kw, k, scale, shift)
}

func bgemmScaledWith(bgemm func(c []int32, a, b []uint64, m, n, kw, k int), c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32) {
	// The int32 results are written into c's own memory, then converted
	// in place: same size, and c is hot in cache for the second pass.
	ints := unsafe.Slice((*int32)(unsafe.Pointer(&c[0])), len(c))
	bgemm(ints, a, b, m, n, kw, k)
	scaleColumnsAVX512(&c[0], m, n, &scale[0], &shift[0])
}

// blocks4 calls f(o) for output blocks of 4 covering [0,count): o = 0, 4,
// 8, …, and a last block that overlaps the previous one. With fewer than 4
// outputs it returns false and does nothing.
func blocks4(count int, f func(o int)) bool {
	if count < 4 {
		return false
	}
	for o := 0; o < count; o += 4 {
		f(min(o, count-4))
	}
	return true
}

func binGradInputAVX512(dx []float32, dy []float32, w []uint64, m, n, k int) {
	if n == 0 {
		clear(dx)
		return
	}
	kw := Words(k)
	for wc := 0; wc < kw; wc++ {
		nfl := min(64, k-wc*64)
		row := func(i int, pair int) {
			signedSum4AVX512(&dx[i*k+wc*64], pair*k, nfl, &dy[i*n], 1, pair*n, &w[wc], kw, n)
		}
		if !blocks4(m, func(i int) { row(i, 1) }) {
			for i := 0; i < m; i++ {
				row(i, 0) // four copies of one row
			}
		}
	}
}

func binGradWeightTileAVX512(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	kw := Words(k)
	width := k1 - k0
	for col := k0; col < k1; col += 64 {
		nfl := min(64, k1-col)
		out := func(j int, pair int) {
			signedSum4AVX512(&tile[(j-j0)*width+col-k0], pair*width, nfl, &dy[j], n, pair, &a[col/64], kw, m)
		}
		if !blocks4(j1-j0, func(o int) { out(j0+o, 1) }) {
			for j := j0; j < j1; j++ {
				out(j, 0)
			}
		}
	}
}

func realGradWeightTileAVX512(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int) {
	if m == 0 {
		clear(tile)
		return
	}
	width := k1 - k0
	for col := k0; col < k1; col += 64 {
		nfl := min(64, k1-col)
		out := func(j int, pair int) {
			realGrad4AVX512(&tile[(j-j0)*width+col-k0], pair*width, nfl, &dy[j], n, pair, &x[col], k, m)
		}
		if !blocks4(j1-j0, func(o int) { out(j0+o, 1) }) {
			for j := j0; j < j1; j++ {
				out(j, 0)
			}
		}
	}
}

func realBinGemmAVX512(c []float32, x []float32, w []uint64, m, n, k int) {
	if k == 0 {
		clear(c)
		return
	}
	kw := Words(k)
	var edge [8]float32 // outputs of a 2×4 block when n < 4
	for i := 0; i < m; i += 2 {
		i0, ldx := min(i, m-2), k
		if m < 2 {
			i0, ldx = 0, 0 // both block rows are row 0
		}
		if n < 4 {
			// Rows of w repeat past n−1; the block goes to edge first.
			for j := 0; j < n; j++ {
				realBin2x4AVX512(&edge[0], 4, &x[i0*k], ldx, &w[j*kw], 0, k)
				c[i0*n+j] = edge[0]
				if m >= 2 {
					c[(i0+1)*n+j] = edge[4]
				}
			}
			continue
		}
		for j := 0; j < n; j += 4 {
			j0 := min(j, n-4)
			ldc := n
			if m < 2 {
				ldc = 0
			}
			realBin2x4AVX512(&c[i0*n+j0], ldc, &x[i0*k], ldx, &w[j0*kw], kw, k)
		}
	}
}

// peakStepsHybrid<S> run n iterations of peakStepsAVX512's 16 vector
// steps plus S scalar XOR/POPCNTQ/add steps (64 MACs each), registers
// only, for BenchmarkHybridStepPeak; peakStepsScalar runs 16 scalar steps
// per iteration alone.
func peakStepsHybrid2(n int)
func peakStepsHybrid4(n int)
func peakStepsHybrid6(n int)
func peakStepsHybrid8(n int)
func peakStepsHybrid12(n int)
func peakStepsHybrid16(n int)
func peakStepsScalar(n int)
