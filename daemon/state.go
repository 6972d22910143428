// The training state as checkpoint sections: the names, the code that
// writes them (stateSections) and the code that reads them back
// (decodeCheckpoint, checked by checkState) sit together here, so a new
// section is one name and one line in each.

package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/replay"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/sensors"
)

// Checkpoint section names.
const (
	sectionModel     = "model"
	sectionOptimizer = "optimizer"
	sectionReplay    = "replay"
	sectionHoldout   = "holdout"
	sectionCounters  = "counters"
	// sectionNormalizer is the source's input standardisation (absent for
	// sources that have none, such as MNIST pixels).
	sectionNormalizer = "normalizer"
)

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
func (r *runner) stateSections(reason string, now time.Time) (checkpoint.Meta, []checkpoint.Section, error) {
	c := r.tracker.Counters()
	counters, err := json.Marshal(c)
	if err != nil {
		return checkpoint.Meta{}, nil, err
	}
	m := checkpoint.Meta{
		Version: r.opts.Version, Model: r.cfg.Model.Spec, Source: r.cfg.Source.Spec,
		Momentum: formatNames(r.opt.Formats()), Classes: r.net.Classes(), Outputs: r.net.Outputs(), Input: r.shape.String(),
		Step: c.Step, Saved: now.UTC(), Reason: reason,
	}
	meta, err := json.Marshal(m)
	if err != nil {
		return checkpoint.Meta{}, nil, err
	}
	sections := []checkpoint.Section{checkpoint.BytesSection(checkpoint.MetaSection, meta),
		checkpoint.Section{Name: sectionModel, Body: r.net},
		checkpoint.Section{Name: sectionOptimizer, Body: writerToFunc(r.opt.WriteState)},
		checkpoint.Section{Name: sectionReplay, Body: r.replay},
		checkpoint.Section{Name: sectionHoldout, Body: r.holdout},
		checkpoint.BytesSection(sectionCounters, counters)}
	if norm := sensors.NormalizerOf(r.src); norm != nil {
		b, err := norm.MarshalBinary()
		if err != nil {
			return checkpoint.Meta{}, nil, fmt.Errorf("checkpoint: normalizer: %w", err)
		}
		sections = append(sections, checkpoint.BytesSection(sectionNormalizer, b))
		// The model file carries it too, so an exported model scales its
		// inputs as in training.
		r.net.SetNormalizer(bnn.Normalizer{Mean: norm.Mean, Std: norm.Std})
	}
	return m, sections, nil
}

type writerToFunc func(io.Writer) (int64, error)

func (f writerToFunc) WriteTo(w io.Writer) (int64, error) { return f(w) }

// decodeCheckpoint decodes every section of ck and runs every check. It
// has no effect on the runner. A checkpoint that is sound but made for
// another configuration is an error wrapping ErrStop.
func (r *runner) decodeCheckpoint(ck *checkpoint.File, bopts bnn.Options, formats []fp.Format) (*resumed, error) {
	section := func(name string) ([]byte, error) {
		b, ok := ck.Section(name)
		if !ok {
			return nil, fmt.Errorf("no %q section", name)
		}
		return b, nil
	}
	res := &resumed{path: ck.Path, created: ck.Created}
	b, err := section(checkpoint.MetaSection)
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
		dst  **replay.Buffer
	}{{sectionReplay, &res.replay}, {sectionHoldout, &res.holdout}} {
		if b, err = section(p.name); err != nil {
			return nil, err
		}
		if *p.dst, err = replay.Read(b); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if b, err = section(sectionCounters); err != nil {
		return nil, err
	}
	if res.counters, err = ParseCounters(b); err != nil {
		return nil, err
	}
	if res.tracker, err = newTracker(res.counters, defaultAccuracyHorizon, defaultStepHorizon); err != nil {
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
		return nil, fmt.Errorf("%w: replay.budget: %w", checkpoint.ErrStop, err)
	}
	if err := res.holdout.Resize(holdoutBudget); err != nil {
		return nil, fmt.Errorf("%w: replay.budget: %w", checkpoint.ErrStop, err)
	}
	if r.cfg.Training.Momentum != "auto" && formatNamesJoined(res.opt.Formats()) != formatNamesJoined(formats) {
		if err := res.opt.Convert(formats); err != nil {
			return nil, fmt.Errorf("%w: converting resumed momenta to %s: %w", checkpoint.ErrStop, r.cfg.Training.Momentum, err)
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
		buf  *replay.Buffer
	}{{sectionReplay, s.replay}, {sectionHoldout, s.holdout}} {
		if p.buf.Features() != features {
			return fmt.Errorf("%s holds samples of %d values, the model takes %d", p.name, p.buf.Features(), features)
		}
		if p.buf.Classes() != net.Outputs() {
			return fmt.Errorf("%s holds labels of %d classes, the model has %d outputs", p.name, p.buf.Classes(), net.Outputs())
		}
		if l := p.buf.MaxLabel(); l >= len(classes) {
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

// writeFailed writes a state to the failed slot. inconsistent is why a
// state meant to be the latest checkpoint is not (nil for a training
// error); it is then reported as a failed checkpoint.
func (r *runner) writeFailed(now time.Time, reason string, inconsistent error, sections []checkpoint.Section) error {
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

// archiveBeforeReset writes the current training state into the archive,
// so that a reset can be undone with 'bnnd checkpoint restore'. With
// checkpoint.archive_keep 0 it archives nothing. A failed archive refuses
// the reset: the trained model is not replaced unless it is kept.
func (r *runner) archiveBeforeReset() (string, error) {
	keep := r.cfg.Checkpoint.ArchiveKeep
	if keep <= 0 {
		return "", nil
	}
	now := time.Now()
	_, sections, err := r.stateSections("archived before reset", now)
	if err != nil {
		return "", err
	}
	path, err := r.store.Archive(now, keep, sections...)
	if err != nil {
		r.ckStatus.failed(now, err)
		return "", fmt.Errorf("reset refused: archiving the current model failed: %w", err)
	}
	r.log.Info("checkpoint archived before reset", "file", path, "step", r.tracker.Counters().Step)
	return path, nil
}
