// Package regio reads and writes the registers of a chip on an I²C bus
// for the drivers in sensors/mpu6050 and sensors/adxl345, with errors that
// name the chip, its address and the register.
package regio

import (
	"fmt"

	"periph.io/x/conn/v3/i2c"
)

// Chip is a device on an I²C bus; Name ("mpu6050") starts its errors.
type Chip struct {
	i2c.Dev
	Name string
}

// Errorf returns an error that names the chip and its address.
func (c *Chip) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s at %#x: "+format, append([]any{c.Name, c.Addr}, args...)...)
}

// Write sets register reg to val.
func (c *Chip) Write(reg, val byte) error {
	if err := c.Tx([]byte{reg, val}, nil); err != nil {
		return c.Errorf("writing %#02x to register %#02x: %w", val, reg, err)
	}
	return nil
}

// WriteAll writes each {register, value} pair in order, stopping at the
// first error: a chip's configuration sequence.
func (c *Chip) WriteAll(seq [][2]byte) error {
	for _, w := range seq {
		if err := c.Write(w[0], w[1]); err != nil {
			return err
		}
	}
	return nil
}

// Burst fills buf from consecutive registers starting at reg, in one
// transaction (so that the values come from the same sample).
func (c *Chip) Burst(reg byte, buf []byte) error {
	if err := c.Tx([]byte{reg}, buf); err != nil {
		return c.Errorf("burst read of %d bytes from %#02x: %w", len(buf), reg, err)
	}
	return nil
}
