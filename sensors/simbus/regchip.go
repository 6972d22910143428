package simbus

import "fmt"

// regChip is what both emulated chips are: a register space behind a
// pointer that a transaction's first written byte sets and that every
// further byte written or read advances, wrapping at the end of the space
// (see the package comment). A read that covers the first data register
// first latches a frame from the feed, unless the chip is not sampling.
// A chip type embeds a regChip and adds its own behaviour (chipModel).
type regChip struct {
	regs     []byte
	writable map[byte]byte // the bits a write changes, per writable register
	data     byte          // the first data register
	ptr      byte

	// The identity register reads as id (a field, so tests can pose as
	// other chips); the status register reads as ready while sampling,
	// else as idle: each data read takes a fresh sample, so one is always
	// ready.
	idReg, statusReg byte
	id, ready, idle  byte

	feed  Feed
	still uint64 // seed of the still board measured without a feed
}

// chipModel is what a chip adds to its regChip.
type chipModel interface {
	fmt.Stringer
	// write handles a byte written to reg and reports whether it is then
	// stored (through the register's writable bits).
	write(reg, v byte) bool
	sampling() bool
	latch(Frame)
}

func (c *regChip) setFeed(f Feed) {
	if f == nil {
		f = newStillFeed(c.still)
	}
	c.feed = f
}

// transact handles the bytes of one transaction to chip m, whose regChip
// c is.
func (c *regChip) transact(m chipModel, w, r []byte) error {
	if len(w) > 0 {
		c.ptr = byte(int(w[0]) % len(c.regs))
		for _, v := range w[1:] {
			if mask, ok := c.writable[c.ptr]; m.write(c.ptr, v) && ok {
				c.regs[c.ptr] = c.regs[c.ptr]&^mask | v&mask
			}
			c.advance()
		}
	}
	if len(r) == 0 {
		return nil
	}
	if m.sampling() && inRange(c.ptr, len(r), c.data, len(c.regs)) {
		f, err := pull(c.feed, m.String())
		if err != nil {
			return err
		}
		m.latch(f)
	}
	for i := range r {
		r[i] = c.read(c.ptr, m.sampling())
		c.advance()
	}
	return nil
}

func (c *regChip) advance() { c.ptr = byte((int(c.ptr) + 1) % len(c.regs)) }

func (c *regChip) read(reg byte, sampling bool) byte {
	switch reg {
	case c.idReg:
		return c.id
	case c.statusReg:
		if sampling {
			return c.ready
		}
		return c.idle
	}
	return c.regs[reg]
}

// writable returns masks (the bits a write changes, per register) with
// every register of the inclusive ranges full added as wholly writable.
func writable(masks map[byte]byte, full ...[2]byte) map[byte]byte {
	for _, r := range full {
		for reg := r[0]; reg <= r[1]; reg++ {
			masks[reg] = 0xFF
		}
	}
	return masks
}
