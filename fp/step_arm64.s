//go:build !purego

#include "textflag.h"

// The fused Bop step of 64 unpacked codes on NEON, four lanes at a time:
// stepBlockGeneric (stepkern.go) is the definition and the Go loop this
// replaces. Each lane computes both the normal and the subnormal encoding
// parameters and selects per lane, so the loop has no data-dependent branch.
// Go's assembler has no mnemonics for most of these vector instructions:
// they are WORDs with the instruction in the comment, encoded with llvm-mc
// (scripts/check_arm64_words.sh checks them against binutils).
//
// Registers: v14-v31 constants (v19 the hash inputs of the group, v18 the
// step between groups), v8-v11 counters as negated lane masks, v12/v13 the
// flip candidates one bit per group, v0-v7 temporaries; R0 the stepKernel,
// R1-R4 the input and output arrays, R7 the group count, R11 the mode.
// Counters and flips are committed only after the last group, because a
// block with a value for the scalar encoder is handed back whole.

// lowbias32 multipliers, 4·0x9e3779b9, and lane l·0x9e3779b9 for l = 0..3.
DATA ·stepNEONConst+0(SB)/4, $0x7feb352d
DATA ·stepNEONConst+4(SB)/4, $0x846ca68b
DATA ·stepNEONConst+8(SB)/4, $0x78dde6e4
DATA ·stepNEONConst+12(SB)/4, $0x00000000
DATA ·stepNEONConst+16(SB)/4, $0x9e3779b9
DATA ·stepNEONConst+20(SB)/4, $0x3c6ef372
DATA ·stepNEONConst+24(SB)/4, $0xdaa66d2b
GLOBL ·stepNEONConst(SB), RODATA|NOPTR, $28

// func stepBlockNEON(k *stepKernel, in *[64]uint32, ms, grad *[64]float32, out *[64]uint32, row *uint64, x0 uint32) bool
TEXT ·stepBlockNEON(SB), NOSPLIT, $0-57
	MOVD k+0(FP), R0             // the kernel constants and counters
	MOVD in+8(FP), R1            // old codes
	MOVD ms+16(FP), R2           // their decoded values m
	MOVD grad+24(FP), R3         // gradients g
	MOVD out+32(FP), R4          // new codes
	MOVWU x0+48(FP), R6          // StepRand hash input of element 0
	MOVD $·stepNEONConst(SB), R8 // lowbias32 multipliers, 4·phi, lane offsets
	MOVD R0, R9                  // walks the stepKernel fields 4 bytes at a time
	WORD	$0x4ddfc93f // ld1r {v31.4s}, [x9], #4 // lo
	WORD	$0x4ddfc93e // ld1r {v30.4s}, [x9], #4 // span
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // subSpan (unused)
	WORD	$0x4ddfc93c // ld1r {v28.4s}, [x9], #4 // subBase
	WORD	$0x4ddfc93b // ld1r {v27.4s}, [x9], #4 // shift
	WORD	$0x4ddfc93a // ld1r {v26.4s}, [x9], #4 // off
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // halfM1 (unused)
	WORD	$0x4ddfc938 // ld1r {v24.4s}, [x9], #4 // flip: tie parity flip
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // randMask (unused)
	WORD	$0x4ddfc936 // ld1r {v22.4s}, [x9], #4 // maxMag
	WORD	$0x4ddfc935 // ld1r {v21.4s}, [x9], #4 // ovf: magnitude on overflow
	WORD	$0x4ddfc934 // ld1r {v20.4s}, [x9], #4 // signShift
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // magMask (unused)
	WORD	$0x4ddfc92e // ld1r {v14.4s}, [x9], #4 // maxBits: float32 bits of MaxValue
	WORD	$0x4ddfc931 // ld1r {v17.4s}, [x9], #4 // gamma
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // mode (read below)
	WORD	$0x4ddfc920 // ld1r {v0.4s}, [x9], #4 // key (in x0 already)
	WORD	$0x4ddfc930 // ld1r {v16.4s}, [x9], #4 // flipT
	WORD	$0x4ddfc92f // ld1r {v15.4s}, [x9], #4 // flipHi
	MOVWU 60(R0), R11            // rounding mode: 0 nearest, 1 stochastic, 2 toward zero
	WORD	$0x6f04641d // mvni v29.4s, #0x80, lsl #24 // 0x7fffffff: float32 magnitude
	WORD	$0x4f0007f9 // movi v25.4s, #31 // largest shift of 32 random bits
	WORD	$0x4f000437 // movi v23.4s, #1 // ones
	WORD	$0x4e040cd3 // dup v19.4s, w6 // hash inputs ...
	WORD	$0x91003109 // add x9, x8, #12
	WORD	$0x4c407920 // ld1 {v0.4s}, [x9] // lane offsets 0, phi, 2phi, 3phi
	WORD	$0x4ea08673 // add v19.4s, v19.4s, v0.4s // ... of lanes 0..3
	WORD	$0x91002109 // add x9, x8, #8
	WORD	$0x4d40c932 // ld1r {v18.4s}, [x9] // 4·phi: the next four lanes
	WORD	$0x6f00e408 // movi v8.2d, #0 // unchanged codes
	WORD	$0x6f00e409 // movi v9.2d, #0 // lost
	WORD	$0x6f00e40a // movi v10.2d, #0 // underflow
	WORD	$0x6f00e40b // movi v11.2d, #0 // saturated
	WORD	$0x6f00e40c // movi v12.2d, #0 // flip candidates with w = +1, one bit per group
	WORD	$0x6f00e40d // movi v13.2d, #0 // flip candidates with w = -1
	MOVD $16, R7                 // groups of four lanes
