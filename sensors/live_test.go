package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bnnd/bnnd/sensors/mpu6050"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
)

func init() {
	// The MPU-6050 driver waits 100 ms after reset; the simulated chip does not need it.
	mpu6050.Sleep = func(time.Duration) {}
}

// fakeMPU is a test double of i2c.Bus that behaves like an MPU-6050 at
// 0x68: registers can be written, WHO_AM_I reads 0x68, and each 14-byte
// burst from ACCEL_XOUT_H returns ax = the number of bursts served so far
// (so tests can see which samples a window holds). fail decides, for each
// burst attempt (counted from 0), whether it fails.
type fakeMPU struct {
	mu       sync.Mutex
	regs     [128]byte
	attempts int
	served   int
	fail     func(attempt int) error
}

var errBusNACK = errors.New("i2c: remote I/O error")

func (f *fakeMPU) String() string                  { return "fake-i2c" }
func (f *fakeMPU) SetSpeed(physic.Frequency) error { return nil }
func (f *fakeMPU) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addr != 0x68 {
		return errBusNACK
	}
	if len(w) == 0 {
		return errors.New("fake: empty write")
	}
	reg := w[0]
	if len(w) == 2 {
		f.regs[reg] = w[1]
		return nil
	}
	switch {
	case reg == 0x75 && len(r) == 1:
		r[0] = 0x68
	case reg == 0x3B && len(r) == 14:
		a := f.attempts
		f.attempts++
		if f.fail != nil {
			if err := f.fail(a); err != nil {
				return err
			}
		}
		f.served++
		clear(r)
		binary.BigEndian.PutUint16(r, uint16(f.served))
	default:
		return errBusNACK
	}
	return nil
}

func (f *fakeMPU) counts() (attempts, served int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts, f.served
}

// identity keeps raw SI values so tests can read the ax sample counter.
var identity6 = &Normalizer{Mean: make([]float32, 6), Std: []float32{1, 1, 1, 1, 1, 1}}

const axLSB = 9.80665 / 16384 // m/s² per LSB at ±2 g

func counterOf(v float32) int { return int(float64(v)/axLSB + 0.5) }

// waitLimit bounds the tests' waits for the reader. Inside a synctest
// bubble it is fake time, so a reader that never goes to sleep fails at
// once rather than hanging.
const waitLimit = 20 * time.Second

// fakeClock is a live source's clock in tests: its time moves only when
// the test moves it, and the test hears each time the reader goes to
// sleep and for how long, so that retries, backoff and missed slots are
// driven and counted exactly.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	sleeper *fakeSleep    // the reader's current sleep; nil while it works
	asleep  chan struct{} // cap 1: the reader went to sleep
}

type fakeSleep struct {
	d     time.Duration
	until time.Time
	wake  chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), asleep: make(chan struct{}, 1)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(d time.Duration, stop <-chan struct{}) bool {
	c.mu.Lock()
	if c.sleeper != nil {
		c.mu.Unlock()
		panic("fakeClock: two goroutines sleep on one clock")
	}
	s := &fakeSleep{d: d, until: c.t.Add(d), wake: make(chan struct{})}
	c.sleeper = s
	c.mu.Unlock()
	select {
	case c.asleep <- struct{}{}:
	default:
	}
	select {
	case <-s.wake:
		return true
	case <-stop:
		c.mu.Lock()
		if c.sleeper == s {
			c.sleeper = nil
		}
		c.mu.Unlock()
		return false
	}
}

// advance moves the clock on by d (a read that takes that long), waking
// the reader if that ends its sleep.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	if s := c.sleeper; s != nil && !c.t.Before(s.until) {
		c.sleeper = nil
		close(s.wake)
	}
}

// wakeLocked ends the reader's sleep at the time it asked for.
func (c *fakeClock) wakeLocked(s *fakeSleep) {
	if s.until.After(c.t) {
		c.t = s.until
	}
	c.sleeper = nil
	close(s.wake)
}

// slept waits until the reader sleeps and returns how long it asked for.
func (c *fakeClock) slept(t *testing.T) time.Duration {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		s := c.sleeper
		c.mu.Unlock()
		if s != nil {
			return s.d
		}
		select {
		case <-c.asleep:
		case <-deadline:
			t.Fatalf("the reader did not go to sleep within %v", waitLimit)
		}
	}
}

