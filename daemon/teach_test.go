package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/mqtt"
)

// writeReplay writes a recording for a simulated chip: n readings per
// label, in the order given, as 'bnnd sensors read --csv' writes them with
// a label column. The activities differ in how the board shakes.
func writeReplay(t *testing.T, dir string, labels []string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("time,ax,ay,az,gx,gy,gz,label\n")
	row := 0
	for k, label := range labels {
		amp := float64(k) * 3
		for i := range n {
			wave := amp * float64((i%8)-4) / 4
			fmt.Fprintf(&b, "%.2f,%.3f,%.3f,%.3f,%.3f,0,0,%s\n", float64(row)/50, 0.1*float64(i%3)+wave, 0.2, 9.8-wave, 0.01*float64(i%5), label)
			row++
		}
	}
	path := filepath.Join(dir, "rec.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func simConfig(t *testing.T, replay string) *config.Config {
	cfg := runConfig(t)
	cfg.Source.Spec = "mpu6050:sim,replay=" + replay + ",pace=0,window=32,hop=16,warmup=64"
	cfg.Training.StepEvery = 1
	return cfg
}

// The labels in a replay's label column create the classes, in the order
// they come, and a resumed run keeps them; model.classes that disagree
// with the checkpoint are an error that says how to go on.
func TestRunClassesFromReplayLabels(t *testing.T) {
	dir := t.TempDir()
	cfg := simConfig(t, writeReplay(t, dir, []string{"idle", "", "wave", "knock"}, 600))
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	c, meta := loadCounters(t, cfg.Checkpoint.Dir)
	if want := []string{"idle", "wave", "knock"}; !slices.Equal(meta.Classes, want) || meta.Outputs != DefaultMaxClassesForTest {
		t.Errorf("checkpoint classes %q with %d outputs, want %q with %d", meta.Classes, meta.Outputs, want, DefaultMaxClassesForTest)
	}
	if c.Step == 0 || c.SamplesStraddling == 0 {
		t.Errorf("counters %+v: want steps and windows that straddled a label change", c)
	}

	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)}); err != nil {
		t.Fatalf("resuming: %v", err)
	}
	if _, again := loadCounters(t, cfg.Checkpoint.Dir); !slices.Equal(again.Classes, meta.Classes) {
		t.Errorf("resumed run has classes %q, want %q", again.Classes, meta.Classes)
	}

	cfg.Model.Classes = []string{"idle", "knock"}
	err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), `was trained with classes ["idle" "wave" "knock"]`) || !strings.Contains(err.Error(), "remove model.classes") {
		t.Errorf("model.classes against the checkpoint: %v", err)
	}
}

// DefaultMaxClassesForTest is model.max_classes by default.
var DefaultMaxClassesForTest = config.Default().Model.MaxClasses

// A label past model.max_classes is refused where it is given, and the
// run goes on with the classes it has.
func TestRunClassLimit(t *testing.T) {
	cfg := simConfig(t, writeReplay(t, t.TempDir(), []string{"a", "b", "c"}, 400))
	cfg.Model.MaxClasses = 2
	err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), `label "c" would be class 3: class limit reached (2 classes: a, b)`) {
		t.Fatalf("a third class with max_classes 2: %v", err)
	}
	if _, meta := loadCounters(t, cfg.Checkpoint.Dir); !slices.Equal(meta.Classes, []string{"a", "b"}) {
		t.Errorf("checkpoint after the refused label has classes %q", meta.Classes)
	}
}

