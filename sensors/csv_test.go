package sensors

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ramp writes n rows "time,ax,ay,note" with ax = start+i, ay = -(start+i).
func ramp(start, n int, eol string) string {
	var b strings.Builder
	b.WriteString("time,ax,ay,note" + eol)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%d,%d,%d,\"a, \"\"quoted\"\" note\"%s", i*20, start+i, -(start + i), eol)
	}
	return b.String()
}

func rawWindow(t *testing.T, ds Dataset, i int) []float32 {
	t.Helper()
	dst := make([]float32, ds.Shape().Size())
	ds.Example(i, dst)
	n := NormalizerOf(ds)
	for k := range dst {
		c := k % ds.Shape().Channels
		// Undo the standardisation; round away the float error (the test
		// data are integers; fused multiply-add on arm64 rounds differently).
		dst[k] = float32(math.Round(float64(dst[k]*n.Std[c]+n.Mean[c])*1000) / 1000)
	}
	return dst
}

func TestCSVFileLabelsQuotesCRLF(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "wave-0012.csv", ramp(0, 40, "\r\n"))
	writeFile(t, dir, "wave.3f2a.csv", ramp(1000, 40, "\n"))
	writeFile(t, dir, "rest_2.csv", "\ufefftime,ax,ay,note\n"+strings.Repeat("0,5,5,x\n", 30))
	ds, err := LoadDataset("csv:"+dir+"/*.csv,window=10,hop=10", SplitAll, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ds.Classes(), " "); got != "rest_2 wave" {
		t.Fatalf("classes %q", got)
	}
	if ds.Shape() != (Shape{2, 1, 10}) {
		t.Fatalf("shape %v (time and the text column must not be channels)", ds.Shape())
	}
	// Files in sorted order: rest_2 (3 windows), wave-0012 (4), wave.3f2a (4).
	if ds.Len() != 11 {
		t.Fatalf("Len %d, want 11", ds.Len())
	}
	w := rawWindow(t, ds, 3)
	if ds.Example(3, make([]float32, 20)) != 1 || w[0] != 0 || w[1] != 0 || w[18] != 9 || w[19] != -9 {
		t.Errorf("first wave window %v", w)
	}
	if w := rawWindow(t, ds, 7); w[0] != 1000 {
		t.Errorf("second file's first window starts at %v, want 1000", w[0])
	}
}

