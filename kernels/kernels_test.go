package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Guard bands: every output is a window inside a larger slice whose
// surrounding elements hold a sentinel the kernels must never write.
const guard = 13 // odd, so windows start misaligned

const sentinelF = float32(-123456.75)
const sentinelI = int32(-0x5a5a5a5)

func guardedF32(n int) (whole, win []float32) {
	whole = make([]float32, n+2*guard)
	for i := range whole {
		whole[i] = sentinelF
	}
	return whole, whole[guard : guard+n : guard+n]
}

func guardedI32(n int) (whole, win []int32) {
	whole = make([]int32, n+2*guard)
	for i := range whole {
		whole[i] = sentinelI
	}
	return whole, whole[guard : guard+n : guard+n]
}

func checkGuardsF32(t *testing.T, what string, whole []float32) {
	t.Helper()
	n := len(whole) - 2*guard
	for i := 0; i < guard; i++ {
		if whole[i] != sentinelF || whole[guard+n+i] != sentinelF {
			t.Fatalf("%s: guard band overwritten (before[%d]=%v after[%d]=%v)", what, i, whole[i], i, whole[guard+n+i])
		}
	}
}

func checkGuardsI32(t *testing.T, what string, whole []int32) {
	t.Helper()
	n := len(whole) - 2*guard
	for i := 0; i < guard; i++ {
		if whole[i] != sentinelI || whole[guard+n+i] != sentinelI {
			t.Fatalf("%s: guard band overwritten", what)
		}
	}
}

// misalignedU64 returns a copy of s starting at an odd word offset of a
// larger slice, so assembly cannot assume 64-byte alignment.
func misalignedU64(s []uint64, off int) []uint64 {
	buf := make([]uint64, len(s)+off)
	copy(buf[off:], s)
	return buf[off : off+len(s) : off+len(s)]
}

func misalignedF32(s []float32, off int) []float32 {
	buf := make([]float32, len(s)+off)
	copy(buf[off:], s)
	return buf[off : off+len(s) : off+len(s)]
}

