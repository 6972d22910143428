package bnn

import (
	"math"
	"testing"
)

func TestCrossEntropyAndMaxProbability(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	// float32 logits near 1000 are 6e-5 apart.
	nearAt1000 := func(got, want float64) bool { return math.Abs(got-want) < 1e-4 }
	if got := CrossEntropy([]float32{0, 0}, 0); !near(got, math.Ln2) {
		t.Errorf("two equal logits: %g, want ln 2", got)
	}
	// Shifting every logit changes nothing, even far beyond exp's range.
	if got := CrossEntropy([]float32{1000, 1000 + float32(math.Log(3))}, 1); !nearAt1000(got, math.Log(4.0/3)) {
		t.Errorf("large logits: %g, want ln(4/3)", got)
	}
	if got := MaxProbability([]float32{0, float32(math.Log(3))}); !near(float64(got), 0.75) {
		t.Errorf("max probability %g, want 0.75", got)
	}
	if got := MaxProbability(nil); got != 0 {
		t.Errorf("no logits: %g, want 0", got)
	}
}
