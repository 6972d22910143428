package daemon

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// statusSnapshot is the training progress as published on <prefix>/<id>/progress.
// Accuracies are in [0,1]; the hold-out accuracy is null until its first
// evaluation (a figure not measured is never shown as 0).
type statusSnapshot struct {
	Step              uint64   `json:"step"`               // Bop steps taken
	SamplesSeen       uint64   `json:"samples_seen"`       // windows read from the source
	SamplesTrained    uint64   `json:"samples_trained"`    // samples in all mini-batches (with repeats)
	SamplesStraddling uint64   `json:"samples_straddling"` // live windows during which the label changed: predicted, not trained
	PrequentialAcc    float64  `json:"prequential_acc"`    // test-then-train accuracy, fading average
	HoldoutAcc        *float64 `json:"holdout_acc"`        // accuracy on the held-out slice, last evaluation
	Loss              float64  `json:"loss"`               // training loss per sample, fading average over steps
	SamplesPerS       float64  `json:"samples_per_s"`      // source throughput over the last rate interval
	FlipsPerStep      float64  `json:"flips_per_step"`     // weights flipped per step, fading average
	// Readings counts a live sensor's readings since the source started,
	// so that what the daemon reports can be matched to what it sensed.
	Readings uint64 `json:"readings,omitempty"`
}

// Counters is the durable part of the training progress: it goes into the
// "counters" checkpoint section (as JSON) so that a resumed run continues
// its figures instead of starting them over.
//
// The averages are fading averages (Gama, Sebastião, Rodrigues 2013, "On
// evaluating stream learning algorithms"): sum ← α·sum + x and weight ←
// α·weight + 1, average = sum/weight. Unlike a plain exponential average
// it is not biased towards 0 at the start, and unlike a window it needs no
// memory of past samples.
type Counters struct {
	Step           uint64 `json:"step"`
	SamplesSeen    uint64 `json:"samples_seen"`
	SamplesLabeled uint64 `json:"samples_labeled"`
	SamplesTrained uint64 `json:"samples_trained"`
	// EncodingRaced is the step at which momentum auto's race last chose
	// (0: never), so that a restart after a race that kept the warm-up
	// format does not race again.
	EncodingRaced uint64 `json:"encoding_raced,omitempty"`
	// SamplesStraddling counts live windows over a label change.
	SamplesStraddling uint64  `json:"samples_straddling,omitempty"`
	HoldoutEvals      uint64  `json:"holdout_evals"`
	HoldoutAcc        float64 `json:"holdout_acc"`
	PreqSum           float64 `json:"preq_sum"`
	PreqWeight        float64 `json:"preq_weight"`
	LossSum           float64 `json:"loss_sum"`
	LossWeight        float64 `json:"loss_weight"`
	FlipsSum          float64 `json:"flips_sum"`
	FlipsWeight       float64 `json:"flips_weight"`
	FlipsTotal        uint64  `json:"flips_total"`
}

// Default horizons of the fading averages: about the last 1000 labelled
// samples for accuracy and the last 100 steps for loss and flips.
const (
	defaultAccuracyHorizon = 1000
	defaultStepHorizon     = 100
	rateInterval           = time.Second
)

// tracker accumulates the counters of a training run. It is owned by the
// training loop (not safe for concurrent use); others get Status copies.
type tracker struct {
	c         Counters
	accFade   float64
	stepFade  float64
	rate      float64
	rateSince time.Time
	rateSeen  uint64
}

// newTracker starts counting from c (zero for a fresh run, or the counters
// of a checkpoint). accuracyHorizon and stepHorizon are the effective
// lengths of the fading averages in samples and steps (α = 1 − 1/horizon).
func newTracker(c Counters, accuracyHorizon, stepHorizon int) (*tracker, error) {
	if accuracyHorizon < 1 || stepHorizon < 1 {
		return nil, fmt.Errorf("status: horizons %d and %d must be at least 1", accuracyHorizon, stepHorizon)
	}
	for name, v := range map[string]float64{"preq_sum": c.PreqSum, "preq_weight": c.PreqWeight, "loss_sum": c.LossSum,
		"loss_weight": c.LossWeight, "flips_sum": c.FlipsSum, "flips_weight": c.FlipsWeight, "holdout_acc": c.HoldoutAcc} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("status: counter %s is %v", name, v)
		}
	}
	if c.PreqSum > c.PreqWeight || c.HoldoutAcc > 1 {
		return nil, fmt.Errorf("status: accuracy counters out of range (%v of %v, holdout %v)", c.PreqSum, c.PreqWeight, c.HoldoutAcc)
	}
	return &tracker{
		c:        c,
		accFade:  1 - 1/float64(accuracyHorizon),
		stepFade: 1 - 1/float64(stepHorizon),
	}, nil
}

