package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bnnd/bnnd/internal/testutil"
	"github.com/bnnd/bnnd/mqtt"
)

// e2eChildEnv makes the test binary behave as the bnnd executable: with it
// set, TestMain runs the command line as main() does, signals included.
const e2eChildEnv = "BNND_E2E_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(e2eChildEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// emulator is the qemu-user binary the test binary needs to run itself
// (when it was built for another architecture and run through go test
// -exec qemu-...), or "" when it runs natively.
var (
	emulatorOnce sync.Once
	emulator     string
	emulatorErr  error
)

func findEmulator() (string, error) {
	emulatorOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			emulatorErr = err
			return
		}
		probe := exec.Command(exe, "-test.run=^$", "-test.count=1")
		probe.Env = withoutEnv(os.Environ(), e2eChildEnv)
		if err := probe.Run(); err == nil || !errors.Is(err, syscall.ENOEXEC) {
			return
		}
		name := map[string]string{"arm64": "qemu-aarch64", "arm": "qemu-arm"}[runtime.GOARCH]
		if emulator, err = exec.LookPath(name); err != nil {
			emulatorErr = fmt.Errorf("cannot run %s natively and no %q emulator found: %w", exe, name, err)
		}
	})
	return emulator, emulatorErr
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// bnndProcess is the test binary running as 'bnnd ARGS...' in a child process.
type bnndProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testutil.Buffer
	exited chan struct{}
	err    error // set before exited is closed
}

type childOptions struct {
	env []string
	// watchdogPID sets WATCHDOG_PID to the child's own pid, as systemd
	// does: a shell exports its $$ and execs the daemon, keeping the pid.
	watchdogPID bool
}

