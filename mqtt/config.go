package mqtt

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults applied by Config.withDefaults for zero fields.
const (
	DefaultPrefix          = "bnnd"
	DefaultDiscoveryPrefix = "homeassistant"
	DefaultEmbeddedAddr    = "127.0.0.1:1883"
	DefaultKeepAlive       = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	// DefaultReconnectMax keeps the daemon back within seconds of a broker's
	// return: paho doubles its wait after each failed attempt, and a 60 s
	// ceiling left the telemetry away for up to a minute after a restart.
	DefaultReconnectMax   = 5 * time.Second
	DefaultRate           = time.Second
	DefaultMaxPayload     = 4096
	DefaultCommandTimeout = 30 * time.Second
	DefaultCostlyBurst    = 3
	DefaultCostlyInterval = time.Minute
	// ResetNonceTTL is how long the code answered to a reset request
	// confirms a reset.
	ResetNonceTTL = 30 * time.Second

	// BrokerEmbedded (or an empty Config.Broker) makes Start run the embedded
	// broker on Config.EmbeddedAddr and connect to it.
	BrokerEmbedded = "embedded"
)

// Telemetry topics, relative to <prefix>/<device-id>/, accepted by Publish.
const (
	TopicProgress   = "progress"
	TopicMemory     = "memory"
	TopicEncoding   = "encoding"
	TopicPrediction = "prediction"
	TopicHealth     = "health"
)

// Retained state topics, relative to <prefix>/<device-id>/: the latest
// value is kept by the broker and sent again after every reconnect.
const (
	TopicLabel   = "label"   // the current label, or "none" (plain text)
	TopicClasses = "classes" // the class names in index order (JSON list)
)

// TelemetryTopics lists every topic Publish accepts, in a fixed order.
var TelemetryTopics = []string{TopicProgress, TopicMemory, TopicEncoding, TopicPrediction, TopicHealth}

// Config describes the connection, the topic layout and the command policy.
// The zero value plus a DeviceID is usable: embedded broker, prefix "bnnd",
// one message per second per topic, commands and discovery off.
type Config struct {
	// Broker is a URL: tcp://host:port, mqtt://, ssl://, tls://, mqtts://,
	// ws://host:port/path or wss://. Empty or "embedded" runs the embedded
	// broker on EmbeddedAddr.
	Broker       string
	EmbeddedAddr string // default 127.0.0.1:1883

	ClientID string // default "bnnd-<device-id>"
	Username string
	// Password, or where to read it from: at most one of the three is set.
	Password     string
	PasswordFile string // file whose content (trailing newline trimmed) is the password
	PasswordEnv  string // name of an environment variable holding the password

	CAFile             string // PEM CA bundle for ssl/wss; default: system roots
	CertFile, KeyFile  string // PEM client certificate and key (both or neither)
	InsecureSkipVerify bool   // do not verify the broker certificate (testing only)

	KeepAlive      time.Duration // default 30s
	ConnectTimeout time.Duration // default 10s
	ReconnectMax   time.Duration // longest wait between reconnect attempts; default 60s

	Prefix          string // default "bnnd"
	DeviceID        string // required: [A-Za-z0-9_-], at most 64 characters
	Discovery       bool   // publish Home Assistant discovery
	DiscoveryPrefix string // default "homeassistant"
	Classes         []string
	SoftwareVersion string // shown in Home Assistant's device and origin

	CommandsEnabled  bool
	DisabledCommands []string      // command names answered with an error
	MaxPayload       int           // command payload limit in bytes; default 4096
	CommandTimeout   time.Duration // context deadline given to the handler; default 30s
	// ResetTokenFile holds a token that confirms a reset in one message, as
	// an alternative to the request/code exchange; empty: codes only.
	ResetTokenFile string
	// The costly commands (CostlyCommands) are each a token bucket of
	// CostlyBurst tokens, one refilled every CostlyInterval; defaults 3
	// and 1m. A negative CostlyBurst turns the limit off.
	CostlyBurst    int
	CostlyInterval time.Duration

	// EmbeddedBroker configures the broker Start runs when Embedded();
	// EmbeddedAddr is its listen address.
	EmbeddedBroker BrokerOptions

	// Rates is the minimum interval between two messages of one telemetry
	// topic (key: "progress", …). Missing topics get DefaultRate (1 s).
	Rates map[string]time.Duration
}

var (
	brokerSchemes = map[string]string{
		"tcp": "1883", "mqtt": "1883", "ssl": "8883", "tls": "8883", "mqtts": "8883",
		"ws": "80", "wss": "443",
	}
)

func isTLSScheme(s string) bool {
	return s == "ssl" || s == "tls" || s == "mqtts" || s == "wss"
}

// Embedded reports whether the configuration asks for the embedded broker.
func (c Config) Embedded() bool {
	return c.Broker == "" || c.Broker == BrokerEmbedded
}

