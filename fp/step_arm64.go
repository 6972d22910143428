//go:build !purego

package fp

import "github.com/klauspost/cpuid/v2"

// ASIMD is mandatory in ARMv8-A; the cpuid bit is still consulted so that a
// kernel or emulator that hides it makes "neon" unavailable instead of
// faulting (as kernels/kernels_arm64.go does).
func init() {
	registerStepImpl(stepImplEntry{name: "neon", available: cpuid.CPU.Supports(cpuid.ASIMD), kind: stepNEON})
}

// stepBlockArch calls the kernel of kind; the arguments were checked by
// Vector.run (whole blocks, k filled by newStepper).
func stepBlockArch(kind stepKind, k *stepKernel, in *[stepBlock]uint32, ms, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	if kind == stepNEON {
		return stepBlockNEON(k, in, ms, g, out, row, x0)
	}
	return stepBlockGeneric(k, in, ms, g, out, row, x0)
}

// stepWordsArch: no packed-words kernel on arm64 (Go unpacks and packs).
func stepWordsArch(kind stepKind, k *stepKernel, words *uint64, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	return false
}

// stepBlockNEON is stepBlockGeneric (the Go loop it replaces, see
// stepkern.go) on four lanes at a time: the same bits in out, the same
// counters added to k, the same flips of *row (row may be nil), and false
// with only out written when a value needs the scalar encoder.
//
//go:noescape
func stepBlockNEON(k *stepKernel, in *[stepBlock]uint32, ms, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool
