// Package adxl345 drives the Analog Devices ADXL345 3-axis accelerometer
// over I²C, in periph.io's driver shape.
//
// Register addresses, bit fields and the scale factor follow the ADXL345
// data sheet (revision G): DEVID 0x00 = 0xE5, BW_RATE 0x2C, POWER_CTL 0x2D,
// DATA_FORMAT 0x31, DATAX0..DATAZ1 0x32..0x37 (little-endian, two's
// complement). The device runs in full-resolution mode, where the scale is
// 3.9 mg/LSB at every range (the range only moves the clipping point).
package adxl345

import (
	"encoding/binary"
	"fmt"

	"periph.io/x/conn/v3/i2c"

	"github.com/bnnd/bnnd/sensors/internal/regio"
)

const (
	regDevID      = 0x00
	regBWRate     = 0x2C // rate code in bits 3:0, LOW_POWER bit 4
	regPowerCtl   = 0x2D // Measure bit 3; 0 = standby
	regDataFormat = 0x31 // FULL_RES bit 3, Justify bit 2, Range bits 1:0
	regDataX0     = 0x32 // six data bytes X0 X1 Y0 Y1 Z0 Z1

	powerMeasure = 0x08
	powerStandby = 0x00
	fullRes      = 0x08

	// DevID is the fixed device id read from DEVID.
	DevID = 0xE5

	gravity = 9.80665
	// scaleG is the full-resolution scale factor, g per LSB (data sheet
	// Table 1, typical 3.9 mg/LSB = 1/256 g).
	scaleG = 0.0039
)

// rates are the output data rates of BW_RATE codes 0x6..0xF (Table 7,
// normal power): 6.25 Hz doubling up to 3200 Hz.
var rates = []struct {
	code byte
	hz   float64
}{{0x6, 6.25}, {0x7, 12.5}, {0x8, 25}, {0x9, 50}, {0xA, 100}, {0xB, 200}, {0xC, 400}, {0xD, 800}, {0xE, 1600}, {0xF, 3200}}

// Range is the full scale in g.
type Range int

var rangeBits = map[Range]byte{2: 0, 4: 1, 8: 2, 16: 3}

// Opts configure the device.
type Opts struct {
	Addr uint16 // 0x53 (ALT ADDRESS low) or 0x1D (high)
	// SampleRate is the wanted output data rate in Hz; the chip runs at
	// the lowest rate of 6.25·2^k Hz that is at least this (up to 3200).
	SampleRate float64
	Range      Range // 2, 4, 8 or 16 g
}

// DefaultOpts: address 0x53, 100 Hz, ±2 g.
var DefaultOpts = Opts{Addr: 0x53, SampleRate: 100, Range: 2}

// Dev is an ADXL345 on an I²C bus.
type Dev struct {
	c    regio.Chip
	opts Opts
	rate float64
	buf  [6]byte
}

// Reading is one sample: acceleration in m/s² along x, y, z.
type Reading struct {
	Accel [3]float64
}

func rateCode(hz float64) (byte, float64, bool) {
	for _, r := range rates {
		if r.hz >= hz {
			return r.code, r.hz, true
		}
	}
	return 0, 0, false
}

// New checks DEVID and configures the device: standby, rate, full
// resolution at the range, then measurement mode.
func New(bus i2c.Bus, opts *Opts) (*Dev, error) {
	if opts == nil {
		o := DefaultOpts
		opts = &o
	}
	if opts.Addr != 0x53 && opts.Addr != 0x1D {
		return nil, fmt.Errorf("adxl345: address %#x is not 0x53 or 0x1d", opts.Addr)
	}
	rb, ok := rangeBits[opts.Range]
	if !ok {
		return nil, fmt.Errorf("adxl345: range %dg is not 2, 4, 8 or 16", opts.Range)
	}
	code, hz, ok := rateCode(opts.SampleRate)
	if !ok || opts.SampleRate <= 0 {
		return nil, fmt.Errorf("adxl345: sample rate %g Hz is outside (0, 3200]", opts.SampleRate)
	}
	d := &Dev{c: regio.Chip{Dev: i2c.Dev{Bus: bus, Addr: opts.Addr}, Name: "adxl345"}, opts: *opts, rate: hz}
	var id [1]byte
	if err := d.c.Tx([]byte{regDevID}, id[:]); err != nil {
		return nil, d.c.Errorf("reading DEVID: %w", err)
	}
	if id[0] != DevID {
		return nil, d.c.Errorf("DEVID is %#02x, want %#02x", id[0], DevID)
	}
	err := d.c.WriteAll([][2]byte{
		{regPowerCtl, powerStandby}, // configure in standby
		{regBWRate, code},
		{regDataFormat, fullRes | rb},
		{regPowerCtl, powerMeasure},
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// SampleRate is the output data rate the chip runs at, in Hz.
func (d *Dev) SampleRate() float64 { return d.rate }

func (d *Dev) String() string {
	return fmt.Sprintf("ADXL345{%s, addr=%#x, ±%dg, %g Hz}", d.c.Bus, d.opts.Addr, d.opts.Range, d.rate)
}

// Sense reads the three axes in one 6-byte burst from DATAX0 (the data
// sheet asks for a multi-byte read so the axes come from one sample).
func (d *Dev) Sense(r *Reading) error {
	if err := d.c.Burst(regDataX0, d.buf[:]); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		r.Accel[i] = float64(int16(binary.LittleEndian.Uint16(d.buf[2*i:]))) * scaleG * gravity
	}
	return nil
}

// Halt puts the chip in standby (POWER_CTL Measure cleared, ~0.1 µA).
func (d *Dev) Halt() error {
	return d.c.Write(regPowerCtl, powerStandby)
}
