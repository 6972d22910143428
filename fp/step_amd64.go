//go:build !purego

package fp

import "github.com/klauspost/cpuid/v2"

func init() {
	// Registered least preferred first. AVX2 has every vector operation
	// the kernel needs (variable shifts, 32-bit multiplies, gathers);
	// POPCNT counts the mask bits.
	stepImpls.Register(stepImplEntry{Name: "avx2", Available: cpuid.CPU.Supports(cpuid.AVX2, cpuid.POPCNT),
		Impl: stepImpl{kind: stepAVX2, words: true, overread: 2}})
	// AVX-512: F for the 16-lane operations and unsigned compares into
	// mask registers, DQ for VPMOVD2M, BW for byte-masked loads and stores
	// and 64-bit mask moves, VBMI for the byte permutes that unpack and
	// pack the codes, POPCNT for counting mask bits.
	stepImpls.Register(stepImplEntry{Name: "avx512", Impl: stepImpl{kind: stepAVX512, words: true},
		Available: cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512DQ, cpuid.AVX512BW, cpuid.AVX512VBMI, cpuid.POPCNT)})
}

// stepWordsArch calls the packed-words kernel of kind (entries with words
// set); the arguments were checked by Vector.run.
func stepWordsArch(kind stepKind, k *stepKernel, words *uint64, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	switch kind {
	case stepAVX512:
		return stepWordsAVX512(k, words, g, out, row, x0)
	case stepAVX2:
		return stepWordsAVX2(k, words, g, out, row, x0)
	}
	return false
}

// stepBlockArch calls the kernel of kind; the arguments were checked by
// Vector.run (whole blocks, k filled by newStepper).
func stepBlockArch(kind stepKind, k *stepKernel, in *[stepBlock]uint32, ms, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	switch kind {
	case stepAVX2:
		return stepBlockAVX2(k, in, ms, g, out, row, x0)
	}
	return stepBlockGeneric(k, in, ms, g, out, row, x0)
}

// stepWordsAVX512 is stepBlockGeneric (the Go loop it replaces, see
// stepkern.go) on the 64 codes packed in width whole words at words (w =
// 2..16, k.table its decode table, k.layout stepLayouts[w]), 16 lanes at a
// time, unpacking and packing them itself:
//
//	var in [64]uint32; var ms [64]float32
//	in[i] = code i of words; ms[i] = k.table[in[i]]
//	ok := stepBlockGeneric(k, &in, &ms, g, out, row, x0)
//	if ok { pack out into words }
//	return ok
//
// out receives the new codes even when the words are not written.
//
//go:noescape
func stepWordsAVX512(k *stepKernel, words *uint64, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool

// stepBlockAVX2 is stepBlockGeneric on 8 lanes at a time: the same bits
// in out, the same counters added to k, the same flips of *row (row may
// be nil), and false with only out written when a value needs the scalar
// encoder.
//
//go:noescape
func stepBlockAVX2(k *stepKernel, in *[stepBlock]uint32, ms, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool

// stepWordsAVX2 is stepWordsAVX512 on 8 lanes at a time; it reads (never
// writes) up to two words past the block, which the caller must own.
//
//go:noescape
func stepWordsAVX2(k *stepKernel, words *uint64, grad *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool

// unpack64Arch: the Go loop (the amd64 kernels unpack the words themselves).
func (v *Vector) unpack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32, ms *[stepBlock]float32) {
	v.unpack64(words, codes, ms)
}

// pack64Arch: the Go loop.
func (v *Vector) pack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32) {
	v.pack64(words, codes)
}