func TestCSVColsLabelColumnAndSplit(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("gz,label,ax\n")
	for i := 0; i < 300; i++ {
		lab := "up"
		if i >= 150 {
			lab = "down"
		}
		fmt.Fprintf(&b, "%d,%s,%d\n", i, lab, 2*i)
	}
	writeFile(t, dir, "x.csv", b.String())
	spec := "csv:" + dir + "/x.csv,cols=ax,gz,window=5,hop=5"
	tr, err := LoadDataset(spec, SplitTrain, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tr.(*Windows).ChannelNames(), ","); got != "ax,gz" {
		t.Fatalf("channels %q", got)
	}
	if got := strings.Join(tr.Classes(), ","); got != "down,up" {
		t.Fatalf("classes %q", got)
	}
	w := rawWindow(t, tr, 0)
	if w[0] != 0 || w[1] != 0 || w[2] != 2 || w[3] != 1 {
		t.Errorf("window 0 = %v, want ax then gz", w[:4])
	}
	te, err := LoadDataset(spec, SplitTest, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Runs of 150 rows make chunks of 50 rows (10 windows): up 0-2, down
	// 3-5. Chunk 4 (rows 200-249) is the test part.
	if tr.Len() != 50 || te.Len() != 10 {
		t.Fatalf("train %d test %d windows, want 50 and 10", tr.Len(), te.Len())
	}
	if w := rawWindow(t, te, 0); w[0] != 400 || te.Example(0, w) != 0 {
		t.Errorf("first test window starts at ax=%v, want 400 (row 200, down)", w[0])
	}
	// A test file with a label never seen in training is reported by name.
	writeFile(t, dir, "y.csv", "ax,gz,label\n"+strings.Repeat("1,2,sideways\n", 10))
	_, err = LoadDataset("csv:"+dir+"/y.csv,window=5", SplitAll, LoadOptions{Classes: tr.Classes()})
	if err == nil || !strings.Contains(err.Error(), "sideways") || !strings.Contains(err.Error(), "training classes") {
		t.Errorf("unknown test label: %v", err)
	}
	// label=NAME overrides the column.
	ds, err := LoadDataset("csv:"+dir+"/y.csv,window=5,label=wave", SplitAll, LoadOptions{})
	if err != nil || strings.Join(ds.Classes(), ",") != "wave" {
		t.Errorf("label=wave: %v %v", err, ds)
	}
}

func TestCSVErrors(t *testing.T) {
	dir := t.TempDir()
	good := "ax,ay\n" + strings.Repeat("1,2\n", 20)
	cases := []struct {
		name, content, opts, want string
	}{
		{"empty.csv", "", "", "empty.csv: empty file"},
		{"nonnum.csv", good + "1,abc\n" + good[6:], "", `nonnum.csv:22: column "ay": "abc" is not a finite number`},
		{"inf.csv", good + "Inf,1\n", "", `inf.csv:22: column "ax": "Inf" is not a finite number`},
		{"short.csv", good + "1\n", "", "short.csv:22: 1 fields, the header has 2"},
		{"emptycell.csv", good + "1,\n", "", `emptycell.csv:22: column "ay" is empty`},
		{"missing.csv", good, ",cols=ax,az", `missing.csv:1: no column "az"`},
		{"quote.csv", good + "1,\"2\n", "", "quote.csv:22"},
		{"huge.csv", good + strings.Repeat("9", MaxCSVLine+10) + ",1\n", "", "huge.csv:22: line longer than"},
		{"dup.csv", "ax,ax\n1,2\n", "", `column "ax" appears twice`},
		{"text.csv", "a,b\nx,y\n", "", "no numeric column"},
		{"-dash.csv", good, "", "file name does not start"},
	}
	for _, c := range cases {
		p := writeFile(t, dir, c.name, c.content)
		_, err := LoadDataset("csv:"+p+",window=4"+c.opts, SplitAll, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v\nwant it to contain %q", c.name, err, c.want)
		}
	}
	if _, err := LoadDataset("csv:"+dir+"/nomatch*.csv", SplitAll, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "no file matches") {
		t.Errorf("no match: %v", err)
	}
	for opt, want := range map[string]string{",bad=maybe": `bad="maybe"`, ",cols=ax,,ay": `option "" is not key=value`, ",cols=ax,ax": `names "ax" twice`, ",label=none": "not a usable class name"} {
		if _, err := LoadDataset("csv:"+dir+"/short.csv"+opt, SplitAll, LoadOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", opt, err)
		}
	}
}

func TestCSVSkipBadRows(t *testing.T) {
	dir := t.TempDir()
	body := "ax,ay\n" + strings.Repeat("1,2\n", 8) + "x,1\n" + strings.Repeat("3,4\n", 8) + "1\n" + strings.Repeat("5,6\n", 3)
	p := writeFile(t, dir, "walk.csv", body)
	ds, err := LoadDataset("csv:"+p+",window=4,hop=4,bad=skip", SplitAll, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := ds.(*Windows)
	if w.SkippedRows() != 2 {
		t.Errorf("skipped %d rows, want 2", w.SkippedRows())
	}
	// No window spans a skipped row: each holds one constant value pair.
	for i := 0; i < ds.Len(); i++ {
		r := rawWindow(t, ds, i)
		for k := 2; k < len(r); k += 2 {
			if r[k] != r[0] {
				t.Fatalf("window %d spans a skipped row: %v", i, r)
			}
		}
	}
	if ds.Len() != 4 {
		t.Errorf("%d windows, want 4", ds.Len())
	}
	// Lines too long are errors even with bad=skip.
	writeFile(t, dir, "huge.csv", "ax\n"+strings.Repeat("1", MaxCSVLine+1)+"\n")
	if _, err := LoadDataset("csv:"+dir+"/huge.csv,bad=skip", SplitAll, LoadOptions{}); err == nil {
		t.Error("huge line accepted with bad=skip")
	}
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte("ax,ay,label\n1,2,a\n3,4,b\n"), true)
	f.Add([]byte("\ufeffax;ay\r\n\"1\",\"2\"\r\n"), false)
	f.Add([]byte("t,x\n1,\"2\n3\",4\n,\n"), true)
	f.Add([]byte("a,b\n1e39,NaN\n-0,0x1p-3\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		l := newCSVLoader(csvConfig{skipBad: skip})
		err := l.read(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		s := l.ser
		if s.channels > 0 && len(s.data)%s.channels != 0 {
			t.Fatalf("%d values for %d channels", len(s.data), s.channels)
		}
		prev := 0
		for _, r := range s.runs {
			if r.start < prev || r.end <= r.start || r.end > s.samples() || r.label >= len(s.labelNames) {
				t.Fatalf("bad run %+v of %d samples", r, s.samples())
			}
			prev = r.end
		}
		if s.channels > 0 && s.samples() > 0 {
			if _, err := newWindows(s, "fuzz", SplitAll, LoadOptions{}, 1, 1); err != nil && !strings.Contains(err.Error(), "no all window") {
				t.Fatalf("windows: %v", err)
			}
		}
	})
}
