package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/bnn"
)

// small keeps the CLI tests quick, also under qemu: 400 synthetic IMU
// windows, a 32-unit hidden layer.
var small = []string{"--data", "synthetic-imu,n=400", "--model", "mlp:32", "--batch", "16", "--threads", "2"}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func lastJSON(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("last line of stdout is not JSON: %v\n%s", err, stdout)
	}
	return v
}

func TestTrainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--epochs", "0"},
		{"--momentum", "e9m3"},
		{"--model", "rnn:4"},
		{"--batch", "1"},
		{"--threads", "0"},
		{"--gamma", "0"},
		{"--tau", "-1"},
		{"--momentum", "auto", "--nearest-only", "--stochastic-only"},
		{"--min-bits", "9", "--max-bits", "5"},
		{"--stat-batches", "-1"},
		{"extra"},
	} {
		code, _, stderr := runCmd(t, append([]string{"train"}, args...)...)
		if code != 2 {
			t.Errorf("train %v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
	}
	code, _, stderr := runCmd(t, "train", "--data", "csv:/nonexistent/*.csv", "--epochs", "1")
	if code != 1 || !strings.Contains(stderr, "--data") {
		t.Errorf("missing data: exit %d, stderr %q; want 1 and a message naming --data", code, stderr)
	}
}

func TestTrainJSONAndSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.bnn")
	code, stdout, stderr := runCmd(t, append([]string{"train", "--epochs", "1", "--momentum", "e3m3b20s", "--json", "--save", path, "--agreement-samples", "256"}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	v := lastJSON(t, stdout)
	for _, k := range []string{"model", "momentum", "epochs", "test_acc", "train_state_bytes", "train_state", "momentum_bits",
		"lost_ratio", "flip_rate", "samples_per_s", "peak_rss_bytes", "seconds", "flip_agreement"} {
		if _, ok := v[k]; !ok {
			t.Errorf("JSON summary lacks %q", k)
		}
	}
	if acc := v["test_acc"].(float64); acc < 0 || acc > 1 {
		t.Errorf("test_acc %g outside [0,1]", acc)
	}
	if bits := v["momentum_bits"].(float64); bits != 7 {
		t.Errorf("momentum_bits %g, want 7", bits)
	}
	parts := v["train_state"].(map[string]any)
	var sum float64
	for k, p := range parts {
		if k != "momenta_by_format" {
			sum += p.(float64)
		}
	}
	if sum != v["train_state_bytes"].(float64) {
		t.Errorf("train_state parts sum to %g, total says %g", sum, v["train_state_bytes"])
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	net, err := bnn.ReadModel(f, bnn.Options{Batch: 4})
	if err != nil {
		t.Fatalf("saved model does not load: %v", err)
	}
	if len(net.Classes()) != 5 || net.InputShape().Channels != 6 {
		t.Errorf("saved model: %d classes, input %v", len(net.Classes()), net.InputShape())
	}
}

func TestTrainAuto(t *testing.T) {
	code, stdout, stderr := runCmd(t, append([]string{"train", "--epochs", "1", "--momentum", "auto", "--calibrate-steps", "4", "--calibrate-warmup", "3",
		"--min-bits", "6", "--max-bits", "8", "--best-effort", "--json"}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "encoding search") || !strings.Contains(stderr, "calibrated after 7") {
		t.Errorf("stderr does not show the search: %s", stderr)
	}
	v := lastJSON(t, stdout)
	if bits := v["momentum_bits"].(float64); bits < 6 || bits > 8 {
		t.Errorf("auto chose %g-bit momenta, want 6..8", bits)
	}
}

// TestTrainAutoWarmupPastAnEpoch: the calibration warm-up may be longer than
// an epoch of a small dataset (400 windows, batches of 16).
func TestTrainAutoWarmupPastAnEpoch(t *testing.T) {
	code, stdout, stderr := runCmd(t, append([]string{"train", "--epochs", "2", "--momentum", "auto", "--calibrate-steps", "4", "--calibrate-warmup", "30",
		"--min-bits", "6", "--max-bits", "8", "--best-effort", "--json"}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "calibrated after 34") || !strings.Contains(stderr, "epoch 2/2") {
		t.Errorf("stderr does not show calibration then epoch 2: %s", stderr)
	}
	if v := lastJSON(t, stdout); v["test_acc"].(float64) <= 0 {
		t.Errorf("test accuracy %v", v["test_acc"])
	}
}

func TestCalibrateCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, append([]string{"calibrate", "--steps", "4", "--warmup", "2", "--per-layer", "--best-effort", "--max-bits", "8", "--json"}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "rank") || !strings.Contains(stdout, "chosen momentum encoding") {
		t.Errorf("no ranking table in output:\n%s", stdout)
	}
	v := lastJSON(t, stdout)
	if fs := v["formats"].([]any); len(fs) != 2 {
		t.Errorf("per-layer calibration of a 2-layer model chose %v", fs)
	}
	if code, _, _ := runCmd(t, "calibrate", "--steps", "0"); code != 2 {
		t.Errorf("--steps 0: exit %d, want 2", code)
	}
}

func TestTrainAutoFP32Below(t *testing.T) {
	code, stdout, stderr := runCmd(t, append([]string{"train", "--epochs", "1", "--momentum", "auto", "--calibrate-steps", "4", "--calibrate-warmup", "3",
		"--min-bits", "6", "--max-bits", "6", "--stochastic-only", "--best-effort", "--fp32-below", "1000", "--json"}, small...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "encoding search (layer 0)") {
		t.Errorf("stderr does not show a search over layer 0 only: %s", stderr)
	}
	v := lastJSON(t, stdout)
	formats := v["formats"].([]any)
	if len(formats) != 2 || formats[1] != "fp32" || !strings.HasPrefix(formats[0].(string), "e") {
		t.Errorf("formats %v, want a 6-bit encoding for the hidden layer and fp32 for the 160-weight output layer", formats)
	}
}

// TestTrainAutoSmallDataset: a data set whose whole run is shorter than the
// default warm-up (600 windows: 15 steps an epoch, 300 in 20 epochs against
// 330 warm-up steps) used to leave no epoch to train and print a test
// accuracy of 0. The warm-up now shrinks to a quarter of the run, every
// epoch after it trains and is tested.
func TestTrainAutoSmallDataset(t *testing.T) {
	code, stdout, stderr := runCmd(t, "train", "--data", "synthetic-imu,n=600", "--model", "mlp:32", "--batch", "32", "--threads", "2",
		"--epochs", "20", "--momentum", "auto", "--race-steps", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "warm-up shortened") || !strings.Contains(stderr, "epoch 20/20") {
		t.Errorf("stderr does not show a shortened warm-up and then epoch 20: %s", stderr)
	}
	if strings.Contains(stdout, "not measured") {
		t.Errorf("training figures not measured:\n%s", stdout)
	}
	v := lastJSON(t, stdout)
	for _, k := range []string{"test_acc", "train_acc", "train_loss"} {
		if x, ok := v[k].(float64); !ok || x <= 0 {
			t.Errorf("%s = %v, want a measured figure > 0", k, v[k])
		}
	}
	sel, ok := v["selection"].(map[string]any)
	if !ok || sel["reason"] == "" {
		t.Errorf("JSON lacks the selection: %v", v["selection"])
	}
	if bits := v["momentum_bits"].(float64); bits > 8 {
		t.Errorf("auto chose %g-bit momenta, more than the 8-bit reference", bits)
	}
}
