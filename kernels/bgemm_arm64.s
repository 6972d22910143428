//go:build !purego

// NEON binary GEMM microkernel for arm64.
//
// One call computes a 4×4 block of dot products: rows a0..a3 of A against
// rows b0..b3 of B, kw 64-bit words each, c[r*ldc+j] = k − 2·popcount(a_r XOR b_j).
// The Go wrapper (kernels_arm64.go) checks every bound, points tail rows at a
// valid row and tail outputs at a scratch block, so this code never checks.
//
// Accumulation. VCNT leaves 16 byte counts (≤ 8) per 128-bit XOR. Per A row
// the 8 count vectors of one 256-bit step (4 B rows × 2 halves) are added
// (VADD, ≤ 16), folded twice with VADDP (≤ 32, ≤ 64) into one vector whose
// byte groups 0-3, 4-7, 8-11, 12-15 belong to b0, b1, b2, b3, and widened
// into 16-bit lanes with UADALP .16B→.8H (+≤128 per lane per step). 511
// steps (65408 ≤ 65535) later the 16-bit lanes are widened into 32-bit lanes
// with UADALP .8H→.4S, which leaves lane j = popcount(a_r XOR b_j). Go has
// no mnemonic for UADALP: it is encoded with WORD, the mnemonic in the
// comment; scripts/check_arm64_words.sh assembles every such comment with
// binutils and compares the words.
//
// Instruction count of the inner loop (bgemmStep), per 1024 binary MACs.
// One iteration: 4 A rows × 4 B rows × 256 bits = 4096 MACs, made of
//   8 VLD1.P (two 128-bit registers each) + 32 VEOR + 32 VCNT + 16 VADD
//   + 12 VADDP + 4 UADALP + SUBS + BNE                = 106 instructions
//   → 106 / 4 = 26.5 instructions per 1024 binary MACs.
// larq/compute-engine, core/indirect_bgemm (XOR_POPCOUNT_ACCUM_LOAD_BLOCK_*
// plus the subs/bgt of its depth loop; 4 pixels × 8 output channels):
//   kernel_8x4x1: 8 eor + 8 cnt + 4 ld1r + 2 ldr + 4 addp + 1 add
//                 + 4 uadalp + 2 = 33 per 4·8·32 = 1024 MACs  → 33
//   kernel_8x4x2: 16 eor + 16 cnt + 4 ld1r + 4 ldr + 12 addp + 1 add
//                 + 4 uadalp + 2 = 59 per 4·8·64 = 2048 MACs  → 29.5
//   kernel_8x4x4: 32 eor + 32 cnt + 4 ld1 + 8 ldr + 28 addp + 1 add
//                 + 4 uadalp + 2 = 111 per 4·8·128 = 4096 MACs → 27.75
// All spend one EOR and one CNT per 128-bit pair (16 per 1024 MACs, the
// floor for this ISA) and exactly one more instruction per count vector to
// reduce it (VADD/VADDP/UADALP here, ADDP/UADALP in larq: 8 per 1024 MACs).
// The differences are the loads (2 per 1024 MACs here, 3 in 8x4x4, 4 in
// 8x4x2, 6 in 8x4x1; post-indexed, so no pointer ADD) and the loop branch
// amortised over a deeper step. larq accumulates 16-bit lanes only and
// bounds the depth; here the .8H→.4S widening every 511 steps (outside the
// loop) keeps any k exact. For reference, the generic Go loop (bgemmGeneric, compiled for
// arm64: per word and B row MOVD, EOR, FMOVD, VCNT, VUADDLV, FMOVD, ADD,
// plus bounds checks) runs 39 instructions per 4·64 MACs = 156 per 1024.

#include "textflag.h"

// Register map of bgemm4x4NEON.
//   R0 c (first output row)   R1 ldc in bytes
//   R2-R5 rows a0..a3         R6-R9 rows b0..b3
//   R10 words left for the 64-bit tail loop  R11 k
//   R12 256-bit steps left    R13 steps in this chunk
//   R14 scale (nil for int32 output)  R15 shift
//   V0-V7 A data (2 registers per row)   V8-V15 B data (2 per row)
//   V16-V19 16-bit accumulators, row r in V16+r
//   V20-V23 32-bit accumulators, row r in V20+r, lane j = popcount(a_r XOR b_j)
//   V24-V31 scratch

