package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/daemon/replay"
	"github.com/bnnd/bnnd/sensors"
)

// syncLog is a log destination tests read while the daemon writes it.
type syncLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	t       *testing.T
	written chan struct{} // closed and replaced on every write
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.buf.Write(p)
}

// waitFor returns once the log holds s; it fails the test after within.
func (l *syncLog) waitFor(s string, within time.Duration) {
	l.t.Helper()
	timeout := time.After(within)
	for {
		l.mu.Lock()
		if strings.Contains(l.buf.String(), s) {
			l.mu.Unlock()
			return
		}
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		select {
		case <-written:
		case <-timeout:
			l.t.Fatalf("no %q in the log within %v", s, within)
		}
	}
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *syncLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// twoCheckpoints leaves a state directory whose latest checkpoint is at
// 200 samples and whose previous one is at 100, and returns a function
// that copies it to a new directory.
func twoCheckpoints(t *testing.T) (cfg *config.Config, clone func() string) {
	t.Helper()
	cfg = runConfig(t)
	for i := 0; i < 2; i++ {
		if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t), MaxSamples: 100}); err != nil {
			t.Fatal(err)
		}
	}
	src := cfg.Checkpoint.Dir
	return cfg, func() string {
		dst := t.TempDir()
		for _, name := range []string{checkpoint.LatestName, checkpoint.PreviousName} {
			b, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dst
	}
}

