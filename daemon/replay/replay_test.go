package replay

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/x448/float16"
)

func TestReplayUint8IsLosslessForPixels(t *testing.T) {
	r, err := New(256, 10, Uint8, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 256)
	for p := range x {
		x[p] = float32(p) / 255 // how sensors scales MNIST pixels
	}
	slot, err := r.Offer(x, 3)
	if err != nil || slot != 0 {
		t.Fatalf("offer: slot %d, %v", slot, err)
	}
	got := make([]float32, 256)
	label, err := r.Sample(0, got)
	if err != nil || label != 3 {
		t.Fatalf("sample: label %d, %v", label, err)
	}
	for p := range x {
		if got[p] != x[p] {
			t.Fatalf("pixel %d: stored %v, read back %v", p, x[p], got[p])
		}
	}
	r.Offer([]float32{-1, 2, float32(math.Inf(1)), 0.5}[:0:0], 0) // wrong length, ignored
	if r.Clamped() != 0 {
		t.Fatal("clamped without cause")
	}
}

func TestReplayFloat16(t *testing.T) {
	r, err := New(6, 4, Float16, 4096, 1)
	if err != nil {
		t.Fatal(err)
	}
	x := []float32{0.01234, -1.5, 3e-5, 1e5, -1e6, 0}
	if _, err := r.Offer(x, 1); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 6)
	r.Sample(0, got)
	for i, v := range x[:4] {
		want := float16.Fromfloat32(v).Float32()
		if v > 65504 {
			want = 65504
		}
		if got[i] != want {
			t.Errorf("value %d: %v read back as %v, want %v", i, v, got[i], want)
		}
		errAbs := math.Abs(float64(got[i] - v))
		if math.Abs(float64(v)) >= 6.1e-5 && v < 65504 && errAbs/math.Abs(float64(v)) > 1.0/2048 {
			t.Errorf("value %d: relative error above 2^-11", i)
		}
		if math.Abs(float64(v)) < 6.1e-5 && errAbs > 1.0/(1<<25) {
			t.Errorf("value %d: subnormal absolute error %g above 2^-25", i, errAbs)
		}
	}
	if got[4] != -65504 || r.Clamped() != 2 {
		t.Errorf("clamping: %v, clamped %d", got[4], r.Clamped())
	}
}

func TestReplayRejectsBadInput(t *testing.T) {
	r, _ := New(3, 2, Float16, 4096, 1)
	for _, tc := range []struct {
		x     []float32
		label int
		want  string
	}{
		{[]float32{1, 2}, 0, "sample has 2 values, the buffer holds 3"},
		{[]float32{1, 2, 3}, 2, "label 2 outside [0, 2)"},
		{[]float32{1, float32(math.NaN()), 3}, 0, "value 1 of the sample is NaN"},
	} {
		if _, err := r.Offer(tc.x, tc.label); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Offer(%v, %d): %v, want %q", tc.x, tc.label, err, tc.want)
		}
	}
	if r.Seen() != 0 || r.Len() != 0 {
		t.Error("rejected samples were counted")
	}
	if _, err := New(1000, 2, Float16, 1024, 1); err == nil || !strings.Contains(err.Error(), "holds no sample") {
		t.Errorf("tiny budget: %v", err)
	}
	if _, err := New(0, 2, Float16, 1024, 1); err == nil {
		t.Error("zero features accepted")
	}
	if _, err := New(3, 2, Storage(9), 1024, 1); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestReplayBytesExactAndWithinBudget(t *testing.T) {
	const budget = 100 << 10
	r, _ := New(784, 10, Uint8, budget, 1)
	if got := BytesFor(784, Uint8, r.Capacity()); got > budget || BytesFor(784, Uint8, r.Capacity()+1) <= budget {
		t.Fatalf("capacity %d is not the largest that fits: %d bytes", r.Capacity(), got)
	}
	if r.Bytes() != 8*int64((r.Capacity()+63)/64) {
		t.Errorf("empty buffer holds %d bytes, more than its slot bitset", r.Bytes())
	}
	x := make([]float32, 784)
	labels := make([]int32, 16)
	batch := make([]float32, 16*784)
	for i := 0; i < 3*r.Capacity(); i++ {
		r.Offer(x, i%10)
		want := int64(cap(r.values)) + 2*int64(cap(r.labels)) + 8*int64(len(r.picked)) + 4*int64(cap(r.chosen))
		if r.Bytes() != want {
			t.Fatalf("Bytes() = %d, backing arrays hold %d", r.Bytes(), want)
		}
		if r.Bytes() > budget {
			t.Fatalf("after %d samples the buffer holds %d bytes, over the %d budget", i+1, r.Bytes(), budget)
		}
		if i == 100 {
			r.SampleBatch(batch, labels)
		}
	}
	if r.Len() != r.Capacity() || r.Bytes() != BytesFor(784, Uint8, r.Capacity())-4*int64(r.Capacity()-16) {
		t.Errorf("full buffer: %d of %d samples, %d bytes", r.Len(), r.Capacity(), r.Bytes())
	}
}

