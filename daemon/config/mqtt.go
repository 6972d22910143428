package config

import (
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/bnnd/bnnd/mqtt"
)

// MQTTClientConfig is the mqtt package's configuration for these settings:
// the one place that maps YAML keys to mqtt.Config fields (mqttFieldKey
// maps them back for error messages). The embedded broker's credentials
// file defaults to stateDir/mqtt-credentials.
func (c *Config) MQTTClientConfig(deviceID, clientID, stateDir string, classes []string, version string) mqtt.Config {
	m := &c.MQTT
	broker := m.Broker
	if broker == "" {
		broker = mqtt.BrokerEmbedded
	}
	eb := &c.EmbeddedBroker
	creds := eb.CredentialsFile
	if creds == "" && stateDir != "" {
		creds = filepath.Join(stateDir, mqtt.CredentialsFileName)
	}
	users := make([]mqtt.BrokerUser, len(eb.Users))
	for i, u := range eb.Users {
		users[i] = mqtt.BrokerUser{Username: u.Username, PasswordFile: u.PasswordFile, PasswordHash: u.PasswordHash, Access: u.Access}
	}
	in := &m.Intervals
	return mqtt.Config{
		Broker:           broker,
		EmbeddedAddr:     eb.Listen,
		ClientID:         clientID,
		Username:         m.Username,
		Password:         m.Password,
		PasswordFile:     m.PasswordFile,
		PasswordEnv:      m.PasswordEnv,
		CAFile:           m.CAFile,
		CertFile:         m.CertFile,
		KeyFile:          m.KeyFile,
		KeepAlive:        m.KeepAlive,
		ReconnectMax:     m.ReconnectMax,
		Prefix:           m.Prefix,
		DeviceID:         deviceID,
		Discovery:        m.Discovery.Enabled,
		DiscoveryPrefix:  m.Discovery.Prefix,
		Classes:          classes,
		SoftwareVersion:  version,
		CommandsEnabled:  m.Commands.Enabled,
		DisabledCommands: m.Commands.Disabled,
		ResetTokenFile:   m.Commands.ResetTokenFile,
		CostlyBurst:      m.Commands.CostlyBurst,
		CostlyInterval:   m.Commands.CostlyInterval,
		EmbeddedBroker: mqtt.BrokerOptions{
			CredentialsFile:  creds,
			Users:            users,
			AnonymousRead:    eb.AnonymousRead,
			TLSCertFile:      eb.TLSCertFile,
			TLSKeyFile:       eb.TLSKeyFile,
			AllowInsecureLAN: eb.AllowInsecureLAN,
			Limits: mqtt.BrokerLimits{
				MaxPacketSize:       eb.MaxPacketSize.clampedInt(),
				MaxRetainedMessages: eb.MaxRetained,
				MaxRetainedBytes:    eb.MaxRetainedBytes.clampedInt(),
				MaxInflight:         eb.MaxInflight,
				MaxClients:          eb.MaxClients,
				MessageExpiry:       eb.MessageExpiry,
				SessionExpiry:       eb.SessionExpiry,
			},
		},
		Rates: map[string]time.Duration{
			mqtt.TopicProgress:   in.Progress,
			mqtt.TopicMemory:     in.Memory,
			mqtt.TopicEncoding:   in.Encoding,
			mqtt.TopicPrediction: in.Prediction,
			mqtt.TopicHealth:     in.Health,
		},
	}
}

// mqttFieldKey maps an mqtt.FieldError's field to its YAML key.
func mqttFieldKey(field string) string {
	switch field {
	case "broker", "client_id", "username", "password", "password_file", "password_env",
		"ca_file", "cert_file", "key_file", "device_id", "prefix", "reconnect_max":
		return "mqtt." + field
	case "keep_alive":
		return "mqtt.keepalive"
	case "discovery_prefix":
		return "mqtt.discovery.prefix"
	case "disabled_commands":
		return "mqtt.commands.disabled"
	case "embedded_addr":
		return "embedded_broker.listen"
	}
	switch {
	case strings.HasPrefix(field, "rates."):
		return "mqtt.intervals." + strings.TrimPrefix(field, "rates.")
	case strings.HasPrefix(field, "commands."):
		return "mqtt." + field
	case strings.HasPrefix(field, "embedded_broker."):
		return field
	}
	return "mqtt"
}

// checkMQTTPackage runs the mqtt package's own validation, so that what
// 'bnnd run' would refuse at start-up is refused by 'bnnd config check'
// too, with the key and line. A key this validator already faulted is not
// reported twice.
func (v *validator) checkMQTTPackage() {
	c := v.c
	if c.MQTT.Broker == BrokerNone {
		return
	}
	// The device id may come from the host name at run time; its own
	// checks are above, so a placeholder stands in for it here.
	id := c.MQTT.DeviceID
	if id == "" {
		id = "device"
	}
	cfg := c.MQTTClientConfig(id, c.MQTT.ClientID, "", nil, "")
	if cfg.ClientID == "" {
		cfg.ClientID = "bnnd-" + id
	}
	for _, fe := range cfg.Problems() {
		key := mqttFieldKey(fe.Field)
		if v.faulted(key) {
			continue
		}
		v.bad(key, "%s", fe.Msg)
	}
}

// faulted reports whether a problem was already recorded for key or one of
// its items (key[i]...).
func (v *validator) faulted(key string) bool {
	for _, p := range v.problems {
		if p.Key == key || strings.HasPrefix(p.Key, key+"[") || strings.HasPrefix(p.Key, key+".") {
			return true
		}
	}
	return false
}

// clampedInt is b as an int, or the largest int when it does not fit (on
// 32-bit boards): a size too large for an int must fail the range checks
// rather than wrap into them.
func (b ByteSize) clampedInt() int {
	if uint64(b) > uint64(math.MaxInt) {
		return math.MaxInt
	}
	return int(b)
}
