// Package mpu6050 drives the InvenSense MPU-6050 6-axis accelerometer and
// gyroscope over I²C, in periph.io's driver shape.
//
// Register addresses, bit fields and scale factors follow the MPU-6000/6050
// Register Map and Descriptions (RM-MPU-6000A-00, revision 4.2). Family
// members that answer WHO_AM_I with another id (MPU-6500 0x70, MPU-9250
// 0x71) keep these registers and scales for the accelerometer and gyroscope
// and are accepted; their temperature formula differs (see Reading.Temp).
package mpu6050

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/bnnd/bnnd/sensors/internal/regio"
)

// Registers used (RM-MPU-6000A-00 rev 4.2, section 3).
const (
	regSmplrtDiv   = 0x19 // SMPLRT_DIV: rate = gyro output rate / (1 + div)
	regConfig      = 0x1A // CONFIG: DLPF_CFG in bits 2:0
	regGyroConfig  = 0x1B // GYRO_CONFIG: FS_SEL in bits 4:3
	regAccelConfig = 0x1C // ACCEL_CONFIG: AFS_SEL in bits 4:3
	regAccelXoutH  = 0x3B // first of 14 data bytes: accel XYZ, temp, gyro XYZ
	regPwrMgmt1    = 0x6B // PWR_MGMT_1: DEVICE_RESET bit 7, SLEEP bit 6, CLKSEL 2:0
	regWhoAmI      = 0x75 // WHO_AM_I: 0x68 on the MPU-6050

	pwrDeviceReset = 0x80
	pwrSleep       = 0x40
	pwrClkPLLGyroX = 0x01 // PLL with X axis gyroscope reference (recommended over the 8 MHz oscillator)

	burstLen = 14
)

// Known WHO_AM_I values.
const (
	IDMPU6050 = 0x68
	IDMPU6500 = 0x70
	IDMPU9250 = 0x71
)

// Standard gravity, for converting g to m/s².
const gravity = 9.80665

// AccelRange is the accelerometer full scale in g.
type AccelRange int

// GyroRange is the gyroscope full scale in degrees per second.
type GyroRange int

// accelLSBPerG maps the full scale to AFS_SEL and sensitivity (Table in
// register 0x3B description: 16384, 8192, 4096, 2048 LSB/g).
var accelScales = map[AccelRange]struct {
	sel     byte
	lsbPerG float64
}{2: {0, 16384}, 4: {1, 8192}, 8: {2, 4096}, 16: {3, 2048}}

// gyroScales: FS_SEL and sensitivity (131, 65.5, 32.8, 16.4 LSB/(°/s)).
var gyroScales = map[GyroRange]struct {
	sel        byte
	lsbPerDegS float64
}{250: {0, 131}, 500: {1, 65.5}, 1000: {2, 32.8}, 2000: {3, 16.4}}

// Opts configure the device.
type Opts struct {
	Addr       uint16     // 0x68 (AD0 low) or 0x69 (AD0 high)
	SampleRate int        // Hz, 4..1000; the chip's internal sample rate
	AccelRange AccelRange // 2, 4, 8 or 16 g
	GyroRange  GyroRange  // 250, 500, 1000 or 2000 °/s
}

// DefaultOpts: address 0x68, 100 Hz, ±2 g, ±250 °/s.
var DefaultOpts = Opts{Addr: 0x68, SampleRate: 100, AccelRange: 2, GyroRange: 250}

// Sleep waits after a device reset; a variable so tests need not wait.
var Sleep = time.Sleep

// resetDelay is how long the chip needs after DEVICE_RESET before it
// accepts register writes (the register map asks for 100 ms).
const resetDelay = 100 * time.Millisecond

// Dev is an MPU-6050 on an I²C bus.
type Dev struct {
	c          regio.Chip
	opts       Opts
	id         byte
	accelScale float64 // m/s² per LSB
	gyroScale  float64 // rad/s per LSB
	buf        [burstLen]byte
}

// Reading is one sample in SI units.
type Reading struct {
	Accel [3]float64 // m/s², x y z
	Gyro  [3]float64 // rad/s, x y z
	// Temp is the die temperature in °C by the MPU-6050 formula
	// raw/340 + 36.53; on family members with another id it is not
	// calibrated.
	Temp float64
}