// ROW256 folds one A row (registers A0, A1) against the 4 B rows held in
// V8-V15 and adds the result to the 16-bit accumulator with UADALP (ACC).
#define ROW256(A0, A1, ACC) \
	VEOR	V8.B16, A0.B16, V24.B16   /* a XOR b0, low 128 bits */ \
	VEOR	V9.B16, A1.B16, V25.B16   /* a XOR b0, high 128 bits */ \
	VEOR	V10.B16, A0.B16, V26.B16  /* a XOR b1, low */ \
	VEOR	V11.B16, A1.B16, V27.B16  /* a XOR b1, high */ \
	VEOR	V12.B16, A0.B16, V28.B16  /* a XOR b2, low */ \
	VEOR	V13.B16, A1.B16, V29.B16  /* a XOR b2, high */ \
	VEOR	V14.B16, A0.B16, V30.B16  /* a XOR b3, low */ \
	VEOR	V15.B16, A1.B16, V31.B16  /* a XOR b3, high */ \
	VCNT	V24.B16, V24.B16          /* byte popcounts (each ≤ 8) */ \
	VCNT	V25.B16, V25.B16          /* … */ \
	VCNT	V26.B16, V26.B16          /* … */ \
	VCNT	V27.B16, V27.B16          /* … */ \
	VCNT	V28.B16, V28.B16          /* … */ \
	VCNT	V29.B16, V29.B16          /* … */ \
	VCNT	V30.B16, V30.B16          /* … */ \
	VCNT	V31.B16, V31.B16          /* … */ \
	VADD	V25.B16, V24.B16, V24.B16 /* b0: low + high halves (≤ 16) */ \
	VADD	V27.B16, V26.B16, V26.B16 /* b1 */ \
	VADD	V29.B16, V28.B16, V28.B16 /* b2 */ \
	VADD	V31.B16, V30.B16, V30.B16 /* b3 */ \
	VADDP	V26.B16, V24.B16, V24.B16 /* [b0 pairs | b1 pairs] (≤ 32) */ \
	VADDP	V30.B16, V28.B16, V28.B16 /* [b2 pairs | b3 pairs] */ \
	VADDP	V28.B16, V24.B16, V24.B16 /* bytes 4j..4j+3 belong to b_j (≤ 64) */ \
	ACC                               /* 16-bit lanes 2j, 2j+1 += b_j's bytes */

// ROW64 is ROW256 for the 64-bit tail: one register per A row whose upper
// half is zero, against B rows in V8-V11 (upper halves zero too).
#define ROW64(A0, ACC) \
	VEOR	V8.B16, A0.B16, V24.B16   /* a XOR b0 (upper half 0) */ \
	VEOR	V9.B16, A0.B16, V25.B16   /* a XOR b1 */ \
	VEOR	V10.B16, A0.B16, V26.B16  /* a XOR b2 */ \
	VEOR	V11.B16, A0.B16, V27.B16  /* a XOR b3 */ \
	VCNT	V24.B16, V24.B16          /* byte popcounts */ \
	VCNT	V25.B16, V25.B16          /* … */ \
	VCNT	V26.B16, V26.B16          /* … */ \
	VCNT	V27.B16, V27.B16          /* … */ \
	VADDP	V25.B16, V24.B16, V24.B16 /* [b0 pairs | b1 pairs] */ \
	VADDP	V27.B16, V26.B16, V26.B16 /* [b2 pairs | b3 pairs] */ \
	VADDP	V26.B16, V24.B16, V24.B16 /* bytes 4j..4j+3 belong to b_j */ \
	ACC                               /* 16-bit lanes 2j, 2j+1 += them */

// UADALP Vd.8H, V24.16B into the four 16-bit accumulators.
#define ACC16_0 WORD $0x6e206b10 /* uadalp v16.8h, v24.16b */
#define ACC16_1 WORD $0x6e206b11 /* uadalp v17.8h, v24.16b */
#define ACC16_2 WORD $0x6e206b12 /* uadalp v18.8h, v24.16b */
#define ACC16_3 WORD $0x6e206b13 /* uadalp v19.8h, v24.16b */

