// Package systemd is bnnd's glue to the systemd service manager: sd_notify
// readiness and status messages, and a watchdog that is fed by the training
// loop's progress rather than by a timer alone, so that a stuck loop gets the
// service killed and restarted. It also embeds the unit file (bnnd.service).
//
// Typical use in the daemon:
//
//	n, err := systemd.New(systemd.Options{Logger: log})
//	if err != nil { ... }            // only a malformed WATCHDOG_USEC/WATCHDOG_PID
//	defer n.Close()
//	// ... open the source, load the model, connect telemetry ...
//	n.Ready()                         // READY=1; starts the watchdog
//	for step := ...; ; step++ {
//		trainOneStep()
//		n.Progress()                  // cheap: one atomic add
//		n.Status(fmt.Sprintf("step %d, accuracy %.3f", step, acc))  // now and then
//	}
//	n.Stopping()                      // STOPPING=1; then write the last checkpoint
//
// Every method is a no-op when the process is not run by systemd
// (NOTIFY_SOCKET unset) and on a nil *Notifier, so callers need no guards.
package systemd

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Options configure a Notifier. The zero value is valid.
type Options struct {
	// Logger receives failed notifications and watchdog stall reports.
	// Nil means slog.Default().
	Logger *slog.Logger

	// Counter, if set, is polled by the watchdog in addition to the calls to
	// Progress: any change of its value counts as progress. It lets the
	// daemon hand over a counter it keeps anyway (e.g. samples seen) instead
	// of calling Progress. It is called from the watchdog goroutine, so it
	// must be safe for concurrent use (an atomic load).
	Counter func() uint64

	// IdleAllowance is how long the watchdog keeps pinging without progress
	// before it withholds pings. Zero (the default) withholds at the first
	// check without progress, so a stall is detected within about 1.5 ×
	// WatchdogSec; with an allowance, within IdleAllowance + 1.5 × WatchdogSec.
	// For longer legitimate idle periods use SetPaused.
	IdleAllowance time.Duration
}

// Notifier sends sd_notify messages to systemd and feeds its watchdog while
// the daemon makes progress. Its methods are safe for concurrent use.
type Notifier struct {
	enabled       bool          // NOTIFY_SOCKET was set
	socket        string        // NOTIFY_SOCKET, for error messages
	interval      time.Duration // WatchdogSec as passed in WATCHDOG_USEC; 0 when off
	logger        *slog.Logger
	counter       func() uint64
	idleAllowance time.Duration

	progress atomic.Uint64
	paused   atomic.Bool

	mu       sync.Mutex
	started  bool // the watchdog goroutine was started (by Ready)
	finished bool // Stopping or Close was called: never start again
	stop     chan struct{}
	done     chan struct{}

	// afterCheck, when set by tests, is called by the watchdog goroutine
	// after each periodic check.
	afterCheck func(watchdogCheck)
}

// watchdogCheck is what one periodic check of the watchdog saw and did.
type watchdogCheck struct {
	at         time.Time // the tick
	progressed bool      // progress since the previous check
	pinged     bool      // WATCHDOG=1 sent
}

// New returns a Notifier configured from the environment systemd sets for
// the service: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. Without
// NOTIFY_SOCKET every method is a no-op. The watchdog is active when
// WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process. The
// environment is left as it is. New starts no goroutine; Ready does.
func New(opts Options) (*Notifier, error) {
	n := &Notifier{
		socket:        os.Getenv("NOTIFY_SOCKET"),
		logger:        opts.Logger,
		counter:       opts.Counter,
		idleAllowance: opts.IdleAllowance,
	}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	if opts.IdleAllowance < 0 {
		return nil, fmt.Errorf("systemd: Options.IdleAllowance is %v; it must not be negative", opts.IdleAllowance)
	}
	n.enabled = n.socket != ""
	if !n.enabled {
		return n, nil
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return nil, fmt.Errorf("systemd: bad watchdog environment (WATCHDOG_USEC=%q, WATCHDOG_PID=%q): %w",
			os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), err)
	}
	if interval > 0 && interval < 2*time.Millisecond {
		return nil, fmt.Errorf("systemd: WATCHDOG_USEC=%q is below the 2ms this watchdog can serve", os.Getenv("WATCHDOG_USEC"))
	}
	n.interval = interval
	return n, nil
}

// Enabled reports whether the process runs under systemd's notification
// protocol (NOTIFY_SOCKET set).
func (n *Notifier) Enabled() bool { return n != nil && n.enabled }

// WatchdogInterval is the service's WatchdogSec, or 0 when the watchdog is
// off. Pings are sent every half of it, while the daemon makes progress.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.interval
}

