package fp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestStepKernelLayout pins the field offsets the assembly reads.
func TestStepKernelLayout(t *testing.T) {
	var k stepKernel
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"lo", unsafe.Offsetof(k.lo), 0}, {"span", unsafe.Offsetof(k.span), 4},
		{"subSpan", unsafe.Offsetof(k.subSpan), 8}, {"subBase", unsafe.Offsetof(k.subBase), 12},
		{"shift", unsafe.Offsetof(k.shift), 16}, {"off", unsafe.Offsetof(k.off), 20},
		{"flip", unsafe.Offsetof(k.flip), 28}, {"maxMag", unsafe.Offsetof(k.maxMag), 36},
		{"ovf", unsafe.Offsetof(k.ovf), 40}, {"signShift", unsafe.Offsetof(k.signShift), 44},
		{"magMask", unsafe.Offsetof(k.magMask), 48}, {"maxBits", unsafe.Offsetof(k.maxBits), 52},
		{"gamma", unsafe.Offsetof(k.gamma), 56}, {"mode", unsafe.Offsetof(k.mode), 60},
		{"key", unsafe.Offsetof(k.key), 64}, {"flipT", unsafe.Offsetof(k.flipT), 68},
		{"flipHi", unsafe.Offsetof(k.flipHi), 72}, {"changed", unsafe.Offsetof(k.changed), 80},
		{"lost", unsafe.Offsetof(k.lost), 88}, {"underflow", unsafe.Offsetof(k.underflow), 96},
		{"saturated", unsafe.Offsetof(k.saturated), 104}, {"flips", unsafe.Offsetof(k.flips), 112},
	} {
		if c.got != c.want {
			t.Errorf("stepKernel.%s at offset %d, the assembly reads %d", c.name, c.got, c.want)
		}
	}
}

// kernelFormats is every E/M split of each width 2..16 with the lowest,
// the highest and two middle biases, in each rounding mode, plus fp16/bf16.
func kernelFormats() []Format {
	var fs []Format
	for w := 2; w <= 16; w++ {
		for e := 1; e <= min(8, w-1); e++ {
			m := w - 1 - e
			lo, hi := BiasRange(e, m, false)
			biases := []int{lo, hi, DefaultBias(e), max(lo, min(hi, 24))}
			slices.Sort(biases)
			for _, b := range slices.Compact(biases) {
				for _, r := range []Rounding{NearestEven, Stochastic, TowardZero} {
					if f := (Format{Exp: e, Mant: m, Bias: b, Rounding: r}); f.Validate() == nil {
						fs = append(fs, f)
					}
				}
			}
		}
	}
	for _, n := range []string{"fp16", "fp16s", "bf16", "bf16s", "bf16z"} {
		fs = append(fs, MustParseFormat(n))
	}
	return fs
}

// stepInputs fills codes, ms and g with a mixture that reaches every path:
// random codes (zeros, subnormals, the largest), gradients near the
// momenta, far above MaxValue, tiny, exactly m, zero, and rarely float32
// subnormals, Inf and NaN (which send the block to the scalar encoder).
func stepInputs(r *rand.Rand, f Format, codes []uint32, ms, g []float32, special bool) {
	maxV := f.MaxValue()
	for i := range codes {
		var c uint32
		switch r.IntN(6) {
		case 0:
			c = 0
		case 1:
			c = uint32(r.IntN(1 << f.Mant)) // subnormal
		default:
			c = r.Uint32() & (1<<f.Bits() - 1)
		}
		if f.IEEE && (c>>f.Mant)&(1<<f.Exp-1) == 1<<f.Exp-1 {
			c &^= 1 << (f.Mant + f.Exp - 1) // no Inf/NaN momenta
		}
		codes[i] = c
		ms[i] = f.Decode(c)
		m := float64(ms[i])
		var x float64
		switch r.IntN(10) {
		case 0:
			x = m
		case 1:
			x = 0
		case 2:
			x = (r.Float64()*2 - 1) * maxV * 4
		case 3:
			x = (r.Float64()*2 - 1) * f.MinSubnormal() * math.Ldexp(1, -r.IntN(50))
		case 4:
			x = -m
		default:
			x = m + (r.Float64()*2-1)*math.Ldexp(math.Abs(m)+f.MinNormal(), r.IntN(12)-2)
		}
		if !special && math.Abs(x) < 0x1p-120 {
			x = 0 // float32 subnormals only in special blocks
		}
		g[i] = float32(min(max(x, -3e38), 3e38))
		if special && r.IntN(200) == 0 {
			g[i] = []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(uint32(r.IntN(1 << 23))), 3e38}[r.IntN(5)]
		}
	}
}

