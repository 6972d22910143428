package kernels

import "fmt"

// RealBinGemm is the first layer's forward product: real inputs times ±1
// packed weights, with adds and subtracts only. x is m×k floats (row-major),
// w holds n packed rows of Words(k) words. It writes
//
//	c[i*n+j] = Σ_kk x[i*k+kk]·(w_j bit kk ? −1 : +1)
func RealBinGemm(c []float32, x []float32, w []uint64, m, n, k int) {
	checkDims("RealBinGemm", m, n, k)
	kw := Words(k)
	checkLen("RealBinGemm", "c", len(c), m*n)
	checkLen("RealBinGemm", "x", len(x), m*k)
	checkLen("RealBinGemm", "w", len(w), n*kw)
	if m == 0 || n == 0 {
		return
	}
	impls.Active.Impl.realBinGemm(c[:m*n], x[:m*k], w[:n*kw], m, n, k)
}

// BinGradInput is the input gradient through binary weights: dy is m×n,
// w holds n packed rows of Words(k) words, and dx (m×k) is overwritten with
//
//	dx[i*k+kk] = Σ_j dy[i*n+j]·(w_j bit kk ? −1 : +1)
func BinGradInput(dx []float32, dy []float32, w []uint64, m, n, k int) {
	checkDims("BinGradInput", m, n, k)
	kw := Words(k)
	checkLen("BinGradInput", "dx", len(dx), m*k)
	checkLen("BinGradInput", "dy", len(dy), m*n)
	checkLen("BinGradInput", "w", len(w), n*kw)
	if m == 0 || k == 0 {
		return
	}
	impls.Active.Impl.binGradInput(dx[:m*k], dy[:m*n], w[:n*kw], m, n, k)
}

// checkTile validates the tile bounds shared by the weight-gradient kernels.
func checkTile(kernel string, tileLen, m, n, k, j0, j1, k0, k1 int) {
	checkDims(kernel, m, n, k)
	if j0 < 0 || j0 > j1 || j1 > n {
		panic(fmt.Sprintf("kernels.%s: output rows [%d,%d) outside [0,%d)", kernel, j0, j1, n))
	}
	if k0 < 0 || k0 > k1 || k1 > k {
		panic(fmt.Sprintf("kernels.%s: columns [%d,%d) outside [0,%d)", kernel, k0, k1, k))
	}
	if k0%64 != 0 {
		panic(fmt.Sprintf("kernels.%s: tile start column k0=%d is not a multiple of 64", kernel, k0))
	}
	checkLen(kernel, "tile", tileLen, (j1-j0)*(k1-k0))
}

// BinGradWeightTile computes one tile of the weight gradient g = dyᵀ·a over
// binary activations: dy is m×n, a holds m packed rows of Words(k) words,
// and for j in [j0,j1), kk in [k0,k1) it overwrites
//
//	tile[(j−j0)*(k1−k0) + (kk−k0)] = Σ_i dy[i*n+j]·(a_i bit kk ? −1 : +1)
//
// k0 must be a multiple of 64 (tiles start on a word); k1 may be any
// column up to k. Producing the gradient a tile at a time lets the Bop step
// fold each tile into the momenta without a full gradient tensor.
func BinGradWeightTile(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int) {
	checkTile("BinGradWeightTile", len(tile), m, n, k, j0, j1, k0, k1)
	kw := Words(k)
	checkLen("BinGradWeightTile", "dy", len(dy), m*n)
	checkLen("BinGradWeightTile", "a", len(a), m*kw)
	if j0 == j1 || k0 == k1 {
		return
	}
	impls.Active.Impl.binGradWeightTile(tile[:(j1-j0)*(k1-k0)], dy[:m*n], a[:m*kw], m, n, k, j0, j1, k0, k1)
}

// RealGradWeightTile is BinGradWeightTile for real inputs x (m×k floats),
// the first layer's weight gradient g = dyᵀ·x: it overwrites
//
//	tile[(j−j0)*(k1−k0) + (kk−k0)] = Σ_i dy[i*n+j]·x[i*k+kk]
func RealGradWeightTile(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int) {
	checkTile("RealGradWeightTile", len(tile), m, n, k, j0, j1, k0, k1)
	checkLen("RealGradWeightTile", "dy", len(dy), m*n)
	checkLen("RealGradWeightTile", "x", len(x), m*k)
	if j0 == j1 || k0 == k1 {
		return
	}
	impls.Active.Impl.realGradWeightTile(tile[:(j1-j0)*(k1-k0)], dy[:m*n], x[:m*k], m, n, k, j0, j1, k0, k1)
}

// The generic float kernels below add the signed terms one at a time, in
// index order. That order is a contract: the NEON and AVX2 ±1 kernels add
// in the same order and their tests require equality bit for bit, so a
// change here must be made there too.

// signed returns v with its sign flipped when bit is 1: v·(bit ? −1 : +1)
// without a branch or a multiply.
func signed(v float32, bit uint64) float32 {
	return f32frombits(f32bits(v) ^ uint32(bit&1)<<31)
}

func realBinGemmGeneric(c []float32, x []float32, w []uint64, m, n, k int) {
	kw := Words(k)
	for i := 0; i < m; i++ {
		xi := x[i*k : i*k+k]
		for j := 0; j < n; j++ {
			wj := w[j*kw : j*kw+kw]
			var s float32
			for kk, v := range xi {
				s += signed(v, wj[kk>>6]>>(kk&63))
			}
			c[i*n+j] = s
		}
	}
}

// addSigned adds v·(bits bit kk ? −1 : +1) to out[kk] for every kk.
func addSigned(out []float32, v float32, bits []uint64) {
	vb := f32bits(v)
	for w := 0; w*64 < len(out); w++ {
		word := bits[w]
		seg := out[w*64 : min(w*64+64, len(out))]
		for b := range seg {
			seg[b] += f32frombits(vb ^ uint32(word>>b&1)<<31)
		}
	}
}

func binGradInputGeneric(dx []float32, dy []float32, w []uint64, m, n, k int) {
	kw := Words(k)
	for i := 0; i < m; i++ {
		dxi := dx[i*k : i*k+k]
		clear(dxi)
		for j := 0; j < n; j++ {
			addSigned(dxi, dy[i*n+j], w[j*kw:j*kw+kw])
		}
	}
}

func binGradWeightTileGeneric(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int) {
	kw := Words(k)
	width := k1 - k0
	clear(tile)
	for j := j0; j < j1; j++ {
		row := tile[(j-j0)*width : (j-j0)*width+width]
		for i := 0; i < m; i++ {
			addSigned(row, dy[i*n+j], a[i*kw+k0/64:i*kw+kw])
		}
	}
}

func realGradWeightTileGeneric(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int) {
	width := k1 - k0
	clear(tile)
	for j := j0; j < j1; j++ {
		row := tile[(j-j0)*width : (j-j0)*width+width]
		for i := 0; i < m; i++ {
			v := dy[i*n+j]
			xs := x[i*k+k0 : i*k+k1]
			for kk, xv := range xs {
				row[kk] += v * xv
			}
		}
	}
}
