package sensors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bnnd/bnnd/sensors/adxl345"
	"github.com/bnnd/bnnd/sensors/mpu6050"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"
)

// reader is what live acquisition needs from a driver.
type reader interface {
	read(dst []float32) error // one sample in SI units
	halt() error
	String() string
}

// chip is a driver (mpu6050.Dev, adxl345.Dev) with its reading type R.
type chip[R any] interface {
	Sense(*R) error
	Halt() error
	String() string
}

// chipReader is a reader of driver d: values copies a reading into one
// sample, in the order of LiveChannels.
type chipReader[R any, D chip[R]] struct {
	d      D
	r      R
	values func(dst []float32, r *R)
}

func (c *chipReader[R, D]) read(dst []float32) error {
	if err := c.d.Sense(&c.r); err != nil {
		return err
	}
	c.values(dst, &c.r)
	return nil
}
func (c *chipReader[R, D]) halt() error    { return c.d.Halt() }
func (c *chipReader[R, D]) String() string { return c.d.String() }

func mpuValues(dst []float32, r *mpu6050.Reading) {
	for i := range 3 {
		dst[i] = float32(r.Accel[i])
		dst[3+i] = float32(r.Gyro[i])
	}
}

func adxlValues(dst []float32, r *adxl345.Reading) {
	for i := range 3 {
		dst[i] = float32(r.Accel[i])
	}
}

// Live acquisition defaults.
const (
	DefaultLiveRate  = 50 // Hz
	DefaultFailLimit = 5  // consecutive failed reads before a source is unhealthy
	minBackoff       = 2 * time.Millisecond
	maxBackoff       = 500 * time.Millisecond
	liveQueue        = 8 // windows buffered for Next before the oldest is dropped
)

// liveParams is a parsed live-sensor spec.
type liveParams struct {
	kind          string
	bus           string
	addr          uint16
	rate          float64
	accelRange    int
	gyroRange     int
	failLimit     int
	window, hop   int
	warmupSamples int
	// pace scales the sample clock: 1 is real time, 0 reads as fast as
	// windows are taken (simulated chips only).
	pace float64
	sim  simParams // the simulated chip's feed, when bus is "sim"
}

func parseLiveSpec(s *spec, opt LoadOptions) (p liveParams, err error) {
	p, _, _, err = windowedSpec(s, opt, parseLiveOptions, func(p *liveParams, window, hop int) error {
		p.window, p.hop = window, hop
		wu, err := s.intOpt("warmup", int64(chunkWindows*window), 2, 10_000_000)
		if err != nil {
			return err
		}
		p.warmupSamples = int(wu)
		if p.bus == simBusName {
			if p.sim, err = parseSimParams(s, p); err != nil {
				return err
			}
		}
		return nil
	})
	return p, err
}

// parseLiveOptions reads the options that do not depend on the window.
func parseLiveOptions(s *spec) (liveParams, error) {
	p := liveParams{kind: s.kind, bus: s.arg, pace: 1}
	defAddr := int64(0x68)
	if s.kind == "adxl345" {
		defAddr = 0x53
	}
	addr, err := s.intOpt("addr", defAddr, 0, 0x7f)
	if err != nil {
		return p, err
	}
	p.addr = uint16(addr)
	if p.rate, err = s.floatOpt("rate", DefaultLiveRate, 1, 1000); err != nil {
		return p, err
	}
	p.accelRange = 2
	if v, ok := s.str("range"); ok {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "g"))
		if err != nil || (n != 2 && n != 4 && n != 8 && n != 16) {
			return p, s.errorf("range=%q is not 2g, 4g, 8g or 16g", v)
		}
		p.accelRange = n
	}
	if s.kind == "mpu6050" {
		g, err := s.intOpt("gyro", 250, 250, 2000)
		if err != nil {
			return p, err
		}
		if g != 250 && g != 500 && g != 1000 && g != 2000 {
			return p, s.errorf("gyro=%d is not 250, 500, 1000 or 2000 (°/s)", g)
		}
		p.gyroRange = int(g)
	}
	fl, err := s.intOpt("fail", DefaultFailLimit, 1, 1_000_000)
	if err != nil {
		return p, err
	}
	p.failLimit = int(fl)
	return p, nil
}

var hostInit = sync.OnceValue(func() error {
	_, err := host.Init()
	return err
})