// step lets the reader sleep its next sleep to the end, and waits until
// it has read and gone to sleep again. It returns the sleep.
func (c *fakeClock) step(t *testing.T) time.Duration {
	t.Helper()
	d := c.slept(t)
	c.mu.Lock()
	c.wakeLocked(c.sleeper) // only the reader sets or clears it while asleep
	c.mu.Unlock()
	c.slept(t)
	return d
}

// nextWindow lets the reader read, one sleep at a time, until it has
// queued a window, and returns that window: the test sees the source as
// it is right after the read that made the window.
func nextWindow(t *testing.T, src Source, c *fakeClock) Sample {
	t.Helper()
	queue := src.(*liveSource).out
	c.slept(t) // asleep, the reader has queued all it made
	for reads := 0; len(queue) == 0; reads++ {
		if reads == 1000 {
			t.Fatalf("no window in %d reads: %+v", reads, src.Health())
		}
		c.step(t)
	}
	s, err := src.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The tests of a live source that check that Close leaves no goroutine run
// in a synctest bubble: Test returns only once every goroutine started in
// it has exited, and fails if one is left blocked.

func TestLiveIntermittentFailures(t *testing.T) {
	synctest.Test(t, testLiveIntermittentFailures)
}

func testLiveIntermittentFailures(t *testing.T) {
	bus := &fakeMPU{fail: func(a int) error {
		if a%9 == 8 {
			return errBusNACK
		}
		return nil
	}}
	labels := NewLabelBox("still", "walk")
	clock := newFakeClock()
	if _, err := labels.Set("walk", 0, clock.now()); err != nil {
		t.Fatal(err)
	}
	src, err := OpenBus("mpu6050,rate=500,window=6,hop=3,fail=3", bus, LoadOptions{Norm: identity6, Labels: labels, clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() }) // a failed test leaves no reader behind
	for i := 0; i < 6; i++ {
		s := nextWindow(t, src, clock)
		if s.Shape != (Shape{6, 1, 6}) || s.Label != 1 || s.LabelName != "walk" {
			t.Fatalf("window %d: shape %v label %d %q", i, s.Shape, s.Label, s.LabelName)
		}
		// Every ninth read fails and is retried 2 ms later (one period):
		// windows keep flowing; its six ax counters are consecutive.
		first := counterOf(s.Data[0])
		for k := 1; k < 6; k++ {
			if got := counterOf(s.Data[k*6]); got != first+k {
				t.Fatalf("window %d spans a gap: counters %d then %d at step %d", i, first, got, k)
			}
		}
	}
	if got := strings.Join(src.Classes(), ","); got != "still,walk" {
		t.Errorf("classes from the label box: %q", got)
	}
	h := src.Health()
	if !h.Healthy || h.Errors == 0 || h.Retries < h.Errors || h.Samples == 0 || !strings.Contains(h.LastError, "remote I/O error") {
		t.Errorf("health after intermittent failures: %+v", h)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if bus.regs[0x6B] != 0x41 {
		t.Errorf("Close did not put the chip to sleep: PWR_MGMT_1 = %#x", bus.regs[0x6B])
	}
}

func TestLiveFailsForeverThenRecovers(t *testing.T) {
	synctest.Test(t, testLiveFailsForeverThenRecovers)
}

func testLiveFailsForeverThenRecovers(t *testing.T) {
	var broken sync.Mutex
	down := true
	// Three good reads (less than a window), then the device is gone.
	bus := &fakeMPU{fail: func(attempt int) error {
		broken.Lock()
		defer broken.Unlock()
		if down && attempt >= 3 {
			return errBusNACK
		}
		return nil
	}}
	clock := newFakeClock()
	src, err := OpenBus("mpu6050,rate=200,window=4,hop=4,fail=3", bus, LoadOptions{Norm: identity6, clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() }) // a failed test leaves no reader behind
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// The first read at once, two more a period (5 ms) apart, the fourth
	// fails and is retried after 2 ms, then 4 ms: the third failure in a
	// row turns the source unhealthy.
	for i, want := range []time.Duration{5, 5, 5, 2, 4} {
		if d := clock.step(t); d != want*time.Millisecond {
			t.Fatalf("wait %d before a read: %v, want %v", i, d, want*time.Millisecond)
		}
	}
	_, err = src.Next(ctx)
	if !errors.Is(err, ErrUnhealthy) || !errors.Is(err, errBusNACK) || !strings.Contains(err.Error(), "mpu6050") {
		t.Fatalf("Next on a dead bus: %v", err)
	}
	h := src.Health()
	if h.Healthy || h.State != "unhealthy" || h.Consecutive != 3 || h.Samples != 3 {
		t.Fatalf("health on a dead bus: %+v", h)
	}
	// It keeps retrying, with bounded backoff: each wait twice the last
	// up to 500 ms, so over 1.5 s a few attempts (not thousands), and at
	// least two.
	a0, _ := bus.counts()
	prev, slept := 4*time.Millisecond, time.Duration(0)
	for slept < 1500*time.Millisecond {
		d := clock.step(t)
		if want := min(2*prev, maxBackoff); d != want {
			t.Fatalf("backoff %v after %v, want %v", d, prev, want)
		}
		prev, slept = d, slept+d
	}
	a1, _ := bus.counts()
	if n := a1 - a0; n < 2 || n > 60 {
		t.Errorf("%d read attempts in %v on a dead bus; want bounded retries", n, slept)
	}
	if prev != maxBackoff {
		t.Errorf("backoff after %v on a dead bus is %v, want the ceiling %v", slept, prev, maxBackoff)
	}
	// Next does not block forever: it honours its context.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = src.Next(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next on an unhealthy source with a 50 ms context: %v", err)
	}
	// The bus comes back: after the last backoff, four reads make a window
	// and the source is healthy.
	broken.Lock()
	down = false
	broken.Unlock()
	for range 4 {
		clock.step(t)
	}
	s, err := src.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Label != -1 || s.LabelName != "" {
		t.Errorf("no label box: got label %d %q", s.Label, s.LabelName)
	}
	// The window restarted after the outage: it holds the readings from
	// the first after it (the fourth), none of the three before.
	if c := counterOf(s.Data[0]); c != 4 {
		t.Errorf("first window after the outage starts at reading %d, want 4", c)
	}
	if h := src.Health(); !h.Healthy || h.Consecutive != 0 || h.Missed == 0 {
		t.Errorf("health after recovery: %+v", h)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLiveCloseUnblocksNextAndDropsWhenSlow(t *testing.T) {
	synctest.Test(t, testLiveCloseUnblocksNextAndDropsWhenSlow)
}

func testLiveCloseUnblocksNextAndDropsWhenSlow(t *testing.T) {
	bus := &fakeMPU{}
	clock := newFakeClock()
	src, err := OpenBus("mpu6050,rate=1000,window=2,hop=1", bus, LoadOptions{Raw: true, clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() }) // a failed test leaves no reader behind
	// Nobody calls Next for a while: old windows are dropped, not queued.
	// A window per read from the second on, 8 queued: the 14th read drops
	// the fifth.
	reads := 1 // the first read needs no wait
	for src.Health().Dropped < 5 {
		if reads == 100 {
			t.Fatalf("no window dropped in %d reads while Next was not called: %+v", reads, src.Health())
		}
		clock.step(t)
		reads++
	}
	if h := src.Health(); reads != 14 || h.Dropped != 5 {
		t.Errorf("%d dropped after %d reads; want 5 after 14", h.Dropped, reads)
	}
	s, err := src.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Windows start at samples 1, 2, 3, ...: with 5 dropped the oldest
	// still queued starts at 6.
	if c := counterOf(s.Data[0]); c != 6 {
		t.Errorf("oldest queued window starts at sample %d, want 6: the oldest should have been dropped", c)
	}
	// A Next blocked on a source that produces nothing returns on Close.
	bus.mu.Lock()
	bus.fail = func(int) error { return errBusNACK }
	bus.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := src.Next(context.Background()); err != nil && !errors.Is(err, ErrUnhealthy) {
				errc <- err
				return
			}
		}
	}()
	// Every other goroutine of the bubble is blocked: the reader asleep,
	// the one above in Next with the queue drained.
	synctest.Wait()
	select {
	case err := <-errc:
		t.Fatalf("Next returned %v before Close", err)
	default:
	}
	src.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Next returned %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close did not unblock Next")
	}
}

