package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsSnapshot is what the Prometheus endpoint reports: the figures of
// the MQTT progress, memory and encoding topics, taken by the training loop
// at its tick and read by the HTTP handler without touching training state.
type metricsSnapshot struct {
	status        statusSnapshot
	trainingBytes int64
	replayBytes   int64
	replaySamples int
	momentumBits  float64
	lostRatio     float64
	paused        bool
	checkpointAt  time.Time

	checkpointFailing  bool
	checkpointFailures uint64
	checkpointErrorAt  time.Time
}

// metrics is a prometheus.Collector over the latest snapshot.
type metrics struct {
	snap atomic.Pointer[metricsSnapshot]
	desc map[string]*prometheus.Desc
}

var metricHelp = map[string]string{
	"bnnd_steps_total":                       "Bop steps taken.",
	"bnnd_samples_seen_total":                "Windows read from the source.",
	"bnnd_samples_trained_total":             "Samples in all mini-batches.",
	"bnnd_prequential_accuracy":              "Test-then-train accuracy (fading average).",
	"bnnd_holdout_accuracy":                  "Accuracy on the held-out slice at its last evaluation.",
	"bnnd_loss":                              "Training loss (fading average over steps).",
	"bnnd_samples_per_second":                "Source throughput.",
	"bnnd_flips_per_step":                    "Weights flipped per step (fading average).",
	"bnnd_training_state_bytes":              "Exact bytes of the training state (model, momenta, optimizer, replay buffers).",
	"bnnd_replay_bytes":                      "Bytes held by the replay buffer.",
	"bnnd_replay_samples":                    "Samples in the replay buffer.",
	"bnnd_momentum_bits":                     "Bits per momentum value (mean over layers).",
	"bnnd_lost_update_ratio":                 "Fraction of momentum updates lost to the encoding.",
	"bnnd_paused":                            "1 while training is paused.",
	"bnnd_last_checkpoint_timestamp_seconds": "Unix time of the last checkpoint written.",
	"bnnd_checkpoint_failures_total":         "Checkpoint saves that failed (disk full, I/O error, inconsistent state).",
	"bnnd_checkpoint_failing":                "1 while the last checkpoint save failed.",
	"bnnd_checkpoint_fail_timestamp_seconds": "Unix time of the last failed checkpoint save (0: none).",
}

func newMetrics() *metrics {
	m := &metrics{desc: map[string]*prometheus.Desc{}}
	for name, help := range metricHelp {
		m.desc[name] = prometheus.NewDesc(name, help, nil, nil)
	}
	m.snap.Store(&metricsSnapshot{})
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.desc {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.snap.Load()
	counter := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(m.desc[name], prometheus.CounterValue, v)
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(m.desc[name], prometheus.GaugeValue, v)
	}
	counter("bnnd_steps_total", float64(s.status.Step))
	counter("bnnd_samples_seen_total", float64(s.status.SamplesSeen))
	counter("bnnd_samples_trained_total", float64(s.status.SamplesTrained))
	gauge("bnnd_prequential_accuracy", s.status.PrequentialAcc)
	if s.status.HoldoutAcc != nil {
		gauge("bnnd_holdout_accuracy", *s.status.HoldoutAcc)
	}
	gauge("bnnd_loss", s.status.Loss)
	gauge("bnnd_samples_per_second", s.status.SamplesPerS)
	gauge("bnnd_flips_per_step", s.status.FlipsPerStep)
	gauge("bnnd_training_state_bytes", float64(s.trainingBytes))
	gauge("bnnd_replay_bytes", float64(s.replayBytes))
	gauge("bnnd_replay_samples", float64(s.replaySamples))
	gauge("bnnd_momentum_bits", s.momentumBits)
	gauge("bnnd_lost_update_ratio", s.lostRatio)
	paused := 0.0
	if s.paused {
		paused = 1
	}
	gauge("bnnd_paused", paused)
	ts := 0.0
	if !s.checkpointAt.IsZero() {
		ts = float64(s.checkpointAt.UnixNano()) / 1e9
	}
	gauge("bnnd_last_checkpoint_timestamp_seconds", ts)
	counter("bnnd_checkpoint_failures_total", float64(s.checkpointFailures))
	failing, errTS := 0.0, 0.0
	if s.checkpointFailing {
		failing = 1
	}
	if !s.checkpointErrorAt.IsZero() {
		errTS = float64(s.checkpointErrorAt.UnixNano()) / 1e9
	}
	gauge("bnnd_checkpoint_failing", failing)
	gauge("bnnd_checkpoint_fail_timestamp_seconds", errTS)
}

// serveMetrics listens on addr and serves /metrics (bnnd's figures plus the
// Go runtime and process collectors) until stop is called. A busy address
// is an error returned at once.
func serveMetrics(addr string, m *metrics, log *slog.Logger) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("prometheus.listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("prometheus endpoint stopped", "err", err)
		}
	}()
	log.Info("prometheus endpoint", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
