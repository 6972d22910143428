//go:build !purego

#include "textflag.h"

// AVX2 ±1-times-float kernels. Without mask registers, 32 sign bits are
// broadcast to every lane and shifted left by a per-lane count so that bit
// 8g+l lands in the sign bit of lane l of group g; VBLENDVPS then picks −v
// or +v by that sign bit. The terms are added in the same order as the
// generic code, so the results equal it bit for bit.

// Per-lane left shifts: group g, lane l gets 31 − (8g + l).
DATA signShifts<>+0(SB)/4, $31
DATA signShifts<>+4(SB)/4, $30
DATA signShifts<>+8(SB)/4, $29
DATA signShifts<>+12(SB)/4, $28
DATA signShifts<>+16(SB)/4, $27
DATA signShifts<>+20(SB)/4, $26
DATA signShifts<>+24(SB)/4, $25
DATA signShifts<>+28(SB)/4, $24
DATA signShifts<>+32(SB)/4, $23
DATA signShifts<>+36(SB)/4, $22
DATA signShifts<>+40(SB)/4, $21
DATA signShifts<>+44(SB)/4, $20
DATA signShifts<>+48(SB)/4, $19
DATA signShifts<>+52(SB)/4, $18
DATA signShifts<>+56(SB)/4, $17
DATA signShifts<>+60(SB)/4, $16
DATA signShifts<>+64(SB)/4, $15
DATA signShifts<>+68(SB)/4, $14
DATA signShifts<>+72(SB)/4, $13
DATA signShifts<>+76(SB)/4, $12
DATA signShifts<>+80(SB)/4, $11
DATA signShifts<>+84(SB)/4, $10
DATA signShifts<>+88(SB)/4, $9
DATA signShifts<>+92(SB)/4, $8
DATA signShifts<>+96(SB)/4, $7
DATA signShifts<>+100(SB)/4, $6
DATA signShifts<>+104(SB)/4, $5
DATA signShifts<>+108(SB)/4, $4
DATA signShifts<>+112(SB)/4, $3
DATA signShifts<>+116(SB)/4, $2
DATA signShifts<>+120(SB)/4, $1
DATA signShifts<>+124(SB)/4, $0
GLOBL signShifts<>(SB), RODATA|NOPTR, $128

// Column numbers 0..31, to build the masks of a partial chunk.
DATA columnIndex<>+0(SB)/8, $0x0000000100000000
DATA columnIndex<>+8(SB)/8, $0x0000000300000002
DATA columnIndex<>+16(SB)/8, $0x0000000500000004
DATA columnIndex<>+24(SB)/8, $0x0000000700000006
DATA columnIndex<>+32(SB)/8, $0x0000000900000008
DATA columnIndex<>+40(SB)/8, $0x0000000b0000000a
DATA columnIndex<>+48(SB)/8, $0x0000000d0000000c
DATA columnIndex<>+56(SB)/8, $0x0000000f0000000e
DATA columnIndex<>+64(SB)/8, $0x0000001100000010
DATA columnIndex<>+72(SB)/8, $0x0000001300000012
DATA columnIndex<>+80(SB)/8, $0x0000001500000014
DATA columnIndex<>+88(SB)/8, $0x0000001700000016
DATA columnIndex<>+96(SB)/8, $0x0000001900000018
DATA columnIndex<>+104(SB)/8, $0x0000001b0000001a
DATA columnIndex<>+112(SB)/8, $0x0000001d0000001c
DATA columnIndex<>+120(SB)/8, $0x0000001f0000001e
GLOBL columnIndex<>(SB), RODATA|NOPTR, $128

DATA signBit<>+0(SB)/4, $0x80000000
GLOBL signBit<>(SB), RODATA|NOPTR, $4

// func signedSum1AVX2(out *float32, coef *float32, coefStride int, bits *uint32, bitsStride, count int)
//
// For col < 32, with strides in elements (bits as 32-bit halves of words):
//
//	out[col] = Σ_{t<count, in order} coef[t*coefStride]·(bits[t*bitsStride] bit col ? −1 : +1)
//
// count ≥ 1; writes 32 floats.
TEXT ·signedSum1AVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ coef+8(FP), SI
	MOVQ coefStride+16(FP), R9
	SHLQ $2, R9
	MOVQ bits+24(FP), BX
	MOVQ bitsStride+32(FP), R12
	SHLQ $2, R12
	MOVQ count+40(FP), CX

	VMOVDQU      signShifts<>+0(SB), Y8
	VMOVDQU      signShifts<>+32(SB), Y9
	VMOVDQU      signShifts<>+64(SB), Y10
	VMOVDQU      signShifts<>+96(SB), Y11
	VBROADCASTSS signBit<>(SB), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3