// func bgemm4x4NEON(c unsafe.Pointer, ldc int, a0, a1, a2, a3, b0, b1, b2, b3 *uint64, kw, k int, scale, shift *float32)
//
// Semantics, as the Go loop it replaces (kw ≥ 0, rows kw words long):
//
//	for r, a := range [a0 a1 a2 a3] { for j, b := range [b0 b1 b2 b3] {
//		p := 0; for w := 0; w < kw; w++ { p += bits.OnesCount64(a[w] ^ b[w]) }
//		if scale == nil { (*[]int32)(c)[r*ldc+j] = int32(k - 2*p) } else {
//		(*[]float32)(c)[r*ldc+j] = float32(float32(k-2*p)*scale[j]) + shift[j] } } }
TEXT ·bgemm4x4NEON(SB), NOSPLIT, $0-112
	MOVD	c+0(FP), R0      // output block
	MOVD	ldc+8(FP), R1    // output row stride, elements
	LSL	$2, R1, R1       // … in bytes
	MOVD	a0+16(FP), R2    // A rows
	MOVD	a1+24(FP), R3
	MOVD	a2+32(FP), R4
	MOVD	a3+40(FP), R5
	MOVD	b0+48(FP), R6    // B rows
	MOVD	b1+56(FP), R7
	MOVD	b2+64(FP), R8
	MOVD	b3+72(FP), R9
	MOVD	kw+80(FP), R10   // words per row
	MOVD	k+88(FP), R11    // valid bits
	MOVD	scale+96(FP), R14  // nil: int32 output
	MOVD	shift+104(FP), R15
	VEOR	V20.B16, V20.B16, V20.B16 // 32-bit accumulators = 0
	VEOR	V21.B16, V21.B16, V21.B16
	VEOR	V22.B16, V22.B16, V22.B16
	VEOR	V23.B16, V23.B16, V23.B16
	LSR	$2, R10, R12     // 256-bit steps
	AND	$3, R10, R10     // words left for the tail

chunk:
	CBZ	R12, tail        // no full step left
	MOVD	$511, R13        // 16-bit lanes hold 511 steps (511·128 ≤ 65535)
	CMP	R13, R12
	CSEL	LO, R12, R13, R13 // R13 = min(steps left, 511)
	SUB	R13, R12, R12    // steps left after this chunk
	VEOR	V16.B16, V16.B16, V16.B16 // 16-bit accumulators = 0
	VEOR	V17.B16, V17.B16, V17.B16
	VEOR	V18.B16, V18.B16, V18.B16
	VEOR	V19.B16, V19.B16, V19.B16

bgemmStep:
	VLD1.P	32(R2), [V0.B16, V1.B16]   // a0, 256 bits
	VLD1.P	32(R3), [V2.B16, V3.B16]   // a1
	VLD1.P	32(R4), [V4.B16, V5.B16]   // a2
	VLD1.P	32(R5), [V6.B16, V7.B16]   // a3
	VLD1.P	32(R6), [V8.B16, V9.B16]   // b0
	VLD1.P	32(R7), [V10.B16, V11.B16] // b1
	VLD1.P	32(R8), [V12.B16, V13.B16] // b2
	VLD1.P	32(R9), [V14.B16, V15.B16] // b3
	ROW256(V0, V1, ACC16_0)            // row a0 → V16
	ROW256(V2, V3, ACC16_1)            // row a1 → V17
	ROW256(V4, V5, ACC16_2)            // row a2 → V18
	ROW256(V6, V7, ACC16_3)            // row a3 → V19
	SUBS	$1, R13, R13               // one step done
	BNE	bgemmStep
	WORD	$0x6e606a14 // uadalp v20.4s, v16.8h
	WORD	$0x6e606a35 // uadalp v21.4s, v17.8h
	WORD	$0x6e606a56 // uadalp v22.4s, v18.8h
	WORD	$0x6e606a77 // uadalp v23.4s, v19.8h
	B	chunk

