package sensors

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mnistDirForTest(t *testing.T) string {
	t.Helper()
	dir, err := MNISTDir()
	if err != nil {
		t.Fatalf("MNISTDir: %v", err)
	}
	return dir
}

// rawIDXImages reads a gzipped IDX image file independently of the loader.
func rawIDXImages(t *testing.T, path string, count int) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, zr, 16); err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, count)
	for i := range out {
		out[i] = make([]byte, 784)
		if _, err := io.ReadFull(zr, out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestMNISTTestSplit(t *testing.T) {
	dir := mnistDirForTest(t)
	ds, err := LoadDataset("mnist:"+dir, SplitTest, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 10000 {
		t.Fatalf("Len = %d, want 10000", ds.Len())
	}
	if got := ds.Shape(); got != (Shape{1, 28, 28}) || got.Size() != 784 {
		t.Fatalf("Shape = %+v", got)
	}
	if got := strings.Join(ds.Classes(), ""); got != "0123456789" {
		t.Fatalf("Classes = %q", got)
	}
	// The first t10k labels are well known: 7 2 1 0 4 1 4 9 5 9.
	want := []int{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}
	raw := rawIDXImages(t, filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), 50)
	dst := make([]float32, 784)
	for i := range raw {
		for j := range dst {
			dst[j] = -7 // must be overwritten, zeros included
		}
		l := ds.Example(i, dst)
		if i < len(want) && l != want[i] {
			t.Errorf("label %d = %d, want %d", i, l, want[i])
		}
		for j, p := range raw[i] {
			if dst[j] != float32(p)/255 {
				t.Fatalf("image %d pixel %d = %v, want %v", i, j, dst[j], float32(p)/255)
			}
		}
	}
	m := ds.(*MNIST)
	if raw := int64(10000 * 784); m.CompactBytes()*2 > raw {
		t.Errorf("compact store %d bytes is not under half the %d raw bytes", m.CompactBytes(), raw)
	}
	counts := make([]int, 10)
	for i := 0; i < ds.Len(); i++ {
		counts[m.Label(i)]++
	}
	for d, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("digit %d occurs %d times in t10k", d, c)
		}
	}
}