func randFloats(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// randBits returns rows packed rows of k random signs, kw ≥ Words(k) words
// each, with every bit after the k valid ones zero.
func randBits(r *rand.Rand, rows, k, kw int) []uint64 {
	s := make([]uint64, rows*kw)
	for i := 0; i < rows; i++ {
		for kk := 0; kk < k; kk++ {
			if r.IntN(2) == 1 {
				s[i*kw+kk/64] |= 1 << (kk % 64)
			}
		}
	}
	return s
}

func bitAt(s []uint64, row, kw, kk int) bool { return s[row*kw+kk/64]>>(kk%64)&1 == 1 }

func pm(bit bool) float64 {
	if bit {
		return -1
	}
	return 1
}

// forEachImpl runs f with every available implementation active.
func forEachImpl(t *testing.T, f func(t *testing.T, name string)) {
	t.Helper()
	prev := Impl()
	defer func() {
		if err := Use(prev); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range Available() {
		if err := Use(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { f(t, name) })
	}
}

// closeTo reports whether got is within the float tolerance of want,
// where absSum is the sum of the absolute values of the terms.
func closeTo(got float32, want, absSum float64) bool {
	return math.Abs(float64(got)-want) <= 1e-5*absSum+1e-30
}

func TestWords(t *testing.T) {
	for k, want := range map[int]int{0: 0, 1: 1, 63: 1, 64: 1, 65: 2, 128: 2, 129: 3} {
		if got := Words(k); got != want {
			t.Errorf("Words(%d) = %d, want %d", k, got, want)
		}
	}
}

func TestPackUnpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for k := 1; k <= 200; k++ {
		rows := 1 + r.IntN(4)
		src := randFloats(r, rows*k)
		kw := Words(k)
		whole := make([]uint64, rows*kw+2*guard)
		for i := range whole {
			whole[i] = 0xdeadbeefcafef00d
		}
		dst := whole[guard : guard+rows*kw]
		for i := range dst {
			dst[i] = ^uint64(0) // padding must be cleared, not kept
		}
		PackSigns(dst, misalignedF32(src, 3), rows, k)
		for i := 0; i < guard; i++ {
			if whole[i] != 0xdeadbeefcafef00d || whole[len(whole)-1-i] != 0xdeadbeefcafef00d {
				t.Fatalf("k=%d: PackSigns wrote outside dst", k)
			}
		}
		for row := 0; row < rows; row++ {
			for kk := 0; kk < kw*64; kk++ {
				got := bitAt(dst, row, kw, kk)
				want := kk < k && src[row*k+kk] < 0
				if got != want {
					t.Fatalf("k=%d row %d bit %d = %v, want %v", k, row, kk, got, want)
				}
			}
		}
		fw, back := guardedF32(rows * k)
		UnpackSigns(back, dst, rows, k)
		checkGuardsF32(t, "UnpackSigns", fw)
		for i, v := range back {
			want := float32(1)
			if src[i] < 0 {
				want = -1
			}
			if v != want {
				t.Fatalf("k=%d: UnpackSigns[%d] = %v, want %v", k, i, v, want)
			}
		}
	}
}

func TestPackSignsSpecialValues(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	nan := float32(math.NaN())
	src := []float32{0, negZero, nan, -nan, float32(math.Inf(-1)), float32(math.Inf(1)), -1e-45, 1e-45}
	want := []bool{false, false, false, false, true, false, true, false}
	dst := make([]uint64, 1)
	PackSigns(dst, src, 1, len(src))
	for i, w := range want {
		if got := bitAt(dst, 0, 1, i); got != w {
			t.Errorf("PackSigns(%v): bit = %v, want %v (bit 1 iff x < 0)", src[i], got, w)
		}
	}
}

// kRange is every K from 1 to 300 (the requirement), plus a few
// multi-word shapes the tests use to exercise the register-blocked paths.
func kRange() []int {
	ks := make([]int, 0, 310)
	for k := 1; k <= 300; k++ {
		ks = append(ks, k)
	}
	// 4100 and 8200 need more than one 64-word k-block in the amd64 GEMM.
	return append(ks, 511, 512, 576, 1024, 1100, 4100, 8200)
}

func TestBGemm(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, k := range kRange() {
			m, n := 1+r.IntN(11), 1+r.IntN(19)
			if k%5 == 0 {
				n = 30 + r.IntN(50) // more than one 32-column panel set
			}
			kw := Words(k) + r.IntN(2) // sometimes rows longer than needed
			a := misalignedU64(randBits(r, m, k, kw), 1+r.IntN(7))
			b := misalignedU64(randBits(r, n, k, kw), 1+r.IntN(7))
			whole, c := guardedI32(m * n)
			BGemm(c, a, b, m, n, kw, k)
			checkGuardsI32(t, fmt.Sprintf("BGemm k=%d", k), whole)
			scale, shift := randFloats(r, n), randFloats(r, n)
			wholeF, cf := guardedF32(m * n)
			BGemmScaled(cf, a, b, m, n, kw, k, scale, shift)
			checkGuardsF32(t, fmt.Sprintf("BGemmScaled k=%d", k), wholeF)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					dot := 0
					for kk := 0; kk < k; kk++ {
						dot += int(pm(bitAt(a, i, kw, kk)) * pm(bitAt(b, j, kw, kk)))
					}
					if c[i*n+j] != int32(dot) {
						t.Fatalf("BGemm m=%d n=%d kw=%d k=%d: c[%d,%d] = %d, want %d", m, n, kw, k, i, j, c[i*n+j], dot)
					}
					// The explicit conversion rounds the product, which
					// forbids fusing it with the add (arm64 would).
					prod := float32(float32(dot) * scale[j])
					if want := prod + shift[j]; cf[i*n+j] != want {
						t.Fatalf("BGemmScaled k=%d: c[%d,%d] = %v, want %v", k, i, j, cf[i*n+j], want)
					}
				}
			}
		}
	})
}

