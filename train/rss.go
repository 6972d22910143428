package train

import (
	"syscall"

	"github.com/bnnd/bnnd/internal/procstat"
)

// PeakRSS is the process's high-water resident set size in bytes: VmHWM
// from /proc/self/status, else getrusage's ru_maxrss, else 0.
func PeakRSS() int64 {
	if n, ok := procstat.Bytes("VmHWM"); ok {
		return n
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return int64(ru.Maxrss) << 10 // Linux reports KiB
	}
	return 0
}
