package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
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
	meta      checkpointMeta
	net       *bnn.Network
	opt       *bop.Optimizer
	replay    *Replay
	holdout   *Replay
	counters  Counters
	tracker   *Tracker
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
func (r *runner) peekMeta() (*checkpointMeta, string) {
	peeked, errs := r.store.PeekSection(sectionMeta, maxMetaSection)
	for _, err := range errs {
		r.log.Debug("checkpoint meta unreadable", "err", err)
	}
	for _, p := range peeked {
		var m checkpointMeta
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

// decodeCheckpoint decodes every section of ck and runs every check. It
// has no effect on the runner. A checkpoint that is sound but made for
// another configuration is an error wrapping ErrStop.
func (r *runner) decodeCheckpoint(ck *Checkpoint, bopts bnn.Options, formats []fp.Format) (*resumed, error) {
	section := func(name string) ([]byte, error) {
		b, ok := ck.Section(name)
		if !ok {
			return nil, fmt.Errorf("no %q section", name)
		}
		return b, nil
	}
	res := &resumed{path: ck.Path, created: ck.Created}
	b, err := section(sectionMeta)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &res.meta); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if b, err = section(sectionModel); err != nil {
		return nil, err
	}
	if res.net, err = bnn.ReadModel(bytes.NewReader(b), bopts); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if res.opt, err = bop.New(res.net, r.bopConfig(formats)); err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	if b, err = section(sectionOptimizer); err != nil {
		return nil, err
	}
	if err := res.opt.ReadState(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	for _, p := range []struct {
		name string
		dst  **Replay
	}{{sectionReplay, &res.replay}, {sectionHoldout, &res.holdout}} {
		if b, err = section(p.name); err != nil {
			return nil, err
		}
		if *p.dst, err = ReadReplay(b); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if b, err = section(sectionCounters); err != nil {
		return nil, err
	}
	if res.counters, err = ParseCounters(b); err != nil {
		return nil, err
	}
	if res.tracker, err = NewTracker(res.counters, DefaultAccuracyHorizon, DefaultStepHorizon); err != nil {
		return nil, err
	}
	if b, ok := ck.Section(sectionNormalizer); ok {
		res.norm = new(sensors.Normalizer)
		if err := res.norm.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("normalizer: %w", err)
		}
		res.normBytes = b
	}
	if err := checkState(res); err != nil {
		return nil, err
	}
	if err := r.checkFits(res); err != nil {
		return nil, err
	}

	// Prepared here rather than in adopt so that adopt cannot fail.
	replayBudget, holdoutBudget := r.replayBudgets()
	res.replayCapBefore, res.holdoutCapBefore = res.replay.Capacity(), res.holdout.Capacity()
	if err := res.replay.Resize(replayBudget); err != nil {
		return nil, fmt.Errorf("%w: replay.budget: %w", ErrStop, err)
	}
	if err := res.holdout.Resize(holdoutBudget); err != nil {
		return nil, fmt.Errorf("%w: replay.budget: %w", ErrStop, err)
	}
	if r.cfg.Training.Momentum != "auto" && formatNamesJoined(res.opt.Formats()) != formatNamesJoined(formats) {
		if err := res.opt.Convert(formats); err != nil {
			return nil, fmt.Errorf("%w: converting resumed momenta to %s: %w", ErrStop, r.cfg.Training.Momentum, err)
		}
	}
	return res, nil
}

// checkState checks that the parts of a training state agree with each
// other: what a checkpoint's checksums cannot tell. The state is that of a
// decoded checkpoint, or the runner's own before a save.
func checkState(s *resumed) error {
	net, m := s.net, &s.meta
	in := net.InputShape()
	features := in.Height * in.Width * in.Channels
	classes := net.Classes()
	input := sensors.Shape{Channels: in.Channels, Height: in.Height, Width: in.Width}.String()
	switch {
	case m.Model != net.Spec().Name:
		return fmt.Errorf("meta names model %s, the model section holds %s", m.Model, net.Spec().Name)
	case m.Input != input:
		return fmt.Errorf("meta names input %s, the model takes %s", m.Input, input)
	case !slices.Equal(m.Classes, classes):
		return fmt.Errorf("meta names classes %q, the model has %q", m.Classes, classes)
	case max(m.Outputs, len(m.Classes)) != net.Outputs():
		return fmt.Errorf("meta names %d output units, the model has %d", m.Outputs, net.Outputs())
	case m.Step != s.counters.Step:
		return fmt.Errorf("meta is of step %d, the counters of step %d", m.Step, s.counters.Step)
	case strings.Join(m.Momentum, ",") != formatNamesJoined(s.opt.Formats()):
		return fmt.Errorf("meta names momentum %v, the optimizer holds %v", m.Momentum, formatNames(s.opt.Formats()))
	}
	for _, p := range []struct {
		name string
		buf  *Replay
	}{{sectionReplay, s.replay}, {sectionHoldout, s.holdout}} {
		if p.buf.Features() != features {
			return fmt.Errorf("%s holds samples of %d values, the model takes %d", p.name, p.buf.Features(), features)
		}
		if p.buf.classes != net.Outputs() {
			return fmt.Errorf("%s holds labels of %d classes, the model has %d outputs", p.name, p.buf.classes, net.Outputs())
		}
		if l := p.buf.maxLabel(); l >= len(classes) {
			return fmt.Errorf("%s holds a sample of class %d, the model has %d classes", p.name, l, len(classes))
		}
	}
	if s.replay.Kind() != s.holdout.Kind() {
		return fmt.Errorf("replay stores %s values, holdout %s", s.replay.Kind(), s.holdout.Kind())
	}
	c := s.counters
	if c.SamplesLabeled > c.SamplesSeen {
		return fmt.Errorf("counters: %d samples labelled of %d seen", c.SamplesLabeled, c.SamplesSeen)
	}
	if offered := s.replay.Seen() + s.holdout.Seen(); offered > c.SamplesLabeled {
		return fmt.Errorf("replay and holdout were offered %d samples, the counters have %d labelled", offered, c.SamplesLabeled)
	}
	if s.norm != nil {
		if err := s.norm.Validate(); err != nil {
			return fmt.Errorf("normalizer: %w", err)
		}
		if s.norm.Channels() != in.Channels {
			return fmt.Errorf("normalizer scales %d channels, the model input has %d", s.norm.Channels(), in.Channels)
		}
		if mn := net.Normalizer(); len(mn.Mean) > 0 && (!slices.Equal(mn.Mean, s.norm.Mean) || !slices.Equal(mn.Std, s.norm.Std)) {
			return errors.New("the normalizer section differs from the one in the model")
		}
	} else if len(net.Normalizer().Mean) > 0 {
		return errors.New("the model was trained with a normalizer but there is no normalizer section")
	}
	return nil
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
			ErrStop, s.path, m.Model, m.Input, m.Classes, r.cfg.Model.Spec, r.shape.String(), classes)
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
		buf    *Replay
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
func (r *runner) currentState(meta checkpointMeta) *resumed {
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

// writeFailed writes a state to the failed slot. inconsistent is why a
// state meant to be the latest checkpoint is not (nil for a training
// error); it is then reported as a failed checkpoint.
func (r *runner) writeFailed(now time.Time, reason string, inconsistent error, sections []Section) error {
	size, err := r.store.SaveFailed(now, sections...)
	if inconsistent != nil {
		cause := fmt.Errorf("training state inconsistent, not written as the latest checkpoint: %w", inconsistent)
		r.ckStatus.failed(now, cause)
		r.log.Error("checkpoint refused; the previous one is kept", "reason", reason, "err", cause, "written_to", r.store.FailedPath(), "write_err", err)
		return cause
	}
	if err != nil {
		r.log.Error("writing the failed state", "reason", reason, "err", err)
		return err
	}
	r.log.Warn("state at the error written beside the checkpoints", "file", r.store.FailedPath(), "bytes", size,
		"step", r.tracker.Counters().Step, "latest", r.store.LatestPath())
	return nil
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
