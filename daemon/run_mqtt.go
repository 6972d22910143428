package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/internal/procstat"
	"github.com/bnnd/bnnd/mqtt"
	"github.com/bnnd/bnnd/sensors"
)

func (r *runner) mqttConfig() (mqtt.Config, error) {
	clientID, err := r.cfg.ResolvedClientID()
	if err != nil {
		return mqtt.Config{}, err
	}
	stateDir, err := r.cfg.StateDir()
	if err != nil {
		return mqtt.Config{}, err
	}
	return r.cfg.MQTTClientConfig(r.deviceID, clientID, stateDir, r.net.Classes(), r.opts.Version), nil
}

func (r *runner) startMQTT(ctx context.Context) error {
	mc, err := r.mqttConfig()
	if err != nil {
		return err
	}
	r.mq, err = mqtt.New(mc, r.handleCommand, r.log)
	if err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	r.mq.SetLabel(r.label.Name)
	if err := r.mq.Start(ctx); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	return nil
}

// handleCommand runs on the MQTT dispatcher goroutine: it hands the command
// to the training loop, which owns all training state, and waits for its
// answer.
func (r *runner) handleCommand(ctx context.Context, cmd mqtt.Command) (any, error) {
	req := cmdRequest{cmd: cmd, reply: make(chan cmdReply, 1)}
	select {
	case r.cmds <- req:
	case <-r.stopped:
		return nil, fmt.Errorf("%s: the daemon is stopping", cmd.Name)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: the training loop did not take the command in time: %w", cmd.Name, ctx.Err())
	}
	select {
	case rep := <-req.reply:
		return rep.result, rep.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no answer from the training loop in time: %w", cmd.Name, ctx.Err())
	}
}

// command carries out one command on the training goroutine.
func (r *runner) command(cmd mqtt.Command) (any, error) {
	switch cmd.Name {
	case mqtt.CmdLabel:
		return r.setLabel(cmd.LabelName, cmd.LabelHold)
	case mqtt.CmdPause:
		r.paused = true
		r.notifier.SetPaused(true)
		r.log.Info("paused")
		return map[string]any{"paused": true}, nil
	case mqtt.CmdResume:
		r.paused = false
		r.notifier.SetPaused(false)
		r.log.Info("resumed training")
		return map[string]any{"paused": false}, nil
	case mqtt.CmdCheckpoint:
		if err := r.saveCheckpoint("command"); err != nil {
			return nil, err
		}
		return map[string]any{"file": r.store.LatestPath(), "step": r.tracker.Counters().Step}, nil
	case mqtt.CmdReset:
		spec, err := bnn.ParseSpec(r.cfg.Model.Spec)
		if err != nil {
			return nil, err
		}
		archived, err := r.archiveBeforeReset()
		if err != nil {
			return nil, err
		}
		in := r.net.InputShape()
		if err := r.fresh(spec, in, r.net.Options(), r.opt.Formats(), nil); err != nil {
			return nil, err
		}
		r.newLabelled = 0
		if err := r.saveCheckpoint("reset"); err != nil {
			return nil, err
		}
		res := map[string]any{"reset": true}
		if archived != "" {
			res["archived"] = archived
		}
		return res, nil
	case mqtt.CmdMomentum:
		if len(cmd.Formats) == 1 && cmd.Formats[0] == "auto" {
			// Back to the 8-bit warm-up format (every candidate is
			// narrower, so the momenta do not grow), and the race runs
			// after the next step.
			if err := r.opt.Convert([]fp.Format{bop.WarmupFormat(float32(r.cfg.Training.Tau))}); err != nil {
				return nil, fmt.Errorf("momentum: %w", err)
			}
			r.calibrating = true
			r.calibrateAt = r.tracker.Counters().Step + 1
			return map[string]any{"momentum": "auto", "calibration_at_step": r.calibrateAt}, nil
		}
		formats := make([]fp.Format, len(cmd.Formats))
		for i, name := range cmd.Formats {
			if name == "auto" {
				return nil, errors.New("momentum: auto applies to all layers; send it alone")
			}
			f, err := fp.ParseFormat(name)
			if err != nil {
				return nil, fmt.Errorf("momentum: %w", err)
			}
			formats[i] = f
		}
		if err := r.opt.Convert(formats); err != nil {
			return nil, fmt.Errorf("momentum: %w", err)
		}
		r.calibrating = false
		r.log.Info("momentum encoding switched", "momentum", formatNames(r.opt.Formats()))
		return map[string]any{"momentum": formatNames(r.opt.Formats())}, nil
	}
	return nil, fmt.Errorf("command %q is not handled by this daemon", cmd.Name)
}

// memoryMsg is the memory topic: the exact training-state breakdown and the
// process's view.
type memoryMsg struct {
	TrainingBytes int64      `json:"training_bytes"`
	Model         bnn.Memory `json:"model"`
	ReplayBytes   int64      `json:"replay_bytes"`
	HoldoutBytes  int64      `json:"holdout_bytes"`
	ReplaySamples int        `json:"replay_samples"`
	ReplayCap     int        `json:"replay_capacity"`
	GoHeapBytes   uint64     `json:"go_heap_bytes"`
	RSSBytes      int64      `json:"rss_bytes"`
}

type layerEncoding struct {
	Layer         int     `json:"layer"`
	Format        string  `json:"format"`
	Bits          int     `json:"bits"`
	LostRatio     float64 `json:"lost_ratio"`
	UnderflowRate float64 `json:"underflow_ratio"`
	FlipRate      float64 `json:"flip_rate"`
}