// model.init starts from a model written by 'bnnd train --save': its
// classes, weights and normaliser; files that are not such a model, or
// that do not fit the source, are refused with what differs.
func TestRunModelInit(t *testing.T) {
	dir := t.TempDir()
	replay := writeReplay(t, dir, []string{"idle", "wave"}, 400)
	spec, _ := bnn.ParseSpec("mlp:64")
	net, err := bnn.New(spec, bnn.Shape{Height: 1, Width: 32, Channels: 6}, []string{"idle", "wave"}, bnn.Options{Batch: 8, Threads: 1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	net.SetNormalizer(bnn.Normalizer{Mean: []float32{0, 0, 9.8, 0, 0, 0}, Std: []float32{3, 1, 3, 1, 1, 1}})
	var file bytes.Buffer
	if _, err := net.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "model.bnn")
	os.WriteFile(good, file.Bytes(), 0o644)

	cfg := simConfig(t, replay)
	cfg.Model.Init = good
	if err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	if c, meta := loadCounters(t, cfg.Checkpoint.Dir); !slices.Equal(meta.Classes, []string{"idle", "wave"}) || meta.Outputs != 2 || c.Step == 0 {
		t.Errorf("started from model.init: classes %q, %d outputs, %d steps", meta.Classes, meta.Outputs, c.Step)
	}

	truncated := filepath.Join(dir, "truncated.bnn")
	os.WriteFile(truncated, file.Bytes()[:file.Len()/2], 0o644)
	foreign := filepath.Join(dir, "notes.txt")
	os.WriteFile(foreign, []byte("some other file entirely, not a model\n"), 0o644)
	other, _ := bnn.New(spec, bnn.Shape{Height: 1, Width: 16, Channels: 6}, []string{"idle", "wave"}, bnn.Options{Batch: 8})
	var otherFile bytes.Buffer
	other.WriteTo(&otherFile)
	wrongShape := filepath.Join(dir, "short-window.bnn")
	os.WriteFile(wrongShape, otherFile.Bytes(), 0o644)

	for _, c := range []struct {
		init string
		want string
	}{
		{truncated, "model file truncated"},
		{foreign, "not a bnnd model file"},
		{wrongShape, "takes input 1x16x6"},
		{filepath.Join(dir, "missing.bnn"), "no such file"},
	} {
		cfg := simConfig(t, replay)
		cfg.Model.Init = c.init
		err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "model.init") {
			t.Errorf("model.init %s: error %v, want one naming model.init and %q", filepath.Base(c.init), err, c.want)
		}
	}
}

// Replays that cannot be played are refused at start, naming the file, the
// line and what is wrong.
func TestRunBadReplay(t *testing.T) {
	dir := t.TempDir()
	noGyro := filepath.Join(dir, "no-gyro.csv")
	os.WriteFile(noGyro, []byte("time,ax,ay,az\n0,1,2,3\n"), 0o644)
	text := filepath.Join(dir, "text.csv")
	os.WriteFile(text, []byte("ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n1,2,fast,4,5,6\n"), 0o644)
	for _, c := range []struct {
		glob string
		want []string
	}{
		{filepath.Join(dir, "none-*.csv"), []string{"no file matches"}},
		{noGyro, []string{"no-gyro.csv", "gx"}},
		{text, []string{"text.csv:3", `"fast"`}},
	} {
		cfg := simConfig(t, c.glob)
		err := Run(context.Background(), cfg, RunOptions{Logger: testLogger(t)})
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("replay %s: error %v, want it to name %q", filepath.Base(c.glob), err, w)
			}
		}
	}
}

// While the encoding race holds the loop, commands get an answer that
// says why they were not carried out, instead of waiting for minutes.
func TestBusyLoopAnswersCommands(t *testing.T) {
	r := &runner{cmds: make(chan cmdRequest)}
	b := busyLoop{r: r, since: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	reply := make(chan cmdReply, 1)
	go func() { r.cmds <- cmdRequest{cmd: mqtt.Command{Name: mqtt.CmdPause}, reply: reply} }()
	for {
		b.serve()
		select {
		case rep := <-reply:
			if rep.err == nil || !strings.Contains(rep.err.Error(), "pause: the encoding search has been running since 12:00:00") {
				t.Fatalf("answer during the race: %v", rep.err)
			}
			return
		default:
			runtime.Gosched()
		}
	}
}