func TestLiveWarmupLearnsNormalizer(t *testing.T) {
	src, err := OpenBus("mpu6050,rate=1000,window=4,hop=2,warmup=20", &fakeMPU{}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if NormalizerOf(src) != nil {
		// It may already have warmed up on a fast machine; only check it is set later.
		t.Log("normalizer learned before the first Next")
	}
	s, err := src.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := NormalizerOf(src)
	if n == nil || n.Channels() != 6 {
		t.Fatalf("normalizer after warm-up: %+v", n)
	}
	// ax is the sample counter, standardised with the warm-up mean (10.5
	// counts) and std (5.77 counts); the first window ends after warm-up.
	if m, sd := float64(n.Mean[0])/axLSB, float64(n.Std[0])/axLSB; math.Abs(m-10.5) > 0.01 || math.Abs(sd-5.766) > 0.01 {
		t.Errorf("warm-up mean %.3f std %.3f counts, want 10.5 and 5.766", m, sd)
	}
	if c := float64(s.Data[3*6])*float64(n.Std[0])/axLSB + float64(n.Mean[0])/axLSB; c < 20.5 {
		t.Errorf("first window ends at counter %.1f, inside the warm-up", c)
	}
	if n.Std[3] != 1 { // gyro x never moves: centred, not scaled
		t.Errorf("constant channel std %v, want 1", n.Std[3])
	}
}

func TestOpenErrors(t *testing.T) {
	cases := map[string]string{
		"mpu6050,range=3g":         `range="3g" is not`,
		"mpu6050,gyro=300":         "gyro=300 is not",
		"mpu6050,addr=0x300":       "addr=768 out of range",
		"mpu6050,addr=0x50":        "0x50",
		"adxl345,gyro=250":         "unknown option(s) gyro",
		"mpu6050,fail=0":           "fail=0 out of range",
		"synthetic-imu,pace=2":     "pace=2 out of range",
		"mnist:/nowhere,loop=1":    "none of",
		"mnist:/nowhere,split=dev": `split="dev" is not`,
		"bogus":                    "unknown source kind",
	}
	for s, want := range cases {
		var err error
		if strings.HasPrefix(s, "mpu6050") || strings.HasPrefix(s, "adxl345") {
			_, err = OpenBus(s, &fakeMPU{}, LoadOptions{})
		} else {
			_, err = Open(s, LoadOptions{})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", s, err, want)
		}
	}
	if _, err := OpenBus("adxl345", &fakeMPU{}, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "0x53") {
		t.Errorf("adxl345 on a bus without one: %v", err)
	}
}

func TestLabelBox(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var free LabelBox
	if l, _ := free.Current(now); l.Index != -1 || l.Name != "" {
		t.Errorf("zero box has label %+v", l)
	}
	l, err := free.Set("anything", 0, now)
	if err != nil || !l.NewClass || l.Index != 0 {
		t.Fatalf("Set on a zero box: %+v, %v", l, err)
	}
	if l, _ := free.Current(now); l.Name != "anything" || l.Index != 0 {
		t.Errorf("Current = %+v", l)
	}
	b := NewLabelBox("walk", "run")
	for _, bad := range []string{"swim", " walk", "a\x00b", "a\nb", strings.Repeat("x", 65)} {
		if _, err := b.Set(bad, 0, now); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if _, err := b.Set("swim", 0, now); !errors.Is(err, ErrUnknownClass) {
		t.Errorf("a name outside fixed classes: %v", err)
	}
	if l, err := b.Set("run", 0, now); err != nil || l.Index != 1 || l.NewClass {
		t.Fatalf("Set(run) = %+v, %v", l, err)
	}
	if _, err := b.Set("none", 0, now); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Current(now); l.Index != -1 {
		t.Error(`"none" did not clear the label`)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				b.Set([]string{"walk", "run", ""}[j%3], 0, now)
				b.Current(now)
			}
		}()
	}
	wg.Wait()
}