loopneon:
	WORD	$0x4cdf7840 // ld1 {v0.4s}, [x2], #16 // m
	WORD	$0x4cdf7861 // ld1 {v1.4s}, [x3], #16 // g
	WORD	$0x4e20e423 // fcmeq v3.4s, v1.4s, v0.4s // g == m (for lost)
	WORD	$0x4ea0d421 // fsub v1.4s, v1.4s, v0.4s // g - m
	WORD	$0x6e31dc21 // fmul v1.4s, v1.4s, v17.4s // gamma·(g-m), rounded on its own as in Go
	WORD	$0x4e21d401 // fadd v1.4s, v0.4s, v1.4s // m' = m + gamma·(g-m)
	WORD	$0x4e3d1c22 // and v2.16b, v1.16b, v29.16b // a = |m'| bits
	WORD	$0x6ebf8440 // sub v0.4s, v2.4s, v31.4s // a - lo
	WORD	$0x6ea037c0 // cmhi v0.4s, v30.4s, v0.4s // normal in f: a - lo < span
	WORD	$0x6f290444 // ushr v4.4s, v2.4s, #23 // e: float32 biased exponent
	WORD	$0x4ea09885 // cmeq v5.4s, v4.4s, #0 // e == 0: zero or float32 subnormal
	WORD	$0x6ea237e6 // cmhi v6.4s, v31.4s, v2.4s // a < lo
	WORD	$0x4e651cc6 // bic v6.16b, v6.16b, v5.16b // float32-normal but subnormal in f
	WORD	$0x4ea09847 // cmeq v7.4s, v2.4s, #0 // zero
	WORD	$0x4ea61c05 // orr v5.16b, v0.16b, v6.16b
	WORD	$0x4ea71ca5 // orr v5.16b, v5.16b, v7.16b // lanes the kernel handles
	WORD	$0x6eb1a8a5 // uminv s5, v5.4s // zero if any lane is not handled
	WORD	$0x1e2600a9 // fmov w9, s5
	CBZW R9, failneon            // a value for the scalar encoder: hand the block back
	WORD	$0x6eae3445 // cmhi v5.4s, v2.4s, v14.4s // a > maxBits: saturated
	WORD	$0x6ea5856b // sub v11.4s, v11.4s, v5.4s // count it
	WORD	$0x4ea7854a // add v10.4s, v10.4s, v7.4s // underflow = #(mag == 0) - #(a == 0): the second term
	WORD	$0x6eb78485 // sub v5.4s, v4.4s, v23.4s // e - 1
	WORD	$0x4f3754a5 // shl v5.4s, v5.4s, #23
	WORD	$0x6ea58445 // sub v5.4s, v2.4s, v5.4s // significand with its implicit bit
	WORD	$0x6ea48784 // sub v4.4s, v28.4s, v4.4s // sh = subBase - e
	WORD	$0x6eb96c86 // umin v6.4s, v4.4s, v25.4s // s = min(sh, 31)
	WORD	$0x6ea484c4 // sub v4.4s, v6.4s, v4.4s // s - sh (<= 0)
	WORD	$0x6ea444a5 // ushl v5.4s, v5.4s, v4.4s // x = significand >> (sh - s)
	WORD	$0x4e671ca5 // bic v5.16b, v5.16b, v7.16b // x = 0 for zeros: they round to 0 below
	WORD	$0x6ea01c45 // bit v5.16b, v2.16b, v0.16b // x = a in normal lanes
	WORD	$0x6ea01f66 // bit v6.16b, v27.16b, v0.16b // s = shift in normal lanes
	WORD	$0x4e201f44 // and v4.16b, v26.16b, v0.16b // o = off in normal lanes, else 0
	CMPW $1, R11                 // rounding mode
	BEQ stochneon                // stochastic
	BHI tzneon                   // toward zero (else nearest-even)
	WORD	$0x4e201f00 // and v0.16b, v24.16b, v0.16b // tie parity flip (normal lanes)
	WORD	$0x6ea0b8c7 // neg v7.4s, v6.4s // -s: ushl shifts right
	WORD	$0x6ea744a2 // ushl v2.4s, v5.4s, v7.4s // x >> s
	WORD	$0x6e201c42 // eor v2.16b, v2.16b, v0.16b
	WORD	$0x4e371c42 // and v2.16b, v2.16b, v23.16b // the kept LSB: ties to even
	WORD	$0x6eb784c0 // sub v0.4s, v6.4s, v23.4s // s - 1
	WORD	$0x6ea046e0 // ushl v0.4s, v23.4s, v0.4s // 2^(s-1)
	WORD	$0x6eb78400 // sub v0.4s, v0.4s, v23.4s // 2^(s-1) - 1
	WORD	$0x4ea08442 // add v2.4s, v2.4s, v0.4s // add: half a quantum, less one unless odd
	B roundneon                  // round with the add chosen