func TestRealBinGemm(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, k := range kRange() {
			m, n := 1+r.IntN(7), 1+r.IntN(13)
			kw := Words(k)
			x := misalignedF32(randFloats(r, m*k), 1+r.IntN(15))
			w := misalignedU64(randBits(r, n, k, kw), 1+r.IntN(7))
			whole, c := guardedF32(m * n)
			RealBinGemm(c, x, w, m, n, k)
			checkGuardsF32(t, fmt.Sprintf("RealBinGemm k=%d", k), whole)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var want, abs float64
					for kk := 0; kk < k; kk++ {
						v := float64(x[i*k+kk])
						want += v * pm(bitAt(w, j, kw, kk))
						abs += math.Abs(v)
					}
					if !closeTo(c[i*n+j], want, abs) {
						t.Fatalf("RealBinGemm m=%d n=%d k=%d: c[%d,%d] = %v, want %v", m, n, k, i, j, c[i*n+j], want)
					}
				}
			}
		}
	})
}

func TestBinGradInput(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, k := range kRange() {
			m, n := 1+r.IntN(5), 1+r.IntN(21)
			kw := Words(k)
			dy := misalignedF32(randFloats(r, m*n), 1+r.IntN(15))
			w := misalignedU64(randBits(r, n, k, kw), 1+r.IntN(7))
			whole, dx := guardedF32(m * k)
			for i := range dx {
				dx[i] = 99 // overwritten, not accumulated into
			}
			BinGradInput(dx, dy, w, m, n, k)
			checkGuardsF32(t, fmt.Sprintf("BinGradInput k=%d", k), whole)
			for i := 0; i < m; i++ {
				for kk := 0; kk < k; kk++ {
					var want, abs float64
					for j := 0; j < n; j++ {
						v := float64(dy[i*n+j])
						want += v * pm(bitAt(w, j, kw, kk))
						abs += math.Abs(v)
					}
					if !closeTo(dx[i*k+kk], want, abs) {
						t.Fatalf("BinGradInput m=%d n=%d k=%d: dx[%d,%d] = %v, want %v", m, n, k, i, kk, dx[i*k+kk], want)
					}
				}
			}
		}
	})
}

// randTile picks a weight-gradient tile: k0 on a word boundary, any k1.
func randTile(r *rand.Rand, n, k int) (j0, j1, k0, k1 int) {
	j0 = r.IntN(n)
	j1 = j0 + 1 + r.IntN(n-j0)
	k0 = 64 * r.IntN(Words(k))
	k1 = k0 + 1 + r.IntN(k-k0)
	if r.IntN(3) == 0 {
		j0, j1, k0, k1 = 0, n, 0, k
	}
	return
}

func TestBinGradWeightTile(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, k := range kRange() {
			m, n := 1+r.IntN(23), 1+r.IntN(9)
			kw := Words(k)
			dy := misalignedF32(randFloats(r, m*n), 1+r.IntN(15))
			a := misalignedU64(randBits(r, m, k, kw), 1+r.IntN(7))
			j0, j1, k0, k1 := randTile(r, n, k)
			width := k1 - k0
			whole, tile := guardedF32((j1 - j0) * width)
			BinGradWeightTile(tile, dy, a, m, n, k, j0, j1, k0, k1)
			checkGuardsF32(t, fmt.Sprintf("BinGradWeightTile k=%d tile [%d,%d)x[%d,%d)", k, j0, j1, k0, k1), whole)
			for j := j0; j < j1; j++ {
				for kk := k0; kk < k1; kk++ {
					var want, abs float64
					for i := 0; i < m; i++ {
						v := float64(dy[i*n+j])
						want += v * pm(bitAt(a, i, kw, kk))
						abs += math.Abs(v)
					}
					if got := tile[(j-j0)*width+kk-k0]; !closeTo(got, want, abs) {
						t.Fatalf("BinGradWeightTile m=%d n=%d k=%d tile [%d,%d)x[%d,%d): g[%d,%d] = %v, want %v",
							m, n, k, j0, j1, k0, k1, j, kk, got, want)
					}
				}
			}
		}
	})
}