// New names become classes in the order they come, up to the limit; the
// error past it names the limit.
func TestLabelBoxGrows(t *testing.T) {
	now := time.Now()
	b := NewGrowingLabelBox([]string{"idle"}, 3)
	for i, name := range []string{"wave", "idle", "knock"} {
		l, err := b.Set(name, 0, now)
		if err != nil {
			t.Fatalf("Set(%q): %v", name, err)
		}
		want := []int{1, 0, 2}[i]
		if l.Index != want || l.NewClass != (name != "idle") {
			t.Errorf("Set(%q) = %+v, want index %d", name, l, want)
		}
	}
	if got := b.Classes(); !slices.Equal(got, []string{"idle", "wave", "knock"}) {
		t.Errorf("classes %q", got)
	}
	_, err := b.Set("jump", 0, now)
	if !errors.Is(err, ErrClassLimit) || !strings.Contains(err.Error(), "3 classes") {
		t.Errorf("a fourth class with limit 3: %v", err)
	}
	if l, _ := b.Current(now); l.Name != "knock" {
		t.Errorf("a refused label changed the current one to %+v", l)
	}
	for _, bad := range []struct {
		name string
		hold time.Duration
	}{{"none", time.Second}, {"wave", -time.Second}, {"wave", MaxLabelHold + 1}, {"none ", 0}} {
		if _, err := b.Set(bad.name, bad.hold, now); err == nil {
			t.Errorf("Set(%q, %v) accepted", bad.name, bad.hold)
		}
	}
}