stochneon:
	WORD	$0x6f300662 // ushr v2.4s, v19.4s, #16 // lowbias32 of the hash inputs
	WORD	$0x6e331c42 // eor v2.16b, v2.16b, v19.16b
	WORD	$0x4d40c900 // ld1r {v0.4s}, [x8] // 0x7feb352d
	WORD	$0x4ea09c42 // mul v2.4s, v2.4s, v0.4s
	WORD	$0x6f310447 // ushr v7.4s, v2.4s, #15
	WORD	$0x6e271c42 // eor v2.16b, v2.16b, v7.16b
	WORD	$0x91001109 // add x9, x8, #4
	WORD	$0x4d40c920 // ld1r {v0.4s}, [x9] // 0x846ca68b
	WORD	$0x4ea09c42 // mul v2.4s, v2.4s, v0.4s
	WORD	$0x6f300447 // ushr v7.4s, v2.4s, #16
	WORD	$0x6e271c42 // eor v2.16b, v2.16b, v7.16b // StepRand of each lane
	WORD	$0x6ea646e0 // ushl v0.4s, v23.4s, v6.4s // 2^s
	WORD	$0x6eb78400 // sub v0.4s, v0.4s, v23.4s // 2^s - 1
	WORD	$0x4e201c42 // and v2.16b, v2.16b, v0.16b // add: s random bits
	WORD	$0x6ea0b8c7 // neg v7.4s, v6.4s // -s
	B roundneon                  // round with the add chosen
tzneon:
	WORD	$0x6f00e402 // movi v2.2d, #0 // add nothing: truncate
	WORD	$0x6ea0b8c7 // neg v7.4s, v6.4s // -s
