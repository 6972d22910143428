package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/daemon/replay"
	"github.com/bnnd/bnnd/internal/testutil"
	"github.com/bnnd/bnnd/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bnnd/bnnd/fp"
)

// testLogger sends the daemon's log to the test log (shown on failure).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func runConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.Source.Spec = "synthetic-imu,pace=0"
	cfg.MQTT.Broker = config.BrokerNone
	cfg.MQTT.DeviceID = "testdev"
	cfg.Checkpoint.Dir = t.TempDir()
	cfg.Training.Threads = 2
	cfg.Training.Momentum = "e4m3b28s"
	cfg.Replay.Budget = 256 << 10
	cfg.Model.Spec = "mlp:64" // small, so the test is quick under emulation
	return cfg
}

func loadCounters(t *testing.T, dir string) (Counters, checkpoint.Meta) {
	t.Helper()
	st, err := checkpoint.Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ck.Section(sectionCounters)
	c, err := ParseCounters(b)
	if err != nil {
		t.Fatal(err)
	}
	var meta checkpoint.Meta
	b, _ = ck.Section(checkpoint.MetaSection)
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	return c, meta
}

func TestRunTrainsCheckpointsAndResumes(t *testing.T) {
	cfg := runConfig(t)
	const n = 1500
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: n}); err != nil {
		t.Fatal(err)
	}
	first, meta := loadCounters(t, cfg.Checkpoint.Dir)
	if first.SamplesSeen != n || first.Step == 0 || first.SamplesTrained != first.Step*uint64(cfg.Training.Batch) {
		t.Fatalf("after the first run: %+v", first)
	}
	if meta.Reason != "sample limit" || meta.Momentum[0] != "e4m3b28s" || meta.Model != "mlp:64" {
		t.Errorf("meta %+v", meta)
	}
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: n}); err != nil {
		t.Fatal(err)
	}
	second, _ := loadCounters(t, cfg.Checkpoint.Dir)
	st, _ := checkpoint.Open(cfg.Checkpoint.Dir, true, nil)
	if ck, err := st.Load(); err != nil {
		t.Fatal(err)
	} else if b, ok := ck.Section(sectionNormalizer); !ok || len(b) == 0 {
		t.Error("the checkpoint has no normalizer section for a standardised source")
	}
	if second.SamplesSeen != 2*n || second.Step <= first.Step {
		t.Fatalf("the second run did not continue the first: %+v then %+v", first, second)
	}
	// Chance is 1/5: after 3000 windows the prequential accuracy is well above.
	tr, _ := newTracker(second, defaultAccuracyHorizon, defaultStepHorizon)
	acc := tr.Status(time.Now()).PrequentialAcc
	t.Logf("prequential accuracy after %d samples: %.3f", 2*n, acc)
	if acc < 0.35 {
		t.Errorf("prequential accuracy %.3f after %d samples; the model does not learn", acc, 2*n)
	}

	// A checkpoint of another model is refused, not overwritten.
	other := *cfg
	other.Model.Spec = "mlp-s"
	err := Run(context.Background(), &other, RunOptions{Logger: testLogger(t), MaxSamples: 10})
	if err == nil || !strings.Contains(err.Error(), "holds model mlp:64") {
		t.Fatalf("other model: %v", err)
	}
	if again, _ := loadCounters(t, cfg.Checkpoint.Dir); again != second {
		t.Error("the refused run changed the checkpoint")
	}

	// A smaller replay.budget on resume shrinks the buffers to fit.
	smaller := *cfg
	smaller.Replay.Budget = 64 << 10
	if err := Run(context.Background(), &smaller, RunOptions{Logger: testLogger(t), MaxSamples: 10}); err != nil {
		t.Fatal(err)
	}
	ck, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, name := range []string{sectionReplay, sectionHoldout} {
		b, _ := ck.Section(name)
		rb, err := replay.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		total += replay.BytesFor(rb.Features(), rb.Kind(), rb.Capacity())
	}
	if total > int64(smaller.Replay.Budget) {
		t.Errorf("after resuming with a %s budget the buffers need %d bytes", smaller.Replay.Budget, total)
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	cfg := runConfig(t)
	cfg.Training.Gamma = 3
	err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("invalid config: %v", err)
	}
	cfg = runConfig(t)
	cfg.Source.Spec = "nosuchsource:x"
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "source.spec") {
		t.Fatalf("bad source: %v", err)
	}
}

