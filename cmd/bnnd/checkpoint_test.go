package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon"
)

func TestCheckpointInspect(t *testing.T) {
	dir := t.TempDir()
	st, err := daemon.OpenStore(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)
	meta := []byte(`{"model": "mlp-s", "momentum": "e4m3b28"}`)
	for i := 0; i < 2; i++ {
		if _, err := st.Save(created, daemon.BytesSection("meta", meta), daemon.BytesSection("model", make([]byte, 1000+i))); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := invokeCLI(t, "checkpoint", "inspect", st.LatestPath())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"format:   version 1", "created:  2026-11-28T23:00:00Z", "status:   valid (CRC-32C ok)",
		"  model              1001 bytes  ok", `"momentum": "e4m3b28"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = invokeCLI(t, "checkpoint", "inspect", st.LatestPath(), "--json")
	var r struct {
		Valid    bool
		Sections []struct {
			Name string
			Size int
		}
		Meta map[string]string
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || !r.Valid || len(r.Sections) != 2 || r.Sections[1].Size != 1001 || r.Meta["model"] != "mlp-s" {
		t.Fatalf("json: exit %d, %+v\n%s", code, r, out)
	}

	// Damage the latest: inspect reports it and exits 1; the directory view
	// shows both files.
	data, _ := os.ReadFile(st.LatestPath())
	data[len(data)-10] ^= 1
	os.WriteFile(st.LatestPath(), data, 0o600)
	code, out, errOut = invokeCLI(t, "checkpoint", "inspect", dir)
	if code != 1 {
		t.Fatalf("damaged: exit %d, want 1", code)
	}
	for _, want := range []string{"status:   INVALID: checksum mismatch", "model              1001 bytes  CHECKSUM MISMATCH", "checkpoint.prev.bnnd", "model              1000 bytes  ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "checkpoint.bnnd: checksum mismatch") {
		t.Errorf("stderr does not name the file and problem: %q", errOut)
	}
	os.WriteFile(st.LatestPath(), data[:20], 0o600)
	code, out, _ = invokeCLI(t, "checkpoint", "inspect", "--json", st.LatestPath())
	if code != 1 || !strings.Contains(out, `"error": "truncated: 20 bytes, shorter than the 32-byte header"`) {
		t.Errorf("truncated: exit %d\n%s", code, out)
	}
	if code, _, _ := invokeCLI(t, "checkpoint", "inspect"); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
	if code, _, _ := invokeCLI(t, "checkpoint", "list"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}