func TestRealGradWeightTile(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, k := range kRange() {
			m, n := 1+r.IntN(23), 1+r.IntN(9)
			dy := misalignedF32(randFloats(r, m*n), 1+r.IntN(15))
			x := misalignedF32(randFloats(r, m*k), 1+r.IntN(15))
			j0, j1, k0, k1 := randTile(r, n, k)
			width := k1 - k0
			whole, tile := guardedF32((j1 - j0) * width)
			RealGradWeightTile(tile, dy, x, m, n, k, j0, j1, k0, k1)
			checkGuardsF32(t, fmt.Sprintf("RealGradWeightTile k=%d", k), whole)
			for j := j0; j < j1; j++ {
				for kk := k0; kk < k1; kk++ {
					var want, abs float64
					for i := 0; i < m; i++ {
						p := float64(dy[i*n+j]) * float64(x[i*k+kk])
						want += p
						abs += math.Abs(p)
					}
					if got := tile[(j-j0)*width+kk-k0]; !closeTo(got, want, abs) {
						t.Fatalf("RealGradWeightTile m=%d n=%d k=%d tile [%d,%d)x[%d,%d): g[%d,%d] = %v, want %v",
							m, n, k, j0, j1, k0, k1, j, kk, got, want)
					}
				}
			}
		}
	})
}

// TestLargeShapes compares every implementation with generic on shapes
// big enough to run the full register blocks many times, with row counts
// that leave tails in every blocking dimension.
func TestLargeShapes(t *testing.T) {
	m, n, k := 37, 45, 1000
	if testing.Short() {
		m, n, k = 13, 21, 700
	}
	r := rand.New(rand.NewPCG(13, 14))
	kw := Words(k)
	a, b := randBits(r, m, k, kw), randBits(r, n, k, kw)
	x, dy, dyT := randFloats(r, m*k), randFloats(r, m*n), randFloats(r, m*n)
	run := func() (c []int32, cx, dx, g, gx []float32) {
		c = make([]int32, m*n)
		BGemm(c, a, b, m, n, kw, k)
		cx = make([]float32, m*n)
		RealBinGemm(cx, x, b[:n*kw], m, n, k)
		dx = make([]float32, m*k)
		BinGradInput(dx, dy, b, m, n, k)
		g = make([]float32, n*k)
		BinGradWeightTile(g, dyT, a, m, n, k, 0, n, 0, k)
		gx = make([]float32, n*k)
		RealGradWeightTile(gx, dyT, x, m, n, k, 0, n, 0, k)
		return
	}
	prev := Impl()
	defer func() { _ = Use(prev) }()
	if err := Use("generic"); err != nil {
		t.Fatal(err)
	}
	c0, cx0, dx0, g0, gx0 := run()
	forEachImpl(t, func(t *testing.T, name string) {
		c, cx, dx, g, gx := run()
		if !slices.Equal(c, c0) {
			t.Fatalf("BGemm differs from generic")
		}
		for _, pair := range []struct {
			what      string
			got, want []float32
		}{{"RealBinGemm", cx, cx0}, {"BinGradInput", dx, dx0}, {"BinGradWeightTile", g, g0}, {"RealGradWeightTile", gx, gx0}} {
			// AVX2's ±1 kernels add in the generic order: exact.
			if name == "avx2" && (pair.what == "BinGradInput" || pair.what == "BinGradWeightTile") {
				if !slices.Equal(pair.got, pair.want) {
					t.Fatalf("%s differs from generic; it must match bit for bit", pair.what)
				}
				continue
			}
			for i := range pair.got {
				// Both sides are float32 sums of up to 1000 terms of
				// magnitude ~1 in different orders.
				if d := math.Abs(float64(pair.got[i] - pair.want[i])); d > 1e-5*float64(k+m+n) {
					t.Fatalf("%s[%d] = %v, generic %v", pair.what, i, pair.got[i], pair.want[i])
				}
			}
		}
	})
}