// Ready tells systemd that start-up is complete (READY=1) and starts the
// watchdog goroutine. systemd only arms the watchdog at READY=1, so start-up
// itself is bounded by TimeoutStartSec, not by the watchdog.
func (n *Notifier) Ready() error {
	if !n.Enabled() {
		return nil
	}
	if err := n.send(daemon.SdNotifyReady); err != nil {
		return err
	}
	n.startWatchdog()
	return nil
}

// Status sets the free-form status line shown by `systemctl status`
// (STATUS=...). Line breaks would end the message's assignment, so they are
// replaced by spaces.
func (n *Notifier) Status(status string) error {
	if !n.Enabled() {
		return nil
	}
	return n.send("STATUS=" + lineBreaks.Replace(status))
}

// lineBreaks turns a multi-line status into one line.
var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// ExtendTimeout asks systemd for d more time in the current start-up or
// shutdown phase (EXTEND_TIMEOUT_USEC), e.g. while a slow checkpoint is
// written after Stopping. It must be repeated before d elapses.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	if !n.Enabled() {
		return nil
	}
	if d <= 0 {
		return fmt.Errorf("systemd: ExtendTimeout(%v): the extension must be positive", d)
	}
	return n.send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// Progress records that the daemon did useful work (a training step, a
// window processed). It is one atomic add and never blocks, so it belongs in
// the hot loop. The watchdog pings only if Progress was called (or Counter
// changed) since its previous check.
func (n *Notifier) Progress() {
	if n == nil {
		return
	}
	n.progress.Add(1)
}

// SetPaused marks the daemon as legitimately idle (paused by a command,
// waiting for a label): while paused the watchdog keeps pinging without
// progress. After SetPaused(false) the idle allowance starts afresh.
func (n *Notifier) SetPaused(paused bool) {
	if n == nil {
		return
	}
	n.paused.Store(paused)
}

// Stopping tells systemd that shutdown has begun (STOPPING=1) and stops the
// watchdog: from now on the shutdown is bounded by TimeoutStopSec.
func (n *Notifier) Stopping() error {
	if !n.Enabled() {
		return nil
	}
	n.stopWatchdog()
	return n.send(daemon.SdNotifyStopping)
}

// Close stops the watchdog goroutine and waits for it to exit. It sends no
// message, may be called more than once, and is safe on a nil Notifier.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.stopWatchdog()
	return nil
}

func (n *Notifier) send(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		key, _, _ := strings.Cut(state, "=")
		return fmt.Errorf("systemd: sending %s to NOTIFY_SOCKET %q: %w", key, n.socket, err)
	}
	return nil
}

func (n *Notifier) startWatchdog() {
	if n.interval <= 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.finished {
		return
	}
	n.started = true
	n.stop = make(chan struct{})
	n.done = make(chan struct{})
	go n.watch(n.stop, n.done)
}

func (n *Notifier) stopWatchdog() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.finished {
		return
	}
	n.finished = true
	if n.started {
		close(n.stop)
		<-n.done
	}
}

// progressCount is the sum of the Progress calls and the Counter; only its
// changes matter.
func (n *Notifier) progressCount() uint64 {
	c := n.progress.Load()
	if n.counter != nil {
		c += n.counter()
	}
	return c
}

// watch checks for progress every half watchdog interval, as systemd
// recommends for the ping period, and pings only when there was some, when
// the daemon is paused, or within the idle allowance.
func (n *Notifier) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(n.interval / 2)
	defer ticker.Stop()

	last := n.progressCount()
	lastActive := time.Now() // last progress, or last check while paused
	stalled := false
	for {
		var now time.Time
		select {
		case <-stop:
			return
		case now = <-ticker.C:
		}
		current := n.progressCount()
		progressed := current != last
		ping := true
		switch {
		case progressed:
			last = current
			lastActive = now
			if stalled {
				n.logger.Info("systemd watchdog: training progress resumed; pinging again")
				stalled = false
			}
		case n.paused.Load():
			lastActive = now
		case now.Sub(lastActive) < n.idleAllowance:
		default:
			ping = false
			if !stalled {
				stalled = true
				n.logger.Warn("systemd watchdog: no progress; withholding WATCHDOG=1 so systemd restarts a stuck daemon",
					"no_progress_for", now.Sub(lastActive).Round(time.Millisecond),
					"watchdog_sec", n.interval)
			}
		}
		if ping {
			if err := n.send(daemon.SdNotifyWatchdog); err != nil {
				n.logger.Warn("systemd watchdog: ping failed", "err", err)
			}
		}
		if n.afterCheck != nil {
			n.afterCheck(watchdogCheck{at: now, progressed: progressed, pinged: ping})
		}
	}
}
