//go:build !purego

#include "textflag.h"

// A hybrid AVX-512 + scalar GEMM block. Zen 5 runs the vector STEPs of
// bgemmBlockAVX512 on its vector pipes and leaves the integer ALUs idle;
// BenchmarkHybridStepPeak shows about 12 scalar POPCNTQ steps fit beside
// the 16 vector steps of an iteration at no cost. Here each iteration does
// the 16 vector steps for 4 rows × 32 columns plus 8 scalar steps for the
// same 4 rows × 2 more columns: 34 columns per block, in the time of 32.
// 8 is what the general registers can accumulate; 12 steps with 4 of the
// accumulators in memory made the block 17% slower.
//
// The 32 vector columns come from panels as in bgemmBlockAVX512 but with
// a constant stride between panels (hybridPanelStride = kBlockWords×8 + 72
// words: constant, so the loop addresses all four panels from one
// register and has enough general registers for the 8 scalar
// accumulators; the 72 keeps the panels off a 4 KiB stride, which measured
// the same here but is cheap insurance against L1 set conflicts):
//
//	panels[p*hybridPanelStride + w*8 + l] = b_{8p+l}[w]     p < 4, l < 8
//
// The 2 scalar columns are read straight from their rows of b: bs is
// column 32's row, column 33's is the next row, lda words on (a and b
// have the same row stride in BGemm).

// Z31 for FINLAST2 comes from evenDwords in bgemm_amd64.s.

#define PSTRIDE 4672 // hybridPanelStride in bytes

// STEP adds popcount(A XOR B) lane-wise to ACC (T is a temporary).
#define STEP(B, A, ACC, T) \
	VPXORQ   B, A, T   \
	VPOPCNTQ T, T      \
	VPADDQ   T, ACC, ACC

// SSTEP subtracts popcount(A XOR B) from ACC for two words in memory
// (R15 is the temporary; renaming makes consecutive SSTEPs independent).
// The scalar accumulators hold −count, so that k − 2·count is one LEA.
#define SSTEP(A, B, ACC) \
	MOVQ    A, R15   \
	XORQ    B, R15   \
	POPCNTQ R15, R15 \
	SUBQ    R15, ACC

// SSTEP0 is SSTEP for the first word: it sets ACC to −popcount(A XOR B).
#define SSTEP0(A, B, ACC) \
	MOVQ    A, R15   \
	XORQ    B, R15   \
	POPCNTQ R15, ACC \
	NEGQ    ACC

// STEP0 is STEP for the first word: it sets ACC (T unused).
#define STEP0(B, A, ACC, T) \
	VPXORQ   B, A, ACC \
	VPOPCNTQ ACC, ACC

// FIN and FINLAST as in bgemm_amd64.s (all 8 lanes stored: K1 = 0xff).
#define FIN(ZACC, YACC, OFF, ROW) \
	VPMOVQD     ZACC, YACC         \
	VMOVDQU32.Z OFF(ROW), K1, Y31  \
	VPMULLD     Y28, Y31, Y31      \
	VPADDD      Y31, YACC, YACC    \
	VPMULLD     Y30, YACC, YACC    \
	VPADDD      Y29, YACC, YACC    \
	VMOVDQU32   YACC, K1, OFF(ROW)

// FINM and FINLAST2M are FIN and FINLAST2 on an explicit memory operand.
#define FINM(ZACC, YACC, MEM) \
	VPMOVQD     ZACC, YACC      \
	VMOVDQU32.Z MEM, K1, Y31    \
	VPMULLD     Y28, Y31, Y31   \
	VPADDD      Y31, YACC, YACC \
	VPMULLD     Y30, YACC, YACC \
	VPADDD      Y29, YACC, YACC \
	VMOVDQU32   YACC, K1, MEM
#define FINLAST2M(ZLO, ZHI, MEM) \
	VPERMT2D  ZHI, Z31, ZLO \
	VPSLLD    $1, ZLO, ZLO  \
	VPSUBD    ZLO, Z29, ZLO \
	VMOVDQU32 ZLO, MEM

