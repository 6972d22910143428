package kernels

import "fmt"

// The 3×3 convolutions here are stride 1 with padding 1, on NHWC tensors.
// For the binary layers the border is padded with +1 (bit 0), like larq's
// pad_values=1: an out-of-image neighbour is a row of zero words, which is a
// valid ±1 operand, so a binary convolution is exactly Im2Col3x3Bits followed
// by BGemm with k = 9·c and needs no border correction. (Zero padding would
// need one, since 0 is not a ±1 value.) The first, real-input layer pads
// with real zeros.

// patch is the number of neighbours in a 3×3 window.
const patch = 9

func checkConv(kernel string, batch, h, w, c int) {
	checkDims(kernel, batch, h, w, c)
}

// Im2Col3x3Bits gathers 3×3 neighbourhoods of bit-packed NHWC activations.
// src[((b*h+y)*w+x)*cw + word] with cw = Words(c) holds the channels of
// pixel (b,y,x). dst gets batch·h·w rows of 9·cw words: for the neighbours
// (dy,dx) in row-major order over {−1,0,1}², the cw words of that neighbour,
// or cw zero words (+1 padding) when it lies outside the image. A conv
// weight row for one output channel uses the same 9·cw layout; when c is
// not a multiple of 64 the padding bits inside each row are zero in both
// operands and never count.
func Im2Col3x3Bits(dst []uint64, src []uint64, batch, h, w, c int) {
	checkConv("Im2Col3x3Bits", batch, h, w, c)
	cw := Words(c)
	checkLen("Im2Col3x3Bits", "src", len(src), batch*h*w*cw)
	checkLen("Im2Col3x3Bits", "dst", len(dst), batch*h*w*patch*cw)
	if cw == 1 {
		im2col3x3OneWord(dst, src, batch, h, w)
		return
	}
	im2col3x3(dst, src, batch, h, w, cw)
}

// im2col3x3OneWord is Im2Col3x3Bits for c ≤ 64 (one word per pixel, the
// cnn's 64 channels): a whole output row at a time, interior pixels by
// plain word moves, which runs several times faster than the general loop.
func im2col3x3OneWord(dst []uint64, src []uint64, batch, h, w int) {
	for b := 0; b < batch; b++ {
		for y := 0; y < h; y++ {
			outRow := dst[(b*h+y)*w*patch : (b*h+y+1)*w*patch]
			for dy := -1; dy <= 1; dy++ {
				yy := y + dy
				off := (dy + 1) * 3
				if yy < 0 || yy >= h {
					for x := 0; x < w; x++ {
						o := outRow[x*patch+off : x*patch+off+3]
						o[0], o[1], o[2] = 0, 0, 0
					}
					continue
				}
				line := src[(b*h+yy)*w : (b*h+yy+1)*w]
				for x := 0; x < w; x++ {
					o := outRow[x*patch+off : x*patch+off+3]
					var left, right uint64 // +1 padding outside the image
					if x > 0 {
						left = line[x-1]
					}
					if x+1 < w {
						right = line[x+1]
					}
					o[0], o[1], o[2] = left, line[x], right
				}
			}
		}
	}
}

// Im2Col3x3Float gathers 3×3 neighbourhoods of a float NHWC tensor for the
// first (real-input) conv layer: dst gets batch·h·w rows of 9·c floats in
// the same neighbour order as Im2Col3x3Bits, with zeros for neighbours
// outside the image.
func Im2Col3x3Float(dst []float32, src []float32, batch, h, w, c int) {
	checkConv("Im2Col3x3Float", batch, h, w, c)
	checkLen("Im2Col3x3Float", "src", len(src), batch*h*w*c)
	checkLen("Im2Col3x3Float", "dst", len(dst), batch*h*w*patch*c)
	im2col3x3(dst, src, batch, h, w, c)
}

