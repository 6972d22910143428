//go:build !purego

// NEON kernels for the ±1-times-float products (backward pass and the first
// layer). Every kernel here adds its terms in the same order as the generic Go
// loop it replaces (term by term, from +0, one rounding per add or fused
// multiply-add), so its results are bit-identical to the generic ones; only
// the lanes are computed side by side. Go's assembler has no mnemonic for
// vector FADD: it is encoded with WORD and the mnemonic in the comment,
// checked by scripts/check_arm64_words.sh against binutils.
//
// A sign is applied without a multiply: v·(bit ? −1 : +1) is v XOR (bit<<31).
//
// Inner-loop instruction counts (per term of a 4×16 block = 64 MACs, or per
// column of a 4×8 block = 32 MACs):
//   signedSum4x16NEON (BinGradInput, BinGradWeightTile): MOVHU, ADD, VDUP,
//     4 VCMTST, 4 VSHL, MOVD, ADD, 4 VLD1R, 16 VEOR, 16 FADD, SUBS, BNE
//     = 51 per 64 MACs = 816 per 1024;
//   realBin4x8NEON (RealBinGemm): 2 VSHL, 2 VUSHR, 4 VLD1R, 8 VEOR, 8 FADD,
//     SUBS, BNE = 26 per 32 MACs = 832 per 1024;
//   realGradTile4x16NEON (RealGradWeightTile): VLD1, ADD, MOVD, ADD,
//     4 VLD1R, 16 VFMLA, SUBS, BNE = 26 per 64 MACs = 416 per 1024.
// The generic Go loop they replace (addSigned compiled for arm64) takes 14
// instructions per MAC, 14336 per 1024.

#include "textflag.h"

// laneBits16 holds 1<<l in lane l (l = 0..15): VCMTST of a 16-bit chunk of
// packed bits broadcast to all lanes against it gives all-ones in lane l
// exactly when bit l is set.
DATA ·laneBits16+0(SB)/4, $1
DATA ·laneBits16+4(SB)/4, $2
DATA ·laneBits16+8(SB)/4, $4
DATA ·laneBits16+12(SB)/4, $8
DATA ·laneBits16+16(SB)/4, $16
DATA ·laneBits16+20(SB)/4, $32
DATA ·laneBits16+24(SB)/4, $64
DATA ·laneBits16+28(SB)/4, $128
DATA ·laneBits16+32(SB)/4, $256
DATA ·laneBits16+36(SB)/4, $512
DATA ·laneBits16+40(SB)/4, $1024
DATA ·laneBits16+44(SB)/4, $2048
DATA ·laneBits16+48(SB)/4, $4096
DATA ·laneBits16+52(SB)/4, $8192
DATA ·laneBits16+56(SB)/4, $16384
DATA ·laneBits16+60(SB)/4, $32768
GLOBL ·laneBits16(SB), RODATA|NOPTR, $64

