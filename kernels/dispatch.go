package kernels

import "github.com/bnnd/bnnd/internal/implset"

// Dispatch
//
// An implementation is an impl: one function field per kernel that has an
// assembly version, with the same signature as the public kernel. The
// public entry points check every argument, then call the field of the
// active implementation with slices already cut to their exact lengths, so
// implementations never re-check bounds. Every field is set: an
// implementation without its own version of a kernel names the generic
// function (TestImplsComplete checks every compiled-in implementation).
//
// impls lists every implementation compiled into this binary (see package
// implset for how one is chosen). dispatch.go has "generic"; each
// architecture file adds its own from init() through impls.Register, in
// increasing order of preference, behind `//go:build !purego`:
//
//	kernels_amd64.go  "avx2", "avx512vector", "avx512"  (available from cpuid feature bits)
//	kernels_arm64.go  "neon"
//
// and the purego tag or any other architecture adds nothing. The active
// implementation is the one named by BNND_KERNELS if set, else the last
// available entry (the preferred one). A BNND_KERNELS naming an unknown or
// unavailable implementation keeps the preferred one active and records an
// error for InitError, which bnnd reports at start-up.

// impl holds one implementation's kernels.
type impl struct {
	bgemm              func(c []int32, a, b []uint64, m, n, kw, k int)
	bgemmScaled        func(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32)
	realBinGemm        func(c []float32, x []float32, w []uint64, m, n, k int)
	binGradInput       func(dx []float32, dy []float32, w []uint64, m, n, k int)
	binGradWeightTile  func(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int)
	realGradWeightTile func(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int)
}

// implEntry is one registered implementation; Available says whether this
// CPU can run it.
type implEntry = implset.Entry[impl]

var genericImpl = impl{
	bgemm:              bgemmGeneric,
	bgemmScaled:        bgemmScaledGeneric,
	realBinGemm:        realBinGemmGeneric,
	binGradInput:       binGradInputGeneric,
	binGradWeightTile:  binGradWeightTileGeneric,
	realGradWeightTile: realGradWeightTileGeneric,
}

// envVar names the environment variable that forces an implementation.
const envVar = "BNND_KERNELS"

// impls are the implementations compiled in; the kernels call
// impls.Active.Impl.
var impls = implset.New("kernel implementation", envVar, genericImpl)

func init() { impls.Select() }

// Impl returns the name of the implementation in use: "avx512", "avx2",
// "neon" or "generic".
func Impl() string { return impls.Active.Name }

// Available returns the implementations this CPU can run, least preferred
// first ("generic" is always first).
func Available() []string { return impls.Available() }

// Use makes the named implementation the active one (for tests, benchmarks
// and BNND_KERNELS). It returns an error if the name is unknown or this CPU
// cannot run it, and then leaves the active implementation unchanged. Use is
// not safe to call while kernels run on other goroutines.
func Use(name string) error { return impls.Use(name) }

// InitError reports a BNND_KERNELS setting that could not be honoured at
// start-up (nil if none was set or it was honoured).
func InitError() error { return impls.InitError() }