// dlpfFor picks the digital low-pass filter setting (CONFIG DLPF_CFG) with
// the widest accelerometer bandwidth that is at most half the sample rate:
// 1→184 Hz, 2→94, 3→44, 4→21, 5→10, 6→5. It never picks 0 (filter off),
// which would switch the gyro output rate to 8 kHz.
func dlpfFor(rate int) byte {
	bands := []struct {
		cfg byte
		hz  int
	}{{1, 184}, {2, 94}, {3, 44}, {4, 21}, {5, 10}, {6, 5}}
	for _, b := range bands {
		if b.hz*2 <= rate {
			return b.cfg
		}
	}
	return 6
}

// New checks the chip id, resets and configures the device.
func New(bus i2c.Bus, opts *Opts) (*Dev, error) {
	if opts == nil {
		o := DefaultOpts
		opts = &o
	}
	if opts.Addr != 0x68 && opts.Addr != 0x69 {
		return nil, fmt.Errorf("mpu6050: address %#x is not 0x68 or 0x69", opts.Addr)
	}
	as, ok := accelScales[opts.AccelRange]
	if !ok {
		return nil, fmt.Errorf("mpu6050: accelerometer range %dg is not 2, 4, 8 or 16", opts.AccelRange)
	}
	gs, ok := gyroScales[opts.GyroRange]
	if !ok {
		return nil, fmt.Errorf("mpu6050: gyroscope range %d°/s is not 250, 500, 1000 or 2000", opts.GyroRange)
	}
	if opts.SampleRate < 4 || opts.SampleRate > 1000 {
		return nil, fmt.Errorf("mpu6050: sample rate %d Hz is outside 4..1000", opts.SampleRate)
	}
	d := &Dev{
		c:          regio.Chip{Dev: i2c.Dev{Bus: bus, Addr: opts.Addr}, Name: "mpu6050"},
		opts:       *opts,
		accelScale: gravity / as.lsbPerG,
		gyroScale:  math.Pi / 180 / gs.lsbPerDegS,
	}
	var id [1]byte
	if err := d.c.Tx([]byte{regWhoAmI}, id[:]); err != nil {
		return nil, d.c.Errorf("reading WHO_AM_I: %w", err)
	}
	d.id = id[0]
	switch d.id {
	case IDMPU6050, IDMPU6500, IDMPU9250:
	default:
		return nil, d.c.Errorf("WHO_AM_I is %#02x, want %#02x (MPU-6050; 0x70/0x71 family members also accepted)", d.id, IDMPU6050)
	}
	if err := d.c.Write(regPwrMgmt1, pwrDeviceReset); err != nil {
		return nil, err
	}
	Sleep(resetDelay)
	// With the DLPF on, the gyro output rate is 1 kHz: div = 1000/rate - 1.
	div := byte(1000/opts.SampleRate - 1)
	err := d.c.WriteAll([][2]byte{
		{regPwrMgmt1, pwrClkPLLGyroX}, // wake up (clear SLEEP), PLL clock
		{regSmplrtDiv, div},
		{regConfig, dlpfFor(opts.SampleRate)},
		{regGyroConfig, gs.sel << 3},
		{regAccelConfig, as.sel << 3},
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ID is the WHO_AM_I value read at New.
func (d *Dev) ID() byte { return d.id }

// SampleRate is the internal sample rate in Hz the chip runs at:
// 1000/(SMPLRT_DIV+1), which may round below the requested rate.
func (d *Dev) SampleRate() int { return 1000 / (1000 / d.opts.SampleRate) }

func (d *Dev) String() string {
	chip := map[byte]string{IDMPU6050: "MPU-6050", IDMPU6500: "MPU-6500", IDMPU9250: "MPU-9250"}[d.id]
	return fmt.Sprintf("%s{%s, addr=%#x, ±%dg, ±%d°/s, %d Hz}", chip, d.c.Bus, d.opts.Addr, d.opts.AccelRange, d.opts.GyroRange, d.SampleRate())
}

// Sense reads all axes and the temperature in one 14-byte burst from
// ACCEL_XOUT_H (so all values come from the same sample).
func (d *Dev) Sense(r *Reading) error {
	if err := d.c.Burst(regAccelXoutH, d.buf[:]); err != nil {
		return err
	}
	be := func(i int) float64 { return float64(int16(binary.BigEndian.Uint16(d.buf[i:]))) }
	for i := 0; i < 3; i++ {
		r.Accel[i] = be(2*i) * d.accelScale
		r.Gyro[i] = be(8+2*i) * d.gyroScale
	}
	r.Temp = be(6)/340 + 36.53
	return nil
}

// Halt puts the chip to sleep (PWR_MGMT_1 SLEEP); New wakes it again.
func (d *Dev) Halt() error {
	return d.c.Write(regPwrMgmt1, pwrSleep|pwrClkPLLGyroX)
}
