package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/kernels"
)

func TestBenchJSONOneKernel(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "--json", "--impl", "generic", "--kernel", "bconv3x3", "--min-time", "1ms"}
	if code := runMain(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per conv shape (2), got %d:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, key := range []string{"impl", "kernel", "shape", "seconds", "gbops", "threads"} {
			if _, ok := rec[key]; !ok {
				t.Errorf("record lacks %q: %s", key, line)
			}
		}
		if rec["impl"] != "generic" || rec["kernel"] != "bconv3x3" {
			t.Errorf("record %s: want impl generic, kernel bconv3x3", line)
		}
		if s, _ := rec["seconds"].(float64); s <= 0 {
			t.Errorf("record %s: seconds must be positive", line)
		}
	}
	if kernels.Impl() == "generic" && len(kernels.Available()) > 1 {
		t.Errorf("bench --impl left the implementation switched to generic")
	}
}

func TestBenchCrefRatio(t *testing.T) {
	// A stand-in for bin/cref: a script printing the C reference's format.
	dir := t.TempDir()
	script := filepath.Join(dir, "cref")
	body := "#!/bin/sh\necho '{\"impl\":\"cref\",\"kernel\":\"bconv3x3\",\"shape\":\"32x14x14x64->64\",\"threads\":1,\"seconds\":1000,\"gbops\":0.001}'\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	args := []string{"bench", "--json", "--kernel", "bconv3x3", "--min-time", "1ms", "--cref", "--cref-bin", script}
	if code := runMain(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var first struct {
		Shape string  `json:"shape"`
		Ratio float64 `json:"ratio"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Shape != "32x14x14x64->64" || first.Ratio <= 1 {
		t.Errorf("first record %+v: want the 14x14 conv with a ratio > 1 against a 1000 s reference", first)
	}
}

func TestBenchBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--threads", "0"},
		{"bench", "extra"},
		{"bench", "--min-time", "-1s"},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"bench", "--impl", "vax"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "vax") {
		t.Errorf("--impl vax: exit %d, stderr %q; want 1 and an error naming it", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := runMain(context.Background(), []string{"bench", "--cref", "--cref-bin", "/nonexistent/cref"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "/nonexistent/cref") {
		t.Errorf("missing C reference: exit %d, stderr %q; want 1 and an error naming the path", code, errOut.String())
	}
}

func TestVersionShowsKernels(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "kernels: "+kernels.Impl()) {
		t.Errorf("version output lacks the kernel implementation:\n%s", out.String())
	}
}

func TestBenchBopStep(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "--json", "--impl", "all", "--kernel", "bopstep", "--min-time", "1ms"}
	if code := runMain(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if want := 4 * len(fp.StepImpls()); len(lines) != want {
		t.Fatalf("want %d records (fp32, 8, 6, 5 bits per step kernel), got %d:\n%s", want, len(lines), out.String())
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var rec struct {
			Impl, Kernel, Shape string
			Seconds             float64
			NsPerMomentum       float64 `json:"ns_per_momentum"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if rec.Kernel != "bopstep" || rec.Seconds <= 0 || rec.NsPerMomentum <= 0 {
			t.Errorf("record %s: want kernel bopstep and positive times", line)
		}
		seen[rec.Impl+" "+rec.Shape] = true
	}
	for _, impl := range fp.StepImpls() {
		for _, f := range []string{"fp32", "e4m3b28", "e2m3b21s", "e2m2b21s"} {
			if !seen[impl+" "+f] {
				t.Errorf("no record for %s %s", impl, f)
			}
		}
	}
	if fp.StepImpl() == "generic" && len(fp.StepImpls()) > 1 {
		t.Errorf("bench --impl all left the step kernel switched to generic")
	}
}
