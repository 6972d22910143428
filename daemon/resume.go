package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/replay"
	"github.com/bnnd/bnnd/sensors"
)

// A resume decodes a checkpoint completely into a resumed value, checks it
// (checkState and checkFits), and only then adopts it. Nothing of the
// runner changes before the adoption, so a checkpoint that fails any check
// costs nothing but the fallback to the previous one. A new check goes into
// checkState, which also guards every save: the store never rotates in a
// state that the next start would refuse.

// resumed is a training state decoded from a checkpoint, not yet in use.
type resumed struct {
	path      string
	created   time.Time
	meta      checkpoint.Meta
	net       *bnn.Network
	opt       *bop.Optimizer
	replay    *replay.Buffer
	holdout   *replay.Buffer
	counters  Counters
	tracker   *tracker
	norm      *sensors.Normalizer // nil: the source has none
	normBytes []byte
	// capacities before the replay.budget of this run was applied
	replayCapBefore, holdoutCapBefore int
}

// maxNormalizerSection bounds the normaliser section read before the
// source is opened: 8 bytes per channel and a header.
const maxNormalizerSection = 64 << 10

// openSource opens the source with the normaliser the model was trained
// with: that of the newest checkpoint whose normaliser section is intact
// and which the source accepts, else that of initNet (model.init, for a
// state directory without checkpoints), else none. The resume checks later
// that the checkpoint it adopts has the same one (see resumeOrStart). It
// returns the checkpoint's normaliser section used (nil for none).
func (r *runner) openSource(initNet *bnn.Network) ([]byte, error) {
	peeked, errs := r.store.PeekSection(sectionNormalizer, maxNormalizerSection)
	for _, err := range errs {
		r.log.Debug("checkpoint normalizer unreadable", "err", err)
	}
	opts := sensors.LoadOptions{Window: r.cfg.Source.Window, Hop: r.cfg.Source.Hop, Labels: r.labels}
	for _, p := range peeked {
		norm := new(sensors.Normalizer)
		err := norm.UnmarshalBinary(p.Data)
		if err == nil {
			opts.Norm = norm
			if r.src, err = sensors.Open(r.cfg.Source.Spec, opts); err == nil {
				return p.Data, nil
			}
		}
		r.log.Warn("the source cannot use the normalizer of a checkpoint", "file", p.Path, "err", err)
	}
	opts.Norm = nil
	if initNet != nil {
		if n := initNet.Normalizer(); len(n.Mean) > 0 {
			opts.Norm = &sensors.Normalizer{Mean: n.Mean, Std: n.Std}
		}
	}
	var err error
	if r.src, err = sensors.Open(r.cfg.Source.Spec, opts); err != nil {
		if opts.Norm != nil {
			return nil, fmt.Errorf("source.spec %q with the normaliser of model.init %s: %w", r.cfg.Source.Spec, r.cfg.Model.Init, err)
		}
		return nil, fmt.Errorf("source.spec %q: %w", r.cfg.Source.Spec, err)
	}
	return nil, nil
}

// peekMeta reads the meta section of the newest checkpoint that has it
// intact, as openSource reads the normaliser; nil when there is none.
func (r *runner) peekMeta() (*checkpoint.Meta, string) {
	peeked, errs := r.store.PeekSection(checkpoint.MetaSection, maxMetaSection)
	for _, err := range errs {
		r.log.Debug("checkpoint meta unreadable", "err", err)
	}
	for _, p := range peeked {
		var m checkpoint.Meta
		if err := json.Unmarshal(p.Data, &m); err == nil {
			return &m, p.Path
		}
	}
	return nil, ""
}

// maxMetaSection bounds the meta section read before the source is
// opened: a few hundred bytes and the class names.
const maxMetaSection = 64 << 10

// checkpointBound is the largest checkpoint file this configuration can
// have written: the model and fp32 momenta (the widest encoding) for the
// configured spec and the source's input, Adam state, the replay buffers,
// and slack for meta, counters and normaliser. The replay part is four
// times replay.budget so that a checkpoint written before the budget was
// lowered still loads (Resize shrinks it).
func (r *runner) checkpointBound(spec bnn.Spec, in bnn.Shape, outputs int) (int64, error) {
	net, err := bnn.New(spec, in, nil, bnn.Options{Batch: 2, Threads: 1, Seed: 1, Outputs: max(outputs, len(r.labels.Classes()), 2)})
	if err != nil {
		return 0, fmt.Errorf("model %s: %w", r.cfg.Model.Spec, err)
	}
	mem := net.Memory()
	var momenta int64
	for _, l := range net.Layers() {
		momenta += int64(l.Out) * int64(l.Stride) * 4
	}
	const slack = 1 << 20
	return mem.BinaryWeights + 3*mem.RealParams + momenta + 4*int64(r.cfg.Replay.Budget) + slack, nil
}

// checkFits checks a sound checkpoint against this run's configuration and
// source. A mismatch stops the start (ErrStop): falling back to an older
// checkpoint would let the next saves rotate the newer model away. The
// label box was filled from the newest checkpoint's meta; an older one
// that falls back may lack the classes named since, which adopt adds.
func (r *runner) checkFits(s *resumed) error {
	m := &s.meta
	classes := r.labels.Classes()
	live := sensors.LabelBoxOf(r.src) != nil
	fits := slices.Equal(m.Classes, classes) ||
		live && len(m.Classes) < len(classes) && slices.Equal(m.Classes, classes[:len(m.Classes)]) && s.net.Outputs() >= len(classes)
	if m.Model != r.cfg.Model.Spec || m.Input != r.shape.String() || !fits {
		return fmt.Errorf("%w: checkpoint %s holds model %s on input %s with classes %q, but the configuration asks for %s on %s with classes %q; "+
			"use another checkpoint.dir or move the checkpoint away to start a new model",
			checkpoint.ErrStop, s.path, m.Model, m.Input, m.Classes, r.cfg.Model.Spec, r.shape.String(), classes)
	}
	return nil
}

