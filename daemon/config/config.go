// Package config is the daemon's configuration: its types with their YAML
// keys and one-line docs, the YAML reader that names the line of every
// problem, validation, the command-line overrides, and the defaults
// document 'bnnd config defaults' prints. 'bnnd config check' and 'bnnd run'
// both validate through Validate, so they refuse exactly the same files.
package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/mqtt"
	"github.com/bnnd/bnnd/sensors"
)

// Config is everything the daemon needs to run. The zero value is not
// useful: start from Default, Load or (*Flags).Load. Every field has a
// yaml key (the tag) and a one-line explanation (the doc tag) that
// 'bnnd config defaults' prints as a comment.
type Config struct {
	Source         SourceConfig         `yaml:"source" doc:"Where samples come from."`
	Model          ModelConfig          `yaml:"model" doc:"The binarized network that is trained."`
	Training       TrainingConfig       `yaml:"training" doc:"Bop optimizer and the incremental training schedule."`
	Replay         ReplayConfig         `yaml:"replay" doc:"Replay buffer of labelled samples (reservoir sampling)."`
	Checkpoint     CheckpointConfig     `yaml:"checkpoint" doc:"Checkpoints of model, momenta, optimizer, replay buffer and counters."`
	MQTT           MQTTConfig           `yaml:"mqtt" doc:"Telemetry and commands over MQTT."`
	EmbeddedBroker EmbeddedBrokerConfig `yaml:"embedded_broker" doc:"The MQTT broker built into bnnd, used when mqtt.broker is \"embedded\"."`
	Prometheus     PrometheusConfig     `yaml:"prometheus" doc:"Prometheus metrics endpoint."`
	Log            LogConfig            `yaml:"log" doc:"Logging to stderr (the journal under systemd)."`

	// origin maps a key path ("training.gamma") to where its value was set
	// ("bnnd.yaml:12" or "flag --threads"), so that validation errors can
	// point at the line the user has to fix.
	origin map[string]string
}

// SourceConfig selects the sample source and how its stream is cut into
// windows.
type SourceConfig struct {
	Spec   string `yaml:"spec" doc:"Source spec: synthetic-imu, mnist: (MNIST from the Go module cache), mnist:DIR, csv:GLOB, mpu6050[:BUS], adxl345[:BUS], or the simulated chips mpu6050:sim, adxl345:sim."`
	Window int    `yaml:"window" doc:"Samples per window of time-series sources; 0 means the spec's window= or 64 (ignored by image sources)."`
	Hop    int    `yaml:"hop" doc:"Samples between the starts of consecutive windows, at most window; 0 means the spec's hop= or 32."`
}

// ModelConfig selects the network and its classes.
type ModelConfig struct {
	Spec       string   `yaml:"spec" doc:"Model spec: mlp-s, mlp-l, cnn, or a list of hidden layer widths such as mlp:256,256."`
	Classes    []string `yaml:"classes" doc:"Class names in order, fixed; empty means live sensors learn a class from each new label name (sources with labelled data bring their own)."`
	MaxClasses int      `yaml:"max_classes" doc:"Most classes that labels can create when classes is empty (output units are reserved for them)."`
	Init       string   `yaml:"init" doc:"Model file written by 'bnnd train --save' to start from when there is no checkpoint; empty starts from random weights."`
}

// TrainingConfig holds the optimizer settings and the incremental schedule.
type TrainingConfig struct {
	Momentum        string  `yaml:"momentum" doc:"Momentum encoding: auto (calibrate first), fp32, fp16, bf16 or eXmY[bZ][s|z], e.g. e4m3b28; a comma list gives one per layer."`
	Gamma           float64 `yaml:"gamma" doc:"Bop adaptivity rate gamma, in (0, 1)."`
	Tau             float64 `yaml:"tau" doc:"Bop flip threshold tau, in [0, 1)."`
	AdamLR          float64 `yaml:"adam_lr" doc:"Adam learning rate for the real-valued (batch-norm) parameters, in (0, 1]."`
	CalibrateAfter  int     `yaml:"calibrate_after" doc:"With momentum auto: steps in the 8-bit warm-up format before the encoding race, so the momenta reach their working size (time constant 1/gamma steps)."`
	Batch           int     `yaml:"batch" doc:"Mini-batch size of one Bop step, drawn from the replay buffer."`
	StepEvery       int     `yaml:"step_every" doc:"Take one Bop step every this many new labelled samples."`
	Threads         int     `yaml:"threads" doc:"Worker threads; 0 means one per CPU core."`
	Seed            int64   `yaml:"seed" doc:"Seed of every random choice (initialisation, replay, rounding): same seed, same run."`
	HoldoutFraction float64 `yaml:"holdout_fraction" doc:"Fraction of labelled samples kept out of training to measure holdout accuracy, in [0, 0.5]."`
}