roundneon:
	WORD	$0x4ea284a5 // add v5.4s, v5.4s, v2.4s // x + add
	WORD	$0x6ea744a5 // ushl v5.4s, v5.4s, v7.4s // >> s
	WORD	$0x6ea484a5 // sub v5.4s, v5.4s, v4.4s // - o: the magnitude code
	WORD	$0x6eb634a2 // cmhi v2.4s, v5.4s, v22.4s // above maxMag
	WORD	$0x6ea21ea5 // bit v5.16b, v21.16b, v2.16b // overflow: ovf
	WORD	$0x6eb034a2 // cmhi v2.4s, v5.4s, v16.4s // |m'| > tau ...
	WORD	$0x6eaf34a0 // cmhi v0.4s, v5.4s, v15.4s
	WORD	$0x4e601c42 // bic v2.16b, v2.16b, v0.16b // ... and not NaN
	WORD	$0x4ea0a820 // cmlt v0.4s, v1.4s, #0 // m' < 0
	WORD	$0x4e201c44 // and v4.16b, v2.16b, v0.16b // candidates with w = -1
	WORD	$0x4e601c42 // bic v2.16b, v2.16b, v0.16b // candidates with w = +1
	WORD	$0x4eac858c // add v12.4s, v12.4s, v12.4s // shift in one bit per group ...
	WORD	$0x6ea2858c // sub v12.4s, v12.4s, v2.4s
	WORD	$0x4ead85ad // add v13.4s, v13.4s, v13.4s
	WORD	$0x6ea485ad // sub v13.4s, v13.4s, v4.4s // ... (lane l, group i: bit 15-i)
	WORD	$0x4ea098a2 // cmeq v2.4s, v5.4s, #0 // stored as zero
	WORD	$0x6ea2854a // sub v10.4s, v10.4s, v2.4s // underflow: the first term
	WORD	$0x6f210420 // ushr v0.4s, v1.4s, #31 // sign of m'
	WORD	$0x6eb44400 // ushl v0.4s, v0.4s, v20.4s // << signShift
	WORD	$0x4ea01ca5 // orr v5.16b, v5.16b, v0.16b // the new code
	WORD	$0x4c9f7885 // st1 {v5.4s}, [x4], #16
	WORD	$0x4cdf7820 // ld1 {v0.4s}, [x1], #16 // old codes
	WORD	$0x6ea58c00 // cmeq v0.4s, v0.4s, v5.4s // unchanged
	WORD	$0x6ea08508 // sub v8.4s, v8.4s, v0.4s
	WORD	$0x4e631c00 // bic v0.16b, v0.16b, v3.16b // unchanged although g != m
	WORD	$0x6ea08529 // sub v9.4s, v9.4s, v0.4s // lost
	WORD	$0x4eb28673 // add v19.4s, v19.4s, v18.4s // hash inputs of the next four lanes
	SUBS $1, R7, R7              // next group of four
	BNE loopneon                 // until the 16th
	WORD	$0x4eb1b908 // addv s8, v8.4s // changed = 64 - unchanged
	WORD	$0x1e260109 // fmov w9, s8
	MOVD 80(R0), R10             // k.changed ...
	ADD $64, R10, R10            // + 64
	SUB R9, R10, R10             // - unchanged
	MOVD R10, 80(R0)             // ... updated
	WORD	$0x4eb1b929 // addv s9, v9.4s // lost
	WORD	$0x1e260129 // fmov w9, s9
	MOVD 88(R0), R10             // k.lost ...
	ADD R9, R10, R10             // + this block
	MOVD R10, 88(R0)             // ... updated
	WORD	$0x4eb1b94a // addv s10, v10.4s // underflow
	WORD	$0x1e260149 // fmov w9, s10
	MOVD 96(R0), R10             // k.underflow ...
	ADD R9, R10, R10             // + this block
	MOVD R10, 96(R0)             // ... updated
	WORD	$0x4eb1b96b // addv s11, v11.4s // saturated
	WORD	$0x1e260169 // fmov w9, s11
	MOVD 104(R0), R10            // k.saturated ...
	ADD R9, R10, R10             // + this block
	MOVD R10, 104(R0)            // ... updated
	MOVD row+40(FP), R5          // weights (bit 1 = -1), or nil
	CBZ R5, okneon               // no flip test (Step)
	MOVD ZR, R12                 // bit 4i+l: group i, lane l
	WORD	$0x0e043d89 // umov w9, v12.s[0] // lane 0: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9, R12, R12             // at bit 4i
	WORD	$0x0e0c3d89 // umov w9, v12.s[1] // lane 1: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<1, R12, R12          // at bit 4i+1
	WORD	$0x0e143d89 // umov w9, v12.s[2] // lane 2: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<2, R12, R12          // at bit 4i+2
	WORD	$0x0e1c3d89 // umov w9, v12.s[3] // lane 3: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<3, R12, R12          // at bit 4i+3
	MOVD ZR, R13                 // bit 4i+l: group i, lane l
	WORD	$0x0e043da9 // umov w9, v13.s[0] // lane 0: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9, R13, R13             // at bit 4i
	WORD	$0x0e0c3da9 // umov w9, v13.s[1] // lane 1: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<1, R13, R13          // at bit 4i+1
	WORD	$0x0e143da9 // umov w9, v13.s[2] // lane 2: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<2, R13, R13          // at bit 4i+2
	WORD	$0x0e1c3da9 // umov w9, v13.s[3] // lane 3: bit 15-i for group i
	WORD	$0x5ac00129 // rbit w9, w9 // bit 16+i
	WORD	$0x53107d29 // lsr w9, w9, #16 // bit i
	WORD	$0xaa096129 // orr x9, x9, x9, lsl #24 // spread bit i to bit 4i ...
	WORD	$0x92001d29 // and x9, x9, #0x000000ff000000ff
	WORD	$0xaa093129 // orr x9, x9, x9, lsl #12
	WORD	$0x92008d29 // and x9, x9, #0x000f000f000f000f
	WORD	$0xaa091929 // orr x9, x9, x9, lsl #6
	WORD	$0x9200c529 // and x9, x9, #0x0303030303030303
	WORD	$0xaa090d29 // orr x9, x9, x9, lsl #3
	WORD	$0x9200e129 // and x9, x9, #0x1111111111111111 // ... done
	ORR R9<<3, R13, R13          // at bit 4i+3
	MOVD (R5), R10               // weights
	AND R10, R13, R13            // w = -1 and m' < -tau
	BIC R10, R12, R12            // w = +1 and m' > tau
	ORR R12, R13, R13            // the flips
	EOR R13, R10, R10            // flip them
	MOVD R10, (R5)               // store the weights
	WORD	$0x9e6701a0 // fmov d0, x13 // count the flips
	WORD	$0x0e205800 // cnt v0.8b, v0.8b
	WORD	$0x0e31b800 // addv b0, v0.8b
	WORD	$0x1e260009 // fmov w9, s0
	MOVD 112(R0), R10            // k.flips ...
	ADD R9, R10, R10             // + this block
	MOVD R10, 112(R0)            // ... updated
