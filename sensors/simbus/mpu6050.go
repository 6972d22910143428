package simbus

import (
	"fmt"
	"math"
)

// MPU-6050 registers, named as in the MPU-6000/MPU-6050 Register Map and
// Descriptions (RM-MPU-6000A-00, revision 4.2), section 3.
const (
	mpuSELF_TEST_X        = 0x0D
	mpuSELF_TEST_A        = 0x10
	mpuSMPLRT_DIV         = 0x19
	mpuCONFIG             = 0x1A // EXT_SYNC_SET 5:3, DLPF_CFG 2:0
	mpuGYRO_CONFIG        = 0x1B // XG_ST, YG_ST, ZG_ST 7:5, FS_SEL 4:3
	mpuACCEL_CONFIG       = 0x1C // XA_ST, YA_ST, ZA_ST 7:5, AFS_SEL 4:3
	mpuFIFO_EN            = 0x23
	mpuI2C_MST_CTRL       = 0x24
	mpuI2C_SLV0_ADDR      = 0x25
	mpuI2C_SLV4_CTRL      = 0x34
	mpuI2C_SLV4_DI        = 0x35
	mpuI2C_MST_STATUS     = 0x36
	mpuINT_PIN_CFG        = 0x37
	mpuINT_ENABLE         = 0x38
	mpuINT_STATUS         = 0x3A
	mpuACCEL_XOUT_H       = 0x3B
	mpuACCEL_XOUT_L       = 0x3C
	mpuACCEL_YOUT_H       = 0x3D
	mpuACCEL_YOUT_L       = 0x3E
	mpuACCEL_ZOUT_H       = 0x3F
	mpuACCEL_ZOUT_L       = 0x40
	mpuTEMP_OUT_H         = 0x41
	mpuTEMP_OUT_L         = 0x42
	mpuGYRO_XOUT_H        = 0x43
	mpuGYRO_XOUT_L        = 0x44
	mpuGYRO_YOUT_H        = 0x45
	mpuGYRO_YOUT_L        = 0x46
	mpuGYRO_ZOUT_H        = 0x47
	mpuGYRO_ZOUT_L        = 0x48
	mpuEXT_SENS_DATA_00   = 0x49
	mpuEXT_SENS_DATA_23   = 0x60
	mpuI2C_SLV0_DO        = 0x63
	mpuI2C_SLV3_DO        = 0x66
	mpuI2C_MST_DELAY_CTRL = 0x67
	mpuSIGNAL_PATH_RESET  = 0x68
	mpuUSER_CTRL          = 0x6A
	mpuPWR_MGMT_1         = 0x6B
	mpuPWR_MGMT_2         = 0x6C
	mpuFIFO_COUNTH        = 0x72
	mpuFIFO_COUNTL        = 0x73
	mpuFIFO_R_W           = 0x74
	mpuWHO_AM_I           = 0x75

	// mpuRegs is the size of the register space; the register pointer
	// is taken modulo it and wraps from 0x7F to 0x00.
	mpuRegs = 0x80
)

// Bits.
const (
	mpuDEVICE_RESET   = 0x80 // PWR_MGMT_1
	mpuSLEEP          = 0x40 // PWR_MGMT_1
	mpuCYCLE          = 0x20 // PWR_MGMT_1
	mpuTEMP_DIS       = 0x08 // PWR_MGMT_1
	mpuCLKSEL         = 0x07 // PWR_MGMT_1 2:0
	mpuCLKSEL_STOP    = 0x07 // stops the clock: no samples
	mpuSTBY_XA        = 0x20 // PWR_MGMT_2; YA, ZA, XG, YG, ZG follow down to bit 0
	mpuSIG_COND_RESET = 0x01 // USER_CTRL: clears the sensor registers
	mpuDATA_RDY_INT   = 0x01 // INT_STATUS

	mpuWhoAmI6050 = 0x68
	// mpuTempRaw is TEMP_OUT at a constant 25 °C: (25 − 36.53)·340 = −3920.2.
	mpuTempRaw = -3920
)

