package sensors

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"
)

// Sample is one example from a streaming Source: a window of a time series
// or one image, standardised like the corresponding Dataset example.
type Sample struct {
	Data      []float32 // NHWC, len Shape.Size(); owned by the caller
	Shape     Shape
	Label     int    // index into Classes(), -1 = none (prediction only)
	LabelName string // "" when unlabelled; set even when not among Classes()
	Time      time.Time
	// Straddles marks a live window during which the label changed: it
	// belongs to no one class, so it is predicted but not trained.
	Straddles bool
	// Reading counts the sensor readings of a live source up to the last
	// one of this window (1 for the first reading).
	Reading uint64
}

// Source is a stream of samples for the daemon: live sensors, recordings
// replayed, or the simulation.
type Source interface {
	// Next returns the next sample. It blocks until one is ready, ctx is
	// done (returning ctx.Err()) or the source is closed (ErrClosed); a
	// replayed recording ends with io.EOF. A live source returns an error
	// wrapping ErrUnhealthy once each time it turns unhealthy; it keeps
	// retrying, and later calls return samples again when it recovers.
	Next(ctx context.Context) (Sample, error)
	Classes() []string
	Health() Health
	Close() error
}

var (
	// ErrClosed is returned by Next after Close.
	ErrClosed = errors.New("sensors: source closed")
	// ErrUnhealthy marks the error Next returns when a live source has
	// failed too many reads in a row.
	ErrUnhealthy = errors.New("sensors: source unhealthy")
)

// Health is a snapshot of a source's state and counters.
type Health struct {
	Healthy bool
	State   string // "ok", "warming up", "unhealthy", "closed", "ended"
	Samples uint64 // sensor samples read successfully
	Windows uint64 // samples (windows) produced
	// Late counts samples read more than half a period after their slot;
	// Missed counts slots of the sample-rate grid that passed with no
	// sample (the reader fell behind, or reads failed). A window restarts
	// after more than 2.5 periods without a good read, so it never spans
	// an outage; shorter hiccups are counted here but keep the window.
	Late, Missed uint64
	Dropped      uint64 // windows discarded because Next was not called in time
	Errors       uint64 // failed reads
	Retries      uint64 // reads retried after a failure
	Consecutive  int    // current run of failed reads
	LastError    string
	LastErrorAt  time.Time
}

// Open opens a streaming source (see the package documentation for specs).
// Live sensors read at their rate on a goroutine stopped by Close; window
// labels come from opt.Labels, class indices from opt.Classes (or, if nil,
// the classes opt.Labels was made with). Without opt.Norm a live source
// learns its standardisation from its first warmup=N samples (default ten
// windows) and emits no window before. Recordings (mnist:, csv:) replay their
// examples in order and end with io.EOF (loop=1 repeats forever;
// split=train|test|all selects a part, default all). synthetic-imu streams
// forever, stamped with the simulated activity, paced at its rate unless
// pace=0.
func Open(specStr string, opt LoadOptions) (Source, error) {
	s, err := parseSpec(specStr)
	if err != nil {
		return nil, err
	}
	switch s.kind {
	case "mnist", "csv":
		return openReplay(s, opt)
	case "synthetic-imu":
		return openSynthetic(s, opt)
	case "mpu6050", "adxl345":
		return openLiveSpec(s, opt)
	}
	return nil, s.errorf("unknown source kind %q (want %s)", s.kind, strings.Join(knownKinds, ", "))
}

// sourceState is a Source's health and whether it is closed, guarded by
// mu. Its Health and Close serve the sources that need nothing more.
type sourceState struct {
	mu     sync.Mutex
	closed bool
	health Health
}

func (s *sourceState) Health() Health { s.mu.Lock(); defer s.mu.Unlock(); return s.health }

// Close marks the source closed: Next then returns ErrClosed.
func (s *sourceState) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markClosed()
	return nil
}

// markClosed is Close with mu held.
func (s *sourceState) markClosed() {
	s.closed = true
	s.health.Healthy, s.health.State = false, "closed"
}

