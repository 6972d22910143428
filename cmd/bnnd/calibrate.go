package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/train"
)

func init() {
	register(&command{
		name:    "calibrate",
		summary: "record an fp32 warm-up and search the momentum encoding with the fewest bits",
		run:     runCalibrate,
	})
}

// autoFlags choose the momentum encoding for train --momentum auto and
// calibrate: the limits of the encoding search (the pre-filter), then the
// race of bop.Select.
type autoFlags struct {
	// the search
	minBits, maxBits int
	maxLost, maxFlip float64
	nearestOnly      bool
	stochasticOnly   bool
	bestEffort       bool
	samples          int
	fp32Below        int

	// the race
	tolerance  float64
	raceSteps  int
	heldout    int
	scratchDir string
	all        bool
}

func (a *autoFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&a.minBits, "min-bits", 4, "smallest momentum width the search tries")
	fs.IntVar(&a.maxBits, "max-bits", 16, "largest momentum width the search tries")
	fs.Float64Var(&a.maxLost, "max-lost", 0.9, "largest acceptable lost-update ratio")
	fs.Float64Var(&a.maxFlip, "max-flip-disagree", 0.1, "largest acceptable flip disagreement with fp32")
	fs.BoolVar(&a.nearestOnly, "nearest-only", false, "do not try stochastic-rounding encodings")
	fs.BoolVar(&a.stochasticOnly, "stochastic-only", false, "choose among stochastic-rounding encodings only")
	fs.IntVar(&a.samples, "samples", 4096, "weights sampled per layer for the trace")
	fs.BoolVar(&a.bestEffort, "best-effort", false, "when no encoding meets the limits, take the one closest to fp32 instead of failing")
	fs.IntVar(&a.fp32Below, "fp32-below", 0, "layers with fewer weights than this keep fp32 momenta and are left out of the search (they cost little memory)")

	fs.Float64Var(&a.tolerance, "tolerance", 0.5, "with --momentum auto: held-out accuracy points a narrower encoding may lose against the 8-bit reference")
	fs.IntVar(&a.raceSteps, "race-steps", 100, "with --momentum auto: K; each encoding trains 2K steps from the warm start and is judged on its held-out accuracy then (after K only if clearly out)")
	fs.IntVar(&a.heldout, "heldout", 5000, "with --momentum auto: training examples held out to score the encodings (at most a tenth of the data); they rejoin training after the choice")
	fs.BoolVar(&a.all, "race-all", false, "with --momentum auto: race every candidate the full 2K steps (same choice, for measurements)")
	fs.StringVar(&a.scratchDir, "scratch-dir", "", "with --momentum auto: folder for the warm-start snapshot the race restores (default: the system's temporary folder)")
}

func (a *autoFlags) check() error {
	switch {
	case a.minBits < 2 || a.maxBits > 32 || a.minBits > a.maxBits:
		return usagef("--min-bits %d --max-bits %d: want 2 ≤ min ≤ max ≤ 32", a.minBits, a.maxBits)
	case !(a.maxLost >= 0 && a.maxLost <= 1) || !(a.maxFlip >= 0 && a.maxFlip <= 1):
		return usagef("--max-lost and --max-flip-disagree must be in [0, 1]")
	case a.fp32Below < 0:
		return usagef("--fp32-below %d: want ≥ 0", a.fp32Below)
	case a.nearestOnly && a.stochasticOnly:
		return usagef("--nearest-only and --stochastic-only exclude each other")
	case a.samples < 1:
		return usagef("--samples %d: want ≥ 1", a.samples)
	case !(a.tolerance >= 0 && a.tolerance < 100):
		return usagef("--tolerance %g: want points in [0, 100)", a.tolerance)
	case a.raceSteps < 1:
		return usagef("--race-steps %d: want ≥ 1", a.raceSteps)
	case a.heldout < 0:
		return usagef("--heldout %d: want ≥ 0", a.heldout)
	}
	return nil
}

// search is the encoding search the flags ask for.
func (a *autoFlags) search(seed uint64) fp.SearchOptions {
	return fp.SearchOptions{MinBits: a.minBits, MaxBits: a.maxBits, MaxLostRatio: a.maxLost,
		MaxFlipDisagree: a.maxFlip, Stochastic: !a.nearestOnly, Seed: seed}
}

