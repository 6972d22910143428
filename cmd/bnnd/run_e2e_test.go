package main

// End-to-end tests of the daemon process: the test binary re-executes
// itself as 'bnnd run' (see TestMain) against a real mosquitto, a real
// sd_notify socket and real signals, as systemd would run it.

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon"
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/internal/testutil"
)

type progressMsg struct {
	Step           uint64  `json:"step"`
	SamplesSeen    uint64  `json:"samples_seen"`
	SamplesTrained uint64  `json:"samples_trained"`
	PrequentialAcc float64 `json:"prequential_acc"`
}

func parseProgress(t *testing.T, m received) progressMsg {
	t.Helper()
	var p progressMsg
	if err := json.Unmarshal([]byte(m.payload), &p); err != nil {
		t.Fatalf("progress %q: %v", m.payload, err)
	}
	return p
}

func training(m received) bool {
	var p progressMsg
	return json.Unmarshal([]byte(m.payload), &p) == nil && p.Step > 0
}

// loadCheckpoint reads the newest valid checkpoint of a state directory:
// its meta section and its counters.
func loadCheckpoint(t *testing.T, dir string) (meta struct {
	Reason string    `json:"reason"`
	Saved  time.Time `json:"saved"`
	Model  string    `json:"model"`
}, counters daemon.Counters) {
	t.Helper()
	st, err := checkpoint.Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := st.Load()
	if err != nil {
		t.Fatalf("no valid checkpoint in %s: %v", dir, err)
	}
	b, ok := ck.Section("meta")
	if !ok || json.Unmarshal(b, &meta) != nil {
		t.Fatalf("checkpoint %s: meta section %q", ck.Path, b)
	}
	b, _ = ck.Section("counters")
	if counters, err = daemon.ParseCounters(b); err != nil {
		t.Fatalf("checkpoint %s: %v", ck.Path, err)
	}
	return meta, counters
}