// Col2Im3x3Float is the adjoint of Im2Col3x3Float for the backward pass: it
// overwrites dx (NHWC, batch·h·w·c) with the sum, over every patch row in
// cols (batch·h·w rows of 9·c floats), of each entry added back to the
// pixel it was gathered from; entries for out-of-image neighbours are
// dropped.
func Col2Im3x3Float(dx []float32, cols []float32, batch, h, w, c int) {
	checkConv("Col2Im3x3Float", batch, h, w, c)
	checkLen("Col2Im3x3Float", "dx", len(dx), batch*h*w*c)
	checkLen("Col2Im3x3Float", "cols", len(cols), batch*h*w*patch*c)
	clear(dx[:batch*h*w*c])
	row := patch * c
	for b := 0; b < batch; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				in := cols[((b*h+y)*w+x)*row:][:row]
				for dy := -1; dy <= 1; dy++ {
					yy := y + dy
					if yy < 0 || yy >= h {
						continue
					}
					line := dx[(b*h+yy)*w*c : (b*h+yy+1)*w*c]
					seg := in[(dy+1)*3*c : (dy+2)*3*c]
					lo, hi := max(x-1, 0), min(x+2, w) // neighbours inside the image
					dst := line[lo*c : hi*c]
					for i, v := range seg[(lo-(x-1))*c : (hi-(x-1))*c] {
						dst[i] += v
					}
				}
			}
		}
	}
}

// BConv3x3ScratchWords is the length of the scratch slice BConv3x3 needs.
func BConv3x3ScratchWords(batch, h, w, c int) int {
	return batch * h * w * patch * Words(c)
}

// BConv3x3 is the binary 3×3 convolution (stride 1, +1 padding, see above)
// of bit-packed NHWC activations src (batch,h,w, Words(c) words per pixel)
// with cout weight rows wts of 9·Words(c) words each (the Im2Col3x3Bits
// layout). out (NHWC int32: batch,h,w,cout) gets the ±1 dot products
// out[((b*h+y)*w+x)*cout + o] = 9c − 2·popcount(patch XOR wts_o).
// scratch must hold BConv3x3ScratchWords(batch,h,w,c) words; it is
// overwritten.
//
// It is im2col followed by BGemm rather than a direct kernel, measured:
// on this project's AMD EPYC (AVX-512), 32×28×28×64→64 takes 0.47 ms of
// which the im2col gather is 0.07 ms (15%; `bnnd bench --kernel im2col`).
// A direct kernel can save at most that gather, and the only direct form
// that reuses the register-blocked GEMM (shifted rows over a zero-padded
// copy of src) pays a padded copy and 2 junk columns per image row (7–14%
// on 28- and 14-wide images) back, while needing a second strided GEMM
// entry point in every implementation.
func BConv3x3(out []int32, src []uint64, wts []uint64, batch, h, w, c, cout int, scratch []uint64) {
	checkConv("BConv3x3", batch, h, w, c)
	checkDims("BConv3x3", cout)
	cw := Words(c)
	checkLen("BConv3x3", "out", len(out), batch*h*w*cout)
	checkLen("BConv3x3", "src", len(src), batch*h*w*cw)
	checkLen("BConv3x3", "wts", len(wts), cout*patch*cw)
	if need := BConv3x3ScratchWords(batch, h, w, c); len(scratch) < need {
		panic(fmt.Sprintf("kernels.BConv3x3: scratch has %d words, needs BConv3x3ScratchWords=%d", len(scratch), need))
	}
	Im2Col3x3Bits(scratch, src, batch, h, w, c)
	BGemm(out, scratch, wts, batch*h*w, cout, patch*cw, patch*c)
}

// im2col3x3 is the gather of Im2Col3x3Bits and Im2Col3x3Float, with n
// elements (words or floats) per pixel and zero elements outside the image
// (+1 for bits, 0.0 for floats).
func im2col3x3[T uint64 | float32](dst, src []T, batch, h, w, n int) {
	row := patch * n
	for b := 0; b < batch; b++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out := dst[((b*h+y)*w+x)*row:][:row]
				for dy := -1; dy <= 1; dy++ {
					yy := y + dy
					seg := out[(dy+1)*3*n : (dy+2)*3*n]
					if yy < 0 || yy >= h {
						clear(seg)
						continue
					}
					line := src[(b*h+yy)*w*n : (b*h+yy+1)*w*n]
					// The three neighbours (yy, x−1..x+1) are adjacent
					// pixels in src: one copy of 3·n elements unless the
					// window leaves the image.
					if x >= 1 && x+1 < w {
						copy(seg, line[(x-1)*n:(x+2)*n])
						continue
					}
					for dx := -1; dx <= 1; dx++ {
						part := seg[(dx+1)*n : (dx+2)*n]
						if xx := x + dx; xx < 0 || xx >= w {
							clear(part)
						} else {
							copy(part, line[xx*n:(xx+1)*n])
						}
					}
				}
			}
		}
	}
}
