package fp

import (
	"go/build"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestStepAssemblyBuildTags: no assembly of this package is compiled with
// -tags purego on any architecture we ship, and none is lost without it.
func TestStepAssemblyBuildTags(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var asm []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".s") {
			asm = append(asm, e.Name())
		}
	}
	if len(asm) == 0 {
		t.Fatal("no .s files found: the test is not looking at the package directory")
	}
	for _, arch := range []string{"amd64", "arm64", "arm", "386", "riscv64"} {
		ctxt := build.Default
		ctxt.GOOS, ctxt.GOARCH = "linux", arch
		ctxt.CgoEnabled = false
		for _, tags := range [][]string{{"purego"}, nil} {
			ctxt.BuildTags = tags
			for _, name := range asm {
				match, err := ctxt.MatchFile(".", name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want := tags == nil && strings.HasSuffix(name, "_"+arch+".s")
				if match != want {
					t.Errorf("%s compiled for GOARCH=%s tags %v: %v, want %v", name, arch, tags, match, want)
				}
			}
		}
	}
}

// TestStepImplsCompiledIn: the binary under test has exactly the step
// kernels its architecture and tags call for.
func TestStepImplsCompiledIn(t *testing.T) {
	var names []string
	for _, e := range stepImpls.Entries() {
		names = append(names, e.Name)
	}
	want := []string{"generic"}
	if !puregoBuild {
		switch runtime.GOARCH {
		case "amd64":
			want = append(want, "avx2", "avx512")
		case "arm64":
			want = append(want, "neon")
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("compiled-in step kernels %v, want %v", names, want)
	}
}