// mpuWritable maps each writable register to the bits a write changes;
// a register not listed is read-only or reserved and ignores writes.
var mpuWritable = writable(map[byte]byte{
	mpuSMPLRT_DIV:         0xFF,
	mpuCONFIG:             0x3F,
	mpuGYRO_CONFIG:        0xF8,
	mpuACCEL_CONFIG:       0xF8,
	mpuFIFO_EN:            0xFF,
	mpuI2C_MST_CTRL:       0xFF,
	mpuINT_PIN_CFG:        0xFE,
	mpuINT_ENABLE:         0x19, // FIFO_OFLOW_EN, I2C_MST_INT_EN, DATA_RDY_EN
	mpuI2C_MST_DELAY_CTRL: 0x9F,
	mpuUSER_CTRL:          0x70, // FIFO_EN, I2C_MST_EN, I2C_IF_DIS; the reset bits clear themselves
	mpuPWR_MGMT_1:         0xEF,
	mpuPWR_MGMT_2:         0xFF,
}, [2]byte{mpuSELF_TEST_X, mpuSELF_TEST_A}, [2]byte{mpuI2C_SLV0_ADDR, mpuI2C_SLV4_CTRL}, [2]byte{mpuI2C_SLV0_DO, mpuI2C_SLV3_DO})

// mpuAccelLSB and mpuGyroLSB are the sensitivities per AFS_SEL / FS_SEL:
// LSB/g and LSB/(°/s).
var (
	mpuAccelLSB = [4]float64{16384, 8192, 4096, 2048}
	mpuGyroLSB  = [4]float64{131, 65.5, 32.8, 16.4}
)

// mpu is an emulated MPU-6050. The self-test, FIFO, interrupt pins and
// auxiliary I²C master are not emulated: their registers hold what is
// written and do nothing.
type mpu struct{ regChip }

func newMPU() *mpu {
	m := &mpu{regChip{
		regs: make([]byte, mpuRegs), writable: mpuWritable, data: mpuACCEL_XOUT_H,
		idReg: mpuWHO_AM_I, id: mpuWhoAmI6050,
		statusReg: mpuINT_STATUS, ready: mpuDATA_RDY_INT, idle: 0,
		still: 0x6050,
	}}
	m.setFeed(nil)
	m.reset()
	return m
}

func (m *mpu) String() string { return fmt.Sprintf("MPU-6050 at %#02x", MPUAddr) }

func (m *mpu) tx(w, r []byte) error { return m.transact(m, w, r) }

// reset restores the power-on values: every register 0 except
// PWR_MGMT_1, which starts asleep.
func (m *mpu) reset() {
	clear(m.regs)
	m.regs[mpuPWR_MGMT_1] = mpuSLEEP
}

// sampling: asleep or with the clock stopped, the data registers keep
// their last values.
func (m *mpu) sampling() bool {
	p := m.regs[mpuPWR_MGMT_1]
	return p&mpuSLEEP == 0 && p&mpuCLKSEL != mpuCLKSEL_STOP
}

// write: DEVICE_RESET resets the chip (and is not stored);
// SIG_COND_RESET clears the sensor registers.
func (m *mpu) write(reg, v byte) bool {
	switch reg {
	case mpuPWR_MGMT_1:
		if v&mpuDEVICE_RESET != 0 {
			m.reset()
			return false
		}
	case mpuUSER_CTRL:
		if v&mpuSIG_COND_RESET != 0 {
			for r := mpuACCEL_XOUT_H; r <= mpuGYRO_ZOUT_L; r++ {
				m.regs[r] = 0
			}
		}
	}
	return true
}

// latch takes a frame from the feed into the data registers, at the
// configured full scales; axes in standby (PWR_MGMT_2) keep their values.
func (m *mpu) latch(f Frame) {
	accelScale := gravity / mpuAccelLSB[m.regs[mpuACCEL_CONFIG]>>3&3]    // m/s² per LSB, as the driver computes it
	gyroScale := math.Pi / 180 / mpuGyroLSB[m.regs[mpuGYRO_CONFIG]>>3&3] // rad/s per LSB
	stby := m.regs[mpuPWR_MGMT_2]
	for i := range 3 {
		if stby&(mpuSTBY_XA>>i) == 0 {
			m.put(mpuACCEL_XOUT_H+2*i, toCounts(f.Accel[i], accelScale, -32768, 32767))
		}
		if stby&(mpuSTBY_XA>>(3+i)) == 0 {
			m.put(mpuGYRO_XOUT_H+2*i, toCounts(f.Gyro[i], gyroScale, -32768, 32767))
		}
	}
	if m.regs[mpuPWR_MGMT_1]&mpuTEMP_DIS == 0 {
		m.put(mpuTEMP_OUT_H, mpuTempRaw)
	}
}

// put stores a 16-bit two's complement value big-endian at reg, reg+1.
func (m *mpu) put(reg, v int) {
	m.regs[reg] = byte(uint16(v) >> 8)
	m.regs[reg+1] = byte(v)
}