// FINLAST2 is FIN for mode == 2 (one k-block) on two accumulators of
// adjacent column groups: the low dwords of ZLO's and ZHI's lanes go into
// one vector (Z31 holds the even dword indexes), then
// out = k − 2·count (k in every lane of Z29), 16 columns in one store.
#define FINLAST2(ZLO, ZHI, OFF, ROW) \
	VPERMT2D  ZHI, Z31, ZLO      \
	VPSLLD    $1, ZLO, ZLO       \
	VPSUBD    ZLO, Z29, ZLO      \
	VMOVDQU32 ZLO, OFF(ROW)

// For a scalar accumulator ACC = −count: SACC adds the old output OLD
// to the count (a later k-block), SLAST makes the last k-block's
// output k − 2·count (k in R15), SCOUNT any other k-block's output count.
#define SACC(ACC, OLD) \
	SUBL OLD, ACC
#define SLAST(ACC) \
	LEAL (R15)(ACC*2), ACC
#define SCOUNT(ACC) \
	NEGL ACC

// Frame: 0(SP) c of the current row block, 8(SP) a of the current row
// block, 16(SP) rows left for the one-row loop, 24(SP) where the k loop's
// a pointer stops, 32(SP) cs − c in bytes, 40(SP) a after the 4-row blocks.
//
// func bgemmBlockHybridAVX512(c *int32, ldc int, a *uint64, lda int, panels *uint64, words int, rows int, k int, mode int, bs *uint64, cs *int32)
//
// For every row i < rows of a and every column j < 34, with out_j = c[i*ldc+j]
// for j < 32 and cs[i*ldc+j−32] for the scalar columns:
//
//	cnt := Σ_{w<words} popcount(a_i[w] XOR b_j[w])   (b_j as above)
//	if mode&1 != 0 { cnt += out_j }
//	if mode&2 != 0 { cnt = k − 2·cnt }
//	out_j = cnt
//
// The scalar columns' outputs go elsewhere in c (cs) so that the vector
// block's 64-byte stores stay on 128-byte boundaries when c's are.
//
// 1 ≤ words ≤ kBlockWords, rows ≥ 1. Rows go four at a time, then one.
TEXT ·bgemmBlockHybridAVX512(SB), NOSPLIT, $48-88
	MOVQ c+0(FP), AX
	MOVQ AX, 0(SP)
	MOVQ a+16(FP), AX
	MOVQ AX, 8(SP)
	MOVQ cs+80(FP), AX
	SUBQ c+0(FP), AX
	MOVQ AX, 32(SP)
	MOVQ lda+24(FP), R9
	SHLQ $3, R9                 // R9 = row stride of a in bytes
	LEAQ (R9)(R9*2), R13        // R13 = 3 rows of a
	MOVQ rows+48(FP), AX
	MOVQ AX, DX
	ANDQ $3, DX
	MOVQ DX, 16(SP)             // rows left for the one-row loop
	SHRQ $2, AX                 // 4-row blocks
	IMULQ R9, AX
	SHLQ $2, AX
	ADDQ 8(SP), AX
	MOVQ AX, 40(SP)             // a after the 4-row blocks

	MOVL $0xff, AX
	KMOVB AX, K1

	// Epilogue constants af (Y28), kf (Y29), mf (Y30) as in bgemmBlockAVX512.
	MOVQ mode+64(FP), AX
	MOVL AX, CX
	ANDL $1, CX
	VPBROADCASTD CX, Y28
	XORL CX, CX
	MOVL $1, DX
	TESTQ $2, AX
	JZ   hnotlast
	MOVQ k+56(FP), CX
	MOVL $-2, DX
hnotlast:
	VPBROADCASTD CX, Z29
	VPBROADCASTD DX, Y30

	MOVQ 8(SP), CX
	CMPQ CX, 40(SP)
	JEQ  hrows1
	// CX walks row 0 of the a block; it enters each block in the register,
	// not through 8(SP): a load right after the store would put the
	// store-to-load forwarding latency before the loop's first loads.