// func signedSum4x16NEON(out *float32, ostride int, v *float32, vq, vr int, bits *uint64, bstride, count, chunks int, accumulate bool)
//
// Semantics, as the Go loop it replaces (strides in elements; 16·chunks
// columns; bits rows are read 16 bits at a time):
//
//	for q := 0; q < 4; q++ { for col := 0; col < 16*chunks; col++ {
//		var s float32; if accumulate { s = out[q*ostride+col] }
//		for r := 0; r < count; r++ {
//			bit := bits[r*bstride+col/64] >> (col % 64) & 1
//			s += v[q*vq+r*vr] with its sign flipped if bit == 1 }
//		out[q*ostride+col] = s } }
//
// BinGradInput uses it with q = batch row, r = output j; BinGradWeightTile
// with q = output j, r = batch row. Rows q share the sign masks, which are
// built once per term and 16 columns. accumulate lets the caller split
// the terms into blocks whose packed rows stay in L1 across the chunks
// (the running sums go through memory unchanged, so the result is the same).
//
// Registers: R0 out, R1 ostride bytes, R2 v, R3 vq bytes, R4 vr bytes,
// R5 bits (this chunk), R6 bstride bytes, R7 count, R8 chunks left,
// R9 v of term r, R10 bits of term r, R11 terms left, R12 16 bits,
// R13 v of (q, r), R14 output pointer, R15 accumulate.
// V0-V15 sums, row q in V4q..V4q+3 (columns 0-3, 4-7, 8-11, 12-15);
// V20-V23 lane bits; V26-V29 sign masks; V30, V31 broadcast v; V16-V19,
// V24, V25 scratch.
TEXT ·signedSum4x16NEON(SB), NOSPLIT, $0-73
	MOVD	out+0(FP), R0        // first output row, chunk 0
	MOVD	ostride+8(FP), R1    // output row stride
	LSL	$2, R1, R1           // … in bytes
	MOVD	v+16(FP), R2         // v
	MOVD	vq+24(FP), R3        // v stride between output rows
	LSL	$2, R3, R3           // … in bytes
	MOVD	vr+32(FP), R4        // v stride between terms
	LSL	$2, R4, R4           // … in bytes
	MOVD	bits+40(FP), R5      // packed rows, chunk 0
	MOVD	bstride+48(FP), R6   // packed row stride, words
	LSL	$3, R6, R6           // … in bytes
	MOVD	count+56(FP), R7     // terms per sum (≥ 1)
	MOVD	chunks+64(FP), R8    // 16-column chunks (≥ 1)
	MOVBU	accumulate+72(FP), R15 // 1: start from the sums in out
	MOVD	$·laneBits16(SB), R9 // lane bit table
	VLD1	(R9), [V20.S4, V21.S4, V22.S4, V23.S4] // 1<<l for lanes 0..15

ssChunk:
	CBNZ	R15, ssLoad          // continue earlier sums
	VEOR	V0.B16, V0.B16, V0.B16 // sum = +0
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	VEOR	V4.B16, V4.B16, V4.B16
	VEOR	V5.B16, V5.B16, V5.B16
	VEOR	V6.B16, V6.B16, V6.B16
	VEOR	V7.B16, V7.B16, V7.B16
	VEOR	V8.B16, V8.B16, V8.B16
	VEOR	V9.B16, V9.B16, V9.B16
	VEOR	V10.B16, V10.B16, V10.B16
	VEOR	V11.B16, V11.B16, V11.B16
	VEOR	V12.B16, V12.B16, V12.B16
	VEOR	V13.B16, V13.B16, V13.B16
	VEOR	V14.B16, V14.B16, V14.B16
	VEOR	V15.B16, V15.B16, V15.B16
	B	ssStart

ssLoad:
	MOVD	R0, R14              // output row 0, this chunk
	VLD1.P	(R14)(R1), [V0.S4, V1.S4, V2.S4, V3.S4]     // row 0 sums so far
	VLD1.P	(R14)(R1), [V4.S4, V5.S4, V6.S4, V7.S4]     // row 1
	VLD1.P	(R14)(R1), [V8.S4, V9.S4, V10.S4, V11.S4]   // row 2
	VLD1	(R14), [V12.S4, V13.S4, V14.S4, V15.S4]      // row 3

ssStart:
	MOVD	R2, R9               // v of term 0
	MOVD	R5, R10              // bits of term 0, this chunk
	MOVD	R7, R11              // terms left

