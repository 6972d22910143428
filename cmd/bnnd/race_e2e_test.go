package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunProcessAnswersDuringTheEncodingRace: while momentum auto races the
// encodings, which holds the training loop for seconds here and minutes on
// a small board, a command is answered at once with why it waits, progress
// keeps being published, and what was trained before the race is saved.
func TestRunProcessAnswersDuringTheEncodingRace(t *testing.T) {
	if testing.Short() {
		t.Skip("the race takes minutes under emulation; the host and purego runs cover it")
	}
	scale := timeScale()
	broker := startMosquitto(t)
	id := "e2e-race"
	base := "bnnd/" + id + "/"
	config := filepath.Join(t.TempDir(), "bnnd.yaml")
	text := fmt.Sprintf(`source:
  spec: synthetic-imu,pace=0
model:
  spec: mlp-l
training:
  momentum: auto
  calibrate_after: 50
  threads: 1
checkpoint:
  dir: %s
mqtt:
  broker: tcp://%s
  device_id: %s
  intervals:
    progress: 100ms
`, filepath.Join(t.TempDir(), "state"), broker.Addr, id)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	watch := subscribe(t, broker.Addr, base+"#")
	p := startBnnd(t, childOptions{}, "run", "-config", config)
	p.waitLog(60*scale*time.Second, regexp.MustCompile(`msg="checkpoint written" reason="before the encoding search"`))
	from := watch.count()
	publish(t, broker.Addr, base+"cmd/pause", "PRESS")
	m, _ := watch.waitFor(p, base+"cmd/result", from, 10*scale*time.Second, func(received) bool { return true })
	raceOver := regexp.MustCompile(`msg="momentum auto: (encoding chosen|no narrower encoding qualified)`)
	if raceOver.MatchString(p.stderr.String()) {
		t.Fatalf("the race ended before the command was answered; the test needs a longer race:\n%s", p.stderr.String())
	}
	if !strings.Contains(m.payload, `"ok":false`) || !strings.Contains(m.payload, "the encoding search has been running since") {
		t.Errorf("pause during the race: %s", m.payload)
	}
	// Progress goes on being published while the race runs.
	watch.waitFor(p, base+"progress", from, 10*scale*time.Second, func(received) bool { return true })
	if raceOver.MatchString(p.stderr.String()) {
		t.Fatalf("the race ended before progress was published; the test needs a longer race")
	}
	p.waitLog(300*scale*time.Second, raceOver)
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * scale * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}
