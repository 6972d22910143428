package simbus

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/bnnd/bnnd/sensors/adxl345"
	"github.com/bnnd/bnnd/sensors/mpu6050"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
)

func TestNACKAndSetFeedAddresses(t *testing.T) {
	b := New("t")
	err := b.Tx(0x50, []byte{0}, make([]byte, 1))
	if !errors.Is(err, ErrNACK) || !strings.Contains(err.Error(), "0x50") {
		t.Errorf("Tx to an empty address: %v, want a NACK naming 0x50", err)
	}
	if err := b.SetFeed(0x69, &queue{}); err == nil || !strings.Contains(err.Error(), "no chip emulated at 0x69") {
		t.Errorf("SetFeed at an empty address: %v", err)
	}
	// A driver at the other strapping address sees nothing there.
	if _, err := mpu6050.New(b, &mpu6050.Opts{Addr: 0x69, SampleRate: 100, AccelRange: 2, GyroRange: 250}); !errors.Is(err, ErrNACK) {
		t.Errorf("mpu6050 at 0x69: %v", err)
	}
	if err := b.SetSpeed(400 * physic.KiloHertz); err != nil {
		t.Error(err)
	}
	if err := b.SetSpeed(0); err == nil {
		t.Error("SetSpeed(0) accepted")
	}
	if b.String() != "t" {
		t.Errorf("String() = %q", b)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Tx(MPUAddr, []byte{0x75}, make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Tx after Close: %v", err)
	}
}

// Without a feed both chips measure a board lying still, the same on
// every bus; SetFeed(addr, nil) goes back to it.
func TestStillBoard(t *testing.T) {
	var first [2][3]float64
	for run := range 2 {
		b := New("t")
		if run == 1 {
			b.SetFeed(MPUAddr, &queue{})
			b.SetFeed(MPUAddr, nil)
		}
		m, err := mpu6050.New(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := adxl345.New(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		var mr, prev mpu6050.Reading
		var ar adxl345.Reading
		for i := range 50 {
			if err := m.Sense(&mr); err != nil {
				t.Fatal(err)
			}
			if err := a.Sense(&ar); err != nil {
				t.Fatal(err)
			}
			for k := range 3 {
				want := 0.0
				if k == 2 {
					want = 9.80665
				}
				if math.Abs(mr.Accel[k]-want) > 0.05 || math.Abs(ar.Accel[k]-want) > 0.1 || math.Abs(mr.Gyro[k]) > 0.005 {
					t.Fatalf("still board: mpu %+v adxl %+v", mr, ar)
				}
			}
			if i == 0 {
				if run == 0 {
					first = [2][3]float64{mr.Accel, ar.Accel}
				} else if first != [2][3]float64{mr.Accel, ar.Accel} {
					t.Errorf("still board differs between buses: %v, then %v %v", first, mr.Accel, ar.Accel)
				}
			}
			if i == 1 && mr == prev {
				t.Error("still board without noise")
			}
			prev = mr
		}
	}
}

// Register points i2creg at fresh buses named "sim"; calling it again,
// also concurrently, is fine.
func TestRegister(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Register()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b1, err := i2creg.Open(Name)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Close()
	b2, err := i2creg.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b1.String() != "sim" || b1 == b2 {
		t.Fatalf("opened %q twice as %p, %p: want two buses named sim", b1, b1, b2)
	}
	if _, ok := b1.(*Bus); !ok {
		t.Fatalf("i2creg.Open(sim) is a %T", b1)
	}
	if err := b1.Tx(MPUAddr, []byte{0x19, 42}, nil); err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 1)
	if err := b2.Tx(MPUAddr, []byte{0x19}, r); err != nil || r[0] != 0 {
		t.Errorf("the second bus shares the first's chip: SMPLRT_DIV %d, %v", r[0], err)
	}
}

// Register semantics of the MPU-6050 beyond what the driver uses.
func TestMPURegisters(t *testing.T) {
	b := New("t")
	q := &queue{}
	b.SetFeed(MPUAddr, q)
	tx := func(w []byte, n int) []byte {
		t.Helper()
		r := make([]byte, n)
		if err := b.Tx(MPUAddr, w, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Burst writes auto-increment; read-only and reserved registers
	// ignore writes and reserved bits stay 0.
	tx([]byte{0x19, 7, 0xFF, 0xFF, 0xFF}, 0)
	if got := tx([]byte{0x19}, 4); string(got) != "\x07\x3f\xf8\xf8" {
		t.Errorf("SMPLRT_DIV..ACCEL_CONFIG % x, want 07 3f f8 f8", got)
	}
	tx([]byte{0x75, 0x12}, 0)
	tx([]byte{0x00, 0x12}, 0)
	tx([]byte{0x3B, 1, 2, 3}, 0)
	if got := tx([]byte{0x75}, 1)[0]; got != 0x68 {
		t.Errorf("WHO_AM_I after a write %#02x", got)
	}
	if got := tx([]byte{0x00}, 1)[0]; got != 0 {
		t.Errorf("reserved 0x00 reads %#02x", got)
	}
	// Asleep after power-up: INT_STATUS quiet, data frozen at 0 and no
	// frame taken.
	if got := tx([]byte{0x3A}, 15); string(got) != string(make([]byte, 15)) {
		t.Errorf("asleep: INT_STATUS and data % x, want zeros", got)
	}
	tx([]byte{0x6B, 0x00}, 0) // wake, internal oscillator
	tx([]byte{0x1B, 0, 0}, 0) // ±250 °/s, ±2 g
	if got := tx([]byte{0x3A}, 1)[0]; got != 0x01 {
		t.Errorf("awake: INT_STATUS %#02x, want DATA_RDY_INT", got)
	}
	// A read that ends at ACCEL_XOUT_H takes a frame; one that starts
	// after it takes none; one that wraps around through it does.
	q.push(Frame{Accel: [3]float64{0.25 * 9.80665, 0, 0}})
	if got := tx([]byte{0x3A}, 2); string(got) != "\x01\x10" {
		t.Errorf("INT_STATUS, ACCEL_XOUT_H % x, want 01 10", got)
	}
	q.push(Frame{Accel: [3]float64{1 * 9.80665, 0.5 * 9.80665, -9.80665}, Gyro: [3]float64{math.Pi / 180, 0, 0}})
	if got := tx([]byte{0x3D}, 2); string(got) != "\x00\x00" {
		t.Errorf("ACCEL_YOUT before any sample % x", got)
	}
	got := tx([]byte{0x75}, 0x80-0x75+0x3B+6)
	if string(got[len(got)-6:]) != "\x40\x00\x20\x00\xc0\x00" || got[0] != 0x68 {
		t.Errorf("read wrapping 0x7F→0x00 through WHO_AM_I and ACCEL_*OUT: % x", got)
	}
	// Continuing from the pointer reads the same sample's temperature and
	// gyro.
	if got := tx(nil, 8); string(got) != "\xf0\xb0\x00\x83\x00\x00\x00\x00" {
		t.Errorf("TEMP_OUT, GYRO_*OUT continued: % x, want f0 b0 00 83 00 00 00 00", got)
	}
	// PWR_MGMT_2 puts axes in standby: their registers keep their values.
	tx([]byte{0x6C, 0x20 | 0x04}, 0) // STBY_XA, STBY_XG
	q.push(Frame{Accel: [3]float64{0, 0, 0}, Gyro: [3]float64{0, 0, 0}})
	if got := tx([]byte{0x3B}, 14); string(got[:4]) != "\x40\x00\x00\x00" || string(got[8:10]) != "\x00\x83" {
		t.Errorf("standby x axes: % x", got)
	}
	// USER_CTRL SIG_COND_RESET clears the data registers and itself.
	tx([]byte{0x6A, 0x01}, 0)
	if got := tx([]byte{0x6A}, 1)[0]; got != 0 {
		t.Errorf("USER_CTRL reads %#02x after SIG_COND_RESET", got)
	}
	b.SetFeed(MPUAddr, &counting{})
	tx([]byte{0x6B, 0x07}, 0) // CLKSEL 7 stops the clock: no samples
	if got := tx([]byte{0x3B}, 14); string(got) != string(make([]byte, 14)) {
		t.Errorf("data after SIG_COND_RESET with the clock stopped % x", got)
	}
	if len(q.frames) != 0 {
		t.Errorf("%d frames left", len(q.frames))
	}
}

// Register semantics of the ADXL345 beyond what the driver uses.
func TestADXLRegisters(t *testing.T) {
	b := New("t")
	q := &queue{}
	b.SetFeed(ADXLAddr, q)
	tx := func(w []byte, n int) []byte {
		t.Helper()
		r := make([]byte, n)
		if err := b.Tx(ADXLAddr, w, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := tx([]byte{0x2C}, 2); string(got) != "\x0a\x00" {
		t.Errorf("BW_RATE, POWER_CTL at power-up % x, want 0a 00", got)
	}
	if got := tx([]byte{0x30}, 1)[0]; got != 0x02 {
		t.Errorf("INT_SOURCE in standby %#02x", got)
	}
	// The pointer wraps from 0x3F to DEVID.
	if got := tx([]byte{0x3F}, 2); string(got) != "\x00\xe5" {
		t.Errorf("read from 0x3F: % x, want 00 e5", got)
	}
	g := 9.80665
	for _, c := range []struct {
		format byte
		in     float64 // g
		want   int16
	}{
		{0x00, 1, 256}, {0x01, 1, 128}, {0x02, 1, 64}, {0x03, 1, 32}, // 10 bits
		{0x00, 10, 511}, {0x03, -20, -512},
		{0x08, 1, 256}, {0x0B, 1, 256}, {0x0B, 15.9, 4077}, {0x09, -5, -1024},
		{0x04, 1, 256 << 6}, {0x04, -1, -256 << 6}, // left-justified, 10 bits
		{0x0F, 1, 256 << 3}, {0x0D, -1, -256 << 5}, // left-justified, 13 and 11 bits
	} {
		tx([]byte{0x31, c.format}, 0)
		tx([]byte{0x2D, 0x08}, 0)
		q.push(Frame{Accel: [3]float64{c.in * g, 0, 0}})
		got := tx([]byte{0x32}, 2)
		if v := int16(uint16(got[0]) | uint16(got[1])<<8); v != c.want {
			t.Errorf("DATA_FORMAT %#02x, %g g: DATAX %d, want %d", c.format, c.in, v, c.want)
		}
	}
	if got := tx([]byte{0x30}, 1)[0]; got != 0x82 {
		t.Errorf("INT_SOURCE measuring %#02x, want DATA_READY|Watermark", got)
	}
	// OFSX..OFSZ add 15.6 mg/LSB; reserved bits and read-only registers
	// ignore writes.
	tx([]byte{0x1E, 0x10, 0xF0, 0}, 0)
	tx([]byte{0x31, 0xFF}, 0)
	if got := tx([]byte{0x31}, 1)[0]; got != 0xEF {
		t.Errorf("DATA_FORMAT after writing ff: %#02x", got)
	}
	tx([]byte{0x00, 0x11}, 0)
	tx([]byte{0x31, 0x0B}, 0)
	q.push(Frame{})
	got := tx([]byte{0x00}, 0x38)
	x := int16(uint16(got[0x32]) | uint16(got[0x33])<<8)
	y := int16(uint16(got[0x34]) | uint16(got[0x35])<<8)
	if got[0] != 0xE5 || x != 64 || y != -64 {
		t.Errorf("offsets +16, -16 (±0.25 g): DEVID %#02x, x %d, y %d; want e5, 64, -64", got[0], x, y)
	}
	if len(q.frames) != 0 {
		t.Errorf("%d frames left", len(q.frames))
	}
}