var stepGammas = []float32{1, 0.5, 0.01, 1e-3}

// TestStepKernelsMatchGeneric runs every compiled kernel on random blocks
// of every format and compares its codes, counters, flips and verdict with
// stepBlockGeneric, and stepBlockGeneric with the full Go loop where it
// accepts a block.
func TestStepKernelsMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var kinds []stepImplEntry
	for _, e := range stepImpls.Entries() {
		if e.Available && e.Impl.kind != stepGenericKind {
			kinds = append(kinds, e)
		}
	}
	accepted, declined := 0, 0
	for _, f := range kernelFormats() {
		v := NewVector(f, 64)
		iters := 12
		if testing.Short() {
			iters = 3
		}
		for it := range iters {
			var in [stepBlock]uint32
			var ms, g [stepBlock]float32
			stepInputs(r, f, in[:], ms[:], g[:], it%3 == 0)
			rng := NewRand(uint64(it), 9)
			s := newStepper(&v.c, f.Rounding, &rng, stepGammas[it%len(stepGammas)])
			s.setFlip(v, []float32{0, float32(f.MinSubnormal()), float32(f.MaxValue() / 3)}[it%3])
			row0 := r.Uint64()
			x0 := s.k.key + uint32(it*64)*stepGolden

			want := s.k
			var wantOut [stepBlock]uint32
			wantRow := row0
			ok := stepBlockGeneric(&want, &in, &ms, &g, &wantOut, &wantRow, x0)
			if ok {
				accepted++
				// The Go loop agrees where the kernel contract applies.
				ref := s
				codes := in
				ref.block(codes[:], ms[:], g[:], it*64)
				refRow := row0
				fl := ref.flipWord(codes[:], refRow)
				if codes != wantOut || ref.counts() != (StepCounts{Changed: want.changed, Lost: want.lost, Underflow: want.underflow, Saturated: want.saturated}) ||
					refRow^fl != wantRow || int64(popcount(fl)) != want.flips {
					t.Fatalf("%v it %d: stepBlockGeneric differs from stepper.block\nkernel %x\nblock  %x", f, it, wantOut, codes)
				}
			} else {
				declined++
			}
			for _, e := range kinds {
				if e.Impl.words {
					checkWordsKernel(t, e, v, s.k, in, g, row0, x0, ok, wantOut, want, wantRow)
				}
				// And the block kernel (the last blocks of a vector for
				// words kernels that read past the block).
				got := s.k
				var out [stepBlock]uint32
				gotRow := row0
				inCopy, msCopy, gCopy := in, ms, g
				gotOK := stepBlockArch(e.Impl.kind, &got, &inCopy, &msCopy, &gCopy, &out, &gotRow, x0)
				if inCopy != in || !sameSlice(msCopy[:], ms[:]) || !sameSlice(gCopy[:], g[:]) {
					t.Fatalf("%s %v: kernel wrote its inputs", e.Name, f)
				}
				if gotOK != ok {
					t.Fatalf("%s %v it %d: accepted %v, generic %v", e.Name, f, it, gotOK, ok)
				}
				if !ok {
					if got != s.k || gotRow != row0 {
						t.Fatalf("%s %v it %d: declined block changed counters or weights", e.Name, f, it)
					}
					continue
				}
				if out != wantOut {
					for i := range out {
						if out[i] != wantOut[i] {
							t.Fatalf("%s %v it %d lane %d: code %#x, generic %#x (m %g g %g)", e.Name, f, it, i, out[i], wantOut[i], ms[i], g[i])
						}
					}
				}
				if got != want || gotRow != wantRow {
					t.Fatalf("%s %v it %d: counters %+v row %#x, generic %+v row %#x", e.Name, f, it, got, gotRow, want, wantRow)
				}
			}
		}
	}
	t.Logf("%d blocks accepted, %d declined", accepted, declined)
	if declined < 100 || accepted < 1000 {
		t.Errorf("%d accepted, %d declined: the inputs do not exercise both", accepted, declined)
	}
}

