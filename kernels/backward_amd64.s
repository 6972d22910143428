//go:build !purego

#include "textflag.h"

// ±1-times-float kernels for amd64 AVX-512. A 64-bit word of packed signs
// is moved into a mask register and split into four 16-lane masks, so one
// masked VADDPS adds a float to the 16 columns whose bit is 1. The result
// uses  Σ_t v_t·(bit ? −1 : +1) = S − 2·Σ_{t: bit set} v_t  with S = Σ_t v_t,
// one masked add per 16 multiply-accumulates.

// COLMASKS sets K5, K6, K7, K4 to the column masks of groups 0..3 for the
// first NFL (1..64, in register DX) columns (BZHI keeps all 64 bits when
// DX = 64); clobbers AX.
#define COLMASKS \
	MOVQ  $-1, AX          \
	BZHIQ DX, AX, AX       \
	KMOVQ AX, K5           \
	KSHIFTRQ $16, K5, K6   \
	KSHIFTRQ $32, K5, K7   \
	KSHIFTRQ $48, K5, K4

// SIGNOUT stores S − 2·A0..A3 (16 columns each) at ROW under K5, K6, K7, K4.
#define SIGNOUT(A0, A1, A2, A3, S, ROW) \
	VADDPS  A0, A0, A0          \
	VSUBPS  A0, S, A0           \
	VMOVUPS A0, K5, (ROW)       \
	VADDPS  A1, A1, A1          \
	VSUBPS  A1, S, A1           \
	VMOVUPS A1, K6, 64(ROW)     \
	VADDPS  A2, A2, A2          \
	VSUBPS  A2, S, A2           \
	VMOVUPS A2, K7, 128(ROW)    \
	VADDPS  A3, A3, A3          \
	VSUBPS  A3, S, A3           \
	VMOVUPS A3, K4, 192(ROW)

// MADD4 adds V into the four accumulators of one output under K1..K4.
#define MADD4(V, A0, A1, A2, A3) \
	VADDPS V, A0, K1, A0 \
	VADDPS V, A1, K2, A1 \
	VADDPS V, A2, K3, A2 \
	VADDPS V, A3, K4, A3

// func signedSum4AVX512(out *float32, outPair, nfl int, coef *float32, coefStride, coefPair int, bits *uint64, bitsStride, count int)
//
// For o < 4 and col < nfl (1 ≤ nfl ≤ 64), with strides in elements:
//
//	out[o*outPair+col] = Σ_{t<count} coef[o*coefPair+t*coefStride]·(bits[t*bitsStride] bit col ? −1 : +1)
//
// count ≥ 1. Reads one word of bits per t; writes only columns < nfl.
TEXT ·signedSum4AVX512(SB), NOSPLIT, $0-72
	MOVQ out+0(FP), DI
	MOVQ outPair+8(FP), R8
	SHLQ $2, R8
	MOVQ coef+24(FP), SI
	MOVQ coefStride+32(FP), R9
	SHLQ $2, R9
	MOVQ coefPair+40(FP), R10
	SHLQ $2, R10
	LEAQ (R10)(R10*2), R11
	MOVQ bits+48(FP), BX
	MOVQ bitsStride+56(FP), R12
	SHLQ $3, R12
	MOVQ count+64(FP), R13

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

loop:
	KMOVQ        (BX), K1           // the 64 sign bits of row t
	KSHIFTRQ     $16, K1, K2        // columns 16..31 in the low 16 bits
	KSHIFTRQ     $32, K1, K3
	KSHIFTRQ     $48, K1, K4
	VBROADCASTSS (SI), Z16          // coefficient of output 0
	VBROADCASTSS (SI)(R10*1), Z17   // output 1
	VBROADCASTSS (SI)(R10*2), Z18   // output 2
	VBROADCASTSS (SI)(R11*1), Z19   // output 3
	VADDPS       Z16, Z20, Z20      // S_0 += v_0 (every column)
	VADDPS       Z17, Z21, Z21
	VADDPS       Z18, Z22, Z22
	VADDPS       Z19, Z23, Z23
	MADD4(Z16, Z0, Z1, Z2, Z3)
	MADD4(Z17, Z4, Z5, Z6, Z7)
	MADD4(Z18, Z8, Z9, Z10, Z11)
	MADD4(Z19, Z12, Z13, Z14, Z15)
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ R13
	JNZ  loop

	MOVQ nfl+16(FP), DX
	COLMASKS
	LEAQ (DI)(R8*1), AX
	LEAQ (DI)(R8*2), CX
	LEAQ (CX)(R8*1), DX
	SIGNOUT(Z0, Z1, Z2, Z3, Z20, DI)
	SIGNOUT(Z4, Z5, Z6, Z7, Z21, AX)
	SIGNOUT(Z8, Z9, Z10, Z11, Z22, CX)
	SIGNOUT(Z12, Z13, Z14, Z15, Z23, DX)
	VZEROUPPER
	RET

