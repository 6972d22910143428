package daemon

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/daemon/replay"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/sensors"
)

// sample handles one window: predict first (prequential), then keep it
// for training or evaluation, and step every step_every labelled samples.
func (r *runner) sample(s sensors.Sample) error {
	r.runSamples++
	r.seen.Add(1)
	size := r.shape.Size()
	if s.Shape != r.shape || len(s.Data) != size {
		return fmt.Errorf("source sent a sample of shape %v, the model takes %v", s.Shape, r.shape)
	}
	if s.Label >= len(r.net.Classes()) {
		// The source took a label that named a new class before the loop
		// heard of it.
		if err := r.labelChanged(); err != nil {
			return err
		}
	}
	labelled := s.Label >= 0 && s.Label < len(r.net.Classes())
	if s.Straddles {
		r.tracker.ObserveStraddling()
	}
	if len(r.net.Classes()) < 2 {
		// Nothing to tell apart yet: keep what is labelled for later.
		r.tracker.ObserveUnpredicted(labelled)
	} else {
		copy(r.net.Input()[:size], s.Data)
		if err := r.net.Evaluate(1, r.pred); err != nil {
			return err
		}
		class := int(r.pred[0])
		correct := labelled && class == s.Label
		r.tracker.ObservePrediction(labelled, correct)
		r.lastPrediction = lastPrediction{valid: true, class: class, score: bnn.MaxProbability(r.net.Logits(1)[:len(r.net.Classes())]), label: -1, reading: s.Reading}
		if labelled {
			r.lastPrediction.label = s.Label
		}
		r.publishPrediction(time.Now())
	}
	if !labelled {
		return nil
	}
	if r.cfg.Training.HoldoutFraction > 0 && r.split.Float64() < r.cfg.Training.HoldoutFraction {
		_, err := r.holdout.Offer(s.Data, s.Label)
		return err
	}
	slot, err := r.replay.Offer(s.Data, s.Label)
	if err != nil {
		return err
	}
	if slot >= 0 && len(r.justOffered) < r.cfg.Training.Batch {
		r.justOffered = append(r.justOffered, slot)
	}
	r.newLabelled++
	// Steps start once the buffer holds a full batch (or all it can hold).
	if r.newLabelled < r.cfg.Training.StepEvery || r.replay.Len() < max(2, min(r.cfg.Training.Batch, r.replay.Capacity())) {
		return nil
	}
	r.newLabelled = 0
	if len(r.net.Classes()) < 2 {
		return nil
	}
	return r.step()
}

func (r *runner) step() error {
	m, err := r.replay.SampleBatchWith(r.net.Input(), r.net.Labels()[:r.cfg.Training.Batch], r.justOffered)
	r.justOffered = r.justOffered[:0]
	if err != nil {
		return err
	}
	res, err := r.net.TrainStep(m, r.opt)
	if err != nil {
		return err
	}
	var flips int64
	for _, c := range r.opt.LastStep() {
		flips += c.Flips
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		r.log.Warn("training loss is not finite", "loss", res.Loss, "step", r.tracker.Counters().Step+1)
	}
	r.tracker.ObserveStep(m, res.Loss, int(flips))
	r.notifier.Progress()
	if r.calibrating && r.tracker.Counters().Step >= r.calibrateAt {
		r.calibrate()
	}
	if r.tracker.Counters().Step%statsEveryNSteps == 0 {
		if err := r.refreshStatistics(); err != nil {
			return err
		}
	}
	if r.tracker.Counters().Step%holdoutEveryNSteps == 0 && r.holdout.Len() > 0 {
		score, err := r.scoreHoldout()
		if err != nil {
			return err
		}
		r.tracker.ObserveHoldout(score.Accuracy)
	}
	return nil
}