func sameSlice(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func popcount(x uint64) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// stepCase is one Step or StepFlip call with guard bands: the vector has
// codes before and after the range, g and mOut are windows of larger
// buffers, and the weight row has words before and after its bits.
type stepCase struct {
	f             Format
	n, start, len int
	col0          int
	flip          bool
	gamma, tau    float32
	seed          uint64
}

type stepResult struct {
	words  []uint64
	mOut   []float32 // with guards
	row    []uint64  // with guards
	counts StepCounts
	flips  int64
}

const guard = 5

func (c stepCase) run(t *testing.T) stepResult {
	r := rand.New(rand.NewPCG(c.seed, uint64(c.f.Bits())))
	v := NewVector(c.f, c.n)
	codes := make([]uint32, c.n)
	ms := make([]float32, c.n)
	gAll := make([]float32, c.n+2*guard)
	stepInputs(r, c.f, codes, ms, gAll[guard:guard+c.n], c.seed%4 == 0)
	for i, code := range codes {
		v.Set(i, code)
	}
	g := gAll[guard+c.start : guard+c.start+c.len]
	canary := float32(math.Float32frombits(0x7fc0dead))
	mOut := make([]float32, c.len+2*guard)
	for i := range mOut {
		mOut[i] = canary
	}
	rowAll := make([]uint64, (c.col0+c.len+63)/64+2)
	for i := range rowAll {
		rowAll[i] = r.Uint64()
	}
	rowBefore := slices.Clone(rowAll)
	wordsBefore := slices.Clone(v.Words())
	gBefore := slices.Clone(gAll)
	rng := NewRand(c.seed, 3)
	var res stepResult
	if c.flip {
		res.counts, res.flips = v.StepFlip(c.start, g, c.gamma, &rng, rowAll[1:len(rowAll)-1], c.col0, c.tau)
	} else {
		res.counts = v.Step(c.start, g, c.gamma, &rng, mOut[guard:guard+c.len])
	}
	// Guards: nothing outside the range changed.
	for i := range c.n {
		if (i < c.start || i >= c.start+c.len) && v.Get(i) != codes[i] {
			t.Fatalf("%+v: code %d outside the range changed", c, i)
		}
	}
	if !sameSlice(gAll, gBefore) {
		t.Fatalf("%+v: gradients written", c)
	}
	for i := range guard {
		if math.Float32bits(mOut[i]) != 0x7fc0dead || math.Float32bits(mOut[len(mOut)-1-i]) != 0x7fc0dead {
			t.Fatalf("%+v: mOut guard overwritten", c)
		}
	}
	if rowAll[0] != rowBefore[0] || rowAll[len(rowAll)-1] != rowBefore[len(rowAll)-1] {
		t.Fatalf("%+v: row guard words changed", c)
	}
	if !c.flip && !slices.Equal(rowAll, rowBefore) {
		t.Fatalf("%+v: Step changed the row", c)
	}
	if c.flip { // bits of the row outside [col0, col0+len) keep their values
		for b := 0; b < 64*(len(rowAll)-2); b++ {
			if b >= c.col0 && b < c.col0+c.len {
				continue
			}
			if (rowAll[1+b/64]^rowBefore[1+b/64])>>(b%64)&1 != 0 {
				t.Fatalf("%+v: weight bit %d outside the range flipped", c, b)
			}
		}
	}
	_ = wordsBefore
	res.words = slices.Clone(v.Words())
	res.mOut = mOut
	res.row = rowAll
	return res
}

func sameResult(a, b stepResult) bool {
	if !slices.Equal(a.words, b.words) || !slices.Equal(a.row, b.row) || a.counts != b.counts || a.flips != b.flips {
		return false
	}
	for i := range a.mOut {
		if math.Float32bits(a.mOut[i]) != math.Float32bits(b.mOut[i]) {
			return false
		}
	}
	return true
}

// withEachStepImpl runs fn with every available step kernel forced.
func withEachStepImpl(t *testing.T, fn func(name string)) {
	prev := StepImpl()
	defer func() {
		if err := UseStep(prev); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range StepImpls() {
		if err := UseStep(name); err != nil {
			t.Fatal(err)
		}
		fn(name)
	}
}

// TestStepImplsAgree: Step and StepFlip give identical codes, mOut, flips
// and counters with every kernel, for every width 2..16, unaligned starts,
// every tail length and weight rows at any alignment.
func TestStepImplsAgree(t *testing.T) {
	fs := kernelFormats()
	r := rand.New(rand.NewPCG(7, 7))
	if len(StepImpls()) < 2 {
		t.Logf("only %v compiled in: checking the generic step's guards", StepImpls())
	}
	for fi, f := range fs {
		var cases []stepCase
		for tail := 0; tail < 64; tail += 1 + fi%7 {
			start := []int{0, 1, 63, 64, 100}[(tail+fi)%5]
			length := 128 + tail
			if fi%3 == 0 {
				length = tail // short calls: head and tail only
			}
			col0 := start % 64
			if tail%5 == 4 {
				col0 = (start + 3) % 64 // weights not aligned with the codes
			}
			cases = append(cases, stepCase{f: f, n: start + length + 70, start: start, len: length, col0: col0,
				flip: tail%2 == 1, gamma: stepGammas[tail%4], tau: []float32{0, float32(f.MinNormal()), float32(f.MaxValue() / 2)}[tail%3],
				seed: r.Uint64()})
		}
		for _, c := range cases {
			var want stepResult
			withEachStepImpl(t, func(name string) {
				got := c.run(t)
				if name == "generic" {
					want = got
					return
				}
				if !sameResult(got, want) {
					t.Fatalf("%s %+v: differs from generic\ncounts %+v flips %d\ngeneric %+v flips %d", name, c, got.counts, got.flips, want.counts, want.flips)
				}
			})
		}
	}
}

// TestStepRandomized is the fuzz-style check: many seeds, random formats,
// lengths and offsets, all kernels against generic.
func TestStepRandomized(t *testing.T) {
	fs := kernelFormats()
	seeds := 300
	if testing.Short() {
		seeds = 40
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 99))
		f := fs[r.IntN(len(fs))]
		start := r.IntN(200)
		length := r.IntN(700)
		c := stepCase{f: f, n: start + length + r.IntN(100), start: start, len: length, col0: r.IntN(128),
			flip: r.IntN(2) == 0, gamma: stepGammas[r.IntN(4)], tau: float32(f.MaxValue() * r.Float64() / 8), seed: seed}
		if r.IntN(2) == 0 {
			c.col0 = start % 64
		}
		var want stepResult
		withEachStepImpl(t, func(name string) {
			got := c.run(t)
			if name == "generic" {
				want = got
			} else if !sameResult(got, want) {
				t.Fatalf("seed %d %s %+v: differs from generic", seed, name, c)
			}
		})
	}
}

