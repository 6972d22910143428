package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/bnnd/bnnd/daemon/config"
)

func init() {
	register(&command{
		name:    "config",
		summary: "check a configuration file, print the defaults or the effective settings",
		run:     runConfig,
	})
}

const configUsage = `usage:
  bnnd config check FILE...      validate without running (exit 2 if invalid)
  bnnd config defaults           print the default configuration, every key commented
  bnnd config show [run flags]   print the settings 'bnnd run' would use with these flags`

func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("missing subcommand\n%s", configUsage)
	}
	switch args[0] {
	case "check":
		return runConfigCheck(args[1:], stdout, stderr)
	case "defaults":
		if len(args) > 1 {
			return usagef("config defaults takes no arguments, got %q", args[1])
		}
		_, err := stdout.Write(config.Example())
		return err
	case "show":
		fs := flag.NewFlagSet("config show", flag.ContinueOnError)
		fs.SetOutput(stderr)
		flags := config.RegisterFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err}
		}
		if fs.NArg() > 0 {
			return usagef("unexpected argument %q", fs.Arg(0))
		}
		cfg, err := flags.Load()
		if err != nil {
			return configProblems(err, stderr)
		}
		text, err := cfg.MarshalYAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(text)
		return err
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, configUsage)
		return nil
	}
	return usagef("unknown subcommand %q\n%s", args[0], configUsage)
}

func runConfigCheck(files []string, stdout, stderr io.Writer) error {
	if len(files) == 0 {
		return usagef("config check: missing FILE")
	}
	bad := 0
	for _, path := range files {
		if _, err := config.Load(path); err != nil {
			bad++
			fmt.Fprintln(stderr, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
	}
	if bad > 0 {
		return usagef("%d of %d configuration files invalid", bad, len(files))
	}
	return nil
}

// configProblems prints every problem of an invalid configuration and
// returns a usage error (exit status 2) summarising them.
func configProblems(err error, stderr io.Writer) error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return usageError{err}
	}
	for _, p := range ce.Problems {
		fmt.Fprintln(stderr, p)
	}
	if len(ce.Problems) == 1 {
		return usagef("invalid configuration (1 problem)")
	}
	return usagef("invalid configuration (%d problems)", len(ce.Problems))
}