okneon:
	MOVD $1, R9                  // true
	MOVB R9, ret+56(FP)          // accepted
	RET                          // return
failneon:
	MOVB ZR, ret+56(FP)          // declined: counters and weights untouched
	RET                          // return

// func stepUnpackNEON(words *uint64, codes *[64]uint32, ms *[64]float32, tab *float32, width int)
//
// Unpacks the 64 codes of width (2..16) whole words and decodes them
// through tab; it replaces Vector.unpack64's Go loop (chunks of 8 codes,
// or 4 above 8 bits, read as one 64-bit window), which the compiler turns
// into twice the instructions.
TEXT ·stepUnpackNEON(SB), NOSPLIT, $0-40
	MOVD  words+0(FP), R0                // packed codes
	MOVD  codes+8(FP), R1                // unpacked codes, written in order
	MOVD  ms+16(FP), R2                  // their values, written in order
	MOVD  tab+24(FP), R3                 // decode table
	MOVD  width+32(FP), R4               // code width
	MOVD  $1, R5                         // mask = 2^width - 1 ...
	LSL   R4, R5, R5                     //
	SUB   $1, R5, R5                     // ... done
	MOVD  $8, R6                         // codes per chunk: 8 up to 8 bits ...
	MOVD  $4, R7                         //
	CMP   $8, R4                         //
	CSEL  GT, R7, R6, R6                 // ... 4 above
	MUL   R4, R6, R15                    // bits per chunk
	SUB   $1, R4, R14                    // index of the last word
	MOVD  ZR, R8                         // bit position of the chunk
	MOVD  $64, R7                        // codes left
