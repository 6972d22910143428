package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/bnnd/bnnd/mqtt"
)

// TestMQTTCredentialsCommand is what the package's postinst runs: the
// file appears once with mode 0600 and the given owner, a second run
// keeps it, and the password is printed nowhere.
func TestMQTTCredentialsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	owner := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	code, out, errOut := invokeCLI(t, "mqtt-credentials", "-state-dir", dir, "-owner", owner)
	path := filepath.Join(dir, mqtt.CredentialsFileName)
	if code != 0 || !strings.Contains(out, "created "+path) {
		t.Fatalf("first run: exit %d, %q %q", code, out, errOut)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, st.Mode())
	}
	c, err := mqtt.ReadCredentials(path)
	if err != nil || c.Username != "bnnd" || len(c.Password) < 24 {
		t.Fatalf("credentials %+v, %v", c, err)
	}
	if strings.Contains(out+errOut, c.Password) {
		t.Errorf("the password was printed: %q", out)
	}
	code, out, _ = invokeCLI(t, "mqtt-credentials", "-state-dir", dir)
	again, _ := mqtt.ReadCredentials(path)
	if code != 0 || !strings.Contains(out, "exists") || again != c {
		t.Errorf("second run: exit %d, %q; credentials %+v, were %+v", code, out, again, c)
	}

	// A file others can read is refused rather than trusted.
	os.Chmod(path, 0o644)
	if code, _, errOut := invokeCLI(t, "mqtt-credentials", "-state-dir", dir); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("world-readable file: exit %d, %q", code, errOut)
	}
	if code, _, errOut := invokeCLI(t, "mqtt-credentials", "-state-dir", t.TempDir(), "-owner", "no-such-user-bnnd"); code != 1 || !strings.Contains(errOut, "no-such-user-bnnd") {
		t.Errorf("unknown owner: exit %d, %q", code, errOut)
	}
}

func TestMQTTCredentialsHash(t *testing.T) {
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("correct horse\n")
	code, out, errOut := invokeCLI(t, "mqtt-credentials", "-hash")
	if code != 0 || bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out)), []byte("correct horse")) != nil {
		t.Fatalf("hash: exit %d, %q %q", code, out, errOut)
	}
	stdin = strings.NewReader("")
	if code, _, _ := invokeCLI(t, "mqtt-credentials", "-hash"); code != 2 {
		t.Errorf("empty password: exit %d, want 2", code)
	}
}

// TestConfigCheckSaysWhyTheBrokerSetupIsUnsafe: what 'bnnd run' would
// refuse at start is refused by 'bnnd config check', with key, line and
// the way out.
func TestConfigCheckSaysWhyTheBrokerSetupIsUnsafe(t *testing.T) {
	dir := t.TempDir()
	external := filepath.Join(dir, "external.yaml")
	os.WriteFile(external, []byte("mqtt:\n  broker: tcp://broker.lan:1883\n  password: hunter2\n"), 0o600)
	path := filepath.Join(dir, "lan.yaml")
	os.WriteFile(path, []byte("embedded_broker:\n  listen: 0.0.0.0:1883\n"), 0o600)
	code, _, errOut := invokeCLI(t, "config", "check", external, path)
	if code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, errOut)
	}
	for _, want := range []string{
		external + ":3: mqtt.password: a password is set but username is empty",
		path + ":2: embedded_broker.listen: 0.0.0.0:1883 is reachable from other machines",
		"embedded_broker.allow_insecure_lan: true",
		"tls_cert_file",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("config check printed the password:\n%s", errOut)
	}
	os.WriteFile(path, []byte("embedded_broker:\n  listen: 0.0.0.0:1883\n  allow_insecure_lan: true\n"), 0o600)
	if code, out, errOut := invokeCLI(t, "config", "check", path); code != 0 {
		t.Errorf("with allow_insecure_lan: exit %d, %q %q", code, out, errOut)
	}
}
