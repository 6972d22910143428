package simbus

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/bnnd/bnnd/sensors/internal/chiptest"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// queue is a Feed of frames queued by the test; running dry is an error,
// so a read that pulls a frame the test did not expect fails.
type queue struct{ frames []Frame }

var errDry = errors.New("test feed: no frame queued")

func (q *queue) Next() (Frame, error) {
	if len(q.frames) == 0 {
		return Frame{}, errDry
	}
	f := q.frames[0]
	q.frames = q.frames[1:]
	return f, nil
}

func (q *queue) push(f Frame) { q.frames = append(q.frames, f) }

// transcript is a driver test's transcript and the ids the chips answer
// for it (the drivers also talk to family members and foreign chips).
type transcript struct {
	name         string
	ops          []i2ctest.IO
	mpuID, adxID byte
}

func transcripts() []transcript {
	ts := []transcript{
		{"MPUDefault", chiptest.MPUDefault(), 0x68, 0xE5},
		{"MPU6500At50Hz", chiptest.MPU6500At50Hz(), 0x70, 0xE5},
		{"MPUWrongID", chiptest.MPUWrongID(), 0x98, 0xE5},
		{"MPUSenseTwice", chiptest.MPUSenseTwice(), 0x68, 0xE5},
		{"ADXLWrongID", chiptest.ADXLWrongID(), 0x68, 0x00},
		{"ADXLSenseTwice", chiptest.ADXLSenseTwice(), 0x68, 0xE5},
	}
	for sel := byte(0); sel < 4; sel++ {
		ts = append(ts,
			transcript{fmt.Sprintf("MPUSenseEachRange(%d)", sel), chiptest.MPUSenseEachRange(sel), 0x68, 0xE5},
			transcript{fmt.Sprintf("ADXLSenseEachRange(%d)", sel), chiptest.ADXLSenseEachRange(sel), 0x68, 0xE5})
	}
	for code := byte(0x6); code <= 0xF; code++ {
		ts = append(ts, transcript{fmt.Sprintf("ADXLInit(rate %#x)", code), chiptest.ADXLInit(0x53, code, 0x08), 0x68, 0xE5})
	}
	return ts
}

// emulate runs a transcript on a fresh emulator: every write goes to it
// and every read must return the transcript's bytes. Before a read of the
// data registers the feed gets the frame that converts to the
// transcript's raw values at the range the transcript configured, by the
// data sheets' sensitivities (this test's own tables, not the
// emulator's). It returns the differences found.
func emulate(tr transcript) []string {
	b := New("transcript")
	b.chips[MPUAddr].(*mpu).id = tr.mpuID
	b.chips[ADXLAddr].(*adxl).id = tr.adxID
	feed := &queue{}
	b.SetFeed(MPUAddr, feed)
	b.SetFeed(ADXLAddr, feed)
	accelLSB := []float64{16384, 8192, 4096, 2048} // LSB/g per AFS_SEL
	gyroLSB := []float64{131, 65.5, 32.8, 16.4}    // LSB/(°/s) per FS_SEL
	var accelSel, gyroSel, format byte
	var diffs []string
	for i, op := range tr.ops {
		addr := op.Addr
		switch addr { // the second address the chips can be strapped to
		case 0x69:
			addr = MPUAddr
		case 0x1D:
			addr = ADXLAddr
		}
		if len(op.W) == 2 {
			switch {
			case addr == MPUAddr && op.W[0] == 0x1B:
				gyroSel = op.W[1] >> 3 & 3
			case addr == MPUAddr && op.W[0] == 0x1C:
				accelSel = op.W[1] >> 3 & 3
			case addr == ADXLAddr && op.W[0] == 0x31:
				format = op.W[1]
			}
		}
		if len(op.W) == 1 && addr == MPUAddr && op.W[0] == 0x3B && len(op.R) == 14 {
			be := func(k int) float64 { return float64(int16(uint16(op.R[k])<<8 | uint16(op.R[k+1]))) }
			var f Frame
			for k := range 3 {
				f.Accel[k] = be(2*k) / accelLSB[accelSel] * 9.80665
				f.Gyro[k] = be(8+2*k) / gyroLSB[gyroSel] * math.Pi / 180
			}
			feed.push(f)
		}
		if len(op.W) == 1 && addr == ADXLAddr && op.W[0] == 0x32 && len(op.R) == 6 {
			if format&0x0C != 0x08 {
				return append(diffs, fmt.Sprintf("op %d: the test only decodes right-justified full resolution, DATA_FORMAT is %#02x", i, format))
			}
			var f Frame
			for k := range 3 {
				f.Accel[k] = float64(int16(uint16(op.R[2*k])|uint16(op.R[2*k+1])<<8)) * 0.0039 * 9.80665
			}
			feed.push(f)
		}
		got := make([]byte, len(op.R))
		if err := b.Tx(addr, op.W, got); err != nil {
			diffs = append(diffs, fmt.Sprintf("op %d %#02x W % x: %v", i, op.Addr, op.W, err))
			continue
		}
		if !bytes.Equal(got, op.R) {
			diffs = append(diffs, fmt.Sprintf("op %d %#02x W % x: read % x, transcript % x", i, op.Addr, op.W, got, op.R))
		}
	}
	if len(feed.frames) != 0 {
		diffs = append(diffs, fmt.Sprintf("%d queued frames not read", len(feed.frames)))
	}
	return diffs
}

// The driver tests' transcripts, byte for byte, are what the emulated
// chips answer.
func TestTranscriptsOnEmulator(t *testing.T) {
	for _, tr := range transcripts() {
		for _, d := range emulate(tr) {
			t.Errorf("%s: %s", tr.name, d)
		}
	}
}

// A transcript the chips would not answer is caught: the comparison above
// is not vacuous.
func TestTranscriptMismatchesAreFound(t *testing.T) {
	for _, c := range []struct {
		name string
		tr   transcript
		op   int
		at   int
	}{
		{"MPU temperature", transcript{"", chiptest.MPUSenseEachRange(0), 0x68, 0xE5}, 7, 7},
		{"MPU WHO_AM_I", transcript{"", chiptest.MPUDefault(), 0x68, 0xE5}, 0, 0},
		{"ADXL DEVID", transcript{"", chiptest.ADXLSenseTwice(), 0x68, 0xE5}, 0, 0},
	} {
		c.tr.ops[c.op].R[c.at]++
		if len(emulate(c.tr)) == 0 {
			t.Errorf("%s: a changed byte was not noticed", c.name)
		}
	}
	// A range the emulator ignored would give other bytes: ±16 g values
	// played at ±2 g clip.
	ops := chiptest.ADXLSenseEachRange(3)
	ops[3].W[1] = 0x08 // DATA_FORMAT: full resolution at ±2 g, but the test decodes ±16 g
	b := New("t")
	q := &queue{}
	b.SetFeed(ADXLAddr, q)
	for _, op := range ops[:5] {
		if err := b.Tx(ADXLAddr, op.W, make([]byte, len(op.R))); err != nil {
			t.Fatal(err)
		}
	}
	q.push(Frame{Accel: [3]float64{0, 0, 4095 * 0.0039 * 9.80665}})
	got := make([]byte, 6)
	if err := b.Tx(ADXLAddr, []byte{0x32}, got); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got[4:], ops[5].R[4:]) {
		t.Errorf("15.97 g at ±2 g read as % x, the ±16 g count", got[4:])
	}
}
