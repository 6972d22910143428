package sensors

import "testing"

func exampleDatasets(tb testing.TB) map[string]Dataset {
	tb.Helper()
	mn, err := LoadDataset("mnist:", SplitTest, LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	imu, err := LoadDataset("synthetic-imu,n=300", SplitAll, LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]Dataset{"mnist/784": mn, "synthetic-imu/384": imu}
}

// Decoding examples is in the training loop: it must not allocate.
func TestExampleDoesNotAllocate(t *testing.T) {
	for name, ds := range exampleDatasets(t) {
		dst := make([]float32, ds.Shape().Size())
		i := 0
		if a := testing.AllocsPerRun(200, func() { ds.Example(i%ds.Len(), dst); i++ }); a != 0 {
			t.Errorf("%s: %v allocations per Example", name, a)
		}
	}
}

func BenchmarkExample(b *testing.B) {
	for name, ds := range exampleDatasets(b) {
		b.Run(name, func(b *testing.B) {
			dst := make([]float32, ds.Shape().Size())
			b.SetBytes(int64(4 * len(dst)))
			for i := 0; b.Loop(); i++ {
				ds.Example(i%ds.Len(), dst)
			}
		})
	}
}

func BenchmarkLoadMNIST(b *testing.B) {
	dir, err := MNISTDir()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := LoadMNIST(dir, SplitTest); err != nil {
			b.Fatal(err)
		}
	}
}
