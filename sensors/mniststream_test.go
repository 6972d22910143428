package sensors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// nextN reads n samples from src, failing the test on any error.
func nextN(t *testing.T, src Source, n int) []Sample {
	t.Helper()
	out := make([]Sample, n)
	for i := range out {
		s, err := src.Next(context.Background())
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		out[i] = s
	}
	return out
}

// sameAsDataset checks that samples are examples first, first+1, ... of ds
// (wrapping at its end), pixel for pixel and label for label.
func sameAsDataset(t *testing.T, ds Dataset, first int, samples []Sample) {
	t.Helper()
	want := make([]float32, ds.Shape().Size())
	for k, s := range samples {
		i := (first + k) % ds.Len()
		label := ds.Example(i, want)
		if s.Label != label || s.LabelName != ds.Classes()[label] || s.Shape != ds.Shape() {
			t.Fatalf("sample %d (example %d): label %d %q shape %v, dataset %d %q %v", k, i, s.Label, s.LabelName, s.Shape, label, ds.Classes()[label], ds.Shape())
		}
		for p := range want {
			if s.Data[p] != want[p] {
				t.Fatalf("sample %d (example %d): pixel %d = %v, dataset %v", k, i, p, s.Data[p], want[p])
			}
		}
	}
}

// addT10k writes t10k files (count images, the given labels) into dir,
// next to its train files, so split=all has two parts.
func addT10k(t *testing.T, dir string, gz bool, count int, labels []byte) {
	t.Helper()
	other := writeIDX(t, gz, count, 2, 2, labels, nil)
	ext := ""
	if gz {
		ext = ".gz"
	}
	for _, kind := range []string{"images-idx3-ubyte", "labels-idx1-ubyte"} {
		if err := os.Rename(filepath.Join(other, "train-"+kind+ext), filepath.Join(dir, "t10k-"+kind+ext)); err != nil {
			t.Fatal(err)
		}
	}
}