// ReplayConfig bounds the replay buffer.
type ReplayConfig struct {
	Budget ByteSize `yaml:"budget" doc:"Memory for stored samples and labels, e.g. 4MiB or 1048576 (bytes); an eighth of it holds the held-out slice."`
}

// CheckpointConfig says where and how often state is saved.
type CheckpointConfig struct {
	Dir          string        `yaml:"dir" doc:"State directory; empty means $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/bnnd, else ~/.local/state/bnnd."`
	Interval     time.Duration `yaml:"interval" doc:"Time between scheduled checkpoints (also written on SIGTERM and on command); 0s disables the schedule."`
	KeepPrevious bool          `yaml:"keep_previous" doc:"Keep the previous checkpoint as a fallback if the latest one is damaged or fails the resume checks."`
	ArchiveKeep  int           `yaml:"archive_keep" doc:"Checkpoints kept in <dir>/archive, written before a reset or a restore replaces the model ('bnnd checkpoint list', 'bnnd checkpoint restore'); 0 makes a reset final."`
}

// MQTTConfig configures the telemetry client.
type MQTTConfig struct {
	Broker       string           `yaml:"broker" doc:"Broker URL (tcp://, ssl://, mqtts://, ws://, wss://), embedded (built-in broker) or none (no MQTT)."`
	ClientID     string           `yaml:"client_id" doc:"MQTT client id; empty means bnnd-<device_id>."`
	Username     string           `yaml:"username" doc:"User name; empty means anonymous."`
	Password     string           `yaml:"password" doc:"Password (prefer password_file or password_env; at most one of the three)."`
	PasswordFile string           `yaml:"password_file" doc:"File holding the password (trailing newline ignored)."`
	PasswordEnv  string           `yaml:"password_env" doc:"Environment variable holding the password."`
	CAFile       string           `yaml:"ca_file" doc:"PEM CA bundle to verify a TLS broker; empty means the system roots."`
	CertFile     string           `yaml:"cert_file" doc:"PEM client certificate for TLS client authentication (with key_file)."`
	KeyFile      string           `yaml:"key_file" doc:"PEM private key of cert_file."`
	KeepAlive    time.Duration    `yaml:"keepalive" doc:"MQTT keep-alive interval, 1s ... 18h12m15s."`
	ReconnectMax time.Duration    `yaml:"reconnect_max" doc:"Longest wait between two attempts to reach a lost broker (the wait doubles from 1s up to this), 100ms ... 1h."`
	Prefix       string           `yaml:"prefix" doc:"Topic prefix: topics are <prefix>/<device_id>/..."`
	DeviceID     string           `yaml:"device_id" doc:"Device id in topics and Home Assistant; empty means the host name. Letters, digits, '_' and '-'."`
	Discovery    DiscoveryConfig  `yaml:"discovery" doc:"Home Assistant MQTT discovery."`
	Commands     CommandsConfig   `yaml:"commands" doc:"Commands received under <prefix>/<device_id>/cmd/..."`
	Intervals    PublishIntervals `yaml:"intervals" doc:"Minimum time between two messages on each topic (only the latest value is sent)."`
}

// DiscoveryConfig configures Home Assistant MQTT discovery.
type DiscoveryConfig struct {
	Enabled bool   `yaml:"enabled" doc:"Publish homeassistant/device/<id>/config so the device appears without setup."`
	Prefix  string `yaml:"prefix" doc:"Home Assistant discovery prefix."`
}