// mqttWatcher records every message under a topic filter.
type mqttWatcher struct {
	t       *testing.T
	client  paho.Client
	mu      sync.Mutex
	msgs    []paho.Message
	arrived chan struct{} // closed and replaced on every message
}

var watcherID atomic.Int64

func watch(t *testing.T, addr, filter string) *mqttWatcher {
	return watchAs(t, addr, mqtt.Credentials{}, filter)
}

// watchAs is watch logged in as who (the embedded broker wants a login).
func watchAs(t *testing.T, addr string, who mqtt.Credentials, filter string) *mqttWatcher {
	w := &mqttWatcher{t: t, arrived: make(chan struct{})}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("watcher-%d", watcherID.Add(1))).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetUsername(who.Username).SetPassword(who.Password)
	w.client = paho.NewClient(opts)
	if tok := w.client.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	tok := w.client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		close(w.arrived)
		w.arrived = make(chan struct{})
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { w.client.Disconnect(100) })
	return w
}

// wait returns the first message on topic after index from that satisfies
// ok, and the index after it.
func (w *mqttWatcher) wait(topic string, from int, within time.Duration, ok func(string) bool) (string, int) {
	w.t.Helper()
	timeout := time.After(within)
	for {
		w.mu.Lock()
		msgs, arrived := w.msgs, w.arrived
		w.mu.Unlock()
		for i := from; i < len(msgs); i++ {
			if msgs[i].Topic() == topic && ok(string(msgs[i].Payload())) {
				return string(msgs[i].Payload()), i + 1
			}
		}
		from = max(from, len(msgs))
		select {
		case <-arrived:
		case <-timeout:
			w.t.Fatalf("no message on %s within %v", topic, within)
			return "", 0
		}
	}
}

func anyPayload(string) bool { return true }

