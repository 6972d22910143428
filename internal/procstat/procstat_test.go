package procstat

import (
	"runtime"
	"testing"
)

func TestParse(t *testing.T) {
	status := "Name:\tbnnd\nVmHWM:\t   36004 kB\nVmRSS:\t   12 kB\nThreads:\t5\n"
	for key, want := range map[string]int64{"VmHWM": 36004 << 10, "VmRSS": 12 << 10} {
		if got, ok := parse(status, key); !ok || got != want {
			t.Errorf("%s: %d, %v; want %d", key, got, ok, want)
		}
	}
	if _, ok := parse(status, "VmSwap"); ok {
		t.Error("a missing key was found")
	}
}

func TestRSSOnLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc")
	}
	if RSS() <= 0 {
		t.Error("no resident set size on Linux")
	}
}
