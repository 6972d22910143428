package testutil

import (
	"strings"
	"testing"
	"time"
)

func TestBufferWaitFor(t *testing.T) {
	var b Buffer
	b.Write([]byte("starting\n"))
	go func() {
		for _, line := range []string{"loading\n", "ready", " on :1883\n"} {
			b.Write([]byte(line))
		}
	}()
	out, ok := b.WaitFor(10*time.Second, nil, func(s string) bool { return strings.Contains(s, "ready on :1883") })
	if !ok || !strings.HasPrefix(out, "starting\nloading\nready on :1883") {
		t.Fatalf("WaitFor = %q, %v", out, ok)
	}

	// A stop that closes ends the wait with a last look.
	stop := make(chan struct{})
	close(stop)
	if out, ok := b.WaitFor(10*time.Second, stop, func(s string) bool { return strings.Contains(s, "never") }); ok || out != b.String() {
		t.Errorf("WaitFor after stop = %q, %v; want everything and false", out, ok)
	}
	if _, ok := b.WaitFor(10*time.Second, stop, func(s string) bool { return strings.Contains(s, "loading") }); !ok {
		t.Error("WaitFor after stop does not see what was written")
	}
	// Nothing more comes: it gives up after within.
	start := time.Now()
	if _, ok := b.WaitFor(20*time.Millisecond, nil, func(s string) bool { return false }); ok {
		t.Error("WaitFor held for a match that never holds")
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("WaitFor gave up after %v, before its 20ms", d)
	}
}
