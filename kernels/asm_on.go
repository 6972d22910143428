//go:build !purego && (amd64 || arm64)

package kernels

// asmBuilt is true when the assembly implementations are compiled in; the
// purego tests check that it is false under -tags purego.
const asmBuilt = true
