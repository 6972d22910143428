package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/mqtt"
	"github.com/bnnd/bnnd/sensors"
	"github.com/bnnd/bnnd/systemd"
)

// RunOptions are what 'bnnd run' passes besides the configuration.
type RunOptions struct {
	Logger  *slog.Logger // nil: a logger on stderr configured by cfg.Log
	Version string       // shown in Home Assistant and the checkpoint meta

	// MaxSamples stops the run cleanly (with a checkpoint) after this many
	// samples read in this run; 0 runs until ctx is done or the source ends.
	MaxSamples uint64
}

// Checkpoint section names.
const (
	sectionMeta      = "meta"
	sectionModel     = "model"
	sectionOptimizer = "optimizer"
	sectionReplay    = "replay"
	sectionHoldout   = "holdout"
	sectionCounters  = "counters"
	// sectionNormalizer is the source's input standardisation (absent for
	// sources that have none, such as MNIST pixels).
	sectionNormalizer = "normalizer"
)

// How often the loop does its periodic work, and how often it evaluates the
// held-out slice (in steps).
const (
	tickInterval       = 250 * time.Millisecond
	holdoutEveryNSteps = 50
	// Every statsEveryNSteps steps the batch-norm statistics that
	// predictions use are re-estimated on up to statsBatches replay batches
	// (the whole buffer when it is smaller) with the current weights: Bop
	// flips weights every step, and running averages mix statistics of
	// networks that no longer exist. Fewer batches leave the statistics
	// noisy: on recorded activities taught live, 4 batches gave 93.3% and
	// 16 gave 94.3% (mean of four seeds).
	statsEveryNSteps = 10
	statsBatches     = 16
	statusEvery      = 10 * time.Second
	// firstStatusAfter is when the first STATUS= and progress log line go
	// out: soon, so that 'systemctl status' and the journal show training
	// at once rather than statusEvery after the start.
	firstStatusAfter = time.Second
)

// checkpointMeta is the "meta" section: what 'bnnd checkpoint inspect'
// shows and what a resume checks against the configuration.
type checkpointMeta struct {
	Version  string   `json:"bnnd_version"`
	Model    string   `json:"model"`
	Source   string   `json:"source"`
	Momentum []string `json:"momentum"`
	Classes  []string `json:"classes"`
	// Outputs is the number of output units, the most classes labels can
	// create; absent (0) in checkpoints written before classes could grow,
	// whose models have one unit per class.
	Outputs int       `json:"outputs,omitempty"`
	Input   string    `json:"input_shape"`
	Step    uint64    `json:"step"`
	Saved   time.Time `json:"saved"`
	Reason  string    `json:"reason"`
}

// Run is 'bnnd run': it opens the source, resumes from the newest valid
// checkpoint in the state directory (or starts a fresh model), connects
// telemetry, and trains incrementally until ctx is done or the source ends.
// On the way out it writes a final checkpoint and publishes "offline". A
// clean stop (ctx cancelled, SIGTERM) returns nil.
func Run(ctx context.Context, cfg *Config, opts RunOptions) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = NewLogger(os.Stderr, cfg.Log)
	}
	r := &runner{cfg: cfg, opts: opts, log: log, cmds: make(chan cmdRequest), stopped: make(chan struct{}), label: sensors.Label{Index: -1}}
	return r.run(ctx)
}