// TestRunProcessSurvivesBrokerRestart stops mosquitto under a running
// daemon and starts it again on the same port. Training must go on while
// the broker is away (the daemon's own counter, read from its Prometheus
// endpoint, advances during the outage), and after the restart the daemon
// must reconnect by itself, publish the retained "online" again (the
// restarted broker has no memory of it) and report the progress made
// meanwhile.
func TestRunProcessSurvivesBrokerRestart(t *testing.T) {
	scale := timeScale()
	outage := 3 * time.Second
	if testing.Short() {
		outage = 2 * time.Second
	}
	broker := startMosquitto(t)
	cfg := e2eConfig{stateDir: filepath.Join(t.TempDir(), "state"), broker: broker.Addr, deviceID: "e2e-restart", prometheus: testutil.FreeAddr(t)}
	base := "bnnd/" + cfg.deviceID + "/"
	watcher := subscribe(t, broker.Addr, base+"#")
	p := startBnnd(t, childOptions{}, "run", "-config", cfg.write(t))

	watcher.waitFor(p, base+"status", 0, 30*scale*time.Second, payloadIs("online"))
	_, i := watcher.waitFor(p, base+"progress", 0, 30*scale*time.Second, training)
	// The last progress before the outage.
	before, _ := watcher.waitFor(p, base+"progress", i, 10*scale*time.Second, func(received) bool { return true })
	beforeOutage := parseProgress(t, before).SamplesSeen

	broker.Stop()
	watcher.close()
	stopped := time.Now()
	// /metrics shows the counters of the daemon's latest telemetry round
	// (about one a second). A value first read after the broker was gone
	// comes from a round after that, so two rises seen during the outage
	// prove that training went on without the broker.
	// The endpoint is read as Prometheus reads it, on a timer (here every
	// 100 ms) for the length of the outage.
	seen := []uint64{scrapeSamplesSeen(t, cfg.prometheus)}
	giveUp := stopped.Add(10 * scale * time.Second)
	scrape := time.NewTicker(100 * time.Millisecond)
	defer scrape.Stop()
	for len(seen) < 3 || time.Since(stopped) < outage {
		if time.Now().After(giveUp) {
			t.Fatalf("training did not go on while the broker was down: samples seen %d before the outage, then %v in %v",
				beforeOutage, seen, time.Since(stopped).Round(time.Millisecond))
		}
		select {
		case <-p.exited:
			t.Fatalf("bnnd exited during the outage: %v", p.err)
		case <-scrape.C:
		}
		if v := scrapeSamplesSeen(t, cfg.prometheus); v < seen[len(seen)-1] {
			t.Fatalf("bnnd_samples_seen_total went back from %d to %d", seen[len(seen)-1], v)
		} else if v > seen[len(seen)-1] {
			seen = append(seen, v)
		}
	}
	late := seen[len(seen)-1]
	t.Logf("samples seen: %d in the last progress before the outage; %v read from /metrics during the %v outage",
		beforeOutage, seen, time.Since(stopped).Round(time.Millisecond))
	if seen[1] < beforeOutage {
		t.Fatalf("/metrics reports %d samples seen during the outage, fewer than the %d published before it", seen[1], beforeOutage)
	}

	broker.Start()
	restarted := time.Now()
	after := subscribe(t, broker.Addr, base+"#")
	// paho retries with a backoff that starts at 1 s and doubles.
	online, j := after.waitFor(p, base+"status", 0, 30*scale*time.Second, payloadIs("online"))
	firstAfter, _ := after.waitFor(p, base+"progress", j, 10*scale*time.Second, func(received) bool { return true })
	resumed := parseProgress(t, firstAfter)
	t.Logf("online again %v after the restart; the first progress after it reports %d samples seen",
		online.at.Sub(restarted).Round(time.Millisecond), resumed.SamplesSeen)
	// The first progress is the latest state, which includes everything
	// the daemon counted during the outage (the scrape just before the
	// restart), not a value held back from before it.
	if resumed.SamplesSeen < late {
		t.Errorf("first progress after the reconnect reports %d samples seen, but the daemon had counted %d before the broker came back",
			resumed.SamplesSeen, late)
	}
	// A client connecting now gets "online" as the retained status.
	fresh := subscribe(t, broker.Addr, base+"status")
	fresh.waitFor(p, base+"status", 0, 10*scale*time.Second, func(m received) bool {
		if !m.retained || m.payload != "online" {
			t.Fatalf("a new subscriber got status %q (retained %v), want the retained \"online\"", m.payload, m.retained)
		}
		return true
	})
	if out := p.stderr.String(); !strings.Contains(out, "mqtt: connection lost") {
		t.Errorf("the daemon did not log the lost connection:\n%s", out)
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if _, c := loadCheckpoint(t, cfg.stateDir); c.SamplesSeen < resumed.SamplesSeen {
		t.Errorf("shutdown checkpoint has %d samples seen, fewer than the %d already reported", c.SamplesSeen, resumed.SamplesSeen)
	}
}

// TestRunProcessSIGTERM: on SIGTERM the daemon exits 0, leaves "offline"
// as the retained status, and writes a checkpoint (reason shutdown) after
// the signal that holds at least the progress it had reported.
func TestRunProcessSIGTERM(t *testing.T) {
	scale := timeScale()
	broker := startMosquitto(t)
	cfg := e2eConfig{stateDir: filepath.Join(t.TempDir(), "state"), broker: broker.Addr, deviceID: "e2e-term"}
	base := "bnnd/" + cfg.deviceID + "/"
	watcher := subscribe(t, broker.Addr, base+"#")
	p := startBnnd(t, childOptions{}, "run", "-config", cfg.write(t))
	watcher.waitFor(p, base+"status", 0, 30*scale*time.Second, payloadIs("online"))
	last, _ := watcher.waitFor(p, base+"progress", 0, 30*scale*time.Second, training)
	reported := parseProgress(t, last)

	// The checkpoint's meta records the daemon's clock, the same as here.
	signalled := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	watcher.close()

	late := subscribe(t, broker.Addr, base+"status")
	late.waitFor(nil, base+"status", 0, 10*time.Second, func(m received) bool {
		if !m.retained || m.payload != "offline" {
			t.Fatalf("after the stop a new subscriber got status %q (retained %v), want the retained \"offline\"", m.payload, m.retained)
		}
		return true
	})

	meta, c := loadCheckpoint(t, cfg.stateDir)
	if meta.Reason != "shutdown" {
		t.Errorf("latest checkpoint reason %q, want shutdown", meta.Reason)
	}
	if meta.Saved.Before(signalled) {
		t.Errorf("latest checkpoint saved at %v, before the SIGTERM at %v", meta.Saved, signalled)
	}
	if c.SamplesSeen < reported.SamplesSeen || c.Step < reported.Step {
		t.Errorf("checkpoint counters %+v are behind the reported progress %+v", c, reported)
	}
	// The CLI's view of the same file.
	code, out, errOut := invokeCLI(t, "checkpoint", "inspect", "--json", filepath.Join(cfg.stateDir, checkpoint.LatestName))
	var report struct {
		Valid bool `json:"valid"`
		Meta  struct {
			Reason string `json:"reason"`
		} `json:"meta"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &report) != nil || !report.Valid || report.Meta.Reason != "shutdown" {
		t.Errorf("checkpoint inspect: exit %d, %s %s", code, out, errOut)
	}
	if out := p.stderr.String(); !strings.Contains(out, "msg=stopped reason=shutdown") {
		t.Errorf("no stop log line:\n%s", out)
	}
}

// notifySocket is a unixgram socket standing in for systemd's
// NOTIFY_SOCKET; it records each datagram's assignments.
type notifySocket struct {
	path string
	msgs chan notifyMsg
}

type notifyMsg struct {
	text string
	at   time.Time
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// Unix socket paths are limited to about 100 bytes: a short directory.
	dir, err := os.MkdirTemp("", "bnnd-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan notifyMsg, 1024)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- notifyMsg{string(buf[:n]), time.Now()}
		}
	}()
	return s
}

var statusLine = regexp.MustCompile(`^STATUS=step (\d+), prequential accuracy (0|1|0\.\d+), (\d+) samples/s$`)

// TestRunProcessNotifiesSystemd runs the daemon with a real NOTIFY_SOCKET
// and a 1 s watchdog for its own pid (WATCHDOG_PID, as systemd sets it):
// READY=1 once telemetry is up, STATUS= lines with step and accuracy,
// WATCHDOG=1 every half second while it trains, and STOPPING=1 on SIGTERM
// with no ping after it.
func TestRunProcessNotifiesSystemd(t *testing.T) {
	scale := timeScale()
	broker := startMosquitto(t)
	notify := listenNotify(t)
	cfg := e2eConfig{stateDir: filepath.Join(t.TempDir(), "state"), broker: broker.Addr, deviceID: "e2e-notify", prometheus: testutil.FreeAddr(t)}
	p := startBnnd(t, childOptions{
		env:         []string{"NOTIFY_SOCKET=" + notify.path, "WATCHDOG_USEC=1000000"},
		watchdogPID: true,
	}, "run", "-config", cfg.write(t))

	next := func(within time.Duration) notifyMsg {
		t.Helper()
		select {
		case m := <-notify.msgs:
			return m
		case <-p.exited:
			t.Fatalf("bnnd exited before the next notification: %v", p.err)
		case <-time.After(within):
			t.Fatalf("no notification within %v", within)
		}
		return notifyMsg{}
	}
	first := next(60 * scale * time.Second)
	if first.text != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", first.text)
	}
	// Telemetry is up by READY: the metrics endpoint answers at once.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + cfg.prometheus + "/metrics")
	if err != nil {
		t.Fatalf("READY=1 was sent before the metrics endpoint was up: %v", err)
	}
	resp.Body.Close()

	// Watch for pings and a status with training under way.
	var pings []time.Time
	var status string
	deadline := time.Now().Add(15 * scale * time.Second)
	for (len(pings) < 4 || status == "") && time.Now().Before(deadline) {
		m := next(time.Until(deadline))
		switch {
		case m.text == "WATCHDOG=1":
			pings = append(pings, m.at)
		case strings.HasPrefix(m.text, "STATUS="):
			sm := statusLine.FindStringSubmatch(m.text)
			if sm == nil {
				t.Fatalf("status %q does not give step and accuracy", m.text)
			}
			// A status of a daemon at work: steps taken, a throughput.
			step, _ := strconv.Atoi(sm[1])
			rate, _ := strconv.Atoi(sm[3])
			if step > 0 && rate > 0 {
				status = m.text
			}
		default:
			t.Fatalf("unexpected notification %q while training", m.text)
		}
	}
	if len(pings) < 4 || status == "" {
		t.Fatalf("in %v after READY: %d watchdog pings, status %q; want at least 4 pings and a status of a training daemon",
			15*scale*time.Second, len(pings), status)
	}
	// WatchdogSec is 1 s: pings every half of it, well within it.
	for k := 1; k < len(pings); k++ {
		if gap := pings[k].Sub(pings[k-1]); gap > time.Second*scale {
			t.Errorf("watchdog pings %v apart; systemd (WatchdogSec=1s) would have killed the daemon", gap)
		}
	}
	t.Logf("%d pings, %s", len(pings), status)

	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	// The process is gone: every datagram it sent is queued by now.
	var after []string
	for len(notify.msgs) > 0 {
		after = append(after, (<-notify.msgs).text)
	}
	stopping := -1
	for k, m := range after {
		switch {
		case m == "STOPPING=1":
			if stopping < 0 {
				stopping = k
			}
		case stopping >= 0:
			t.Errorf("%q after STOPPING=1: the watchdog must stop with it", m)
		case m != "WATCHDOG=1" && !strings.HasPrefix(m, "STATUS="):
			t.Errorf("unexpected notification %q after SIGTERM", m)
		}
	}
	if stopping < 0 {
		t.Errorf("no STOPPING=1 after SIGTERM; notifications after it: %q", after)
	}
}

// TestRunProcessRejectsInvalidConfig: an invalid configuration file makes
// 'bnnd run' exit 2 with every problem named by file, line and key, before
// anything is created: no state directory, no files in the default state
// location.
func TestRunProcessRejectsInvalidConfig(t *testing.T) {
	scale := timeScale()
	home := t.TempDir()
	state := filepath.Join(t.TempDir(), "state")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	text := "source:\n  spec: synthetic-imu,pace=0\ncheckpoint:\n  dir: " + state +
		"\ntraining:\n  gamma: 3\n  bacth: 32\nmqtt:\n  broker: tcp://127.0.0.1:1\n  intervals:\n    progress: soon\n"
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBnnd(t, childOptions{env: []string{"HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "xdg"), "STATE_DIRECTORY="}},
		"run", "-config", bad)
	if code := p.wait(30 * scale * time.Second); code != 2 {
		t.Fatalf("exit status %d for an invalid configuration, want 2", code)
	}
	out := p.stderr.String()
	for _, want := range []string{
		bad + ":6: training.gamma: must be in (0, 1), got 3",
		bad + ":7: training.bacth: unknown key",
		bad + ":11: mqtt.intervals.progress:",
		"invalid configuration (3 problems)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the state directory %s was created (or cannot be checked: %v)", state, err)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("the daemon wrote into $HOME: %v", entries)
	}
}