loop:
	VPBROADCASTD (BX), Y12      // the 32 sign bits of row t, in every lane
	VBROADCASTSS (SI), Y13      // +v
	VXORPS       Y15, Y13, Y14  // −v
	VPSLLVD      Y8, Y12, Y4    // bit l (lane l) → sign bit
	VPSLLVD      Y9, Y12, Y5    // bit 8+l
	VPSLLVD      Y10, Y12, Y6   // bit 16+l
	VPSLLVD      Y11, Y12, Y7   // bit 24+l
	VBLENDVPS    Y4, Y14, Y13, Y4  // sign bit set ? −v : +v
	VBLENDVPS    Y5, Y14, Y13, Y5
	VBLENDVPS    Y6, Y14, Y13, Y6
	VBLENDVPS    Y7, Y14, Y13, Y7
	VADDPS       Y4, Y0, Y0
	VADDPS       Y5, Y1, Y1
	VADDPS       Y6, Y2, Y2
	VADDPS       Y7, Y3, Y3
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ CX
	JNZ  loop

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VZEROUPPER
	RET

// func realGrad1AVX2(out *float32, nfl int, coef *float32, coefStride int, x *float32, xStride, count int)
//
// For col < nfl (1 ≤ nfl ≤ 32), with strides in elements:
//
//	out[col] = Σ_{t<count, in order} coef[t*coefStride]·x[t*xStride+col]   (fused multiply-adds)
//
// count ≥ 1; reads and writes only columns < nfl (masked moves).
TEXT ·realGrad1AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ coef+16(FP), SI
	MOVQ coefStride+24(FP), R9
	SHLQ $2, R9
	MOVQ x+32(FP), BX
	MOVQ xStride+40(FP), R12
	SHLQ $2, R12
	MOVQ count+48(FP), CX

	// Y8..Y11: all-ones in the lanes of columns < nfl.
	MOVQ         nfl+8(FP), AX
	MOVQ         AX, X12
	VPBROADCASTD X12, Y12
	VPCMPGTD     columnIndex<>+0(SB), Y12, Y8
	VPCMPGTD     columnIndex<>+32(SB), Y12, Y9
	VPCMPGTD     columnIndex<>+64(SB), Y12, Y10
	VPCMPGTD     columnIndex<>+96(SB), Y12, Y11
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3

	CMPQ AX, $32
	JNE  partial

full: // whole chunks: plain loads (masked loads are much slower on some CPUs)
	VMOVUPS      (BX), Y4
	VMOVUPS      32(BX), Y5
	VMOVUPS      64(BX), Y6
	VMOVUPS      96(BX), Y7
	VBROADCASTSS (SI), Y13
	VFMADD231PS  Y4, Y13, Y0
	VFMADD231PS  Y5, Y13, Y1
	VFMADD231PS  Y6, Y13, Y2
	VFMADD231PS  Y7, Y13, Y3
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ CX
	JNZ  full
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VZEROUPPER
	RET

partial:
	VMASKMOVPS   (BX), Y8, Y4
	VMASKMOVPS   32(BX), Y9, Y5
	VMASKMOVPS   64(BX), Y10, Y6
	VMASKMOVPS   96(BX), Y11, Y7
	VBROADCASTSS (SI), Y13
	VFMADD231PS  Y4, Y13, Y0
	VFMADD231PS  Y5, Y13, Y1
	VFMADD231PS  Y6, Y13, Y2
	VFMADD231PS  Y7, Y13, Y3
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ CX
	JNZ  partial

	VMASKMOVPS Y0, Y8, (DI)
	VMASKMOVPS Y1, Y9, 32(DI)
	VMASKMOVPS Y2, Y10, 64(DI)
	VMASKMOVPS Y3, Y11, 96(DI)
	VZEROUPPER
	RET

