package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// version is set at link time by the Makefile (-X main.version=...).
var version = ""

func init() {
	register(&command{
		name:    "version",
		summary: "print version, Go version, platform and CPU features",
		run:     runVersion,
	})
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// versionLines are extra "key: value" lines other subsystems add to
// 'bnnd version' (for example the kernel implementation in use).
var versionLines []func() (key, value string)

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bnnd %s\n", buildVersion())
	fmt.Fprintf(stdout, "go: %s\n", runtime.Version())
	fmt.Fprintf(stdout, "platform: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	cpu := cpuid.CPU.BrandName
	if cpu == "" {
		cpu = "unknown"
	}
	fmt.Fprintf(stdout, "cpu: %s (%d logical cores)\n", cpu, runtime.NumCPU())
	features := cpuid.CPU.FeatureSet()
	if len(features) == 0 {
		features = []string{"none detected"}
	}
	fmt.Fprintf(stdout, "cpu features: %s\n", strings.Join(features, " "))
	for _, line := range versionLines {
		k, v := line()
		fmt.Fprintf(stdout, "%s: %s\n", k, v)
	}
	return nil
}
