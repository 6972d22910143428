//go:build !purego

package fp

import "github.com/klauspost/cpuid/v2"

// ASIMD is mandatory in ARMv8-A; the cpuid bit is still consulted so that a
// kernel or emulator that hides it makes "neon" unavailable instead of
// faulting (as kernels/kernels_arm64.go does).
func init() {
	stepImpls.Register(stepImplEntry{Name: "neon", Available: cpuid.CPU.Supports(cpuid.ASIMD), Impl: stepImpl{kind: stepNEON}})
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

// stepUnpackNEON is Vector.unpack64 for width 2..16 (tab: the decode
// table, 2^width entries): codes[i] = code i of the width words at words,
// ms[i] = tab[codes[i]].
//
//go:noescape
func stepUnpackNEON(words *uint64, codes *[stepBlock]uint32, ms *[stepBlock]float32, tab *float32, width int)

// stepPackNEON is Vector.pack64 for width 2..16: the width words at words
// become the 64 codes, each < 2^width, packed.
//
//go:noescape
func stepPackNEON(words *uint64, codes *[stepBlock]uint32, width int)

// unpack64Arch unpacks with the assembly of kind, if it has some.
func (v *Vector) unpack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32, ms *[stepBlock]float32) {
	if kind == stepNEON {
		_ = words[v.width-1]
		stepUnpackNEON(&words[0], codes, ms, &v.table[0], int(v.width))
		return
	}
	v.unpack64(words, codes, ms)
}

// pack64Arch packs with the assembly of kind, if it has some.
func (v *Vector) pack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32) {
	if kind == stepNEON {
		_ = words[v.width-1]
		stepPackNEON(&words[0], codes, int(v.width))
		return
	}
	v.pack64(words, codes)
}
