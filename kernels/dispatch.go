package kernels

import (
	"fmt"
	"os"
	"strings"
)

// Dispatch
//
// An implementation is an impl: one function field per kernel that has an
// assembly version, with the same signature as the public kernel. The
// public entry points check every argument, then call the field of the
// active implementation with slices already cut to their exact lengths, so
// implementations never re-check bounds. A nil field means "use generic".
//
// impls lists every implementation compiled into this binary. dispatch.go
// registers "generic"; each architecture file adds its own from init()
// through registerImpl, in increasing order of preference, behind
// `//go:build !purego`:
//
//	kernels_amd64.go  "avx2", "avx512vector", "avx512"  (available from cpuid feature bits)
//	kernels_arm64.go  "neon"
//
// and the purego tag or any other architecture adds nothing. After each
// registration the choice is made again, so the order of init() functions
// across files does not matter: the active implementation is the one named
// by BNND_KERNELS if set, else the last available entry (the preferred one).
// A BNND_KERNELS naming an unknown or unavailable implementation keeps the
// preferred one active and records an error for InitError, which bnnd
// reports at start-up.

// impl holds one implementation's kernels.
type impl struct {
	bgemm              func(c []int32, a, b []uint64, m, n, kw, k int)
	bgemmScaled        func(c []float32, a, b []uint64, m, n, kw, k int, scale, shift []float32)
	realBinGemm        func(c []float32, x []float32, w []uint64, m, n, k int)
	binGradInput       func(dx []float32, dy []float32, w []uint64, m, n, k int)
	binGradWeightTile  func(tile []float32, dy []float32, a []uint64, m, n, k, j0, j1, k0, k1 int)
	realGradWeightTile func(tile []float32, dy []float32, x []float32, m, n, k, j0, j1, k0, k1 int)
}

// implEntry is one registered implementation; available says whether this
// CPU can run it.
type implEntry struct {
	name      string
	available bool
	k         impl
}

var genericImpl = impl{
	bgemm:              bgemmGeneric,
	bgemmScaled:        bgemmScaledGeneric,
	realBinGemm:        realBinGemmGeneric,
	binGradInput:       binGradInputGeneric,
	binGradWeightTile:  binGradWeightTileGeneric,
	realGradWeightTile: realGradWeightTileGeneric,
}

var (
	impls      = []implEntry{{name: "generic", available: true, k: genericImpl}}
	active     = genericImpl
	activeName = "generic"
	initErr    error
)

// envVar names the environment variable that forces an implementation.
const envVar = "BNND_KERNELS"

func init() { selectImpl() }

// registerImpl adds an implementation (called from architecture files'
// init functions, most preferred last) and makes the choice again.
func registerImpl(e implEntry) {
	g := genericImpl
	if e.k.bgemm == nil {
		e.k.bgemm = g.bgemm
	}
	if e.k.bgemmScaled == nil {
		e.k.bgemmScaled = g.bgemmScaled
	}
	if e.k.realBinGemm == nil {
		e.k.realBinGemm = g.realBinGemm
	}
	if e.k.binGradInput == nil {
		e.k.binGradInput = g.binGradInput
	}
	if e.k.binGradWeightTile == nil {
		e.k.binGradWeightTile = g.binGradWeightTile
	}
	if e.k.realGradWeightTile == nil {
		e.k.realGradWeightTile = g.realGradWeightTile
	}
	impls = append(impls, e)
	selectImpl()
}

// selectImpl activates BNND_KERNELS's choice or the preferred available
// implementation, and records why when the former is impossible.
func selectImpl() {
	initErr = nil
	best := impls[0]
	for _, e := range impls {
		if e.available {
			best = e
		}
	}
	active, activeName = best.k, best.name
	if want := strings.TrimSpace(os.Getenv(envVar)); want != "" {
		if err := Use(want); err != nil {
			initErr = fmt.Errorf("%s=%q: %w; using %q", envVar, want, err, activeName)
		}
	}
}

// Impl returns the name of the implementation in use: "avx512", "avx2",
// "neon" or "generic".
func Impl() string { return activeName }

// Available returns the implementations this CPU can run, least preferred
// first ("generic" is always first).
func Available() []string {
	var names []string
	for _, e := range impls {
		if e.available {
			names = append(names, e.name)
		}
	}
	return names
}

// Use makes the named implementation the active one (for tests, benchmarks
// and BNND_KERNELS). It returns an error if the name is unknown or this CPU
// cannot run it, and then leaves the active implementation unchanged. Use is
// not safe to call while kernels run on other goroutines.
func Use(name string) error {
	var known []string
	for _, e := range impls {
		known = append(known, e.name)
		if e.name != name {
			continue
		}
		if !e.available {
			return fmt.Errorf("kernel implementation %q is not supported by this CPU (available: %s)",
				name, strings.Join(Available(), ", "))
		}
		active, activeName = e.k, e.name
		return nil
	}
	return fmt.Errorf("unknown kernel implementation %q (compiled in: %s)", name, strings.Join(known, ", "))
}

// InitError reports a BNND_KERNELS setting that could not be honoured at
// start-up (nil if none was set or it was honoured).
func InitError() error { return initErr }
