//go:build !purego

#include "textflag.h"

// The fused Bop step of 64 unpacked codes (stepBlockGeneric in
// stepkern.go is the definition). Every lane computes both the normal and
// the subnormal encoding parameters and selects per lane, so the loop has
// no data-dependent branch; the rounding mode is one branch per group on a
// value fixed for the call. Counters and the flip masks are gathered in
// general registers and committed only after the last group, because a
// block with a value for the scalar encoder is handed back whole.

// i·0x9e3779b9 for lane i: the StepRand hash inputs relative to x0.
DATA stepLanePhi<>+0(SB)/4, $0x00000000
DATA stepLanePhi<>+4(SB)/4, $0x9e3779b9
DATA stepLanePhi<>+8(SB)/4, $0x3c6ef372
DATA stepLanePhi<>+12(SB)/4, $0xdaa66d2b
DATA stepLanePhi<>+16(SB)/4, $0x78dde6e4
DATA stepLanePhi<>+20(SB)/4, $0x1715609d
DATA stepLanePhi<>+24(SB)/4, $0xb54cda56
DATA stepLanePhi<>+28(SB)/4, $0x5384540f
DATA stepLanePhi<>+32(SB)/4, $0xf1bbcdc8
DATA stepLanePhi<>+36(SB)/4, $0x8ff34781
DATA stepLanePhi<>+40(SB)/4, $0x2e2ac13a
DATA stepLanePhi<>+44(SB)/4, $0xcc623af3
DATA stepLanePhi<>+48(SB)/4, $0x6a99b4ac
DATA stepLanePhi<>+52(SB)/4, $0x08d12e65
DATA stepLanePhi<>+56(SB)/4, $0xa708a81e
DATA stepLanePhi<>+60(SB)/4, $0x454021d7
GLOBL stepLanePhi<>(SB), RODATA|NOPTR, $64

DATA stepConst<>+0(SB)/4, $0x7feb352d  // lowbias32 multipliers
DATA stepConst<>+4(SB)/4, $0x846ca68b
DATA stepConst<>+8(SB)/4, $0x007fffff  // float32 mantissa
DATA stepConst<>+12(SB)/4, $0x00800000 // implicit bit, smallest normal
DATA stepConst<>+16(SB)/4, $0x7fffffff // magnitude
DATA stepConst<>+20(SB)/4, $31         // largest shift of 32 random bits
DATA stepConst<>+24(SB)/4, $1
DATA stepConst<>+28(SB)/4, $0xe3779b90 // 16·0x9e3779b9: next 16 lanes
DATA stepConst<>+32(SB)/4, $0xf1bbcdc8 // 8·0x9e3779b9: next 8 lanes
DATA stepConst<>+36(SB)/4, $0x80000000 // sign: unsigned compares on AVX2
GLOBL stepConst<>(SB), RODATA|NOPTR, $40

// PACKHALF ORs the up to four contributions of the shifted codes in A
// (codes 0..15 of a half) and B (16..31) to each output byte into Z0;
// AX points at the stepLayout.
#define PACKHALF(A, B) \
	VPXORD      Z0, Z0, Z0         \
	VMOVDQU64   128(AX), Z3        \
	KMOVQ       448(AX), K2        \
	VPERMI2B.Z  B, A, K2, Z3       \
	VPORD       Z3, Z0, Z0         \
	VMOVDQU64   192(AX), Z3        \
	KMOVQ       456(AX), K2        \
	VPERMI2B.Z  B, A, K2, Z3       \
	VPORD       Z3, Z0, Z0         \
	VMOVDQU64   256(AX), Z3        \
	KMOVQ       464(AX), K2        \
	VPERMI2B.Z  B, A, K2, Z3       \
	VPORD       Z3, Z0, Z0         \
	VMOVDQU64   320(AX), Z3        \
	KMOVQ       472(AX), K2        \
	VPERMI2B.Z  B, A, K2, Z3       \
	VPORD       Z3, Z0, Z0