// NewLogger makes the slog logger described by cfg.
func NewLogger(w io.Writer, cfg LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	ho := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

type runner struct {
	cfg  *Config
	opts RunOptions
	log  *slog.Logger

	deviceID string
	store    *Store
	notifier *systemd.Notifier
	mq       *mqtt.Client
	metrics  *metrics // nil unless prometheus.listen is set
	cmds     chan cmdRequest
	stopped  chan struct{} // closed when the loop no longer takes commands

	src    sensors.Source
	labels *sensors.LabelBox // what the person teaching says; its classes lead the network's
	shape  sensors.Shape
	kind   StorageKind

	net     *bnn.Network
	opt     *bop.Optimizer
	replay  *Replay
	holdout *Replay
	tracker *Tracker
	split   *rand.Rand // chooses held-out samples

	seen           atomic.Uint64 // samples read, for the watchdog
	paused         bool
	calibrating    bool   // momentum auto: the encoding search is still to run
	calibrateAt    uint64 // step at which it runs
	newLabelled    int
	justOffered    []int // replay slots of the labelled samples since the last step: the next batch trains them
	runSamples     uint64
	lastCheckpoint time.Time // last attempt, for the schedule
	checkpointAt   time.Time // creation time of the newest valid checkpoint
	lastPrediction lastPrediction
	pred           []int32
	label          sensors.Label // the label last published on the label topic
	predictionSent time.Time
	ckStatus       checkpointStatus // failed saves, for health
}

type cmdRequest struct {
	cmd   mqtt.Command
	reply chan cmdReply
}

type cmdReply struct {
	result any
	err    error
}

// lastPrediction is kept per sample without allocating; the prediction
// message is built from it when published.
type lastPrediction struct {
	valid        bool // false until the first sample of this run
	class, label int  // label -1: unlabelled
	score        float32
	reading      uint64
}

func (p lastPrediction) message(classes []string) predictionMsg {
	m := predictionMsg{Class: classes[p.class], ClassIndex: p.class, Score: p.score, Reading: p.reading}
	if p.label >= 0 {
		correct := p.class == p.label
		m.Label, m.Correct = classes[p.label], &correct
	}
	return m
}

type predictionMsg struct {
	Class      string  `json:"class"`
	ClassIndex int     `json:"class_index"`
	Score      float32 `json:"score"`
	Label      string  `json:"label,omitempty"`
	Correct    *bool   `json:"correct,omitempty"`
	// Reading is the sensor reading that ended the window, counted from the
	// source's start (live sources), so predictions can be matched to what
	// the sensor saw.
	Reading uint64 `json:"reading,omitempty"`
}

func (r *runner) run(ctx context.Context) (err error) {
	cfg := r.cfg
	if r.deviceID, err = cfg.ResolvedDeviceID(); err != nil {
		return err
	}
	stateDir, err := cfg.StateDir()
	if err != nil {
		return err
	}
	formats, err := cfg.MomentumFormats()
	if err != nil {
		return fmt.Errorf("training.momentum: %w", err)
	}
	if formats == nil {
		// momentum auto: train in the 8-bit warm-up format until the race
		// has seen the momenta at their working size (see calibrate).
		formats = []fp.Format{bop.WarmupFormat(float32(cfg.Training.Tau))}
	}
	spec, err := bnn.ParseSpec(cfg.Model.Spec)
	if err != nil {
		return fmt.Errorf("model.spec: %w", err)
	}

	r.notifier, err = systemd.New(systemd.Options{Logger: r.log, Counter: r.seen.Load, IdleAllowance: time.Minute})
	if err != nil {
		return err
	}
	defer r.notifier.Close()

	// The source must scale its samples with the normaliser the model was
	// trained with, not learn a new one, so that much of the checkpoint is
	// read before the source is opened; the rest once the source's shape
	// bounds the size a checkpoint can have (resumeOrStart).
	unlock, err := LockStateDir(stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	r.store, err = OpenStore(stateDir, cfg.Checkpoint.KeepPrevious, r.log)
	if err != nil {
		return err
	}

	// The label box must hold the classes before the source opens (a live
	// source labels from its first reading): those of the newest
	// checkpoint's meta, read like the normaliser; without a checkpoint
	// those of model.init or model.classes.
	var initNet *bnn.Network
	meta, metaPath := r.peekMeta()
	if meta == nil && cfg.Model.Init != "" {
		if initNet, err = readInitModel(cfg.Model.Init, r.netOptions(0)); err != nil {
			return err
		}
	}
	known, outputs, err := r.startingClasses(metaPath, meta, initNet)
	if err != nil {
		return err
	}
	if len(cfg.Model.Classes) > 0 {
		r.labels = sensors.NewLabelBox(known...)
	} else {
		r.labels = sensors.NewGrowingLabelBox(known, outputs)
	}
	normBytes, err := r.openSource(initNet)
	if err != nil {
		return err
	}
	defer func() { r.src.Close() }() // resumeOrStart may reopen it
	if sensors.LabelBoxOf(r.src) == nil {
		// The source's data carry their labels: its classes are the
		// model's, and the label command may only name them.
		classes := r.src.Classes()
		if len(classes) < 2 {
			return fmt.Errorf("source %q has %d classes; training needs at least 2", cfg.Source.Spec, len(classes))
		}
		if len(cfg.Model.Classes) > 0 && !slices.Equal(cfg.Model.Classes, classes) {
			return fmt.Errorf("model.classes %q differs from the classes of source %q, %q: remove model.classes for a source whose data carry labels",
				cfg.Model.Classes, cfg.Source.Spec, classes)
		}
		if initNet != nil && !slices.Equal(known, classes) {
			return classesMismatch(metaPath, meta, initNet, cfg, classes)
		}
		r.labels = sensors.NewLabelBox(classes...)
		outputs = len(classes)
	}

	// The first sample tells the input shape.
	if r.src.Health().State == "warming up" {
		r.log.Info("source warming up: learning the scaling of its readings before the first window", "source", cfg.Source.Spec)
	}
	samples := make(chan sensors.Sample, 1)
	first, err := r.src.Next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("source %q: first sample: %w", cfg.Source.Spec, err)
	}
	r.shape = first.Shape
	r.kind = StorageFloat16
	if strings.HasPrefix(cfg.Source.Spec, "mnist") {
		r.kind = StorageUint8 // pixels/255: stored losslessly in a byte
	}

	bopts := r.netOptions(outputs)
	if first, err = r.resumeOrStart(ctx, first, normBytes, spec, bopts, formats, initNet); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	threads := bopts.Threads
	r.pred = make([]int32, cfg.Training.Batch)
	if cfg.Training.Momentum == "auto" && bop.Warming(r.opt.Formats(), float32(cfg.Training.Tau)) && r.tracker.Counters().EncodingRaced == 0 {
		r.calibrateAt = uint64(cfg.Training.CalibrateAfter)
		r.calibrating = true
		r.log.Info("momentum auto: warm-up format until the encoding race", "momentum", formatNames(r.opt.Formats()), "at_step", r.calibrateAt)
	}

	if cfg.MQTT.Broker != BrokerNone {
		if err := r.startMQTT(ctx); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if cerr := r.mq.Close(cctx); cerr != nil {
				r.log.Warn("mqtt close", "err", cerr)
			}
		}()
	}

	if cfg.Prometheus.Listen != "" {
		r.metrics = newMetrics()
		stop, err := serveMetrics(cfg.Prometheus.Listen, r.metrics, r.log)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Samples are read on their own goroutine so that commands and the
	// schedule are served while a live source waits for its next window.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	readErr := make(chan error, 1)
	samples <- first
	go func() {
		for {
			s, err := r.src.Next(readCtx)
			if err != nil {
				if errors.Is(err, sensors.ErrUnhealthy) {
					r.log.Warn("source unhealthy", "err", err)
					continue
				}
				readErr <- err
				return
			}
			select {
			case samples <- s:
			case <-readCtx.Done():
				return
			}
		}
	}()

	// Start-up garbage (the checkpoint file read, the dataset decoding)
	// goes back to the OS before the steady state.
	debug.FreeOSMemory()
	r.notifier.Ready()
	r.log.Info("training", "source", cfg.Source.Spec, "model", cfg.Model.Spec, "input", r.shape.String(),
		"classes", len(r.net.Classes()), "momentum", formatNames(r.opt.Formats()), "threads", threads,
		"replay_capacity", r.replay.Capacity(), "state_dir", stateDir, "device_id", r.deviceID)
	r.lastCheckpoint = time.Now()
	r.tracker.Status(r.lastCheckpoint) // starts the throughput clock, so the first status has a rate
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	lastStatus, lastSlowPublish := time.Now().Add(firstStatusAfter-statusEvery), time.Time{}

	defer func() {
		select {
		case <-r.stopped:
		default:
			close(r.stopped)
		}
	}()
	stopReason := "shutdown"
loop:
	for {
		var sampleCh chan sensors.Sample
		if !r.paused {
			sampleCh = samples
		}
		select {
		case <-ctx.Done():
			break loop
		case req := <-r.cmds:
			res, err := r.command(req.cmd)
			req.reply <- cmdReply{res, err}
		case <-r.labels.Changed():
			if err := r.labelChanged(); err != nil {
				r.saveCheckpoint("error")
				return err
			}
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				r.log.Info("source ended")
				stopReason = "source ended"
				break loop
			}
			if ctx.Err() != nil {
				break loop
			}
			r.saveCheckpoint("source error")
			return fmt.Errorf("source %q: %w", cfg.Source.Spec, err)
		case s := <-sampleCh:
			err := r.sample(s)
			if err == nil && sampleFault != nil {
				err = sampleFault(r)
			}
			if err != nil {
				return r.trainingFailed(err)
			}
			if r.opts.MaxSamples > 0 && r.runSamples >= r.opts.MaxSamples {
				stopReason = "sample limit"
				break loop
			}
		case now := <-tick.C:
			r.labels.Current(now) // a timed label clears itself, and Changed tells
			r.publish(now, now.Sub(lastSlowPublish) >= time.Second)
			if now.Sub(lastSlowPublish) >= time.Second {
				lastSlowPublish = now
			}
			if iv := cfg.Checkpoint.Interval; iv > 0 && now.Sub(r.lastCheckpoint) >= iv {
				r.saveCheckpoint("schedule")
			}
			if now.Sub(lastStatus) >= statusEvery {
				lastStatus = now
				st := r.tracker.Status(now)
				r.notifier.Status(fmt.Sprintf("step %d, prequential accuracy %.3f, %.0f samples/s", st.Step, st.PrequentialAcc, st.SamplesPerS))
				r.log.Info("progress", "step", st.Step, "samples_seen", st.SamplesSeen, "prequential_acc", round4(st.PrequentialAcc),
					"holdout_acc", optionalRound4(st.HoldoutAcc), "loss", round4(st.Loss), "samples_per_s", math.Round(st.SamplesPerS))
			}
		}
	}
	close(r.stopped)
	stopReading()
	r.notifier.Stopping()
	r.publish(time.Now(), true)
	if err := r.saveCheckpoint(stopReason); err != nil {
		return err
	}
	st := r.tracker.Status(time.Now())
	r.log.Info("stopped", "reason", stopReason, "step", st.Step, "samples_seen", st.SamplesSeen, "prequential_acc", round4(st.PrequentialAcc))
	return nil
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// optionalRound4 is round4 for a figure that may not be measured yet.
func optionalRound4(x *float64) any {
	if x == nil {
		return "not measured"
	}
	return round4(*x)
}

func formatNames(fs []fp.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

// resumeOrStart restores the newest checkpoint that decodes and passes
// every check (see resume.go), falling back to the previous one, or builds a
// fresh model when there is none. A checkpoint that does not fit the
// configuration (other model, other input) is an error, not overwritten:
// the trained model is never lost silently. If the checkpoint resumed from
// has another normaliser than the one the source was opened with (that of
// a newer file that failed its checks), the source is reopened with it and
// its new first sample returned. Without a checkpoint the model starts
// from initNet (model.init) when given.
func (r *runner) resumeOrStart(ctx context.Context, first sensors.Sample, normBytes []byte, spec bnn.Spec, bopts bnn.Options, formats []fp.Format, initNet *bnn.Network) (sensors.Sample, error) {
	in := bnn.Shape{Height: r.shape.Height, Width: r.shape.Width, Channels: r.shape.Channels}
	bound, err := r.checkpointBound(spec, in, bopts.Outputs)
	if err != nil {
		return first, err
	}
	r.store.SetMaxSize(bound)
	var res *resumed
	_, err = r.store.LoadAccepted(func(ck *Checkpoint) error {
		var derr error
		res, derr = r.decodeCheckpoint(ck, bopts, formats)
		return derr
	})
	if startedHook != nil {
		defer func() { startedHook(r) }()
	}
	switch {
	case errors.Is(err, ErrNoCheckpoint):
		if err := r.checkInit(initNet, in); err != nil {
			return first, err
		}
		return first, r.fresh(spec, in, bopts, formats, initNet)
	case errors.Is(err, ErrStop):
		return first, err
	case err != nil:
		return first, fmt.Errorf("%w; %s", err, resumeFailedHelp(r.store.Dir()))
	}
	if !bytes.Equal(res.normBytes, normBytes) {
		if first, err = r.reopenSource(ctx, res); err != nil {
			return first, err
		}
	}
	r.adopt(res)
	return first, nil
}

func formatNamesJoined(fs []fp.Format) string { return strings.Join(formatNames(fs), ",") }

func (r *runner) bopConfig(formats []fp.Format) bop.Config {
	t := &r.cfg.Training
	return bop.Config{Gamma: float32(t.Gamma), Tau: float32(t.Tau), AdamLR: float32(t.AdamLR), Formats: formats, Seed: uint64(t.Seed)}
}

// replayBudgets splits replay.budget: the held-out slice takes an eighth
// (at least one sample's worth, so the buffer exists even when unused), the
// replay buffer the rest, so that together they stay within the budget.
func (r *runner) replayBudgets() (replay, holdout ByteSize) {
	one := ByteSize(ReplayBytesFor(r.shape.Size(), r.kind, 1))
	holdout = max(r.cfg.Replay.Budget/8, one)
	if r.cfg.Training.HoldoutFraction == 0 {
		holdout = one
	}
	return r.cfg.Replay.Budget - holdout, holdout
}

func (r *runner) fresh(spec bnn.Spec, in bnn.Shape, bopts bnn.Options, formats []fp.Format, initNet *bnn.Network) error {
	var err error
	if initNet != nil {
		r.net = initNet
	} else if r.net, err = bnn.New(spec, in, r.labels.Classes(), bopts); err != nil {
		return fmt.Errorf("model %s: %w", r.cfg.Model.Spec, err)
	}
	if r.opt, err = bop.New(r.net, r.bopConfig(formats)); err != nil {
		return err
	}
	features := r.shape.Size()
	budget, holdoutBudget := r.replayBudgets()
	outputs := r.net.Outputs()
	if r.replay, err = NewReplay(features, outputs, r.kind, budget, r.cfg.Training.Seed); err != nil {
		return fmt.Errorf("replay.budget: %w", err)
	}
	if r.holdout, err = NewReplay(features, outputs, r.kind, holdoutBudget, r.cfg.Training.Seed+1); err != nil {
		return fmt.Errorf("holdout: %w", err)
	}
	if r.tracker, err = NewTracker(Counters{}, DefaultAccuracyHorizon, DefaultStepHorizon); err != nil {
		return err
	}
	r.split = rand.New(rand.NewPCG(uint64(r.cfg.Training.Seed), 0))
	r.log.Info("starting a new model", "model", r.cfg.Model.Spec)
	return nil
}

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
		r.lastPrediction = lastPrediction{valid: true, class: class, score: softmaxMax(r.net.Logits(1)[:len(r.net.Classes())]), label: -1, reading: s.Reading}
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
// is and continues in the chosen one. The race's steps are undone; the
// replay cannot be rewound, so each arm trains on its own replay batches.
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
			}
		},
		Logf: func(format string, args ...any) { r.log.Debug(fmt.Sprintf(format, args...)) },
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
			row := z[i*outs : i*outs+c]
			hi := row[0]
			for _, v := range row {
				hi = max(hi, v)
			}
			var sum float64
			for _, v := range row {
				sum += math.Exp(float64(v - hi))
			}
			loss += math.Log(sum) - float64(row[labels[i]]-hi)
			if int(r.pred[i]) == labels[i] {
				correct++
			}
		}
	}
	n := float64(r.holdout.Len())
	return bop.Score{Loss: loss / n, Accuracy: float64(correct) / n, N: r.holdout.Len()}, nil
}

