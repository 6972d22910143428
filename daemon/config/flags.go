package config

import (
	"flag"
	"strings"
	"time"
)

// Flags are the command-line overrides of 'bnnd run'. Register them on a
// FlagSet with RegisterFlags, parse, then call Load: only flags that were
// given on the command line override the file (flag.Visit), so a flag's
// default never hides a value from the file.
type Flags struct {
	fs         *flag.FlagSet
	configPath string
	overrides  map[string]func(c *Config)
	keys       map[string]string // flag name → config key path
}

// RegisterFlags defines -config and the override flags on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, overrides: map[string]func(*Config){}, keys: map[string]string{}}
	fs.StringVar(&f.configPath, "config", "", "YAML configuration `file` (default: built-in defaults)")

	str := func(name, key, usage string, set func(c *Config, v string)) {
		override(f, name, key, fs.String(name, "", usage), set)
	}
	str("source", "source.spec", "sample source `spec` (source.spec), e.g. synthetic-imu, mnist", func(c *Config, v string) { c.Source.Spec = v })
	str("model", "model.spec", "model `spec` (model.spec), e.g. mlp-s", func(c *Config, v string) { c.Model.Spec = v })
	str("momentum", "training.momentum", "momentum `encoding` (training.momentum): auto, fp32, fp16, bf16, eXmY[bZ][s]", func(c *Config, v string) { c.Training.Momentum = v })
	str("mqtt-broker", "mqtt.broker", "broker `URL`, embedded or none (mqtt.broker)", func(c *Config, v string) { c.MQTT.Broker = v })
	str("mqtt-prefix", "mqtt.prefix", "topic `prefix` (mqtt.prefix)", func(c *Config, v string) { c.MQTT.Prefix = v })
	str("device-id", "mqtt.device_id", "device `id` in topics (mqtt.device_id); default the host name", func(c *Config, v string) { c.MQTT.DeviceID = v })
	str("state-dir", "checkpoint.dir", "state `directory` for checkpoints (checkpoint.dir)", func(c *Config, v string) { c.Checkpoint.Dir = v })
	str("log-level", "log.level", "log `level`: debug, info, warn, error (log.level)", func(c *Config, v string) { c.Log.Level = v })

	str("init", "model.init", "model `file` to start from when there is no checkpoint (model.init)", func(c *Config, v string) { c.Model.Init = v })
	str("classes", "model.classes", "comma-separated class `names`, fixed and in order (model.classes)", func(c *Config, v string) {
		c.Model.Classes = nil
		for _, name := range strings.Split(v, ",") {
			c.Model.Classes = append(c.Model.Classes, strings.TrimSpace(name))
		}
	})

	override(f, "checkpoint-interval", "checkpoint.interval", fs.Duration("checkpoint-interval", 0, "time between checkpoints (checkpoint.interval), e.g. 10m"),
		func(c *Config, v time.Duration) { c.Checkpoint.Interval = v })
	override(f, "threads", "training.threads", fs.Int("threads", 0, "worker threads, 0 = one per core (training.threads)"),
		func(c *Config, v int) { c.Training.Threads = v })
	override(f, "step-every", "training.step_every", fs.Int("step-every", 0, "one Bop step every this many new labelled samples (training.step_every)"),
		func(c *Config, v int) { c.Training.StepEvery = v })
	override(f, "seed", "training.seed", fs.Int64("seed", 0, "random seed (training.seed)"),
		func(c *Config, v int64) { c.Training.Seed = v })
	return f
}

// override records flag name as the override of config key: once the flag
// is parsed, set copies its value *p into the configuration.
func override[T any](f *Flags, name, key string, p *T, set func(c *Config, v T)) {
	f.keys[name] = key
	f.overrides[name] = func(c *Config) { set(c, *p) }
}

// Apply sets in c the values of the flags that were given on the command
// line, and records them as the origin of their keys.
func (f *Flags) Apply(c *Config) {
	f.fs.Visit(func(fl *flag.Flag) {
		if set, ok := f.overrides[fl.Name]; ok {
			set(c)
			c.setOrigin(f.keys[fl.Name], "flag -"+fl.Name)
		}
	})
}

// Load builds the configuration: defaults, then the -config file if given,
// then the flags that were set; then validates. It touches nothing on disk
// but the read of the file. Problems are returned together in a
// *Error.
func (f *Flags) Load() (*Config, error) {
	var (
		cfg      *Config
		parseErr error
	)
	if f.configPath != "" {
		data, err := readConfigFile(f.configPath)
		if err != nil {
			return nil, err
		}
		cfg, parseErr = Parse(f.configPath, data)
		if cfg == nil {
			return nil, parseErr
		}
	} else {
		cfg = Default()
	}
	f.Apply(cfg)
	if err := joinConfigErrors(parseErr, cfg.Validate()); err != nil {
		return nil, err
	}
	return cfg, nil
}