// naiveConv is the 3×3 binary convolution written from its definition on
// ±1 values, with +1 outside the image.
func naiveConv(src []uint64, wts []uint64, batch, h, w, c, cout int) []int32 {
	cw := Words(c)
	out := make([]int32, batch*h*w*cout)
	for b := 0; b < batch; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for o := 0; o < cout; o++ {
					sum := 0
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							p := (dy+1)*3 + dx + 1
							for ch := 0; ch < c; ch++ {
								v := 1.0
								if yy, xx := y+dy, x+dx; yy >= 0 && yy < h && xx >= 0 && xx < w {
									v = pm(bitAt(src, (b*h+yy)*w+xx, cw, ch))
								}
								wv := pm(wts[o*9*cw+p*cw+ch/64]>>(ch%64)&1 == 1)
								sum += int(v * wv)
							}
						}
					}
					out[((b*h+y)*w+x)*cout+o] = int32(sum)
				}
			}
		}
	}
	return out
}

func TestBConv3x3(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(15, 16))
		type shape struct{ batch, h, w, c, cout int }
		shapes := []shape{{1, 1, 1, 64, 3}, {1, 1, 2, 64, 2}, {2, 2, 1, 5, 4}, {1, 3, 3, 128, 33}}
		for _, c := range []int{1, 3, 63, 64, 65, 130} {
			shapes = append(shapes, shape{1 + r.IntN(2), 1 + r.IntN(5), 1 + r.IntN(6), c, 1 + r.IntN(9)})
		}
		for _, s := range shapes {
			batch, h, w, c, cout := s.batch, s.h, s.w, s.c, s.cout
			cw := Words(c)
			src := randBits(r, batch*h*w, c, cw)
			// A weight row is 9 groups of cw words with c valid bits each.
			wts := randBits(r, cout*9, c, cw)
			whole, out := guardedI32(batch * h * w * cout)
			scratch := make([]uint64, BConv3x3ScratchWords(batch, h, w, c))
			BConv3x3(out, misalignedU64(src, 3), misalignedU64(wts, 5), batch, h, w, c, cout, scratch)
			checkGuardsI32(t, "BConv3x3", whole)
			if want := naiveConv(src, wts, batch, h, w, c, cout); !slices.Equal(out, want) {
				t.Fatalf("BConv3x3 %dx%dx%dx%d→%d:\n got %v\nwant %v", batch, h, w, c, cout, out, want)
			}
		}
	})
}

// TestIm2ColFloatAdjoint checks Col2Im3x3Float against the definition of an
// adjoint: <Im2Col(x), y> = <x, Col2Im(y)> for random x and y, and checks
// Im2Col3x3Float's zero padding against the bit version's layout.
func TestIm2ColFloatAdjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, c := range []int{1, 2, 5, 64} {
		batch, h, w := 2, 1+r.IntN(5), 1+r.IntN(5)
		x := randFloats(r, batch*h*w*c)
		cols := make([]float32, batch*h*w*9*c)
		Im2Col3x3Float(cols, x, batch, h, w, c)
		y := randFloats(r, len(cols))
		back := make([]float32, len(x))
		for i := range back {
			back[i] = 7 // overwritten
		}
		Col2Im3x3Float(back, y, batch, h, w, c)
		var lhs, rhs float64
		for i := range cols {
			lhs += float64(cols[i]) * float64(y[i])
		}
		for i := range x {
			rhs += float64(x[i]) * float64(back[i])
		}
		if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
			t.Fatalf("c=%d: <im2col x, y> = %v but <x, col2im y> = %v", c, lhs, rhs)
		}
		// Im2Col of the signs equals the bit im2col unpacked, once the
		// float zero padding is mapped to +1.
		bitsIn := make([]uint64, batch*h*w*Words(c))
		PackSigns(bitsIn, x, batch*h*w, c)
		bitCols := make([]uint64, batch*h*w*9*Words(c))
		Im2Col3x3Bits(bitCols, bitsIn, batch, h, w, c)
		for row := 0; row < batch*h*w; row++ {
			for p := 0; p < 9; p++ {
				for ch := 0; ch < c; ch++ {
					f := cols[row*9*c+p*c+ch]
					bit := bitCols[row*9*Words(c)+p*Words(c)+ch/64]>>(ch%64)&1 == 1
					if bit != (f < 0) {
						t.Fatalf("c=%d row %d neighbour %d channel %d: bit %v, float %v", c, row, p, ch, bit, f)
					}
				}
			}
		}
	}
}