// CommandsConfig says which MQTT commands are accepted.
type CommandsConfig struct {
	Enabled        bool          `yaml:"enabled" doc:"Accept commands at all."`
	Disabled       []string      `yaml:"disabled" doc:"Commands to refuse, from: label, pause, resume, checkpoint, reset, momentum."`
	ResetTokenFile string        `yaml:"reset_token_file" doc:"File holding a token (16 characters or more) that confirms a reset in one message; empty: reset only with the code answered to \"request\"."`
	CostlyBurst    int           `yaml:"costly_burst" doc:"checkpoint, momentum and reset each run at most this many times in a row, then once per costly_interval (-1: no limit)."`
	CostlyInterval time.Duration `yaml:"costly_interval" doc:"Time in which one more costly command is allowed, 1s ... 24h."`
}

// PublishIntervals is the minimum time between messages per topic.
type PublishIntervals struct {
	Progress   time.Duration `yaml:"progress" doc:"progress (step, accuracy, loss, samples/s)."`
	Memory     time.Duration `yaml:"memory" doc:"memory (training-state breakdown, heap, RSS)."`
	Encoding   time.Duration `yaml:"encoding" doc:"encoding (format per layer, lost/underflow/flip rates)."`
	Prediction time.Duration `yaml:"prediction" doc:"prediction (class and score of the latest window)."`
	Health     time.Duration `yaml:"health" doc:"health (source, checkpoint age, broker)."`
}

// EmbeddedBrokerConfig configures the built-in broker.
type EmbeddedBrokerConfig struct {
	Listen           string             `yaml:"listen" doc:"host:port the embedded broker listens on. Other than loopback it needs tls_cert_file/tls_key_file or allow_insecure_lan."`
	CredentialsFile  string             `yaml:"credentials_file" doc:"User and password of bnnd's own client, created (mode 0600) on first start; use them with mosquitto_sub -u/-P. Empty means <state dir>/mqtt-credentials."`
	AnonymousRead    bool               `yaml:"anonymous_read" doc:"Let clients without a login read the telemetry (never the commands, never publish)."`
	Users            []BrokerUserConfig `yaml:"users" doc:"More users, each {username, password_file or password_hash (bcrypt, from 'bnnd mqtt-credentials -hash' or htpasswd -nbB), access: read or readwrite}."`
	TLSCertFile      string             `yaml:"tls_cert_file" doc:"PEM certificate of a TLS listener (with tls_key_file): clients then connect with ssl://."`
	TLSKeyFile       string             `yaml:"tls_key_file" doc:"PEM private key of tls_cert_file."`
	AllowInsecureLAN bool               `yaml:"allow_insecure_lan" doc:"Allow a listen address other than loopback without TLS: passwords then cross the network in clear."`
	MaxPacketSize    ByteSize           `yaml:"max_packet_size" doc:"Largest MQTT packet a client may send; bigger ones close its connection before they are read."`
	MaxRetained      int                `yaml:"max_retained_messages" doc:"Retained messages kept at once; more are refused."`
	MaxRetainedBytes ByteSize           `yaml:"max_retained_bytes" doc:"Topic and payload bytes of all retained messages; more are refused."`
	MaxInflight      int                `yaml:"max_inflight" doc:"QoS 1/2 messages in flight, and messages waiting to be written, per client (a QoS 1 subscriber gets at most this many retained messages at once)."`
	MaxClients       int                `yaml:"max_clients" doc:"Clients connected at once (bnnd itself is one)."`
	MessageExpiry    time.Duration      `yaml:"message_expiry" doc:"Drop undelivered and retained messages older than this; 0s never (bnnd's own retained status must stay)."`
	SessionExpiry    time.Duration      `yaml:"session_expiry" doc:"Forget a disconnected client's persistent session (and its queued messages) after this."`
}

// BrokerUserConfig is one more user of the embedded broker.
type BrokerUserConfig struct {
	Username     string `yaml:"username" doc:"Login name."`
	PasswordFile string `yaml:"password_file" doc:"File holding the password (trailing newline ignored)."`
	PasswordHash string `yaml:"password_hash" doc:"bcrypt hash of the password."`
	Access       string `yaml:"access" doc:"read or readwrite."`
}