ssTerm:
	MOVHU	(R10), R12           // 16 packed bits of this term
	ADD	R6, R10, R10          // next term's packed row
	VDUP	R12, V25.S4           // … in every lane
	VCMTST	V20.S4, V25.S4, V26.S4 // all-ones where bit l (l = 0..3) is set
	VCMTST	V21.S4, V25.S4, V27.S4 // l = 4..7
	VCMTST	V22.S4, V25.S4, V28.S4 // l = 8..11
	VCMTST	V23.S4, V25.S4, V29.S4 // l = 12..15
	VSHL	$31, V26.S4, V26.S4    // all-ones → sign bit only
	VSHL	$31, V27.S4, V27.S4
	VSHL	$31, V28.S4, V28.S4
	VSHL	$31, V29.S4, V29.S4
	MOVD	R9, R13              // v of row 0, this term
	ADD	R4, R9, R9            // next term's v
	VLD1R.P	(R13)(R3), [V30.S4] // v[row 0] in every lane; next row
	VEOR	V26.B16, V30.B16, V16.B16 // ±v for columns 0-3
	VEOR	V27.B16, V30.B16, V17.B16 // ±v for columns 4-7
	VEOR	V28.B16, V30.B16, V18.B16 // ±v for columns 8-11
	VEOR	V29.B16, V30.B16, V19.B16 // ±v for columns 12-15
	WORD	$0x4e30d400 // fadd v0.4s, v0.4s, v16.4s
	WORD	$0x4e31d421 // fadd v1.4s, v1.4s, v17.4s
	WORD	$0x4e32d442 // fadd v2.4s, v2.4s, v18.4s
	WORD	$0x4e33d463 // fadd v3.4s, v3.4s, v19.4s
	VLD1R.P	(R13)(R3), [V31.S4] // v[row 1] in every lane; next row
	VEOR	V26.B16, V31.B16, V16.B16 // ±v for columns 0-3
	VEOR	V27.B16, V31.B16, V17.B16 // ±v for columns 4-7
	VEOR	V28.B16, V31.B16, V18.B16 // ±v for columns 8-11
	VEOR	V29.B16, V31.B16, V19.B16 // ±v for columns 12-15
	WORD	$0x4e30d484 // fadd v4.4s, v4.4s, v16.4s
	WORD	$0x4e31d4a5 // fadd v5.4s, v5.4s, v17.4s
	WORD	$0x4e32d4c6 // fadd v6.4s, v6.4s, v18.4s
	WORD	$0x4e33d4e7 // fadd v7.4s, v7.4s, v19.4s
	VLD1R.P	(R13)(R3), [V30.S4] // v[row 2] in every lane; next row
	VEOR	V26.B16, V30.B16, V16.B16 // ±v for columns 0-3
	VEOR	V27.B16, V30.B16, V17.B16 // ±v for columns 4-7
	VEOR	V28.B16, V30.B16, V18.B16 // ±v for columns 8-11
	VEOR	V29.B16, V30.B16, V19.B16 // ±v for columns 12-15
	WORD	$0x4e30d508 // fadd v8.4s, v8.4s, v16.4s
	WORD	$0x4e31d529 // fadd v9.4s, v9.4s, v17.4s
	WORD	$0x4e32d54a // fadd v10.4s, v10.4s, v18.4s
	WORD	$0x4e33d56b // fadd v11.4s, v11.4s, v19.4s
	VLD1R.P	(R13)(R3), [V31.S4] // v[row 3] in every lane; next row
	VEOR	V26.B16, V31.B16, V16.B16 // ±v for columns 0-3
	VEOR	V27.B16, V31.B16, V17.B16 // ±v for columns 4-7
	VEOR	V28.B16, V31.B16, V18.B16 // ±v for columns 8-11
	VEOR	V29.B16, V31.B16, V19.B16 // ±v for columns 12-15
	WORD	$0x4e30d58c // fadd v12.4s, v12.4s, v16.4s
	WORD	$0x4e31d5ad // fadd v13.4s, v13.4s, v17.4s
	WORD	$0x4e32d5ce // fadd v14.4s, v14.4s, v18.4s
	WORD	$0x4e33d5ef // fadd v15.4s, v15.4s, v19.4s
	SUBS	$1, R11, R11          // one term done
	BNE	ssTerm

	MOVD	R0, R14              // output row 0, this chunk
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], (R14)(R1)     // row 0
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], (R14)(R1)     // row 1
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], (R14)(R1)   // row 2
	VST1	[V12.S4, V13.S4, V14.S4, V15.S4], (R14)      // row 3
	ADD	$64, R0, R0           // next 16 output columns
	ADD	$2, R5, R5            // next 16 bits
	SUBS	$1, R8, R8            // one chunk done
	BNE	ssChunk
	RET

