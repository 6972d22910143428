package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/mqtt"
)

func init() {
	register(&command{
		name:    "mqtt-credentials",
		summary: "create (once) the embedded MQTT broker's login file, or bcrypt-hash a password for embedded_broker.users",
		run:     runMQTTCredentials,
	})
}

// stdin is where -hash reads the password; a test replaces it.
var stdin io.Reader = os.Stdin

func runMQTTCredentials(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mqtt-credentials", stderr)
	stateDir := fs.String("state-dir", "", "state directory of the daemon (default: the configuration's checkpoint.dir, as 'bnnd run' resolves it)")
	configPath := fs.String("config", "", "configuration `FILE` whose embedded_broker.credentials_file / checkpoint.dir to use")
	owner := fs.String("owner", "", "give the file to `USER[:GROUP]` (the package runs this as root for the bnnd user)")
	hash := fs.Bool("hash", false, "read a password from standard input and print its bcrypt hash for embedded_broker.users[].password_hash")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bnnd mqtt-credentials [-state-dir DIR | -config FILE] [-owner USER[:GROUP]]\n"+
			"       bnnd mqtt-credentials -hash < password\n\n"+
			"Creates the embedded broker's credentials file if it does not exist (mode 0600) and prints\n"+
			"where it is; the password is only in the file. Flags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *hash {
		return hashPassword(stdout)
	}
	path, err := credentialsPath(*stateDir, *configPath)
	if err != nil {
		return err
	}
	c, created, err := mqtt.EnsureCredentials(path)
	if err != nil {
		return err
	}
	if *owner != "" {
		if err := chownTo(path, *owner); err != nil {
			return err
		}
	}
	if created {
		fmt.Fprintf(stdout, "created %s (user %s); subscribe with:\n  mosquitto_sub -u %s -P \"$(sed -n 's/^password=//p' %s)\" -t 'bnnd/#' -v\n",
			path, c.Username, c.Username, path)
	} else {
		fmt.Fprintf(stdout, "%s exists (user %s); kept\n", path, c.Username)
	}
	return nil
}

func credentialsPath(stateDir, configPath string) (string, error) {
	if stateDir != "" && configPath != "" {
		return "", usagef("give -state-dir or -config, not both")
	}
	if stateDir != "" {
		return filepath.Join(stateDir, mqtt.CredentialsFileName), nil
	}
	cfg := config.Default()
	if configPath != "" {
		var err error
		if cfg, err = config.Load(configPath); err != nil {
			return "", err
		}
	}
	if cfg.EmbeddedBroker.CredentialsFile != "" {
		return cfg.EmbeddedBroker.CredentialsFile, nil
	}
	dir, err := cfg.StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, mqtt.CredentialsFileName), nil
}

// chownTo gives path to "user[:group]" (names or numbers); the group
// defaults to the user's.
func chownTo(path, owner string) error {
	name, group, _ := strings.Cut(owner, ":")
	gid := -1
	uid, err := idOf(name, func(name string) (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		gid, _ = strconv.Atoi(u.Gid)
		return u.Uid, nil
	})
	if err == nil && group != "" {
		gid, err = idOf(group, func(name string) (string, error) {
			g, err := user.LookupGroup(name)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
	}
	if err == nil {
		err = os.Chown(path, uid, gid)
	}
	if err != nil {
		return fmt.Errorf("-owner %s: %w", owner, err)
	}
	return nil
}

// idOf is s as a number, or else the id that lookup finds for the name s.
func idOf(s string, lookup func(name string) (string, error)) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	id, err := lookup(s)
	if err != nil {
		return -1, err
	}
	n, _ := strconv.Atoi(id)
	return n, nil
}

func hashPassword(stdout io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return usagef("-hash: no password on standard input")
	}
	if len(pw) > 72 {
		return usagef("-hash: bcrypt uses at most 72 bytes of a password, got %d", len(pw))
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(h))
	return err
}