// PrometheusConfig configures the metrics endpoint.
type PrometheusConfig struct {
	Listen string `yaml:"listen" doc:"host:port of the /metrics endpoint; empty disables it."`
}

// LogConfig configures log/slog output.
type LogConfig struct {
	Level  string `yaml:"level" doc:"debug, info, warn or error."`
	Format string `yaml:"format" doc:"text or json."`
}

// BrokerNone as MQTTConfig.Broker runs the daemon without MQTT;
// mqtt.BrokerEmbedded (the default) runs the embedded broker.
const BrokerNone = "none"

// Default returns the configuration used for every key a file or flag does
// not set. configs/bnnd.yaml shows exactly these values (a test keeps them
// in step).
func Default() *Config {
	return &Config{
		Source: SourceConfig{Spec: "synthetic-imu", Window: 0, Hop: 0},
		Model:  ModelConfig{Spec: "mlp-s", Classes: []string{}, MaxClasses: sensors.DefaultMaxClasses},
		Training: TrainingConfig{
			Momentum:        "auto",
			Gamma:           1e-3,
			Tau:             1e-6,
			AdamLR:          1e-2,
			CalibrateAfter:  300,
			Batch:           32,
			StepEvery:       16,
			Threads:         0,
			Seed:            1,
			HoldoutFraction: 0.05,
		},
		Replay:     ReplayConfig{Budget: 4 << 20},
		Checkpoint: CheckpointConfig{Dir: "", Interval: 10 * time.Minute, KeepPrevious: true, ArchiveKeep: 3},
		MQTT: MQTTConfig{
			Broker:       mqtt.BrokerEmbedded,
			KeepAlive:    30 * time.Second,
			ReconnectMax: mqtt.DefaultReconnectMax,
			Prefix:       "bnnd",
			Discovery:    DiscoveryConfig{Enabled: true, Prefix: "homeassistant"},
			Commands: CommandsConfig{Enabled: true, Disabled: []string{},
				CostlyBurst: mqtt.DefaultCostlyBurst, CostlyInterval: mqtt.DefaultCostlyInterval},
			Intervals: PublishIntervals{
				Progress:   time.Second,
				Memory:     10 * time.Second,
				Encoding:   10 * time.Second,
				Prediction: time.Second,
				Health:     30 * time.Second,
			},
		},
		EmbeddedBroker: EmbeddedBrokerConfig{
			Listen:           "127.0.0.1:1883",
			Users:            []BrokerUserConfig{},
			MaxPacketSize:    mqtt.DefaultMaxPacketSize,
			MaxRetained:      mqtt.DefaultMaxRetainedMessages,
			MaxRetainedBytes: mqtt.DefaultMaxRetainedBytes,
			MaxInflight:      mqtt.DefaultMaxInflight,
			MaxClients:       mqtt.DefaultMaxClients,
			SessionExpiry:    mqtt.DefaultSessionExpiry,
		},
		Prometheus: PrometheusConfig{Listen: ""},
		Log:        LogConfig{Level: "info", Format: "text"},
	}
}

// Origin says where the value of a key path such as "training.gamma" was
// set: "FILE:LINE", "flag --NAME", or "" for a default.
func (c *Config) Origin(key string) string { return c.origin[key] }

func (c *Config) setOrigin(key, where string) {
	if c.origin == nil {
		c.origin = map[string]string{}
	}
	c.origin[key] = where
}

// StateDir resolves Checkpoint.Dir: the configured directory, else
// $STATE_DIRECTORY (set by systemd's StateDirectory=; the first entry if it
// lists several), else $XDG_STATE_HOME/bnnd, else ~/.local/state/bnnd. It
// creates nothing.
func (c *Config) StateDir() (string, error) {
	if c.Checkpoint.Dir != "" {
		return c.Checkpoint.Dir, nil
	}
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		first, _, _ := strings.Cut(d, ":")
		return first, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "bnnd"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("checkpoint.dir is empty and no state directory can be derived: %w", err)
	}
	return filepath.Join(home, ".local", "state", "bnnd"), nil
}

