package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/daemon/checkpoint"
)

func TestCheckpointInspect(t *testing.T) {
	dir := t.TempDir()
	st, err := checkpoint.Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC)
	meta := []byte(`{"model": "mlp-s", "momentum": "e4m3b28"}`)
	for i := 0; i < 2; i++ {
		if _, err := st.Save(created, checkpoint.BytesSection("meta", meta), checkpoint.BytesSection("model", make([]byte, 1000+i))); err != nil {
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
	if code, _, _ := invokeCLI(t, "checkpoint", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

// list shows every checkpoint of a state directory with its meta; restore
// makes an archived one the latest, archives the latest it replaces, and
// is refused while a daemon holds the directory.
func TestCheckpointListAndRestore(t *testing.T) {
	dir := t.TempDir()
	st, err := checkpoint.Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta := func(step int, reason string) checkpoint.Section {
		return checkpoint.BytesSection("meta", []byte(fmt.Sprintf(`{"model":"mlp-s","classes":["a","b","c"],"step":%d,"reason":%q}`, step, reason)))
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	trained, err := st.Archive(t0, 3, meta(5000, "archived before reset"), checkpoint.BytesSection("model", make([]byte, 3000)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Save(t0.Add(time.Minute), meta(0, "reset"), checkpoint.BytesSection("model", make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := invokeCLI(t, "checkpoint", "list", dir)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"SLOT", "latest    2026-12-01T08:01:00.000Z         0  reset", "archive   2026-12-01T08:00:00.000Z      5000  archived before reset",
		"mlp-s       3", filepath.Join("archive", filepath.Base(trained))} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}

	unlock, err := checkpoint.LockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = invokeCLI(t, "checkpoint", "restore", "--state-dir", dir, filepath.Base(trained))
	unlock()
	if code != 1 || !strings.Contains(errOut, "in use by process") {
		t.Fatalf("restore while the directory is locked: exit %d, %s", code, errOut)
	}

	replaced, _ := os.ReadFile(st.LatestPath())
	code, out, errOut = invokeCLI(t, "checkpoint", "restore", filepath.Base(trained), "--state-dir", dir)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errOut)
	}
	want, _ := os.ReadFile(trained)
	if got, _ := os.ReadFile(st.LatestPath()); !bytes.Equal(got, want) {
		t.Error("the latest checkpoint is not the restored one")
	}
	if !strings.Contains(out, "archived the replaced latest checkpoint as ") {
		t.Errorf("restore output: %s", out)
	}
	entries, _ := checkpoint.List(dir)
	found := false
	for _, e := range entries {
		if b, _ := os.ReadFile(e.Path); e.Slot == "archive" && bytes.Equal(b, replaced) {
			found = true
		}
	}
	if !found {
		t.Error("the replaced latest checkpoint is not in the archive")
	}

	// A file that is not a checkpoint is refused and changes nothing.
	junk := filepath.Join(t.TempDir(), "junk.bnnd")
	os.WriteFile(junk, []byte("not a checkpoint"), 0o600)
	if code, _, errOut := invokeCLI(t, "checkpoint", "restore", "--state-dir", dir, junk); code != 1 || !strings.Contains(errOut, "not restored") {
		t.Errorf("restore of junk: exit %d, %s", code, errOut)
	}
	if got, _ := os.ReadFile(st.LatestPath()); !bytes.Equal(got, want) {
		t.Error("a refused restore changed the latest checkpoint")
	}
	// inspect refuses what is not a regular file instead of reading it.
	link := filepath.Join(t.TempDir(), "zero.bnnd")
	os.Symlink("/dev/zero", link)
	if code, _, errOut := invokeCLI(t, "checkpoint", "inspect", link); code != 1 || !strings.Contains(errOut, "not a regular file (a symbolic link)") {
		t.Errorf("inspect of a symlink to /dev/zero: exit %d, %s", code, errOut)
	}
}
