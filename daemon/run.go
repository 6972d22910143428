package daemon

import (
	"bytes"
	"context"
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
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/daemon/replay"
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

// Run is 'bnnd run': it opens the source, resumes from the newest valid
// checkpoint in the state directory (or starts a fresh model), connects
// telemetry, and trains incrementally until ctx is done or the source ends.
// On the way out it writes a final checkpoint and publishes "offline". A
// clean stop (ctx cancelled, SIGTERM) returns nil.
func Run(ctx context.Context, cfg *config.Config, opts RunOptions) error {
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
func NewLogger(w io.Writer, cfg config.LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	ho := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

type runner struct {
	cfg  *config.Config
	opts RunOptions
	log  *slog.Logger

	deviceID string
	store    *checkpoint.Store
	notifier *systemd.Notifier
	mq       *mqtt.Client
	metrics  *metrics // nil unless prometheus.listen is set
	cmds     chan cmdRequest
	stopped  chan struct{} // closed when the loop no longer takes commands

	src    sensors.Source
	labels *sensors.LabelBox // what the person teaching says; its classes lead the network's
	shape  sensors.Shape
	kind   replay.Storage

	net     *bnn.Network
	opt     *bop.Optimizer
	replay  *replay.Buffer
	holdout *replay.Buffer
	tracker *tracker
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
	unlock, err := checkpoint.LockStateDir(stateDir)
	if err != nil {
		return err
	}
	defer unlock()
	r.store, err = checkpoint.Open(stateDir, cfg.Checkpoint.KeepPrevious, r.log)
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
	r.kind = replay.Float16
	if sensors.BytePixelsOf(r.src) {
		r.kind = replay.Uint8
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

	if cfg.MQTT.Broker != config.BrokerNone {
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
	_, err = r.store.LoadAccepted(func(ck *checkpoint.File) error {
		var derr error
		res, derr = r.decodeCheckpoint(ck, bopts, formats)
		return derr
	})
	if startedHook != nil {
		defer func() { startedHook(r) }()
	}
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		if err := r.checkInit(initNet, in); err != nil {
			return first, err
		}
		return first, r.fresh(spec, in, bopts, formats, initNet)
	case errors.Is(err, checkpoint.ErrStop):
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
	if r.replay, err = replay.New(features, outputs, r.kind, budget, r.cfg.Training.Seed); err != nil {
		return fmt.Errorf("replay.budget: %w", err)
	}
	if r.holdout, err = replay.New(features, outputs, r.kind, holdoutBudget, r.cfg.Training.Seed+1); err != nil {
		return fmt.Errorf("holdout: %w", err)
	}
	if r.tracker, err = newTracker(Counters{}, defaultAccuracyHorizon, defaultStepHorizon); err != nil {
		return err
	}
	r.split = rand.New(rand.NewPCG(uint64(r.cfg.Training.Seed), 0))
	r.log.Info("starting a new model", "model", r.cfg.Model.Spec)
	return nil
}
