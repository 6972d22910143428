package kbench

import (
	"slices"
	"testing"
	"time"
)

// TestCasesCoverTheIssueShapes pins the benchmark list to the shapes the
// project promised to report, and their operation counts.
func TestCasesCoverTheIssueShapes(t *testing.T) {
	want := map[string]float64{
		"bgemm 256x1024x1024":          256 * 1024 * 1024,
		"bgemm 100x2048x2048":          100 * 2048 * 2048,
		"bconv3x3 32x14x14x64->64":     32 * 14 * 14 * 64 * 9 * 64,
		"bconv3x3 32x28x28x64->64":     32 * 28 * 28 * 64 * 9 * 64,
		"bingradinput 100x2048x2048":   100 * 2048 * 2048,
		"bingradweight 100x2048x2048":  100 * 2048 * 2048,
		"realgradweight 100x2048x2048": 100 * 2048 * 2048,
		"realbingemm 100x2048x2048":    100 * 2048 * 2048,
		"bgemmscaled 256x1024x1024":    256 * 1024 * 1024,
		"im2col3x3bits 32x28x28x64":    32 * 28 * 28 * 9,
	}
	var names []string
	for _, c := range Cases() {
		name := c.Kernel + " " + c.Shape
		if slices.Contains(names, name) {
			t.Errorf("case %q listed twice", name)
		}
		names = append(names, name)
		if ops, ok := want[name]; ok && c.Ops != ops {
			t.Errorf("%s: Ops = %g, want %g", name, c.Ops, ops)
		}
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("missing benchmark case %q", name)
		}
	}
}

func TestMeasureKeepsTheBestCall(t *testing.T) {
	calls := 0
	d := Measure(func() {
		calls++
		if calls == 2 { // one slow call among fast ones
			time.Sleep(20 * time.Millisecond)
		}
	}, 5*time.Millisecond)
	if calls < 4 { // warm-up + at least 3 timed calls
		t.Errorf("Measure made %d calls, want at least 4", calls)
	}
	if d >= 20*time.Millisecond {
		t.Errorf("Measure = %v, want the best call, not the slow one", d)
	}
}

func TestRunReportsGBops(t *testing.T) {
	c := Case{Kernel: "noop", Shape: "1", Ops: 1e6, Setup: func(int) func() {
		return func() { time.Sleep(time.Millisecond) }
	}}
	r := Run(c, 2, time.Millisecond)
	if r.Kernel != "noop" || r.Threads != 2 || r.Seconds < 1e-3 {
		t.Fatalf("Run = %+v", r)
	}
	if got, want := r.GBops, c.Ops/r.Seconds/1e9; got != want {
		t.Errorf("GBops = %v, want Ops/seconds/1e9 = %v", got, want)
	}
}
