package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/internal/testutil"
	"github.com/bnnd/bnnd/mqtt"
)

// startDaemon runs the daemon until the test ends (or stop is called) and
// returns its runner once the training state is resumed or fresh.
func startDaemon(t *testing.T, cfg *config.Config, log *syncLog) (r *runner, stop func() error) {
	t.Helper()
	started := make(chan *runner, 1)
	startedHook = func(r *runner) {
		select {
		case started <- r:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := testLogger(t)
	if log != nil {
		logger = log.logger()
	}
	go func() { done <- Run(ctx, cfg, RunOptions{Logger: logger, Version: "test"}) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			result = <-done
			startedHook = nil
			stopped = true
		}
		return result
	}
	t.Cleanup(func() { stop() })
	select {
	case r = <-started:
	case err := <-done:
		done <- err
		t.Fatalf("the daemon stopped before it trained: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not start within a minute")
	}
	return r, stop
}

// Two resets in a row leave the trained model in the archive, 'list'
// shows it, and a restore brings it back (archiving the fresh model it
// replaces). A restore is refused while the daemon holds the directory.
func TestResetIsRecoverable(t *testing.T) {
	cfg := runConfig(t)
	dir := cfg.Checkpoint.Dir
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: 600}); err != nil {
		t.Fatal(err)
	}
	trained := countersIn(t, filepath.Join(dir, checkpoint.LatestName))

	r, stop := startDaemon(t, cfg, nil)
	if _, err := checkpoint.Restore(dir, filepath.Join(dir, checkpoint.LatestName), 3); err == nil || !strings.Contains(err.Error(), "in use by process") {
		t.Errorf("restore while the daemon runs: %v", err)
	}
	for i := 0; i < 2; i++ {
		res, err := r.handleCommand(context.Background(), mqtt.Command{Name: mqtt.CmdReset, Payload: "testdev"})
		if err != nil {
			t.Fatalf("reset %d: %v", i+1, err)
		}
		if m := res.(map[string]any); m["archived"] == nil {
			t.Errorf("reset %d did not say where the model went: %v", i+1, m)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if c := countersIn(t, filepath.Join(dir, checkpoint.LatestName)); c.SamplesSeen >= trained.SamplesSeen {
		t.Fatalf("the latest checkpoint after two resets has %d samples; the test needs a reset model", c.SamplesSeen)
	}

	entries, err := checkpoint.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var archivedTrained string
	archives := 0
	for _, e := range entries {
		t.Logf("%-8s step %4d %-22q %7d bytes %s %v %s", e.Slot, e.Step, e.Reason, e.Size, e.Model, e.Classes, filepath.Base(e.Path))
		if e.Error != "" {
			t.Errorf("%s: %s", e.Path, e.Error)
		}
		if e.Slot == "archive" {
			archives++
			if e.Step >= trained.Step && e.Reason == "archived before reset" && e.Model == cfg.Model.Spec && len(e.Classes) == 5 {
				archivedTrained = e.Path
			}
		}
	}
	if archives != 2 || archivedTrained == "" {
		t.Fatalf("%d archived checkpoints, trained one %q; want the trained model and the first reset's", archives, archivedTrained)
	}

	res, err := checkpoint.Restore(dir, archivedTrained, cfg.Checkpoint.ArchiveKeep)
	if err != nil {
		t.Fatal(err)
	}
	if res.Archived == "" {
		t.Error("the restore did not archive the latest checkpoint it replaced")
	}
	logs := &syncLog{t: t}
	if err := Run(context.Background(), cfg, RunOptions{Logger: logs.logger(), MaxSamples: 10}); err != nil {
		t.Fatal(err)
	}
	if c := countersIn(t, filepath.Join(dir, checkpoint.LatestName)); c.SamplesSeen < trained.SamplesSeen+10 || c.Step < trained.Step {
		t.Errorf("after the restore the daemon resumed at %+v, want at least the trained model's %d samples + 10", c, trained.SamplesSeen)
	}
	if !strings.Contains(logs.String(), "msg=resumed checkpoint="+filepath.Join(dir, checkpoint.LatestName)) {
		t.Error("the run after the restore did not resume the restored checkpoint")
	}
	after, _ := checkpoint.List(dir)
	n := 0
	for _, e := range after {
		if e.Slot == "archive" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d archived checkpoints after the restore, want 3 (two resets and the replaced latest)", n)
	}
}

// With keep_previous, a volume that holds the latest and previous
// checkpoints but not a third file fails every later save: the daemon
// goes on training, keeps both checkpoints intact, leaves no temporary
// file, and reports the failure on health and /metrics.
func TestCheckpointOnAFullVolume(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	cfg, clone := twoCheckpoints(t)
	src := clone()
	latest, _ := os.ReadFile(filepath.Join(src, checkpoint.LatestName))
	prev, _ := os.ReadFile(filepath.Join(src, checkpoint.PreviousName))
	mnt := t.TempDir()
	// Room for the two checkpoints and the lock file, not for a third
	// checkpoint (which is larger than either: the replay buffer fills).
	size := (len(latest)+len(prev))/4096*4096 + 3*4096
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0750", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs: %v", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	for name, b := range map[string][]byte{checkpoint.LatestName: latest, checkpoint.PreviousName: prev} {
		if err := os.WriteFile(filepath.Join(mnt, name), b, 0o600); err != nil {
			t.Fatalf("the tmpfs cannot even hold the two checkpoints: %v", err)
		}
	}

	c := *cfg
	c.Checkpoint.Dir = mnt
	c.Checkpoint.Interval = time.Second
	c.Prometheus.Listen = testutil.FreeAddr(t)
	logs := &syncLog{t: t}
	published := watchPublishes(t)
	r, stop := startDaemon(t, &c, logs)
	logs.waitFor("checkpoint failed", 30*time.Second)
	// The loop saves and publishes in turn: the figures it hands over after
	// the failed save carry it to /metrics.
	for range 2 {
		select {
		case <-published:
		case <-time.After(20 * time.Second):
			t.Fatal("no telemetry round after the failed save")
		}
	}
	if m := scrape(t, c.Prometheus.Listen); !strings.Contains(m, "bnnd_checkpoint_failing 1") {
		t.Fatalf("/metrics does not report the failing checkpoint:\n%s", m)
	}
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("the final save on a full volume: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, checkpoint.LatestName)); !bytes.Equal(b, latest) {
		t.Error("the latest checkpoint changed")
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, checkpoint.PreviousName)); !bytes.Equal(b, prev) {
		t.Error("the previous checkpoint changed")
	}
	if tmp, _ := filepath.Glob(filepath.Join(mnt, ".checkpoint-*.tmp")); len(tmp) > 0 {
		t.Errorf("temporary files left on the full volume: %v", tmp)
	}
	var h healthMsg
	r.ckStatus.fill(&h)
	b, _ := json.Marshal(h)
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["checkpoint_failing"] != true || !strings.Contains(fmt.Sprint(m["checkpoint_error"]), "no space left on device") ||
		m["checkpoint_error_at"] == nil || m["checkpoint_failures"].(float64) < 1 {
		t.Errorf("health: %s", b)
	}
	t.Logf("health after the failed saves: %s", b)
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
