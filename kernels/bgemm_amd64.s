//go:build !purego

#include "textflag.h"

// Binary GEMM microkernels for amd64. The Go side (kernels_amd64.go) copies
// up to 32 rows of b into a "panel" buffer, word-interleaved so that one
// 512-bit load holds the same word of 8 consecutive b rows:
//
//	panels[(p*words + w)*8 + l] = b_{8p+l}[w]      p < 4, l < 8, w < words
//
// A word of a row of a is broadcast to all 8 lanes, XORed with the panel
// vectors and popcounted, so each 64-bit accumulator lane counts for one
// (row of a, row of b) pair and no horizontal reduction is needed.

// evenDwords indexes the low dword of each qword of two vectors, for
// VPERMT2D: 0, 2, 4, …, 30.
DATA ·evenDwords+0(SB)/8, $0x0000000200000000
DATA ·evenDwords+8(SB)/8, $0x0000000600000004
DATA ·evenDwords+16(SB)/8, $0x0000000a00000008
DATA ·evenDwords+24(SB)/8, $0x0000000e0000000c
DATA ·evenDwords+32(SB)/8, $0x0000001200000010
DATA ·evenDwords+40(SB)/8, $0x0000001600000014
DATA ·evenDwords+48(SB)/8, $0x0000001a00000018
DATA ·evenDwords+56(SB)/8, $0x0000001e0000001c
GLOBL ·evenDwords(SB), RODATA|NOPTR, $64

// STEP adds popcount(A XOR B) lane-wise to ACC (T is a temporary).
#define STEP(B, A, ACC, T) \
	VPXORQ   B, A, T   \
	VPOPCNTQ T, T      \
	VPADDQ   T, ACC, ACC

// STEP0 is STEP for the first word: it sets ACC (T unused).
#define STEP0(B, A, ACC, T) \
	VPXORQ   B, A, ACC \
	VPOPCNTQ ACC, ACC

// FIN turns the 8 lane counts in ZACC (YACC: its low half) into the
// output for 8 columns at OFF(ROW) under column mask KP:
//   y := count + af·old;  out := kf + mf·y
// with af = 1 when accumulating onto a previous k-block (else 0), and
// (kf, mf) = (k, −2) on the last k-block (else (0, 1)); Y28, Y29, Y30
// hold af, kf, mf. Masked loads and stores never touch columns ≥ n.
#define FIN(ZACC, YACC, OFF, KP, ROW) \
	VPMOVQD     ZACC, YACC         \
	VMOVDQU32.Z OFF(ROW), KP, Y31  \
	VPMULLD     Y28, Y31, Y31      \
	VPADDD      Y31, YACC, YACC    \
	VPMULLD     Y30, YACC, YACC    \
	VPADDD      Y29, YACC, YACC    \
	VMOVDQU32   YACC, KP, OFF(ROW)

// FINLAST2 is FIN for the common case mode == 2 (one k-block) on the
// accumulators of two adjacent panels: VPERMT2D gathers the low dwords of
// ZLO's and ZHI's lanes into ZLO (Z31 holds the even dword indexes 0, 2,
// …, 30), then out = k − 2·count with k in every lane of Z29, and one
// store writes the 16 columns under the 16-bit mask KP (half the vector
// work of narrowing each accumulator on its own).
#define FINLAST2(ZLO, ZHI, OFF, KP, ROW) \
	VPERMT2D  ZHI, Z31, ZLO      \
	VPSLLD    $1, ZLO, ZLO       \
	VPSUBD    ZLO, Z29, ZLO      \
	VMOVDQU32 ZLO, KP, OFF(ROW)