// TestStepFlipMatchesFlipTest: StepFlip's flips are the float test on the
// decoded new momenta (as bop's flipRow does it), with Step's codes.
func TestStepFlipMatchesFlipTest(t *testing.T) {
	for _, name := range []string{"e2m3b21s", "e4m3b28", "e3m2b24z", "fp16", "bf16s", "e5m10b24", "fp32", "e8m12b128"} {
		f := MustParseFormat(name)
		for _, tau := range []float32{0, 1e-7, 3e-7, float32(f.MaxValue())} {
			withEachStepImpl(t, func(impl string) {
				const n, start, col0 = 300, 64, 0
				r := rand.New(rand.NewPCG(5, 5))
				codes := make([]uint32, n)
				ms := make([]float32, n)
				g := make([]float32, n)
				stepInputs(r, f, codes, ms, g, false)
				v1, v2 := NewVector(f, n), NewVector(f, n)
				for i, c := range codes {
					v1.Set(i, c)
					v2.Set(i, c)
				}
				row := []uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
				want := slices.Clone(row)
				r1, r2 := NewRand(1, 1), NewRand(1, 1)
				l := n - start
				mOut := make([]float32, l)
				c1 := v1.Step(start, g[start:], 0.1, &r1, mOut)
				var wantFlips int64
				for j, m := range mOut {
					bit := col0 + j
					neg := want[bit/64]>>(bit%64)&1 == 1
					if neg && m < -tau || !neg && m > tau {
						want[bit/64] ^= 1 << (bit % 64)
						wantFlips++
					}
				}
				c2, flips := v2.StepFlip(start, g[start:], 0.1, &r2, row, col0, tau)
				if c1 != c2 || !slices.Equal(v1.Words(), v2.Words()) {
					t.Fatalf("%s %s: StepFlip's step differs from Step", impl, f)
				}
				if flips != wantFlips || !slices.Equal(row, want) {
					t.Fatalf("%s %s tau %g: %d flips, float test %d", impl, f, tau, flips, wantFlips)
				}
			})
		}
	}
}

