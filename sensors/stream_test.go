package sensors

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSyntheticStream(t *testing.T) {
	open := func() Source {
		src, err := Open("synthetic-imu,seed=9,n=300,pace=0", LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	ds, err := LoadDataset("synthetic-imu,seed=9,n=300", SplitTrain, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	na, nd := NormalizerOf(a), NormalizerOf(ds)
	for c := range nd.Mean {
		if na.Mean[c] != nd.Mean[c] || na.Std[c] != nd.Std[c] {
			t.Fatalf("stream normalizer %+v differs from the dataset's %+v", na, nd)
		}
	}
	ctx := context.Background()
	labelled, mixed := 0, 0
	for i := 0; i < 200; i++ {
		sa, err := a.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sb, _ := b.Next(ctx)
		if !equalF32(sa.Data, sb.Data) || sa.Label != sb.Label {
			t.Fatalf("window %d differs between two opens of the same seed", i)
		}
		if sa.Shape != (Shape{6, 1, 64}) || len(sa.Data) != 384 {
			t.Fatalf("shape %v", sa.Shape)
		}
		if sa.Label >= 0 {
			labelled++
			if sa.LabelName != SyntheticClasses[sa.Label] {
				t.Fatalf("label %d named %q", sa.Label, sa.LabelName)
			}
		} else {
			mixed++
		}
	}
	if labelled < 150 || mixed == 0 {
		t.Errorf("%d labelled, %d spanning two activities", labelled, mixed)
	}
	if h := a.Health(); h.Windows != 200 || h.Samples != 64+199*32 {
		t.Errorf("health %+v", h)
	}
	a.Close()
	if _, err := a.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

func TestSyntheticStreamPacedAndCancelled(t *testing.T) {
	src, err := Open("synthetic-imu,rate=1000,window=10,hop=5", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	start := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := src.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// 10 + 2*5 samples at 1 kHz: the 20th sample is due 19 ms after the first.
	if el := time.Since(start); el < 19*time.Millisecond {
		t.Errorf("3 paced windows took %v, want ≥ 19ms", el)
	}
	slow, err := Open("synthetic-imu,rate=2,window=4,hop=2", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := slow.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("paced Next with a short context: %v", err)
	}
	if _, err := Open("synthetic-imu", LoadOptions{Classes: []string{"still", "walk"}}); err == nil {
		t.Error("classes missing activities accepted")
	}
}

func TestReplayMNIST(t *testing.T) {
	dir := writeIDX(t, true, 3, 2, 2, []byte{4, 0, 9}, nil)
	src, err := Open("mnist:"+dir+",split=train", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, want := range []string{"4", "0", "9"} {
		s, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.LabelName != want || s.Shape != (Shape{1, 2, 2}) {
			t.Fatalf("sample %+v, want label %s", s, want)
		}
	}
	if _, err := src.Next(ctx); err != io.EOF {
		t.Fatalf("end of replay: %v", err)
	}
	looped, err := Open("mnist:"+dir+",split=train,loop=1", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		s, err := looped.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{4, 0, 9}[i%3]; s.Label != want {
			t.Fatalf("looped sample %d label %d, want %d", i, s.Label, want)
		}
	}
	looped.Close()
	if _, err := looped.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestWindower(t *testing.T) {
	w := newWindower(2, 4, 3)
	dst := make([]float32, 8)
	var got [][]float32
	for i := 0; i < 13; i++ {
		if w.push([]float32{float32(i), float32(-i)}) {
			w.read(dst)
			got = append(got, append([]float32(nil), dst...))
		}
	}
	// windows start at samples 0, 3, 6, 9
	if len(got) != 4 {
		t.Fatalf("%d windows", len(got))
	}
	for k, win := range got {
		for j := 0; j < 4; j++ {
			if win[2*j] != float32(3*k+j) || win[2*j+1] != -float32(3*k+j) {
				t.Fatalf("window %d = %v", k, win)
			}
		}
	}
	w.reset()
	for i := 0; i < 3; i++ {
		if w.push([]float32{1, 1}) {
			t.Fatal("window ready before it is full after reset")
		}
	}
	allocs := testing.AllocsPerRun(100, func() { w.push([]float32{1, 2}[:2]) })
	if allocs != 0 {
		t.Errorf("push allocates %v times", allocs)
	}
}

// Raw synthetic windows are in SI units and physically plausible.
func TestSyntheticRawPhysics(t *testing.T) {
	ds, err := LoadDataset("synthetic-imu,n=1500", SplitAll, LoadOptions{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ChannelNamesOf(ds), ","); got != "ax,ay,az,gx,gy,gz" {
		t.Fatalf("channels %q", got)
	}
	dst := make([]float32, ds.Shape().Size())
	type stats struct{ n, accNorm, gyroNorm, accVar float64 }
	per := make([]stats, len(SyntheticClasses))
	for i := 0; i < ds.Len(); i++ {
		l := ds.Example(i, dst)
		var mean [3]float64
		for t := 0; t < 64; t++ {
			for c := 0; c < 3; c++ {
				mean[c] += float64(dst[t*6+c]) / 64
			}
		}
		s := &per[l]
		for t := 0; t < 64; t++ {
			a, g := 0.0, 0.0
			for c := 0; c < 3; c++ {
				v := float64(dst[t*6+c])
				a += v * v
				s.accVar += (v - mean[c]) * (v - mean[c])
				g += float64(dst[t*6+3+c]) * float64(dst[t*6+3+c])
			}
			s.accNorm += math.Sqrt(a)
			s.gyroNorm += math.Sqrt(g)
			s.n++
		}
	}
	for c, s := range per {
		if s.n == 0 {
			t.Fatalf("no %s window", SyntheticClasses[c])
		}
		acc, gyro, accStd := s.accNorm/s.n, s.gyroNorm/s.n, math.Sqrt(s.accVar/s.n)
		t.Logf("%-6s |a| %.2f m/s²  std(a) %.2f  |ω| %.2f rad/s", SyntheticClasses[c], acc, accStd, gyro)
		switch SyntheticClasses[c] {
		case "still":
			if math.Abs(acc-9.81) > 0.7 || gyro > 0.25 || accStd > 0.8 {
				t.Errorf("still: |a| %.2f std %.2f |ω| %.2f", acc, accStd, gyro)
			}
		case "rotate":
			if math.Abs(acc-9.81) > 0.9 || gyro < 0.6 {
				t.Errorf("rotate: |a| %.2f |ω| %.2f", acc, gyro)
			}
		case "shake", "run":
			if accStd < 2 {
				t.Errorf("%s: acceleration std %.2f", SyntheticClasses[c], accStd)
			}
		}
	}
	if _, err := LoadDataset("synthetic-imu", SplitAll, LoadOptions{Raw: true, Norm: identity6}); err == nil {
		t.Error("Raw with a Normalizer accepted")
	}
}

func TestSyntheticClassOrderMatchesStream(t *testing.T) {
	ds, err := LoadDataset("synthetic-imu,n=20", SplitAll, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open("synthetic-imu,n=20,pace=0", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if a, b := strings.Join(ds.Classes(), ","), strings.Join(src.Classes(), ","); a != b || a != "still,walk,run,shake,rotate" {
		t.Errorf("dataset classes %q, stream classes %q", a, b)
	}
}

// The simulation is bit-identical on every architecture (amd64, arm64 and
// armv7 under qemu give this checksum); a change to the simulator must
// update it knowingly, since recorded experiments depend on the data.
func TestSyntheticGoldenChecksum(t *testing.T) {
	ds, err := LoadDataset("synthetic-imu,n=500", SplitAll, LoadOptions{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	h := crc32.NewIEEE()
	dst := make([]float32, ds.Shape().Size())
	var b [4]byte
	for i := 0; i < ds.Len(); i++ {
		ds.Example(i, dst)
		for _, v := range dst {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	if got := h.Sum32(); got != 0x7524dd15 || ds.Len() != 500 {
		t.Errorf("synthetic-imu,n=500: %d windows, CRC-32 %08x; want 500 and 7524dd15", ds.Len(), got)
	}
}