// The stream yields the dataset's examples in order, for every split, both
// plain and gzipped files, and with loop=1 starts again after the last part.
func TestMNISTStreamMatchesDataset(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := writeIDX(t, gz, 3, 2, 2, []byte{4, 0, 9}, nil)
		addT10k(t, dir, gz, 2, []byte{7, 1})
		for _, c := range []struct {
			split string
			sp    Split
			n     int
		}{{"train", SplitTrain, 3}, {"test", SplitTest, 2}, {"all", SplitAll, 5}} {
			name := fmt.Sprintf("gz=%v split=%s", gz, c.split)
			ds, err := LoadDataset("mnist:"+dir, c.sp, LoadOptions{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ds.Len() != c.n {
				t.Fatalf("%s: dataset of %d examples, want %d", name, ds.Len(), c.n)
			}
			once, err := Open("mnist:"+dir+",split="+c.split, LoadOptions{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sameAsDataset(t, ds, 0, nextN(t, once, c.n))
			for range 2 { // the end stays the end
				if _, err := once.Next(context.Background()); err != io.EOF {
					t.Fatalf("%s: after %d samples: %v, want io.EOF", name, c.n, err)
				}
			}
			if h := once.Health(); h.State != "ended" || h.Windows != uint64(c.n) {
				t.Errorf("%s: health after the end %+v", name, h)
			}
			once.Close()

			looped, err := Open("mnist:"+dir+",split="+c.split+",loop=1", LoadOptions{})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sameAsDataset(t, ds, 0, nextN(t, looped, 3*c.n+1))
			looped.Close()
		}
	}
}

// On the real MNIST test split (10,000 images, gzipped) the stream and
// LoadDataset agree on every example, also across the loop wrap.
func TestMNISTStreamRealData(t *testing.T) {
	dir := mnistDirForTest(t)
	ds, err := LoadDataset("mnist:"+dir, SplitTest, LoadOptions{Classes: []string{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open("mnist:"+dir+",split=test,loop=1", LoadOptions{Classes: []string{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	n := ds.Len()
	if testing.Short() {
		// Under emulation: the start, then skip to just before the wrap.
		sameAsDataset(t, ds, 0, nextN(t, src, 500))
		nextN(t, src, n-1000)
		sameAsDataset(t, ds, n-500, nextN(t, src, 1000))
		return
	}
	sameAsDataset(t, ds, 0, nextN(t, src, n+500))
}

// A stream of the 60,000-image train split holds no images: its live heap
// stays well under the ~15 MB of the compact dataset.
func TestMNISTStreamMemory(t *testing.T) {
	dir := mnistDirForTest(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	src, err := Open("mnist:"+dir+",split=train,loop=1", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	nextN(t, src, 2000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("live heap of an open train stream: %d bytes", grown)
	if grown > 2<<20 {
		t.Errorf("an open train stream keeps %d bytes live, want < 2 MiB", grown)
	}
	runtime.KeepAlive(src)
}

// Files cut short fail with an error naming the file and the byte offset,
// never io.EOF (which would end the replay quietly); the error sticks.
func TestMNISTStreamTruncated(t *testing.T) {
	const size = 2 * 2
	cases := []struct {
		name   string
		cut    func(img, lab []byte) ([]byte, []byte)
		sample int    // the Next call that fails
		want   string // in the error, %s = ".gz" or ""; offsets count decompressed bytes
	}{
		{"image cut inside", func(i, l []byte) ([]byte, []byte) { return i[:len(i)-3], l }, 1,
			fmt.Sprintf("train-images-idx3-ubyte%%s: reading image 1 of 2: truncated at byte %d", 16+size+1)},
		{"image cut at a boundary", func(i, l []byte) ([]byte, []byte) { return i[:len(i)-size], l }, 1,
			fmt.Sprintf("train-images-idx3-ubyte%%s: reading image 1 of 2: truncated at byte %d", 16+size)},
	}
	for _, gz := range []bool{false, true} {
		for _, c := range cases {
			name := fmt.Sprintf("%s gz=%v", c.name, gz)
			want := fmt.Sprintf(c.want, "")
			if gz {
				want = fmt.Sprintf(c.want, ".gz") + " of the decompressed data"
			}
			dir := writeIDX(t, gz, 2, 2, 2, []byte{1, 2}, c.cut)
			src, err := Open("mnist:"+dir+",split=train,loop=1", LoadOptions{})
			if err != nil {
				t.Fatalf("%s: open: %v", name, err)
			}
			nextN(t, src, c.sample)
			_, err = src.Next(context.Background())
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("%s: err = %v, want it to contain %q and the directory", name, err, want)
			}
			if errors.Is(err, io.EOF) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: err %v should wrap io.ErrUnexpectedEOF, not io.EOF", name, err)
			}
			if _, again := src.Next(context.Background()); again == nil || again.Error() != err.Error() {
				t.Errorf("%s: next call after the error: %v", name, again)
			}
			if h := src.Health(); h.Healthy || h.Errors != 1 || h.LastError != err.Error() {
				t.Errorf("%s: health %+v", name, h)
			}
			src.Close()
		}
	}
}

// Header and label problems, and classes that miss a digit, fail at Open
// like LoadDataset does.
func TestMNISTStreamOpenErrors(t *testing.T) {
	cases := []struct {
		name   string
		labels []byte
		mutate func(img, lab []byte) ([]byte, []byte)
		opt    LoadOptions
		want   string
	}{
		{"truncated labels", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { return i, l[:len(l)-1] }, LoadOptions{}, "train-labels-idx1-ubyte: reading 2 labels: at byte 9"},
		{"label not a digit", []byte{1, 12}, nil, LoadOptions{}, "label 12 at item 1 (byte 9)"},
		{"bad image magic", []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { i[2] = 0x09; return i, l }, LoadOptions{}, "train-images-idx3-ubyte: IDX magic"},
		{"count mismatch", []byte{1, 2, 3}, nil, LoadOptions{}, "3 labels"},
		{"class missing", []byte{1, 2}, nil, LoadOptions{Classes: []string{"1", "3"}}, "MNIST labels 2 are not among the classes"},
		{"window", []byte{1, 2}, nil, LoadOptions{Window: 8}, "MNIST holds images"},
	}
	for _, c := range cases {
		dir := writeIDX(t, false, 2, 2, 2, c.labels, c.mutate)
		_, err := Open("mnist:"+dir+",split=train", c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := Open("mnist:"+t.TempDir()+",split=test", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") {
		t.Errorf("missing files: %v", err)
	}
	if _, err := Open("mnist:"+t.TempDir()+",split=train,shuffle=1", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "unknown option(s) shuffle") {
		t.Errorf("unknown option: %v", err)
	}
}

// openFDs counts this process's open file descriptors (Linux).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting open files: %v", err)
	}
	return len(ents)
}

// Streaming starts no goroutine, and Close (also mid-part, after a loop
// wrap or after an error) releases every file.
func TestMNISTStreamReleases(t *testing.T) {
	dir := writeIDX(t, true, 3, 2, 2, []byte{4, 0, 9}, nil)
	addT10k(t, dir, true, 2, []byte{7, 1})
	bad := writeIDX(t, false, 2, 2, 2, []byte{1, 2}, func(i, l []byte) ([]byte, []byte) { return i[:len(i)-1], l })
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	for _, c := range []struct {
		spec string
		n    int
	}{
		{"mnist:" + dir + ",split=all,loop=1", 0},
		{"mnist:" + dir + ",split=all,loop=1", 4},  // inside t10k
		{"mnist:" + dir + ",split=all,loop=1", 12}, // after two wraps
		{"mnist:" + dir + ",split=all", 7},         // past the end
		{"mnist:" + bad + ",split=train", 3},       // after the error
	} {
		src, err := Open(c.spec, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range c.n {
			src.Next(context.Background())
		}
		if n := runtime.NumGoroutine(); n != goroutines {
			t.Errorf("%s after %d Next: %d goroutines, %d before", c.spec, c.n, n, goroutines)
		}
		if err := src.Close(); err != nil {
			t.Errorf("%s: Close: %v", c.spec, err)
		}
		if n := openFDs(t); n != fds {
			t.Errorf("%s after %d Next and Close: %d open files, %d before", c.spec, c.n, n, fds)
		}
		if _, err := src.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("%s: Next after Close: %v", c.spec, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src, err := Open("mnist:"+dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v", err)
	}
}