hrows4:
	MOVQ panels+32(FP), AX      // AX walks the panel words
	MOVQ bs+72(FP), R14         // R14 walks the scalar columns' row 0
	MOVQ words+40(FP), R15
	LEAQ (CX)(R15*8), R15
	MOVQ R15, 24(SP)            // where CX stops
	// Scalar accumulators (row r, column 32+s): BX r0s0, DX r0s1,
	// SI r1s0, DI r1s1, R8 r2s0, R10 r2s1, R11 r3s0, R12 r3s1.

	// The first word sets the accumulators instead of adding to zeros.
	VMOVDQU64    (AX), Z16              // word w of b rows 0..7
	VMOVDQU64    PSTRIDE(AX), Z17       // b rows 8..15
	VMOVDQU64    (2*PSTRIDE)(AX), Z18   // b rows 16..23
	VMOVDQU64    (3*PSTRIDE)(AX), Z19   // b rows 24..31
	VPBROADCASTQ (CX), Z20              // a row 0, word w, in every lane
	VPBROADCASTQ (CX)(R9*1), Z21        // a row 1
	VPBROADCASTQ (CX)(R9*2), Z22        // a row 2
	VPBROADCASTQ (CX)(R13*1), Z23       // a row 3
	STEP0(Z16, Z20, Z0, Z24)
	STEP0(Z17, Z20, Z1, Z25)
	SSTEP0((CX), (R14), BX)
	STEP0(Z18, Z20, Z2, Z26)
	STEP0(Z19, Z20, Z3, Z27)
	SSTEP0((CX), (R14)(R9*1), DX)
	STEP0(Z16, Z21, Z4, Z24)
	STEP0(Z17, Z21, Z5, Z25)
	SSTEP0((CX)(R9*1), (R14), SI)
	STEP0(Z18, Z21, Z6, Z26)
	STEP0(Z19, Z21, Z7, Z27)
	SSTEP0((CX)(R9*1), (R14)(R9*1), DI)
	STEP0(Z16, Z22, Z8, Z24)
	STEP0(Z17, Z22, Z9, Z25)
	SSTEP0((CX)(R9*2), (R14), R8)
	STEP0(Z18, Z22, Z10, Z26)
	STEP0(Z19, Z22, Z11, Z27)
	SSTEP0((CX)(R9*2), (R14)(R9*1), R10)
	STEP0(Z16, Z23, Z12, Z24)
	STEP0(Z17, Z23, Z13, Z25)
	SSTEP0((CX)(R13*1), (R14), R11)
	STEP0(Z18, Z23, Z14, Z26)
	STEP0(Z19, Z23, Z15, Z27)
	SSTEP0((CX)(R13*1), (R14)(R9*1), R12)
	ADDQ $64, AX
	ADDQ $8, CX
	ADDQ $8, R14
	CMPQ CX, 24(SP)
	JEQ  hkdone4

hkloop4:
	VMOVDQU64    (AX), Z16              // word w of b rows 0..7
	VMOVDQU64    PSTRIDE(AX), Z17       // b rows 8..15
	VMOVDQU64    (2*PSTRIDE)(AX), Z18   // b rows 16..23
	VMOVDQU64    (3*PSTRIDE)(AX), Z19   // b rows 24..31
	VPBROADCASTQ (CX), Z20              // a row 0, word w, in every lane
	VPBROADCASTQ (CX)(R9*1), Z21        // a row 1
	VPBROADCASTQ (CX)(R9*2), Z22        // a row 2
	VPBROADCASTQ (CX)(R13*1), Z23       // a row 3
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z17, Z20, Z1, Z25)
	SSTEP((CX), (R14), BX)
	STEP(Z18, Z20, Z2, Z26)
	STEP(Z19, Z20, Z3, Z27)
	SSTEP((CX), (R14)(R9*1), DX)
	STEP(Z16, Z21, Z4, Z24)
	STEP(Z17, Z21, Z5, Z25)
	SSTEP((CX)(R9*1), (R14), SI)
	STEP(Z18, Z21, Z6, Z26)
	STEP(Z19, Z21, Z7, Z27)
	SSTEP((CX)(R9*1), (R14)(R9*1), DI)
	STEP(Z16, Z22, Z8, Z24)
	STEP(Z17, Z22, Z9, Z25)
	SSTEP((CX)(R9*2), (R14), R8)
	STEP(Z18, Z22, Z10, Z26)
	STEP(Z19, Z22, Z11, Z27)
	SSTEP((CX)(R9*2), (R14)(R9*1), R10)
	STEP(Z16, Z23, Z12, Z24)
	STEP(Z17, Z23, Z13, Z25)
	SSTEP((CX)(R13*1), (R14), R11)
	STEP(Z18, Z23, Z14, Z26)
	STEP(Z19, Z23, Z15, Z27)
	SSTEP((CX)(R13*1), (R14)(R9*1), R12)
	ADDQ $64, AX
	ADDQ $8, CX
	ADDQ $8, R14
	CMPQ CX, 24(SP)
	JNE  hkloop4

