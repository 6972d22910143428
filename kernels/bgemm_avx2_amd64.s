//go:build !purego

#include "textflag.h"

// AVX2 binary GEMM microkernel: no vector popcount instruction, so each
// byte is counted with two 16-entry table lookups (VPSHUFB on the low and
// high nibbles) and VPSADBW sums the 8 byte counts of every 64-bit lane.
// Panels hold 4 rows of b per vector, word-interleaved as for AVX-512:
//
//	panels[(p*words + w)*4 + l] = b_{4p+l}[w]      p < 2, l < 4

// popcount of 0..15, once per 128-bit lane (VPSHUFB looks up within lanes).
DATA nibblePopcount<>+0(SB)/8, $0x0302020102010100
DATA nibblePopcount<>+8(SB)/8, $0x0403030203020201
DATA nibblePopcount<>+16(SB)/8, $0x0302020102010100
DATA nibblePopcount<>+24(SB)/8, $0x0403030203020201
GLOBL nibblePopcount<>(SB), RODATA|NOPTR, $32

// STEP2 adds popcount(P XOR A) lane-wise to ACC; T and U are temporaries.
// Y8 = nibble table, Y9 = 0x0f in every byte, Y10 = zero.
#define STEP2(P, A, ACC, T, U) \
	VPXOR   P, A, T      \  // the mismatching bits
	VPSRLW  $4, T, U     \  // high nibbles (stray bits masked next)
	VPAND   Y9, T, T     \
	VPAND   Y9, U, U     \
	VPSHUFB T, Y8, T     \  // popcount of each low nibble
	VPSHUFB U, Y8, U     \  // and of each high nibble
	VPADDB  U, T, T      \  // popcount of each byte (≤ 8)
	VPSADBW Y10, T, T    \  // sum of the 8 bytes of each 64-bit lane
	VPADDQ  T, ACC, ACC

// func bgemm2x8AVX2(counts *uint64, a *uint64, lda int, panels *uint64, words int)
//
// For r < 2, j < 8 (p = j/4, l = j%4):
//
//	counts[r*8+j] = Σ_{w<words} popcount(a[r*lda+w] XOR panels[(p*words+w)*4+l])
//
// words ≥ 1.
TEXT ·bgemm2x8AVX2(SB), NOSPLIT, $0-40
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), R9
	SHLQ $3, R9
	MOVQ panels+24(FP), AX
	MOVQ words+32(FP), CX
	MOVQ CX, R11
	SHLQ $5, R11                // panel stride in bytes (words × 32)

	VMOVDQU      nibblePopcount<>(SB), Y8
	MOVL         $0x0f0f0f0f, DX
	MOVD         DX, X9
	VPBROADCASTD X9, Y9
	VPXOR        Y10, Y10, Y10
	VPXOR        Y0, Y0, Y0
	VPXOR        Y1, Y1, Y1
	VPXOR        Y2, Y2, Y2
	VPXOR        Y3, Y3, Y3

loop:
	VMOVDQU      (AX), Y4          // word w of b rows 0..3
	VMOVDQU      (AX)(R11*1), Y5   // b rows 4..7
	VPBROADCASTQ (SI), Y6          // a row 0, word w
	VPBROADCASTQ (SI)(R9*1), Y7    // a row 1
	STEP2(Y4, Y6, Y0, Y11, Y12)
	STEP2(Y5, Y6, Y1, Y13, Y14)
	STEP2(Y4, Y7, Y2, Y11, Y12)
	STEP2(Y5, Y7, Y3, Y13, Y14)
	ADDQ $32, AX
	ADDQ $8, SI
	DECQ CX
	JNZ  loop

	MOVQ    counts+0(FP), DI
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VZEROUPPER
	RET
