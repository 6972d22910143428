// Command livecheck stands in for `bnnd run` under the real bnnd.service
// sandbox (see run.sh): it checks what the sandbox must allow and forbid,
// reports READY, feeds the watchdog through package systemd while it "trains"
// for STALL_AFTER, then stalls so that systemd's watchdog must kill it.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bnnd/bnnd/systemd"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	n, err := systemd.New(systemd.Options{Logger: log})
	if err != nil {
		log.Error("livecheck: systemd environment", "err", err)
		os.Exit(1)
	}
	log.Info("livecheck: start", "pid", os.Getpid(), "watchdog", n.WatchdogInterval(), "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))

	check := func(what string, err error, wantErr error) {
		switch {
		case wantErr == nil && err == nil, wantErr != nil && errors.Is(err, wantErr):
			log.Info("livecheck: ok", "check", what, "err", err)
		default:
			log.Error("livecheck: FAIL", "check", what, "err", err, "want", wantErr)
		}
	}
	state := os.Getenv("STATE_DIRECTORY")
	check("write the state directory", os.WriteFile(filepath.Join(state, "livecheck"), []byte("x"), 0o600), nil)
	check("write /etc (ProtectSystem=strict)", os.WriteFile("/etc/bnnd-livecheck", []byte("x"), 0o600), syscall.EROFS)
	_, err = os.ReadFile("/proc/self/status")
	check("read /proc/self/status (RSS figures)", err, nil)
	_, err = os.ReadFile("/proc/cpuinfo")
	check("read /proc/cpuinfo (ProcSubset=pid)", err, syscall.ENOENT)
	l, err := net.Listen("tcp", "127.0.0.1:0") // the embedded broker
	if err == nil {
		l.Close()
	}
	check("listen on TCP", err, nil)
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW, 0)
	if err == nil {
		syscall.Close(fd)
	}
	check("netlink socket (RestrictAddressFamilies)", err, syscall.EAFNOSUPPORT)
	check("setpriority (SystemCallFilter=~@resources)", syscall.Setpriority(syscall.PRIO_PROCESS, 0, 5), syscall.EPERM)

	if err := n.Ready(); err != nil {
		log.Error("livecheck: FAIL", "check", "READY=1", "err", err)
	}
	stallAfter, err := time.ParseDuration(os.Getenv("STALL_AFTER"))
	if err != nil {
		log.Error("livecheck: STALL_AFTER", "err", err)
		os.Exit(1)
	}
	start := time.Now()
	for step := 1; ; step++ {
		time.Sleep(10 * time.Millisecond) // one training step
		n.Progress()
		if time.Since(start) > stallAfter {
			n.Status(fmt.Sprintf("stuck at step %d", step))
			log.Info("livecheck: stalling", "step", step)
			select {} // a stuck training loop
		}
	}
}