// ParseCounters decodes the "counters" checkpoint section.
func ParseCounters(data []byte) (Counters, error) {
	var c Counters
	if err := json.Unmarshal(data, &c); err != nil {
		return Counters{}, fmt.Errorf("counters: %w", err)
	}
	return c, nil
}

// Counters returns the durable counters (for a checkpoint).
func (t *tracker) Counters() Counters { return t.c }

// ObservePrediction records one window read from the source and, if it was
// labelled, whether the prediction made before training on it was right.
func (t *tracker) ObservePrediction(labelled, correct bool) {
	t.c.SamplesSeen++
	if !labelled {
		return
	}
	t.c.SamplesLabeled++
	hit := 0.0
	if correct {
		hit = 1
	}
	t.c.PreqSum = t.accFade*t.c.PreqSum + hit
	t.c.PreqWeight = t.accFade*t.c.PreqWeight + 1
}

// ObserveUnpredicted records a window read while there was nothing to
// predict (fewer than two classes): it counts, but not in the accuracy.
func (t *tracker) ObserveUnpredicted(labelled bool) {
	t.c.SamplesSeen++
	if labelled {
		t.c.SamplesLabeled++
	}
}

// ObserveEncodingRaced records that momentum auto's race chose now.
func (t *tracker) ObserveEncodingRaced() { t.c.EncodingRaced = max(t.c.Step, 1) }

// ObserveStraddling records a window during which the label changed.
func (t *tracker) ObserveStraddling() { t.c.SamplesStraddling++ }

// ObserveStep records one Bop step on a mini-batch of batch samples with
// mean loss loss, which flipped flips weights. A NaN or infinite loss is
// not averaged in (it would poison every later figure); the caller reports
// it.
func (t *tracker) ObserveStep(batch int, loss float64, flips int) {
	t.c.Step++
	t.c.SamplesTrained += uint64(max(batch, 0))
	t.c.FlipsTotal += uint64(max(flips, 0))
	if !math.IsNaN(loss) && !math.IsInf(loss, 0) {
		t.c.LossSum = t.stepFade*t.c.LossSum + loss
		t.c.LossWeight = t.stepFade*t.c.LossWeight + 1
	}
	t.c.FlipsSum = t.stepFade*t.c.FlipsSum + float64(max(flips, 0))
	t.c.FlipsWeight = t.stepFade*t.c.FlipsWeight + 1
}

// ObserveHoldout records the accuracy of an evaluation on the held-out
// slice.
func (t *tracker) ObserveHoldout(acc float64) {
	if math.IsNaN(acc) || acc < 0 || acc > 1 {
		return
	}
	t.c.HoldoutEvals++
	t.c.HoldoutAcc = acc
}

// Status returns the figures at time now. The throughput is the number of
// samples seen per second over the last completed interval of at least a
// second (the first call only starts the clock).
func (t *tracker) Status(now time.Time) statusSnapshot {
	switch {
	case t.rateSince.IsZero():
		t.rateSince, t.rateSeen = now, t.c.SamplesSeen
	case now.Sub(t.rateSince) >= rateInterval:
		t.rate = float64(t.c.SamplesSeen-t.rateSeen) / now.Sub(t.rateSince).Seconds()
		t.rateSince, t.rateSeen = now, t.c.SamplesSeen
	}
	s := statusSnapshot{
		Step:              t.c.Step,
		SamplesSeen:       t.c.SamplesSeen,
		SamplesTrained:    t.c.SamplesTrained,
		SamplesStraddling: t.c.SamplesStraddling,
		SamplesPerS:       t.rate,
	}
	if t.c.HoldoutEvals > 0 {
		acc := t.c.HoldoutAcc
		s.HoldoutAcc = &acc
	}
	if t.c.PreqWeight > 0 {
		s.PrequentialAcc = t.c.PreqSum / t.c.PreqWeight
	}
	if t.c.LossWeight > 0 {
		s.Loss = t.c.LossSum / t.c.LossWeight
	}
	if t.c.FlipsWeight > 0 {
		s.FlipsPerStep = t.c.FlipsSum / t.c.FlipsWeight
	}
	return s
}
