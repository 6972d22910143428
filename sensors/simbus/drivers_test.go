package simbus

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/sensors/adxl345"
	"github.com/bnnd/bnnd/sensors/mpu6050"
)

func init() { mpu6050.Sleep = func(time.Duration) {} }

// counting is a Feed that counts its frames and can fail.
type counting struct {
	f   Frame
	n   int
	err error
}

func (c *counting) Next() (Frame, error) {
	if c.err != nil {
		return Frame{}, c.err
	}
	c.n++
	return c.f, nil
}

func readReg(t *testing.T, b *Bus, addr uint16, reg byte, n int) []byte {
	t.Helper()
	r := make([]byte, n)
	if err := b.Tx(addr, []byte{reg}, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// The MPU-6050 driver reads back what it is fed to within half an LSB at
// every combination of ranges, and values beyond a range clip to the
// int16 limits.
func TestMPUDriverRoundTrip(t *testing.T) {
	b := New("t")
	feed := &counting{}
	b.SetFeed(MPUAddr, feed)
	for _, ar := range []mpu6050.AccelRange{2, 4, 8, 16} {
		for _, gr := range []mpu6050.GyroRange{250, 500, 1000, 2000} {
			d, err := mpu6050.New(b, &mpu6050.Opts{Addr: MPUAddr, SampleRate: 100, AccelRange: ar, GyroRange: gr})
			if err != nil {
				t.Fatal(err)
			}
			fsA := float64(ar) * 9.80665       // m/s²
			fsG := float64(gr) * math.Pi / 180 // rad/s
			lsbA := fsA / 32768
			lsbG := math.Pi / 180 / map[mpu6050.GyroRange]float64{250: 131, 500: 65.5, 1000: 32.8, 2000: 16.4}[gr]
			for _, frac := range [][3]float64{{0, 0.3, -0.77}, {0.9999, -1, 0.5}, {1e-6, -0.123456, 0.654321}} {
				feed.f = Frame{}
				for i := range 3 {
					feed.f.Accel[i] = frac[i] * fsA
					feed.f.Gyro[i] = -frac[i] * fsG * 0.99 // FS_SEL's sensitivities cover slightly less than the nominal range
				}
				var r mpu6050.Reading
				if err := d.Sense(&r); err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					if math.Abs(r.Accel[i]-feed.f.Accel[i]) > lsbA/2+1e-12 || math.Abs(r.Gyro[i]-feed.f.Gyro[i]) > lsbG/2+1e-12 {
						t.Errorf("±%dg ±%d°/s: fed %+v, read %+v", ar, gr, feed.f, r)
					}
				}
				if math.Abs(r.Temp-25) > 0.001 {
					t.Errorf("temp %v, want 25 °C", r.Temp)
				}
			}
			feed.f = Frame{Accel: [3]float64{3 * fsA, -3 * fsA, math.Inf(1)}, Gyro: [3]float64{-2 * fsG, 2 * fsG, math.NaN()}}
			var r mpu6050.Reading
			if err := d.Sense(&r); err != nil {
				t.Fatal(err)
			}
			wantA := [3]float64{32767 * lsbA, -32768 * lsbA, 32767 * lsbA}
			wantG := [3]float64{-32768 * lsbG, 32767 * lsbG, 0}
			for i := range 3 {
				if math.Abs(r.Accel[i]-wantA[i]) > 1e-9 || math.Abs(r.Gyro[i]-wantG[i]) > 1e-9 {
					t.Errorf("±%dg ±%d°/s beyond range: read %+v, want accel %v gyro %v", ar, gr, r, wantA, wantG)
				}
			}
		}
	}
}

// The ADXL345 driver (full resolution) reads back what it is fed to
// within half an LSB at every range; beyond the range it reads the
// output's limits: 10 bits at ±2 g up to 13 at ±16 g.
func TestADXLDriverRoundTrip(t *testing.T) {
	b := New("t")
	feed := &counting{}
	b.SetFeed(ADXLAddr, feed)
	const lsb = 0.0039 * 9.80665
	for _, rg := range []adxl345.Range{2, 4, 8, 16} {
		d, err := adxl345.New(b, &adxl345.Opts{Addr: ADXLAddr, SampleRate: 100, Range: rg})
		if err != nil {
			t.Fatal(err)
		}
		fs := float64(rg) * 9.80665
		// At 3.9 mg/LSB the output's limits are 0.2 % inside the range.
		for _, frac := range [][3]float64{{0, 0.3, -0.77}, {0.99, -0.997, 0.5}, {1e-6, -0.123456, 0.654321}} {
			for i := range 3 {
				feed.f.Accel[i] = frac[i] * fs
			}
			var r adxl345.Reading
			if err := d.Sense(&r); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if math.Abs(r.Accel[i]-feed.f.Accel[i]) > lsb/2+1e-12 {
					t.Errorf("±%dg: fed %v, read %v", rg, feed.f.Accel, r.Accel)
				}
			}
		}
		feed.f.Accel = [3]float64{2 * fs, -2 * fs, math.Inf(-1)}
		var r adxl345.Reading
		if err := d.Sense(&r); err != nil {
			t.Fatal(err)
		}
		half := map[adxl345.Range]float64{2: 512, 4: 1024, 8: 2048, 16: 4096}[rg]
		want := [3]float64{(half - 1) * lsb, -half * lsb, -half * lsb}
		for i := range 3 {
			if math.Abs(r.Accel[i]-want[i]) > 1e-9 {
				t.Errorf("±%dg beyond range: read %v, want %v", rg, r.Accel, want)
			}
		}
	}
}