// adopt makes a checked state the runner's. It cannot fail.
func (r *runner) adopt(s *resumed) {
	r.net, r.opt, r.replay, r.holdout, r.tracker = s.net, s.opt, s.replay, s.holdout, s.tracker
	for _, name := range r.labels.Classes()[len(r.net.Classes()):] {
		r.net.AddClass(name) // checkFits made sure there is room
	}
	for _, p := range []struct {
		name   string
		before int
		buf    *replay.Buffer
	}{{sectionReplay, s.replayCapBefore, s.replay}, {sectionHoldout, s.holdoutCapBefore, s.holdout}} {
		if p.buf.Capacity() != p.before {
			r.log.Info("replay.budget changed since the checkpoint", "buffer", p.name, "capacity_before", p.before, "capacity", p.buf.Capacity())
		}
	}
	// The split stream continues from a point derived from the count, so a
	// resumed run does not replay the same held-out choices.
	r.split = rand.New(rand.NewPCG(uint64(r.cfg.Training.Seed), s.counters.SamplesLabeled))
	r.checkpointAt = s.created
	r.log.Info("resumed", "checkpoint", s.path, "created", s.created, "step", s.counters.Step, "samples_seen", s.counters.SamplesSeen,
		"momentum", formatNames(r.opt.Formats()))
}

// currentState is the runner's training state in the form checkState
// takes, with the meta a checkpoint of it would carry.
func (r *runner) currentState(meta checkpoint.Meta) *resumed {
	s := &resumed{meta: meta, net: r.net, opt: r.opt, replay: r.replay, holdout: r.holdout, counters: r.tracker.Counters()}
	s.norm = sensors.NormalizerOf(r.src)
	return s
}

// resumeFailedHelp says how to proceed when no checkpoint can be resumed.
func resumeFailedHelp(dir string) string {
	return fmt.Sprintf("no checkpoint in %s can be resumed; to proceed: 'bnnd checkpoint inspect %s' shows what is wrong, "+
		"'bnnd checkpoint list %s' and 'bnnd checkpoint restore FILE' bring back an archived one, "+
		"or move the checkpoint files away to start a new model", dir, dir, dir)
}

// reopenSource opens the source again with the normaliser of the state
// about to be adopted and returns its first sample. It happens only when a
// newer checkpoint with another normaliser failed its checks.
func (r *runner) reopenSource(ctx context.Context, s *resumed) (sensors.Sample, error) {
	r.log.Warn("the checkpoint resumed from has another normalizer than the newer one the source was opened with; reopening the source",
		"checkpoint", s.path)
	if err := r.src.Close(); err != nil {
		r.log.Warn("closing the source", "err", err)
	}
	src, err := sensors.Open(r.cfg.Source.Spec, sensors.LoadOptions{Window: r.cfg.Source.Window, Hop: r.cfg.Source.Hop, Labels: r.labels, Norm: s.norm})
	if err != nil {
		return sensors.Sample{}, fmt.Errorf("source.spec %q with the normaliser of checkpoint %s: %w", r.cfg.Source.Spec, s.path, err)
	}
	r.src = src
	first, err := src.Next(ctx)
	if err != nil {
		return sensors.Sample{}, fmt.Errorf("source %q: first sample: %w", r.cfg.Source.Spec, err)
	}
	if classes := r.labels.Classes(); first.Shape != r.shape || !slices.Equal(src.Classes(), classes) {
		return sensors.Sample{}, fmt.Errorf("source %q reopened with the normaliser of checkpoint %s gives shape %v and classes %q, before %v and %q",
			r.cfg.Source.Spec, s.path, first.Shape, src.Classes(), r.shape, classes)
	}
	return first, nil
}

// startedHook, when set by a test, is given the runner once its state is
// resumed or fresh; commands then go through its handleCommand, as from
// MQTT.
var startedHook func(r *runner)

// sampleFault, when set by a test, fails the training loop after a sample
// as a training error would.
var sampleFault func(r *runner) error

// trainingFailed is the loop's answer to a training error. The state at
// the error is suspect (it may be the cause), so it goes to the failed slot
// for inspection and never rotates a good checkpoint away: the next start
// resumes from the last checkpoint written before the error.
func (r *runner) trainingFailed(cause error) error {
	if err := r.writeState("error", true); err != nil {
		return fmt.Errorf("%w (writing the state at the error also failed: %v; the latest checkpoint %s is kept)", cause, err, r.store.LatestPath())
	}
	return fmt.Errorf("%w (the latest checkpoint %s is kept; the state at the error is in %s)", cause, r.store.LatestPath(), r.store.FailedPath())
}

// checkpointStatus is what health reports about failed saves.
type checkpointStatus struct {
	failing  bool // the last attempt failed
	failures uint64
	lastErr  string
	lastAt   time.Time
}

func (s *checkpointStatus) failed(now time.Time, err error) {
	s.failing = true
	s.failures++
	s.lastErr = err.Error()
	s.lastAt = now
}

func (s *checkpointStatus) ok() { s.failing = false }

func (s *checkpointStatus) fill(h *healthMsg) {
	h.CheckpointFailing, h.CheckpointFailures, h.CheckpointError = s.failing, s.failures, s.lastErr
	if !s.lastAt.IsZero() {
		at := s.lastAt.UTC()
		h.CheckpointErrorAt = &at
	}
}