func TestMNISTTrainAndAll(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: only the t10k split is decoded (the 60000-image train split takes seconds under emulation)")
		return
	}
	tr, err := LoadDataset("mnist:default", SplitTrain, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 60000 {
		t.Fatalf("train Len = %d", tr.Len())
	}
	dst := make([]float32, 784)
	if l := tr.Example(0, dst); l != 5 {
		t.Errorf("first train label %d, want 5", l)
	}
	t.Logf("train compact store: %d bytes (%.1f%% of uint8)", tr.(*MNIST).CompactBytes(), 100*float64(tr.(*MNIST).CompactBytes())/(60000*784))
	all, err := LoadDataset("mnist:", SplitAll, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if all.Len() != 70000 {
		t.Fatalf("all Len = %d", all.Len())
	}
	if l := all.Example(60000, dst); l != 7 {
		t.Errorf("item 60000 of all (first t10k) label %d, want 7", l)
	}
}

func TestMNISTRemapClasses(t *testing.T) {
	dir := writeIDX(t, false, 3, 2, 2, []byte{0, 3, 9}, nil)
	ds, err := LoadDataset("mnist:"+dir, SplitTrain, LoadOptions{Classes: []string{"9", "3", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 4)
	for i, want := range []int{2, 1, 0} {
		if got := ds.Example(i, dst); got != want {
			t.Errorf("example %d label %d, want %d", i, got, want)
		}
	}
	_, err = LoadDataset("mnist:"+dir, SplitTrain, LoadOptions{Classes: []string{"0", "1"}})
	if err == nil || !strings.Contains(err.Error(), "3, 9") {
		t.Errorf("unknown labels: err = %v, want one naming 3, 9", err)
	}
}

// writeIDX writes train-{images,labels} IDX files (gzipped or not) with
// count images of rows×cols; pixel k of image i is byte(i+k) unless mutate
// changes the encoded files.
func writeIDX(t *testing.T, gz bool, count, rows, cols int, labels []byte, mutate func(img, lab []byte) ([]byte, []byte)) string {
	t.Helper()
	var img, lab bytes.Buffer
	binary.Write(&img, binary.BigEndian, []uint32{0x803, uint32(count), uint32(rows), uint32(cols)})
	for i := 0; i < count; i++ {
		for k := 0; k < rows*cols; k++ {
			if (i+k)%3 == 0 {
				img.WriteByte(0)
			} else {
				img.WriteByte(byte(i + k))
			}
		}
	}
	binary.Write(&lab, binary.BigEndian, []uint32{0x801, uint32(len(labels))})
	lab.Write(labels)
	ib, lb := img.Bytes(), lab.Bytes()
	if mutate != nil {
		ib, lb = mutate(ib, lb)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if gz {
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write(b)
			w.Close()
			b, name = z.Bytes(), name+".gz"
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("train-images-idx3-ubyte", ib)
	write("train-labels-idx1-ubyte", lb)
	return dir
}

func TestIDXRoundTripSmall(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := writeIDX(t, gz, 4, 3, 5, []byte{1, 2, 3, 4}, nil)
		ds, err := LoadMNIST(dir, SplitTrain)
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		if ds.Shape() != (Shape{1, 3, 5}) || ds.Len() != 4 {
			t.Fatalf("gz=%v: shape %v len %d", gz, ds.Shape(), ds.Len())
		}
		dst := make([]float32, 15)
		for i := 0; i < 4; i++ {
			if l := ds.Example(i, dst); l != i+1 {
				t.Errorf("label %d = %d", i, l)
			}
			for k := range dst {
				want := float32(byte(i+k)) / 255
				if (i+k)%3 == 0 {
					want = 0
				}
				if dst[k] != want {
					t.Fatalf("gz=%v image %d pixel %d = %v want %v", gz, i, k, dst[k], want)
				}
			}
		}
	}
}

func TestIDXErrors(t *testing.T) {
	cases := []struct {
		name    string
		labels  []byte
		mutate  func(img, lab []byte) ([]byte, []byte)
		wantSub string
	}{
		{"bad image magic", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { i[2] = 0x09; return i, l }, "train-images-idx3-ubyte: IDX magic"},
		{"truncated images", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { return i[:len(i)-3], l }, "reading image 1 of 2"},
		{"truncated labels", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { return i, l[:len(l)-1] }, "reading 2 labels"},
		{"count mismatch", []byte{1, 2, 3}, nil, "3 labels"},
		{"label not a digit", []byte{1, 12}, nil, "label 12 at item 1"},
		{"zero dimension", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { binary.BigEndian.PutUint32(i[8:], 0); return i, l }, "dimension 1 is 0"},
		{"empty file", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { return nil, l }, "reading IDX magic"},
	}
	for _, c := range cases {
		dir := writeIDX(t, false, 2, 2, 2, c.labels, c.mutate)
		_, err := LoadMNIST(dir, SplitTrain)
		if err == nil || !strings.Contains(err.Error(), c.wantSub) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.wantSub)
		}
	}
	_, err := LoadMNIST(t.TempDir(), SplitTest)
	if err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") {
		t.Errorf("missing files: err = %v", err)
	}
}

func TestSpecErrors(t *testing.T) {
	cases := map[string]string{
		"":                              "missing source kind",
		"nosuch:x":                      `unknown source kind "nosuch"`,
		"synthetic-imu,seed":            `option "seed" is not key=value`,
		"synthetic-imu,seed=1,seed=2":   `option "seed" given twice`,
		"synthetic-imu,seed=abc":        `seed="abc" is not an integer`,
		"synthetic-imu,n=0":             "n=0 out of range",
		"synthetic-imu,colour=red":      "unknown option(s) colour",
		"synthetic-imu,window=0":        "window=0 out of range",
		"synthetic-imu,window=32,":      `option "" is not key=value`,
		"synthetic-imu:x":               "takes no ':' argument",
		"mnist:/nonexistent/dir":        "none of train-labels-idx1-ubyte",
		"mpu6050":                       "live sensor",
		"synthetic-imu,n=10,window=999": "window 999 is longer than the longest activity segment",
	}
	for s, want := range cases {
		_, err := LoadDataset(s, SplitTrain, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadDataset(%q): err = %v, want it to contain %q", s, err, want)
			continue
		}
		if s != "" && !strings.Contains(err.Error(), s) {
			t.Errorf("LoadDataset(%q): err %q does not name the spec", s, err)
		}
	}
	_, err := LoadDataset("synthetic-imu,window=32", SplitTrain, LoadOptions{Window: 16})
	if err == nil || !strings.Contains(err.Error(), "window=32 in the spec but 16 in the options") {
		t.Errorf("conflicting window: %v", err)
	}
	_, err = LoadDataset("synthetic-imu,n=1", SplitTest, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "no test window of 64 samples fits") {
		t.Errorf("empty test split: %v", err)
	}
	_, err = LoadDataset("mnist:", SplitTest, LoadOptions{Window: 16})
	if err == nil || !strings.Contains(err.Error(), "MNIST holds images") {
		t.Errorf("mnist with a window: %v", err)
	}
	_, err = LoadDataset("mnist:", SplitTest, LoadOptions{Norm: &Normalizer{Mean: []float32{0}, Std: []float32{1}}})
	if err == nil || !strings.Contains(err.Error(), "takes none") {
		t.Errorf("mnist with a normalizer: %v", err)
	}
	if _, err := LoadDataset("synthetic-imu", Split(7), LoadOptions{}); err == nil {
		t.Error("invalid split accepted")
	}
}

func TestNormalizerBinary(t *testing.T) {
	n := &Normalizer{Mean: []float32{1, -2.5, 9.81}, Std: []float32{0.5, 1, 3}}
	b, err := n.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var m Normalizer
	if err := m.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for c := range n.Mean {
		if m.Mean[c] != n.Mean[c] || m.Std[c] != n.Std[c] {
			t.Fatalf("round trip: %+v != %+v", m, *n)
		}
	}
	bad := func(mut func([]byte) []byte, want string) {
		t.Helper()
		c := mut(append([]byte(nil), b...))
		var x Normalizer
		if err := x.UnmarshalBinary(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("corrupt normalizer: err = %v, want %q", err, want)
		}
	}
	bad(func(b []byte) []byte { return b[:5] }, "shorter than")
	bad(func(b []byte) []byte { b[0] = 'X'; return b }, "bad magic")
	bad(func(b []byte) []byte { b[4] = 9; return b }, "unsupported version 9")
	bad(func(b []byte) []byte { return b[:len(b)-1] }, "need 36 bytes")
	bad(func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[12+12:], math.Float32bits(-1))
		return b
	}, "channel 0: standard deviation -1")
	bad(func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[12:], math.Float32bits(float32(math.NaN())))
		return b
	}, "channel 0: mean NaN")
	if _, err := (&Normalizer{Mean: []float32{1}, Std: nil}).MarshalBinary(); err == nil {
		t.Error("mismatched lengths marshalled")
	}
}

