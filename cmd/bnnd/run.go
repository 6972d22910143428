package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/bnnd/bnnd/daemon"
	"github.com/bnnd/bnnd/daemon/config"
)

func init() {
	register(&command{
		name:    "run",
		summary: "train forever from a source, checkpoint, publish over MQTT (the daemon)",
		run:     runDaemon,
	})
}

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	maxSamples := fs.Uint64("max-samples", 0, "stop cleanly after this many samples (0 = run until stopped)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bnnd run [-config FILE] [flags]\n\nFlags override the configuration file:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Nothing is opened or written before the configuration is valid.
	cfg, err := flags.Load()
	if err != nil {
		return configProblems(err, stderr)
	}
	return daemon.Run(ctx, cfg, daemon.RunOptions{
		Logger:     daemon.NewLogger(stderr, cfg.Log),
		Version:    buildVersion(),
		MaxSamples: *maxSamples,
	})
}
