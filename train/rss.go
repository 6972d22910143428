package train

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// PeakRSS is the process's high-water resident set size in bytes: VmHWM
// from /proc/self/status, else getrusage's ru_maxrss, else 0.
func PeakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					return kb << 10
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return int64(ru.Maxrss) << 10 // Linux reports KiB
	}
	return 0
}