// rewriteSection replaces one section of a checkpoint file with what edit
// returns (nil drops it) and writes the file with valid checksums: the
// damage is one that only decoding the sections can find.
func rewriteSection(t *testing.T, path, name string, edit func([]byte) []byte) {
	t.Helper()
	ck, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var secs []checkpoint.Section
	found := false
	for _, s := range ck.Sections {
		data := append([]byte(nil), s.Data...)
		if s.Name == name {
			found = true
			if data = edit(data); data == nil {
				continue
			}
		}
		secs = append(secs, checkpoint.BytesSection(s.Name, data))
	}
	if !found {
		t.Fatalf("%s has no %q section", path, name)
	}
	// A store of its own writes the edited file (with checksums that
	// match), which then takes the place of the original.
	st, err := checkpoint.Open(t.TempDir(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Save(ck.Created, secs...); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(st.LatestPath(), path); err != nil {
		t.Fatal(err)
	}
}

func editJSON(t *testing.T, edit func(m map[string]any)) func([]byte) []byte {
	return func(b []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		out, _ := json.Marshal(m)
		return out
	}
}

func countersIn(t *testing.T, path string) Counters {
	t.Helper()
	ck, err := checkpoint.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ck.Section(sectionCounters)
	c, err := ParseCounters(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A latest checkpoint that passes its checksums but does not decode, or
// whose sections disagree, is skipped with a warning naming the file and
// the reason; the daemon resumes from the previous one, keeps it, and sets
// the rejected file aside. The first case is the one that made a failing
// training step rotate the good checkpoint away: a replay buffer with more
// classes than the model resumed, the first step failed on a label out of
// range, and the state at the error replaced the checkpoints.
func TestResumeFallsBackFromACheckpointThatDoesNotDecode(t *testing.T) {
	cfg, clone := twoCheckpoints(t)
	cases := []struct {
		name, section, reason string
		edit                  func([]byte) []byte
	}{
		{"replay with more classes than the model", sectionReplay, "replay holds labels of 6 classes, the model has 5 outputs", func(b []byte) []byte {
			old, err := replay.Read(b)
			if err != nil {
				t.Fatal(err)
			}
			wider, err := replay.New(old.Features(), 6, old.Kind(), old.Bytes(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := wider.Offer(make([]float32, old.Features()), 5); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := wider.WriteTo(&out); err != nil {
				t.Fatal(err)
			}
			return out.Bytes()
		}},
		{"meta that is not JSON", checkpoint.MetaSection, "meta:", func([]byte) []byte { return []byte("{") }},
		{"meta of another step", checkpoint.MetaSection, "meta is of step", editJSON(t, func(m map[string]any) { m["step"] = m["step"].(float64) + 1 })},
		{"meta naming other classes", checkpoint.MetaSection, "meta names classes", editJSON(t, func(m map[string]any) { m["classes"] = []string{"a", "b"} })},
		{"a damaged model", sectionModel, "model: bnn: model file checksum mismatch", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"no optimizer section", sectionOptimizer, `optimizer\" section`, func([]byte) []byte { return nil }},
		{"more samples labelled than seen", sectionCounters, "counters:", editJSON(t, func(m map[string]any) { m["samples_labeled"] = m["samples_seen"].(float64) + 1 })},
		{"a normaliser of 3 channels", sectionNormalizer, "normalizer scales 3 channels, the model input has 6", func([]byte) []byte {
			b, _ := (&sensors.Normalizer{Mean: []float32{0, 0, 0}, Std: []float32{1, 1, 1}}).MarshalBinary()
			return b
		}},
		// The source is opened with the newest normaliser before the
		// resume: falling back to another one must reopen it.
		{"a normaliser other than the model's", sectionNormalizer, "the normalizer section differs from the one in the model", func([]byte) []byte {
			b, _ := (&sensors.Normalizer{Mean: make([]float32, 6), Std: []float32{2, 2, 2, 2, 2, 2}}).MarshalBinary()
			return b
		}},
		{"holdout samples of another size", sectionHoldout, "holdout holds samples of 7 values", func([]byte) []byte {
			rb, _ := replay.New(7, 5, replay.Float16, 4096, 1)
			var buf bytes.Buffer
			rb.WriteTo(&buf)
			return buf.Bytes()
		}},
	}
	alsoLogged := map[string]string{"a normaliser other than the model's": "reopening the source"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := clone()
			latest, prev := filepath.Join(dir, checkpoint.LatestName), filepath.Join(dir, checkpoint.PreviousName)
			rewriteSection(t, latest, tc.section, tc.edit)
			damaged, _ := os.ReadFile(latest)
			goodPrev, _ := os.ReadFile(prev)
			c := *cfg
			c.Checkpoint.Dir = dir
			logs := &syncLog{t: t}
			// Long enough for training steps on the resumed replay buffer.
			if err := Run(context.Background(), &c, RunOptions{Logger: logs.logger(), MaxSamples: 300}); err != nil {
				t.Fatalf("a run after the damage to the latest checkpoint failed: %v", err)
			}
			if got := countersIn(t, latest).SamplesSeen; got != 400 {
				t.Errorf("resumed at %d samples, want the previous checkpoint's 100 + 300", got)
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, latest) || !strings.Contains(out, tc.reason) {
				t.Errorf("no warning naming %s and %q", latest, tc.reason)
			}
			if want := alsoLogged[tc.name]; !strings.Contains(out, want) {
				t.Errorf("the log lacks %q", want)
			}
			if b, _ := os.ReadFile(prev); !bytes.Equal(b, goodPrev) {
				t.Error("the previous checkpoint, the one resumed from, was replaced")
			}
			if b, _ := os.ReadFile(filepath.Join(dir, checkpoint.FailedName)); !bytes.Equal(b, damaged) {
				t.Error("the rejected latest checkpoint was not set aside as " + checkpoint.FailedName)
			}
		})
	}
}

// Random damage to random sections, with valid checksums: whatever is hit,
// the daemon resumes (from the latest if the damage is harmless, else from
// the previous) and never stops.
func TestResumeSurvivesRandomSectionDamage(t *testing.T) {
	cfg, clone := twoCheckpoints(t)
	rounds := 40
	if testing.Short() {
		rounds = 12
	}
	rng := rand.New(rand.NewPCG(5, 0))
	names := []string{checkpoint.MetaSection, sectionModel, sectionOptimizer, sectionReplay, sectionHoldout, sectionCounters, sectionNormalizer}
	fellBack := 0
	for round := 0; round < rounds; round++ {
		dir := clone()
		latest := filepath.Join(dir, checkpoint.LatestName)
		name := names[rng.IntN(len(names))]
		var what string
		rewriteSection(t, latest, name, func(b []byte) []byte {
			for k := 1 + rng.IntN(3); k > 0; k-- {
				i := rng.IntN(len(b))
				// The front of a section holds its header: hit it often.
				if rng.IntN(2) == 0 {
					i = rng.IntN(min(len(b), 48))
				}
				b[i] ^= byte(1 + rng.IntN(255))
				what += fmt.Sprintf(" %s[%d]", name, i)
			}
			return b
		})
		c := *cfg
		c.Checkpoint.Dir = dir
		if err := Run(context.Background(), &c, RunOptions{Logger: slog.New(slog.DiscardHandler), MaxSamples: 10}); err != nil {
			t.Fatalf("round %d, damage at%s: the daemon stopped: %v", round, what, err)
		}
		switch got := countersIn(t, latest).SamplesSeen; got {
		case 110:
			fellBack++
		case 210:
		default:
			t.Fatalf("round %d, damage at%s: resumed at %d samples, want 200+10 or 100+10", round, what, got)
		}
	}
	t.Logf("%d rounds: %d fell back to the previous checkpoint, %d resumed the damaged latest", rounds, fellBack, rounds-fellBack)
}

// Only when every checkpoint fails does the start stop, with an error that
// names each file and says how to proceed.
func TestResumeStopsWhenNoCheckpointDecodes(t *testing.T) {
	cfg, clone := twoCheckpoints(t)
	dir := clone()
	for _, name := range []string{checkpoint.LatestName, checkpoint.PreviousName} {
		rewriteSection(t, filepath.Join(dir, name), sectionCounters, func([]byte) []byte { return []byte("[]") })
	}
	before, _ := os.ReadFile(filepath.Join(dir, checkpoint.LatestName))
	c := *cfg
	c.Checkpoint.Dir = dir
	err := Run(context.Background(), &c, RunOptions{Logger: testLogger(t), MaxSamples: 10})
	if err == nil {
		t.Fatal("a run with no usable checkpoint started")
	}
	for _, want := range []string{checkpoint.LatestName + ": counters:", checkpoint.PreviousName + ": counters:", "bnnd checkpoint inspect", "bnnd checkpoint restore", "move the checkpoint files away"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, checkpoint.LatestName)); !bytes.Equal(after, before) {
		t.Error("the refused start changed the latest checkpoint")
	}
}

// A training error leaves the latest and previous checkpoints as they were
// and writes the state at the error beside them; the next start resumes
// from the latest.
func TestTrainingErrorKeepsTheCheckpoints(t *testing.T) {
	cfg, clone := twoCheckpoints(t)
	dir := clone()
	latest, prev := filepath.Join(dir, checkpoint.LatestName), filepath.Join(dir, checkpoint.PreviousName)
	goodLatest, _ := os.ReadFile(latest)
	goodPrev, _ := os.ReadFile(prev)
	fault := errors.New("injected training fault")
	n := 0
	sampleFault = func(*runner) error {
		if n++; n == 30 {
			return fault
		}
		return nil
	}
	defer func() { sampleFault = nil }()
	c := *cfg
	c.Checkpoint.Dir = dir
	err := Run(context.Background(), &c, RunOptions{Logger: testLogger(t)})
	if !errors.Is(err, fault) || !strings.Contains(err.Error(), checkpoint.FailedName) {
		t.Fatalf("run with a training fault: %v", err)
	}
	if b, _ := os.ReadFile(latest); !bytes.Equal(b, goodLatest) {
		t.Error("the latest checkpoint changed on a training error")
	}
	if b, _ := os.ReadFile(prev); !bytes.Equal(b, goodPrev) {
		t.Error("the previous checkpoint changed on a training error")
	}
	failed := filepath.Join(dir, checkpoint.FailedName)
	if c := countersIn(t, failed); c.SamplesSeen != 230 {
		t.Errorf("the failed state has %d samples seen, want 200+30", c.SamplesSeen)
	}
	sampleFault = nil
	if err := Run(context.Background(), &c, RunOptions{Logger: testLogger(t), MaxSamples: 10}); err != nil {
		t.Fatal(err)
	}
	if got := countersIn(t, latest).SamplesSeen; got != 210 {
		t.Errorf("after the error the daemon resumed at %d samples, want the latest checkpoint's 200 + 10", got)
	}
}

// A latest checkpoint that is a symlink to /dev/zero, a FIFO or a file
// larger than the configuration can produce is refused before it is read,
// with the previous one resumed.
func TestResumeRefusesFilesThatAreNotCheckpoints(t *testing.T) {
	cfg, clone := twoCheckpoints(t)
	cases := []struct {
		name, reason string
		make         func(path string) error
	}{
		{"symlink to /dev/zero", "not a regular file (a symbolic link)", func(p string) error { return os.Symlink("/dev/zero", p) }},
		{"FIFO", "not a regular file (a FIFO)", func(p string) error { return syscall.Mkfifo(p, 0o600) }},
		{"huge sparse file", "more than the", func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(64 << 30)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := clone()
			latest := filepath.Join(dir, checkpoint.LatestName)
			os.Remove(latest)
			if err := tc.make(latest); err != nil {
				t.Fatal(err)
			}
			c := *cfg
			c.Checkpoint.Dir = dir
			logs := &syncLog{t: t}
			if err := Run(context.Background(), &c, RunOptions{Logger: logs.logger(), MaxSamples: 10}); err != nil {
				t.Fatalf("run: %v", err)
			}
			if !strings.Contains(logs.String(), tc.reason) || !strings.Contains(logs.String(), latest) {
				t.Errorf("the log does not name %s and %q", latest, tc.reason)
			}
			if got := countersIn(t, latest).SamplesSeen; got != 110 {
				t.Errorf("resumed at %d samples, want the previous checkpoint's 100 + 10", got)
			}
		})
	}
}
