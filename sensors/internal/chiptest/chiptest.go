// Package chiptest holds the I²C transcripts of the MPU-6050 and ADXL345
// drivers, byte for byte, so the driver tests (against i2ctest.Playback)
// and the emulator tests (against sensors/simbus) check the same bytes:
// a transcript the drivers expect must also be what the emulated chips
// answer.
package chiptest

import "periph.io/x/conn/v3/i2c/i2ctest"

// MPUTemp25C is TEMP_OUT at 25 °C by the MPU-6050 formula
// raw/340 + 36.53, rounded; the emulator reports this constant.
const MPUTemp25C int16 = -3920

// MPUInit is the transcript of mpu6050.New at addr: WHO_AM_I, reset, wake
// with the PLL clock, SMPLRT_DIV, CONFIG (DLPF), GYRO_CONFIG, ACCEL_CONFIG.
func MPUInit(addr uint16, id, div, dlpf, gyroSel, accelSel byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x75}, R: []byte{id}},
		{Addr: addr, W: []byte{0x6B, 0x80}},
		{Addr: addr, W: []byte{0x6B, 0x01}},
		{Addr: addr, W: []byte{0x19, div}},
		{Addr: addr, W: []byte{0x1A, dlpf}},
		{Addr: addr, W: []byte{0x1B, gyroSel << 3}},
		{Addr: addr, W: []byte{0x1C, accelSel << 3}},
	}
}

// MPUBurst is the 14-byte ACCEL_XOUT_H..GYRO_ZOUT_L read, big-endian.
func MPUBurst(ax, ay, az, temp, gx, gy, gz int16) []byte {
	b := make([]byte, 0, 14)
	for _, v := range []int16{ax, ay, az, temp, gx, gy, gz} {
		b = append(b, byte(uint16(v)>>8), byte(v))
	}
	return b
}

// MPUSenseRaw are the raw values of MPUSenseEachRange's burst: 1 g, -1 g,
// 0.5 g at ±2 g (twice that per range step), 25 °C, and 1, -1, 10 °/s at
// ±250 °/s.
var MPUSenseRaw = [7]int16{16384, -16384, 8192, MPUTemp25C, 131, -131, 1310}

// MPUSenseEachRange: New at 0x69 and 100 Hz (SMPLRT_DIV 9, DLPF 44 Hz)
// with AFS_SEL = FS_SEL = sel, one Sense, then Halt.
func MPUSenseEachRange(sel byte) []i2ctest.IO {
	r := MPUSenseRaw
	ops := MPUInit(0x69, 0x68, 9, 3, sel, sel)
	return append(ops,
		i2ctest.IO{Addr: 0x69, W: []byte{0x3B}, R: MPUBurst(r[0], r[1], r[2], r[3], r[4], r[5], r[6])},
		i2ctest.IO{Addr: 0x69, W: []byte{0x6B, 0x41}})
}

// MPUDefault is New with nil options: 0x68, 100 Hz, ±2 g, ±250 °/s.
func MPUDefault() []i2ctest.IO { return MPUInit(0x68, 0x68, 9, 3, 0, 0) }

// MPU6500At50Hz is New at 50 Hz (SMPLRT_DIV 19, DLPF 21 Hz) on a chip
// answering the MPU-6500's WHO_AM_I.
func MPU6500At50Hz() []i2ctest.IO { return MPUInit(0x68, 0x70, 19, 4, 0, 0) }

// MPUWrongID is a WHO_AM_I read that finds no MPU family member.
func MPUWrongID() []i2ctest.IO {
	return []i2ctest.IO{{Addr: 0x68, W: []byte{0x75}, R: []byte{0x98}}}
}

// MPUSenseTwice is New with defaults and a burst read of small raw values
// (1, 2, 3 LSB on the accelerometer); the NACK test fails the read once
// and retries it with this transcript's last entry.
func MPUSenseTwice() []i2ctest.IO {
	return append(MPUDefault(), i2ctest.IO{Addr: 0x68, W: []byte{0x3B}, R: MPUBurst(1, 2, 3, MPUTemp25C, 5, 6, 7)})
}

// ADXLInit is the transcript of adxl345.New: DEVID, standby, BW_RATE,
// DATA_FORMAT, measure.
func ADXLInit(addr uint16, rateCode, format byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x00}, R: []byte{0xE5}},
		{Addr: addr, W: []byte{0x2D, 0x00}},
		{Addr: addr, W: []byte{0x2C, rateCode}},
		{Addr: addr, W: []byte{0x31, format}},
		{Addr: addr, W: []byte{0x2D, 0x08}},
	}
}

// ADXLFullScale is the largest positive count in full resolution at a
// DATA_FORMAT range code: the output has 10 bits at ±2 g and one more per
// range step, 13 at ±16 g.
func ADXLFullScale(rangeBits byte) int16 { return 1<<(9+rangeBits) - 1 }

// ADXLSenseRaw are the raw values of ADXLSenseEachRange's read: 1 g, -2 g
// and the positive full scale of the range.
func ADXLSenseRaw(rangeBits byte) [3]int16 {
	return [3]int16{256, -512, ADXLFullScale(rangeBits)}
}

// ADXLSenseEachRange: New at 0x1D and 100 Hz in full resolution at a
// range code, one Sense, then Halt.
func ADXLSenseEachRange(rangeBits byte) []i2ctest.IO {
	var data []byte
	for _, v := range ADXLSenseRaw(rangeBits) {
		data = append(data, byte(v), byte(uint16(v)>>8))
	}
	return append(ADXLInit(0x1D, 0x0A, 0x08|rangeBits),
		i2ctest.IO{Addr: 0x1D, W: []byte{0x32}, R: data},
		i2ctest.IO{Addr: 0x1D, W: []byte{0x2D, 0x00}})
}

// ADXLWrongID is a DEVID read that finds no ADXL345.
func ADXLWrongID() []i2ctest.IO {
	return []i2ctest.IO{{Addr: 0x53, W: []byte{0x00}, R: []byte{0x00}}}
}

// ADXLSenseTwice is New with defaults (0x53, 100 Hz, ±2 g) and a read of
// 1, 2, 3 LSB; the NACK test fails it once and retries it.
func ADXLSenseTwice() []i2ctest.IO {
	return append(ADXLInit(0x53, 0x0A, 0x08), i2ctest.IO{Addr: 0x53, W: []byte{0x32}, R: []byte{1, 0, 2, 0, 3, 0}})
}
