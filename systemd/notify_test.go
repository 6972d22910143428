package systemd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bnnd/bnnd/internal/testutil"
)

// testWatchdog is WatchdogSec in these tests: checks every 50ms.
const testWatchdog = 100 * time.Millisecond

// waitLimit bounds every wait so that a slow qemu run passes and a broken
// watchdog fails instead of hanging.
const waitLimit = 20 * time.Second

// notifySocket is a real unixgram socket playing systemd's part: it receives
// the datagrams sd_notify sends.
type notifySocket struct {
	t    *testing.T
	conn *net.UnixConn
	buf  []byte
}

// listenNotify creates a socket, points NOTIFY_SOCKET at it and sets the
// watchdog variables (watchdog 0 leaves them unset).
func listenNotify(t *testing.T, watchdog time.Duration) *notifySocket {
	t.Helper()
	// Socket paths are limited to 108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "bnnd-sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return listenNotifyAt(t, filepath.Join(dir, "notify"), watchdog)
}

func listenNotifyAt(t *testing.T, name string, watchdog time.Duration) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on unixgram %q: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	if watchdog > 0 {
		t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	} else {
		t.Setenv("WATCHDOG_USEC", "")
		t.Setenv("WATCHDOG_PID", "")
	}
	return &notifySocket{t: t, conn: conn, buf: make([]byte, 4096)}
}

// next returns the next datagram, failing the test after wait.
func (s *notifySocket) next(wait time.Duration) string {
	s.t.Helper()
	msg, ok := s.tryNext(wait)
	if !ok {
		s.t.Fatalf("no sd_notify message within %v", wait)
	}
	return msg
}

// tryNext returns the next datagram, or false if none came within wait.
func (s *notifySocket) tryNext(wait time.Duration) (string, bool) {
	s.t.Helper()
	if err := s.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		s.t.Fatal(err)
	}
	n, err := s.conn.Read(s.buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", false
	}
	if err != nil {
		s.t.Fatalf("reading the notify socket: %v", err)
	}
	return string(s.buf[:n]), true
}

// expectQuiet fails if any datagram arrives within wait.
func (s *notifySocket) expectQuiet(wait time.Duration, why string) {
	s.t.Helper()
	if msg, ok := s.tryNext(wait); ok {
		s.t.Fatalf("%s: unexpected sd_notify message %q", why, msg)
	}
}

// checkRecorder lets a test follow the watchdog goroutine check by check.
type checkRecorder chan watchdogCheck

func recordChecks(n *Notifier) checkRecorder {
	c := make(checkRecorder, 1<<12)
	n.afterCheck = func(wc watchdogCheck) { c <- wc }
	return c
}

func (c checkRecorder) next(t *testing.T) watchdogCheck {
	t.Helper()
	select {
	case wc := <-c:
		return wc
	case <-time.After(waitLimit):
		t.Fatalf("the watchdog made no check within %v", waitLimit)
		return watchdogCheck{}
	}
}

// drain discards the checks already recorded.
func (c checkRecorder) drain() {
	for len(c) > 0 {
		<-c
	}
}

// waitPinged waits until the watchdog has pinged k times, and returns the
// number of checks that took.
func (c checkRecorder) waitPinged(t *testing.T, k int) int {
	t.Helper()
	checks := 0
	for pings := 0; pings < k; checks++ {
		if c.next(t).pinged {
			pings++
		}
		if checks > 1000 {
			t.Fatalf("only %d pings in %d watchdog checks", pings, checks)
		}
	}
	return checks
}

// expectStall is called once progress can no longer happen. Checks still
// queued or running may have seen the last steps and pinged; from the first
// check that saw no progress on, the watchdog must withhold every ping (five
// checks in a row are observed). It returns the pings it saw and the first
// withheld check.
func (c checkRecorder) expectStall(t *testing.T, what string) (pings int, firstQuiet watchdogCheck) {
	t.Helper()
	for i := 0; ; i++ {
		wc := c.next(t)
		if !wc.progressed {
			if wc.pinged {
				t.Fatalf("%s: the watchdog pinged without progress", what)
			}
			firstQuiet = wc
			break
		}
		if !wc.pinged {
			t.Fatalf("%s: the watchdog saw progress but did not ping", what)
		}
		pings++
		if i > 100 {
			t.Fatalf("%s: the watchdog still sees progress after %d checks", what, i)
		}
	}
	for i := 0; i < 5; i++ {
		if wc := c.next(t); wc.pinged || wc.progressed {
			t.Fatalf("%s: check %d after the first withheld ping: %+v, want no progress and no ping", what, i+2, wc)
		}
	}
	return pings, firstQuiet
}

