//go:build !purego

#include "textflag.h"

// The fused Bop step of a block of 64 codes (stepBlockGeneric in
// stepkern.go is the definition): the words kernels unpack the codes from
// their packed words and pack the new ones themselves (byte permutes, see
// steplayout.go), the block kernel takes them unpacked. Every lane computes both the normal and
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
//
// The constants live broadcast in the frame (sixteen registers do not
// hold them); "X" constants have the sign bit flipped, because AVX2
// compares only signed: a <u b exactly when a^2^31 <s b^2^31.
TEXT ·stepBlockAVX2(SB), $672-57
	MOVQ k+0(FP), DI
	VPBROADCASTD stepConst<>+36(SB), Y15   // sign bit
	VPBROADCASTD stepConst<>+16(SB), Y0
	VMOVDQU      Y0, 0(SP)             // abs
	VPBROADCASTD 0(DI), Y0
	VMOVDQU      Y0, 32(SP)             // lo
	VPBROADCASTD 4(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 64(SP)             // spanX
	VPBROADCASTD stepConst<>+12(SB), Y0
	VMOVDQU      Y0, 96(SP)             // c800000
	VPBROADCASTD 8(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 128(SP)             // subSpanX
	VPBROADCASTD 12(DI), Y0
	VMOVDQU      Y0, 160(SP)             // subBase
	VPBROADCASTD stepConst<>+20(SB), Y0
	VMOVDQU      Y0, 192(SP)             // c31
	VPBROADCASTD stepConst<>+8(SB), Y0
	VMOVDQU      Y0, 224(SP)             // c7fffff
	VPBROADCASTD 16(DI), Y0
	VMOVDQU      Y0, 256(SP)             // shift
	VPBROADCASTD 20(DI), Y0
	VMOVDQU      Y0, 288(SP)             // off
	VPBROADCASTD 28(DI), Y0
	VMOVDQU      Y0, 320(SP)             // flip
	VPBROADCASTD stepConst<>+0(SB), Y0
	VMOVDQU      Y0, 352(SP)             // c1
	VPBROADCASTD stepConst<>+4(SB), Y0
	VMOVDQU      Y0, 384(SP)             // c2
	VPBROADCASTD 36(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 416(SP)             // maxMagX
	VPBROADCASTD 40(DI), Y0
	VMOVDQU      Y0, 448(SP)             // ovf
	VPBROADCASTD 68(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 480(SP)             // flipTX
	VPBROADCASTD 72(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 512(SP)             // flipHiX
	VPBROADCASTD 52(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 544(SP)             // maxBitsX
	VPBROADCASTD 44(DI), Y0
	VMOVDQU      Y0, 576(SP)             // signShift
	VPBROADCASTD stepConst<>+32(SB), Y0
	VMOVDQU      Y0, 608(SP)             // c8phi
	VPBROADCASTD 56(DI), Y12               // gamma
	VPBROADCASTD stepConst<>+24(SB), Y13   // 1
	MOVL         x0+48(FP), AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	VPADDD       stepLanePhi<>(SB), Y14, Y14 // hash inputs of lanes 0..7
	MOVL    60(DI), AX
	MOVL    AX, 640(SP)                       // rounding mode
	MOVQ in+8(FP), SI
	MOVQ ms+16(FP), BX
	MOVQ grad+24(FP), DX
	MOVQ out+32(FP), R8
	XORQ CX, CX                            // lane index of the group; flip mask shift
	XORQ R9, R9                            // saturated
	XORQ R10, R10                          // flip candidates with w = +1
	XORQ R11, R11                          // flip candidates with w = -1
	XORQ R12, R12                          // unchanged codes
	XORQ R13, R13                          // lost
	XORQ R14, R14                          // underflow

loop2:
	VMOVUPS (BX)(CX*4), Y0                 // m
	VMOVUPS (DX)(CX*4), Y1                 // g
	VSUBPS  Y0, Y1, Y1
	VMULPS  Y12, Y1, Y1                    // rounded on its own, as in Go
	VADDPS  Y1, Y0, Y1                     // m'
	VPAND   0(SP), Y1, Y2                    // a = |m'| bits
	VPSUBD  32(SP), Y2, Y3
	VPXOR   Y15, Y3, Y3
	VMOVDQU 64(SP), Y4
	VPCMPGTD Y3, Y4, Y4                    // normal in f
	VPSUBD  96(SP), Y2, Y3
	VPXOR   Y15, Y3, Y3
	VMOVDQU 128(SP), Y5
	VPCMPGTD Y3, Y5, Y5                    // float32-normal, subnormal in f
	VPXOR   Y6, Y6, Y6
	VPCMPEQD Y6, Y2, Y6                    // zero
	VPOR    Y4, Y5, Y3
	VPOR    Y6, Y3, Y3
	VMOVMSKPS Y3, AX
	CMPL    AX, $0xff
	JNE     fail2                          // some lane needs the scalar encoder

	VPSRLD  $23, Y2, Y7
	VMOVDQU 160(SP), Y8
	VPSUBD  Y7, Y8, Y7                     // sh
	VPMINUD 192(SP), Y7, Y8                    // s = min(sh, 31)
	VPSUBD  Y8, Y7, Y7
	VPAND   224(SP), Y2, Y9
	VPOR    96(SP), Y9, Y9                // significand
	VPSRLVD Y7, Y9, Y9                     // x for subnormal lanes
	VBLENDVPS Y4, Y2, Y9, Y9               // x = a in normal lanes
	VBLENDVPS Y4, 256(SP), Y8, Y8            // s = shift in normal lanes
	VPAND   288(SP), Y4, Y10                   // o: off in normal lanes, else 0
	CMPL    640(SP), $1
	JEQ     stoch2
	JHI     tz2
	VPAND   320(SP), Y4, Y11                  // tie parity flip (normal lanes)
	VPSRLVD Y8, Y9, Y3
	VPXOR   Y11, Y3, Y3
	VPAND   Y13, Y3, Y3                    // kept LSB: ties to even
	VPSUBD  Y13, Y8, Y11
	VPSLLVD Y11, Y13, Y11
	VPSUBD  Y13, Y11, Y11                  // 2^(s-1)-1
	VPADDD  Y11, Y3, Y3
	JMP     round2

stoch2:
	VPSRLD  $16, Y14, Y3                   // lowbias32
	VPXOR   Y14, Y3, Y3
	VPMULLD 352(SP), Y3, Y3
	VPSRLD  $15, Y3, Y11
	VPXOR   Y11, Y3, Y3
	VPMULLD 384(SP), Y3, Y3
	VPSRLD  $16, Y3, Y11
	VPXOR   Y11, Y3, Y3
	VPSLLVD Y8, Y13, Y11
	VPSUBD  Y13, Y11, Y11                  // 2^s-1
	VPAND   Y11, Y3, Y3
	JMP     round2

tz2:
	VPXOR   Y3, Y3, Y3

round2:
	VPADDD  Y3, Y9, Y9
	VPSRLVD Y8, Y9, Y9
	VPSUBD  Y10, Y9, Y9                    // magnitude
	VPXOR   Y15, Y9, Y3
	VPCMPGTD 416(SP), Y3, Y3
	VBLENDVPS Y3, 448(SP), Y9, Y9              // overflow
	VPANDN  Y9, Y6, Y9                     // zero stays zero

	VPXOR   Y15, Y9, Y3
	VPCMPGTD 480(SP), Y3, Y4                // |m'| > tau ...
	VPCMPGTD 512(SP), Y3, Y5
	VPANDN  Y4, Y5, Y4                     // ... and not NaN
	VMOVMSKPS Y4, AX
	VMOVMSKPS Y1, DI                       // m' < 0
	ANDL    AX, DI
	XORL    DI, AX
	SHLQ    CX, AX
	ORQ     AX, R10
	SHLQ    CX, DI
	ORQ     DI, R11

	VPXOR   Y5, Y5, Y5
	VPCMPEQD Y5, Y9, Y3
	VPANDN  Y3, Y6, Y3                     // stored as 0 although not 0
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R14
	VPXOR   Y15, Y2, Y3
	VPCMPGTD 544(SP), Y3, Y3              // above MaxValue
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R9

	VPSRLD  $31, Y1, Y3
	VPSLLVD 576(SP), Y3, Y3
	VPOR    Y3, Y9, Y9                     // new code
	VMOVDQU Y9, (R8)(CX*4)
	VPCMPEQD (SI)(CX*4), Y9, Y3            // unchanged
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R12
	VCMPPS  $4, (DX)(CX*4), Y0, Y5         // g != m
	VPAND   Y3, Y5, Y5
	VMOVMSKPS Y5, AX
	POPCNTL AX, AX
	ADDQ    AX, R13

	VPADDD  608(SP), Y14, Y14
	ADDQ    $8, CX
	CMPQ    CX, $64
	JLT     loop2

	MOVQ    k+0(FP), DI
	MOVQ    $64, AX
	SUBQ    R12, AX
	ADDQ    AX, 80(DI)
	ADDQ    R13, 88(DI)
	ADDQ    R14, 96(DI)
	ADDQ    R9, 104(DI)
	MOVQ    row+40(FP), AX
	TESTQ   AX, AX
	JZ      ok2
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

ok2:
	VZEROUPPER
	MOVB $1, ret+56(FP)
	RET

fail2:
	VZEROUPPER
	MOVB $0, ret+56(FP)
	RET

// func stepWordsAVX2(k *stepKernel, words *uint64, grad *[64]float32, out *[64]uint32, row *uint64, x0 uint32) bool
//
// stepBlockAVX2 with the codes read from and written to their words. The
// frame also holds the width's shuffles (copied from the stepLayout), the
// old codes of a group, and a scratch block: 16-byte stores of w valid
// bytes each may only overlap each other, never the words after the block.
TEXT ·stepWordsAVX2(SB), $1104-49
	MOVQ k+0(FP), DI
	VPBROADCASTD stepConst<>+36(SB), Y15   // sign bit
	VPBROADCASTD stepConst<>+16(SB), Y0
	VMOVDQU      Y0, 0(SP)             // abs
	VPBROADCASTD 0(DI), Y0
	VMOVDQU      Y0, 32(SP)             // lo
	VPBROADCASTD 4(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 64(SP)             // spanX
	VPBROADCASTD stepConst<>+12(SB), Y0
	VMOVDQU      Y0, 96(SP)             // c800000
	VPBROADCASTD 8(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 128(SP)             // subSpanX
	VPBROADCASTD 12(DI), Y0
	VMOVDQU      Y0, 160(SP)             // subBase
	VPBROADCASTD stepConst<>+20(SB), Y0
	VMOVDQU      Y0, 192(SP)             // c31
	VPBROADCASTD stepConst<>+8(SB), Y0
	VMOVDQU      Y0, 224(SP)             // c7fffff
	VPBROADCASTD 16(DI), Y0
	VMOVDQU      Y0, 256(SP)             // shift
	VPBROADCASTD 20(DI), Y0
	VMOVDQU      Y0, 288(SP)             // off
	VPBROADCASTD 28(DI), Y0
	VMOVDQU      Y0, 320(SP)             // flip
	VPBROADCASTD stepConst<>+0(SB), Y0
	VMOVDQU      Y0, 352(SP)             // c1
	VPBROADCASTD stepConst<>+4(SB), Y0
	VMOVDQU      Y0, 384(SP)             // c2
	VPBROADCASTD 36(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 416(SP)             // maxMagX
	VPBROADCASTD 40(DI), Y0
	VMOVDQU      Y0, 448(SP)             // ovf
	VPBROADCASTD 68(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 480(SP)             // flipTX
	VPBROADCASTD 72(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 512(SP)             // flipHiX
	VPBROADCASTD 52(DI), Y0
	VPXOR        Y15, Y0, Y0
	VMOVDQU      Y0, 544(SP)             // maxBitsX
	VPBROADCASTD 44(DI), Y0
	VMOVDQU      Y0, 576(SP)             // signShift
	VPBROADCASTD stepConst<>+32(SB), Y0
	VMOVDQU      Y0, 608(SP)             // c8phi
	VPBROADCASTD 56(DI), Y12               // gamma
	VPBROADCASTD stepConst<>+24(SB), Y13   // 1
	MOVQ         128(DI), AX               // layout: copied to the frame
	VMOVDQU      504(AX), Y0
	VMOVDQU      Y0, 672(SP)               // unpack byte shuffle
	VMOVDQU      536(AX), Y0
	VMOVDQU      Y0, 704(SP)               // bit offsets
	VPBROADCASTD 488(AX), Y0
	VMOVDQU      Y0, 736(SP)               // code mask
	VMOVDQU      568(AX), Y0
	VMOVDQU      Y0, 768(SP)               // pack byte shuffles
	VMOVDQU      600(AX), Y0
	VMOVDQU      Y0, 800(SP)
	VMOVDQU      632(AX), Y0
	VMOVDQU      Y0, 832(SP)
	VMOVDQU      664(AX), Y0
	VMOVDQU      Y0, 864(SP)
	MOVQ         696(AX), AX
	MOVQ         AX, 928(SP)               // w: bytes per 8 codes, words per block
	MOVL         x0+40(FP), AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	VPADDD       stepLanePhi<>(SB), Y14, Y14 // hash inputs of lanes 0..7
	MOVL    60(DI), AX
	MOVL    AX, 640(SP)                       // rounding mode
	MOVQ words+8(FP), SI
	MOVQ 120(DI), BX                       // decode table
	MOVQ grad+16(FP), DX
	MOVQ out+24(FP), R8
	XORQ CX, CX                            // lane index of the group; flip mask shift
	XORQ R9, R9                            // saturated
	XORQ R10, R10                          // flip candidates with w = +1
	XORQ R11, R11                          // flip candidates with w = -1
	XORQ R12, R12                          // unchanged codes
	XORQ R13, R13                          // lost
	XORQ R14, R14                          // underflow

loopw2:
	VBROADCASTI128 (SI), Y3                // the w bytes of 8 codes (and 16-w more)
	VPSHUFB 672(SP), Y3, Y3
	VPSRLVD 704(SP), Y3, Y3
	VPAND   736(SP), Y3, Y3                // old codes
	VMOVDQU Y3, 896(SP)
	VPCMPEQD Y0, Y0, Y0
	VPGATHERDD Y0, (BX)(Y3*4), Y2
	VMOVAPS Y2, Y0                         // m = table[code]
	VMOVUPS (DX)(CX*4), Y1                 // g
	VSUBPS  Y0, Y1, Y1
	VMULPS  Y12, Y1, Y1                    // rounded on its own, as in Go
	VADDPS  Y1, Y0, Y1                     // m'
	VPAND   0(SP), Y1, Y2                    // a = |m'| bits
	VPSUBD  32(SP), Y2, Y3
	VPXOR   Y15, Y3, Y3
	VMOVDQU 64(SP), Y4
	VPCMPGTD Y3, Y4, Y4                    // normal in f
	VPSUBD  96(SP), Y2, Y3
	VPXOR   Y15, Y3, Y3
	VMOVDQU 128(SP), Y5
	VPCMPGTD Y3, Y5, Y5                    // float32-normal, subnormal in f
	VPXOR   Y6, Y6, Y6
	VPCMPEQD Y6, Y2, Y6                    // zero
	VPOR    Y4, Y5, Y3
	VPOR    Y6, Y3, Y3
	VMOVMSKPS Y3, AX
	CMPL    AX, $0xff
	JNE     failw2                          // some lane needs the scalar encoder

	VPSRLD  $23, Y2, Y7
	VMOVDQU 160(SP), Y8
	VPSUBD  Y7, Y8, Y7                     // sh
	VPMINUD 192(SP), Y7, Y8                    // s = min(sh, 31)
	VPSUBD  Y8, Y7, Y7
	VPAND   224(SP), Y2, Y9
	VPOR    96(SP), Y9, Y9                // significand
	VPSRLVD Y7, Y9, Y9                     // x for subnormal lanes
	VBLENDVPS Y4, Y2, Y9, Y9               // x = a in normal lanes
	VBLENDVPS Y4, 256(SP), Y8, Y8            // s = shift in normal lanes
	VPAND   288(SP), Y4, Y10                   // o: off in normal lanes, else 0
	CMPL    640(SP), $1
	JEQ     stochw2
	JHI     tzw2
	VPAND   320(SP), Y4, Y11                  // tie parity flip (normal lanes)
	VPSRLVD Y8, Y9, Y3
	VPXOR   Y11, Y3, Y3
	VPAND   Y13, Y3, Y3                    // kept LSB: ties to even
	VPSUBD  Y13, Y8, Y11
	VPSLLVD Y11, Y13, Y11
	VPSUBD  Y13, Y11, Y11                  // 2^(s-1)-1
	VPADDD  Y11, Y3, Y3
	JMP     roundw2

stochw2:
	VPSRLD  $16, Y14, Y3                   // lowbias32
	VPXOR   Y14, Y3, Y3
	VPMULLD 352(SP), Y3, Y3
	VPSRLD  $15, Y3, Y11
	VPXOR   Y11, Y3, Y3
	VPMULLD 384(SP), Y3, Y3
	VPSRLD  $16, Y3, Y11
	VPXOR   Y11, Y3, Y3
	VPSLLVD Y8, Y13, Y11
	VPSUBD  Y13, Y11, Y11                  // 2^s-1
	VPAND   Y11, Y3, Y3
	JMP     roundw2

tzw2:
	VPXOR   Y3, Y3, Y3

roundw2:
	VPADDD  Y3, Y9, Y9
	VPSRLVD Y8, Y9, Y9
	VPSUBD  Y10, Y9, Y9                    // magnitude
	VPXOR   Y15, Y9, Y3
	VPCMPGTD 416(SP), Y3, Y3
	VBLENDVPS Y3, 448(SP), Y9, Y9              // overflow
	VPANDN  Y9, Y6, Y9                     // zero stays zero

	VPXOR   Y15, Y9, Y3
	VPCMPGTD 480(SP), Y3, Y4                // |m'| > tau ...
	VPCMPGTD 512(SP), Y3, Y5
	VPANDN  Y4, Y5, Y4                     // ... and not NaN
	VMOVMSKPS Y4, AX
	VMOVMSKPS Y1, DI                       // m' < 0
	ANDL    AX, DI
	XORL    DI, AX
	SHLQ    CX, AX
	ORQ     AX, R10
	SHLQ    CX, DI
	ORQ     DI, R11

	VPXOR   Y5, Y5, Y5
	VPCMPEQD Y5, Y9, Y3
	VPANDN  Y3, Y6, Y3                     // stored as 0 although not 0
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R14
	VPXOR   Y15, Y2, Y3
	VPCMPGTD 544(SP), Y3, Y3              // above MaxValue
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R9

	VPSRLD  $31, Y1, Y3
	VPSLLVD 576(SP), Y3, Y3
	VPOR    Y3, Y9, Y9                     // new code
	VMOVDQU Y9, (R8)(CX*4)
	VPCMPEQD 896(SP), Y9, Y3               // unchanged
	VMOVMSKPS Y3, AX
	POPCNTL AX, AX
	ADDQ    AX, R12
	VCMPPS  $4, (DX)(CX*4), Y0, Y5         // g != m
	VPAND   Y3, Y5, Y5
	VMOVMSKPS Y5, AX
	POPCNTL AX, AX
	ADDQ    AX, R13

	VPADDD  608(SP), Y14, Y14
	ADDQ    928(SP), SI
	ADDQ    $8, CX
	CMPQ    CX, $64
	JLT     loopw2

	MOVQ    k+0(FP), DI
	MOVQ    $64, AX
	SUBQ    R12, AX
	ADDQ    AX, 80(DI)
	ADDQ    R13, 88(DI)
	ADDQ    R14, 96(DI)
	ADDQ    R9, 104(DI)
	MOVQ    row+32(FP), AX
	TESTQ   AX, AX
	JZ      packw2
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

packw2:
	// Each 8 codes give w bytes: stored 16 at a time at increasing
	// offsets of a scratch block (the next store overwrites the zeros past
	// w), which is then copied word by word, so nothing past the block is
	// written.
	LEAQ    960(SP), DI
	XORQ    CX, CX
packloopw2:
	VMOVDQU (R8)(CX*4), Y0
	VPSLLVD 704(SP), Y0, Y0
	VPSHUFB 768(SP), Y0, Y1
	VPSHUFB 800(SP), Y0, Y2
	VPOR    Y2, Y1, Y1
	VPSHUFB 832(SP), Y0, Y2
	VPOR    Y2, Y1, Y1
	VPSHUFB 864(SP), Y0, Y2
	VPOR    Y2, Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPOR    X2, X1, X1                     // lanes 0..3 and 4..7 meet in the middle byte
	VMOVDQU X1, (DI)
	ADDQ    928(SP), DI
	ADDQ    $8, CX
	CMPQ    CX, $64
	JLT     packloopw2
	MOVQ    words+8(FP), SI
	MOVQ    928(SP), CX
	LEAQ    960(SP), DI
copyw2:
	MOVQ    (DI), AX
	MOVQ    AX, (SI)
	ADDQ    $8, DI
	ADDQ    $8, SI
	DECQ    CX
	JNZ     copyw2
	VZEROUPPER
	MOVB $1, ret+48(FP)
	RET

failw2:
	VZEROUPPER
	MOVB $0, ret+48(FP)
	RET