// func bgemmBlockAVX512(c *int32, ldc int, a *uint64, lda int, panels *uint64, words int, rows int, jmask uint32, k int, mode int)
//
// For every row i < rows of a (row i at a[i*lda:], words words from there)
// and every column j < 32 with jmask bit j set:
//
//	cnt := Σ_{w<words} popcount(a_i[w] XOR panels[((j/8)*words + w)*8 + j%8])
//	if mode&1 != 0 { cnt += c[i*ldc+j] }          // later k-block
//	if mode&2 != 0 { cnt = k − 2·cnt }            // last k-block
//	c[i*ldc+j] = cnt
//
// words ≥ 1, rows ≥ 1. Rows are done four at a time (16 accumulators:
// 4 rows × 4 panels), then one at a time.
TEXT ·bgemmBlockAVX512(SB), NOSPLIT, $0-80
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), R8
	SHLQ $2, R8                 // R8 = row stride of c in bytes
	MOVQ a+16(FP), SI
	MOVQ lda+24(FP), R9
	SHLQ $3, R9                 // R9 = row stride of a in bytes
	LEAQ (R9)(R9*2), R13        // R13 = 3 rows of a
	MOVQ panels+32(FP), DX
	MOVQ words+40(FP), R10
	MOVQ R10, R11
	SHLQ $6, R11                // R11 = panel stride in bytes (words × 64)
	LEAQ (R11)(R11*2), R12      // R12 = 3 panels
	MOVQ rows+48(FP), BX

	// Column masks: K1..K4 select the valid lanes of panels 0..3.
	MOVL jmask+56(FP), AX
	KMOVB AX, K1
	SHRL  $8, AX
	KMOVB AX, K2
	SHRL  $8, AX
	KMOVB AX, K3
	SHRL  $8, AX
	KMOVB AX, K4
	MOVL jmask+56(FP), AX       // K5, K6: panels 0–1 and 2–3 for FINLAST2
	KMOVW AX, K5
	SHRL  $16, AX
	KMOVW AX, K6

	// Epilogue constants af (Y28), kf (Y29), mf (Y30).
	MOVQ mode+72(FP), AX
	MOVL AX, CX
	ANDL $1, CX
	VPBROADCASTD CX, Y28
	XORL CX, CX
	MOVL $1, R14
	TESTQ $2, AX
	JZ   notlast
	MOVQ k+64(FP), CX
	MOVL $-2, R14
notlast:
	VPBROADCASTD CX, Z29
	VPBROADCASTD R14, Y30

	CMPQ BX, $4
	JLT  rows1