func TestRunOverMQTT(t *testing.T) {
	cfg := runConfig(t)
	addr := testutil.FreeAddr(t)
	cfg.MQTT.Broker = mqtt.BrokerEmbedded
	cfg.EmbeddedBroker.Listen = addr
	cfg.Source.Spec = "synthetic-imu,pace=0"
	cfg.MQTT.Intervals.Progress = 100 * time.Millisecond
	cfg.MQTT.Intervals.Health = 100 * time.Millisecond
	promAddr := testutil.FreeAddr(t)
	cfg.Prometheus.Listen = promAddr

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncLog{t: t}
	published := watchPublishes(t)
	go func() { done <- Run(ctx, cfg, RunOptions{Logger: logs.logger(), Version: "test"}) }()
	defer func() {
		cancel()
		<-done
	}()
	logs.waitFor("embedded broker listening", 30*time.Second)
	// The credentials file exists before the broker listens.
	own, err := mqtt.ReadCredentials(filepath.Join(cfg.Checkpoint.Dir, mqtt.CredentialsFileName))
	if err != nil {
		t.Fatal(err)
	}
	w := watchAs(t, addr, own, "bnnd/testdev/#")
	base := "bnnd/testdev/"
	w.wait(base+"status", 0, 20*time.Second, func(p string) bool { return p == "online" })

	var prog statusSnapshot
	_, i := w.wait(base+"progress", 0, 30*time.Second, func(p string) bool {
		return json.Unmarshal([]byte(p), &prog) == nil && prog.Step > 0
	})
	for _, topic := range []string{"memory", "encoding", "prediction", "health"} {
		p, _ := w.wait(base+topic, 0, 20*time.Second, anyPayload)
		var m map[string]any
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Errorf("%s: %q: %v", topic, p, err)
		}
		if topic == "memory" && !(m["training_bytes"].(float64) > 0 && m["rss_bytes"].(float64) > 0 &&
			m["replay_bytes"].(float64)+m["holdout_bytes"].(float64) <= float64(cfg.Replay.Budget)) {
			t.Errorf("memory payload %s (replay budget %d)", p, cfg.Replay.Budget)
		}
		if topic == "encoding" && m["momentum_bits"].(float64) != 8 {
			t.Errorf("encoding payload %s (want 8-bit momenta)", p)
		}
		if _, ok := m["checkpoint_failing"]; topic == "health" && (!ok || m["checkpoint_failing"] != false || m["checkpoint_failures"] != 0.0) {
			t.Errorf("health payload %s (want checkpoint_failing false, checkpoint_failures 0)", p)
		}
	}

	// The Prometheus endpoint reports the same figures, once a telemetry
	// round has handed them over (the MQTT messages leave before that).
	select {
	case <-published:
	case <-time.After(20 * time.Second):
		t.Fatal("no telemetry round handed over the figures")
	}
	resp, err := http.Get("http://" + promAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"# TYPE bnnd_steps_total counter", "bnnd_prequential_accuracy ", "bnnd_momentum_bits 8", "go_goroutines ",
		"bnnd_checkpoint_failing 0", "bnnd_checkpoint_failures_total 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(string(body), "bnnd_samples_seen_total 0\n") {
		t.Error("/metrics reports no samples while training runs")
	}

	command := func(name, payload string) map[string]any {
		t.Helper()
		w.client.Publish(base+"cmd/"+name, 1, false, payload).Wait()
		p, next := w.wait(base+"cmd/result", i, 20*time.Second, func(p string) bool { return strings.Contains(p, `"command":"`+name+`"`) })
		i = next
		var res map[string]any
		if err := json.Unmarshal([]byte(p), &res); err != nil {
			t.Fatalf("result %q: %v", p, err)
		}
		return res
	}
	if res := command("pause", "PRESS"); res["ok"] != true {
		t.Fatalf("pause: %v", res)
	}
	// Progress computed before the pause may still be in flight. The loop
	// hands progress over just before health, so once a health message
	// says paused, at most one progress message (already taken from its
	// mailbox) predates the pause: skip one, compare the next two.
	_, h := w.wait(base+"health", i, 10*time.Second, func(p string) bool { return strings.Contains(p, `"paused":true`) })
	_, h = w.wait(base+"progress", h, 5*time.Second, anyPayload)
	p1, j := w.wait(base+"progress", h, 5*time.Second, anyPayload)
	p2, _ := w.wait(base+"progress", j, 5*time.Second, anyPayload)
	var s1, s2 statusSnapshot
	if err := errors.Join(json.Unmarshal([]byte(p1), &s1), json.Unmarshal([]byte(p2), &s2)); err != nil {
		t.Fatalf("progress %q, %q: %v", p1, p2, err)
	}
	if s1.SamplesSeen == 0 || s1.SamplesSeen != s2.SamplesSeen {
		t.Errorf("training went on while paused: %d then %d samples", s1.SamplesSeen, s2.SamplesSeen)
	}
	if res := command("resume", "PRESS"); res["ok"] != true {
		t.Fatalf("resume: %v", res)
	}
	if res := command("momentum", "e5m2b20"); res["ok"] != true {
		t.Fatalf("momentum: %v", res)
	}
	if res := command("momentum", "fp16,auto"); res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), "send it alone") {
		t.Errorf("momentum fp16,auto: %v", res)
	}
	// synthetic-imu's windows carry their activity: a person's label has
	// nothing to add, and saying so beats ignoring it.
	if res := command("label", "walk"); res["ok"] != false || !strings.Contains(fmt.Sprint(res["error"]), "carry their labels") {
		t.Errorf("label on a source with labelled data: %v", res)
	}
	if res := command("checkpoint", "PRESS"); res["ok"] != true {
		t.Fatalf("checkpoint: %v", res)
	}
	_, meta := loadCounters(t, cfg.Checkpoint.Dir)
	if meta.Reason != "command" || meta.Momentum[0] != "e5m2b20" {
		t.Errorf("checkpoint after command: %+v", meta)
	}
	if res := command("reset", "someone-else"); res["ok"] != false {
		t.Errorf("reset with the wrong id: %v", res)
	}
	if res := command("reset", "testdev"); res["ok"] != false {
		t.Errorf("reset confirmed by the device id: %v", res)
	}
	asked := command("reset", "request")
	code, _ := asked["result"].(map[string]any)["confirm_with"].(string)
	if asked["ok"] != true || len(code) < 16 {
		t.Fatalf("reset request: %v", asked)
	}
	if res := command("reset", code); res["ok"] != true {
		t.Fatalf("reset with the code: %v", res)
	}
	c, _ := loadCounters(t, cfg.Checkpoint.Dir)
	if c.Step != 0 || c.SamplesSeen != 0 {
		t.Errorf("reset left counters %+v", c)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	done <- nil
	c, meta = loadCounters(t, cfg.Checkpoint.Dir)
	// (The counters may still be near zero: the reset was just before.)
	if meta.Reason != "shutdown" {
		t.Errorf("last checkpoint: reason %q (%d samples); want a fresh shutdown checkpoint", meta.Reason, c.SamplesSeen)
	}
	// "offline" is checked against mosquitto (TestRunOfflineOnShutdown): the
	// embedded broker stops with the daemon and may not forward it first.
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(runCrashChildEnv); dir != "" {
		os.Exit(runCrashChild(dir))
	}
	os.Exit(m.Run())
}