// func stepWordsAVX512(k *stepKernel, words *uint64, grad *[64]float32, out *[64]uint32, row *uint64, x0 uint32) bool
TEXT ·stepWordsAVX512(SB), NOSPLIT, $0-49
	MOVQ k+0(FP), DI
	MOVQ words+8(FP), SI
	MOVQ grad+16(FP), DX
	MOVQ out+24(FP), R8
	MOVQ 120(DI), BX                       // decode table
	VPBROADCASTD 0(DI), Z31                // lo
	VPBROADCASTD 4(DI), Z30                // span
	VPBROADCASTD 8(DI), Z29                // subSpan
	VPBROADCASTD 12(DI), Z28               // subBase
	VPBROADCASTD 16(DI), Z27               // shift
	VPBROADCASTD 20(DI), Z26               // off
	VPBROADCASTD 28(DI), Z25               // flip
	VPBROADCASTD 36(DI), Z24               // maxMag
	VPBROADCASTD 40(DI), Z23               // ovf
	VPBROADCASTD 44(DI), Z22               // signShift
	VPBROADCASTD 56(DI), Z20               // gamma
	VPBROADCASTD stepConst<>+0(SB), Z10
	VPBROADCASTD stepConst<>+16(SB), Z19
	VPBROADCASTD stepConst<>+12(SB), Z18
	VPBROADCASTD stepConst<>+20(SB), Z16
	VPBROADCASTD stepConst<>+24(SB), Z15
	MOVQ         128(DI), AX               // layout
	VMOVDQU32    384(AX), Z14              // bit offset of each code in its first byte
	VPBROADCASTD 488(AX), Z17              // code mask
	MOVL         x0+40(FP), AX
	VPBROADCASTD AX, Z13
	VPADDD       stepLanePhi<>(SB), Z13, Z13 // hash inputs of lanes 0..15
	XORQ CX, CX                            // lane index of the group; flip mask shift
	XORQ R9, R9                            // saturated
	XORQ R10, R10                          // flip candidates with w = +1
	XORQ R11, R11                          // flip candidates with w = -1
	XORQ R12, R12                          // unchanged codes
	XORQ R13, R13                          // lost
	XORQ R14, R14                          // underflow

loop512:
	TESTQ   $31, CX
	JNZ     group512
	// A new half block: its 4w bytes, zero above (masked: nothing past
	// the block is read).
	MOVQ    128(DI), AX
	KMOVQ   480(AX), K1
	VMOVDQU8.Z (SI), K1, Z12
	ADDQ    496(AX), SI

group512:
	MOVQ    CX, AX
	ANDQ    $16, AX
	SHLQ    $2, AX
	ADDQ    128(DI), AX                    // unpackIdx of this group
	VMOVDQU64 (AX), Z21
	VPERMB  Z12, Z21, Z11
	VPSRLVD Z14, Z11, Z11
	VPANDD  Z17, Z11, Z11                  // old codes
	KXNORW  K1, K1, K1
	VPGATHERDD (BX)(Z11*4), K1, Z0         // m = table[code]
	VMOVUPS (DX)(CX*4), Z1                 // g
	VSUBPS  Z0, Z1, Z1
	VMULPS  Z20, Z1, Z1                    // rounded on its own, as in Go
	VADDPS  Z1, Z0, Z1                     // m'
	VPANDD  Z19, Z1, Z2                    // a = |m'| bits
	VPSUBD  Z31, Z2, Z3
	VPCMPUD $1, Z30, Z3, K2                // normal in f
	VPSUBD  Z18, Z2, Z3
	VPCMPUD $1, Z29, Z3, K3                // float32-normal, subnormal in f
	VPTESTNMD Z2, Z2, K4                   // zero
	KORW    K2, K3, K5
	KORW    K4, K5, K5
	KORTESTW K5, K5
	JCC     fail512                        // some lane needs the scalar encoder

	VPSRLD  $23, Z2, Z4
	VPSUBD  Z4, Z28, Z4                    // sh
	VPMINUD Z16, Z4, Z5                    // s = min(sh, 31)
	VPSUBD  Z5, Z4, Z4
	VPANDD.BCST stepConst<>+8(SB), Z2, Z7
	VPORD   Z18, Z7, Z7                    // significand
	VPSRLVD Z4, Z7, Z7                     // x for subnormal lanes
	VMOVDQA32 Z2, K2, Z7                   // x = a in normal lanes
	VMOVDQA32 Z27, K2, Z5                  // s = shift in normal lanes
	VMOVDQA32.Z Z26, K2, Z6                // o: off in normal lanes, else 0
	CMPL    60(DI), $1
	JEQ     stoch512
	JHI     tz512
	VMOVDQA32.Z Z25, K2, Z8                // tie parity flip (normal lanes)
	VPSRLVD Z5, Z7, Z9
	VPXORD  Z8, Z9, Z9
	VPANDD  Z15, Z9, Z9                    // kept LSB: ties to even
	VPSUBD  Z15, Z5, Z3
	VPSLLVD Z3, Z15, Z3
	VPSUBD  Z15, Z3, Z3                    // 2^(s-1)-1
	VPADDD  Z3, Z9, Z9
	JMP     round512

