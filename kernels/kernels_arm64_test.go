//go:build !purego

package kernels

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// These tests pin the NEON kernels to the generic ones bit for bit (the
// NEON code adds the same terms in the same order, see backward_arm64.s),
// for every K from 1 to 300, block tails in every dimension, operands that
// start at odd offsets inside larger buffers, and guard bands around every
// output that must come back untouched.

const guardLen = 7 // elements of guard band before and after each output

// guardedInt32 returns an output slice of length n sitting at an odd offset
// inside a larger buffer whose other elements are a sentinel.
func guardedInt32(n int) (buf, out []int32) {
	buf = make([]int32, n+2*guardLen)
	for i := range buf {
		buf[i] = -0x5a5a5a5a
	}
	return buf, buf[guardLen : guardLen+n]
}

func guardedFloat32(n int) (buf, out []float32) {
	buf = make([]float32, n+2*guardLen)
	for i := range buf {
		buf[i] = float32(math.NaN())
	}
	return buf, buf[guardLen : guardLen+n]
}

func checkGuardsInt32(t *testing.T, what string, buf []int32) {
	t.Helper()
	for _, i := range guardIndexes(len(buf)) {
		if buf[i] != -0x5a5a5a5a {
			t.Fatalf("%s: guard element %d of %d overwritten with %d", what, i, len(buf), buf[i])
		}
	}
}

func checkGuardsFloat32(t *testing.T, what string, buf []float32) {
	t.Helper()
	for _, i := range guardIndexes(len(buf)) {
		if !math.IsNaN(float64(buf[i])) {
			t.Fatalf("%s: guard element %d of %d overwritten with %v", what, i, len(buf), buf[i])
		}
	}
}

func guardIndexes(n int) []int {
	var idx []int
	for i := 0; i < guardLen; i++ {
		idx = append(idx, i, n-1-i)
	}
	return idx
}

// randomRows returns rows packed rows of k valid bits (padding zero) at a
// misaligned start (offset words into the slice), with a bit density that
// differs per row so that row mix-ups show.
func randomRows(rng *rand.Rand, rows, k, offset int) []uint64 {
	kw := Words(k)
	buf := make([]uint64, offset+rows*kw)
	out := buf[offset:]
	for r := 0; r < rows; r++ {
		density := rng.Float64()
		for kk := 0; kk < k; kk++ {
			if rng.Float64() < density {
				out[r*kw+kk/64] |= 1 << (kk % 64)
			}
		}
	}
	return out
}

func randomFloats(rng *rand.Rand, n, offset int) []float32 {
	buf := make([]float32, offset+n)
	out := buf[offset:]
	for i := range out {
		out[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-3)))
	}
	return out
}

// withImpl runs f with the named implementation active.
func withImpl(t *testing.T, name string, f func()) {
	t.Helper()
	prev := Impl()
	if err := Use(name); err != nil {
		t.Fatalf("Use(%q): %v", name, err)
	}
	defer func() {
		if err := Use(prev); err != nil {
			t.Fatalf("restoring %q: %v", prev, err)
		}
	}()
	f()
}

func requireNEON(t *testing.T) {
	t.Helper()
	for _, name := range Available() {
		if name == "neon" {
			return
		}
	}
	t.Fatalf("neon is not available on this arm64 CPU (available: %v)", Available())
}

func sameFloats(want, got []float32) (int, bool) {
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			return i, false
		}
	}
	return 0, true
}

// shapes returns (m, n) pairs covering full 4×4 (and 4×8) blocks plus every
// tail of them.
func testShapes(rng *rand.Rand, short bool) [][2]int {
	s := [][2]int{{1, 1}, {4, 4}, {4, 8}, {5, 9}, {3, 7}, {8, 16}, {7, 13}}
	if !short {
		for range 6 {
			s = append(s, [2]int{1 + rng.IntN(12), 1 + rng.IntN(20)})
		}
	}
	return s
}