func openLiveSpec(s *spec, opt LoadOptions) (Source, error) {
	p, err := parseLiveSpec(s, opt)
	if err != nil {
		return nil, err
	}
	var bus i2c.BusCloser
	if p.bus == simBusName {
		bus, err = openSimBus(s.raw, p, opt.Labels)
		if err != nil {
			return nil, err
		}
	} else {
		if err := hostInit(); err != nil {
			return nil, s.errorf("initialising periph host drivers: %v", err)
		}
		name := p.bus
		if name == "" {
			name, err = firstRealBus()
		}
		if err == nil {
			bus, err = i2creg.Open(name)
		}
		if err != nil {
			name := p.bus
			if name == "" {
				name = "(first bus)"
			}
			return nil, fmt.Errorf("sensors: spec %q: opening I²C bus %s: %w", s.raw, name, err)
		}
	}
	src, err := openLive(s.raw, p, bus, opt)
	if err != nil {
		bus.Close()
		return nil, err
	}
	src.closer = bus
	return src, nil
}

// firstRealBus names the first I²C bus that is not the simulated one:
// once that is registered it must not stand in for missing hardware.
func firstRealBus() (string, error) {
	for _, ref := range i2creg.All() {
		if ref.Name != simBusName {
			return ref.Name, nil
		}
	}
	return "", errors.New("no I²C bus found (is I²C enabled, and is /dev/i2c-* readable?); without a board, use bus sim")
}

// OpenBus opens a live-sensor spec (mpu6050 or adxl345) on a bus the
// caller owns; the spec's bus name is ignored and Close does not close bus.
func OpenBus(specStr string, bus i2c.Bus, opt LoadOptions) (Source, error) {
	s, err := parseSpec(specStr)
	if err != nil {
		return nil, err
	}
	if s.kind != "mpu6050" && s.kind != "adxl345" {
		return nil, s.errorf("OpenBus needs a live sensor spec (mpu6050 or adxl345), not %q", s.kind)
	}
	p, err := parseLiveSpec(s, opt)
	if err != nil {
		return nil, err
	}
	return openLive(s.raw, p, bus, opt)
}

// LiveChannels names the channels of each live sensor kind.
var LiveChannels = map[string][]string{
	"mpu6050": {"ax", "ay", "az", "gx", "gy", "gz"},
	"adxl345": {"ax", "ay", "az"},
}

// clock is the time of a live source's reading goroutine: the wall clock,
// or in tests one that moves only when the test moves it.
type clock interface {
	now() time.Time
	// sleep waits for d, or until stop is closed; it reports whether d
	// passed.
	sleep(d time.Duration, stop <-chan struct{}) bool
}

// realClock is the wall clock, with one timer for all of a reader's waits.
type realClock struct{ timer *time.Timer }

func (*realClock) now() time.Time { return time.Now() }

func (c *realClock) sleep(d time.Duration, stop <-chan struct{}) bool {
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d) // since Go 1.23 Reset also discards a stale expiry
	}
	select {
	case <-stop:
		c.timer.Stop()
		return false
	case <-c.timer.C:
		return true
	}
}

type liveItem struct {
	s   Sample
	err error
}

// liveSource reads a sensor on its own goroutine at a fixed rate.
type liveSource struct {
	spec   string
	dev    reader
	closer interface{ Close() error }
	p      liveParams
	period time.Duration
	labels *LabelBox

	clock     clock
	out       chan liveItem
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	sourceState // mu also guards norm
	norm        *Normalizer
}

