package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/sensors"
)

const features = 6

// indexed is a dataset whose example i carries i in its first value, so a
// test can tell which examples landed in a batch. Its label is label(i)
// (−1 = unlabelled); the other values are a fixed pattern of i, so the
// input does not change when a test relabels the examples.
type indexed struct {
	n       int
	classes int
	label   func(i int) int
}

func (d *indexed) Len() int { return d.n }
func (d *indexed) Shape() sensors.Shape {
	return sensors.Shape{Channels: features, Height: 1, Width: 1}
}
func (d *indexed) Classes() []string {
	names := make([]string, d.classes)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i)
	}
	return names
}
func (d *indexed) Example(i int, dst []float32) int {
	l := d.label(i)
	dst[0] = float32(i)
	for k := 1; k < len(dst); k++ {
		dst[k] = float32(((i+k)%3)*2 - 2)
	}
	return l
}

// everyThird leaves examples 2, 5, 8, … unlabelled.
func everyThird(i int) int {
	if i%3 == 2 {
		return -1
	}
	return i % 4
}

func newNet(t *testing.T, ds sensors.Dataset, batch, threads int) *bnn.Network {
	t.Helper()
	spec, err := bnn.ParseSpec("mlp:16")
	if err != nil {
		t.Fatal(err)
	}
	s := ds.Shape()
	net, err := bnn.New(spec, bnn.Shape{Height: s.Height, Width: s.Width, Channels: s.Channels}, ds.Classes(),
		bnn.Options{Batch: batch, Threads: threads, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

// epochOf deals one epoch and returns the example indices in dealing order,
// checking that every batch is full and labelled.
func epochOf(t *testing.T, b *Batcher, net *bnn.Network, ds *indexed) []int {
	t.Helper()
	batch := net.Options().Batch
	var seen []int
	for {
		m, err := b.Next()
		if errors.Is(err, ErrEpochEnd) {
			return seen
		}
		if err != nil {
			t.Fatal(err)
		}
		if m != batch {
			t.Fatalf("batch of %d, want %d", m, batch)
		}
		x, labels := net.Input(), net.Labels()
		for r := 0; r < m; r++ {
			i := int(x[r*features])
			if want := ds.label(i); int(labels[r]) != want {
				t.Fatalf("row %d holds example %d with label %d, want %d", r, i, labels[r], want)
			}
			seen = append(seen, i)
		}
	}
}

func labelled(ds *indexed) []int {
	var out []int
	for i := range ds.n {
		if ds.label(i) >= 0 {
			out = append(out, i)
		}
	}
	return out
}

// With a labelled count that is a multiple of the batch, an epoch deals
// every labelled example exactly once and no unlabelled one.
func TestBatcherDealsEveryLabelledExampleOnce(t *testing.T) {
	ds := &indexed{n: 48, classes: 4, label: everyThird} // 32 labelled
	for _, threads := range []int{1, 3} {
		net := newNet(t, ds, 8, threads)
		b := NewBatcher(ds, net, threads, 1)
		for epoch := range 3 {
			if b.Epoch() != epoch {
				t.Fatalf("Epoch() %d before epoch %d", b.Epoch(), epoch)
			}
			got := epochOf(t, b, net, ds)
			sorted := slices.Sorted(slices.Values(got))
			if !slices.Equal(sorted, labelled(ds)) {
				t.Fatalf("threads %d epoch %d dealt %v, want each of %v once", threads, epoch, sorted, labelled(ds))
			}
		}
	}
}

// A partial batch at the end of an epoch is dropped, and which examples are
// dropped changes with the epoch's shuffle.
func TestBatcherDropsPartialBatch(t *testing.T) {
	ds := &indexed{n: 30, classes: 4, label: func(i int) int { return i % 4 }}
	net := newNet(t, ds, 8, 2)
	b := NewBatcher(ds, net, 2, 5)
	var dropped [][]int
	for range 4 {
		got := epochOf(t, b, net, ds)
		if len(got) != 24 {
			t.Fatalf("epoch dealt %d examples, want 3 full batches of 8", len(got))
		}
		var missing []int
		for i := range ds.n {
			if !slices.Contains(got, i) {
				missing = append(missing, i)
			}
		}
		if len(missing) != 6 {
			t.Fatalf("epoch left out %v, want 6 examples, each of the rest once", missing)
		}
		dropped = append(dropped, missing)
	}
	if slices.Equal(dropped[0], dropped[1]) && slices.Equal(dropped[1], dropped[2]) && slices.Equal(dropped[2], dropped[3]) {
		t.Errorf("every epoch dropped the same examples %v", dropped[0])
	}
}

// The order depends on the seed and the epoch only: not on the thread count
// and not on the Batcher instance; each epoch is reshuffled.
func TestBatcherDeterministicAndReshuffled(t *testing.T) {
	ds := &indexed{n: 60, classes: 4, label: everyThird}
	orders := func(seed uint64, threads int) [][]int {
		net := newNet(t, ds, 10, threads)
		b := NewBatcher(ds, net, threads, seed)
		var out [][]int
		for range 3 {
			out = append(out, epochOf(t, b, net, ds))
		}
		return out
	}
	a, again, threaded, other := orders(7, 1), orders(7, 1), orders(7, 4), orders(8, 1)
	for e := range a {
		if !slices.Equal(a[e], again[e]) || !slices.Equal(a[e], threaded[e]) {
			t.Errorf("epoch %d: seed 7 dealt %v, then %v, with 4 threads %v", e, a[e], again[e], threaded[e])
		}
		if slices.Equal(a[e], other[e]) {
			t.Errorf("epoch %d: seeds 7 and 8 dealt the same order %v", e, a[e])
		}
	}
	if slices.Equal(a[0], a[1]) || slices.Equal(a[1], a[2]) {
		t.Errorf("epochs were not reshuffled: %v", a)
	}
}

// An epoch with no labelled example ends at once instead of looping.
func TestBatcherUnlabelledOnly(t *testing.T) {
	ds := &indexed{n: 20, classes: 2, label: func(int) int { return -1 }}
	net := newNet(t, ds, 4, 1)
	b := NewBatcher(ds, net, 1, 1)
	for epoch := range 2 {
		if m, err := b.Next(); !errors.Is(err, ErrEpochEnd) {
			t.Fatalf("epoch %d: Next = %d, %v; want ErrEpochEnd", epoch, m, err)
		}
	}
	if b.Epoch() != 2 {
		t.Errorf("Epoch() %d after two empty epochs", b.Epoch())
	}
}

func TestNextAcrossEpochs(t *testing.T) {
	ds := &indexed{n: 10, classes: 2, label: everyThird}
	net := newNet(t, ds, 3, 1)
	b := NewBatcher(ds, net, 1, 1)
	for step := range 5 {
		if m, err := b.NextAcrossEpochs(); err != nil || m != 3 {
			t.Fatalf("step %d: NextAcrossEpochs = %d, %v", step, m, err)
		}
	}
	if b.Epoch() == 0 {
		t.Fatal("five batches of 3 from 10 examples stayed in the first epoch")
	}
	empty := &indexed{n: 20, classes: 2, label: func(int) int { return -1 }}
	b = NewBatcher(empty, newNet(t, empty, 4, 1), 1, 1)
	if _, err := b.NextAcrossEpochs(); !errors.Is(err, errNoBatch) {
		t.Fatalf("unlabelled data: NextAcrossEpochs error %v, want %v", err, errNoBatch)
	}
}

type wideDataset struct{ indexed }

func (d *wideDataset) Shape() sensors.Shape {
	return sensors.Shape{Channels: features + 1, Height: 1, Width: 1}
}

// A dataset whose examples do not fit the network's rows is an error, not a
// write past the row.
func TestShapeMismatch(t *testing.T) {
	ds := &indexed{n: 20, classes: 2, label: func(i int) int { return i % 2 }}
	net := newNet(t, ds, 4, 1)
	wide := &wideDataset{*ds}
	if _, err := NewBatcher(wide, net, 1, 1).Next(); err == nil || !strings.Contains(err.Error(), "7 values") {
		t.Errorf("Next on a wider dataset: %v", err)
	}
	if _, err := Evaluate(context.Background(), net, wide, 1); err == nil || !strings.Contains(err.Error(), "7 values") {
		t.Errorf("Evaluate on a wider dataset: %v", err)
	}
}

// predictions returns the network's prediction for every example of ds,
// one at a time.
func predictions(t *testing.T, net *bnn.Network, ds sensors.Dataset) []int32 {
	t.Helper()
	out := make([]int32, ds.Len())
	pred := make([]int32, 1)
	for i := range out {
		ds.Example(i, net.Input()[:features])
		if err := net.Evaluate(1, pred); err != nil {
			t.Fatal(err)
		}
		out[i] = pred[0]
	}
	return out
}

func TestEvaluate(t *testing.T) {
	ctx := context.Background()
	base := &indexed{n: 23, classes: 4, label: func(i int) int { return i % 4 }}
	net := newNet(t, base, 5, 2)
	pred := predictions(t, net, base)
	// Labels: the prediction for i%3 == 0, another class for i%3 == 1,
	// none for i%3 == 2. So the accuracy is the share of i%3 == 0 among
	// the labelled examples: 8 of 16.
	ds := &indexed{n: 23, classes: 4, label: func(i int) int {
		switch i % 3 {
		case 0:
			return int(pred[i])
		case 1:
			return int(pred[i]+1) % 4
		}
		return -1
	}}
	for _, threads := range []int{1, 3} {
		acc, err := Evaluate(ctx, net, ds, threads)
		if err != nil {
			t.Fatal(err)
		}
		if acc != 0.5 {
			t.Errorf("threads %d: accuracy %g, want 8/16", threads, acc)
		}
	}

	none := &indexed{n: 7, classes: 4, label: func(int) int { return -1 }}
	if _, err := Evaluate(ctx, net, none, 2); err == nil || !strings.Contains(err.Error(), "no labelled examples") {
		t.Errorf("unlabelled-only test set: error %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Evaluate(cancelled, net, ds, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v", err)
	}
}

func TestRunEpoch(t *testing.T) {
	ctx := context.Background()
	ds := &indexed{n: 90, classes: 4, label: everyThird} // 60 labelled: 7 batches of 8
	net := newNet(t, ds, 8, 2)
	opt, err := bop.New(net, bop.Config{Gamma: 1e-2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(ds, net, 2, 3)
	var calls []EpochStats
	st, err := RunEpoch(ctx, net, opt, b, func(s EpochStats) { calls = append(calls, s) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps != 7 || st.Samples != 56 || opt.Steps() != 7 || b.Epoch() != 1 {
		t.Errorf("epoch: %d steps, %d samples, optimizer %d steps, batcher at epoch %d; want 7, 56, 7, 1",
			st.Steps, st.Samples, opt.Steps(), b.Epoch())
	}
	if len(calls) != 7 || calls[6] != st {
		t.Errorf("onStep called %d times, last with %+v; want 7, last with the result %+v", len(calls), calls[len(calls)-1], st)
	}
	for k, c := range calls {
		if c.Steps != k+1 || c.Samples != 8*(k+1) || c.Correct > c.Samples || (k > 0 && c.Time < calls[k-1].Time) {
			t.Errorf("onStep call %d: %+v", k, c)
		}
	}
	if l, a := st.Loss(), st.Accuracy(); !(l > 0) || math.IsInf(l, 0) || a < 0 || a > 1 {
		t.Errorf("loss %g accuracy %g", l, a)
	}
	if (EpochStats{}).Loss() != 0 || (EpochStats{}).Accuracy() != 0 {
		t.Error("empty stats have a loss or accuracy")
	}

	cancelled, cancel := context.WithCancel(ctx)
	st, err = RunEpoch(cancelled, net, opt, b, func(EpochStats) { cancel() })
	if !errors.Is(err, context.Canceled) || st.Steps != 1 {
		t.Errorf("cancelled during the first step: %d steps, error %v", st.Steps, err)
	}
}

// Training on the same seed twice gives bit-identical networks.
func TestRunEpochDeterministic(t *testing.T) {
	run := func() []byte {
		ds := &indexed{n: 64, classes: 4, label: func(i int) int { return i % 4 }}
		net := newNet(t, ds, 8, 2)
		opt, err := bop.New(net, bop.Config{Gamma: 5e-2, Tau: 0, Formats: []fp.Format{fp.MustParseFormat("e3m3b8s")}, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		b := NewBatcher(ds, net, 2, 6)
		for range 2 {
			if _, err := RunEpoch(context.Background(), net, opt, b, nil); err != nil {
				t.Fatal(err)
			}
		}
		var buf strings.Builder
		if _, err := net.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return []byte(buf.String())
	}
	if a, b := run(), run(); string(a) != string(b) {
		t.Error("two runs with the same seeds trained different networks")
	}
}

func TestSumCounters(t *testing.T) {
	got := SumCounters([]bop.Counters{
		{StepCounts: fp.StepCounts{Values: 10, Lost: 2}, Flips: 1},
		{StepCounts: fp.StepCounts{Values: 5, Lost: 1, Underflow: 3}}})
	if got.Values != 15 || got.Lost != 3 || got.Flips != 1 || got.Underflow != 3 {
		t.Errorf("sum %+v", got)
	}
}

func TestPeakRSS(t *testing.T) {
	before := PeakRSS()
	if before <= 0 {
		t.Fatalf("PeakRSS %d", before)
	}
	// Touch 64 MiB so the high-water mark must pass it.
	buf := make([]byte, 64<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	if after := PeakRSS(); after < 64<<20 || after < before {
		t.Errorf("PeakRSS %d after touching 64 MiB (before: %d)", after, before)
	}
	runtime.KeepAlive(buf)
}

// The shuffle is part of what makes a run reproducible: runs with the same
// seed before and after a change of this package must train the same
// network. These orders were dealt by the batcher as it was in cmd/bnnd.
func TestBatcherOrderIsStable(t *testing.T) {
	ds := &indexed{n: 12, classes: 4, label: func(i int) int { return i % 4 }}
	net := newNet(t, ds, 4, 1)
	b := NewBatcher(ds, net, 1, 1)
	for e, want := range [][]int{{10, 0, 3, 5, 9, 4, 1, 8, 6, 2, 7, 11}, {3, 7, 11, 0, 9, 5, 4, 10, 6, 2, 8, 1}} {
		if got := epochOf(t, b, net, ds); !slices.Equal(got, want) {
			t.Errorf("seed 1 epoch %d dealt %v, earlier builds dealt %v", e, got, want)
		}
	}
}

func TestRefreshStatistics(t *testing.T) {
	ds := &indexed{n: 40, classes: 2, label: everyThird}
	net := newNet(t, ds, 4, 1)
	if err := RefreshStatistics(net, ds, 1, 3, 1); err != nil {
		t.Fatal(err)
	}
	empty := &indexed{n: 40, classes: 2, label: func(int) int { return -1 }}
	err := RefreshStatistics(newNet(t, empty, 4, 1), empty, 1, 3, 1)
	if !errors.Is(err, errNoBatch) || !strings.Contains(err.Error(), "batch-norm statistics") {
		t.Errorf("unlabelled data: error %v, want one about batch-norm statistics and %v", err, errNoBatch)
	}
}

// Rewind deals the same batches again, also across an epoch end, and
// Exclude keeps held-out examples out of the batches until it is lifted.
func TestBatcherRewindAndExclude(t *testing.T) {
	ds := &indexed{n: 50, classes: 4, label: func(i int) int { return i % 4 }}
	net := newNet(t, ds, 8, 2)
	b := NewBatcher(ds, net, 2, 3)
	held, _ := HeldOut(ds, 5, 3)
	b.Exclude(held)
	first := epochOf(t, b, net, ds)
	for _, i := range first {
		if slices.Contains(held, i) {
			t.Fatalf("held-out example %d dealt", i)
		}
	}
	mark := b.Mark()
	again := func() []int {
		var got []int
		for range 9 { // past the end of the epoch
			if _, err := b.NextAcrossEpochs(); err != nil {
				t.Fatal(err)
			}
			got = append(got, int(net.Input()[0]))
		}
		return got
	}
	a := again()
	b.Rewind(mark)
	if c := again(); !slices.Equal(a, c) {
		t.Errorf("after Rewind: first rows %v, before %v", c, a)
	}
	b.Exclude(nil)
	var all []int
	for range 3 {
		all = append(all, epochOf(t, b, net, ds)...)
	}
	if !slices.ContainsFunc(all, func(i int) bool { return slices.Contains(held, i) }) {
		t.Errorf("held-out examples %v never dealt after Exclude(nil)", held)
	}
}

// Scorer re-estimates batch-norm statistics on the batches
// RefreshStatistics uses, every time, then scores.
func TestScorerMatchesRefreshAndScore(t *testing.T) {
	ds := &indexed{n: 60, classes: 4, label: func(i int) int { return i % 4 }}
	net := newNet(t, ds, 8, 2)
	_, held := HeldOut(ds, 12, 1)
	score := Scorer(context.Background(), net, ds, held, 2, 3, 7)
	s1, err := score()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := score()
	if err := RefreshStatistics(net, ds, 2, 3, 7); err != nil {
		t.Fatal(err)
	}
	s3, err := Score(context.Background(), net, held, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 || s1 != s3 || s1.N != 12 {
		t.Errorf("scores %+v, %+v, and with RefreshStatistics %+v", s1, s2, s3)
	}
}
