package fp

import (
	"fmt"
	"os"
	"strings"
)

// Step kernel dispatch, in the pattern of package kernels (dispatch.go):
// "generic" is always registered; step_amd64.go and step_arm64.go add
// their vector kernels from init(), least preferred first, behind
// `//go:build !purego`. The active kernel is the one named by BNND_STEP if
// set (generic|avx2|avx512|neon), else the last available one. A BNND_STEP
// naming an unknown or unavailable kernel keeps the preferred one and
// records an error for StepInitError.
//
// A kernel does the fused step of one block of 64 unpacked codes; it sees
// only blocks of a Vector whose width is at most 16 (the codes are decoded
// through the table). See stepBlockGeneric for the contract.

// A kernel is named by a stepKind and called through stepBlockArch (a
// switch, not a function value, so that the block buffers stay on the
// stack: escape analysis cannot see through an indirect call). It returns
// false, having changed nothing but out, when some value needs the scalar
// encoder.
type stepKind uint8

const (
	stepGenericKind stepKind = iota // the Go loop (stepper.block)
	stepAVX2
	stepAVX512
	stepNEON
)

type stepImplEntry struct {
	name      string
	available bool
	kind      stepKind
	words     bool // the kernel unpacks and packs the words itself (stepWordsArch)
	overread  int  // words past a block the words kernel may read
}

var (
	stepImpls   = []stepImplEntry{{name: "generic", available: true}}
	stepActive  = stepImpls[0]
	stepInitErr error
)

// stepEnvVar names the environment variable that forces a step kernel.
const stepEnvVar = "BNND_STEP"

func init() { selectStepImpl() }

func registerStepImpl(e stepImplEntry) {
	stepImpls = append(stepImpls, e)
	selectStepImpl()
}

func selectStepImpl() {
	stepInitErr = nil
	for _, e := range stepImpls {
		if e.available {
			stepActive = e
		}
	}
	if want := strings.TrimSpace(os.Getenv(stepEnvVar)); want != "" {
		if err := UseStep(want); err != nil {
			stepInitErr = fmt.Errorf("%s=%q: %w; using %q", stepEnvVar, want, err, stepActive.name)
		}
	}
}

// StepImpl names the momentum-step kernel in use: "avx512", "avx2", "neon"
// or "generic".
func StepImpl() string { return stepActive.name }

// StepImpls returns the step kernels this CPU can run, least preferred
// first ("generic" is always first).
func StepImpls() []string {
	var names []string
	for _, e := range stepImpls {
		if e.available {
			names = append(names, e.name)
		}
	}
	return names
}

// UseStep makes the named step kernel the active one (tests, benchmarks,
// BNND_STEP). Every kernel gives the same codes, counts and flips; only the
// speed differs. It is not safe to call while steps run on other goroutines.
func UseStep(name string) error {
	var known []string
	for _, e := range stepImpls {
		known = append(known, e.name)
		if e.name != name {
			continue
		}
		if !e.available {
			return fmt.Errorf("step kernel %q is not supported by this CPU (available: %s)", name, strings.Join(StepImpls(), ", "))
		}
		stepActive = e
		return nil
	}
	return fmt.Errorf("unknown step kernel %q (compiled in: %s)", name, strings.Join(known, ", "))
}

// StepInitError reports a BNND_STEP setting that could not be honoured.
func StepInitError() error { return stepInitErr }