// withDefaults returns a copy with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.DiscoveryPrefix = cmp.Or(c.DiscoveryPrefix, DefaultDiscoveryPrefix)
	c.EmbeddedAddr = cmp.Or(c.EmbeddedAddr, DefaultEmbeddedAddr)
	if c.ClientID == "" && c.DeviceID != "" {
		c.ClientID = "bnnd-" + c.DeviceID
	}
	c.KeepAlive = cmp.Or(c.KeepAlive, DefaultKeepAlive)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, DefaultReconnectMax)
	c.MaxPayload = cmp.Or(c.MaxPayload, DefaultMaxPayload)
	c.CommandTimeout = cmp.Or(c.CommandTimeout, DefaultCommandTimeout)
	c.CostlyBurst = cmp.Or(c.CostlyBurst, DefaultCostlyBurst)
	c.CostlyInterval = cmp.Or(c.CostlyInterval, DefaultCostlyInterval)
	c.EmbeddedBroker.Limits = c.EmbeddedBroker.Limits.withDefaults()
	return c
}

// FieldError is one problem with one Config field. Field is the field's
// configuration name ("password", "embedded_broker.listen", …), so that a
// caller with its own key names can map it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "mqtt: " + e.Field + ": " + e.Msg }

// Validate checks the configuration (after defaults) and returns every
// problem found as a *FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	for _, fe := range c.Problems() {
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// Problems is Validate's list, one *FieldError per problem.
func (c Config) Problems() []*FieldError {
	c = c.withDefaults()
	var errs []*FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	scheme := ""
	if c.Embedded() {
		if _, _, err := net.SplitHostPort(c.EmbeddedAddr); err != nil {
			bad("embedded_addr", "%q: want host:port: %v", c.EmbeddedAddr, err)
		} else {
			errs = append(errs, c.EmbeddedBroker.problems(c.EmbeddedAddr)...)
		}
		if c.Username != "" {
			bad("username", "the embedded broker's own user is generated (see embedded_broker.credentials_file); "+
				"username and password are for an external broker, further users go in embedded_broker.users")
		}
	} else if u, err := url.Parse(c.Broker); err != nil {
		bad("broker", "%q: %v", RedactURL(c.Broker), redactErr(err, c.Broker))
	} else if _, ok := brokerSchemes[u.Scheme]; !ok {
		bad("broker", "%q: scheme %q not supported (want tcp, mqtt, ssl, tls, mqtts, ws, wss or \"embedded\")", u.Redacted(), u.Scheme)
	} else if u.Hostname() == "" {
		bad("broker", "%q: missing host", u.Redacted())
	} else {
		scheme = u.Scheme
	}
	if !c.Embedded() && scheme != "" && !isTLSScheme(scheme) &&
		(c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.InsecureSkipVerify) {
		bad("ca_file", "TLS settings (ca_file, cert_file, key_file, insecure_skip_verify) need an ssl://, mqtts:// or wss:// broker, got %q", RedactURL(c.Broker))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("cert_file", "cert_file and key_file must be set together (cert_file %q, key_file %q)", c.CertFile, c.KeyFile)
	}
	sources := 0
	for _, s := range []string{c.Password, c.PasswordFile, c.PasswordEnv} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		bad("password", "set only one of password, password_file and password_env")
	}
	if (c.Password != "" || c.PasswordFile != "" || c.PasswordEnv != "") && c.Username == "" {
		bad("password", "a password is set but username is empty")
	}
	if c.DeviceID == "" || len(c.DeviceID) > maxDeviceIDLen || strings.IndexFunc(c.DeviceID, notDeviceIDChar) >= 0 {
		bad("device_id", "%q: want 1 to 64 characters from A-Z a-z 0-9 _ -", c.DeviceID)
	}
	if c.ClientID == "" || len(c.ClientID) > 128 || !utf8.ValidString(c.ClientID) {
		bad("client_id", "%q: want 1 to 128 bytes of UTF-8", c.ClientID)
	}
	if err := checkTopicPrefix("prefix", c.Prefix); err != nil {
		errs = append(errs, err)
	}
	if err := checkTopicPrefix("discovery_prefix", c.DiscoveryPrefix); err != nil {
		errs = append(errs, err)
	}
	if c.KeepAlive < time.Second || c.KeepAlive > 65535*time.Second { // a 16-bit count of seconds on the wire
		bad("keep_alive", "%v: want 1s to 65535s", c.KeepAlive)
	}
	if c.ConnectTimeout < 0 {
		bad("connect_timeout", "%v: must be positive", c.ConnectTimeout)
	}
	if c.ReconnectMax < 100*time.Millisecond || c.ReconnectMax > time.Hour {
		bad("reconnect_max", "%v: want 100ms to 1h", c.ReconnectMax)
	}
	if c.CommandTimeout < 0 {
		bad("command_timeout", "%v: must be positive", c.CommandTimeout)
	}
	if c.MaxPayload < 16 || c.MaxPayload > 1<<20 {
		bad("max_payload", "%d: want 16 to 1048576 bytes", c.MaxPayload)
	}
	for _, name := range c.DisabledCommands {
		if !isCommand(name) {
			bad("disabled_commands", "unknown command %q (known: %s)", truncate(name, 64), strings.Join(CommandNames, ", "))
		}
	}
	if c.CostlyBurst > 1000 {
		bad("commands.costly_burst", "%d: want at most 1000 (or a negative number for no limit)", c.CostlyBurst)
	}
	if c.CostlyInterval < time.Second || c.CostlyInterval > 24*time.Hour {
		bad("commands.costly_interval", "%v: want 1s to 24h", c.CostlyInterval)
	}
	if c.ResetTokenFile != "" {
		if _, err := readResetToken(c.ResetTokenFile); err != nil {
			bad("commands.reset_token_file", "%v", err)
		}
	}
	for topic, d := range c.Rates {
		if !isTelemetryTopic(topic) {
			bad("rates", "unknown topic %q (known: %s)", topic, strings.Join(TelemetryTopics, ", "))
		} else if d < 0 {
			bad("rates."+topic, "%v: must not be negative", d)
		}
	}
	if err := checkClasses(c.Classes); err != nil {
		errs = append(errs, &FieldError{Field: "classes", Msg: strings.TrimPrefix(err.Error(), "mqtt: ")})
	}
	return errs
}