// calibration is the trace-only search (--best-effort) the flags ask for.
func (a *autoFlags) calibration(warmup, steps int, perLayer bool, seed uint64) bop.CalibrationOptions {
	return bop.CalibrationOptions{Warmup: warmup, Steps: steps, Samples: a.samples, PerLayer: perLayer, BestEffort: a.bestEffort,
		StochasticOnly: a.stochasticOnly, FP32Below: a.fp32Below, Seed: seed, Search: a.search(seed)}
}

// calibrateFor runs the warm-up and search for train --momentum auto and
// prints the decision to log.
func calibrateFor(net *bnn.Network, opt *bop.Optimizer, next func() (int, error), warmup, steps int, perLayer bool, seed uint64, af *autoFlags, log io.Writer) ([]fp.Format, error) {
	cal, err := bop.Calibrate(net, opt, next, af.calibration(warmup, steps, perLayer, seed))
	if err != nil {
		return nil, err
	}
	for i, r := range cal.Results {
		writeRanking(log, cal.Scopes[i], r, 8)
	}
	return cal.Formats, nil
}

// writeRanking prints the first rows of a search's ranking.
func writeRanking(w io.Writer, scope string, r fp.SearchResult, rows int) {
	fmt.Fprintf(w, "encoding search (%s): %d candidates, chosen %v\n", scope, len(r.Ranking), r.Best.Format)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rank\tformat\tbits\tlost\tunderflow\tsaturated\tflip disagree\tflips\tfp32 flips\tfeasible\t")
	for i, c := range r.Ranking {
		if rows > 0 && i >= rows {
			fmt.Fprintf(tw, "…\t%d more\t\t\t\t\t\t\t\t\t\n", len(r.Ranking)-rows)
			break
		}
		fmt.Fprintf(tw, "%d\t%v\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%d\t%v\t\n", i+1, c.Format, c.Bits, c.LostRatio,
			c.UnderflowRatio, c.SaturationRatio, c.FlipDisagreement, c.Flips, c.ReferenceFlips, c.Feasible)
	}
	tw.Flush()
}

type candidateJSON struct {
	Format           string  `json:"format"`
	Bits             int     `json:"bits"`
	LostRatio        float64 `json:"lost_ratio"`
	UnderflowRatio   float64 `json:"underflow_ratio"`
	SaturationRatio  float64 `json:"saturation_ratio"`
	FlipDisagreement float64 `json:"flip_disagreement"`
	Flips            int64   `json:"flips"`
	ReferenceFlips   int64   `json:"reference_flips"`
	Feasible         bool    `json:"feasible"`
}

type searchJSON struct {
	Scope   string          `json:"scope"`
	Chosen  string          `json:"chosen"`
	Ranking []candidateJSON `json:"ranking"`
}

func runCalibrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("calibrate", stderr)
	var tf trainFlags
	tf.register(fs)
	var af autoFlags
	af.register(fs)
	steps := fs.Int("steps", 30, "warm-up steps traced for the pre-filter")
	warmup := fs.Int("warmup", 300, "warm-up steps before the traced ones, so momenta reach realistic magnitudes")
	perLayer := fs.Bool("per-layer", false, "pre-filter each layer on its own and try the largest layer one width lower")
	rows := fs.Int("rows", 20, "ranking rows to print (0 = all)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object as the last line")
	if err := parseFlags(fs, args, tf.check, af.check); err != nil {
		return err
	}
	if *steps < 1 || *warmup < 0 {
		return usagef("--steps %d --warmup %d: want steps ≥ 1 and warmup ≥ 0", *steps, *warmup)
	}
	if !af.bestEffort {
		return raceCommand(ctx, &tf, &af, *warmup, *steps, *perLayer, *asJSON, stdout, stderr)
	}
	// --best-effort: the trace-only search of earlier versions.
	start := time.Now()
	ds, net, err := tf.setup()
	if err != nil {
		return err
	}
	opt, err := bop.New(net, bop.Config{Gamma: float32(tf.gamma), Tau: float32(tf.tau), Seed: tf.seed})
	if err != nil {
		return err
	}
	bat := train.NewBatcher(ds, net, tf.threads, tf.seed)
	next := func() (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// The warm-up and recording may run past the end of an epoch.
		return bat.NextAcrossEpochs()
	}
	warm := time.Now()
	cal, err := bop.Calibrate(net, opt, next, af.calibration(*warmup, *steps, *perLayer, tf.seed))
	if err != nil {
		return err
	}
	total := time.Since(warm)
	out := struct {
		Model   string       `json:"model"`
		Steps   int          `json:"steps"`
		Samples int          `json:"samples_per_layer"`
		Formats []string     `json:"formats"`
		Bits    float64      `json:"momentum_bits"`
		Results []searchJSON `json:"results"`
		Seconds float64      `json:"seconds"`
	}{Model: tf.model, Steps: *steps, Samples: af.samples, Formats: formatStrings(cal.Formats), Seconds: time.Since(start).Seconds()}
	out.Bits = bop.MomentumBits(net, cal.Formats)
	for i, r := range cal.Results {
		writeRanking(stdout, cal.Scopes[i], r, *rows)
		fmt.Fprintln(stdout)
		sj := searchJSON{Scope: cal.Scopes[i], Chosen: r.Best.Format.String()}
		for _, c := range r.Ranking {
			sj.Ranking = append(sj.Ranking, candidateJSON{Format: c.Format.String(), Bits: c.Bits, LostRatio: c.LostRatio,
				UnderflowRatio: c.UnderflowRatio, SaturationRatio: c.SaturationRatio, FlipDisagreement: c.FlipDisagreement,
				Flips: c.Flips, ReferenceFlips: c.ReferenceFlips, Feasible: c.Feasible})
		}
		out.Results = append(out.Results, sj)
	}
	fmt.Fprintf(stdout, "chosen momentum encoding: %s (%.2f bits per momentum); warm-up and search took %.1f s\n",
		formatList(cal.Formats), out.Bits, total.Seconds())
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	return nil
}