// expectPings reads k WATCHDOG=1 datagrams from the socket.
func (s *notifySocket) expectPings(k int) {
	s.t.Helper()
	for i := 0; i < k; i++ {
		if msg := s.next(waitLimit); msg != "WATCHDOG=1" {
			s.t.Fatalf("ping %d of %d: got %q, want WATCHDOG=1", i+1, k, msg)
		}
	}
}

// stepper plays the training loop: it calls Progress until stopped.
type stepper struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startStepping(step func()) *stepper {
	s := &stepper{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(time.Millisecond):
				step()
			}
		}
	}()
	return s
}

// stall stops the loop and returns once it can no longer make progress.
func (s *stepper) stall() {
	close(s.stop)
	s.wg.Wait()
}

func TestReadyStatusStoppingOnRealSocket(t *testing.T) {
	sock := listenNotify(t, 0)
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("Enabled()=%v WatchdogInterval()=%v, want true, 0", n.Enabled(), n.WatchdogInterval())
	}
	if err := n.Status("loading model"); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "STATUS=loading model" {
		t.Fatalf("got %q, want STATUS=loading model", got)
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
	// A line break would start a new assignment in the datagram.
	if err := n.Status("step 12\naccuracy 0.93\r\nREADY=1"); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "STATUS=step 12 accuracy 0.93 READY=1" {
		t.Fatalf("got %q, want the status on one line", got)
	}
	if err := n.ExtendTimeout(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "EXTEND_TIMEOUT_USEC=90000000" {
		t.Fatalf("got %q, want EXTEND_TIMEOUT_USEC=90000000", got)
	}
	if err := n.ExtendTimeout(0); err == nil || !strings.Contains(err.Error(), "ExtendTimeout") {
		t.Fatalf("ExtendTimeout(0) = %v, want an error naming ExtendTimeout", err)
	}
	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "STOPPING=1" {
		t.Fatalf("got %q, want STOPPING=1", got)
	}
	// No watchdog configured: nothing else may arrive.
	sock.expectQuiet(3*testWatchdog, "without WATCHDOG_USEC")
}

func TestWatchdogPingsOnlyWhileTrainingProgresses(t *testing.T) {
	sock := listenNotify(t, testWatchdog)
	logw := &testutil.Buffer{}
	n, err := New(Options{Logger: slog.New(slog.NewTextHandler(logw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.WatchdogInterval() != testWatchdog {
		t.Fatalf("WatchdogInterval() = %v, want %v", n.WatchdogInterval(), testWatchdog)
	}
	checks := recordChecks(n)
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}

	// The loop steps: the watchdog is fed.
	loop := startStepping(n.Progress)
	checks.waitPinged(t, 4)
	sock.expectPings(4)

	// The loop is stuck: pings stop, so systemd would kill the service.
	loop.stall()
	pings, _ := checks.expectStall(t, "stalled loop")
	sock.expectPings(pings)
	sock.expectQuiet(testWatchdog, "stalled loop")
	if !strings.Contains(logw.String(), "no progress") {
		t.Errorf("a stall was not logged; log:\n%s", logw.String())
	}

	// Paused by a command: no progress, yet the watchdog is fed at once
	// (one queued or running check may predate the pause).
	checks.drain()
	n.SetPaused(true)
	pinged := checks.waitPinged(t, 3)
	sock.expectPings(3)
	if pinged > 4 {
		t.Errorf("took %d checks to ping 3 times while paused", pinged)
	}
	n.SetPaused(false)
	// The first check may still have seen the pause; none after it pings.
	if checks.next(t).pinged {
		sock.expectPings(1)
	}
	pings, _ = checks.expectStall(t, "resumed from pause but not stepping")
	sock.expectPings(pings)

	// Stepping again: pings come back.
	loop = startStepping(n.Progress)
	checks.waitPinged(t, 3)
	sock.expectPings(3)
	loop.stall()

	// Shutdown: STOPPING=1, and the watchdog goroutine is gone.
	if err := n.Stopping(); err != nil {
		t.Fatal(err)
	}
	for {
		msg := sock.next(waitLimit)
		if msg == "STOPPING=1" {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("got %q before STOPPING=1", msg)
		}
	}
	sock.expectQuiet(2*testWatchdog, "after STOPPING=1")
	select {
	case wc := <-checks:
		t.Fatalf("the watchdog still checked (%+v) after Stopping", wc)
	default:
	}
}

func TestWatchdogFollowsCounterAndIdleAllowance(t *testing.T) {
	sock := listenNotify(t, testWatchdog)
	var samples atomic.Uint64
	n, err := New(Options{
		Logger:        slog.New(slog.DiscardHandler),
		Counter:       samples.Load,
		IdleAllowance: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	checks := recordChecks(n)
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	sock.next(waitLimit) // READY=1

	loop := startStepping(func() { samples.Add(1) })
	checks.waitPinged(t, 3)
	sock.expectPings(3)
	loop.stall()

	// Within the allowance the watchdog keeps pinging; after it, it stops.
	var lastProgress watchdogCheck
	idlePings := 0
	for {
		wc := checks.next(t)
		if wc.progressed {
			lastProgress = wc
		} else if !wc.pinged {
			break
		} else {
			idlePings++
		}
		if !wc.pinged {
			t.Fatalf("a check withheld the ping within the allowance: %+v", wc)
		}
		sock.expectPings(1)
	}
	pings, firstQuiet := checks.expectStall(t, "idle beyond the allowance")
	if pings != 0 {
		t.Fatalf("%d pings after the first withheld one", pings)
	}
	if idle := firstQuiet.at.Sub(lastProgress.at); idle < 2*time.Second {
		t.Fatalf("pings withheld %v after the last progress, before the 2s idle allowance", idle)
	}
	if idlePings == 0 {
		t.Fatal("no ping during the 2s idle allowance")
	}
	sock.expectQuiet(testWatchdog, "idle beyond the allowance")
}

func TestWithoutNotifySocketEverythingIsANoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	before := runtime.NumGoroutine()
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("Enabled()=%v WatchdogInterval()=%v without NOTIFY_SOCKET", n.Enabled(), n.WatchdogInterval())
	}
	for name, err := range map[string]error{
		"Ready": n.Ready(), "Status": n.Status("x"), "ExtendTimeout": n.ExtendTimeout(time.Second),
		"Stopping": n.Stopping(), "Close": n.Close(),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	n.Progress()
	n.SetPaused(true)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines went from %d to %d without NOTIFY_SOCKET", before, after)
	}

	var none *Notifier
	none.Progress()
	none.SetPaused(false)
	if none.Enabled() || none.Ready() != nil || none.Status("x") != nil || none.Stopping() != nil || none.Close() != nil {
		t.Error("a nil *Notifier is not a silent no-op")
	}
}

func TestWatchdogForAnotherProcessIsIgnored(t *testing.T) {
	listenNotify(t, testWatchdog)
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.WatchdogInterval() != 0 {
		t.Fatalf("WatchdogInterval() = %v, want 0: WATCHDOG_PID names another process", n.WatchdogInterval())
	}
}

func TestBadWatchdogEnvironmentIsAnError(t *testing.T) {
	for _, usec := range []string{"sixty", "-5", "0", "1000"} {
		t.Run(usec, func(t *testing.T) {
			listenNotify(t, 0)
			t.Setenv("WATCHDOG_USEC", usec)
			_, err := New(Options{})
			if err == nil || !strings.Contains(err.Error(), "WATCHDOG_USEC") || !strings.Contains(err.Error(), usec) {
				t.Fatalf("New with WATCHDOG_USEC=%q: %v, want an error naming it", usec, err)
			}
		})
	}
	t.Run("negative IdleAllowance", func(t *testing.T) {
		_, err := New(Options{IdleAllowance: -time.Second})
		if err == nil || !strings.Contains(err.Error(), "IdleAllowance") {
			t.Fatalf("got %v, want an error naming IdleAllowance", err)
		}
	})
}

func TestUnreachableSocketIsReportedNotFatal(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	t.Setenv("NOTIFY_SOCKET", missing)
	t.Setenv("WATCHDOG_USEC", "")
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Ready()
	if err == nil || !strings.Contains(err.Error(), "READY") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Ready() on a missing socket = %v, want an error naming READY and %s", err, missing)
	}
}

func TestAbstractNotifySocket(t *testing.T) {
	// systemd may pass an abstract socket ("@name").
	sock := listenNotifyAt(t, fmt.Sprintf("@bnnd-test-%d-%d", os.Getpid(), time.Now().UnixNano()), 0)
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := sock.next(waitLimit); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
}

// TestCloseStopsTheWatchdogGoroutine runs the notifier in a synctest
// bubble: Test returns only once every goroutine started in it has
// exited, and fails if one is left blocked, so a watchdog goroutine that
// outlived Close would fail it. (In the bubble the watchdog's ticker runs
// on the bubble's clock, which moves while the test waits for a check.)
func TestCloseStopsTheWatchdogGoroutine(t *testing.T) {
	outer := listenNotify(t, testWatchdog)
	synctest.Test(t, func(t *testing.T) {
		sock := *outer
		sock.t = t
		n, err := New(Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		checks := recordChecks(n)
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		sock.next(waitLimit) // READY=1
		checks.next(t)       // the goroutine runs
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// Ready after Close must not start a new goroutine.
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		// Checks recorded before Close may be queued; none may follow.
		checks.drain()
		select {
		case wc := <-checks:
			t.Fatalf("the watchdog kept checking after Close: %+v", wc)
		case <-time.After(2 * testWatchdog):
		}
	})
}

func BenchmarkProgress(b *testing.B) {
	n := &Notifier{}
	b.ReportAllocs()
	for b.Loop() {
		n.Progress()
	}
}
