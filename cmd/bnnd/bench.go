package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/kernels"
	"github.com/bnnd/bnnd/kernels/kbench"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "time the bit-packed kernels (optionally against the C reference)",
		run:     runBench,
	})
	versionLines = append(versionLines, func() (string, string) {
		v := kernels.Impl() + " (available: " + strings.Join(kernels.Available(), ", ") + ")"
		if err := kernels.InitError(); err != nil {
			v += "; error: " + err.Error()
		}
		return "kernels", v
	})
	versionLines = append(versionLines, func() (string, string) {
		v := fp.StepImpl() + " (available: " + strings.Join(fp.StepImpls(), ", ") + ")"
		if err := fp.StepInitError(); err != nil {
			v += "; error: " + err.Error()
		}
		return "bop step", v
	})
}

// benchRecord is one line of output: our measurement, plus the C
// reference's for the same kernel and shape when --cref is given.
type benchRecord struct {
	kbench.Result
	CrefSeconds float64 `json:"cref_seconds,omitempty"`
	CrefGBops   float64 `json:"cref_gbops,omitempty"`
	Ratio       float64 `json:"ratio,omitempty"` // cref_seconds / seconds: > 1 means we are faster
	// The bopstep rows: the fused Bop step of one tile (kernel "bopstep",
	// shape the momentum format, gbops in 10^9 momenta per second).
	NsPerMomentum float64 `json:"ns_per_momentum,omitempty"`
}

// stepBenchFormats are the momentum encodings of the bopstep rows: fp32
// and 8-, 6- and 5-bit formats.
var stepBenchFormats = []string{"fp32", "e4m3b28", "e2m3b21s", "e2m2b21s"}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per kernel and shape")
	impl := fs.String("impl", "", "kernel implementation to time (default: the one in use; \"all\": every available one); the bopstep rows use the Bop step kernel of that name")
	threads := fs.Int("threads", 1, "goroutines per kernel call")
	kernel := fs.String("kernel", "", "time only kernels whose name contains this (bopstep: the fused Bop momentum step)")
	minTime := fs.Duration("min-time", 300*time.Millisecond, "time each case for at least this long (best call counts)")
	cref := fs.Bool("cref", false, "also run the C reference (see --cref-bin) and print the ratio per shape")
	crefBin := fs.String("cref-bin", "bin/cref", "C reference binary, built from bench/cref by 'make bench'")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *threads < 1 {
		return usagef("--threads must be at least 1, got %d", *threads)
	}
	if *minTime <= 0 {
		return usagef("--min-time must be positive, got %v", *minTime)
	}
	if err := kernels.InitError(); err != nil {
		fmt.Fprintf(stderr, "bnnd bench: warning: %v\n", err)
	}
	impls := []string{kernels.Impl()}
	switch *impl {
	case "":
	case "all":
		impls = kernels.Available()
	default:
		impls = []string{*impl}
	}
	prev := kernels.Impl()
	defer func() { _ = kernels.Use(prev) }()
	for _, name := range impls {
		if err := kernels.Use(name); err != nil {
			return fmt.Errorf("--impl: %w", err)
		}
	}

	crefResults := map[string]kbench.Result{}
	if *cref {
		rs, err := runCref(ctx, *crefBin)
		if err != nil {
			return err
		}
		for _, r := range rs {
			crefResults[r.Kernel+" "+r.Shape] = r
		}
	}

	if !*asJSON {
		fmt.Fprintf(stdout, "%-12s %-15s %-20s %7s %12s %10s", "impl", "kernel", "shape", "threads", "seconds", "gbops")
		if *cref {
			fmt.Fprintf(stdout, " %12s %8s", "cref_gbops", "ratio")
		}
		fmt.Fprintln(stdout)
	}
	enc := json.NewEncoder(stdout)
	if err := fp.StepInitError(); err != nil {
		fmt.Fprintf(stderr, "bnnd bench: warning: %v\n", err)
	}
	stepImpls, err := benchStepImpls(*impl)
	if err != nil {
		return err
	}
	for _, name := range impls {
		if err := kernels.Use(name); err != nil {
			return err
		}
		for _, c := range kbench.Cases() {
			if !strings.Contains(c.Kernel, *kernel) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rec := benchRecord{Result: kbench.Run(c, *threads, *minTime)}
			if cr, ok := crefResults[c.Kernel+" "+c.Shape]; ok {
				rec.CrefSeconds, rec.CrefGBops = cr.Seconds, cr.GBops
				rec.Ratio = cr.Seconds / rec.Seconds
			}
			if *asJSON {
				if err := enc.Encode(rec); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(stdout, "%-12s %-15s %-20s %7d %12.6f %10.2f", rec.Impl, rec.Kernel, rec.Shape, rec.Threads, rec.Seconds, rec.GBops)
			if rec.CrefSeconds > 0 {
				fmt.Fprintf(stdout, " %12.2f %7.2fx", rec.CrefGBops, rec.Ratio)
			} else if *cref {
				fmt.Fprintf(stdout, " %12s %8s", "-", "-")
			}
			fmt.Fprintln(stdout)
		}
	}
	if !strings.Contains("bopstep", *kernel) {
		return nil
	}
	prevStep := fp.StepImpl()
	defer func() { _ = fp.UseStep(prevStep) }()
	for _, name := range stepImpls {
		if err := fp.UseStep(name); err != nil {
			return err
		}
		for _, format := range stepBenchFormats {
			if err := ctx.Err(); err != nil {
				return err
			}
			fold, momenta, err := bop.StepBench(fp.MustParseFormat(format))
			if err != nil {
				return err
			}
			d := kbench.Measure(fold, *minTime).Seconds()
			rec := benchRecord{Result: kbench.Result{Impl: name, Kernel: "bopstep", Shape: format, Threads: 1,
				Seconds: d, GBops: float64(momenta) / d / 1e9}, NsPerMomentum: d * 1e9 / float64(momenta)}
			if *asJSON {
				if err := enc.Encode(rec); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(stdout, "%-12s %-15s %-20s %7d %12.6f %10.2f %8.3f ns/momentum\n", rec.Impl, rec.Kernel, rec.Shape, rec.Threads, rec.Seconds, rec.GBops, rec.NsPerMomentum)
		}
	}
	return nil
}

// benchStepImpls are the Bop step kernels the bopstep rows time for
// --impl: the one in use, all available ones, or the one named (none when
// the name is a GEMM implementation only, such as avx512vector).
func benchStepImpls(impl string) ([]string, error) {
	switch impl {
	case "":
		return []string{fp.StepImpl()}, nil
	case "all":
		return fp.StepImpls(), nil
	}
	for _, n := range fp.StepImpls() {
		if n == impl {
			return []string{n}, nil
		}
	}
	for _, n := range kernels.Available() {
		if n == impl {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("--impl: unknown implementation %q (kernels: %s; Bop step: %s)", impl,
		strings.Join(kernels.Available(), ", "), strings.Join(fp.StepImpls(), ", "))
}

// runCref runs the C reference binary and parses its JSON lines.
func runCref(ctx context.Context, bin string) ([]kbench.Result, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("C reference %s (build it with 'make bench'): %w: %s", bin, err, strings.TrimSpace(errOut.String()))
	}
	var rs []kbench.Result
	sc := bufio.NewScanner(&out)
	for line := 1; sc.Scan(); line++ {
		var r kbench.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("C reference %s output line %d: %w", bin, line, err)
		}
		if r.Kernel == "" || r.Shape == "" || r.Seconds <= 0 {
			return nil, fmt.Errorf("C reference %s output line %d: missing kernel, shape or seconds: %s", bin, line, sc.Text())
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}
