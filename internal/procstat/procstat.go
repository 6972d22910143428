// Package procstat reads the process's memory figures from
// /proc/self/status, for the daemon's memory report and bnnd train's peak.
// It imports nothing of bnnd, so any package can use it.
package procstat

import (
	"os"
	"strconv"
	"strings"
)

// Bytes is the value of a "Key:  N kB" line of /proc/self/status (such as
// "VmRSS" or "VmHWM") in bytes; ok is false where there is no such file or
// line (not Linux, or a kernel without the field).
func Bytes(key string) (n int64, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parse(string(b), key)
}

func parse(status, key string) (int64, bool) {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}

// RSS is the resident set size in bytes, 0 if unknown.
func RSS() int64 {
	n, _ := Bytes("VmRSS")
	return n
}
