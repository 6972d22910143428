// Package simbus is a simulated I²C bus with register-level emulators of
// the MPU-6050 (at 0x68) and the ADXL345 (at 0x53), so the real drivers in
// sensors/mpu6050 and sensors/adxl345 run unchanged on a machine without
// the chips, measuring either a board lying still or a recording (Replay).
//
// The emulators answer register reads and writes as the data sheets
// describe them, except that time does not pass on the simulated chips:
// every read of the data registers is one new sample from the chip's Feed,
// whatever the configured rate or filter. That makes a replay run exactly
// as fast as its reader and makes tests deterministic.
//
// A transaction's first written byte sets the register pointer, further
// written bytes go to consecutive registers, and reads continue from the
// pointer; the pointer wraps from 0x7F to 0x00 on the MPU-6050 and from
// 0x3F to 0x00 on the ADXL345 (whose data sheet does not say). A read
// that covers ACCEL_XOUT_H (MPU-6050) or DATAX0 (ADXL345) first takes a
// frame, unless the chip is asleep or in standby, when the data registers
// keep their last values. Values beyond the configured range saturate at
// the output's limits: int16 on the MPU-6050; on the ADXL345 10 bits
// (−512..511) in 10-bit mode and 10 to 13 bits in full resolution, which
// at 3.9 mg/LSB ends 0.2 % short of the nominal range.
package simbus

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
)

// Name is the name under which Register makes the bus known to i2creg.
const Name = "sim"

// Standard gravity, the same constant as the drivers', so a value read
// back through a driver is the fed value to within one LSB.
const gravity = 9.80665

// Frame is one sample of the physical world the chips measure.
type Frame struct {
	Accel [3]float64 // m/s²
	Gyro  [3]float64 // rad/s (the ADXL345 ignores it)
}

// Feed produces the frames a chip measures; a chip pulls one frame per
// data-register burst read (each read of the data registers is one new
// sample). io.EOF (or an error wrapping it) ends the recording.
//
// Next is called with the bus locked: it must not use the bus.
type Feed interface {
	Next() (Frame, error)
}

// ErrNACK is wrapped by the error of a transaction to an address where
// no chip is emulated, as a real bus reports a missing acknowledge.
var ErrNACK = errors.New("address not acknowledged (NACK)")

// chip is one emulated device: it handles the bytes of one transaction.
type chip interface {
	tx(w, r []byte) error
	setFeed(Feed)
}

// Bus is an i2c.BusCloser with an MPU-6050 at 0x68 and an ADXL345 at
// 0x53. Transactions are serialised as on a real bus; a Bus is safe for
// concurrent use.
type Bus struct {
	name string

	mu     sync.Mutex
	chips  map[uint16]chip
	speed  physic.Frequency
	closed bool
}

var _ i2c.BusCloser = (*Bus)(nil)

// New returns a bus with freshly powered-up chips. Until SetFeed is
// called, each chip measures a board lying still: gravity on +z and a
// little deterministic noise.
func New(name string) *Bus {
	return &Bus{
		name:  name,
		speed: 100 * physic.KiloHertz,
		chips: map[uint16]chip{
			MPUAddr:  newMPU(),
			ADXLAddr: newADXL(),
		},
	}
}

// Addresses of the emulated chips (AD0 low and ALT ADDRESS low).
const (
	MPUAddr  = 0x68
	ADXLAddr = 0x53
)

// SetFeed makes the chip at addr measure f from its next sample on; a nil
// f puts it back on the still board.
func (b *Bus) SetFeed(addr uint16, f Feed) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.chips[addr]
	if !ok {
		return fmt.Errorf("simbus: bus %s: no chip emulated at %#02x (the MPU-6050 is at %#02x, the ADXL345 at %#02x)", b.name, addr, MPUAddr, ADXLAddr)
	}
	c.setFeed(f)
	return nil
}

// Tx writes w (a register address, then data for it and the following
// registers) and then reads len(r) bytes from the register pointer on.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("simbus: bus %s is closed", b.name)
	}
	c, ok := b.chips[addr]
	if !ok {
		return fmt.Errorf("simbus: bus %s: Tx to %#02x: %w", b.name, addr, ErrNACK)
	}
	if err := c.tx(w, r); err != nil {
		return fmt.Errorf("simbus: bus %s: %w", b.name, err)
	}
	return nil
}

// SetSpeed records the clock; the emulated chips answer at any speed.
func (b *Bus) SetSpeed(f physic.Frequency) error {
	if f <= 0 {
		return fmt.Errorf("simbus: bus %s: invalid speed %s", b.name, f)
	}
	b.mu.Lock()
	b.speed = f
	b.mu.Unlock()
	return nil
}

func (b *Bus) String() string { return b.name }

// Close makes later transactions fail; closing twice is not an error.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

var registerMu sync.Mutex

// Register registers the bus Name in periph's i2creg, with no bus
// number so it never takes a real bus's number. It is idempotent and
// safe to call concurrently; each i2creg.Open(Name) returns a fresh Bus,
// so every opener sees chips in their power-up state.
//
// On a host with no numbered bus, i2creg.Open("") picks the first bus by
// name, which may then be this one.
func Register() error {
	registerMu.Lock()
	defer registerMu.Unlock()
	for _, ref := range i2creg.All() {
		if ref.Name == Name {
			return nil
		}
	}
	if err := i2creg.Register(Name, nil, -1, func() (i2c.BusCloser, error) { return New(Name), nil }); err != nil {
		return fmt.Errorf("simbus: registering bus %q: %w", Name, err)
	}
	return nil
}

// stillFeed is a board lying flat: gravity on +z plus noise of about
// the size the chips show at rest, from a fixed-seed generator so every
// run measures the same values.
type stillFeed struct{ state uint64 }

func newStillFeed(seed uint64) *stillFeed { return &stillFeed{state: seed} }

// noise is uniform in [-a, a), from a xorshift64* generator.
func (s *stillFeed) noise(a float64) float64 {
	s.state ^= s.state >> 12
	s.state ^= s.state << 25
	s.state ^= s.state >> 27
	u := float64((s.state*2685821657736338717)>>11) / (1 << 53)
	return a * (2*u - 1)
}

func (s *stillFeed) Next() (Frame, error) {
	var f Frame
	for i := range 3 {
		f.Accel[i] = s.noise(0.02) // m/s², a few mg
		f.Gyro[i] = s.noise(0.002) // rad/s, about 0.1 °/s
	}
	f.Accel[2] += gravity
	return f, nil
}

// pull takes the next frame from f; the error names the chip and wraps
// the feed's, so io.EOF stays visible to errors.Is through the drivers.
func pull(f Feed, chipName string) (Frame, error) {
	fr, err := f.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, fmt.Errorf("%s: feed ended: %w", chipName, err)
		}
		return Frame{}, fmt.Errorf("%s: feed: %w", chipName, err)
	}
	return fr, nil
}

// toCounts converts v/lsb to the nearest integer clipped to [lo, hi], as
// the chips' converters saturate; NaN (a broken feed) reads as 0.
func toCounts(v, lsb float64, lo, hi int) int {
	x := math.Round(v / lsb)
	switch {
	case math.IsNaN(x):
		return 0
	case x < float64(lo):
		return lo
	case x > float64(hi):
		return hi
	}
	return int(x)
}

// inRange reports whether a read of n bytes from register ptr, in a
// register space of size regs that wraps, covers register reg.
func inRange(ptr byte, n int, reg byte, regs int) bool {
	return (int(reg)-int(ptr)+regs)%regs < n
}