type encodingMsg struct {
	Layers       []layerEncoding `json:"layers"`
	MomentumBits float64         `json:"momentum_bits"`
	LostRatio    float64         `json:"lost_ratio"`
}

type healthMsg struct {
	Source          string  `json:"source"`
	SourceState     string  `json:"source_state"`
	SourceHealthy   bool    `json:"source_healthy"`
	SourceErrors    uint64  `json:"source_errors"`
	SourceReadings  uint64  `json:"source_readings"`  // sensor readings of a live source (windows of others)
	CheckpointAgeS  float64 `json:"checkpoint_age_s"` // -1 before the first checkpoint
	BrokerConnected bool    `json:"broker_connected"`
	Paused          bool    `json:"paused"`
	// A checkpoint save that failed (disk full, I/O error, a state that
	// failed its checks): failing while the last attempt failed; the last
	// error and its time stay after a later success.
	CheckpointFailing  bool       `json:"checkpoint_failing"`
	CheckpointFailures uint64     `json:"checkpoint_failures"`
	CheckpointError    string     `json:"checkpoint_error,omitempty"`
	CheckpointErrorAt  *time.Time `json:"checkpoint_error_at,omitempty"`
}

// publish hands the latest figures to the telemetry mailboxes; the client
// sends them at the configured rates and never blocks us. The figures that
// cost more to gather (memory, encoding, health) only when slow is set.
func (r *runner) publish(now time.Time, slow bool) {
	if r.mq == nil && r.metrics == nil {
		return
	}
	pub := func(topic string, v any) {
		if r.mq == nil {
			return
		}
		if err := r.mq.Publish(topic, v); err != nil {
			r.log.Debug("publish", "topic", topic, "err", err)
		}
	}
	status := r.tracker.Status(now)
	if sensors.LabelBoxOf(r.src) != nil {
		status.Readings = r.src.Health().Samples
	}
	pub(mqtt.TopicProgress, status)
	if !slow {
		return
	}

	mem := r.net.Memory()
	r.opt.AddMemory(&mem)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	memMsg := memoryMsg{
		TrainingBytes: mem.Total() + r.replay.Bytes() + r.holdout.Bytes(),
		Model:         mem, ReplayBytes: r.replay.Bytes(), HoldoutBytes: r.holdout.Bytes(),
		ReplaySamples: r.replay.Len(), ReplayCap: r.replay.Capacity(),
		GoHeapBytes: ms.HeapAlloc, RSSBytes: procstat.RSS(),
	}
	pub(mqtt.TopicMemory, memMsg)

	enc := encodingMsg{}
	var lost, values float64
	totals := r.opt.Totals()
	formats := r.opt.Formats()
	for i, c := range totals {
		f := formats[min(i, len(formats)-1)]
		le := layerEncoding{Layer: i, Format: f.String(), Bits: f.Bits(), LostRatio: c.LostRatio(), FlipRate: c.FlipRate()}
		if c.Values > 0 {
			le.UnderflowRate = float64(c.Underflow) / float64(c.Values)
		}
		enc.Layers = append(enc.Layers, le)
		lost += float64(c.Lost)
		values += float64(c.Values)
	}
	enc.MomentumBits = bop.MomentumBits(r.net, formats)
	if values > 0 {
		enc.LostRatio = lost / values
	}
	pub(mqtt.TopicEncoding, enc)

	if r.mq != nil {
		h := r.src.Health()
		age := -1.0 // no checkpoint yet
		if !r.checkpointAt.IsZero() {
			age = now.Sub(r.checkpointAt).Seconds()
		}
		hm := healthMsg{
			Source: r.cfg.Source.Spec, SourceState: h.State, SourceHealthy: h.Healthy, SourceErrors: h.Errors, SourceReadings: h.Samples,
			CheckpointAgeS: age, BrokerConnected: r.mq.Connected(), Paused: r.paused,
		}
		r.ckStatus.fill(&hm)
		pub(mqtt.TopicHealth, hm)
	}
	if r.metrics != nil {
		r.metrics.snap.Store(&metricsSnapshot{
			status: status, trainingBytes: memMsg.TrainingBytes, replayBytes: memMsg.ReplayBytes,
			replaySamples: memMsg.ReplaySamples, momentumBits: enc.MomentumBits, lostRatio: enc.LostRatio,
			paused: r.paused, checkpointAt: r.checkpointAt,
			checkpointFailing: r.ckStatus.failing, checkpointFailures: r.ckStatus.failures, checkpointErrorAt: r.ckStatus.lastAt,
		})
	}
	if publishedHook != nil {
		publishedHook()
	}
}

// publishedHook, when set by a test, is called after each hand-over of the
// slow figures (memory, encoding, health and /metrics).
var publishedHook func()

// publishPrediction hands the latest prediction to MQTT when the topic's
// interval has passed since the last one: at the window's own time, not
// the loop's tick, so a short interval sees every window.
func (r *runner) publishPrediction(now time.Time) {
	if r.mq == nil || now.Sub(r.predictionSent) < r.cfg.MQTT.Intervals.Prediction {
		return
	}
	r.predictionSent = now
	if err := r.mq.Publish(mqtt.TopicPrediction, r.lastPrediction.message(r.net.Classes())); err != nil {
		r.log.Debug("publish", "topic", mqtt.TopicPrediction, "err", err)
	}
}
