package fp

import "github.com/bnnd/bnnd/internal/implset"

// Step kernel dispatch, as in package kernels (package implset):
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

// stepImpl is how to call one step kernel.
type stepImpl struct {
	kind     stepKind
	words    bool // the kernel unpacks and packs the words itself (stepWordsArch)
	overread int  // words past a block the words kernel may read
}

type stepImplEntry = implset.Entry[stepImpl]

// stepEnvVar names the environment variable that forces a step kernel.
const stepEnvVar = "BNND_STEP"

// stepImpls are the step kernels compiled in; the step reads
// stepImpls.Active.Impl.
var stepImpls = implset.New("step kernel", stepEnvVar, stepImpl{kind: stepGenericKind})

func init() { stepImpls.Select() }

// StepImpl names the momentum-step kernel in use: "avx512", "avx2", "neon"
// or "generic".
func StepImpl() string { return stepImpls.Active.Name }

// StepImpls returns the step kernels this CPU can run, least preferred
// first ("generic" is always first).
func StepImpls() []string { return stepImpls.Available() }

// UseStep makes the named step kernel the active one (tests, benchmarks,
// BNND_STEP). Every kernel gives the same codes, counts and flips; only the
// speed differs. It is not safe to call while steps run on other goroutines.
func UseStep(name string) error { return stepImpls.Use(name) }

// StepInitError reports a BNND_STEP setting that could not be honoured.
func StepInitError() error { return stepImpls.InitError() }
