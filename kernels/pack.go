package kernels

import "fmt"

// Words returns the number of 64-bit words that hold k packed bits.
func Words(k int) int { return (k + 63) / 64 }

// PackSigns packs the signs of src (rows×k, row-major) into dst (rows rows of
// Words(k) words). Bit kk of a row is 1 iff src value kk is < 0, so +0, −0
// and NaN all pack as +1 (bit 0), as sign(x) = x ≥ 0 ? +1 : −1 in larq.
// Padding bits are written as zero.
func PackSigns(dst []uint64, src []float32, rows, k int) {
	kw := Words(k)
	checkDims("PackSigns", rows, k)
	checkLen("PackSigns", "dst", len(dst), rows*kw)
	checkLen("PackSigns", "src", len(src), rows*k)
	for r := 0; r < rows; r++ {
		row := src[r*k : r*k+k]
		out := dst[r*kw : r*kw+kw]
		full := k / 64
		for w := 0; w < full; w++ {
			out[w] = packWord(row[w*64 : w*64+64])
		}
		if full < kw {
			out[full] = packTail(row[full*64:])
		}
	}
}

// packWord returns the sign bits of exactly 64 floats.
func packWord(x []float32) uint64 {
	x = x[:64]
	var word uint64
	for i := 63; i >= 0; i-- {
		word <<= 1
		if x[i] < 0 {
			word |= 1
		}
	}
	return word
}

// packTail packs fewer than 64 floats; the missing high bits stay zero.
func packTail(x []float32) uint64 {
	var word uint64
	for i := len(x) - 1; i >= 0; i-- {
		word <<= 1
		if x[i] < 0 {
			word |= 1
		}
	}
	return word
}

// UnpackSigns writes ±1 into dst (rows×k, row-major) from the packed rows in
// src (rows rows of Words(k) words): −1 where the bit is 1, +1 where it is 0.
func UnpackSigns(dst []float32, src []uint64, rows, k int) {
	kw := Words(k)
	checkDims("UnpackSigns", rows, k)
	checkLen("UnpackSigns", "dst", len(dst), rows*k)
	checkLen("UnpackSigns", "src", len(src), rows*kw)
	const one = 0x3f800000 // float32 bits of +1; with the sign bit set it is −1
	for r := 0; r < rows; r++ {
		out := dst[r*k : r*k+k]
		in := src[r*kw : r*kw+kw]
		for kk := range out {
			bit := uint32(in[kk>>6]>>(kk&63)) & 1
			out[kk] = f32frombits(one | bit<<31)
		}
	}
}

func checkDims(kernel string, dims ...int) {
	for _, d := range dims {
		if d < 0 {
			// A copy goes to Sprintf so that dims itself does not
			// escape: the variadic slice stays on the stack and the
			// check costs no allocation.
			panic(fmt.Sprintf("kernels.%s: negative size %d in %v", kernel, d, append([]int(nil), dims...)))
		}
	}
}

// checkLen panics unless a slice named what holds at least need elements.
func checkLen(kernel, what string, have, need int) {
	if have < need {
		panic(fmt.Sprintf("kernels.%s: %s has %d elements, needs at least %d", kernel, what, have, need))
	}
}