// chiSquareUniform returns the chi-square statistic of inclusion counts per
// bin against equal expectations.
func chiSquareUniform(counts []float64) float64 {
	var total float64
	for _, c := range counts {
		total += c
	}
	exp := total / float64(len(counts))
	var chi float64
	for _, c := range counts {
		chi += (c - exp) * (c - exp) / exp
	}
	return chi
}

// The reservoir must hold every item of the stream with the same
// probability capacity/N. Over trials seeded 1..trials, inclusion counts
// are grouped into 40 bins of consecutive stream positions; for a uniform
// sampler the statistic follows (at most, since the items of one trial are
// negatively correlated) a chi-square law with 39 degrees of freedom, whose
// 0.999 quantile is 72.05. The seeds are fixed, so the test is
// deterministic; a correct sampler would fail it for one seed set in 1000.
const chiSquare39At999 = 72.05

func TestReplayReservoirIsUniform(t *testing.T) {
	const (
		streamLen = 2000
		bins      = 40
	)
	const trials = 400
	budget := BytesFor(1, Uint8, 50)
	counts := make([]float64, bins)
	x := []float32{0}
	for trial := 1; trial <= trials; trial++ {
		r, err := New(1, streamLen, Uint8, budget, int64(trial))
		if err != nil {
			t.Fatal(err)
		}
		if r.Capacity() != 50 {
			t.Fatalf("capacity %d, want 50", r.Capacity())
		}
		for i := 0; i < streamLen; i++ {
			if _, err := r.Offer(x, i); err != nil {
				t.Fatal(err)
			}
		}
		for _, item := range r.labels {
			counts[int(item)*bins/streamLen]++
		}
	}
	chi := chiSquareUniform(counts)
	t.Logf("chi-square over %d trials: %.1f (bound %.2f); first/last bins %v %v", trials, chi, chiSquare39At999, counts[0], counts[bins-1])
	if chi > chiSquare39At999 {
		t.Errorf("reservoir not uniform: chi-square %.1f > %.2f; counts %v", chi, chiSquare39At999, counts)
	}

	// The same statistic rejects a sampler that favours recent items
	// (admission probability 2k/seen instead of k/seen), so the test can fail.
	biased := make([]float64, bins)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < trials; trial++ {
		res := make([]int, 0, 50)
		for i := 0; i < streamLen; i++ {
			if len(res) < 50 {
				res = append(res, i)
			} else if j := rng.IntN(i + 1); j < 100 {
				res[j%50] = i
			}
		}
		for _, item := range res {
			biased[item*bins/streamLen]++
		}
	}
	if chi := chiSquareUniform(biased); chi <= chiSquare39At999 {
		t.Errorf("the test does not detect a biased sampler: chi-square %.1f", chi)
	}
}