// The daemon's encoding choice is bnnd train's (bop.Select): calibrationSteps
// traced steps for the pre-filter, then every candidate trains
// calibrationRaceSteps steps twice from the same warm start and is scored
// on the held-out replay; the narrowest within calibrationTolerance of the
// 8-bit reference wins, else the reference is kept. Without held-out
// samples the pre-filter alone chooses, within calibrationMaxLost and
// calibrationMaxFlip. The daemon never stops for want of an encoding.
const (
	calibrationSteps     = 30
	calibrationSamples   = 2048
	calibrationRaceSteps = 100
	calibrationTolerance = 0.005
	calibrationMaxLost   = 0.9
	calibrationMaxFlip   = 0.1
)

// calibrationSearch bounds the candidates; zero fields take the defaults
// (4..7 bits, 2048 weights per trace). Tests narrow it to stay quick under
// emulation.
var calibrationSearch = fp.SearchOptions{}

// calibrate races the momentum encodings (bop.Select) from the model as it
// is and continues in the chosen one. The race's steps are undone, and
// every arm trains on the same replay batches.
// The warm start waits in a file in the state folder, so the momenta held
// stay within the warm-up format's 8 bits per weight. On failure the run
// goes on in the warm-up format.
func (r *runner) calibrate() {
	r.calibrating = false
	// The race may take minutes on a small board: the watchdog must not
	// read it as a stuck loop, what was trained so far is saved first (a
	// crash during the race then costs no more than the race), and the
	// race's steps answer commands and keep telemetry going.
	r.notifier.SetPaused(true)
	defer r.notifier.SetPaused(r.paused)
	r.saveCheckpoint("before the encoding search")
	busy := busyLoop{r: r, since: time.Now()}
	seed := uint64(r.cfg.Training.Seed)
	batch := r.cfg.Training.Batch
	start := time.Now()
	racing := false
	// The replay's contents stay as they are during the race (the loop
	// reads no samples), so rewinding its batch generator to the warm start
	// gives every arm the same batches.
	rewind := func() error { return nil }
	next := func() (int, error) {
		busy.serve()
		m, err := r.replay.SampleBatch(r.net.Input(), r.net.Labels()[:batch])
		if err == nil && !racing {
			// The traced steps train the model; their loss is not reported.
			r.tracker.ObserveStep(m, math.NaN(), 0)
		}
		r.notifier.Progress()
		return m, err
	}
	var eval func() (bop.Score, error)
	if r.holdout.Len() > 0 {
		eval = r.scoreHoldout
	} else {
		r.log.Warn("momentum auto: no held-out samples to race on; the pre-filter alone chooses")
	}
	var scratch io.ReadWriteSeeker
	if dir, err := r.cfg.StateDir(); err == nil {
		if f, err := os.CreateTemp(dir, ".warm-start-*"); err == nil {
			defer os.Remove(f.Name())
			defer f.Close()
			scratch = f
		} else {
			r.log.Warn("momentum auto: keeping the warm start in memory", "err", err)
		}
	}
	sel, err := bop.Select(r.net, r.opt, next, eval, bop.SelectOptions{
		TraceSteps: calibrationSteps, Samples: calibrationSamples, RaceSteps: calibrationRaceSteps, Tolerance: calibrationTolerance,
		MinBits: calibrationSearch.MinBits, MaxBits: calibrationSearch.MaxBits, Seed: seed, Scratch: scratch,
		Search: fp.SearchOptions{MaxWeights: calibrationSearch.MaxWeights, MaxLostRatio: calibrationMaxLost, MaxFlipDisagree: calibrationMaxFlip, Seed: seed},
		OnMemory: func(phase string, _ int64) {
			if phase == "snapshot" {
				racing = true // from here on, steps are undone after each arm
				rewind = r.replay.Mark()
			}
		},
		Rewind: func() error { return rewind() },
		Logf:   func(format string, args ...any) { r.log.Debug(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		r.log.Error("momentum auto: encoding race failed; continuing in the warm-up format", "err", err, "momentum", formatNames(r.opt.Formats()))
		return
	}
	attrs := []any{"momentum", formatNames(r.opt.Formats()), "seconds", round4(time.Since(start).Seconds()), "step", r.tracker.Counters().Step,
		"race_steps", sel.RaceSteps, "peak_momentum_bytes", sel.PeakBytes, "reason", sel.Reason}
	if ref := sel.Reference; ref != nil {
		attrs = append(attrs, "reference_holdout_acc", round4(ref.Scores[len(ref.Scores)-1].Accuracy))
	}
	if n := len(sel.Arms); n > 0 && len(sel.Arms[n-1].Scores) > 0 {
		a := sel.Arms[n-1]
		attrs = append(attrs, "last_arm", strings.Join(a.Names, ","), "last_arm_holdout_acc", round4(a.Scores[len(a.Scores)-1].Accuracy))
	}
	r.tracker.ObserveEncodingRaced()
	if sel.Fallback {
		r.log.Warn("momentum auto: no narrower encoding qualified; keeping the reference format", attrs...)
	} else {
		r.log.Info("momentum auto: encoding chosen", attrs...)
	}
	// The race's scratch is garbage now; on a small board give its pages
	// back at once rather than over minutes.
	debug.FreeOSMemory()
}

// busyLoop stands in for the training loop while a long piece of work
// (the encoding race) holds it: commands are answered with a refusal that
// says why, and telemetry goes on, so that neither waits for minutes.
type busyLoop struct {
	r         *runner
	since     time.Time
	published time.Time
}

func (b *busyLoop) serve() {
	for {
		select {
		case req := <-b.r.cmds:
			req.reply <- cmdReply{err: fmt.Errorf("%s: the encoding search has been running since %s; send it again when it has chosen (the log and the encoding topic say when)",
				req.cmd.Name, b.since.Format(time.TimeOnly))}
			continue
		default:
		}
		break
	}
	if now := time.Now(); now.Sub(b.published) >= time.Second {
		b.published = now
		b.r.publish(now, true)
	}
}

func (r *runner) refreshStatistics() error {
	batch := r.cfg.Training.Batch
	batches := min(statsBatches, (r.replay.Len()+batch-1)/batch)
	return r.net.EstimateStatistics(batches, func() (int, error) {
		return r.replay.SampleBatch(r.net.Input(), r.net.Labels()[:batch])
	})
}

// scoreHoldout is the network's mean loss and accuracy on the held-out
// slice, as it is now.
func (r *runner) scoreHoldout() (bop.Score, error) {
	batch := r.cfg.Training.Batch
	size := r.shape.Size()
	c, outs := len(r.net.Classes()), r.net.Outputs()
	in := r.net.Input()
	labels := make([]int, batch)
	var loss float64
	correct := 0
	for start := 0; start < r.holdout.Len(); start += batch {
		m := min(batch, r.holdout.Len()-start)
		for i := 0; i < m; i++ {
			l, err := r.holdout.Sample(start+i, in[i*size:(i+1)*size])
			if err != nil {
				return bop.Score{}, err
			}
			labels[i] = l
		}
		if err := r.net.Evaluate(m, r.pred); err != nil {
			return bop.Score{}, err
		}
		z := r.net.Logits(m)
		for i := 0; i < m; i++ {
			loss += bnn.CrossEntropy(z[i*outs:i*outs+c], labels[i])
			if int(r.pred[i]) == labels[i] {
				correct++
			}
		}
	}
	n := float64(r.holdout.Len())
	return bop.Score{Loss: loss / n, Accuracy: float64(correct) / n, N: r.holdout.Len()}, nil
}

func (r *runner) bopConfig(formats []fp.Format) bop.Config {
	t := &r.cfg.Training
	return bop.Config{Gamma: float32(t.Gamma), Tau: float32(t.Tau), AdamLR: float32(t.AdamLR), Formats: formats, Seed: uint64(t.Seed)}
}

// replayBudgets splits replay.budget: the held-out slice takes an eighth
// (at least one sample's worth, so the buffer exists even when unused), the
// replay buffer the rest, so that together they stay within the budget.
func (r *runner) replayBudgets() (replayBytes, holdoutBytes int64) {
	one := replay.BytesFor(r.shape.Size(), r.kind, 1)
	total := int64(r.cfg.Replay.Budget)
	holdoutBytes = max(total/8, one)
	if r.cfg.Training.HoldoutFraction == 0 {
		holdoutBytes = one
	}
	return total - holdoutBytes, holdoutBytes
}