// Halt puts the MPU-6050 to sleep: PWR_MGMT_1 has SLEEP set, and reads
// return the last sample without taking frames.
func TestMPUHaltSleeps(t *testing.T) {
	b := New("t")
	feed := &counting{f: Frame{Accel: [3]float64{1, 2, 3}}}
	b.SetFeed(MPUAddr, feed)
	d, err := mpu6050.New(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var before, after mpu6050.Reading
	if err := d.Sense(&before); err != nil {
		t.Fatal(err)
	}
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	if got := readReg(t, b, MPUAddr, 0x6B, 1)[0]; got != 0x41 {
		t.Errorf("PWR_MGMT_1 after Halt = %#02x, want 0x41 (SLEEP, PLL clock)", got)
	}
	n := feed.n
	feed.f = Frame{Accel: [3]float64{-5, -5, -5}}
	if err := d.Sense(&after); err != nil {
		t.Fatal(err)
	}
	if feed.n != n || after != before {
		t.Errorf("asleep: %d frames taken, read %+v, want the frozen %+v", feed.n-n, after, before)
	}
	// New wakes it again.
	if _, err := mpu6050.New(b, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Sense(&after); err != nil {
		t.Fatal(err)
	}
	if feed.n != n+1 || math.Abs(after.Accel[0]+5) > 0.01 {
		t.Errorf("awake again: %d frames taken, read %+v", feed.n-n, after)
	}
}

// DEVICE_RESET restores the reset values: everything 0 but PWR_MGMT_1
// (SLEEP) and WHO_AM_I, data registers included.
func TestMPUDeviceReset(t *testing.T) {
	b := New("t")
	d, err := mpu6050.New(b, &mpu6050.Opts{Addr: MPUAddr, SampleRate: 50, AccelRange: 16, GyroRange: 2000})
	if err != nil {
		t.Fatal(err)
	}
	var r mpu6050.Reading
	if err := d.Sense(&r); err != nil {
		t.Fatal(err)
	}
	if got := readReg(t, b, MPUAddr, 0x19, 4); string(got) != "\x13\x04\x18\x18" {
		t.Fatalf("configuration % x, want 13 04 18 18", got)
	}
	if err := b.Tx(MPUAddr, []byte{0x6B, 0x80}, nil); err != nil {
		t.Fatal(err)
	}
	if got := readReg(t, b, MPUAddr, 0x19, 4); string(got) != "\x00\x00\x00\x00" {
		t.Errorf("SMPLRT_DIV..ACCEL_CONFIG after reset % x, want 0", got)
	}
	if got := readReg(t, b, MPUAddr, 0x6B, 1)[0]; got != 0x40 {
		t.Errorf("PWR_MGMT_1 after reset %#02x, want 0x40", got)
	}
	if got := readReg(t, b, MPUAddr, 0x75, 1)[0]; got != 0x68 {
		t.Errorf("WHO_AM_I after reset %#02x", got)
	}
	if got := readReg(t, b, MPUAddr, 0x3B, 14); string(got) != string(make([]byte, 14)) {
		t.Errorf("data after reset % x, want zeros (asleep, cleared)", got)
	}
}

// The ADXL345's Halt is standby: POWER_CTL 0, data frozen, no frames taken.
func TestADXLHaltStandby(t *testing.T) {
	b := New("t")
	feed := &counting{f: Frame{Accel: [3]float64{1, 2, 3}}}
	b.SetFeed(ADXLAddr, feed)
	d, err := adxl345.New(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var before, after adxl345.Reading
	if err := d.Sense(&before); err != nil {
		t.Fatal(err)
	}
	if err := d.Halt(); err != nil {
		t.Fatal(err)
	}
	if got := readReg(t, b, ADXLAddr, 0x2D, 1)[0]; got != 0 {
		t.Errorf("POWER_CTL after Halt = %#02x, want 0", got)
	}
	n := feed.n
	if err := d.Sense(&after); err != nil {
		t.Fatal(err)
	}
	if feed.n != n || after != before {
		t.Errorf("standby: %d frames taken, read %+v, want the frozen %+v", feed.n-n, after, before)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A recording plays through both drivers, ends with io.EOF visible
// through the drivers' wrapping, and labels change before the frame of
// their row is read.
func TestReplayThroughDrivers(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "rec.csv", "time,ax,ay,az,gx,gy,gz,label\n"+
		"0.00,1,0,9.8,0.1,0,0,walk\n"+
		"0.01,2,0,9.8,0.2,0,0,walk\n"+
		"0.02,3,0,9.8,0.3,0,0,\n"+
		"0.03,4,0,9.8,0.4,0,0,run\n")
	for _, chip := range []string{"mpu6050", "adxl345"} {
		label := ""
		var calls []string
		rp, err := OpenReplay(ReplayOptions{Glob: filepath.Join(dir, "*.csv"), Gyro: chip == "mpu6050", OnLabel: func(name string) error {
			label = name
			calls = append(calls, name)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		b := New("t")
		var sense func() ([3]float64, float64, error) // accel, gyro x
		if chip == "mpu6050" {
			b.SetFeed(MPUAddr, rp)
			d, err := mpu6050.New(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			sense = func() ([3]float64, float64, error) {
				var r mpu6050.Reading
				err := d.Sense(&r)
				return r.Accel, r.Gyro[0], err
			}
		} else {
			b.SetFeed(ADXLAddr, rp)
			d, err := adxl345.New(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			sense = func() ([3]float64, float64, error) {
				var r adxl345.Reading
				err := d.Sense(&r)
				return r.Accel, 0, err
			}
		}
		wantLabel := []string{"walk", "walk", "none", "run"}
		for i := range 4 {
			a, gx, err := sense()
			if err != nil {
				t.Fatalf("%s row %d: %v", chip, i+1, err)
			}
			if math.Abs(a[0]-float64(i+1)) > 0.04 || math.Abs(a[2]-9.8) > 0.04 {
				t.Errorf("%s row %d: accel %v", chip, i+1, a)
			}
			if chip == "mpu6050" && math.Abs(gx-0.1*float64(i+1)) > 0.001 {
				t.Errorf("%s row %d: gyro x %v", chip, i+1, gx)
			}
			if label != wantLabel[i] {
				t.Errorf("%s row %d: label %q when its frame was read, want %q", chip, i+1, label, wantLabel[i])
			}
			if f, row := rp.Position(); filepath.Base(f) != "rec.csv" || row != i+2 {
				t.Errorf("%s: Position() = %s, %d, want rec.csv, %d", chip, f, row, i+2)
			}
		}
		if fmt.Sprint(calls) != "[walk none run]" {
			t.Errorf("%s: OnLabel calls %q", chip, calls)
		}
		_, _, err = sense()
		if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "at 0x") || !strings.Contains(err.Error(), "feed ended") {
			t.Errorf("%s after the last row: %v, want an error wrapping io.EOF naming the chip", chip, err)
		}
		if _, _, err := sense(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: read after the end: %v", chip, err)
		}
	}
}

// A feed's other errors come through the drivers wrapped, and the chip
// keeps working when the feed recovers.
func TestFeedErrorThroughDriver(t *testing.T) {
	b := New("t")
	errBroken := errors.New("sensor cable unplugged")
	feed := &counting{err: errBroken}
	b.SetFeed(MPUAddr, feed)
	d, err := mpu6050.New(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r mpu6050.Reading
	err = d.Sense(&r)
	if !errors.Is(err, errBroken) || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "simbus: bus t: MPU-6050 at 0x68: feed: ") {
		t.Fatalf("Sense with a broken feed: %v", err)
	}
	feed.err, feed.f = nil, Frame{Accel: [3]float64{0, 0, 1}}
	if err := d.Sense(&r); err != nil || math.Abs(r.Accel[2]-1) > 0.001 {
		t.Fatalf("after the feed recovers: %+v, %v", r, err)
	}
}