func fill(t *testing.T, r *Buffer, from, to int) {
	t.Helper()
	x := make([]float32, r.Features())
	for i := from; i < to; i++ {
		for j := range x {
			x[j] = float32((i*7+j)%256) / 255
		}
		if _, err := r.Offer(x, i%10); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReplaySampleBatch(t *testing.T) {
	r, _ := New(4, 10, Uint8, 4096, 5)
	fill(t, r, 0, 5)
	x := make([]float32, 8*4)
	labels := make([]int32, 8)
	n, err := r.SampleBatch(x, labels)
	if err != nil || n != 5 {
		t.Fatalf("batch from 5 samples: %d, %v", n, err)
	}
	// Fewer samples than the batch: each exactly once.
	seen := map[float32]bool{}
	for i := 0; i < n; i++ {
		if seen[x[i*4]] {
			t.Fatalf("sample drawn twice: %v", x[:n*4])
		}
		seen[x[i*4]] = true
	}
	fill(t, r, 5, 2000)
	for round := 0; round < 50; round++ {
		n, _ := r.SampleBatch(x, labels)
		if n != 8 {
			t.Fatalf("batch of %d", n)
		}
		for i := 0; i < n; i++ {
			slot := int(r.chosen[i])
			for k := 0; k < i; k++ {
				if int(r.chosen[k]) == slot {
					t.Fatalf("slot %d drawn twice in one batch", slot)
				}
			}
			want := make([]float32, 4)
			l, _ := r.Sample(slot, want)
			if int(labels[i]) != l || !equalFloats(x[i*4:i*4+4], want) {
				t.Fatalf("batch row %d does not match slot %d", i, slot)
			}
		}
	}
	for _, w := range r.picked {
		if w != 0 {
			t.Fatal("scratch bitset not cleared after a batch")
		}
	}
	if _, err := r.SampleBatch(make([]float32, 3), labels); err == nil {
		t.Error("short batch buffer accepted")
	}
	allocs := testing.AllocsPerRun(100, func() { r.SampleBatch(x, labels) })
	if allocs != 0 {
		t.Errorf("SampleBatch allocates %.1f times per call", allocs)
	}
	y := make([]float32, 4)
	allocs = testing.AllocsPerRun(100, func() { r.Offer(y, 1) })
	if allocs != 0 {
		t.Errorf("Offer on a full buffer allocates %.1f times per call", allocs)
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func serialise(t *testing.T, r *Buffer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := r.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d, %v (wrote %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

// A buffer restored from a checkpoint continues exactly like one that was
// never interrupted: same admissions, same batches.
func TestReplayResumeIsDeterministic(t *testing.T) {
	for _, kind := range []Storage{Uint8, Float16} {
		for _, stopAt := range []int{10, 700} { // before and after the buffer fills
			a, _ := New(3, 10, kind, 4096, 9)
			b, _ := New(3, 10, kind, 4096, 9)
			fill(t, a, 0, stopAt)
			fill(t, b, 0, stopAt)
			restored, err := Read(serialise(t, b))
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			fill(t, a, stopAt, 1500)
			fill(t, restored, stopAt, 1500)
			xa, xb := make([]float32, 24), make([]float32, 24)
			la, lb := make([]int32, 8), make([]int32, 8)
			a.SampleBatch(xa, la)
			restored.SampleBatch(xb, lb)
			if !bytes.Equal(serialise(t, a), serialise(t, restored)) || !equalFloats(xa, xb) {
				t.Fatalf("%s, stop at %d: resumed buffer diverged", kind, stopAt)
			}
		}
	}
	c, _ := New(3, 10, Uint8, 4096, 10)
	d, _ := New(3, 10, Uint8, 4096, 9)
	fill(t, c, 0, 1500)
	fill(t, d, 0, 1500)
	if bytes.Equal(serialise(t, c), serialise(t, d)) {
		t.Error("different seeds gave the same buffer")
	}
}

func TestReadReplayRejectsDamage(t *testing.T) {
	r, _ := New(3, 10, Float16, 4096, 1)
	fill(t, r, 0, 50)
	good := serialise(t, r)
	for cut := 0; cut < len(good); cut++ {
		if _, err := Read(good[:cut]); err == nil {
			t.Fatalf("truncated at %d accepted", cut)
		}
	}
	for _, tc := range []struct {
		off  int
		val  byte
		want string
	}{
		{0, 'X', "not a replay buffer"},
		{4, 2, "format version 2"},
		{5, 7, "unknown storage kind 7"},
		{20, 60, "inconsistent counts"},
		{len(good) - 1, 0x7c, "not finite"}, // high byte of the last value: exponent all ones
	} {
		bad := bytes.Clone(good)
		bad[tc.off] = tc.val
		if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("byte %d = %#x: %v, want %q", tc.off, tc.val, err, tc.want)
		}
	}
}

func FuzzReadReplay(f *testing.F) {
	r, _ := New(2, 3, Uint8, 2048, 1)
	x := []float32{0.5, 1}
	for i := 0; i < 20; i++ {
		r.Offer(x, i%3)
	}
	var buf bytes.Buffer
	r.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Read(data)
		if err != nil {
			return
		}
		// Whatever was accepted must be usable.
		xs := make([]float32, 4*r.Features())
		ls := make([]int32, 4)
		r.SampleBatch(xs, ls)
		if r.Features() <= 1<<10 {
			r.Offer(make([]float32, r.Features()), 0)
		}
	})
}

// Shrinking keeps a uniform subset: the same chi-square test as for the
// reservoir itself, on the buffer after Resize.
func TestReplayShrinkStaysUniform(t *testing.T) {
	const (
		streamLen = 2000
		bins      = 40
		trials    = 400
	)
	big := BytesFor(1, Uint8, 100)
	small := BytesFor(1, Uint8, 50)
	counts := make([]float64, bins)
	x := []float32{0}
	for trial := 1; trial <= trials; trial++ {
		r, _ := New(1, streamLen, Uint8, big, int64(trial))
		for i := 0; i < streamLen/2; i++ {
			r.Offer(x, i)
		}
		if err := r.Resize(small); err != nil {
			t.Fatal(err)
		}
		if r.Capacity() != 50 || r.Len() != 50 || r.Bytes() > int64(small) {
			t.Fatalf("after shrinking: capacity %d, %d samples, %d bytes of %d", r.Capacity(), r.Len(), r.Bytes(), small)
		}
		for i := streamLen / 2; i < streamLen; i++ {
			r.Offer(x, i)
		}
		for _, item := range r.labels {
			counts[int(item)*bins/streamLen]++
		}
	}
	if chi := chiSquareUniform(counts); chi > chiSquare39At999 {
		t.Errorf("not uniform after shrinking: chi-square %.1f > %.2f; counts %v", chi, chiSquare39At999, counts)
	}
}

func TestReplayGrowAndSerialise(t *testing.T) {
	r, _ := New(3, 10, Float16, 1024, 1)
	fill(t, r, 0, 500)
	oldCap := r.Capacity()
	if err := r.Resize(8192); err != nil {
		t.Fatal(err)
	}
	if r.Capacity() <= oldCap || r.Len() != oldCap {
		t.Fatalf("grow: capacity %d → %d, %d samples", oldCap, r.Capacity(), r.Len())
	}
	fill(t, r, 500, 510)
	if r.Len() != oldCap+10 {
		t.Errorf("after growing, new samples are all admitted until full: %d", r.Len())
	}
	back, err := Read(serialise(t, r))
	if err != nil {
		t.Fatalf("a grown buffer does not read back: %v", err)
	}
	if back.Len() != r.Len() || back.Seen() != r.Seen() {
		t.Errorf("read back %d/%d, want %d/%d", back.Len(), back.Seen(), r.Len(), r.Seen())
	}
	if err := r.Resize(10); err == nil {
		t.Error("a budget without room for one sample accepted")
	}
}

// The samples just offered lead the batch; the others are distinct,
// never the fresh ones again, and every other slot is drawn about equally
// often.
func TestReplaySampleBatchWithFresh(t *testing.T) {
	r, _ := New(4, 10, Uint8, 4096, 5)
	fill(t, r, 0, 40)
	x := make([]float32, 8*4)
	labels := make([]int32, 8)
	fresh := []int{37, -1, 3, 37, 12}
	counts := make([]int, r.Len())
	const rounds = 20000
	for range rounds {
		n, err := r.SampleBatchWith(x, labels, fresh)
		if err != nil || n != 8 {
			t.Fatalf("batch: %d, %v", n, err)
		}
		if got := r.chosen[:3]; !slices.Equal(got, []int32{3, 12, 37}) {
			t.Fatalf("batch starts with slots %v, want the fresh 3, 12, 37", got)
		}
		for i, slot := range r.chosen {
			if slices.Contains(r.chosen[:i], slot) {
				t.Fatalf("slot %d twice in %v", slot, r.chosen)
			}
			counts[slot]++
			want := make([]float32, 4)
			l, _ := r.Sample(int(slot), want)
			if int(labels[i]) != l || !equalFloats(x[i*4:i*4+4], want) {
				t.Fatalf("batch row %d does not match slot %d", i, slot)
			}
		}
	}
	// 5 of the 37 other slots per batch: each drawn with probability 5/37.
	want := float64(rounds) * 5 / 37
	for slot, c := range counts {
		if slot == 3 || slot == 12 || slot == 37 {
			continue
		}
		if math.Abs(float64(c)-want) > 5*math.Sqrt(want) {
			t.Errorf("slot %d drawn %d times, want about %.0f", slot, c, want)
		}
	}
	for _, w := range r.picked {
		if w != 0 {
			t.Fatal("scratch bitset not cleared after a batch")
		}
	}
	// More fresh samples than the batch holds: the batch is all fresh.
	many := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if n, _ := r.SampleBatchWith(x, labels, many); n != 8 || !slices.Equal(r.chosen, []int32{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Errorf("10 fresh for a batch of 8: chose %v", r.chosen)
	}
}

// Mark's rewind repeats the batches drawn since, fresh slots or not.
func TestReplayMarkRepeatsBatches(t *testing.T) {
	r, err := New(3, 4, Float16, BytesFor(3, Float16, 200), 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, err := r.Offer([]float32{float32(i), 1, 2}, i%4); err != nil {
			t.Fatal(err)
		}
	}
	draw := func() []float32 {
		var all []float32
		for range 5 {
			x, labels := make([]float32, 3*16), make([]int32, 16)
			if _, err := r.SampleBatchWith(x, labels, []int{7}); err != nil {
				t.Fatal(err)
			}
			all = append(all, x...)
		}
		return all
	}
	draw()
	rewind := r.Mark()
	first := draw()
	if err := rewind(); err != nil {
		t.Fatal(err)
	}
	if again := draw(); !equalFloats(first, again) {
		t.Error("the batches after the rewind differ from those after the mark")
	}
	if later := draw(); equalFloats(first, later) {
		t.Error("without a rewind the generator repeats itself")
	}
}
