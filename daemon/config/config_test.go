package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// equalConfig compares the settings of two configurations, ignoring where
// each value came from.
func equalConfig(a, b *Config) bool {
	x, y := *a, *b
	x.origin, y.origin = nil, nil
	return reflect.DeepEqual(x, y)
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults do not validate:\n%v", err)
	}
}

// TestExampleConfigIsTheDefaults keeps configs/bnnd.yaml from drifting: it
// must load to exactly the defaults and mention every key.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	path := filepath.Join("..", "..", "configs", "bnnd.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	if !equalConfig(cfg, Default()) {
		got, _ := cfg.MarshalYAML()
		t.Fatalf("%s does not equal the defaults; regenerate it with 'bnnd config defaults'. It loads as:\n%s", path, got)
	}
	for _, key := range leafKeys() {
		if cfg.Origin(key) == "" {
			t.Errorf("%s does not set key %s", path, key)
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(text, Example()) {
		t.Errorf("%s differs from 'bnnd config defaults' (a comment changed?); regenerate it with\n  go run ./cmd/bnnd config defaults > configs/bnnd.yaml", path)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	c.Source.Spec = "csv:/tmp/x.csv"
	c.Training.Gamma = 2.5e-4
	c.Training.Seed = -7
	c.Replay.Budget = 1536
	c.MQTT.Broker = "ssl://broker.example:8883"
	c.MQTT.CAFile = "/etc/ssl/ca.pem"
	c.MQTT.DeviceID = "1234" // would read back as a number if unquoted
	c.MQTT.Username = "true"
	c.MQTT.Commands.Disabled = []string{"reset", "momentum"}
	c.Checkpoint.Interval = 90 * time.Second
	c.Prometheus.Listen = ":9100"
	c.EmbeddedBroker.Users = []BrokerUserConfig{
		{Username: "ha", PasswordHash: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", Access: "readwrite"},
		{Username: "grafana", PasswordFile: "/etc/bnnd/grafana.pw"},
	}
	c.EmbeddedBroker.MaxRetainedBytes = 3 << 20
	text, err := c.MarshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("mem.yaml", text)
	if err != nil {
		t.Fatalf("parse of marshalled config: %v\n%s", err, text)
	}
	if !equalConfig(back, c) {
		t.Fatalf("round trip changed the config:\n%s", text)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
	}
	out := make([]string, len(ce.Problems))
	for i, p := range ce.Problems {
		out[i] = p.String()
	}
	return out
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bnnd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadReportsEveryProblemWithLine(t *testing.T) {
	path := writeConfig(t, `source:
  spec: mnist
  windw: 10
training:
  gamma: 2
  batch: many
  threads: -1
  tau: 1e-6
checkpoint:
  interval: 600
mqtt:
  broker: ftp://x
  keepalive: 30s
  commands:
    disabled: [reset, explode]
log:
  level: verbose
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	got := problems(t, err)
	want := []string{
		path + `:3: source.windw: unknown key (known keys here: spec, window, hop)`,
		path + `:6: training.batch: expected an integer, got the string "many"`,
		path + `:10: checkpoint.interval: expected a duration such as 10m or 1.5s, got the integer 600 (add a unit: ns, us, ms, s, m, h)`,
		path + `:5: training.gamma: must be in (0, 1), got 2`,
		path + `:7: training.threads: must be in [0, 1024], got -1`,
		path + `:12: mqtt.broker: "ftp://x": scheme "ftp" not supported (want tcp, mqtt, ssl, tls, mqtts, ws, wss or "embedded")`,
		path + `:15: mqtt.commands.disabled: unknown command "explode" (known: label, pause, resume, checkpoint, reset, momentum)`,
		path + `:17: log.level: must be one of debug, info, warn, error, got "verbose"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"syntax", "source: [\n", "invalid YAML"},
		{"top level list", "- a\n", ":1: the configuration must be a mapping of keys to values, got a list"},
		{"section scalar", "training: 3\n", ":1: training: this section must be a mapping of keys to values, got the integer 3"},
		{"duplicate", "log:\n  level: info\n  level: debug\n", ":3: log.level: duplicate key (first set on line 2)"},
		{"bool as string", "checkpoint:\n  keep_previous: yes\n", `:2: checkpoint.keep_previous: expected true or false, got the string "yes"`},
		{"nan", "training:\n  gamma: .nan\n", ":2: training.gamma: expected a finite number, got .nan"},
		{"float for int", "training:\n  batch: 3.5\n", ":2: training.batch: expected an integer, got the number 3.5"},
		{"int overflow", "training:\n  seed: 99999999999999999999\n", ":2: training.seed: expected an integer"},
		{"bad duration", "checkpoint:\n  interval: soon\n", `:2: checkpoint.interval: expected a duration such as 10m or 1.5s, got "soon"`},
		{"bad size", "replay:\n  budget: lots\n", `:2: replay.budget: expected a size such as 4MiB, 512KiB or a number of bytes, got "lots"`},
		{"small size", "replay:\n  budget: 10\n", ":2: replay.budget: must be between 1KiB and 1GiB, got 10B"},
		{"merge", "a: &x {level: info}\nlog:\n  <<: *x\n", ":3: log: merge keys (<<) are not supported"},
		{"two documents", "log: {level: info}\n---\nlog: {level: info}\n", "a second YAML document"},
		{"list item", "mqtt:\n  commands:\n    disabled: [[a]]\n", ":3: mqtt.commands.disabled[0]: expected a string, got a list"},
		{"hop", "source:\n  window: 8\n  hop: 9\n", ":3: source.hop: must be at most source.window=8, got 9"},
		{"momentum", "training:\n  momentum: e4m3x\n", `:2: training.momentum: must be auto, fp32, fp16, bf16 or eXmY[bZ][s|z]`},
		{"passwords", "mqtt:\n  password: a\n  password_env: B\n", ":2: mqtt.password: set only one of password, password_file and password_env"},
		{"cert without key", "mqtt:\n  broker: ssl://h:8883\n  cert_file: c.pem\n", ":3: mqtt.cert_file: cert_file and key_file must be set together"},
		{"ca without tls", "mqtt:\n  broker: tcp://h:1883\n  ca_file: ca.pem\n", `:3: mqtt.ca_file: TLS settings (ca_file, cert_file, key_file, insecure_skip_verify) need an ssl://, mqtts:// or wss:// broker, got "tcp://h:1883"`},
		{"no host", "mqtt:\n  broker: tcp://\n", `:2: mqtt.broker: "tcp:": missing host`},
		{"prefix wildcard", "mqtt:\n  prefix: a/#\n", `:2: mqtt.prefix: "a/#": want a topic level path without wildcards or empty levels`},
		{"prefix slash", "mqtt:\n  prefix: /a\n", `:2: mqtt.prefix: "/a": want a topic level path without wildcards or empty levels`},
		{"device id", "mqtt:\n  device_id: pi/4\n", `:2: mqtt.device_id: "pi/4": want 1 to 64 characters from A-Z a-z 0-9 _ -`},
		{"interval", "mqtt:\n  intervals:\n    progress: 1ms\n", ":3: mqtt.intervals.progress: must be between 10ms and 24h, got 1ms"},
		{"listen", "embedded_broker:\n  listen: localhost\n", `:2: embedded_broker.listen: must be host:port, got "localhost"`},
		{"port", "prometheus:\n  listen: :99999\n", `:2: prometheus.listen: port must be a number in [0, 65535], got "99999"`},
		{"keepalive", "mqtt:\n  keepalive: 500ms\n", ":2: mqtt.keepalive: 500ms: want 1s to 65535s"},
		{"empty spec", "model:\n  spec: ''\n", ":2: model.spec: must not be empty"},
		// Checked by package mqtt, reported here with key and line.
		{"password without user", "mqtt:\n  broker: tcp://h:1883\n  password: a\n", ":3: mqtt.password: a password is set but username is empty"},
		{"user for embedded", "mqtt:\n  username: me\n", ":2: mqtt.username: the embedded broker's own user is generated"},
		{"lan without tls", "embedded_broker:\n  listen: 0.0.0.0:1883\n", ":2: embedded_broker.listen: 0.0.0.0:1883 is reachable from other machines"},
		{"all interfaces", "embedded_broker:\n  listen: :1883\n", "allow_insecure_lan: true"},
		{"lan ip", "embedded_broker:\n  listen: 192.168.1.5:1883\n", "or listen on 127.0.0.1"},
		{"tls half", "embedded_broker:\n  listen: 0.0.0.0:8883\n  tls_cert_file: c.pem\n", ":3: embedded_broker.tls_cert_file: tls_cert_file and tls_key_file must be set together"},
		{"bad hash", "embedded_broker:\n  users:\n    - username: ha\n      password_hash: secret\n", ":4: embedded_broker.users[0].password_hash: not a bcrypt hash"},
		{"two secrets", "embedded_broker:\n  users:\n    - {username: ha, password_file: f, password_hash: h}\n", ":3: embedded_broker.users[0]: set exactly one of password_file and password_hash"},
		{"access", "embedded_broker:\n  users:\n    - {username: ha, password_file: f, access: admin}\n", `:3: embedded_broker.users[0].access: "admin": want read or readwrite`},
		{"user key", "embedded_broker:\n  users:\n    - {name: ha}\n", ":3: embedded_broker.users[0].name: unknown key"},
		{"users scalar", "embedded_broker:\n  users: ha\n", ":2: embedded_broker.users: expected a list of mappings"},
		{"packet size", "embedded_broker:\n  max_packet_size: 1KiB\n", ":2: embedded_broker.max_packet_size: 1024: want 4KiB to 256MiB"},
		{"retained", "embedded_broker:\n  max_retained_bytes: 100GiB\n", ":2: embedded_broker.max_retained_bytes"},
		{"token file", "mqtt:\n  commands:\n    reset_token_file: /nonexistent/token\n", ":3: mqtt.commands.reset_token_file: open /nonexistent/token"},
		{"costly", "mqtt:\n  commands:\n    costly_interval: 10ms\n", ":3: mqtt.commands.costly_interval: 10ms: want 1s to 24h"},
		{"costly burst", "mqtt:\n  commands:\n    costly_burst: 0\n", ":3: mqtt.commands.costly_burst: must be at least 1, or -1 for no limit"},
		{"reconnect", "mqtt:\n  reconnect_max: 2h\n", ":2: mqtt.reconnect_max: 2h0m0s: want 100ms to 1h"},
		{"password in url", "mqtt:\n  broker: ftp://me:hunter2@h\n", `:2: mqtt.broker: "ftp://me:xxxxx@h": scheme "ftp" not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\ndoes not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file %s:\n%v", path, err)
			}
		})
	}
}

func TestLoadAcceptedForms(t *testing.T) {
	path := writeConfig(t, `# only comments and a few keys
training:
  gamma: 5e-4
  threads: 0x2
  seed:          # null keeps the default
replay:
  budget: 1048576
anchors:
`)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), ":8: anchors: unknown key") {
		t.Fatalf("want unknown key anchors, got %v", err)
	}
	path = writeConfig(t, "training:\n  gamma: 5e-4\n  threads: 0x2\n  seed:\nreplay:\n  budget: 512 KiB\nmqtt:\n  device_id: 1234\n  commands: {disabled: [reset]}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Training.Gamma != 5e-4 || cfg.Training.Threads != 2 || cfg.Training.Seed != 1 || cfg.Replay.Budget != 512<<10 || cfg.MQTT.DeviceID != "1234" {
		t.Errorf("decoded %+v %+v %+v", cfg.Training, cfg.Replay, cfg.MQTT)
	}
	if cfg.CommandEnabled("reset") || !cfg.CommandEnabled("pause") {
		t.Error("commands.disabled not applied")
	}
	if got := cfg.Origin("training.gamma"); got != path+":2" {
		t.Errorf("origin of training.gamma = %q", got)
	}
	for _, empty := range []string{"", "# nothing\n", "---\n"} {
		cfg, err := Load(writeConfig(t, empty))
		if err != nil || !equalConfig(cfg, Default()) {
			t.Errorf("%q: %v", empty, err)
		}
	}
}

func TestFlagsOverrideOnlyWhenSet(t *testing.T) {
	path := writeConfig(t, "training:\n  threads: 3\n  seed: 9\nmqtt:\n  prefix: site\n")
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f := RegisterFlags(fs)
	if err := fs.Parse([]string{"-config", path, "--threads", "2", "--mqtt-broker", "tcp://localhost:1884", "--checkpoint-interval", "1m", "--state-dir", "/tmp/s"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Training.Threads != 2 || cfg.Training.Seed != 9 || cfg.MQTT.Prefix != "site" || cfg.MQTT.Broker != "tcp://localhost:1884" ||
		cfg.Checkpoint.Interval != time.Minute || cfg.Checkpoint.Dir != "/tmp/s" || cfg.Model.Spec != "mlp-s" {
		t.Errorf("got training %+v, mqtt %+v, checkpoint %+v", cfg.Training, cfg.MQTT, cfg.Checkpoint)
	}
	if d, _ := cfg.StateDir(); d != "/tmp/s" {
		t.Errorf("StateDir = %q", d)
	}

	fs = flag.NewFlagSet("run", flag.ContinueOnError)
	f = RegisterFlags(fs)
	if err := fs.Parse([]string{"-config", path, "--threads", "-4", "--momentum", "e9"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.Load()
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{"flag -threads: training.threads: must be in [0, 1024], got -4", `flag -momentum: training.momentum: must be auto`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems\n%s\nlack %q", got, want)
		}
	}
}

func TestStateDirAndDeviceID(t *testing.T) {
	c := Default()
	t.Setenv("STATE_DIRECTORY", "/var/lib/bnnd:/var/lib/other")
	if d, err := c.StateDir(); err != nil || d != "/var/lib/bnnd" {
		t.Errorf("StateDir with STATE_DIRECTORY = %q, %v", d, err)
	}
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "/home/u/.st")
	if d, err := c.StateDir(); err != nil || d != "/home/u/.st/bnnd" {
		t.Errorf("StateDir with XDG_STATE_HOME = %q, %v", d, err)
	}
	id, err := c.ResolvedDeviceID()
	if err != nil || id == "" {
		t.Fatalf("device id %q, %v", id, err)
	}
	c.MQTT.DeviceID = id
	if err := c.Validate(); err != nil {
		t.Errorf("resolved device id %q does not validate: %v", id, err)
	}
	if cid, _ := c.ResolvedClientID(); cid != "bnnd-"+id {
		t.Errorf("client id %q", cid)
	}
}

func TestPassword(t *testing.T) {
	c := Default()
	c.MQTT.Password = "plain"
	if p, _ := c.Password(); p != "plain" {
		t.Errorf("password %q", p)
	}
	c.MQTT.Password = ""
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("s3cret\n"), 0o600)
	c.MQTT.PasswordFile = file
	if p, err := c.Password(); p != "s3cret" || err != nil {
		t.Errorf("password file: %q, %v", p, err)
	}
	c.MQTT.PasswordFile = ""
	c.MQTT.PasswordEnv = "BNND_TEST_PW"
	if _, err := c.Password(); err == nil || !strings.Contains(err.Error(), "BNND_TEST_PW is not set") {
		t.Errorf("unset env: %v", err)
	}
	t.Setenv("BNND_TEST_PW", "envpw")
	if p, _ := c.Password(); p != "envpw" {
		t.Errorf("password env %q", p)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"4MiB": 4 << 20, "512 KiB": 512 << 10, "1GiB": 1 << 30, "1000": 1000, "2MB": 2e6, "3kB": 3000, "7B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1KiB", "1.5MiB", "9999999999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	if s := ByteSize(3 << 20).String(); s != "3MiB" {
		t.Errorf("String = %s", s)
	}
	if s := ByteSize(1500).String(); s != "1500B" {
		t.Errorf("String = %s", s)
	}
}

func FuzzLoadConfig(f *testing.F) {
	def, _ := Default().MarshalYAML()
	f.Add(def)
	f.Add([]byte("training:\n  gamma: 2\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("mqtt: {commands: {disabled: [x, *y]}}\n"))
	f.Add([]byte("source:\n  <<: {spec: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if cfg == nil && err == nil {
			t.Fatal("nil config without error")
		}
		if cfg == nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			if len(problems(t, err)) == 0 {
				t.Fatal("Error without problems")
			}
			return
		}
		// A valid configuration survives a round trip unchanged.
		text, err := cfg.MarshalYAML()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("again.yaml", text)
		if err != nil || !equalConfig(back, cfg) {
			t.Fatalf("round trip: %v\n%s", err, text)
		}
	})
}
