package bnn

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/internal/binio"
)

// A class added after training starts takes an output unit that was there
// from the start: until then that unit's weights get no gradient, and
// adding it changes nothing the network learned.
func TestAddClassKeepsTraining(t *testing.T) {
	const batch = 64
	spec := Spec{Name: "xor", Hidden: []LayerSpec{{Kind: Dense, Units: 64}, {Kind: Dense, Units: 64}}}
	n, err := New(spec, Shape{1, 1, 2}, []string{"same", "differ"}, Options{Batch: batch, Threads: 2, Seed: 5, Outputs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if n.Outputs() != 5 || len(n.Classes()) != 2 {
		t.Fatalf("outputs %d, classes %q", n.Outputs(), n.Classes())
	}
	f := &flipper{gamma: 1e-2, tau: 1e-4, adam: 1e-2}
	for _, l := range n.Layers() {
		f.m = append(f.m, make([]float32, l.Out*l.Stride))
	}
	last := len(n.Layers()) - 1
	rowWords := n.Layers()[last].Stride / 64
	reserved := slices.Clone(n.Weights(last)[2*rowWords:])
	r := rand.New(rand.NewPCG(1, 2))
	for range 1500 {
		xorData(r, n.x, n.labels, batch)
		if _, err := n.TrainStep(batch, f); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(reserved, n.Weights(last)[2*rowWords:]) {
		t.Error("weights of the output units of classes not added yet changed during training")
	}
	for _, m := range f.m[last][2*n.Layers()[last].Stride:] {
		if m != 0 {
			t.Fatalf("a reserved unit's momentum is %v, want 0 (no gradient)", m)
		}
	}
	accuracy := func() float64 {
		r := rand.New(rand.NewPCG(9, 9))
		pred := make([]int32, batch)
		correct := 0
		for range 10 {
			xorData(r, n.x, n.labels, batch)
			if err := n.Evaluate(batch, pred); err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				correct += b2i(pred[i] == n.labels[i])
			}
		}
		return float64(correct) / (10 * batch)
	}
	before := accuracy()
	if before < 0.9 {
		t.Fatalf("XOR accuracy %.3f with 3 reserved outputs, want ≥ 0.9", before)
	}
	logits := func() []float32 {
		xorData(rand.New(rand.NewPCG(7, 7)), n.x, n.labels, batch)
		if err := n.Evaluate(batch, make([]int32, batch)); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(n.Logits(batch))
	}
	trained := logits()
	if i, err := n.AddClass("third"); err != nil || i != 2 {
		t.Fatalf("AddClass: %d, %v", i, err)
	}
	if !slices.Equal(trained, logits()) {
		t.Error("adding a class changed the outputs")
	}
	if _, err := n.AddClass("third"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("adding a class twice: %v", err)
	}
	for _, c := range []string{"d", "e"} {
		if _, err := n.AddClass(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.AddClass("f"); err == nil || !strings.Contains(err.Error(), "room for 5 classes") {
		t.Errorf("adding a sixth class to 5 outputs: %v", err)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNoClassesYet(t *testing.T) {
	spec, _ := ParseSpec("mlp:16")
	n, err := New(spec, Shape{1, 1, 4}, nil, Options{Batch: 2, Threads: 1, Outputs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Evaluate(1, make([]int32, 1)); err == nil {
		t.Error("Evaluate with no classes: no error")
	}
	if _, err := New(spec, Shape{1, 1, 4}, []string{"a", "b", "c"}, Options{Batch: 2, Outputs: 2}); err == nil {
		t.Error("3 classes for 2 outputs: no error")
	}
	if _, err := New(spec, Shape{1, 1, 4}, []string{"a", ""}, Options{Batch: 2}); err == nil {
		t.Error("an empty class name: no error")
	}
}

// Version 2 files keep the reserved units; version 1 files (one unit per
// class) still load.
func TestModelFileOutputs(t *testing.T) {
	spec, _ := ParseSpec("mlp:16")
	n, err := New(spec, Shape{1, 1, 20}, []string{"a", "b"}, Options{Batch: 4, Threads: 1, Seed: 3, Outputs: 7})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := n.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModel(bytes.NewReader(buf.Bytes()), Options{Batch: 4, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.Outputs() != 7 || !slices.Equal(got.Classes(), []string{"a", "b"}) {
		t.Errorf("read back %d outputs, classes %q", got.Outputs(), got.Classes())
	}

	v2 := smallModelFile(t) // 3 classes, 3 outputs
	v1 := toVersion1(t, v2)
	old, err := ReadModel(bytes.NewReader(v1), Options{Batch: 4, Threads: 1})
	if err != nil {
		t.Fatalf("version 1 file: %v", err)
	}
	if old.Outputs() != 3 || len(old.Classes()) != 3 {
		t.Errorf("version 1 file: %d outputs, classes %q", old.Outputs(), old.Classes())
	}
}

// toVersion1 rewrites a version 2 file of an "mlp:16" model with classes
// a, b, c as version 1 wrote it: without the output-unit count.
func toVersion1(t *testing.T, file []byte) []byte {
	t.Helper()
	// payload: name (4+6), shape (12), class count (4), 3 names (3×5), outputs (4)
	at := 20 + 10 + 12 + 4 + 15
	if got := binary.LittleEndian.Uint32(file[at:]); got != 3 {
		t.Fatalf("output count field reads %d, want 3: layout changed", got)
	}
	out := append(append([]byte(nil), file[:at]...), file[at+4:len(file)-4]...)
	binary.LittleEndian.PutUint32(out[8:], 1)
	binary.LittleEndian.PutUint64(out[12:], uint64(len(out)-20))
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, binio.Castagnoli))
}