// func realBin4x8NEON(c *float32, ldc int, x *float32, ldx int, w *uint64, ldw, k int)
//
// Semantics, as the Go loop it replaces (strides in elements, k ≥ 1):
//
//	for q := 0; q < 4; q++ { for l := 0; l < 8; l++ {
//		var s float32
//		for kk := 0; kk < k; kk++ {
//			bit := w[l*ldw+kk/64] >> (kk % 64) & 1
//			s += x[q*ldx+kk] with its sign flipped if bit == 1 }
//		c[q*ldc+l] = s } }
//
// Lanes run over 8 weight rows, so each lane sums over kk in order, as the
// generic loop does. The 8 rows' next 32 bits sit in V8 (rows 0-3) and V9
// (rows 4-7); each step VSHL $31 moves bit 0 to the sign position (and
// nothing else) and VUSHR $1 brings up the next bit.
//
// Registers: R0 c, R1 ldc bytes, R2-R5 x rows 0-3, R6-R13 w rows 0-7,
// R14 columns left, R15 columns in this 32-bit group.
// V0-V7 sums, row q in V2q (w rows 0-3) and V2q+1 (w rows 4-7); V8, V9
// bits; V10, V11 sign masks; V12-V15 broadcast x; V16-V23 scratch.
TEXT ·realBin4x8NEON(SB), NOSPLIT, $0-56
	MOVD	c+0(FP), R0          // output row 0
	MOVD	ldc+8(FP), R1        // output row stride
	LSL	$2, R1, R1           // … in bytes
	MOVD	x+16(FP), R2         // x row 0
	MOVD	ldx+24(FP), R15      // x row stride
	LSL	$2, R15, R15         // … in bytes
	ADD	R15, R2, R3           // x row 1
	ADD	R15, R3, R4           // x row 2
	ADD	R15, R4, R5           // x row 3
	MOVD	w+32(FP), R6         // w row 0
	MOVD	ldw+40(FP), R15      // w row stride
	LSL	$3, R15, R15         // … in bytes
	ADD	R15, R6, R7           // w row 1
	ADD	R15, R7, R8           // w row 2
	ADD	R15, R8, R9           // w row 3
	ADD	R15, R9, R10           // w row 4
	ADD	R15, R10, R11           // w row 5
	ADD	R15, R11, R12           // w row 6
	ADD	R15, R12, R13           // w row 7
	MOVD	k+48(FP), R14        // columns (≥ 1)
	VEOR	V0.B16, V0.B16, V0.B16 // sum = +0
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	VEOR	V4.B16, V4.B16, V4.B16
	VEOR	V5.B16, V5.B16, V5.B16
	VEOR	V6.B16, V6.B16, V6.B16
	VEOR	V7.B16, V7.B16, V7.B16

rbGroup:
	VLD1.P	4(R6), V8.S[0]     // next 32 bits of w row 0
	VLD1.P	4(R7), V8.S[1]     // next 32 bits of w row 1
	VLD1.P	4(R8), V8.S[2]     // next 32 bits of w row 2
	VLD1.P	4(R9), V8.S[3]     // next 32 bits of w row 3
	VLD1.P	4(R10), V9.S[0]     // next 32 bits of w row 4
	VLD1.P	4(R11), V9.S[1]     // next 32 bits of w row 5
	VLD1.P	4(R12), V9.S[2]     // next 32 bits of w row 6
	VLD1.P	4(R13), V9.S[3]     // next 32 bits of w row 7
	MOVD	$32, R15
	CMP	R15, R14
	CSEL	LO, R14, R15, R15    // R15 = min(columns left, 32)
	SUB	R15, R14, R14         // columns left after this group