// raceCommand is calibrate's default: the selection of train --momentum
// auto (warm-up, pre-filter, race), printed arm by arm.
func raceCommand(ctx context.Context, tf *trainFlags, af *autoFlags, warmup, steps int, perLayer, asJSON bool, stdout, stderr io.Writer) error {
	start := time.Now()
	ds, net, err := tf.setup()
	if err != nil {
		return err
	}
	opt, err := bop.New(net, bop.Config{Gamma: float32(tf.gamma), Tau: float32(tf.tau), Seed: tf.seed,
		Formats: []fp.Format{bop.WarmupFormat(float32(tf.tau))}})
	if err != nil {
		return err
	}
	bat := train.NewBatcher(ds, net, tf.threads, tf.seed)
	var samples int64
	sel, _, err := raceFor(ctx, net, opt, ds, bat, tf, af, warmup, steps, perLayer, 10, &samples, stderr)
	if err != nil {
		return err
	}
	for i, r := range sel.Prefilter {
		writeRanking(stdout, sel.Scopes[i]+", pre-filter", r, 8)
		fmt.Fprintln(stdout)
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "arm\tbits\theld-out acc (K)\tloss (K)\theld-out acc (2K)\tloss (2K)\tseconds\tverdict\t")
	arms := sel.Arms
	if sel.Reference != nil {
		arms = append([]bop.Arm{*sel.Reference}, arms...)
	}
	for k, a := range arms {
		cells := []string{"", "", "", ""}
		for j, sc := range a.Scores {
			cells[2*j], cells[2*j+1] = fmt.Sprintf("%.4f", sc.Accuracy), fmt.Sprintf("%.4f", sc.Loss)
		}
		verdict := "within tolerance"
		switch {
		case k == 0 && sel.Reference != nil:
			verdict = "reference"
		case !a.Qualified:
			verdict = a.Reason
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%.1f\t%s\t\n", formatList(a.Formats), a.Bits, cells[0], cells[1], cells[2], cells[3], a.Seconds, verdict)
	}
	tw.Flush()
	bits := bop.MomentumBits(net, sel.Formats)
	fmt.Fprintf(stdout, "chosen momentum encoding: %s (%.2f bits per momentum); %s; selection took %.1f s\n",
		formatList(sel.Formats), bits, sel.Reason, sel.Seconds)
	if asJSON {
		out := struct {
			Model     string         `json:"model"`
			Formats   []string       `json:"formats"`
			Bits      float64        `json:"momentum_bits"`
			Selection *bop.Selection `json:"selection"`
			Seconds   float64        `json:"seconds"`
		}{Model: tf.model, Formats: formatStrings(sel.Formats), Bits: bits, Selection: &sel, Seconds: time.Since(start).Seconds()}
		return json.NewEncoder(stdout).Encode(out)
	}
	return nil
}