// softmaxMax is the probability of the arg-max class.
func softmaxMax(z []float32) float32 {
	if len(z) == 0 {
		return 0
	}
	hi := z[0]
	for _, v := range z[1:] {
		hi = max(hi, v)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v - hi))
	}
	return float32(1 / sum)
}

// saveCheckpoint writes every part of the training state as the latest
// checkpoint. Errors are logged, returned and reported on health; the
// training goes on with the previous checkpoint.
func (r *runner) saveCheckpoint(reason string) error {
	return r.writeState(reason, false)
}

// writeState writes the training state: as the latest checkpoint, or with
// failed set (or when the state fails checkState) to the failed slot, which
// leaves the latest and previous checkpoints as they are.
func (r *runner) writeState(reason string, failed bool) error {
	now := time.Now()
	m, sections, err := r.stateSections(reason, now)
	if err != nil {
		return err
	}
	c := r.tracker.Counters()
	var inconsistent error
	if !failed {
		if inconsistent = checkState(r.currentState(m)); inconsistent != nil {
			failed = true
		}
	}
	r.lastCheckpoint = now
	if failed {
		return r.writeFailed(now, reason, inconsistent, sections)
	}
	size, err := r.store.Save(now, sections...)
	if err != nil {
		r.ckStatus.failed(now, err)
		r.log.Error("checkpoint failed; the previous one is kept", "reason", reason, "err", err)
		return err
	}
	r.ckStatus.ok()
	r.checkpointAt = now
	r.log.Info("checkpoint written", "reason", reason, "file", r.store.LatestPath(), "bytes", size,
		"seconds", round4(time.Since(now).Seconds()), "step", c.Step)
	return nil
}