// func realGrad2AVX2(out *float32, outPair int, coef *float32, coefStride int, x *float32, xStride, count int)
//
// realGrad1AVX2 for two outputs and a whole chunk: for o < 2, col < 32,
//
//	out[o*outPair+col] = Σ_{t<count, in order} coef[o+t*coefStride]·x[t*xStride+col]
//
// Two outputs share every load of x.
TEXT ·realGrad2AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ outPair+8(FP), R8
	SHLQ $2, R8
	ADDQ DI, R8                 // second output row
	MOVQ coef+16(FP), SI
	MOVQ coefStride+24(FP), R9
	SHLQ $2, R9
	MOVQ x+32(FP), BX
	MOVQ xStride+40(FP), R12
	SHLQ $2, R12
	MOVQ count+48(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

loop2:
	VMOVUPS      (BX), Y4
	VMOVUPS      32(BX), Y5
	VMOVUPS      64(BX), Y6
	VMOVUPS      96(BX), Y7
	VBROADCASTSS (SI), Y12
	VBROADCASTSS 4(SI), Y13
	VFMADD231PS  Y4, Y12, Y0
	VFMADD231PS  Y5, Y12, Y1
	VFMADD231PS  Y6, Y12, Y2
	VFMADD231PS  Y7, Y12, Y3
	VFMADD231PS  Y4, Y13, Y8
	VFMADD231PS  Y5, Y13, Y9
	VFMADD231PS  Y6, Y13, Y10
	VFMADD231PS  Y7, Y13, Y11
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ CX
	JNZ  loop2

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y8, (R8)
	VMOVUPS Y9, 32(R8)
	VMOVUPS Y10, 64(R8)
	VMOVUPS Y11, 96(R8)
	VZEROUPPER
	RET

// RBGROUP adds the x values of group G (in XG) whose sign bit is set in
// the broadcast bits Y13 to ACC (Y15 = 0, Y14 temporary).
#define RBGROUP(SHIFT, XG, ACC) \
	VPSLLVD   SHIFT, Y13, Y14      \
	VBLENDVPS Y14, XG, Y15, Y14    \
	VADDPS    Y14, ACC, ACC

// RBROW does one weight row: bits at ADDR against the 32 x values.
#define RBROW(ACC) \
	RBGROUP(Y4, Y0, ACC) \
	RBGROUP(Y5, Y1, ACC) \
	RBGROUP(Y6, Y2, ACC) \
	RBGROUP(Y7, Y3, ACC)

// RBOUT adds S − 2·ACC, summed over its 8 lanes, to the float at OFF(DI).
#define RBOUT(ACC, ACCX, OFF) \
	VADDPS       ACC, ACC, ACC      \
	VSUBPS       ACC, Y12, ACC      \
	VEXTRACTF128 $1, ACC, X14       \
	VADDPS       X14, ACCX, X14     \
	VPERMILPS    $0x4e, X14, X13    \
	VADDPS       X13, X14, X14      \
	VPERMILPS    $0xb1, X14, X13    \
	VADDSS       X13, X14, X14      \
	VADDSS       OFF(DI), X14, X14  \
	VMOVSS       X14, OFF(DI)

// func realBin1x4AVX2(c *float32, x *float32, w *uint32, ldw, chunks int)
//
// For l < 4, with w as 32-bit halves of packed words and ldw in halves:
//
//	c[l] += Σ_{kk<32·chunks} x[kk]·(w[l*ldw+kk/32] bit kk%32 ? −1 : +1)
//
// computed as S − 2·Σ_{bit set} x (chunks ≥ 1).
TEXT ·realBin1x4AVX2(SB), NOSPLIT, $0-40
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), BX
	MOVQ ldw+24(FP), R12
	SHLQ $2, R12
	LEAQ (R12)(R12*2), R13
	MOVQ chunks+32(FP), CX

	VMOVDQU signShifts<>+0(SB), Y4
	VMOVDQU signShifts<>+32(SB), Y5
	VMOVDQU signShifts<>+64(SB), Y6
	VMOVDQU signShifts<>+96(SB), Y7
	VXORPS  Y8, Y8, Y8
	VXORPS  Y9, Y9, Y9
	VXORPS  Y10, Y10, Y10
	VXORPS  Y11, Y11, Y11
	VXORPS  Y12, Y12, Y12
	VXORPS  Y15, Y15, Y15

rbloop:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VADDPS       Y0, Y12, Y12     // S += every x
	VADDPS       Y1, Y12, Y12
	VADDPS       Y2, Y12, Y12
	VADDPS       Y3, Y12, Y12
	VPBROADCASTD (BX), Y13
	RBROW(Y8)
	VPBROADCASTD (BX)(R12*1), Y13
	RBROW(Y9)
	VPBROADCASTD (BX)(R12*2), Y13
	RBROW(Y10)
	VPBROADCASTD (BX)(R13*1), Y13
	RBROW(Y11)
	ADDQ $128, SI
	ADDQ $4, BX
	DECQ CX
	JNZ  rbloop

	MOVQ c+0(FP), DI
	RBOUT(Y8, X8, 0)
	RBOUT(Y9, X9, 4)
	RBOUT(Y10, X10, 8)
	RBOUT(Y11, X11, 12)
	VZEROUPPER
	RET