func TestNEONBGemmMatchesGeneric(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 1; k <= 300; k++ {
		for _, mn := range testShapes(rng, testing.Short() && k%7 != 0) {
			m, n := mn[0], mn[1]
			kw := Words(k) + k%2 // some rows longer than needed
			a := randomRows(rng, m, kw*64, k%3)
			b := randomRows(rng, n, kw*64, 1)
			// Valid bits only in the first k columns.
			for r := 0; r < m; r++ {
				clearPadding(a[r*kw:r*kw+kw], k)
			}
			for r := 0; r < n; r++ {
				clearPadding(b[r*kw:r*kw+kw], k)
			}
			scale := randomFloats(rng, n, 1)
			shift := randomFloats(rng, n, 3)
			want := make([]int32, m*n)
			wantF := make([]float32, m*n)
			withImpl(t, "generic", func() {
				BGemm(want, a, b, m, n, kw, k)
				BGemmScaled(wantF, a, b, m, n, kw, k, scale, shift)
			})
			buf, got := guardedInt32(m * n)
			bufF, gotF := guardedFloat32(m * n)
			withImpl(t, "neon", func() {
				BGemm(got, a, b, m, n, kw, k)
				BGemmScaled(gotF, a, b, m, n, kw, k, scale, shift)
			})
			what := fmt.Sprintf("BGemm m=%d n=%d kw=%d k=%d", m, n, kw, k)
			checkGuardsInt32(t, what, buf)
			checkGuardsFloat32(t, "Scaled "+what, bufF)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: c[%d] = %d, generic %d", what, i, got[i], want[i])
				}
			}
			if i, ok := sameFloats(wantF, gotF); !ok {
				t.Fatalf("Scaled %s: c[%d] = %v, generic %v", what, i, gotF[i], wantF[i])
			}
		}
	}
}

func clearPadding(row []uint64, k int) {
	for kk := k; kk < len(row)*64; kk++ {
		row[kk/64] &^= 1 << (kk % 64)
	}
}

// TestNEONBGemmWideningAccumulation runs the GEMM over depths where only a
// correct UADALP chain gives the right answer: the 16-bit lanes must
// accumulate (not overwrite) across steps, must be widened into 32 bits
// before they overflow (the depth below is 2.5 chunks of 511 steps, more
// than 65535 set bits per pair), and must keep each (row, column) pair in
// its own lane. Each row of a and b has its own density, so every pair's
// popcount differs; the expected values are computed here with math/bits.
func TestNEONBGemmWideningAccumulation(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(3, 4))
	const steps = 511*2 + 300 // 256-bit steps: two full chunks and a partial one
	for _, kw := range []int{4 * steps, 4*steps + 3} {
		k := kw * 64
		const m, n = 5, 6
		a := make([]uint64, m*kw)
		b := make([]uint64, n*kw)
		for r := 0; r < m; r++ {
			for w := 0; w < kw; w++ {
				a[r*kw+w] = ^uint64(0) >> (r * 9) // row r: 64−9r ones per word
			}
		}
		for j := 0; j < n; j++ {
			for w := 0; w < kw; w++ {
				if j == 0 {
					continue // a zero row: popcount(a XOR b) = popcount(a) ≥ 28·kw
				}
				b[j*kw+w] = rng.Uint64() & (^uint64(0) << (j * 7))
			}
		}
		c := make([]int32, m*n)
		withImpl(t, "neon", func() { BGemm(c, a, b, m, n, kw, k) })
		for r := 0; r < m; r++ {
			for j := 0; j < n; j++ {
				p := 0
				for w := 0; w < kw; w++ {
					p += bits.OnesCount64(a[r*kw+w] ^ b[j*kw+w])
				}
				if want := int32(k - 2*p); c[r*n+j] != want {
					t.Fatalf("kw=%d row %d col %d: got %d, want %d (popcount %d)", kw, r, j, c[r*n+j], want, p)
				}
			}
		}
		if p := bits.OnesCount64(a[0]) * kw; p <= 65535 {
			t.Fatalf("test data too sparse to overflow 16-bit lanes: popcount %d", p)
		}
	}
}

func TestNEONRealBinGemmMatchesGeneric(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for k := 1; k <= 300; k++ {
		for _, mn := range testShapes(rng, testing.Short() && k%5 != 0) {
			m, n := mn[0], mn[1]
			x := randomFloats(rng, m*k, k%4)
			w := randomRows(rng, n, k, 1)
			want := make([]float32, m*n)
			withImpl(t, "generic", func() { RealBinGemm(want, x, w, m, n, k) })
			buf, got := guardedFloat32(m * n)
			withImpl(t, "neon", func() { RealBinGemm(got, x, w, m, n, k) })
			what := fmt.Sprintf("RealBinGemm m=%d n=%d k=%d", m, n, k)
			checkGuardsFloat32(t, what, buf)
			if i, ok := sameFloats(want, got); !ok {
				t.Fatalf("%s: c[%d] = %v, generic %v", what, i, got[i], want[i])
			}
		}
	}
}