// FMA4 adds C·X0..X3 into the four accumulators of one output.
#define FMA4(C, A0, A1, A2, A3) \
	VFMADD231PS Z16, C, A0 \
	VFMADD231PS Z17, C, A1 \
	VFMADD231PS Z18, C, A2 \
	VFMADD231PS Z19, C, A3

// func realGrad4AVX512(out *float32, outPair, nfl int, coef *float32, coefStride, coefPair int, x *float32, xStride, count int)
//
// For o < 4 and col < nfl (1 ≤ nfl ≤ 64), with strides in elements:
//
//	out[o*outPair+col] = Σ_{t<count} coef[o*coefPair+t*coefStride]·x[t*xStride+col]
//
// (fused multiply-adds, t in order). count ≥ 1; reads and writes only
// columns < nfl.
TEXT ·realGrad4AVX512(SB), NOSPLIT, $0-72
	MOVQ nfl+16(FP), DX
	COLMASKS
	MOVQ out+0(FP), DI
	MOVQ outPair+8(FP), R8
	SHLQ $2, R8
	MOVQ coef+24(FP), SI
	MOVQ coefStride+32(FP), R9
	SHLQ $2, R9
	MOVQ coefPair+40(FP), R10
	SHLQ $2, R10
	LEAQ (R10)(R10*2), R11
	MOVQ x+48(FP), BX
	MOVQ xStride+56(FP), R12
	SHLQ $2, R12
	MOVQ count+64(FP), R13

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

loop:
	VMOVUPS.Z    (BX), K5, Z16      // x[t, 0:16] (columns ≥ nfl read as 0)
	VMOVUPS.Z    64(BX), K6, Z17
	VMOVUPS.Z    128(BX), K7, Z18
	VMOVUPS.Z    192(BX), K4, Z19
	VBROADCASTSS (SI), Z20
	VBROADCASTSS (SI)(R10*1), Z21
	VBROADCASTSS (SI)(R10*2), Z22
	VBROADCASTSS (SI)(R11*1), Z23
	FMA4(Z20, Z0, Z1, Z2, Z3)
	FMA4(Z21, Z4, Z5, Z6, Z7)
	FMA4(Z22, Z8, Z9, Z10, Z11)
	FMA4(Z23, Z12, Z13, Z14, Z15)
	ADDQ R12, BX
	ADDQ R9, SI
	DECQ R13
	JNZ  loop

	LEAQ (DI)(R8*1), AX
	LEAQ (DI)(R8*2), CX
	LEAQ (CX)(R8*1), DX
	VMOVUPS Z0, K5, (DI)
	VMOVUPS Z1, K6, 64(DI)
	VMOVUPS Z2, K7, 128(DI)
	VMOVUPS Z3, K4, 192(DI)
	VMOVUPS Z4, K5, (AX)
	VMOVUPS Z5, K6, 64(AX)
	VMOVUPS Z6, K7, 128(AX)
	VMOVUPS Z7, K4, 192(AX)
	VMOVUPS Z8, K5, (CX)
	VMOVUPS Z9, K6, 64(CX)
	VMOVUPS Z10, K7, 128(CX)
	VMOVUPS Z11, K4, 192(CX)
	VMOVUPS Z12, K5, (DX)
	VMOVUPS Z13, K6, 64(DX)
	VMOVUPS Z14, K7, 128(DX)
	VMOVUPS Z15, K4, 192(DX)
	VZEROUPPER
	RET

// BITS4 splits the 64 sign bits in K1 into K1..K4 (16 columns each).
#define BITS4 \
	KSHIFTRQ $16, K1, K2   \
	KSHIFTRQ $32, K1, K3   \
	KSHIFTRQ $48, K1, K4

// XWORD does one 64-column word for 2 rows of x (in Z16..Z19, Z20..Z23)
// against 4 weight rows at (R14), (R14)(R12*1), (R14)(R12*2), (R14)(R13*1).
#define XWORD \
	VADDPS Z16, Z8, Z8            \
	VADDPS Z17, Z8, Z8            \
	VADDPS Z18, Z8, Z8            \
	VADDPS Z19, Z8, Z8            \
	VADDPS Z20, Z9, Z9            \
	VADDPS Z21, Z9, Z9            \
	VADDPS Z22, Z9, Z9            \
	VADDPS Z23, Z9, Z9            \
	KMOVQ  (R14), K1              \
	BITS4                         \
	XROW(Z0, Z4)                  \
	KMOVQ  (R14)(R12*1), K1       \
	BITS4                         \
	XROW(Z1, Z5)                  \
	KMOVQ  (R14)(R12*2), K1       \
	BITS4                         \
	XROW(Z2, Z6)                  \
	KMOVQ  (R14)(R13*1), K1       \
	BITS4                         \
	XROW(Z3, Z7)

