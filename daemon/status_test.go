package daemon

import (
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"testing"
	"time"
)

func TestStatusJSONKeys(t *testing.T) {
	b, err := json.Marshal(statusSnapshot{Step: 1, PrequentialAcc: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"flips_per_step", "holdout_acc", "loss", "prequential_acc", "samples_per_s", "samples_seen", "samples_straddling", "samples_trained", "step"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("progress keys %v, want %v", keys, want)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestTrackerFadingAverages(t *testing.T) {
	tr, err := newTracker(Counters{}, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	if s := tr.Status(now); s != (statusSnapshot{}) {
		t.Fatalf("fresh tracker: %+v", s)
	}
	// α = 3/4: after right, wrong: (0.75·1 + 0) / (0.75 + 1) = 3/7.
	tr.ObservePrediction(true, true)
	if s := tr.Status(now); s.PrequentialAcc != 1 {
		t.Errorf("one right prediction: accuracy %v, want 1 (no bias towards 0)", s.PrequentialAcc)
	}
	tr.ObservePrediction(true, false)
	tr.ObservePrediction(false, false) // unlabelled: not in the accuracy
	if s := tr.Status(now); !near(s.PrequentialAcc, 3.0/7) || s.SamplesSeen != 3 {
		t.Errorf("accuracy %v (want 3/7), seen %d", s.PrequentialAcc, s.SamplesSeen)
	}
	// Steps, α = 1/2: losses 2 then 1 → (0.5·2 + 1)/(0.5 + 1) = 4/3.
	tr.ObserveStep(32, 2, 10)
	tr.ObserveStep(32, math.NaN(), 0) // skipped for the loss, counted as a step
	tr.ObserveStep(32, 1, 4)
	s := tr.Status(now)
	if s.Step != 3 || s.SamplesTrained != 96 || !near(s.Loss, 4.0/3) {
		t.Errorf("steps: %+v, want loss 4/3", s)
	}
	// Flips 10, 0, 4 with α = 1/2: (0.25·10 + 0.5·0 + 4)/(0.25 + 0.5 + 1).
	if want := (2.5 + 4) / 1.75; !near(s.FlipsPerStep, want) {
		t.Errorf("flips per step %v, want %v", s.FlipsPerStep, want)
	}
	if s.HoldoutAcc != nil {
		t.Errorf("hold-out accuracy %v before any evaluation, want null", *s.HoldoutAcc)
	}
	tr.ObserveHoldout(0.9)
	tr.ObserveHoldout(math.NaN())
	if s := tr.Status(now); s.HoldoutAcc == nil || *s.HoldoutAcc != 0.9 {
		t.Errorf("holdout %v", s.HoldoutAcc)
	}
	if _, err := json.Marshal(tr.Status(now)); err != nil {
		t.Errorf("status does not encode: %v", err)
	}
}

func TestTrackerConvergesToTheRate(t *testing.T) {
	tr, _ := newTracker(Counters{}, 100, 100)
	for i := 0; i < 5000; i++ {
		tr.ObservePrediction(true, i%4 != 0)
	}
	if s := tr.Status(time.Unix(0, 0)); math.Abs(s.PrequentialAcc-0.75) > 0.01 {
		t.Errorf("accuracy %v after a long run at 75%%", s.PrequentialAcc)
	}
}

func TestTrackerThroughput(t *testing.T) {
	tr, _ := newTracker(Counters{SamplesSeen: 50}, 10, 10)
	start := time.Unix(2000, 0)
	tr.Status(start)
	for i := 0; i < 300; i++ {
		tr.ObservePrediction(false, false)
	}
	if s := tr.Status(start.Add(500 * time.Millisecond)); s.SamplesPerS != 0 {
		t.Errorf("rate before a full interval: %v", s.SamplesPerS)
	}
	if s := tr.Status(start.Add(2 * time.Second)); s.SamplesPerS != 150 {
		t.Errorf("300 samples in 2s: %v/s", s.SamplesPerS)
	}
}

func TestTrackerResumesFromCounters(t *testing.T) {
	a, _ := newTracker(Counters{}, 50, 10)
	for i := 0; i < 200; i++ {
		a.ObservePrediction(true, i%3 == 0)
		if i%8 == 0 {
			a.ObserveStep(16, 1/float64(i+1), i%5)
		}
	}
	data, err := json.Marshal(a.Counters())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCounters(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newTracker(c, 50, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*tracker{a, b} {
		tr.ObservePrediction(true, true)
		tr.ObserveStep(16, 0.25, 3)
	}
	now := time.Unix(0, 0)
	if a.Status(now) != b.Status(now) {
		t.Errorf("resumed %+v, uninterrupted %+v", b.Status(now), a.Status(now))
	}
	if _, err := ParseCounters([]byte(`{"step": -1}`)); err == nil {
		t.Error("negative step accepted")
	}
	if _, err := newTracker(Counters{PreqSum: 5, PreqWeight: 2}, 10, 10); err == nil {
		t.Error("accuracy above 1 accepted")
	}
	if _, err := newTracker(Counters{LossSum: math.Inf(1)}, 10, 10); err == nil {
		t.Error("infinite loss accepted")
	}
	if _, err := newTracker(Counters{}, 0, 10); err == nil {
		t.Error("zero horizon accepted")
	}
}