func TestParallelDeterministic(t *testing.T) {
	const n = 1003
	want := make([]int, n)
	Parallel(1, n, 10, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			want[i] = lo*10000 + hi
		}
	})
	for _, threads := range []int{0, 1, 2, 3, 8, 200} {
		for _, grain := range []int{10} {
			got := make([]int, n)
			Parallel(threads, n, grain, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					got[i] = lo*10000 + hi
				}
			})
			if !slices.Equal(got, want) {
				t.Fatalf("threads=%d: chunks differ from the one-thread run", threads)
			}
		}
	}
	calls := 0
	Parallel(4, 0, 5, func(lo, hi int) { calls++ })
	Parallel(4, -3, 5, func(lo, hi int) { calls++ })
	if calls != 0 {
		t.Fatalf("Parallel with n ≤ 0 called fn %d times", calls)
	}
}

// TestParallelKernelsIdentical splits every float kernel across 1..5
// goroutines with Parallel (rows for the products, output-row tiles for the
// weight gradients) and requires results identical to one thread, for each
// implementation.
func TestParallelKernelsIdentical(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(19, 20))
		m, n, k := 50, 40, 300
		kw := Words(k)
		dy, w, x, a := randFloats(r, m*n), randBits(r, n, k, kw), randFloats(r, m*k), randBits(r, m, k, kw)
		run := func(threads int) [][]float32 {
			dx, c, g, gx := make([]float32, m*k), make([]float32, m*n), make([]float32, n*k), make([]float32, n*k)
			Parallel(threads, m, 7, func(lo, hi int) {
				BinGradInput(dx[lo*k:hi*k], dy[lo*n:hi*n], w, hi-lo, n, k)
				RealBinGemm(c[lo*n:hi*n], x[lo*k:hi*k], w, hi-lo, n, k)
			})
			Parallel(threads, n, 6, func(lo, hi int) {
				BinGradWeightTile(g[lo*k:hi*k], dy, a, m, n, k, lo, hi, 0, k)
				RealGradWeightTile(gx[lo*k:hi*k], dy, x, m, n, k, lo, hi, 0, k)
			})
			return [][]float32{dx, c, g, gx}
		}
		one := run(1)
		for _, threads := range []int{2, 3, 5} {
			for i, got := range run(threads) {
				if !slices.Equal(got, one[i]) {
					t.Fatalf("kernel %d on %d threads differs from one thread", i, threads)
				}
			}
		}
	})
}

func TestDispatch(t *testing.T) {
	avail := Available()
	if len(avail) == 0 || avail[0] != "generic" {
		t.Fatalf("Available() = %v, want generic first", avail)
	}
	if got, want := Impl(), avail[len(avail)-1]; got != want && InitError() == nil {
		t.Errorf("Impl() = %q, want the preferred available %q", got, want)
	}
	prev := Impl()
	err := Use("no-such-kernels")
	if err == nil || !strings.Contains(err.Error(), "no-such-kernels") {
		t.Fatalf("Use(unknown) = %v, want an error naming it", err)
	}
	if Impl() != prev {
		t.Fatalf("failed Use changed the implementation to %q", Impl())
	}
	for _, e := range impls.Entries() {
		if !e.Available {
			if err := Use(e.Name); err == nil {
				t.Errorf("Use(%q) succeeded on a CPU that lacks it", e.Name)
			}
		}
	}
}