// A timed label clears itself at its time, and that counts as a change.
func TestLabelBoxHold(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := NewGrowingLabelBox(nil, 4)
	changed := b.Changed()
	l, err := b.Set("wave", 10*time.Second, now)
	if err != nil || !l.Until.Equal(now.Add(10*time.Second)) {
		t.Fatalf("Set = %+v, %v", l, err)
	}
	<-changed
	cur, seq := b.Current(now.Add(9 * time.Second))
	if cur.Name != "wave" {
		t.Fatalf("label before its time: %+v", cur)
	}
	cur, seq2 := b.Current(now.Add(10 * time.Second))
	if cur.Name != "" || cur.Index != -1 || seq2 == seq {
		t.Errorf("label at its time: %+v, seq %d then %d", cur, seq, seq2)
	}
	select {
	case <-changed:
	default:
		t.Error("the label clearing itself was not signalled")
	}
	// Setting the same label again is no change; another is.
	b.Set("wave", 0, now)
	_, s1 := b.Current(now)
	b.Set("wave", 0, now)
	_, s2 := b.Current(now)
	b.Set("tap", 0, now)
	_, s3 := b.Current(now)
	if s1 != s2 || s3 == s2 {
		t.Errorf("change counts %d %d %d", s1, s2, s3)
	}
}