func TestUseStepErrors(t *testing.T) {
	if err := UseStep("vax"); err == nil {
		t.Error("UseStep(vax) succeeded")
	}
	if StepImpls()[0] != "generic" {
		t.Errorf("StepImpls() = %v, want generic first", StepImpls())
	}
	if err := StepInitError(); err != nil {
		t.Logf("BNND_STEP: %v", err)
	}
}

// checkWordsKernel runs a packed-words kernel on the block in (packed in
// words with guard words on both sides) and compares it with the generic
// verdict, codes, counters and flips.
func checkWordsKernel(t *testing.T, e stepImplEntry, v *Vector, k stepKernel, in [stepBlock]uint32, g [stepBlock]float32,
	row0 uint64, x0 uint32, ok bool, wantOut [stepBlock]uint32, want stepKernel, wantRow uint64) {
	t.Helper()
	w := int(v.width)
	for i, c := range in {
		v.Set(i, c)
	}
	const canary = 0x5a5a_a5a5_dead_beef
	buf := make([]uint64, w+4)
	buf[0], buf[1], buf[w+2], buf[w+3] = canary, canary, canary, canary
	copy(buf[2:], v.Words())
	k.table, k.layout = &v.table[0], &stepLayouts[w]
	want.table, want.layout = k.table, k.layout
	var out [stepBlock]uint32
	gotRow := row0
	gotOK := stepWordsArch(e.Impl.kind, &k, &buf[2], &g, &out, &gotRow, x0)
	if buf[0] != canary || buf[1] != canary || buf[w+2] != canary || buf[w+3] != canary {
		t.Fatalf("%s %v: guard words overwritten", e.Name, v.f)
	}
	if gotOK != ok {
		t.Fatalf("%s %v: accepted %v, generic %v", e.Name, v.f, gotOK, ok)
	}
	if !ok {
		if !slices.Equal(buf[2:w+2], v.Words()) || gotRow != row0 {
			t.Fatalf("%s %v: declined block changed the words or weights", e.Name, v.f)
		}
		return
	}
	if out != wantOut || k != want || gotRow != wantRow {
		t.Fatalf("%s %v: codes, counters or flips differ from generic\ngot  %x %+v\nwant %x %+v", e.Name, v.f, out, k, wantOut, want)
	}
	for i, c := range wantOut {
		v.Set(i, c)
	}
	if !slices.Equal(buf[2:w+2], v.Words()) {
		t.Fatalf("%s %v: packed words %x, want %x", e.Name, v.f, buf[2:w+2], v.Words())
	}
}