// TestImplsComplete: every implementation compiled in, available on this
// CPU or not, sets every kernel (there is no fallback for a nil one).
func TestImplsComplete(t *testing.T) {
	for _, e := range impls.Entries() {
		v := reflect.ValueOf(e.Impl)
		for i := range v.NumField() {
			if v.Field(i).IsNil() {
				t.Errorf("implementation %q has no %s", e.Name, v.Type().Field(i).Name)
			}
		}
	}
}

func TestSelectFromEnv(t *testing.T) {
	prev := Impl()
	// Registered before Setenv's own cleanup, so it runs after the
	// variable is back as it was.
	t.Cleanup(func() {
		impls.Select()
		_ = Use(prev)
	})
	t.Setenv(envVar, "generic")
	impls.Select()
	if Impl() != "generic" || InitError() != nil {
		t.Fatalf("BNND_KERNELS=generic: Impl %q, InitError %v", Impl(), InitError())
	}
	t.Setenv(envVar, "vax")
	impls.Select()
	if err := InitError(); err == nil || !strings.Contains(err.Error(), "BNND_KERNELS") || !strings.Contains(err.Error(), "vax") {
		t.Fatalf("BNND_KERNELS=vax: InitError = %v, want an error naming the variable and value", err)
	}
	if avail := Available(); Impl() != avail[len(avail)-1] {
		t.Fatalf("after a bad BNND_KERNELS, Impl = %q, want the preferred %q", Impl(), avail[len(avail)-1])
	}
}

func TestBadArgumentsPanicWithContext(t *testing.T) {
	cases := []struct {
		name, want string
		f          func()
	}{
		{"short c", "BGemm: c has 3", func() { BGemm(make([]int32, 3), make([]uint64, 2), make([]uint64, 2), 2, 2, 1, 64) }},
		{"k too big", "k=65", func() { BGemm(make([]int32, 4), make([]uint64, 2), make([]uint64, 2), 2, 2, 1, 65) }},
		{"tile start", "k0=3", func() {
			BinGradWeightTile(make([]float32, 10), make([]float32, 4), make([]uint64, 4), 2, 2, 100, 0, 1, 3, 10)
		}},
		{"tile rows", "rows [1,3)", func() {
			RealGradWeightTile(make([]float32, 10), make([]float32, 4), make([]float32, 200), 2, 2, 100, 1, 3, 0, 1)
		}},
		{"negative", "negative size", func() { PackSigns(nil, nil, -1, 3) }},
		{"scratch", "scratch", func() {
			BConv3x3(make([]int32, 4), make([]uint64, 4), make([]uint64, 9), 1, 2, 2, 64, 1, nil)
		}},
	}
	for _, tc := range cases {
		func() {
			defer func() {
				r := recover()
				msg := fmt.Sprint(r)
				if r == nil || !strings.Contains(msg, tc.want) || !strings.HasPrefix(msg, "kernels.") {
					t.Errorf("%s: panic %q, want a kernels.* message containing %q", tc.name, msg, tc.want)
				}
			}()
			tc.f()
		}()
	}
}

