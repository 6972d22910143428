package adxl345

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/sensors/internal/chiptest"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

func TestInitAndSenseEachRange(t *testing.T) {
	for r, bits := range map[Range]byte{2: 0, 4: 1, 8: 2, 16: 3} {
		// Raw 256 is 1 g in full resolution at every range; -512 is -2 g;
		// the third axis is at the range's full scale: 511 (1.99 g) at
		// ±2 g up to 4095 (15.97 g) at ±16 g.
		bus := &i2ctest.Playback{Ops: chiptest.ADXLSenseEachRange(bits), DontPanic: true}
		d, err := New(bus, &Opts{Addr: 0x1D, SampleRate: 100, Range: r})
		if err != nil {
			t.Fatalf("±%dg: %v", r, err)
		}
		var rd Reading
		if err := d.Sense(&rd); err != nil {
			t.Fatal(err)
		}
		full := map[byte]float64{0: 511, 1: 1023, 2: 2047, 3: 4095}[bits]
		want := [3]float64{256 * 0.0039 * 9.80665, -512 * 0.0039 * 9.80665, full * 0.0039 * 9.80665}
		for i := range want {
			if math.Abs(rd.Accel[i]-want[i]) > 1e-9 {
				t.Errorf("±%dg: accel %v, want %v", r, rd.Accel, want)
			}
		}
		if math.Abs(rd.Accel[0]-9.80665) > 0.03*9.80665 {
			t.Errorf("raw 256 should be about 1 g, got %v m/s²", rd.Accel[0])
		}
		if err := d.Halt(); err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(); err != nil {
			t.Fatalf("transcript not fully replayed: %v", err)
		}
	}
}

func TestRates(t *testing.T) {
	for hz, want := range map[float64]struct {
		code byte
		rate float64
	}{0.5: {0x6, 6.25}, 6.25: {0x6, 6.25}, 50: {0x9, 50}, 60: {0xA, 100}, 3200: {0xF, 3200}} {
		bus := &i2ctest.Playback{Ops: chiptest.ADXLInit(0x53, want.code, 0x08), DontPanic: true}
		d, err := New(bus, &Opts{Addr: 0x53, SampleRate: hz, Range: 2})
		if err != nil {
			t.Fatalf("%g Hz: %v", hz, err)
		}
		if err := bus.Close(); err != nil {
			t.Fatalf("%g Hz: %v", hz, err)
		}
		if d.SampleRate() != want.rate {
			t.Errorf("%g Hz: runs at %g, want %g", hz, d.SampleRate(), want.rate)
		}
	}
	for _, o := range []Opts{{Addr: 0x53, SampleRate: 6400, Range: 2}, {Addr: 0x53, SampleRate: 0, Range: 2}, {Addr: 0x53, SampleRate: 100, Range: 3}, {Addr: 0x68, SampleRate: 100, Range: 2}} {
		if _, err := New(&i2ctest.Playback{DontPanic: true}, &o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestWrongID(t *testing.T) {
	bus := &i2ctest.Playback{Ops: chiptest.ADXLWrongID(), DontPanic: true}
	_, err := New(bus, nil)
	if err == nil || !strings.Contains(err.Error(), "at 0x53") || !strings.Contains(err.Error(), "DEVID is 0x00") {
		t.Fatalf("err = %v", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

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

func TestNACKMidRead(t *testing.T) {
	ops := chiptest.ADXLSenseTwice()
	bus := &nackBus{Playback: i2ctest.Playback{Ops: ops, DontPanic: true}, failAt: len(ops) - 1}
	d, err := New(bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r Reading
	if err := d.Sense(&r); !errors.Is(err, errNACK) || !strings.Contains(err.Error(), "burst read of 6 bytes") {
		t.Fatalf("Sense err = %v", err)
	}
	if err := d.Sense(&r); err != nil || math.Abs(r.Accel[1]-2*0.0039*9.80665) > 1e-12 {
		t.Fatalf("after the NACK: %v %v", r, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