// maxDeviceIDLen bounds a device id, a topic level that also names the
// Home Assistant device.
const maxDeviceIDLen = 64

// notDeviceIDChar reports a character a device id may not hold: it may
// hold A-Z a-z 0-9 _ and -.
func notDeviceIDChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
}

// DeviceIDFrom reduces name (a host name) to a device id: each character a
// device id may not hold becomes '_', and it is cut at 64. An empty name
// gives an empty id, which Problems refuses.
func DeviceIDFrom(name string) string {
	id := strings.Map(func(r rune) rune {
		if notDeviceIDChar(r) {
			return '_'
		}
		return r
	}, name)
	return id[:min(len(id), maxDeviceIDLen)]
}

// RedactURL hides the password of a URL's user info ("tcp://u:xxxxx@h"),
// for logs and errors. A string that does not parse is cut at its last '@'.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "xxxxx" + s[i:]
		}
		return s
	}
	return u.Redacted()
}

// redactErr is err's text with the raw URL replaced by its redacted form
// (url.Parse errors quote their input).
func redactErr(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, RedactURL(raw))
}

func checkTopicPrefix(field, p string) *FieldError {
	if p == "" || strings.ContainsAny(p, "+#\x00") || strings.HasPrefix(p, "/") ||
		strings.HasSuffix(p, "/") || strings.Contains(p, "//") || !utf8.ValidString(p) || len(p) > 256 {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q: want a topic level path without wildcards or empty levels", p)}
	}
	return nil
}

func checkClasses(classes []string) error {
	seen := make(map[string]int, len(classes))
	for i, name := range classes {
		switch {
		case name == "" || len(name) > 64 || !utf8.ValidString(name) || strings.TrimSpace(name) != name:
			return fmt.Errorf("mqtt: classes[%d] %q: want 1 to 64 bytes of UTF-8 without surrounding spaces", i, name)
		case name == LabelNone:
			return fmt.Errorf("mqtt: classes[%d]: %q is reserved for \"no label\"", i, name)
		}
		if j, dup := seen[name]; dup {
			return fmt.Errorf("mqtt: classes[%d] %q duplicates classes[%d]", i, name, j)
		}
		seen[name] = i
	}
	return nil
}

func isTelemetryTopic(t string) bool {
	for _, k := range TelemetryTopics {
		if k == t {
			return true
		}
	}
	return false
}

// password resolves the password from its configured source.
func (c Config) password() (string, error) {
	switch {
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("mqtt: password_file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("mqtt: password_file %s is empty", c.PasswordFile)
		}
		return p, nil
	case c.PasswordEnv != "":
		p, ok := os.LookupEnv(c.PasswordEnv)
		if !ok || p == "" {
			return "", fmt.Errorf("mqtt: password_env: environment variable %s is not set or empty", c.PasswordEnv)
		}
		return p, nil
	}
	return c.Password, nil
}

// brokerURL returns the broker URL with the scheme's default port filled in.
func (c Config) brokerURL() (*url.URL, error) {
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker %q: %s", RedactURL(c.Broker), redactErr(err, c.Broker))
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), brokerSchemes[u.Scheme])
	}
	return u, nil
}

// tlsConfig builds the TLS configuration for ssl/wss brokers (nil otherwise).
func (c Config) tlsConfig(u *url.URL) (*tls.Config, error) {
	if !isTLSScheme(u.Scheme) {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         u.Hostname(),
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as testing only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: ca_file %s: no PEM certificate found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: cert_file %s / key_file %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
