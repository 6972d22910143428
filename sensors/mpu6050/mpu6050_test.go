package mpu6050

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/sensors/internal/chiptest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

func init() { Sleep = func(time.Duration) {} }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestInitAndSenseEachRange(t *testing.T) {
	for _, c := range []struct {
		accel AccelRange
		gyro  GyroRange
		sel   byte
		lsb   float64 // datasheet gyro sensitivity, LSB per °/s
	}{{2, 250, 0, 131}, {4, 500, 1, 65.5}, {8, 1000, 2, 32.8}, {16, 2000, 3, 16.4}} {
		// Raw 16384 is 1 g at ±2 g, 2 g at ±4 g, ...; raw 131 is 1 °/s at
		// ±250 °/s, 2 °/s at ±500 ...; raw -3920 is 25.0006 °C.
		bus := &i2ctest.Playback{Ops: chiptest.MPUSenseEachRange(c.sel), DontPanic: true}
		d, err := New(bus, &Opts{Addr: 0x69, SampleRate: 100, AccelRange: c.accel, GyroRange: c.gyro})
		if err != nil {
			t.Fatalf("±%dg: %v", c.accel, err)
		}
		var r Reading
		if err := d.Sense(&r); err != nil {
			t.Fatal(err)
		}
		g := float64(c.accel) / 2 * gravity
		dps := 131 / c.lsb * math.Pi / 180
		wantA := [3]float64{g, -g, g / 2}
		wantG := [3]float64{dps, -dps, 10 * dps}
		for i := 0; i < 3; i++ {
			if !near(r.Accel[i], wantA[i]) || !near(r.Gyro[i], wantG[i]) {
				t.Errorf("±%dg/±%d°/s: reading %+v, want accel %v gyro %v", c.accel, c.gyro, r, wantA, wantG)
			}
		}
		if math.Abs(r.Temp-25.0006) > 1e-3 {
			t.Errorf("temp %v, want 25.0006", r.Temp)
		}
		if err := d.Halt(); err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(); err != nil {
			t.Fatalf("transcript not fully replayed: %v", err)
		}
		if s := d.String(); !strings.Contains(s, "MPU-6050{playback, addr=0x69") {
			t.Errorf("String() = %q", s)
		}
	}
}

func TestDefaultOptsAndRates(t *testing.T) {
	bus := &i2ctest.Playback{Ops: chiptest.MPUDefault(), DontPanic: true}
	d, err := New(bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if d.SampleRate() != 100 || d.ID() != 0x68 {
		t.Errorf("rate %d id %#x", d.SampleRate(), d.ID())
	}
	for rate, want := range map[int]byte{1000: 1, 400: 1, 200: 2, 100: 3, 50: 4, 25: 5, 10: 6, 4: 6} {
		if got := dlpfFor(rate); got != want {
			t.Errorf("dlpfFor(%d) = %d, want %d", rate, got, want)
		}
	}
	// 50 Hz: SMPLRT_DIV 19, DLPF 21 Hz; an MPU-6500 id is accepted.
	bus = &i2ctest.Playback{Ops: chiptest.MPU6500At50Hz(), DontPanic: true}
	d, err = New(bus, &Opts{Addr: 0x68, SampleRate: 50, AccelRange: 2, GyroRange: 250})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.String(); !strings.HasPrefix(s, "MPU-6500{") || !strings.Contains(s, "50 Hz") {
		t.Errorf("String() = %q", s)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWrongID(t *testing.T) {
	bus := &i2ctest.Playback{Ops: chiptest.MPUWrongID(), DontPanic: true}
	_, err := New(bus, nil)
	if err == nil || !strings.Contains(err.Error(), "at 0x68") || !strings.Contains(err.Error(), "WHO_AM_I is 0x98") {
		t.Fatalf("err = %v, want one naming the address and the id read", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadOpts(t *testing.T) {
	for _, o := range []Opts{
		{Addr: 0x50, SampleRate: 100, AccelRange: 2, GyroRange: 250},
		{Addr: 0x68, SampleRate: 3, AccelRange: 2, GyroRange: 250},
		{Addr: 0x68, SampleRate: 100, AccelRange: 3, GyroRange: 250},
		{Addr: 0x68, SampleRate: 100, AccelRange: 2, GyroRange: 300},
	} {
		bus := &i2ctest.Playback{DontPanic: true}
		if _, err := New(bus, &o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// nackBus replays ops but fails transaction number failAt with errNACK.
type nackBus struct {
	i2ctest.Playback
	failAt, n int
}

var errNACK = errors.New("i2c: remote I/O error (NACK)")

func (b *nackBus) Tx(addr uint16, w, r []byte) error {
	b.n++
	if b.n-1 == b.failAt {
		return errNACK
	}
	return b.Playback.Tx(addr, w, r)
}
func (b *nackBus) SetSpeed(physic.Frequency) error { return nil }

var _ i2c.Bus = (*nackBus)(nil)

func TestNACKMidRead(t *testing.T) {
	ops := chiptest.MPUSenseTwice()
	bus := &nackBus{Playback: i2ctest.Playback{Ops: ops, DontPanic: true}, failAt: len(ops) - 1}
	d, err := New(bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r Reading
	err = d.Sense(&r)
	if !errors.Is(err, errNACK) || !strings.Contains(err.Error(), "burst read of 14 bytes") {
		t.Fatalf("Sense err = %v", err)
	}
	// The next read succeeds: the failure was transient.
	if err := d.Sense(&r); err != nil {
		t.Fatal(err)
	}
	if r.Accel[2] != 3*gravity/16384 {
		t.Errorf("after retry accel z = %v", r.Accel[2])
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	// A NACK during initialisation names the register write.
	bus = &nackBus{Playback: i2ctest.Playback{Ops: chiptest.MPUDefault(), DontPanic: true}, failAt: 3}
	if _, err := New(bus, nil); !errors.Is(err, errNACK) || !strings.Contains(err.Error(), "register 0x19") {
		t.Fatalf("New err = %v", err)
	}
}
