//go:build purego || !(amd64 || arm64)

package kernels

// asmBuilt is false: this build has only the generic Go kernels (the
// purego tag, or an architecture without assembly such as 32-bit ARM).
const asmBuilt = false