// runCrashChildEnv makes the test binary a daemon that runs short sessions
// back to back (each resumes, trains and checkpoints) until it is killed.
const runCrashChildEnv = "BNND_RUN_CRASH_CHILD_DIR"

func crashRunConfig(dir string) *config.Config {
	cfg := config.Default()
	cfg.Source.Spec = "synthetic-imu,pace=0"
	cfg.MQTT.Broker = config.BrokerNone
	cfg.MQTT.DeviceID = "crashdev"
	cfg.Checkpoint.Dir = dir
	cfg.Training.Threads = 1
	cfg.Training.Momentum = "e4m3b28s"
	cfg.Replay.Budget = 256 << 10
	cfg.Model.Spec = "mlp:64"
	return cfg
}

func runCrashChild(dir string) int {
	cfg := crashRunConfig(dir)
	log := slog.New(slog.DiscardHandler)
	for i := 0; ; i++ {
		if err := Run(context.Background(), cfg, RunOptions{Logger: log, MaxSamples: 100}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if i == 0 {
			fmt.Println("saved")
		}
	}
}

// TestRunCrash kills the daemon with SIGKILL at random moments, often in
// the middle of a checkpoint write (it checkpoints every 100 samples); the
// next start must always resume from a valid checkpoint and never lose
// more than the samples since the last completed one.
func TestRunCrash(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 0))
	var last uint64
	for round := 0; round < rounds; round++ {
		testutil.CrashSavingChild(t, runCrashChildEnv+"="+dir, round, time.Duration(rng.IntN(300))*time.Millisecond)

		c, _ := loadCounters(t, dir)
		if c.SamplesSeen <= last {
			t.Fatalf("round %d: resumed at %d samples, but a run after %d completed", round, c.SamplesSeen, last)
		}
		last = c.SamplesSeen
		t.Logf("round %d: checkpoint at %d samples, step %d", round, c.SamplesSeen, c.Step)
	}
	// And the daemon itself resumes from what the kills left.
	if err := Run(context.Background(), crashRunConfig(dir), RunOptions{Logger: testLogger(t), MaxSamples: 50}); err != nil {
		t.Fatalf("resume after the kills: %v", err)
	}
	if c, _ := loadCounters(t, dir); c.SamplesSeen != last+50 {
		t.Errorf("after resuming: %d samples, want %d", c.SamplesSeen, last+50)
	}
}

// TestRunOfflineOnShutdown runs the daemon against a real mosquitto: on a
// clean stop the retained status is "offline", and a client connecting
// afterwards sees it.
func TestRunOfflineOnShutdown(t *testing.T) {
	addr := testutil.StartMosquitto(t, "allow_anonymous true\n").Addr

	cfg := runConfig(t)
	cfg.MQTT.Broker = "tcp://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, RunOptions{Logger: testLogger(t)}) }()
	w := watch(t, addr, "bnnd/testdev/#")
	w.wait("bnnd/testdev/status", 0, 30*time.Second, func(p string) bool { return p == "online" })
	w.wait("bnnd/testdev/progress", 0, 30*time.Second, anyPayload)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	late := watch(t, addr, "bnnd/testdev/status")
	late.wait("bnnd/testdev/status", 0, 10*time.Second, func(p string) bool { return p == "offline" })
	if _, meta := loadCounters(t, cfg.Checkpoint.Dir); meta.Reason != "shutdown" {
		t.Errorf("last checkpoint reason %q, want shutdown", meta.Reason)
	}
}

// With momentum auto the daemon trains in the 8-bit warm-up format, races
// the encodings after training.calibrate_after steps and continues in the
// chosen compact formats, which the checkpoint records and a resume keeps.
func TestRunMomentumAuto(t *testing.T) {
	cfg := runConfig(t)
	cfg.Training.Momentum = "auto"
	cfg.Training.CalibrateAfter = 10
	saved := calibrationSearch
	calibrationSearch = fp.SearchOptions{MinBits: 6, MaxBits: 8, MaxWeights: 256}
	defer func() { calibrationSearch = saved }()
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: 900}); err != nil {
		t.Fatal(err)
	}
	c, meta := loadCounters(t, cfg.Checkpoint.Dir)
	if c.Step < 10+calibrationSteps {
		t.Fatalf("only %d steps: the test needs more samples to reach the search", c.Step)
	}
	for _, f := range meta.Momentum {
		parsed, err := fp.ParseFormat(f)
		if err != nil || parsed.Bits() < 6 || parsed.Bits() > 8 {
			t.Fatalf("momentum after the search: %v, want 6- to 8-bit formats (small layers keep the 8-bit reference)", meta.Momentum)
		}
	}
	if c.EncodingRaced == 0 {
		t.Error("the checkpoint does not record that the race chose")
	}
	chosen := meta.Momentum[0]
	var log bytes.Buffer
	resumeLog := slog.New(slog.NewTextHandler(&log, nil))
	if err := Run(context.Background(), cfg, RunOptions{Logger: resumeLog, MaxSamples: 50}); err != nil {
		t.Fatal(err)
	}
	if _, meta := loadCounters(t, cfg.Checkpoint.Dir); meta.Momentum[0] != chosen {
		t.Errorf("resumed run changed the momentum from %s to %v", chosen, meta.Momentum)
	}
	// Even a race that kept the warm-up format is not run again.
	if strings.Contains(log.String(), "until the encoding race") {
		t.Errorf("the resumed run races again:\n%s", log.String())
	}
}

// A damaged latest checkpoint is reported and the previous one resumed.
func TestRunFallsBackToThePreviousCheckpoint(t *testing.T) {
	cfg := runConfig(t)
	for i := 0; i < 2; i++ {
		if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: 100}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := checkpoint.Open(cfg.Checkpoint.Dir, true, nil)
	data, err := os.ReadFile(st.LatestPath())
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	os.WriteFile(st.LatestPath(), data, 0o600)

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := Run(context.Background(), cfg, RunOptions{Logger: log, MaxSamples: 10}); err != nil {
		t.Fatal(err)
	}
	if c, _ := loadCounters(t, cfg.Checkpoint.Dir); c.SamplesSeen != 110 {
		t.Errorf("resumed at %d samples, want the previous checkpoint's 100 + 10", c.SamplesSeen)
	}
	if !strings.Contains(logs.String(), "checkpoint.bnnd: checksum mismatch") {
		t.Errorf("the damaged checkpoint was not reported:\n%s", logs.String())
	}
}

// watchPublishes returns a channel that receives after each hand-over of
// the slow figures (memory, encoding, health, /metrics), without ever
// blocking the loop, until the test ends.
func watchPublishes(t *testing.T) <-chan struct{} {
	published := make(chan struct{}, 1)
	publishedHook = func() {
		select {
		case published <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { publishedHook = nil })
	return published
}