func TestNEONBinGradInputMatchesGeneric(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for k := 1; k <= 300; k++ {
		for _, mn := range testShapes(rng, testing.Short() && k%5 != 0) {
			m, n := mn[0], mn[1]
			dy := randomFloats(rng, m*n, k%3)
			w := randomRows(rng, n, k, 2)
			want := make([]float32, m*k)
			withImpl(t, "generic", func() { BinGradInput(want, dy, w, m, n, k) })
			buf, got := guardedFloat32(m * k)
			withImpl(t, "neon", func() { BinGradInput(got, dy, w, m, n, k) })
			what := fmt.Sprintf("BinGradInput m=%d n=%d k=%d", m, n, k)
			checkGuardsFloat32(t, what, buf)
			if i, ok := sameFloats(want, got); !ok {
				t.Fatalf("%s: dx[%d] = %v, generic %v", what, i, got[i], want[i])
			}
		}
	}
}

// tiles returns weight-gradient tiles [j0,j1)×[k0,k1) for n rows and k
// columns: the whole matrix, and tiles starting on inner words with odd ends.
func tiles(rng *rand.Rand, n, k int) [][4]int {
	t := [][4]int{{0, n, 0, k}}
	for range 2 {
		j0 := rng.IntN(n)
		j1 := j0 + 1 + rng.IntN(n-j0)
		k0 := 64 * rng.IntN(Words(k))
		k1 := k0 + 1 + rng.IntN(k-k0)
		t = append(t, [4]int{j0, j1, k0, k1})
	}
	return t
}

func TestNEONWeightTilesMatchGeneric(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for k := 1; k <= 300; k++ {
		for _, mn := range testShapes(rng, testing.Short() && k%5 != 0) {
			m, n := mn[0], mn[1]
			dy := randomFloats(rng, m*n, 1)
			a := randomRows(rng, m, k, k%2)
			x := randomFloats(rng, m*k, 3)
			for _, tl := range tiles(rng, n, k) {
				j0, j1, k0, k1 := tl[0], tl[1], tl[2], tl[3]
				size := (j1 - j0) * (k1 - k0)
				want := make([]float32, size)
				wantR := make([]float32, size)
				withImpl(t, "generic", func() {
					BinGradWeightTile(want, dy, a, m, n, k, j0, j1, k0, k1)
					RealGradWeightTile(wantR, dy, x, m, n, k, j0, j1, k0, k1)
				})
				buf, got := guardedFloat32(size)
				bufR, gotR := guardedFloat32(size)
				withImpl(t, "neon", func() {
					BinGradWeightTile(got, dy, a, m, n, k, j0, j1, k0, k1)
					RealGradWeightTile(gotR, dy, x, m, n, k, j0, j1, k0, k1)
				})
				what := fmt.Sprintf("m=%d n=%d k=%d tile [%d,%d)×[%d,%d)", m, n, k, j0, j1, k0, k1)
				checkGuardsFloat32(t, "BinGradWeightTile "+what, buf)
				checkGuardsFloat32(t, "RealGradWeightTile "+what, bufR)
				if i, ok := sameFloats(want, got); !ok {
					t.Fatalf("BinGradWeightTile %s: tile[%d] = %v, generic %v", what, i, got[i], want[i])
				}
				checkRealGradTile(t, what, gotR, wantR, dy, x, m, n, k, j0, k0, k1-k0)
			}
		}
	}
}

// checkRealGradTile compares within 1e-5·Σ|term| (the package's stated
// float tolerance): the NEON kernel uses fused multiply-adds in the generic
// order, which is bit-identical to the generic code as long as the Go
// compiler fuses `row[kk] += v * xv` on arm64, as it does today.
func checkRealGradTile(t *testing.T, what string, got, want, dy, x []float32, m, n, k, j0, k0, width int) {
	t.Helper()
	for idx := range want {
		j, kk := j0+idx/width, k0+idx%width
		var abs float64
		for i := 0; i < m; i++ {
			abs += math.Abs(float64(dy[i*n+j]) * float64(x[i*k+kk]))
		}
		if d := math.Abs(float64(got[idx]) - float64(want[idx])); d > 1e-5*abs {
			t.Fatalf("RealGradWeightTile %s: tile[%d] = %v, generic %v (|diff| %g > 1e-5·%g)", what, idx, got[idx], want[idx], d, abs)
		}
	}
}