// A live window is labelled only when one label held over all its samples;
// windows over a change are marked, never labelled.
func TestLiveWindowLabelsFollowTime(t *testing.T) {
	labels := NewGrowingLabelBox(nil, 4)
	// The sample with counter c is read at attempt c-1, and a label set
	// during that read applies to it: walk covers samples 31..60, run
	// 81 on.
	bus := &fakeMPU{fail: func(a int) error {
		switch a {
		case 30:
			labels.Set("walk", 0, time.Now())
		case 60:
			labels.Set("none", 0, time.Now())
		case 80:
			labels.Set("run", 0, time.Now())
		}
		return nil
	}}
	src, err := OpenBus("mpu6050,rate=1000,window=8,hop=2", bus, LoadOptions{Norm: identity6, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var labelled, straddling int
	for {
		s, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first := counterOf(s.Data[0])
		last := first + 7
		if first > 120 {
			break
		}
		in := func(lo, hi int) bool { return first >= lo && last <= hi }
		want, straddles := -1, false
		switch {
		case in(31, 60):
			want = 0
		case in(81, 1<<30):
			want = 1
		case in(1, 30), in(61, 80):
		default:
			straddles = true
		}
		if s.Label != want || s.Straddles != straddles {
			t.Errorf("window of samples %d..%d: label %d %q, straddles %v; want label %d, straddles %v", first, last, s.Label, s.LabelName, s.Straddles, want, straddles)
		}
		labelled += b2i(s.Label >= 0)
		straddling += b2i(s.Straddles)
	}
	if labelled == 0 || straddling == 0 {
		t.Errorf("%d labelled and %d straddling windows: the test saw too few", labelled, straddling)
	}
	if got := src.Classes(); !slices.Equal(got, []string{"walk", "run"}) {
		t.Errorf("source classes %q", got)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestProbe(t *testing.T) {
	found := Probe(&fakeMPU{})
	if len(found) != 1 || found[0].Addr != 0x68 || found[0].Kind != "mpu6050" || found[0].Chip != "MPU-6050" {
		t.Fatalf("Probe = %+v, want one MPU-6050 at 0x68", found)
	}
	if s := found[0].String(); !strings.Contains(s, "0x68 MPU-6050") {
		t.Errorf("String = %q", s)
	}
	if f := Probe(&idBus{id: 0x11}); len(f) != 4 || f[0].Kind != "" || !strings.Contains(f[0].Note, "DS3231") {
		t.Errorf("unknown devices: %+v", f)
	}
}

// idBus answers every read at every address with one id byte.
type idBus struct{ id byte }

func (b *idBus) String() string                  { return "id-bus" }
func (b *idBus) SetSpeed(physic.Frequency) error { return nil }
func (b *idBus) Tx(addr uint16, w, r []byte) error {
	for i := range r {
		r[i] = b.id
	}
	return nil
}

// A slow bus (a read that stalls for two periods) is counted as missed
// slots, without failing or stopping the windows.
func TestLiveStallsAreCounted(t *testing.T) {
	clock := newFakeClock()
	bus := &fakeMPU{fail: func(attempt int) error {
		if attempt%10 == 5 {
			clock.advance(10 * time.Millisecond) // two periods at 200 Hz
		}
		return nil
	}}
	src, err := OpenBus("mpu6050,rate=200,window=8,hop=8", bus, LoadOptions{Raw: true, clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 0; i < 5; i++ {
		nextWindow(t, src, clock)
	}
	h := src.Health()
	if h.Missed == 0 || h.Late+h.Missed < 3 || h.Errors != 0 || !h.Healthy {
		t.Errorf("health with stalls: %+v", h)
	}
}

// closableMPU is a fakeMPU registered in periph's I²C registry.
type closableMPU struct {
	fakeMPU
	closed chan struct{}
}

func (c *closableMPU) Close() error { close(c.closed); return nil }

func TestScanAndOpenThroughRegistry(t *testing.T) {
	bus := &closableMPU{closed: make(chan struct{})}
	opened := 0
	err := i2creg.Register("bnnd-test-bus", []string{"bnnd-test-alias"}, -1, func() (i2c.BusCloser, error) {
		opened++
		if opened == 1 {
			// Scan closes what it opens: hand it a throwaway bus.
			return &closableMPU{closed: make(chan struct{})}, nil
		}
		return bus, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer i2creg.Unregister("bnnd-test-bus")
	buses, err := Scan("bnnd-test-alias")
	if err != nil {
		t.Fatal(err)
	}
	if len(buses) != 1 || buses[0].Name != "bnnd-test-bus" || len(buses[0].Found) != 1 || buses[0].Found[0].Kind != "mpu6050" {
		t.Fatalf("Scan = %+v", buses)
	}
	if _, err := Scan("no-such-bus"); err == nil || !strings.Contains(err.Error(), `no I²C bus named "no-such-bus"`) {
		t.Errorf("Scan of a missing bus: %v", err)
	}
	src, err := Open("mpu6050:bnnd-test-bus,rate=500,window=4,hop=4", LoadOptions{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bus.closed:
	default:
		t.Error("Close did not close the bus Open opened")
	}
	if _, err := Open("mpu6050:no-such-bus", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "opening I²C bus no-such-bus") {
		t.Errorf("Open on a missing bus: %v", err)
	}
}