rbColumn:
	VSHL	$31, V8.S4, V10.S4    // bit kk of w rows 0-3 → sign bit
	VSHL	$31, V9.S4, V11.S4    // … of w rows 4-7
	VUSHR	$1, V8.S4, V8.S4     // bring up bit kk+1
	VUSHR	$1, V9.S4, V9.S4
	VLD1R.P	4(R2), [V12.S4]  // x[row 0][kk] in every lane
	VLD1R.P	4(R3), [V13.S4]  // x[row 1][kk] in every lane
	VLD1R.P	4(R4), [V14.S4]  // x[row 2][kk] in every lane
	VLD1R.P	4(R5), [V15.S4]  // x[row 3][kk] in every lane
	VEOR	V10.B16, V12.B16, V16.B16 // ±x, row 0, w rows 0-3
	VEOR	V11.B16, V12.B16, V17.B16 // ±x, row 0, w rows 4-7
	VEOR	V10.B16, V13.B16, V18.B16 // ±x, row 1, w rows 0-3
	VEOR	V11.B16, V13.B16, V19.B16 // ±x, row 1, w rows 4-7
	VEOR	V10.B16, V14.B16, V20.B16 // ±x, row 2, w rows 0-3
	VEOR	V11.B16, V14.B16, V21.B16 // ±x, row 2, w rows 4-7
	VEOR	V10.B16, V15.B16, V22.B16 // ±x, row 3, w rows 0-3
	VEOR	V11.B16, V15.B16, V23.B16 // ±x, row 3, w rows 4-7
	WORD	$0x4e30d400 // fadd v0.4s, v0.4s, v16.4s
	WORD	$0x4e31d421 // fadd v1.4s, v1.4s, v17.4s
	WORD	$0x4e32d442 // fadd v2.4s, v2.4s, v18.4s
	WORD	$0x4e33d463 // fadd v3.4s, v3.4s, v19.4s
	WORD	$0x4e34d484 // fadd v4.4s, v4.4s, v20.4s
	WORD	$0x4e35d4a5 // fadd v5.4s, v5.4s, v21.4s
	WORD	$0x4e36d4c6 // fadd v6.4s, v6.4s, v22.4s
	WORD	$0x4e37d4e7 // fadd v7.4s, v7.4s, v23.4s
	SUBS	$1, R15, R15          // one column done
	BNE	rbColumn
	CBNZ	R14, rbGroup          // next 32 columns

	VST1.P	[V0.S4, V1.S4], (R0)(R1) // row 0: c[0..7]
	VST1.P	[V2.S4, V3.S4], (R0)(R1) // row 1
	VST1.P	[V4.S4, V5.S4], (R0)(R1) // row 2
	VST1	[V6.S4, V7.S4], (R0)       // row 3
	RET

// func realGradTile4x16NEON(out *float32, ostride int, v *float32, vq, vr int, x *float32, xstride, count, chunks int)
//
// Semantics, as the Go loop it replaces (strides in elements):
//
//	for q := 0; q < 4; q++ { for col := 0; col < 16*chunks; col++ {
//		var s float32
//		for r := 0; r < count; r++ { s = fma(v[q*vq+r*vr], x[r*xstride+col], s) }
//		out[q*ostride+col] = s } }
//
// with one rounding per term (FMLA), as the generic `row[kk] += v * xv`,
// which the Go compiler fuses into FMADDS on arm64.
//
// Registers: R0 out, R1 ostride bytes, R2 v, R3 vq bytes, R4 vr bytes,
// R5 x (this chunk), R6 xstride bytes, R7 count, R8 chunks left, R9 v of
// term r, R10 x of term r, R11 terms left, R13 v of (q, r), R14 output.
// V0-V15 sums, row q in V4q..V4q+3; V16-V19 x; V20-V23 broadcast v.
TEXT ·realGradTile4x16NEON(SB), NOSPLIT, $0-72
	MOVD	out+0(FP), R0        // first output row, chunk 0
	MOVD	ostride+8(FP), R1    // output row stride
	LSL	$2, R1, R1           // … in bytes
	MOVD	v+16(FP), R2         // v
	MOVD	vq+24(FP), R3        // v stride between output rows
	LSL	$2, R3, R3           // … in bytes
	MOVD	vr+32(FP), R4        // v stride between terms
	LSL	$2, R4, R4           // … in bytes
	MOVD	x+40(FP), R5         // x, chunk 0
	MOVD	xstride+48(FP), R6   // x row stride
	LSL	$2, R6, R6           // … in bytes
	MOVD	count+56(FP), R7     // terms per sum (≥ 1)
	MOVD	chunks+64(FP), R8    // 16-column chunks (≥ 1)