func startBnnd(t *testing.T, o childOptions, args ...string) *bnndProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	emu, err := findEmulator()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{exe}, args...)
	if emu != "" {
		argv = append([]string{emu}, argv...)
	}
	if o.watchdogPID {
		argv = append([]string{"/bin/sh", "-c", `WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"`, "sh"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(withoutEnv(os.Environ(), "NOTIFY_SOCKET"), e2eChildEnv+"=1")
	cmd.Env = append(cmd.Env, o.env...)
	p := &bnndProcess{t: t, cmd: cmd, stderr: &testutil.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.stderr
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("bnnd %s output:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// wait returns the exit code, failing the test if the process does not
// end within the given time.
func (p *bnndProcess) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		p.t.Fatalf("bnnd did not exit within %v", within)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	p.t.Fatalf("bnnd ended abnormally: %v", p.err)
	return -1
}

func (p *bnndProcess) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitLog waits until the daemon's output matches re, checking at each
// write, and returns the output. It fails the test if the daemon exits
// first or after within.
func (p *bnndProcess) waitLog(within time.Duration, re *regexp.Regexp) string {
	p.t.Helper()
	out, ok := p.stderr.WaitFor(within, p.exited, re.MatchString)
	if !ok {
		select {
		case <-p.exited:
			p.t.Fatalf("bnnd exited (%v) before %q appeared in its output:\n%s", p.err, re, out)
		default:
		}
		p.t.Fatalf("no %q in the daemon's output within %v:\n%s", re, within, out)
	}
	return out
}

// alive fails the test if the daemon has already exited.
func (p *bnndProcess) alive() {
	p.t.Helper()
	select {
	case <-p.exited:
		p.t.Fatalf("bnnd exited early: %v", p.err)
	default:
	}
}

// startMosquitto runs a mosquitto that lets anyone in, as a LAN broker
// often does.
func startMosquitto(t *testing.T) *testutil.Mosquitto {
	t.Helper()
	return testutil.StartMosquitto(t, "allow_anonymous true\n")
}

// subscriber is a paho client that records every message under a filter.
type subscriber struct {
	t       *testing.T
	client  paho.Client
	mu      sync.Mutex
	msgs    []received
	arrived chan struct{} // cap 1: a message came since the last wait
}

type received struct {
	topic    string
	payload  string
	retained bool
	at       time.Time
}

var subscriberID atomic.Int64

func subscribe(t *testing.T, addr, filter string) *subscriber {
	t.Helper()
	return subscribeAs(t, addr, mqtt.Credentials{}, filter)
}

// subscribeAs is subscribe logged in as who (the embedded broker wants a
// login).
func subscribeAs(t *testing.T, addr string, who mqtt.Credentials, filter string) *subscriber {
	t.Helper()
	s := &subscriber{t: t, arrived: make(chan struct{}, 1)}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetUsername(who.Username).SetPassword(who.Password).
		SetClientID(fmt.Sprintf("e2e-watcher-%d-%d", os.Getpid(), subscriberID.Add(1))).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	s.client = paho.NewClient(opts)
	if tok := s.client.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", addr, tok.Error())
	}
	tok := s.client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		s.mu.Lock()
		s.msgs = append(s.msgs, received{m.Topic(), string(m.Payload()), m.Retained(), time.Now()})
		s.mu.Unlock()
		select {
		case s.arrived <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(s.close)
	return s
}

func (s *subscriber) close() {
	if s.client.IsConnected() {
		s.client.Disconnect(100)
	}
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// waitFor returns the first message on topic at index from or later that
// satisfies ok, and the index after it. It fails the test after within,
// or at once when the daemon exits.
func (s *subscriber) waitFor(p *bnndProcess, topic string, from int, within time.Duration, ok func(received) bool) (received, int) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		msgs := s.msgs
		s.mu.Unlock()
		for i := from; i < len(msgs); i++ {
			if msgs[i].topic == topic && ok(msgs[i]) {
				return msgs[i], i + 1
			}
		}
		if p != nil {
			p.alive()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no matching message on %s within %v (%d messages in all)", topic, within, len(msgs))
		}
		s.wait(p, deadline)
	}
}

// wait returns when a message has arrived since the last wait, p has
// exited (p may be nil), or the deadline has passed.
func (s *subscriber) wait(p *bnndProcess, deadline time.Time) {
	var exited <-chan struct{}
	if p != nil {
		exited = p.exited
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-s.arrived:
	case <-exited:
	case <-timer.C:
	}
}

func payloadIs(want string) func(received) bool {
	return func(m received) bool { return m.payload == want }
}

// e2eConfig is a small, fast daemon configuration: a synthetic IMU stream
// read as fast as the daemon takes it, a small MLP, fast telemetry, and no
// scheduled checkpoint during a test.
type e2eConfig struct {
	stateDir   string
	broker     string // host:port of the MQTT broker
	deviceID   string
	prometheus string // host:port, or "" for none
}

func (c e2eConfig) write(t *testing.T) string {
	t.Helper()
	prom := ""
	if c.prometheus != "" {
		prom = "prometheus:\n  listen: " + c.prometheus + "\n"
	}
	text := fmt.Sprintf(`source:
  spec: synthetic-imu,pace=0,n=600
model:
  spec: mlp:32
training:
  momentum: e4m3b28s
  threads: 1
replay:
  budget: 128KiB
checkpoint:
  dir: %s
  interval: 10m
mqtt:
  broker: tcp://%s
  device_id: %s
  intervals:
    progress: 200ms
    memory: 1s
    encoding: 1s
    prediction: 200ms
    health: 1s
%slog:
  level: info
`, c.stateDir, c.broker, c.deviceID, prom)
	path := filepath.Join(t.TempDir(), "bnnd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrapeSamplesSeen reads bnnd_samples_seen_total from the daemon's
// Prometheus endpoint: the daemon's own counter, independent of MQTT.
func scrapeSamplesSeen(t *testing.T, addr string) uint64 {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "bnnd_samples_seen_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("bnnd_samples_seen_total %q: %v", v, err)
			}
			return uint64(f)
		}
	}
	t.Fatalf("/metrics has no bnnd_samples_seen_total (%v)", sc.Err())
	return 0
}

// timeScale stretches waits for emulated runs, which are several times
// slower than native ones.
func timeScale() time.Duration {
	if emu, _ := findEmulator(); emu != "" {
		return 3
	}
	return 1
}
