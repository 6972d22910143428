package simbus

import "fmt"

// ADXL345 registers, named as in the ADXL345 data sheet (Table 19,
// register map).
const (
	adxlDEVID          = 0x00
	adxlTHRESH_TAP     = 0x1D
	adxlOFSX           = 0x1E // offsets, 15.6 mg/LSB, added to the output
	adxlOFSY           = 0x1F
	adxlOFSZ           = 0x20
	adxlDUR            = 0x21
	adxlLatent         = 0x22
	adxlWindow         = 0x23
	adxlTHRESH_ACT     = 0x24
	adxlTHRESH_INACT   = 0x25
	adxlTIME_INACT     = 0x26
	adxlACT_INACT_CTL  = 0x27
	adxlTHRESH_FF      = 0x28
	adxlTIME_FF        = 0x29
	adxlTAP_AXES       = 0x2A
	adxlACT_TAP_STATUS = 0x2B
	adxlBW_RATE        = 0x2C // LOW_POWER 4, Rate 3:0
	adxlPOWER_CTL      = 0x2D // Link 5, AUTO_SLEEP 4, Measure 3, Sleep 2, Wakeup 1:0
	adxlINT_ENABLE     = 0x2E
	adxlINT_MAP        = 0x2F
	adxlINT_SOURCE     = 0x30
	adxlDATA_FORMAT    = 0x31 // SELF_TEST 7, SPI 6, INT_INVERT 5, FULL_RES 3, Justify 2, Range 1:0
	adxlDATAX0         = 0x32
	adxlDATAX1         = 0x33
	adxlDATAY0         = 0x34
	adxlDATAY1         = 0x35
	adxlDATAZ0         = 0x36
	adxlDATAZ1         = 0x37
	adxlFIFO_CTL       = 0x38
	adxlFIFO_STATUS    = 0x39

	// adxlRegs is the size of the register space the emulator decodes;
	// the register pointer is taken modulo it and wraps from 0x3F to
	// 0x00 (the data sheet does not say what the chip does past 0x39).
	adxlRegs = 0x40
)

// Bits and values.
const (
	adxlMeasure    = 0x08 // POWER_CTL
	adxlFULL_RES   = 0x08 // DATA_FORMAT
	adxlJustify    = 0x04 // DATA_FORMAT: left-justified (MSB at bit 15)
	adxlRange      = 0x03 // DATA_FORMAT 1:0: ±2, 4, 8, 16 g
	adxlDATA_READY = 0x80 // INT_SOURCE
	adxlWatermark  = 0x02 // INT_SOURCE: set at reset (0 samples ≥ a 0 watermark)

	adxlDevID       = 0xE5
	adxlBW_RATEInit = 0x0A // 100 Hz

	// adxlFullResG is the full-resolution scale, g per LSB: the drivers'
	// 3.9 mg (data sheet Table 1, typical), so round trips are exact.
	adxlFullResG = 0.0039
	// adxlOffsetG is the scale of OFSX..OFSZ, g per LSB.
	adxlOffsetG = 0.0156
)

// adxlWritable maps each writable register to the bits a write changes;
// a register not listed is read-only or reserved and ignores writes.
var adxlWritable = writable(map[byte]byte{
	adxlTAP_AXES:    0x0F,
	adxlBW_RATE:     0x1F,
	adxlPOWER_CTL:   0x3F,
	adxlINT_ENABLE:  0xFF,
	adxlINT_MAP:     0xFF,
	adxlDATA_FORMAT: 0xEF,
	adxlFIFO_CTL:    0xFF,
}, [2]byte{adxlTHRESH_TAP, adxlTIME_FF})

// adxl is an emulated ADXL345. Tap, activity and free-fall detection,
// the FIFO, self-test and the interrupt pins are not emulated: their
// registers hold what is written and do nothing. OFSX..OFSZ are applied.
type adxl struct{ regChip }

func newADXL() *adxl {
	a := &adxl{regChip{
		regs: make([]byte, adxlRegs), writable: adxlWritable, data: adxlDATAX0,
		idReg: adxlDEVID, id: adxlDevID,
		statusReg: adxlINT_SOURCE, ready: adxlDATA_READY | adxlWatermark, idle: adxlWatermark,
		still: 0x345,
	}}
	a.setFeed(nil)
	a.regs[adxlBW_RATE] = adxlBW_RATEInit
	return a
}

func (a *adxl) String() string { return fmt.Sprintf("ADXL345 at %#02x", ADXLAddr) }

func (a *adxl) tx(w, r []byte) error { return a.transact(a, w, r) }

// write stores every byte: no ADXL345 register acts when written.
func (a *adxl) write(reg, v byte) bool { return true }

func (a *adxl) sampling() bool { return a.regs[adxlPOWER_CTL]&adxlMeasure != 0 }

// latch takes a frame from the feed into DATAX0..DATAZ1 in the
// configured format: 10 bits at 256/128/64/32 LSB/g, or full resolution
// at 3.9 mg/LSB with one more bit per range step (13 at ±16 g);
// saturated at the output's width, right-justified with sign extension
// or left-justified.
func (a *adxl) latch(f Frame) {
	df := a.regs[adxlDATA_FORMAT]
	rng := int(df & adxlRange)
	bits, lsbG := 10, 1/float64(int(256)>>rng)
	if df&adxlFULL_RES != 0 {
		bits, lsbG = 10+rng, adxlFullResG
	}
	lo, hi := -1<<(bits-1), 1<<(bits-1)-1
	for i := range 3 {
		v := f.Accel[i] + float64(int8(a.regs[adxlOFSX+i]))*adxlOffsetG*gravity
		n := toCounts(v, lsbG*gravity, lo, hi)
		if df&adxlJustify != 0 {
			n <<= 16 - bits
		}
		a.regs[adxlDATAX0+2*i] = byte(n)
		a.regs[adxlDATAX0+2*i+1] = byte(uint16(n) >> 8)
	}
}