func openLive(raw string, p liveParams, bus i2c.Bus, opt LoadOptions) (*liveSource, error) {
	var dev reader
	switch p.kind {
	case "mpu6050":
		d, err := mpu6050.New(bus, &mpu6050.Opts{Addr: p.addr, SampleRate: int(p.rate), AccelRange: mpu6050.AccelRange(p.accelRange), GyroRange: mpu6050.GyroRange(p.gyroRange)})
		if err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
		}
		dev = &chipReader[mpu6050.Reading, *mpu6050.Dev]{d: d, values: mpuValues}
	case "adxl345":
		d, err := adxl345.New(bus, &adxl345.Opts{Addr: p.addr, SampleRate: p.rate, Range: adxl345.Range(p.accelRange)})
		if err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
		}
		dev = &chipReader[adxl345.Reading, *adxl345.Dev]{d: d, values: adxlValues}
	}
	channels := len(LiveChannels[p.kind])
	l := &liveSource{
		spec:        raw,
		dev:         dev,
		p:           p,
		period:      time.Duration(float64(time.Second) / p.rate),
		labels:      opt.Labels,
		clock:       opt.clock,
		out:         make(chan liveItem, liveQueue),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		sourceState: sourceState{health: Health{Healthy: true, State: "warming up"}},
	}
	if l.clock == nil {
		l.clock = &realClock{}
	}
	if p.pace > 0 {
		l.period = time.Duration(float64(l.period) / p.pace)
	}
	var acc *normAccumulator
	norm, err := opt.fixedNorm(channels)
	if err != nil {
		return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
	}
	if norm != nil {
		l.norm = norm
		l.health.State = "ok"
	} else {
		acc = newNormAccumulator(channels)
	}
	go l.run(channels, acc)
	return l, nil
}

func (l *liveSource) run(channels int, acc *normAccumulator) {
	defer close(l.done)
	win := newWindower(channels, l.p.window, l.p.hop)
	buf := make([]float32, channels)
	start := l.clock.now()
	var slot int64 // next slot of the rate grid to fill
	var backoff time.Duration
	var lastGood time.Time // time of the last successful read
	// Windows restart after a gap of more than 2.5 periods; shorter
	// hiccups (one failed read retried, a scheduling delay) keep them.
	maxGap := l.period * 5 / 2
	warm := 0
	// A real chip samples on its own clock: reads follow a fixed grid, and
	// a reader that falls behind loses samples. A simulated chip has no
	// clock of its own: it is read a period after the last read (or at
	// once, unpaced) and waits for windows to be taken, so a slow machine
	// slows the simulation instead of losing what it plays.
	realTime := l.p.pace > 0 && l.p.bus != simBusName
	var lastRead time.Time
	for {
		wait := backoff
		switch {
		case wait > 0:
		case realTime:
			wait = start.Add(time.Duration(slot) * l.period).Sub(l.clock.now())
		case l.p.pace > 0 && !lastRead.IsZero():
			wait = lastRead.Add(l.period).Sub(l.clock.now())
		}
		if wait > 0 {
			if !l.clock.sleep(wait, l.stop) {
				return
			}
		} else {
			select {
			case <-l.stop:
				return
			default:
			}
		}
		err := l.dev.read(buf)
		now := l.clock.now()
		lastRead = now
		if errors.Is(err, io.EOF) || errors.Is(err, errStopSource) {
			// A simulated chip's recording ended, or cannot go on: the
			// source ends too, after the windows already queued.
			l.mu.Lock()
			l.health.Healthy, l.health.State = false, "ended"
			if err != io.EOF {
				l.health.LastError, l.health.LastErrorAt = err.Error(), now
			}
			l.mu.Unlock()
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			l.sendWait(liveItem{err: err})
			return
		}
		if err != nil {
			if backoff == 0 {
				backoff = minBackoff
			} else {
				backoff = min(2*backoff, maxBackoff)
			}
			l.failed(err, now)
			continue
		}
		cur := int64(now.Sub(start) / l.period)
		l.mu.Lock()
		if backoff > 0 {
			l.health.Retries++ // the read that succeeded was a retry
		}
		l.health.Samples++
		reading := l.health.Samples
		l.health.Consecutive = 0
		if !l.health.Healthy && l.health.State == "unhealthy" {
			l.health.Healthy = true
			l.health.State = "ok"
			if l.norm == nil {
				l.health.State = "warming up"
			}
		}
		if !realTime {
			// no sample clock to be late for
		} else if cur > slot {
			l.health.Missed += uint64(cur - slot)
			slot = cur
		} else if now.Sub(start.Add(time.Duration(slot)*l.period)) > l.period/2 {
			l.health.Late++
		}
		norm := l.norm
		l.mu.Unlock()
		if realTime && !lastGood.IsZero() && now.Sub(lastGood) > maxGap {
			win.reset() // a window must not span the gap
		}
		label, labelSeq := Label{Index: -1}, uint64(0)
		if l.labels != nil {
			label, labelSeq = l.labels.Current(now)
		}
		lastGood = now
		backoff = 0
		slot++

		if norm == nil {
			acc.add(buf)
			warm++
			if warm >= l.p.warmupSamples {
				l.mu.Lock()
				l.norm = acc.normalizer()
				l.health.State = "ok"
				l.mu.Unlock()
			}
		}
		if !win.pushTagged(buf, labelSeq) || norm == nil {
			continue
		}
		sh := Shape{Channels: channels, Height: 1, Width: l.p.window}
		smp := Sample{Data: make([]float32, sh.Size()), Shape: sh, Label: -1, Time: now, Reading: reading}
		win.read(smp.Data)
		norm.Apply(smp.Data)
		// A window is labelled only when one label held from its first
		// sample to its last.
		if first, last := win.spanTags(); first != last {
			smp.Straddles = true
		} else if label.Index >= 0 {
			smp.Label, smp.LabelName = label.Index, label.Name
		}
		if realTime {
			l.send(liveItem{s: smp})
		} else if !l.sendWait(liveItem{s: smp}) {
			return
		}
	}
}

