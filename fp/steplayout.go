package fp

// stepLayout is how the AVX-512 kernel moves the 64 codes of a block of
// width w (2..16) between the packed words and 32-bit lanes with byte
// permutes: a half block (32 codes) is exactly 4w bytes, so one register
// holds it, and code k of a half starts at bit k·w: in byte k·w/8 at bit
// k·w%8, spanning at most three bytes.
type stepLayout struct {
	// unpackIdx[h][4k+b] = byte 2w·h + k·w/8 + b of the half: the four
	// bytes that lane k of group h (codes 16h..16h+15 of the half) shifts
	// right by shifts[k] and masks.
	unpackIdx [2][64]byte // 0
	// packIdx[c][o], under packMask[c] bit o: the byte of the lanes
	// (codes shifted left by shifts[k], two registers of 16) that is the
	// c-th contribution to output byte o of the half.
	packIdx   [4][64]byte // 128
	shifts    [16]uint32  // 384: k·w mod 8 (the same for every 16 codes)
	packMask  [4]uint64   // 448
	halfMask  uint64      // 480: the 4w bytes of a half
	codeMask  uint32      // 488
	_         uint32
	halfBytes uint64 // 496: 4w

	// AVX2: eight codes are exactly w bytes; VPSHUFB works within 16-byte
	// lanes, so both lanes see the same w bytes (lanes 0..3 and 4..7).
	shuf     [32]byte    // 504: unpack: lane k byte b = k·w/8 + b
	shifts8  [8]uint32   // 536: k·w mod 8
	packShuf [4][32]byte // 568: pack: the c-th contribution of the lanes of each 16-byte half to output byte o, or 0x80
	wBytes   uint64      // 696: w
}

// stepLayouts[w] for w = 2..16.
var stepLayouts = func() (ls [17]stepLayout) {
	for w := 2; w <= 16; w++ {
		l := &ls[w]
		l.codeMask = 1<<w - 1
		l.halfBytes = uint64(4 * w)
		l.halfMask = ^uint64(0) >> (64 - 4*w)
		for k := range 16 {
			l.shifts[k] = uint32(k * w % 8)
			for h := range 2 {
				for b := range 4 {
					l.unpackIdx[h][4*k+b] = byte((2*w*h + k*w/8 + b) & 63)
				}
			}
		}
		l.wBytes = uint64(w)
		for k := range 8 {
			l.shifts8[k] = uint32(k * w % 8)
			for b := range 4 {
				l.shuf[4*k+b] = byte((k*w/8 + b) & 15)
			}
		}
		for h := range 2 {
			for o := range 16 {
				c := 0
				for k := 4 * h; k < 4*h+4; k++ {
					if o < w && k*w < 8*o+8 && k*w+w > 8*o {
						l.packShuf[c][16*h+o] = byte(4*(k-4*h) + o - k*w/8)
						c++
					}
				}
				for ; c < 4; c++ {
					l.packShuf[c][16*h+o] = 0x80
				}
			}
		}
		for o := range 4 * w {
			c := 0
			for k := range 32 {
				if k*w < 8*o+8 && k*w+w > 8*o { // code k has bits in byte o
					l.packIdx[c][o] = byte(4*k + o - k*w/8)
					l.packMask[c] |= 1 << o
					c++
				}
			}
			if c > 4 {
				panic("fp: more than four codes in a byte")
			}
		}
	}
	return ls
}()