// ResolvedDeviceID is MQTT.DeviceID, or the host name reduced to the
// characters allowed in a device id when it is empty.
func (c *Config) ResolvedDeviceID() (string, error) {
	if c.MQTT.DeviceID != "" {
		return c.MQTT.DeviceID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("mqtt.device_id is empty and the host name is unknown: %w", err)
	}
	id := mqtt.DeviceIDFrom(host)
	if id == "" {
		return "", fmt.Errorf("mqtt.device_id is empty and the host name is empty")
	}
	return id, nil
}

// ResolvedClientID is MQTT.ClientID, or "bnnd-<device id>".
func (c *Config) ResolvedClientID() (string, error) {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID, nil
	}
	id, err := c.ResolvedDeviceID()
	if err != nil {
		return "", err
	}
	return "bnnd-" + id, nil
}

// Password returns the MQTT password from password, password_file or
// password_env (Validate ensures at most one is set).
func (c *Config) Password() (string, error) {
	m := &c.MQTT
	switch {
	case m.PasswordFile != "":
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("mqtt.password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case m.PasswordEnv != "":
		v, ok := os.LookupEnv(m.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("mqtt.password_env: environment variable %s is not set", m.PasswordEnv)
		}
		return v, nil
	}
	return m.Password, nil
}

// CommandEnabled reports whether the MQTT command name is accepted.
func (c *Config) CommandEnabled(name string) bool {
	if !c.MQTT.Commands.Enabled {
		return false
	}
	for _, d := range c.MQTT.Commands.Disabled {
		if d == name {
			return false
		}
	}
	return true
}

// MomentumFormats parses training.momentum: nil for auto, else one format
// for every layer or a comma-separated list with one per layer.
func (c *Config) MomentumFormats() ([]fp.Format, error) {
	if c.Training.Momentum == "auto" {
		return nil, nil
	}
	var out []fp.Format
	for _, name := range strings.Split(c.Training.Momentum, ",") {
		f, err := fp.ParseFormat(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Validate checks every value and returns a *Error listing every
// problem, each naming the key and where it was set, or nil.
func (c *Config) Validate() error {
	v := validator{c: c}
	v.check()
	return v.err()
}

type validator struct {
	c        *Config
	problems []Problem
}

func (v *validator) bad(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Where: v.c.origin[key], Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &Error{Problems: v.problems}
}

func (v *validator) intRange(key string, got, lo, hi int) {
	if got < lo || got > hi {
		v.bad(key, "must be in [%d, %d], got %d", lo, hi, got)
	}
}

// floatRange checks lo <= got <= hi, with open ends where asked; NaN fails
// every comparison and is therefore rejected too.
func (v *validator) floatRange(key string, got, lo, hi float64, loOpen, hiOpen bool) {
	okLo := got >= lo
	if loOpen {
		okLo = got > lo
	}
	okHi := got <= hi
	if hiOpen {
		okHi = got < hi
	}
	if !okLo || !okHi {
		l, r := "[", "]"
		if loOpen {
			l = "("
		}
		if hiOpen {
			r = ")"
		}
		v.bad(key, "must be in %s%g, %g%s, got %g", l, lo, hi, r, got)
	}
}

func (v *validator) durationRange(key string, got, lo, hi time.Duration) {
	if got < lo || got > hi {
		v.bad(key, "must be between %s and %s, got %s", fmtDuration(lo), fmtDuration(hi), fmtDuration(got))
	}
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.bad(key, "must be one of %s, got %q", strings.Join(allowed, ", "), got)
}

func (v *validator) nonEmpty(key, got string) bool {
	if strings.TrimSpace(got) == "" {
		v.bad(key, "must not be empty")
		return false
	}
	return true
}

func (v *validator) hostPort(key, got string) {
	host, port, err := net.SplitHostPort(got)
	if err != nil {
		v.bad(key, "must be host:port, got %q", got)
		return
	}
	_ = host // empty host means every interface, which is allowed
	if !isPort(port) {
		v.bad(key, "port must be a number in [0, 65535], got %q", port)
	}
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

func (v *validator) check() {
	c := v.c

	v.nonEmpty("source.spec", c.Source.Spec)
	v.intRange("source.window", c.Source.Window, 0, 1<<20)
	v.intRange("source.hop", c.Source.Hop, 0, 1<<20)
	if c.Source.Window > 0 && c.Source.Hop > c.Source.Window {
		v.bad("source.hop", "must be at most source.window=%d, got %d", c.Source.Window, c.Source.Hop)
	}

	v.nonEmpty("model.spec", c.Model.Spec)
	v.intRange("model.max_classes", c.Model.MaxClasses, 2, maxClasses)
	v.checkClasses()

	t := &c.Training
	if _, err := c.MomentumFormats(); err != nil {
		v.bad("training.momentum", "must be auto, fp32, fp16, bf16 or eXmY[bZ][s|z] (e.g. e4m3b28, e3m2b24s; comma-separated for one per layer), got %q: %v", t.Momentum, err)
	}
	v.floatRange("training.gamma", t.Gamma, 0, 1, true, true)
	v.floatRange("training.tau", t.Tau, 0, 1, false, true)
	v.floatRange("training.adam_lr", t.AdamLR, 0, 1, true, false)
	v.intRange("training.calibrate_after", t.CalibrateAfter, 0, 1<<24)
	v.intRange("training.batch", t.Batch, 2, 65536)
	v.intRange("training.step_every", t.StepEvery, 1, 1<<30)
	v.intRange("training.threads", t.Threads, 0, 1024)
	v.floatRange("training.holdout_fraction", t.HoldoutFraction, 0, 0.5, false, false)

	if c.Replay.Budget < 1<<10 || c.Replay.Budget > 1<<30 {
		v.bad("replay.budget", "must be between 1KiB and 1GiB, got %s", c.Replay.Budget)
	}

	v.durationRange("checkpoint.interval", c.Checkpoint.Interval, 0, 30*24*time.Hour)
	if c.Checkpoint.Interval > 0 && c.Checkpoint.Interval < time.Second {
		v.bad("checkpoint.interval", "must be 0s (off) or at least 1s, got %s", fmtDuration(c.Checkpoint.Interval))
	}
	v.intRange("checkpoint.archive_keep", c.Checkpoint.ArchiveKeep, 0, 1000)

	v.checkMQTT()

	v.hostPort("embedded_broker.listen", c.EmbeddedBroker.Listen)
	v.checkMQTTPackage()
	if c.Prometheus.Listen != "" {
		v.hostPort("prometheus.listen", c.Prometheus.Listen)
	}
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
}

// maxClasses bounds model.max_classes: the replay buffer stores labels in
// a byte, and a Home Assistant select with hundreds of options is unusable.
const maxClasses = 255

func (v *validator) checkClasses() {
	classes := v.c.Model.Classes
	if len(classes) == 0 {
		return
	}
	if len(classes) < 2 || len(classes) > maxClasses {
		v.bad("model.classes", "must list 2 to %d classes (or none, to learn them from labels), got %d", maxClasses, len(classes))
	}
	seen := map[string]bool{}
	for i, name := range classes {
		key := fmt.Sprintf("model.classes[%d]", i)
		if err := sensors.ValidateLabel(name); err != nil {
			v.bad(key, "%v", err)
		} else if seen[name] {
			v.bad(key, "class %q is listed twice", name)
		}
		seen[name] = true
	}
}

// checkMQTT holds the rules of the daemon's own MQTT keys; the settings the
// client takes are checked by the mqtt package (checkMQTTPackage), so each
// rule lives in one place.
func (v *validator) checkMQTT() {
	m := &v.c.MQTT
	if m.Commands.CostlyBurst == 0 || m.Commands.CostlyBurst < -1 {
		v.bad("mqtt.commands.costly_burst", "must be at least 1, or -1 for no limit (to refuse a command, list it in mqtt.commands.disabled), got %d", m.Commands.CostlyBurst)
	}
	in := &m.Intervals
	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"mqtt.intervals.progress", in.Progress},
		{"mqtt.intervals.memory", in.Memory},
		{"mqtt.intervals.encoding", in.Encoding},
		{"mqtt.intervals.prediction", in.Prediction},
		{"mqtt.intervals.health", in.Health},
	} {
		v.durationRange(d.key, d.val, 10*time.Millisecond, 24*time.Hour)
	}
}
