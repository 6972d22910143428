package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` score we accept
// (0 = fully locked down, 10 = unprotected).
const maxExposure = 2.0

// systemdAnalyze returns the path of systemd-analyze; its absence fails the
// test (never skips): the unit's checks are part of the suite.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check bnnd.service: install the Debian package `systemd` (apt-get install systemd): %v", err)
	}
	return path
}

// unitSettings parses the unit into section → key → values (a key may repeat).
func unitSettings(t *testing.T, unit []byte) map[string]map[string][]string {
	t.Helper()
	sections := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		switch {
		case text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, ";"):
		case strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]"):
			section = text[1 : len(text)-1]
			sections[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(text, "=")
			if !ok || section == "" {
				t.Fatalf("bnnd.service:%d: %q is neither a section nor key=value", line, text)
			}
			sections[section][key] = append(sections[section][key], value)
		}
	}
	return sections
}

func TestUnitFileHasTheRequiredSettings(t *testing.T) {
	onDisk, err := os.ReadFile(UnitName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, UnitFile) {
		t.Fatal("the embedded UnitFile differs from bnnd.service")
	}
	s := unitSettings(t, UnitFile)
	want := map[string]string{
		"Type":                   "notify",
		"ExecStart":              "/usr/bin/bnnd run -config /etc/bnnd/bnnd.yaml",
		"WatchdogSec":            "60s",
		"Restart":                "on-failure",
		"User":                   "bnnd",
		"SupplementaryGroups":    "i2c",
		"DevicePolicy":           "closed",
		"DeviceAllow":            "char-i2c rw",
		"StateDirectory":         "bnnd",
		"ConfigurationDirectory": "bnnd",
		"NoNewPrivileges":        "yes",
		"ProtectSystem":          "strict",
		"MemoryDenyWriteExecute": "yes",
		"UMask":                  "0077",
		"CapabilityBoundingSet":  "",
	}
	for key, value := range want {
		got := s["Service"][key]
		if len(got) != 1 || got[0] != value {
			t.Errorf("[Service] %s = %q, want exactly %q", key, got, value)
		}
	}
	// Inside a user namespace the i2c group is unmapped: /dev/i2c-* would
	// become unreadable.
	if v := s["Service"]["PrivateUsers"]; len(v) > 0 && v[len(v)-1] != "no" {
		t.Errorf("PrivateUsers=%s breaks access to /dev/i2c-* through the i2c group", v[len(v)-1])
	}
	// PrivateDevices= hides /dev/i2c-*; DevicePolicy does the job instead.
	if v := s["Service"]["PrivateDevices"]; len(v) > 0 && v[len(v)-1] != "no" {
		t.Errorf("PrivateDevices=%s hides /dev/i2c-*", v[len(v)-1])
	}
	if got := s["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q, want multi-user.target", got)
	}
}

// TestUnitFileVerifies runs `systemd-analyze verify`. It checks that the
// ExecStart binary exists, so it verifies a copy whose ExecStart points at a
// stand-in executable in a temporary directory; everything else is verified
// as shipped.
func TestUnitFileVerifies(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := t.TempDir()
	standIn := filepath.Join(dir, "bnnd")
	if err := os.WriteFile(standIn, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const shipped = "ExecStart=/usr/bin/bnnd "
	if n := bytes.Count(UnitFile, []byte(shipped)); n != 1 {
		t.Fatalf("bnnd.service has %d lines starting %q, want 1", n, shipped)
	}
	unit := bytes.Replace(UnitFile, []byte(shipped), []byte("ExecStart="+standIn+" "), 1)
	unitPath := filepath.Join(dir, UnitName)
	if err := os.WriteFile(unitPath, unit, 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(analyze, "verify", unitPath).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify bnnd.service: %v\n%s", err, out)
	}
	// verify exits 0 on warnings such as unknown keys; any word about our
	// unit is a failure. Other lines come from the host's own units.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, UnitName) || strings.Contains(line, dir) {
			t.Errorf("systemd-analyze verify: %s", line)
		} else if line != "" {
			t.Logf("systemd-analyze verify (about the host, ignored): %s", line)
		}
	}
}

var overallExposure = regexp.MustCompile(`Overall exposure level for bnnd\.service: ([0-9]+\.[0-9]+)`)

// TestUnitFileSecurityScore runs `systemd-analyze security --offline=yes`,
// which scores the unit's sandboxing from the file alone.
func TestUnitFileSecurityScore(t *testing.T) {
	analyze := systemdAnalyze(t)
	cmd := exec.Command(analyze, "security", "--offline=yes", "--no-pager",
		"--threshold="+strconv.Itoa(int(maxExposure*10)), UnitName)
	out, err := cmd.CombinedOutput()
	m := overallExposure.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security --offline=yes gave no overall exposure (it needs systemd ≥ 250, Debian package `systemd`): %v\n%s", err, out)
	}
	score, perr := strconv.ParseFloat(string(m[1]), 64)
	if perr != nil {
		t.Fatal(perr)
	}
	if err != nil || score > maxExposure {
		t.Fatalf("bnnd.service exposure %.1f, want ≤ %.1f (%v):\n%s", score, maxExposure, err, out)
	}
	t.Logf("systemd-analyze security --offline=yes: exposure %.1f (≤ %.1f)", score, maxExposure)
}