// XROW adds the selected columns of both x rows into their accumulators.
#define XROW(A, B) \
	VADDPS Z16, A, K1, A \
	VADDPS Z17, A, K2, A \
	VADDPS Z18, A, K3, A \
	VADDPS Z19, A, K4, A \
	VADDPS Z20, B, K1, B \
	VADDPS Z21, B, K2, B \
	VADDPS Z22, B, K3, B \
	VADDPS Z23, B, K4, B

// HSUM reduces the 16 lanes of S − 2·A (AY: the low half of A) to a float stored at OFF(ROW).
#define HSUM(A, AY, S, OFF, ROW) \
	VADDPS        A, A, A        \
	VSUBPS        A, S, A        \
	VEXTRACTF64X4 $1, A, Y24     \
	VADDPS        Y24, AY, Y24   \
	VEXTRACTF32X4 $1, Y24, X25   \
	VADDPS        X25, X24, X24  \
	VPERMILPS     $0x4e, X24, X25 \
	VADDPS        X25, X24, X24  \
	VPERMILPS     $0xb1, X24, X25 \
	VADDSS        X25, X24, X24  \
	VMOVSS        X24, OFF(ROW)

// func realBin2x4AVX512(c *float32, ldc int, x *float32, ldx int, w *uint64, ldw, k int)
//
// For q < 2 and l < 4, with strides in elements:
//
//	c[q*ldc+l] = Σ_{kk<k} x[q*ldx+kk]·(w[l*ldw+kk/64] bit kk%64 ? −1 : +1)
//
// k ≥ 1. Reads only x[q*ldx : q*ldx+k] and Words(k) words per w row.
TEXT ·realBin2x4AVX512(SB), NOSPLIT, $0-56
	MOVQ x+16(FP), SI
	MOVQ ldx+24(FP), R8
	SHLQ $2, R8
	ADDQ SI, R8                 // R8 walks x row 1, SI x row 0
	MOVQ w+32(FP), R14
	MOVQ ldw+40(FP), R12
	SHLQ $3, R12
	LEAQ (R12)(R12*2), R13
	MOVQ k+48(FP), R10
	MOVQ R10, R11
	SHRQ $6, R10                // full words
	ANDQ $63, R11               // columns in the last, partial word

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9

	TESTQ R10, R10
	JZ    tail

loop:
	VMOVUPS (SI), Z16
	VMOVUPS 64(SI), Z17
	VMOVUPS 128(SI), Z18
	VMOVUPS 192(SI), Z19
	VMOVUPS (R8), Z20
	VMOVUPS 64(R8), Z21
	VMOVUPS 128(R8), Z22
	VMOVUPS 192(R8), Z23
	XWORD
	ADDQ $256, SI
	ADDQ $256, R8
	ADDQ $8, R14
	DECQ R10
	JNZ  loop

tail:
	TESTQ R11, R11
	JZ    reduce
	MOVQ  R11, DX
	COLMASKS                    // K5, K6, K7, K4: the last k%64 columns
	VMOVUPS.Z (SI), K5, Z16
	VMOVUPS.Z 64(SI), K6, Z17
	VMOVUPS.Z 128(SI), K7, Z18
	VMOVUPS.Z 192(SI), K4, Z19
	VMOVUPS.Z (R8), K5, Z20
	VMOVUPS.Z 64(R8), K6, Z21
	VMOVUPS.Z 128(R8), K7, Z22
	VMOVUPS.Z 192(R8), K4, Z23
	XWORD

reduce:
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), AX
	LEAQ (DI)(AX*4), AX
	HSUM(Z0, Y0, Z8, 0, DI)
	HSUM(Z1, Y1, Z8, 4, DI)
	HSUM(Z2, Y2, Z8, 8, DI)
	HSUM(Z3, Y3, Z8, 12, DI)
	HSUM(Z4, Y4, Z9, 0, AX)
	HSUM(Z5, Y5, Z9, 4, AX)
	HSUM(Z6, Y6, Z9, 8, AX)
	HSUM(Z7, Y7, Z9, 12, AX)
	VZEROUPPER
	RET