func TestSyntheticDataset(t *testing.T) {
	tr, err := LoadDataset("synthetic-imu,seed=3,n=600", SplitTrain, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	te, err := LoadDataset("synthetic-imu,seed=3,n=600", SplitTest, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoadDataset("synthetic-imu,seed=3,n=600", SplitAll, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Shape() != (Shape{6, 1, 64}) {
		t.Fatalf("shape %v", tr.Shape())
	}
	if tr.Len()+te.Len() != all.Len() || all.Len() < 600 || te.Len() < all.Len()/10 {
		t.Fatalf("train %d + test %d vs all %d", tr.Len(), te.Len(), all.Len())
	}
	// The test split is scaled with the train split's statistics.
	nt, ne := NormalizerOf(tr), NormalizerOf(te)
	for c := 0; c < 6; c++ {
		if nt.Mean[c] != ne.Mean[c] || nt.Std[c] != ne.Std[c] {
			t.Fatalf("test normalizer differs from train: %+v vs %+v", ne, nt)
		}
	}
	// Train windows are standardised: per-channel mean ~0, std ~1.
	dst := make([]float32, tr.Shape().Size())
	var sum, sq [6]float64
	counts := make([]int, len(tr.Classes()))
	n := 0
	for i := 0; i < tr.Len(); i++ {
		counts[tr.Example(i, dst)]++
		for k, v := range dst {
			sum[k%6] += float64(v)
			sq[k%6] += float64(v) * float64(v)
		}
		n += 64
	}
	for c := 0; c < 6; c++ {
		mean := sum[c] / float64(n)
		std := math.Sqrt(sq[c]/float64(n) - mean*mean)
		if math.Abs(mean) > 0.1 || math.Abs(std-1) > 0.1 {
			t.Errorf("channel %d: mean %.3f std %.3f after standardisation", c, mean, std)
		}
	}
	for c, k := range counts {
		if k < tr.Len()/20 {
			t.Errorf("class %s has only %d of %d windows", tr.Classes()[c], k, tr.Len())
		}
	}
	// Deterministic for a seed, different for another.
	again, _ := LoadDataset("synthetic-imu,seed=3,n=600", SplitTrain, LoadOptions{})
	other, _ := LoadDataset("synthetic-imu,seed=4,n=600", SplitTrain, LoadOptions{})
	a, b, o := make([]float32, 384), make([]float32, 384), make([]float32, 384)
	tr.Example(5, a)
	again.Example(5, b)
	other.Example(5, o)
	if !equalF32(a, b) {
		t.Error("same seed gave different windows")
	}
	if equalF32(a, o) {
		t.Error("different seeds gave the same window")
	}
}

// Train and test windows never share a sample.
func TestSplitDisjoint(t *testing.T) {
	const window, hop = 16, 5
	tr, _ := LoadDataset("synthetic-imu,n=300,window=16,hop=5", SplitTrain, LoadOptions{})
	te, _ := LoadDataset("synthetic-imu,n=300", SplitTest, LoadOptions{Window: window, Hop: hop})
	used := map[int]bool{}
	for _, s := range tr.(*Windows).starts {
		for k := s; k < s+window; k++ {
			used[k] = true
		}
	}
	for _, s := range te.(*Windows).starts {
		for k := s; k < s+window; k++ {
			if used[k] {
				t.Fatalf("sample %d is in a train and a test window", k)
			}
		}
	}
}

func equalF32(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