rgChunk:
	VEOR	V0.B16, V0.B16, V0.B16 // sum = +0
	VEOR	V1.B16, V1.B16, V1.B16
	VEOR	V2.B16, V2.B16, V2.B16
	VEOR	V3.B16, V3.B16, V3.B16
	VEOR	V4.B16, V4.B16, V4.B16
	VEOR	V5.B16, V5.B16, V5.B16
	VEOR	V6.B16, V6.B16, V6.B16
	VEOR	V7.B16, V7.B16, V7.B16
	VEOR	V8.B16, V8.B16, V8.B16
	VEOR	V9.B16, V9.B16, V9.B16
	VEOR	V10.B16, V10.B16, V10.B16
	VEOR	V11.B16, V11.B16, V11.B16
	VEOR	V12.B16, V12.B16, V12.B16
	VEOR	V13.B16, V13.B16, V13.B16
	VEOR	V14.B16, V14.B16, V14.B16
	VEOR	V15.B16, V15.B16, V15.B16
	MOVD	R2, R9               // v of term 0
	MOVD	R5, R10              // x of term 0, this chunk
	MOVD	R7, R11              // terms left

rgTerm:
	VLD1	(R10), [V16.S4, V17.S4, V18.S4, V19.S4] // 16 x values of term r
	ADD	R6, R10, R10          // next term's x row
	MOVD	R9, R13              // v of row 0, this term
	ADD	R4, R9, R9            // next term's v
	VLD1R.P	(R13)(R3), [V20.S4] // v[row 0] in every lane; next row
	VLD1R.P	(R13)(R3), [V21.S4] // v[row 1] in every lane; next row
	VLD1R.P	(R13)(R3), [V22.S4] // v[row 2] in every lane; next row
	VLD1R.P	(R13)(R3), [V23.S4] // v[row 3] in every lane; next row
	VFMLA	V20.S4, V16.S4, V0.S4 // row 0, columns 0-3 += v·x (one rounding)
	VFMLA	V20.S4, V17.S4, V1.S4 // row 0, columns 4-7 += v·x (one rounding)
	VFMLA	V20.S4, V18.S4, V2.S4 // row 0, columns 8-11 += v·x (one rounding)
	VFMLA	V20.S4, V19.S4, V3.S4 // row 0, columns 12-15 += v·x (one rounding)
	VFMLA	V21.S4, V16.S4, V4.S4 // row 1, columns 0-3 += v·x (one rounding)
	VFMLA	V21.S4, V17.S4, V5.S4 // row 1, columns 4-7 += v·x (one rounding)
	VFMLA	V21.S4, V18.S4, V6.S4 // row 1, columns 8-11 += v·x (one rounding)
	VFMLA	V21.S4, V19.S4, V7.S4 // row 1, columns 12-15 += v·x (one rounding)
	VFMLA	V22.S4, V16.S4, V8.S4 // row 2, columns 0-3 += v·x (one rounding)
	VFMLA	V22.S4, V17.S4, V9.S4 // row 2, columns 4-7 += v·x (one rounding)
	VFMLA	V22.S4, V18.S4, V10.S4 // row 2, columns 8-11 += v·x (one rounding)
	VFMLA	V22.S4, V19.S4, V11.S4 // row 2, columns 12-15 += v·x (one rounding)
	VFMLA	V23.S4, V16.S4, V12.S4 // row 3, columns 0-3 += v·x (one rounding)
	VFMLA	V23.S4, V17.S4, V13.S4 // row 3, columns 4-7 += v·x (one rounding)
	VFMLA	V23.S4, V18.S4, V14.S4 // row 3, columns 8-11 += v·x (one rounding)
	VFMLA	V23.S4, V19.S4, V15.S4 // row 3, columns 12-15 += v·x (one rounding)
	SUBS	$1, R11, R11          // one term done
	BNE	rgTerm

	MOVD	R0, R14              // output row 0, this chunk
	VST1.P	[V0.S4, V1.S4, V2.S4, V3.S4], (R14)(R1)     // row 0
	VST1.P	[V4.S4, V5.S4, V6.S4, V7.S4], (R14)(R1)     // row 1
	VST1.P	[V8.S4, V9.S4, V10.S4, V11.S4], (R14)(R1)   // row 2
	VST1	[V12.S4, V13.S4, V14.S4, V15.S4], (R14)      // row 3
	ADD	$64, R0, R0           // next 16 output columns
	ADD	$64, R5, R5           // next 16 x columns
	SUBS	$1, R8, R8            // one chunk done
	BNE	rgChunk
	RET