// FuzzStepKernels: one block of 64 codes with momenta and gradients taken
// from the fuzzer's bytes (so any float32, NaN and Inf included) through
// every compiled kernel, compared with stepBlockGeneric.
func FuzzStepKernels(f *testing.F) {
	f.Add(uint8(2), uint8(3), int16(21), uint8(1), uint64(1), []byte("\x00\x00\x80\x3f\x01\x00\x00\x00"))
	f.Add(uint8(4), uint8(3), int16(28), uint8(0), uint64(2), []byte{0xff, 0xff, 0x7f, 0x7f, 0, 0, 0x80, 0xff})
	f.Add(uint8(3), uint8(2), int16(24), uint8(2), uint64(3), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, exp, mant uint8, bias int16, mode uint8, seed uint64, data []byte) {
		fm := Format{Exp: int(exp), Mant: int(mant), Bias: int(bias), Rounding: Rounding(mode % 3)}
		if fm.Validate() != nil || fm.Bits() > 16 || len(data) < 8 {
			return
		}
		v := NewVector(fm, 64)
		var in [stepBlock]uint32
		var ms, g [stepBlock]float32
		for i := range stepBlock {
			b := data[(8*i)%len(data):]
			b = append(b[:len(b):len(b)], data...)
			in[i] = (uint32(b[0]) | uint32(b[1])<<8) & (1<<fm.Bits() - 1)
			ms[i] = fm.Decode(in[i])
			g[i] = math.Float32frombits(uint32(b[2]) | uint32(b[3])<<8 | uint32(b[4])<<16 | uint32(b[5])<<24)
		}
		rng := NewRand(seed, 1)
		s := newStepper(&v.c, fm.Rounding, &rng, stepGammas[seed%4])
		s.setFlip(v, float32(fm.MinNormal()))
		row0 := seed * 0x9e3779b97f4a7c15
		x0 := s.k.key + uint32(seed)*stepGolden
		want := s.k
		var wantOut [stepBlock]uint32
		wantRow := row0
		ok := stepBlockGeneric(&want, &in, &ms, &g, &wantOut, &wantRow, x0)
		for _, e := range stepImpls.Entries() {
			if !e.Available || e.Impl.kind == stepGenericKind {
				continue
			}
			if e.Impl.words {
				checkWordsKernel(t, e, v, s.k, in, g, row0, x0, ok, wantOut, want, wantRow)
			}
			got := s.k
			var out [stepBlock]uint32
			gotRow := row0
			if gotOK := stepBlockArch(e.Impl.kind, &got, &in, &ms, &g, &out, &gotRow, x0); gotOK != ok ||
				ok && (out != wantOut || got != want || gotRow != wantRow) {
				t.Fatalf("%s %v: block kernel differs from generic (accepted %v, generic %v)", e.Name, fm, gotOK, ok)
			}
		}
	})
}

func TestStepFlipDoesNotAllocate(t *testing.T) {
	withEachStepImpl(t, func(impl string) {
		for _, name := range []string{"e4m3b28", "e2m3b21s", "e5m10b24s", "fp32"} {
			f := MustParseFormat(name)
			v := NewVector(f, 1000)
			g := make([]float32, 1000)
			for i := range g {
				g[i] = float32(i) * 1e-9
			}
			row := make([]uint64, 16)
			r := NewRand(1, 1)
			allocs := testing.AllocsPerRun(10, func() {
				v.StepFlip(64, g[:900], 1e-3, &r, row, 0, 1e-7)
				v.StepFlip(3, g[:900], 1e-3, &r, row, 5, 1e-7)
			})
			if allocs != 0 {
				t.Errorf("%s %s: %v allocations per StepFlip", impl, f, allocs)
			}
		}
	})
}

func TestStepEnvOverride(t *testing.T) {
	t.Cleanup(stepImpls.Select) // runs after t.Setenv's restores (cleanups run last first)
	for _, name := range StepImpls() {
		t.Setenv(stepEnvVar, name)
		stepImpls.Select()
		if StepImpl() != name || StepInitError() != nil {
			t.Errorf("%s=%s: using %s, error %v", stepEnvVar, name, StepImpl(), StepInitError())
		}
	}
	t.Setenv(stepEnvVar, "vax")
	stepImpls.Select()
	if want := StepImpls()[len(StepImpls())-1]; StepImpl() != want || StepInitError() == nil {
		t.Errorf("%s=vax: using %s (want the preferred %s), error %v", stepEnvVar, StepImpl(), want, StepInitError())
	}
}