// sendWait queues an item, waiting for room: a simulated source runs at
// most at the speed its windows are taken. It reports false when the
// source closed.
func (l *liveSource) sendWait(it liveItem) bool {
	select {
	case l.out <- it:
		return true
	case <-l.stop:
		return false
	}
}

// failed records a failed read; the source turns unhealthy after
// failLimit consecutive failures, and Next reports that once.
func (l *liveSource) failed(err error, now time.Time) {
	l.mu.Lock()
	if l.health.Consecutive > 0 {
		l.health.Retries++
	}
	l.health.Errors++
	l.health.Consecutive++
	l.health.LastError = err.Error()
	l.health.LastErrorAt = now
	turned := l.health.Healthy && l.health.Consecutive >= l.p.failLimit
	if turned {
		l.health.Healthy = false
		l.health.State = "unhealthy"
	}
	n := l.health.Consecutive
	l.mu.Unlock()
	if turned {
		l.send(liveItem{err: fmt.Errorf("%w: %s: %d consecutive failed reads (retrying): %w", ErrUnhealthy, l.spec, n, err)})
	}
}

// send queues an item; when Next lags, the oldest item is dropped.
func (l *liveSource) send(it liveItem) {
	for {
		select {
		case l.out <- it:
			return
		default:
		}
		select {
		case old := <-l.out:
			if old.err == nil {
				l.mu.Lock()
				l.health.Dropped++
				l.mu.Unlock()
			}
		default:
		}
	}
}

func (l *liveSource) Next(ctx context.Context) (Sample, error) {
	select {
	case <-l.stop:
		return Sample{}, ErrClosed
	default:
	}
	select {
	case it := <-l.out:
		return l.take(it)
	case <-l.done:
		// The reader ended (a recording played out): what it queued
		// first, then the end again for every later call.
		select {
		case it := <-l.out:
			return l.take(it)
		default:
			return Sample{}, io.EOF
		}
	case <-l.stop:
		return Sample{}, ErrClosed
	case <-ctx.Done():
		return Sample{}, ctx.Err()
	}
}

func (l *liveSource) take(it liveItem) (Sample, error) {
	if it.err != nil {
		return Sample{}, it.err
	}
	l.mu.Lock()
	l.health.Windows++
	l.mu.Unlock()
	return it.s, nil
}

// LabelBox is where the source takes its labels from.
func (l *liveSource) LabelBox() *LabelBox { return l.labels }

// Classes are the classes the label box has named so far.
func (l *liveSource) Classes() []string {
	if l.labels == nil {
		return nil
	}
	return l.labels.Classes()
}

func (l *liveSource) ChannelNames() []string { return LiveChannels[l.p.kind] }

func (l *liveSource) Normalizer() *Normalizer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.norm
}

func (l *liveSource) String() string { return l.dev.String() }

// Close stops acquisition, waits for the reading goroutine, puts the chip
// to sleep and closes the bus if the source opened it.
func (l *liveSource) Close() error {
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		var errs []error
		if err := l.dev.halt(); err != nil {
			errs = append(errs, fmt.Errorf("sensors: %s: halting: %w", l.spec, err))
		}
		if l.closer != nil {
			if err := l.closer.Close(); err != nil {
				errs = append(errs, fmt.Errorf("sensors: %s: closing bus: %w", l.spec, err))
			}
		}
		l.mu.Lock()
		l.markClosed()
		l.mu.Unlock()
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