// TestNEONSignedSumRowAliasing checks the partial-row path directly: with
// zero strides all four assembly rows compute the same row into the same
// place, which must equal a lone scalar computation.
func TestNEONSignedSumRowAliasing(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const count, chunks = 5, 3
	v := randomFloats(rng, count, 1)
	bitsRows := randomRows(rng, count, chunks*16, 1)
	buf, out := guardedFloat32(chunks * 16)
	signedSum4x16NEON(&out[0], 0, &v[0], 0, 1, &bitsRows[0], Words(chunks*16), count, chunks, false)
	checkGuardsFloat32(t, "signedSum4x16NEON aliased rows", buf)
	for col := range out {
		want := signedColumn(v, 1, bitsRows, Words(chunks*16), count, col)
		if math.Float32bits(out[col]) != math.Float32bits(want) {
			t.Fatalf("column %d: got %v, want %v", col, out[col], want)
		}
	}
}

// BenchmarkNEONBGemm compares the implementations side by side (under
// qemu-aarch64 the ratio says nothing about hardware; see bgemm_arm64.s for
// the instruction counts).
func BenchmarkNEONBGemm(b *testing.B) {
	const m, n, k = 64, 256, 1024
	kw := Words(k)
	rng := rand.New(rand.NewPCG(1, 1))
	a := randomRows(rng, m, k, 0)
	w := randomRows(rng, n, k, 0)
	c := make([]int32, m*n)
	prev := Impl()
	defer Use(prev)
	for _, impl := range []string{"generic", "neon"} {
		b.Run(fmt.Sprintf("%s/%dx%dx%d", impl, m, n, k), func(b *testing.B) {
			if err := Use(impl); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(m * n * k / 8))
			for b.Loop() {
				BGemm(c, a, w, m, n, kw, k)
			}
		})
	}
}

// TestNEONWordEncodings re-derives every hand-encoded instruction in the
// arm64 assembly from the mnemonic in its comment, with the field layouts of
// the Arm ARM, so a WORD whose comment lies fails here even where binutils
// is missing (scripts/check_arm64_words.sh checks the same words against
// binutils). Every WORD must carry its mnemonic.
func TestNEONWordEncodings(t *testing.T) {
	files, err := filepath.Glob("*_arm64.s")
	if err != nil || len(files) == 0 {
		t.Fatalf("no arm64 assembly found: %v", err)
	}
	wordRE := regexp.MustCompile(`WORD\s+\$0x([0-9a-fA-F]{8})\s*(?://\s*(.*?)|/\*\s*(.*?)\s*\*/)\s*\\?$`)
	anyWord := regexp.MustCompile(`\bWORD\s+\$`)
	checked := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(src), "\n") {
			if !anyWord.MatchString(line) {
				continue
			}
			m := wordRE.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("%s:%d: WORD without a mnemonic comment: %s", f, n+1, line)
				continue
			}
			word, _ := strconv.ParseUint(m[1], 16, 32)
			mnemonic := strings.TrimSpace(m[2] + m[3])
			want, err := encodeARM64(mnemonic)
			if err != nil {
				t.Errorf("%s:%d: %v", f, n+1, err)
				continue
			}
			if uint32(word) != want {
				t.Errorf("%s:%d: WORD $0x%08x but %q encodes as 0x%08x", f, n+1, word, mnemonic, want)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no WORD lines found")
	}
}

// encodeARM64 encodes the few vector instructions the assembly writes as
// WORD: uadalp (.8h ← .16b, .4s ← .8h), and 4s-arranged scvtf, fadd, fmul.
func encodeARM64(mnemonic string) (uint32, error) {
	op, args, _ := strings.Cut(mnemonic, " ")
	var regs []uint32
	var arrs []string
	for _, a := range strings.Split(args, ",") {
		r, arr, ok := strings.Cut(strings.TrimSpace(a), ".")
		n, err := strconv.Atoi(strings.TrimPrefix(r, "v"))
		if !ok || !strings.HasPrefix(r, "v") || err != nil || n < 0 || n > 31 {
			return 0, fmt.Errorf("cannot parse operand %q of %q", a, mnemonic)
		}
		regs = append(regs, uint32(n))
		arrs = append(arrs, arr)
	}
	shape := op + " " + strings.Join(arrs, ",")
	switch shape {
	case "uadalp 8h,16b": // 0 Q=1 1 01110 size=00 10000 00110 10 Rn Rd
		return 0x6e206800 | regs[1]<<5 | regs[0], nil
	case "uadalp 4s,8h": // size=01
		return 0x6e606800 | regs[1]<<5 | regs[0], nil
	case "scvtf 4s,4s": // 0 Q=1 0 01110 0 sz=0 10000 11101 10 Rn Rd
		return 0x4e21d800 | regs[1]<<5 | regs[0], nil
	case "fadd 4s,4s,4s": // 0 Q=1 0 01110 0 sz=0 1 Rm 11010 1 Rn Rd
		return 0x4e20d400 | regs[2]<<16 | regs[1]<<5 | regs[0], nil
	case "fmul 4s,4s,4s": // 0 Q=1 1 01110 0 sz=0 1 Rm 11011 1 Rn Rd
		return 0x6e20dc00 | regs[2]<<16 | regs[1]<<5 | regs[0], nil
	}
	return 0, fmt.Errorf("no encoder for %q (shape %q)", mnemonic, shape)
}