tail:
	CBZ	R10, done        // no word left
	VEOR	V16.B16, V16.B16, V16.B16 // ≤ 3 words: 16-bit lanes cannot overflow
	VEOR	V17.B16, V17.B16, V17.B16
	VEOR	V18.B16, V18.B16, V18.B16
	VEOR	V19.B16, V19.B16, V19.B16

tailWord:
	VLD1.P	8(R2), [V0.B8]   // a0 word, upper half zeroed
	VLD1.P	8(R3), [V1.B8]   // a1
	VLD1.P	8(R4), [V2.B8]   // a2
	VLD1.P	8(R5), [V3.B8]   // a3
	VLD1.P	8(R6), [V8.B8]   // b0
	VLD1.P	8(R7), [V9.B8]   // b1
	VLD1.P	8(R8), [V10.B8]  // b2
	VLD1.P	8(R9), [V11.B8]  // b3
	ROW64(V0, ACC16_0)       // row a0 → V16
	ROW64(V1, ACC16_1)       // row a1 → V17
	ROW64(V2, ACC16_2)       // row a2 → V18
	ROW64(V3, ACC16_3)       // row a3 → V19
	SUBS	$1, R10, R10     // one word done
	BNE	tailWord
	WORD	$0x6e606a14 // uadalp v20.4s, v16.8h
	WORD	$0x6e606a35 // uadalp v21.4s, v17.8h
	WORD	$0x6e606a56 // uadalp v22.4s, v18.8h
	WORD	$0x6e606a77 // uadalp v23.4s, v19.8h

done:
	VDUP	R11, V28.S4             // k in every lane
	VSHL	$1, V20.S4, V20.S4      // 2·popcount
	VSHL	$1, V21.S4, V21.S4
	VSHL	$1, V22.S4, V22.S4
	VSHL	$1, V23.S4, V23.S4
	VSUB	V20.S4, V28.S4, V20.S4  // k − 2·popcount, row a0
	VSUB	V21.S4, V28.S4, V21.S4  // row a1
	VSUB	V22.S4, V28.S4, V22.S4  // row a2
	VSUB	V23.S4, V28.S4, V23.S4  // row a3
	CBNZ	R14, scaled             // float output wanted
	VST1.P	[V20.S4], (R0)(R1)      // row a0: c[0..3]
	VST1.P	[V21.S4], (R0)(R1)      // row a1
	VST1.P	[V22.S4], (R0)(R1)      // row a2
	VST1	[V23.S4], (R0)          // row a3
	RET

scaled:
	VLD1	(R14), [V29.S4]         // scale[0..3]
	VLD1	(R15), [V30.S4]         // shift[0..3]
	WORD	$0x4e21da94 // scvtf v20.4s, v20.4s
	WORD	$0x4e21dab5 // scvtf v21.4s, v21.4s
	WORD	$0x4e21dad6 // scvtf v22.4s, v22.4s
	WORD	$0x4e21daf7 // scvtf v23.4s, v23.4s
	WORD	$0x6e3dde94 // fmul v20.4s, v20.4s, v29.4s
	WORD	$0x6e3ddeb5 // fmul v21.4s, v21.4s, v29.4s
	WORD	$0x6e3dded6 // fmul v22.4s, v22.4s, v29.4s
	WORD	$0x6e3ddef7 // fmul v23.4s, v23.4s, v29.4s
	WORD	$0x4e3ed694 // fadd v20.4s, v20.4s, v30.4s
	WORD	$0x4e3ed6b5 // fadd v21.4s, v21.4s, v30.4s
	WORD	$0x4e3ed6d6 // fadd v22.4s, v22.4s, v30.4s
	WORD	$0x4e3ed6f7 // fadd v23.4s, v23.4s, v30.4s
	VST1.P	[V20.S4], (R0)(R1)      // row a0: c[0..3]
	VST1.P	[V21.S4], (R0)(R1)      // row a1
	VST1.P	[V22.S4], (R0)(R1)      // row a2
	VST1	[V23.S4], (R0)          // row a3
	RET
