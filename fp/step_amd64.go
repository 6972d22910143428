//go:build !purego

package fp

import "github.com/klauspost/cpuid/v2"

func init() {
	// Registered least preferred first. AVX2 alone has every operation
	// the kernel needs (variable shifts, 32-bit multiplies).
	registerStepImpl(stepImplEntry{name: "avx2", available: false && cpuid.CPU.Supports(cpuid.AVX2), kind: stepAVX2})
	// AVX-512: F for the 16-lane operations and unsigned compares into
	// mask registers, DQ for VPMOVD2M, POPCNT for counting mask bits.
	registerStepImpl(stepImplEntry{name: "avx512", kind: stepAVX512,
		available: cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512DQ, cpuid.POPCNT)})
}

// stepBlockArch calls the kernel of kind; the arguments were checked by
// Vector.run (whole blocks, k filled by newStepper).
func stepBlockArch(kind stepKind, k *stepKernel, in *[stepBlock]uint32, ms, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	switch kind {
	case stepAVX512:
		return stepBlockAVX512(k, in, ms, g, out, row, x0)
	case stepAVX2:
		return stepBlockAVX2(k, in, ms, g, out, row, x0)
	}
	return stepBlockGeneric(k, in, ms, g, out, row, x0)
}

// stepBlockAVX512 is stepBlockGeneric (the Go loop it replaces, see
// stepkern.go) on 16 lanes at a time: the same bits in out, the same
// counters added to k, the same flips of *row (row may be nil), and false
// with only out written when a value needs the scalar encoder.
//
//go:noescape
func stepBlockAVX512(k *stepKernel, in *[stepBlock]uint32, ms, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool

// stepBlockAVX2 is stepBlockGeneric on 8 lanes at a time (see
// stepBlockAVX512).
//
//go:noescape
func stepBlockAVX2(k *stepKernel, in *[stepBlock]uint32, ms, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool
