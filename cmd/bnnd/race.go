package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/sensors"
	"github.com/bnnd/bnnd/train"
)

// fitWarmup shortens the warm-up of a run too short for it, so that
// training after the choice keeps at least three quarters of the steps.
func fitWarmup(warmup, traced, total int, log io.Writer) (int, int) {
	budget := total / 4
	if warmup+traced <= budget {
		return warmup, traced
	}
	t := min(traced, max(1, budget/4))
	w := max(0, budget-t)
	fmt.Fprintf(log, "momentum auto: the run has %d steps; warm-up shortened from %d+%d to %d+%d steps so training keeps three quarters of them\n",
		total, warmup, traced, w, t)
	return w, t
}

// raceFor runs bop.Select for train (and calibrate): a held-out slice of
// the training data scores the encodings and stays out of the batches
// until the choice is made; the warm start goes to a temporary file; every
// arm and the training afterwards start from the same stream position. It
// adds the samples of the steps that stay in the model to *samples and
// returns the time they took.
func raceFor(ctx context.Context, net *bnn.Network, opt *bop.Optimizer, ds sensors.Dataset, bat *train.Batcher, tf *trainFlags, af *autoFlags,
	warmup, traced int, perLayer bool, statBatches int, samples *int64, log io.Writer) (bop.Selection, time.Duration, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) }
	var eval func() (bop.Score, error)
	if n := min(af.heldout, ds.Len()/10); n >= 1 {
		idx, held := train.HeldOut(ds, n, tf.seed)
		bat.Exclude(idx)
		defer bat.Exclude(nil)
		eval = train.Scorer(ctx, net, ds, held, tf.threads, min(statBatches, 10), tf.seed)
	} else {
		logf("momentum auto: no held-out examples (--heldout %d, %d examples): choosing by the pre-filter alone", af.heldout, ds.Len())
	}
	var scratch io.ReadWriteSeeker
	if f, err := os.CreateTemp(af.scratchDir, "bnnd-warm-start-*"); err != nil {
		logf("momentum auto: keeping the warm start in memory: %v", err)
	} else {
		defer os.Remove(f.Name())
		defer f.Close()
		scratch = f
	}
	t0 := time.Now()
	var warmTime time.Duration
	racing := false
	var mark train.Mark
	next := func() (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		m, err := bat.NextAcrossEpochs()
		if !racing {
			*samples += int64(m)
		}
		return m, err
	}
	rewind := func() error {
		if !racing {
			racing, mark, warmTime = true, bat.Mark(), time.Since(t0)
		}
		bat.Rewind(mark)
		return nil
	}
	sel, err := bop.Select(net, opt, next, eval, bop.SelectOptions{
		Warmup: warmup, TraceSteps: traced, RaceSteps: af.raceSteps, Tolerance: af.tolerance / 100,
		MinBits: af.minBits, MaxBits: af.maxBits, PerLayer: perLayer, Seed: tf.seed,
		Rewind: rewind, Scratch: scratch, Exhaustive: af.all,
		OnMemory: func(phase string, b int64) {
			if os.Getenv("BNND_DEBUG_RSS") != "" {
				logf("DEBUG %s: momenta %d, rss %s", phase, b, rssNow())
			}
		}, Logf: logf, Search: af.search(tf.seed),
	})
	if !racing {
		warmTime = time.Since(t0)
	}
	if err != nil {
		return sel, warmTime, err
	}
	return sel, warmTime, nil
}

func rssNow() string {
	b, _ := os.ReadFile("/proc/self/status")
	out := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out += strings.Join(strings.Fields(l), " ") + " "
		}
	}
	return out
}
