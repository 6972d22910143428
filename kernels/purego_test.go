package kernels

import (
	"go/build"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestNoAssemblyUnderPurego fails if any assembly file of this package
// would be compiled with -tags purego, on any architecture we ship.
func TestNoAssemblyUnderPurego(t *testing.T) {
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
		ctxt.BuildTags = []string{"purego"}
		ctxt.CgoEnabled = false
		for _, name := range asm {
			match, err := ctxt.MatchFile(".", name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if match {
				t.Errorf("%s is compiled for GOARCH=%s with -tags purego; it needs //go:build !purego", name, arch)
			}
		}
		// The other direction: the generic build must not lose files.
		ctxt.BuildTags = nil
		for _, name := range asm {
			if strings.HasSuffix(name, "_"+arch+".s") {
				if match, _ := ctxt.MatchFile(".", name); !match {
					t.Errorf("%s is not compiled for GOARCH=%s without purego", name, arch)
				}
			}
		}
	}
}

// TestPuregoHasOnlyGeneric checks the binary under test: built with
// -tags purego it must contain no implementation but generic, and asmBuilt
// (set only by the architecture files) must be false.
func TestPuregoHasOnlyGeneric(t *testing.T) {
	if !puregoBuild {
		if !asmBuilt && slices.Contains([]string{"amd64", "arm64"}, runtime.GOARCH) {
			t.Errorf("built without purego for %s but no assembly implementation is compiled in", runtime.GOARCH)
		}
		return
	}
	if asmBuilt {
		t.Error("built with -tags purego but an assembly stub file was compiled (asmBuilt is true)")
	}
	if got := Available(); !slices.Equal(got, []string{"generic"}) {
		t.Errorf("purego build: Available() = %v, want [generic]", got)
	}
}