stoch512:
	VPBROADCASTD stepConst<>+4(SB), Z8
	VPSRLD  $16, Z13, Z9                   // lowbias32
	VPXORD  Z13, Z9, Z9
	VPMULLD Z10, Z9, Z9
	VPSRLD  $15, Z9, Z3
	VPXORD  Z3, Z9, Z9
	VPMULLD Z8, Z9, Z9
	VPSRLD  $16, Z9, Z3
	VPXORD  Z3, Z9, Z9
	VPSLLVD Z5, Z15, Z3
	VPSUBD  Z15, Z3, Z3                    // 2^s-1
	VPANDD  Z3, Z9, Z9
	JMP     round512

tz512:
	VPXORD  Z9, Z9, Z9

round512:
	VPADDD  Z9, Z7, Z7
	VPSRLVD Z5, Z7, Z7
	VPSUBD  Z6, Z7, Z7                     // magnitude
	VPCMPUD $6, Z24, Z7, K1
	VMOVDQA32 Z23, K1, Z7                  // overflow
	KNOTW   K4, K1
	VMOVDQA32.Z Z7, K1, Z7                 // zero stays zero

	VPCMPUD.BCST $6, 68(DI), Z7, K1        // |m'| > tau ...
	VPCMPUD.BCST $2, 72(DI), Z7, K1, K1    // ... and not NaN
	VPMOVD2M Z1, K2                        // m' < 0
	KANDNW  K1, K2, K3
	KANDW   K1, K2, K4
	KMOVW   K3, AX
	SHLQ    CX, AX
	ORQ     AX, R10
	KMOVW   K4, AX
	SHLQ    CX, AX
	ORQ     AX, R11

	VPTESTMD  Z2, Z2, K1
	VPTESTNMD Z7, Z7, K1, K3               // stored as 0 although not 0
	KMOVW   K3, AX
	POPCNTL AX, AX
	ADDQ    AX, R14
	VPCMPUD.BCST $6, 52(DI), Z2, K3        // above MaxValue
	KMOVW   K3, AX
	POPCNTL AX, AX
	ADDQ    AX, R9

	VPSRLD  $31, Z1, Z3
	VPSLLVD Z22, Z3, Z3
	VPORD   Z3, Z7, Z7                     // new code
	VMOVDQU32 Z7, (R8)(CX*4)
	VPCMPEQD Z11, Z7, K1                   // unchanged
	KMOVW   K1, AX
	POPCNTL AX, AX
	ADDQ    AX, R12
	VCMPPS  $4, (DX)(CX*4), Z0, K1, K3     // unchanged although g != m
	KMOVW   K3, AX
	POPCNTL AX, AX
	ADDQ    AX, R13

	VPADDD.BCST stepConst<>+28(SB), Z13, Z13
	ADDQ    $16, CX
	CMPQ    CX, $64
	JLT     loop512

	MOVQ    $64, AX
	SUBQ    R12, AX
	ADDQ    AX, 80(DI)
	ADDQ    R13, 88(DI)
	ADDQ    R14, 96(DI)
	ADDQ    R9, 104(DI)
	MOVQ    row+32(FP), AX
	TESTQ   AX, AX
	JZ      pack512
	MOVQ    (AX), CX                       // weights (bit 1 = -1)
	MOVQ    CX, BX
	NOTQ    BX
	ANDQ    R10, BX
	ANDQ    CX, R11
	ORQ     R11, BX                        // flips
	XORQ    BX, CX
	MOVQ    CX, (AX)
	POPCNTQ BX, BX
	ADDQ    BX, 112(DI)

pack512:
	MOVQ    words+8(FP), SI
	MOVQ    128(DI), AX
	KMOVQ   480(AX), K1
	VMOVDQU32 (R8), Z1
	VPSLLVD Z14, Z1, Z1
	VMOVDQU32 64(R8), Z2
	VPSLLVD Z14, Z2, Z2
	PACKHALF(Z1, Z2)
	VMOVDQU8 Z0, K1, (SI)
	ADDQ    496(AX), SI
	VMOVDQU32 128(R8), Z1
	VPSLLVD Z14, Z1, Z1
	VMOVDQU32 192(R8), Z2
	VPSLLVD Z14, Z2, Z2
	PACKHALF(Z1, Z2)
	VMOVDQU8 Z0, K1, (SI)
	VZEROUPPER
	MOVB $1, ret+48(FP)
	RET

fail512:
	VZEROUPPER
	MOVB $0, ret+48(FP)
	RET

// func stepBlockAVX2(k *stepKernel, in *[64]uint32, ms, grad *[64]float32, out *[64]uint32, row *uint64, x0 uint32) bool
TEXT ·stepBlockAVX2(SB), NOSPLIT, $0-57
	MOVB $0, ret+56(FP)
	RET