rows4:
	MOVQ DX, AX                 // AX walks the panel words
	MOVQ SI, CX                 // CX walks row 0 of the a block
	MOVQ R10, R14               // word count

	// The first word sets the accumulators instead of adding to zeros.
	VMOVDQU64    (AX), Z16          // word w of b rows 0..7
	VMOVDQU64    (AX)(R11*1), Z17   // b rows 8..15
	VMOVDQU64    (AX)(R11*2), Z18   // b rows 16..23
	VMOVDQU64    (AX)(R12*1), Z19   // b rows 24..31
	VPBROADCASTQ (CX), Z20          // a row 0, word w, in every lane
	VPBROADCASTQ (CX)(R9*1), Z21    // a row 1
	VPBROADCASTQ (CX)(R9*2), Z22    // a row 2
	VPBROADCASTQ (CX)(R13*1), Z23   // a row 3
	STEP0(Z16, Z20, Z0, Z24)
	STEP0(Z17, Z20, Z1, Z25)
	STEP0(Z18, Z20, Z2, Z26)
	STEP0(Z19, Z20, Z3, Z27)
	STEP0(Z16, Z21, Z4, Z24)
	STEP0(Z17, Z21, Z5, Z25)
	STEP0(Z18, Z21, Z6, Z26)
	STEP0(Z19, Z21, Z7, Z27)
	STEP0(Z16, Z22, Z8, Z24)
	STEP0(Z17, Z22, Z9, Z25)
	STEP0(Z18, Z22, Z10, Z26)
	STEP0(Z19, Z22, Z11, Z27)
	STEP0(Z16, Z23, Z12, Z24)
	STEP0(Z17, Z23, Z13, Z25)
	STEP0(Z18, Z23, Z14, Z26)
	STEP0(Z19, Z23, Z15, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JZ   kdone4

kloop4:
	VMOVDQU64    (AX), Z16          // word w of b rows 0..7
	VMOVDQU64    (AX)(R11*1), Z17   // b rows 8..15
	VMOVDQU64    (AX)(R11*2), Z18   // b rows 16..23
	VMOVDQU64    (AX)(R12*1), Z19   // b rows 24..31
	VPBROADCASTQ (CX), Z20          // a row 0, word w, in every lane
	VPBROADCASTQ (CX)(R9*1), Z21    // a row 1
	VPBROADCASTQ (CX)(R9*2), Z22    // a row 2
	VPBROADCASTQ (CX)(R13*1), Z23   // a row 3
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z17, Z20, Z1, Z25)
	STEP(Z18, Z20, Z2, Z26)
	STEP(Z19, Z20, Z3, Z27)
	STEP(Z16, Z21, Z4, Z24)
	STEP(Z17, Z21, Z5, Z25)
	STEP(Z18, Z21, Z6, Z26)
	STEP(Z19, Z21, Z7, Z27)
	STEP(Z16, Z22, Z8, Z24)
	STEP(Z17, Z22, Z9, Z25)
	STEP(Z18, Z22, Z10, Z26)
	STEP(Z19, Z22, Z11, Z27)
	STEP(Z16, Z23, Z12, Z24)
	STEP(Z17, Z23, Z13, Z25)
	STEP(Z18, Z23, Z14, Z26)
	STEP(Z19, Z23, Z15, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JNZ  kloop4

kdone4:

	LEAQ (DI)(R8*1), AX         // c row 1
	LEAQ (DI)(R8*2), CX         // c row 2
	LEAQ (CX)(R8*1), R14        // c row 3
	CMPQ mode+72(FP), $2
	JNE  fin4
	VMOVDQU64 ·evenDwords(SB), Z31
	FINLAST2(Z0, Z1, 0, K5, DI)
	FINLAST2(Z2, Z3, 64, K6, DI)
	FINLAST2(Z4, Z5, 0, K5, AX)
	FINLAST2(Z6, Z7, 64, K6, AX)
	FINLAST2(Z8, Z9, 0, K5, CX)
	FINLAST2(Z10, Z11, 64, K6, CX)
	FINLAST2(Z12, Z13, 0, K5, R14)
	FINLAST2(Z14, Z15, 64, K6, R14)

	JMP  next4

fin4:
	FIN(Z0, Y0, 0, K1, DI)
	FIN(Z1, Y1, 32, K2, DI)
	FIN(Z2, Y2, 64, K3, DI)
	FIN(Z3, Y3, 96, K4, DI)
	FIN(Z4, Y4, 0, K1, AX)
	FIN(Z5, Y5, 32, K2, AX)
	FIN(Z6, Y6, 64, K3, AX)
	FIN(Z7, Y7, 96, K4, AX)
	FIN(Z8, Y8, 0, K1, CX)
	FIN(Z9, Y9, 32, K2, CX)
	FIN(Z10, Y10, 64, K3, CX)
	FIN(Z11, Y11, 96, K4, CX)
	FIN(Z12, Y12, 0, K1, R14)
	FIN(Z13, Y13, 32, K2, R14)
	FIN(Z14, Y14, 64, K3, R14)
	FIN(Z15, Y15, 96, K4, R14)


next4:
	LEAQ (DI)(R8*4), DI
	LEAQ (SI)(R9*4), SI
	SUBQ $4, BX
	CMPQ BX, $4
	JGE  rows4

rows1:
	TESTQ BX, BX
	JZ    done

row1:
	MOVQ DX, AX
	MOVQ SI, CX
	MOVQ R10, R14

	// The first word sets the accumulators instead of adding to zeros.
	VMOVDQU64    (AX), Z16
	VMOVDQU64    (AX)(R11*1), Z17
	VMOVDQU64    (AX)(R11*2), Z18
	VMOVDQU64    (AX)(R12*1), Z19
	VPBROADCASTQ (CX), Z20
	STEP0(Z16, Z20, Z0, Z24)
	STEP0(Z17, Z20, Z1, Z25)
	STEP0(Z18, Z20, Z2, Z26)
	STEP0(Z19, Z20, Z3, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JZ   kdone1

kloop1:
	VMOVDQU64    (AX), Z16
	VMOVDQU64    (AX)(R11*1), Z17
	VMOVDQU64    (AX)(R11*2), Z18
	VMOVDQU64    (AX)(R12*1), Z19
	VPBROADCASTQ (CX), Z20
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z17, Z20, Z1, Z25)
	STEP(Z18, Z20, Z2, Z26)
	STEP(Z19, Z20, Z3, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JNZ  kloop1

kdone1:

	CMPQ mode+72(FP), $2
	JNE  fin1
	VMOVDQU64 ·evenDwords(SB), Z31
	FINLAST2(Z0, Z1, 0, K5, DI)
	FINLAST2(Z2, Z3, 64, K6, DI)
	JMP  next1

fin1:
	FIN(Z0, Y0, 0, K1, DI)
	FIN(Z1, Y1, 32, K2, DI)
	FIN(Z2, Y2, 64, K3, DI)
	FIN(Z3, Y3, 96, K4, DI)

next1:
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ BX
	JNZ  row1

done:
	VZEROUPPER
	RET

// FINLAST1 is FINLAST2 for one accumulator (8 columns under the 8-bit
// mask KP): out = k − 2·count, with k in every lane of Y29.
#define FINLAST1(ZACC, YACC, OFF, KP, ROW) \
	VPMOVQD   ZACC, YACC         \
	VPSLLD    $1, YACC, YACC     \
	VPSUBD    YACC, Y29, YACC    \
	VMOVDQU32 YACC, KP, OFF(ROW)

// func bgemmBlock8AVX512(c *int32, ldc int, a *uint64, lda int, panel *uint64, words int, rows int, jmask uint32, k int, mode int)
//
// bgemmBlockAVX512 for at most 8 columns: one panel, rows four at a time
// (4 STEPs per word instead of the 16 of which 12 would be wasted on
// columns ≥ 8), then one at a time. jmask < 256.
TEXT ·bgemmBlock8AVX512(SB), NOSPLIT, $0-80
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), R8
	SHLQ $2, R8                 // R8 = row stride of c in bytes
	MOVQ a+16(FP), SI
	MOVQ lda+24(FP), R9
	SHLQ $3, R9                 // R9 = row stride of a in bytes
	LEAQ (R9)(R9*2), R13        // R13 = 3 rows of a
	MOVQ panel+32(FP), DX
	MOVQ words+40(FP), R10
	MOVQ rows+48(FP), BX
	MOVL jmask+56(FP), AX
	KMOVB AX, K1

	MOVQ mode+72(FP), AX
	MOVL AX, CX
	ANDL $1, CX
	VPBROADCASTD CX, Y28
	XORL CX, CX
	MOVL $1, R14
	TESTQ $2, AX
	JZ   n8notlast
	MOVQ k+64(FP), CX
	MOVL $-2, R14
n8notlast:
	VPBROADCASTD CX, Y29
	VPBROADCASTD R14, Y30

	CMPQ BX, $4
	JLT  n8rows1

n8rows4:
	MOVQ DX, AX
	MOVQ SI, CX
	MOVQ R10, R14
	VMOVDQU64    (AX), Z16
	VPBROADCASTQ (CX), Z20
	VPBROADCASTQ (CX)(R9*1), Z21
	VPBROADCASTQ (CX)(R9*2), Z22
	VPBROADCASTQ (CX)(R13*1), Z23
	STEP0(Z16, Z20, Z0, Z24)
	STEP0(Z16, Z21, Z1, Z25)
	STEP0(Z16, Z22, Z2, Z26)
	STEP0(Z16, Z23, Z3, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JZ   n8done4

n8loop4:
	VMOVDQU64    (AX), Z16
	VPBROADCASTQ (CX), Z20
	VPBROADCASTQ (CX)(R9*1), Z21
	VPBROADCASTQ (CX)(R9*2), Z22
	VPBROADCASTQ (CX)(R13*1), Z23
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z16, Z21, Z1, Z25)
	STEP(Z16, Z22, Z2, Z26)
	STEP(Z16, Z23, Z3, Z27)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JNZ  n8loop4

n8done4:
	LEAQ (DI)(R8*1), AX         // c row 1
	LEAQ (DI)(R8*2), CX         // c row 2
	LEAQ (CX)(R8*1), R14        // c row 3
	CMPQ mode+72(FP), $2
	JNE  n8fin4
	FINLAST1(Z0, Y0, 0, K1, DI)
	FINLAST1(Z1, Y1, 0, K1, AX)
	FINLAST1(Z2, Y2, 0, K1, CX)
	FINLAST1(Z3, Y3, 0, K1, R14)
	JMP  n8next4

n8fin4:
	FIN(Z0, Y0, 0, K1, DI)
	FIN(Z1, Y1, 0, K1, AX)
	FIN(Z2, Y2, 0, K1, CX)
	FIN(Z3, Y3, 0, K1, R14)

n8next4:
	LEAQ (DI)(R8*4), DI
	LEAQ (SI)(R9*4), SI
	SUBQ $4, BX
	CMPQ BX, $4
	JGE  n8rows4

n8rows1:
	TESTQ BX, BX
	JZ    n8end

n8row1:
	MOVQ DX, AX
	MOVQ SI, CX
	MOVQ R10, R14
	VPXORQ Z0, Z0, Z0

n8loop1:
	VPBROADCASTQ (CX), Z20
	STEP((AX), Z20, Z0, Z24)
	ADDQ $64, AX
	ADDQ $8, CX
	DECQ R14
	JNZ  n8loop1

	CMPQ mode+72(FP), $2
	JNE  n8fin1
	FINLAST1(Z0, Y0, 0, K1, DI)
	JMP  n8next1

n8fin1:
	FIN(Z0, Y0, 0, K1, DI)

n8next1:
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ BX
	JNZ  n8row1

n8end:
	VZEROUPPER
	RET

// func scaleColumnsAVX512(c *float32, rows, n int, scale, shift *float32)
//
// For i < rows, j < n: c[i*n+j] = float32(int32 bits of c[i*n+j])·scale[j] + shift[j],
// one rounding after the multiply and one after the add, as in Go.
TEXT ·scaleColumnsAVX512(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DI
	MOVQ rows+8(FP), BX
	MOVQ n+16(FP), R8
	MOVQ scale+24(FP), R9
	MOVQ shift+32(FP), R10
	MOVQ R8, DX
	ANDQ $15, DX                // columns in the last, partial vector
	MOVQ $-1, AX
	BZHIQ DX, AX, AX
	KMOVW AX, K1

scalerow:
	XORQ CX, CX                 // column
	MOVQ R8, R11
	SHRQ $4, R11                // full vectors in a row
	JZ   scaletail

scalevec:
	VCVTDQ2PS (DI)(CX*4), Z0
	VMULPS    (R9)(CX*4), Z0, Z0
	VADDPS    (R10)(CX*4), Z0, Z0
	VMOVUPS   Z0, (DI)(CX*4)
	ADDQ $16, CX
	DECQ R11
	JNZ  scalevec

scaletail:
	TESTQ DX, DX
	JZ    scalenext
	VMOVDQU32.Z (DI)(CX*4), K1, Z0
	VCVTDQ2PS   Z0, Z0
	VMOVUPS.Z   (R9)(CX*4), K1, Z1
	VMULPS      Z1, Z0, Z0
	VMOVUPS.Z   (R10)(CX*4), K1, Z1
	VADDPS      Z1, Z0, Z0
	VMOVUPS     Z0, K1, (DI)(CX*4)

scalenext:
	LEAQ (DI)(R8*4), DI
	DECQ BX
	JNZ  scalerow
	VZEROUPPER
	RET

// func transpose8AVX512(dst *uint64, dstStride int, src *uint64, ld, blocks, panels int)
//
// Interleaves panels groups of 8 rows for the GEMM panels, 8 words at a
// time:
//
//	for p := 0; p < panels; p++ {
//		for w := 0; w < 8*blocks; w++ {
//			for l := 0; l < 8; l++ {
//				dst[p*dstStride+w*8+l] = src[(8*p+l)*ld+w]
//			}
//		}
//	}
//
// as 8×8 transposes of 64-bit words (unpack, then two rounds of 128-bit
// lane shuffles).
TEXT ·transpose8AVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DX          // DX, R13: the current panel's dst and src
	MOVQ dstStride+8(FP), R14
	SHLQ $3, R14                // panel stride of dst in bytes
	MOVQ src+16(FP), R13
	MOVQ ld+24(FP), R8
	SHLQ $3, R8                 // row stride in bytes
	LEAQ (R8)(R8*2), R9         // 3 rows
	LEAQ (R8)(R8*4), R10        // 5 rows
	LEAQ (R9)(R9*1), R12        // 6 rows
	LEAQ (R12)(R8*1), R11       // 7 rows
	MOVQ panels+40(FP), BX

tpanel:
	MOVQ DX, DI
	MOVQ R13, SI
	MOVQ blocks+32(FP), CX

tloop:
	VMOVDQU64 (SI), Z0              // row 0, words w..w+7
	VMOVDQU64 (SI)(R8*1), Z1        // row 1
	VMOVDQU64 (SI)(R8*2), Z2        // row 2
	VMOVDQU64 (SI)(R9*1), Z3        // row 3
	VMOVDQU64 (SI)(R8*4), Z4        // row 4
	VMOVDQU64 (SI)(R10*1), Z5       // row 5
	VMOVDQU64 (SI)(R12*1), Z6       // row 6
	VMOVDQU64 (SI)(R11*1), Z7       // row 7
	VPUNPCKLQDQ Z1, Z0, Z8          // [r00 r10 | r02 r12 | r04 r14 | r06 r16]
	VPUNPCKHQDQ Z1, Z0, Z9          // [r01 r11 | r03 r13 | …]
	VPUNPCKLQDQ Z3, Z2, Z10
	VPUNPCKHQDQ Z3, Z2, Z11
	VPUNPCKLQDQ Z5, Z4, Z12
	VPUNPCKHQDQ Z5, Z4, Z13
	VPUNPCKLQDQ Z7, Z6, Z14
	VPUNPCKHQDQ Z7, Z6, Z15
	VSHUFI64X2  $0x88, Z10, Z8, Z16  // [r00 r10 | r04 r14 | r20 r30 | r24 r34]
	VSHUFI64X2  $0xdd, Z10, Z8, Z17  // [r02 r12 | r06 r16 | r22 r32 | r26 r36]
	VSHUFI64X2  $0x88, Z11, Z9, Z18  // [r01 r11 | r05 r15 | r21 r31 | r25 r35]
	VSHUFI64X2  $0xdd, Z11, Z9, Z19  // [r03 r13 | r07 r17 | r23 r33 | r27 r37]
	VSHUFI64X2  $0x88, Z14, Z12, Z20 // rows 4..7 likewise
	VSHUFI64X2  $0xdd, Z14, Z12, Z21
	VSHUFI64X2  $0x88, Z15, Z13, Z22
	VSHUFI64X2  $0xdd, Z15, Z13, Z23
	VSHUFI64X2  $0x88, Z20, Z16, Z0  // word 0 of rows 0..7
	VSHUFI64X2  $0xdd, Z20, Z16, Z4  // word 4
	VSHUFI64X2  $0x88, Z21, Z17, Z2  // word 2
	VSHUFI64X2  $0xdd, Z21, Z17, Z6  // word 6
	VSHUFI64X2  $0x88, Z22, Z18, Z1  // word 1
	VSHUFI64X2  $0xdd, Z22, Z18, Z5  // word 5
	VSHUFI64X2  $0x88, Z23, Z19, Z3  // word 3
	VSHUFI64X2  $0xdd, Z23, Z19, Z7  // word 7
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)
	ADDQ $64, SI
	ADDQ $512, DI
	DECQ CX
	JNZ  tloop
	ADDQ R14, DX
	LEAQ (R13)(R8*8), R13       // 8 rows on
	DECQ BX
	JNZ  tpanel
	VZEROUPPER
	RET

// func peakStepsAVX512(n int)
//
// Runs n iterations of 16 independent STEPs (XOR, VPOPCNTQ, add) on
// registers only: the most STEPs per second this CPU can issue, against
// which BenchmarkAVX512StepPeak rates the GEMM loop (which needs exactly
// one STEP per 512 binary multiply-accumulates).
TEXT ·peakStepsAVX512(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11
	VPXORQ Z12, Z12, Z12
	VPXORQ Z13, Z13, Z13
	VPXORQ Z14, Z14, Z14
	VPXORQ Z15, Z15, Z15

peakloop:
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z17, Z20, Z1, Z25)
	STEP(Z18, Z20, Z2, Z26)
	STEP(Z19, Z20, Z3, Z27)
	STEP(Z16, Z21, Z4, Z24)
	STEP(Z17, Z21, Z5, Z25)
	STEP(Z18, Z21, Z6, Z26)
	STEP(Z19, Z21, Z7, Z27)
	STEP(Z16, Z22, Z8, Z24)
	STEP(Z17, Z22, Z9, Z25)
	STEP(Z18, Z22, Z10, Z26)
	STEP(Z19, Z22, Z11, Z27)
	STEP(Z16, Z23, Z12, Z24)
	STEP(Z17, Z23, Z13, Z25)
	STEP(Z18, Z23, Z14, Z26)
	STEP(Z19, Z23, Z15, Z27)
	DECQ CX
	JNZ  peakloop
	VZEROUPPER
	RET

// SSTEP is the scalar counterpart of STEP for 64 binary MACs:
// ACC += popcount(A XOR B), with T a temporary.
#define SSTEP(A, B, ACC, T) \
	MOVQ    A, T   \
	XORQ    B, T   \
	POPCNTQ T, T   \
	ADDQ    T, ACC

// The 16 vector STEPs of peakStepsAVX512's loop.
#define VSTEPS16 \
	STEP(Z16, Z20, Z0, Z24)  \
	STEP(Z17, Z20, Z1, Z25)  \
	STEP(Z18, Z20, Z2, Z26)  \
	STEP(Z19, Z20, Z3, Z27)  \
	STEP(Z16, Z21, Z4, Z24)  \
	STEP(Z17, Z21, Z5, Z25)  \
	STEP(Z18, Z21, Z6, Z26)  \
	STEP(Z19, Z21, Z7, Z27)  \
	STEP(Z16, Z22, Z8, Z24)  \
	STEP(Z17, Z22, Z9, Z25)  \
	STEP(Z18, Z22, Z10, Z26) \
	STEP(Z19, Z22, Z11, Z27) \
	STEP(Z16, Z23, Z12, Z24) \
	STEP(Z17, Z23, Z13, Z25) \
	STEP(Z18, Z23, Z14, Z26) \
	STEP(Z19, Z23, Z15, Z27)

// Scalar steps in pairs: operands AX, BX, DX, SI, accumulators R8..R11,
// temporaries R12, R13 (each pair is independent of the previous one but
// for the accumulators, as in a GEMM loop with 4 scalar outputs).
#define SSTEPS2 \
	SSTEP(AX, DX, R8, R12) \
	SSTEP(BX, DX, R9, R13)
#define SSTEPS4 \
	SSTEPS2                \
	SSTEP(AX, SI, R10, R12) \
	SSTEP(BX, SI, R11, R13)

#define VZERO16 \
	VPXORQ Z0, Z0, Z0    \
	VPXORQ Z1, Z1, Z1    \
	VPXORQ Z2, Z2, Z2    \
	VPXORQ Z3, Z3, Z3    \
	VPXORQ Z4, Z4, Z4    \
	VPXORQ Z5, Z5, Z5    \
	VPXORQ Z6, Z6, Z6    \
	VPXORQ Z7, Z7, Z7    \
	VPXORQ Z8, Z8, Z8    \
	VPXORQ Z9, Z9, Z9    \
	VPXORQ Z10, Z10, Z10 \
	VPXORQ Z11, Z11, Z11 \
	VPXORQ Z12, Z12, Z12 \
	VPXORQ Z13, Z13, Z13 \
	VPXORQ Z14, Z14, Z14 \
	VPXORQ Z15, Z15, Z15

#define SZERO \
	XORQ AX, AX \
	XORQ BX, BX \
	XORQ DX, DX \
	XORQ SI, SI \
	XORQ R8, R8 \
	XORQ R9, R9 \
	XORQ R10, R10 \
	XORQ R11, R11

// func peakStepsHybrid2(n int) … peakStepsHybrid16(n int)
//
// n iterations of peakStepsAVX512's 16 vector STEPs plus S scalar
// MOVQ/XORQ/POPCNTQ/ADDQ steps (64 MACs each), registers only: whether
// the integer ports add throughput alongside the vector pipes
// (BenchmarkHybridStepPeak).
TEXT ·peakStepsHybrid2(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h2loop:
	VSTEPS16
	SSTEPS2
	DECQ CX
	JNZ  h2loop
	VZEROUPPER
	RET

TEXT ·peakStepsHybrid4(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h4loop:
	VSTEPS16
	SSTEPS4
	DECQ CX
	JNZ  h4loop
	VZEROUPPER
	RET

TEXT ·peakStepsHybrid6(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h6loop:
	VSTEPS16
	SSTEPS4
	SSTEPS2
	DECQ CX
	JNZ  h6loop
	VZEROUPPER
	RET

TEXT ·peakStepsHybrid8(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h8loop:
	VSTEPS16
	SSTEPS4
	SSTEPS4
	DECQ CX
	JNZ  h8loop
	VZEROUPPER
	RET

TEXT ·peakStepsHybrid12(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h12loop:
	VSTEPS16
	SSTEPS4
	SSTEPS4
	SSTEPS4
	DECQ CX
	JNZ  h12loop
	VZEROUPPER
	RET

TEXT ·peakStepsHybrid16(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VZERO16
	SZERO
h16loop:
	VSTEPS16
	SSTEPS4
	SSTEPS4
	SSTEPS4
	SSTEPS4
	DECQ CX
	JNZ  h16loop
	VZEROUPPER
	RET

// func peakStepsScalar(n int)
//
// n iterations of 16 scalar steps alone: the integer side's own ceiling.
TEXT ·peakStepsScalar(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	SZERO
sloop:
	SSTEPS4
	SSTEPS4
	SSTEPS4
	SSTEPS4
	DECQ CX
	JNZ  sloop
	RET
