package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func invokeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigCheck(t *testing.T) {
	example := filepath.Join("..", "..", "configs", "bnnd.yaml")
	if code, out, errOut := invokeCLI(t, "config", "check", example); code != 0 || !strings.Contains(out, "bnnd.yaml: ok") {
		t.Fatalf("example config: exit %d, %q %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("training:\n  gamma: 2\n  gama: 0.1\nlog:\n  level: loud\n"), 0o600)
	code, _, errOut := invokeCLI(t, "config", "check", example, bad)
	if code != 2 {
		t.Fatalf("invalid config: exit %d, want 2", code)
	}
	for _, want := range []string{
		bad + ":3: training.gama: unknown key",
		bad + ":2: training.gamma: must be in (0, 1), got 2",
		bad + `:5: log.level: must be one of debug, info, warn, error, got "loud"`,
		"1 of 2 configuration files invalid",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := invokeCLI(t, "config", "check", filepath.Join(t.TempDir(), "none.yaml")); code != 2 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	if code, _, _ := invokeCLI(t, "config", "check"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
	if code, _, _ := invokeCLI(t, "config", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

func TestConfigDefaultsIsTheExample(t *testing.T) {
	code, out, _ := invokeCLI(t, "config", "defaults")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "configs", "bnnd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(example) {
		t.Error("'bnnd config defaults' differs from configs/bnnd.yaml")
	}
}

func TestConfigShowAppliesFlags(t *testing.T) {
	code, out, errOut := invokeCLI(t, "config", "show", "--threads", "3", "--mqtt-prefix", "lab/bnnd", "--checkpoint-interval", "90s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"threads: 3\n", "prefix: lab/bnnd\n", "interval: 1m30s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	code, _, errOut = invokeCLI(t, "config", "show", "--mqtt-prefix", "a/#")
	if code != 2 || !strings.Contains(errOut, `flag -mqtt-prefix: mqtt.prefix: "a/#": want a topic level path without wildcards`) {
		t.Errorf("bad flag value: exit %d, %q", code, errOut)
	}
}