hkdone4:

	// c rows 0..3 at (CX), (CX)(AX*1), (R14), (R14)(AX*1); R9 and R13
	// keep a's strides for the next block. The epilogue is short because
	// the loop leaves few dispatch slots free: its ops cost time here.
	MOVQ 0(SP), CX
	MOVQ ldc+8(FP), AX
	SHLQ $2, AX                 // AX = row stride of c in bytes
	LEAQ (CX)(AX*2), R14
	MOVQ k+56(FP), R15
	CMPQ mode+64(FP), $2
	JNE  hfin4
	VMOVDQU64 ·evenDwords(SB), Z31
	FINLAST2M(Z0, Z1, (CX))
	FINLAST2M(Z2, Z3, 64(CX))
	FINLAST2M(Z4, Z5, (CX)(AX*1))
	FINLAST2M(Z6, Z7, 64(CX)(AX*1))
	FINLAST2M(Z8, Z9, (R14))
	FINLAST2M(Z10, Z11, 64(R14))
	FINLAST2M(Z12, Z13, (R14)(AX*1))
	FINLAST2M(Z14, Z15, 64(R14)(AX*1))
	SLAST(BX)
	SLAST(DX)
	SLAST(SI)
	SLAST(DI)
	SLAST(R8)
	SLAST(R10)
	SLAST(R11)
	SLAST(R12)
	ADDQ 32(SP), CX             // scalar outputs: c + (cs − c)
	ADDQ 32(SP), R14
	JMP  hsstore4

hfin4:
	FINM(Z0, Y0, (CX))
	FINM(Z1, Y1, 32(CX))
	FINM(Z2, Y2, 64(CX))
	FINM(Z3, Y3, 96(CX))
	FINM(Z4, Y4, (CX)(AX*1))
	FINM(Z5, Y5, 32(CX)(AX*1))
	FINM(Z6, Y6, 64(CX)(AX*1))
	FINM(Z7, Y7, 96(CX)(AX*1))
	FINM(Z8, Y8, (R14))
	FINM(Z9, Y9, 32(R14))
	FINM(Z10, Y10, 64(R14))
	FINM(Z11, Y11, 96(R14))
	FINM(Z12, Y12, (R14)(AX*1))
	FINM(Z13, Y13, 32(R14)(AX*1))
	FINM(Z14, Y14, 64(R14)(AX*1))
	FINM(Z15, Y15, 96(R14)(AX*1))
	ADDQ 32(SP), CX
	ADDQ 32(SP), R14
	TESTQ $1, mode+64(FP)
	JZ    hsnoacc4
	SACC(BX, (CX))
	SACC(DX, 4(CX))
	SACC(SI, (CX)(AX*1))
	SACC(DI, 4(CX)(AX*1))
	SACC(R8, (R14))
	SACC(R10, 4(R14))
	SACC(R11, (R14)(AX*1))
	SACC(R12, 4(R14)(AX*1))
hsnoacc4:
	TESTQ $2, mode+64(FP)
	JZ    hscount4
	SLAST(BX)
	SLAST(DX)
	SLAST(SI)
	SLAST(DI)
	SLAST(R8)
	SLAST(R10)
	SLAST(R11)
	SLAST(R12)
	JMP   hsstore4
hscount4:
	SCOUNT(BX)
	SCOUNT(DX)
	SCOUNT(SI)
	SCOUNT(DI)
	SCOUNT(R8)
	SCOUNT(R10)
	SCOUNT(R11)
	SCOUNT(R12)