// stateSections is the training state as checkpoint sections, and the meta
// they carry.
func (r *runner) stateSections(reason string, now time.Time) (checkpointMeta, []Section, error) {
	c := r.tracker.Counters()
	counters, err := json.Marshal(c)
	if err != nil {
		return checkpointMeta{}, nil, err
	}
	m := checkpointMeta{
		Version: r.opts.Version, Model: r.cfg.Model.Spec, Source: r.cfg.Source.Spec,
		Momentum: formatNames(r.opt.Formats()), Classes: r.net.Classes(), Outputs: r.net.Outputs(), Input: r.shape.String(),
		Step: c.Step, Saved: now.UTC(), Reason: reason,
	}
	meta, err := json.Marshal(m)
	if err != nil {
		return checkpointMeta{}, nil, err
	}
	sections := []Section{BytesSection(sectionMeta, meta),
		Section{Name: sectionModel, Body: r.net},
		Section{Name: sectionOptimizer, Body: writerToFunc(r.opt.WriteState)},
		Section{Name: sectionReplay, Body: r.replay},
		Section{Name: sectionHoldout, Body: r.holdout},
		BytesSection(sectionCounters, counters)}
	if norm := sensors.NormalizerOf(r.src); norm != nil {
		b, err := norm.MarshalBinary()
		if err != nil {
			return checkpointMeta{}, nil, fmt.Errorf("checkpoint: normalizer: %w", err)
		}
		sections = append(sections, BytesSection(sectionNormalizer, b))
		// The model file carries it too, so an exported model scales its
		// inputs as in training.
		r.net.SetNormalizer(bnn.Normalizer{Mean: norm.Mean, Std: norm.Std})
	}
	return m, sections, nil
}

type writerToFunc func(io.Writer) (int64, error)

func (f writerToFunc) WriteTo(w io.Writer) (int64, error) { return f(w) }
