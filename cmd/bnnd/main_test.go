package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	for _, want := range []string{"bnnd ", "go: " + runtime.Version(), "platform: " + runtime.GOOS + "/" + runtime.GOARCH, "cpu features: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("stderr does not name the command: %q", errOut.String())
	}
}

func TestHelpFlagExitsZero(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"version", "-h"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", code, errOut.String())
	}
}