// TestNEONEmptySums covers sums with no terms (k = 0 columns, n = 0 outputs
// feeding dx, m = 0 batch rows feeding a tile): the outputs must be
// overwritten with +0 exactly as the generic code does, not left alone.
func TestNEONEmptySums(t *testing.T) {
	requireNEON(t)
	cases := []struct {
		name string
		run  func(out []float32)
		size int
	}{
		{"RealBinGemm k=0", func(out []float32) { RealBinGemm(out, nil, nil, 3, 5, 0) }, 15},
		{"BinGradInput n=0", func(out []float32) { BinGradInput(out, nil, nil, 3, 0, 70) }, 210},
		{"BinGradWeightTile m=0", func(out []float32) {
			BinGradWeightTile(out, nil, nil, 0, 6, 70, 1, 6, 64, 70)
		}, 30},
		{"RealGradWeightTile m=0", func(out []float32) {
			RealGradWeightTile(out, nil, nil, 0, 6, 70, 0, 5, 0, 20)
		}, 100},
		{"BGemm k=0", func(out []float32) {
			c := make([]int32, 6)
			for i := range c {
				c[i] = 99
			}
			a, b := make([]uint64, 2), make([]uint64, 3)
			BGemm(c, a, b, 2, 3, 1, 0)
			for i, v := range c {
				out[i] = float32(v)
			}
		}, 6},
	}
	for _, tc := range cases {
		for _, impl := range []string{"generic", "neon"} {
			buf, out := guardedFloat32(tc.size)
			withImpl(t, impl, func() { tc.run(out) })
			checkGuardsFloat32(t, tc.name, buf)
			for i, v := range out {
				if math.Float32bits(v) != 0 {
					t.Fatalf("%s on %s: out[%d] = %v, want +0", tc.name, impl, i, v)
				}
			}
		}
	}
}

// TestNEONManyTerms runs the ±1 sums over more terms than one assembly
// call takes (signedTermBlock), so later blocks must continue the sums
// left in the output, in order, to stay bit-identical to generic.
func TestNEONManyTerms(t *testing.T) {
	requireNEON(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, terms := range []int{signedTermBlock - 1, signedTermBlock, signedTermBlock + 1, 2*signedTermBlock + 37} {
		for _, k := range []int{16, 70, 200} {
			// BinGradInput: the terms are the n outputs.
			m, n := 6, terms
			dy := randomFloats(rng, m*n, 1)
			w := randomRows(rng, n, k, 1)
			want := make([]float32, m*k)
			withImpl(t, "generic", func() { BinGradInput(want, dy, w, m, n, k) })
			buf, got := guardedFloat32(m * k)
			withImpl(t, "neon", func() { BinGradInput(got, dy, w, m, n, k) })
			what := fmt.Sprintf("BinGradInput m=%d n=%d k=%d", m, n, k)
			checkGuardsFloat32(t, what, buf)
			if i, ok := sameFloats(want, got); !ok {
				t.Fatalf("%s: dx[%d] = %v, generic %v", what, i, got[i], want[i])
			}
			// BinGradWeightTile: the terms are the m batch rows.
			m, n = terms, 7
			dy = randomFloats(rng, m*n, 2)
			a := randomRows(rng, m, k, 1)
			want = make([]float32, n*k)
			withImpl(t, "generic", func() { BinGradWeightTile(want, dy, a, m, n, k, 0, n, 0, k) })
			buf, got = guardedFloat32(n * k)
			withImpl(t, "neon", func() { BinGradWeightTile(got, dy, a, m, n, k, 0, n, 0, k) })
			what = fmt.Sprintf("BinGradWeightTile m=%d n=%d k=%d", m, n, k)
			checkGuardsFloat32(t, what, buf)
			if i, ok := sameFloats(want, got); !ok {
				t.Fatalf("%s: tile[%d] = %v, generic %v", what, i, got[i], want[i])
			}
		}
	}
}