unpackchunk:
	LSR   $6, R8, R10                    // word the chunk starts in
	ADD   $1, R10, R11                   // the next word ...
	CMP   R14, R11                       //
	CSEL  HI, R14, R11, R11              // ... or the last one (then nothing straddles)
	MOVD  (R0)(R10<<3), R12              // first word
	LSR   R8, R12, R12                   // >> (position mod 64)
	MOVD  (R0)(R11<<3), R13              // next word
	MVN   R8, R9                         // 63 - position mod 64 (shifts use 6 bits)
	LSL   R9, R13, R13                   //
	LSL   $1, R13, R13                   // << (64 - position mod 64): 0 when aligned
	ORR   R13, R12, R12                  // the chunk's bits from bit 0
	MOVD  R6, R9                         // codes in the chunk
unpackcode:
	AND   R5, R12, R10                   // a code
	LSR   R4, R12, R12                   // the next one to bit 0
	FMOVS (R3)(R10<<2), F0               // its value
	MOVW.P R10, 4(R1)                    // store the code
	FMOVS.P F0, 4(R2)                    // store the value
	AND   R5, R12, R10                   // the same for a second code
	LSR   R4, R12, R12                   //
	FMOVS (R3)(R10<<2), F0               //
	MOVW.P R10, 4(R1)                    //
	FMOVS.P F0, 4(R2)                    //
	SUBS  $2, R9, R9                     // two codes per turn (chunks are 4 or 8)
	BNE   unpackcode                     //
	ADD   R15, R8, R8                    // next chunk
	SUBS  R6, R7, R7                     //
	BNE   unpackchunk                    //
	RET                                  //

// func stepPackNEON(words *uint64, codes *[64]uint32, width int)
//
// Packs 64 codes (each < 2^width) into width (2..16) whole words; it
// replaces Vector.pack64's Go loop (the same chunks ORed into the zeroed
// words).
TEXT ·stepPackNEON(SB), NOSPLIT, $0-24
	MOVD  words+0(FP), R0                // packed codes
	MOVD  codes+8(FP), R1                // codes, read in order
	MOVD  width+16(FP), R4               // code width
	MOVD  R4, R9                         // words to clear
	MOVD  R0, R10                        //
packclear:
	MOVD.P ZR, 8(R10)                    // clear a word
	SUBS  $1, R9, R9                     //
	BNE   packclear                      //
	MOVD  $8, R6                         // codes per chunk: 8 up to 8 bits ...
	MOVD  $4, R7                         //
	CMP   $8, R4                         //
	CSEL  GT, R7, R6, R6                 // ... 4 above
	MUL   R4, R6, R15                    // bits per chunk
	SUB   $1, R4, R14                    // index of the last word
	MOVD  ZR, R8                         // bit position of the chunk
	MOVD  $64, R7                        // codes left
packchunk:
	MOVD  ZR, R12                        // the chunk's bits
	MOVD  ZR, R13                        // where the next code goes
	MOVD  R6, R9                         // codes in the chunk
packcode:
	MOVWU.P 4(R1), R10                   // a code
	LSL   R13, R10, R10                  // to its place
	ORR   R10, R12, R12                  //
	ADD   R4, R13, R13                   //
	MOVWU.P 4(R1), R10                   // the same for a second code
	LSL   R13, R10, R10                  //
	ORR   R10, R12, R12                  //
	ADD   R4, R13, R13                   //
	SUBS  $2, R9, R9                     // two codes per turn
	BNE   packcode                       //
	LSR   $6, R8, R10                    // word the chunk starts in
	ADD   $1, R10, R11                   // the next word ...
	CMP   R14, R11                       //
	CSEL  HI, R14, R11, R11              // ... or the last one (then nothing straddles)
	LSL   R8, R12, R13                   // << (position mod 64)
	MOVD  (R0)(R10<<3), R2               // OR into the first word
	ORR   R13, R2, R2                    //
	MOVD  R2, (R0)(R10<<3)               //
	MVN   R8, R9                         // 63 - position mod 64
	LSR   $1, R12, R13                   //
	LSR   R9, R13, R13                   // >> (64 - position mod 64): 0 when aligned
	MOVD  (R0)(R11<<3), R2               // OR into the next word
	ORR   R13, R2, R2                    //
	MOVD  R2, (R0)(R11<<3)               //
	ADD   R15, R8, R8                    // next chunk
	SUBS  R6, R7, R7                     //
	BNE   packchunk                      //
	RET                                  //