hsstore4:
	MOVL BX, (CX)
	MOVL DX, 4(CX)
	MOVL SI, (CX)(AX*1)
	MOVL DI, 4(CX)(AX*1)
	MOVL R8, (R14)
	MOVL R10, 4(R14)
	MOVL R11, (R14)(AX*1)
	MOVL R12, 4(R14)(AX*1)

	LEAQ (R14)(AX*2), CX        // next 4 rows: of the scalar outputs,
	SUBQ 32(SP), CX             // then of c
	MOVQ CX, 0(SP)
	MOVQ 8(SP), CX              // next 4 rows of a
	LEAQ (CX)(R9*4), CX
	MOVQ CX, 8(SP)
	CMPQ CX, 40(SP)
	JNE  hrows4

hrows1:
	CMPQ 16(SP), $0
	JEQ  hdone
	MOVQ 8(SP), CX

hrow1:
	MOVQ panels+32(FP), AX
	MOVQ bs+72(FP), R14
	MOVQ words+40(FP), R15
	LEAQ (CX)(R15*8), R15
	MOVQ R15, 24(SP)

	// The first word sets the accumulators instead of adding to zeros.
	VMOVDQU64    (AX), Z16
	VMOVDQU64    PSTRIDE(AX), Z17
	VMOVDQU64    (2*PSTRIDE)(AX), Z18
	VMOVDQU64    (3*PSTRIDE)(AX), Z19
	VPBROADCASTQ (CX), Z20
	STEP0(Z16, Z20, Z0, Z24)
	STEP0(Z17, Z20, Z1, Z25)
	SSTEP0((CX), (R14), BX)
	STEP0(Z18, Z20, Z2, Z26)
	STEP0(Z19, Z20, Z3, Z27)
	SSTEP0((CX), (R14)(R9*1), DX)
	ADDQ $64, AX
	ADDQ $8, CX
	ADDQ $8, R14
	CMPQ CX, 24(SP)
	JEQ  hkdone1

hkloop1:
	VMOVDQU64    (AX), Z16
	VMOVDQU64    PSTRIDE(AX), Z17
	VMOVDQU64    (2*PSTRIDE)(AX), Z18
	VMOVDQU64    (3*PSTRIDE)(AX), Z19
	VPBROADCASTQ (CX), Z20
	STEP(Z16, Z20, Z0, Z24)
	STEP(Z17, Z20, Z1, Z25)
	SSTEP((CX), (R14), BX)
	STEP(Z18, Z20, Z2, Z26)
	STEP(Z19, Z20, Z3, Z27)
	SSTEP((CX), (R14)(R9*1), DX)
	ADDQ $64, AX
	ADDQ $8, CX
	ADDQ $8, R14
	CMPQ CX, 24(SP)
	JNE  hkloop1

hkdone1:

	MOVQ 0(SP), CX
	MOVQ k+56(FP), R15
	CMPQ mode+64(FP), $2
	JNE  hfin1
	VMOVDQU64 ·evenDwords(SB), Z31
	FINLAST2(Z0, Z1, 0, CX)
	FINLAST2(Z2, Z3, 64, CX)
	JMP  hsfin1

hfin1:
	FIN(Z0, Y0, 0, CX)
	FIN(Z1, Y1, 32, CX)
	FIN(Z2, Y2, 64, CX)
	FIN(Z3, Y3, 96, CX)

hsfin1:
	MOVQ 32(SP), R13
	TESTQ $1, mode+64(FP)
	JZ    hsnoacc1
	SACC(BX, (CX)(R13*1))
	SACC(DX, 4(CX)(R13*1))
hsnoacc1:
	TESTQ $2, mode+64(FP)
	JZ    hscount1
	SLAST(BX)
	SLAST(DX)
	JMP   hsstore1
hscount1:
	SCOUNT(BX)
	SCOUNT(DX)
hsstore1:
	MOVL BX, (CX)(R13*1)
	MOVL DX, 4(CX)(R13*1)

	MOVQ ldc+8(FP), R13
	LEAQ (CX)(R13*4), CX        // next row of c
	MOVQ CX, 0(SP)
	MOVQ lda+24(FP), R9
	SHLQ $3, R9                 // R9 = row stride of a (and b) in bytes again
	MOVQ 8(SP), CX              // next row of a
	ADDQ R9, CX
	MOVQ CX, 8(SP)
	DECQ 16(SP)
	JNZ  hrow1

hdone:
	VZEROUPPER
	RET