// lockOpen starts a Next that runs with mu held: it returns ctx's error
// or ErrClosed, or nil with mu locked.
func (s *sourceState) lockOpen(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// replaySource streams a Dataset's examples in order.
type replaySource struct {
	sourceState // mu also serialises Next
	ds          Dataset
	next        int
	loop        bool
}

func openReplay(s *spec, opt LoadOptions) (Source, error) {
	loop, err := s.intOpt("loop", 0, 0, 1)
	if err != nil {
		return nil, err
	}
	split := SplitAll
	if v, ok := s.str("split"); ok {
		switch v {
		case "all":
		case "train":
			split = SplitTrain
		case "test":
			split = SplitTest
		default:
			return nil, s.errorf("split=%q is not train, test or all", v)
		}
	}
	if s.kind == "mnist" {
		// Read the IDX files as a stream: holding the images would cost
		// the daemon tens of MiB for examples it visits once per pass.
		return openMNISTStream(s, split, loop == 1, opt)
	}
	ds, err := loadCSVSpec(s, split, opt)
	if err != nil {
		return nil, err
	}
	return &replaySource{ds: ds, loop: loop == 1, sourceState: sourceState{health: Health{Healthy: true, State: "ok"}}}, nil
}

func (r *replaySource) Next(ctx context.Context) (Sample, error) {
	if err := r.lockOpen(ctx); err != nil {
		return Sample{}, err
	}
	defer r.mu.Unlock()
	if r.next >= r.ds.Len() {
		if !r.loop {
			r.health.State = "ended"
			return Sample{}, io.EOF
		}
		r.next = 0
	}
	sh := r.ds.Shape()
	smp := Sample{Data: make([]float32, sh.Size()), Shape: sh, Time: time.Now()}
	smp.Label = r.ds.Example(r.next, smp.Data)
	if smp.Label >= 0 {
		smp.LabelName = r.ds.Classes()[smp.Label]
	}
	r.next++
	r.health.Samples++
	r.health.Windows++
	return smp, nil
}

func (r *replaySource) Classes() []string       { return r.ds.Classes() }
func (r *replaySource) Normalizer() *Normalizer { return NormalizerOf(r.ds) }
func (r *replaySource) BytePixels() bool        { return BytePixelsOf(r.ds) }
func (r *replaySource) Dataset() Dataset        { return r.ds }
func (r *replaySource) ChannelNames() []string  { return ChannelNamesOf(r.ds) }

// windower turns a stream of samples into windows of `window` samples
// every `hop` samples, using a ring buffer (no allocation per sample).
type windower struct {
	c, window, hop int
	ring           []float32
	head           int      // next slot to write
	filled         int      // samples in the ring (≤ window)
	since          int      // samples since the last window
	tags           []uint64 // per sample, for pushTagged (nil otherwise)
}

func newWindower(channels, window, hop int) *windower {
	return &windower{c: channels, window: window, hop: hop, ring: make([]float32, channels*window)}
}

// push adds one sample; it reports whether a window is ready.
func (w *windower) push(sample []float32) bool {
	copy(w.ring[w.head*w.c:(w.head+1)*w.c], sample)
	w.head = (w.head + 1) % w.window
	if w.filled < w.window {
		w.filled++
		if w.filled == w.window {
			w.since = 0
			return true
		}
		return false
	}
	w.since++
	if w.since == w.hop {
		w.since = 0
		return true
	}
	return false
}

// pushTagged is push with a tag kept per sample (the label's change count),
// so that spanTags tells whether one label held over the whole window.
func (w *windower) pushTagged(sample []float32, tag uint64) bool {
	if w.tags == nil {
		w.tags = make([]uint64, w.window)
	}
	w.tags[w.head] = tag
	return w.push(sample)
}

// spanTags returns the tags of the oldest and the newest sample of the
// current (full) window.
func (w *windower) spanTags() (oldest, newest uint64) {
	return w.tags[w.head], w.tags[(w.head+w.window-1)%w.window]
}

// read copies the current window, oldest sample first, into dst.
func (w *windower) read(dst []float32) {
	n := copy(dst, w.ring[w.head*w.c:])
	copy(dst[n:], w.ring[:w.head*w.c])
}

// reset forgets the buffered samples (after a gap in the data).
func (w *windower) reset() { w.filled, w.since, w.head = 0, 0, 0 }

// ChannelNamesOf returns the channel names of a Dataset or Source of time
// series (e.g. ax ay az gx gy gz), or nil when it has none (MNIST).
func ChannelNamesOf(v any) []string {
	if c, ok := v.(interface{ ChannelNames() []string }); ok {
		return c.ChannelNames()
	}
	return nil
}

// BytePixelsOf reports whether the values of a Dataset or Source are all
// byte/255, as MNIST pixels are: a replay buffer keeps such values in one
// byte each without loss.
func BytePixelsOf(v any) bool {
	b, ok := v.(interface{ BytePixels() bool })
	return ok && b.BytePixels()
}

// NormalizerOf returns the per-channel standardisation applied by a Dataset
// or Source, or nil when it does not standardise (MNIST) or has not learned
// it yet (a live source still warming up). Training saves it with the model.
func NormalizerOf(v any) *Normalizer {
	if n, ok := v.(interface{ Normalizer() *Normalizer }); ok {
		return n.Normalizer()
	}
	return nil
}
