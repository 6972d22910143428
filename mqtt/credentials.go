package mqtt

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ownUsername is the embedded broker's user for the daemon's own client.
const ownUsername = "bnnd"

// CredentialsFileName is the file, in the state directory, that keeps the
// embedded broker's generated user and password.
const CredentialsFileName = "mqtt-credentials"

// Credentials are a user name and password of the embedded broker.
type Credentials struct {
	Username, Password string
}

// EnsureCredentials returns the credentials kept in path, creating the file
// (mode 0600, a fresh random password) when it does not exist. created says
// whether it did. A file that others may read is refused rather than used:
// the password would no longer be a secret.
func EnsureCredentials(path string) (c Credentials, created bool, err error) {
	c, err = ReadCredentials(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, false, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return c, false, fmt.Errorf("mqtt: credentials: %w", err)
	}
	c = Credentials{Username: ownUsername, Password: base64.RawURLEncoding.EncodeToString(raw)}
	text := fmt.Sprintf("# bnnd embedded MQTT broker: the daemon's own user, allowed to read and publish\n"+
		"# everything (commands included). Keep it secret; delete this file and restart\n"+
		"# bnnd to get a new password.\nusername=%s\npassword=%s\n", c.Username, c.Password)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return c, false, fmt.Errorf("mqtt: credentials: %w", err)
	}
	// O_EXCL: a daemon and the package's postinst racing must not both
	// write a password; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		c, err = ReadCredentials(path)
		return c, false, err
	}
	if err != nil {
		return c, false, fmt.Errorf("mqtt: credentials: %w", err)
	}
	_, werr := f.WriteString(text)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return c, false, fmt.Errorf("mqtt: credentials: writing %s: %w", path, werr)
	}
	return c, true, nil
}

// ReadCredentials reads a credentials file written by EnsureCredentials.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	st, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("mqtt: credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("mqtt: credentials file %s has mode %04o: others may read the password; "+
			"chmod 600 it (or delete it to get a new one)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("mqtt: credentials: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			switch strings.TrimSpace(k) {
			case "username":
				c.Username = strings.TrimSpace(v)
			case "password":
				c.Password = strings.TrimSpace(v)
			}
		}
	}
	if c.Username == "" || c.Password == "" {
		return c, fmt.Errorf("mqtt: credentials file %s lacks a username= or password= line (delete it to get a new one)", path)
	}
	return c, nil
}

// readSecretFile reads a password or token: the file's content without
// its trailing newline, not empty.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// readResetToken reads mqtt.commands.reset_token_file; a token short
// enough to guess is refused.
func readResetToken(path string) (string, error) {
	s, err := readSecretFile(path)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if len(s) < 16 {
		return "", fmt.Errorf("the token in %s has %d characters, want at least 16", path, len(s))
	}
	if s == resetRequest {
		return "", fmt.Errorf("the token in %s is the word %q, which asks for a code", path, resetRequest)
	}
	return s, nil
}
