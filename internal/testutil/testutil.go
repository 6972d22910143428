// Package testutil holds the helpers the packages' tests share: a buffer
// that goroutines may write to while a test reads it, free loopback
// addresses, and a real mosquitto broker. Only _test.go files import it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writes and reads, for the
// output of a process or a logger that runs beside the test. A test can
// wait for what it expects to be written (WaitFor) instead of polling.
type Buffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	grown chan struct{} // closed by the next Write; nil until Next asks
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grown != nil {
		close(b.grown)
		b.grown = nil
	}
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Next returns everything written so far and a channel that the next
// Write closes.
func (b *Buffer) Next() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grown == nil {
		b.grown = make(chan struct{})
	}
	return b.buf.String(), b.grown
}

// WaitFor waits until match holds for everything written so far, checking
// after each Write, and returns what was written and true. It gives up
// after within, or when stop is closed (nil: never), returning what was
// written and whether match holds for it then.
func (b *Buffer) WaitFor(within time.Duration, stop <-chan struct{}, match func(string) bool) (string, bool) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		s, grown := b.Next()
		if match(s) {
			return s, true
		}
		select {
		case <-grown:
		case <-stop:
			s = b.String()
			return s, match(s)
		case <-timer.C:
			return s, false
		}
	}
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// FreePort is the port of FreeAddr.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t))
	p, _ := strconv.Atoi(port)
	return p
}

// Mosquitto is a real mosquitto broker run by a test on a fixed loopback
// port, so that it can be stopped and started again where a client
// expects it.
type Mosquitto struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string // a temporary folder for the broker's files

	t      testing.TB
	bin    string
	conf   string
	cmd    *exec.Cmd
	exited chan struct{}
	output Buffer
}

// MosquittoBinary is the path of mosquitto; the test fails without it.
func MosquittoBinary(t testing.TB) string {
	t.Helper()
	const debian = "/usr/sbin/mosquitto"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	p, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Fatalf("mosquitto is not installed at %s or in PATH (Debian package mosquitto): %v", debian, err)
	}
	return p
}

// StartMosquitto runs mosquitto listening on a free loopback port, with no
// persistence and its log in its output, plus the configuration lines
// extra (allow_anonymous, password_file, TLS, log_type; a log_type must
// keep information messages, as the default and "all" do). It waits until
// the broker listens, and stops it when the test ends, showing its output
// if the test failed.
func StartMosquitto(t testing.TB, extra string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, bin: MosquittoBinary(t), Dir: t.TempDir()}
	m.Port = FreePort(t)
	m.Addr = fmt.Sprintf("127.0.0.1:%d", m.Port)
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n", m.Port)
	// Run as root, mosquitto would switch to a "mosquitto" user that cannot
	// read the test's files.
	if u := os.Getenv("USER"); u != "" {
		conf += "user " + u + "\n"
	} else if os.Getuid() == 0 {
		conf += "user root\n"
	}
	m.conf = filepath.Join(m.Dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(conf+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.output.String())
		}
	})
	return m
}

// Start starts the broker (again) and waits until it listens: mosquitto
// logs that it is running once its listeners are open.
func (m *Mosquitto) Start() {
	m.t.Helper()
	from := len(m.output.String()) // an earlier run said it was running too
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	m.cmd.Stdout, m.cmd.Stderr = &m.output, &m.output
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	m.exited = exited
	go func(cmd *exec.Cmd) { cmd.Wait(); close(exited) }(m.cmd)
	out, ok := m.output.WaitFor(10*time.Second, exited, func(s string) bool {
		return mosquittoRunning.MatchString(s[from:])
	})
	select {
	case <-exited:
		m.t.Fatalf("mosquitto exited at start:\n%s", out[from:])
	default:
	}
	if !ok {
		m.t.Fatalf("mosquitto did not say it was running on %s within 10s:\n%s", m.Addr, out[from:])
	}
}

// mosquittoRunning is the line mosquitto logs (at level information)
// once it listens.
var mosquittoRunning = regexp.MustCompile(`(?m)mosquitto version \S+ running$`)

// Stop ends the broker the way a service manager does (SIGTERM) and waits
// for it to exit, so that its port is free again.
func (m *Mosquitto) Stop() { m.end(syscall.SIGTERM) }

// Kill ends the broker at once (SIGKILL), as a crash does, and waits for
// it to exit.
func (m *Mosquitto) Kill() { m.end(syscall.SIGKILL) }

func (m *Mosquitto) end(sig syscall.Signal) {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
}
