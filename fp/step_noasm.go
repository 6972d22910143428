//go:build purego || !(amd64 || arm64)

package fp

// stepBlockArch has no vector kernel to call in this build (the purego tag,
// or an architecture without assembly); it is never reached, since only
// "generic" is registered.
func stepBlockArch(kind stepKind, k *stepKernel, in *[stepBlock]uint32, ms, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	return stepBlockGeneric(k, in, ms, g, out, row, x0)
}

// stepWordsArch: no packed-words kernel in this build.
func stepWordsArch(kind stepKind, k *stepKernel, words *uint64, g *[stepBlock]float32, out *[stepBlock]uint32, row *uint64, x0 uint32) bool {
	return false
}

// unpack64Arch: the Go loop (the amd64 kernels unpack the words themselves).
func (v *Vector) unpack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32, ms *[stepBlock]float32) {
	v.unpack64(words, codes, ms)
}

// pack64Arch: the Go loop.
func (v *Vector) pack64Arch(kind stepKind, words []uint64, codes *[stepBlock]uint32) {
	v.pack64(words, codes)
}