// TestEmptyDimensions runs every kernel with each size in turn set to zero:
// no panic, no write outside the output, and the empty sums are 0 (or the
// shift, for BGemmScaled).
func TestEmptyDimensions(t *testing.T) {
	forEachImpl(t, func(t *testing.T, name string) {
		const m, n = 3, 5
		for _, k := range []int{0, 70} {
			kw := Words(k)
			a, b := make([]uint64, m*kw), make([]uint64, n*kw)
			wholeI, c := guardedI32(m * n)
			BGemm(c, a, b, m, n, kw, k)
			checkGuardsI32(t, "BGemm", wholeI)
			for _, v := range c {
				if v != int32(k) {
					t.Fatalf("k=%d: BGemm of zero rows = %d, want %d", k, v, k)
				}
			}
			shift := []float32{1, 2, 3, 4, 5}
			wholeF, cf := guardedF32(m * n)
			BGemmScaled(cf, a, b, m, n, kw, k, make([]float32, n), shift)
			checkGuardsF32(t, "BGemmScaled", wholeF)
			if cf[n+2] != 3 {
				t.Fatalf("k=%d: BGemmScaled with scale 0 = %v, want the shift 3", k, cf[n+2])
			}
			RealBinGemm(cf, make([]float32, m*k), b, m, n, k)
			if cf[0] != 0 {
				t.Fatalf("k=%d: RealBinGemm of zeros = %v", k, cf[0])
			}
		}
		// n = 0 inputs to the input gradient: dx is all zero.
		dx := []float32{7, 7, 7, 7}
		BinGradInput(dx, nil, nil, 2, 0, 2)
		if !slices.Equal(dx, []float32{0, 0, 0, 0}) {
			t.Fatalf("BinGradInput with n=0 = %v, want zeros", dx)
		}
		// m = 0 rows in the weight gradients: tiles are all zero.
		tile := []float32{7, 7, 7, 7, 7, 7}
		BinGradWeightTile(tile, nil, nil, 0, 2, 3, 0, 2, 0, 3)
		if !slices.Equal(tile, make([]float32, 6)) {
			t.Fatalf("BinGradWeightTile with m=0 = %v, want zeros", tile)
		}
		tile = []float32{7, 7, 7, 7, 7, 7}
		RealGradWeightTile(tile, nil, nil, 0, 2, 3, 0, 2, 0, 3)
		if !slices.Equal(tile, make([]float32, 6)) {
			t.Fatalf("RealGradWeightTile with m=0 = %v, want zeros", tile)
		}
		// Empty outputs are no-ops.
		BGemm(nil, nil, make([]uint64, 4), 0, 4, 1, 64)
		BinGradWeightTile(nil, make([]float32, 4), make([]uint64, 2), 2, 2, 64, 1, 1, 0, 64)
	})
}

// TestKernelsDoNotAllocate: the kernels run in the training loop's inner
// layers, so none of them may allocate, in any implementation.
func TestKernelsDoNotAllocate(t *testing.T) {
	if raceEnabled {
		// The race detector's instrumentation allocates on its own; the
		// count is checked in the ordinary (and the qemu) test runs.
		return
	}
	forEachImpl(t, func(t *testing.T, name string) {
		r := rand.New(rand.NewPCG(21, 22))
		m, n, k := 9, 37, 333
		kw := Words(k)
		a, b := randBits(r, m, k, kw), randBits(r, n, k, kw)
		x, dy := randFloats(r, m*k), randFloats(r, m*n)
		c, cf := make([]int32, m*n), make([]float32, m*n)
		dx, g := make([]float32, m*k), make([]float32, n*k)
		scale, shift := randFloats(r, n), randFloats(r, n)
		src := randBits(r, 2*5*5, 64, 1)
		wts := randBits(r, 8*9, 64, 1)
		out := make([]int32, 2*5*5*8)
		scratch := make([]uint64, BConv3x3ScratchWords(2, 5, 5, 64))
		packed := make([]uint64, m*kw)
		for _, kc := range []struct {
			name string
			f    func()
		}{
			{"BGemm", func() { BGemm(c, a, b, m, n, kw, k) }},
			{"BGemmScaled", func() { BGemmScaled(cf, a, b, m, n, kw, k, scale, shift) }},
			{"RealBinGemm", func() { RealBinGemm(cf, x, b, m, n, k) }},
			{"BinGradInput", func() { BinGradInput(dx, dy, b, m, n, k) }},
			{"BinGradWeightTile", func() { BinGradWeightTile(g, dy, a, m, n, k, 0, n, 0, k) }},
			{"RealGradWeightTile", func() { RealGradWeightTile(g, dy, x, m, n, k, 0, n, 0, k) }},
			{"BConv3x3", func() { BConv3x3(out, src, wts, 2, 5, 5, 64, 8, scratch) }},
			{"PackSigns", func() { PackSigns(packed, x, m, k) }},
			{"UnpackSigns", func() { UnpackSigns(dx, packed, m, k) }},
		} {
			if allocs := testing.AllocsPerRun(5, kc.f); allocs != 0 {
				t.Errorf("%s allocates %v times per call", kc.name, allocs)
			}
		}
	})
}
