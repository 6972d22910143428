package simbus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The header 'bnnd sensors read SPEC --csv' writes for an MPU-6050.
const mpuHeader = "time,ax,ay,az,gx,gy,gz,label\n"

func TestReplayErrors(t *testing.T) {
	long := "ax,ay,az\n1,2," + strings.Repeat("3", MaxLine) + "\n"
	for _, c := range []struct {
		name, body string
		gyro       bool
		want       []string // all in the message, after "simbus: "
	}{
		{"empty", "", false, []string{"empty.csv:1: empty file"}},
		{"blank", "\n\n", false, []string{"blank.csv:1: empty file"}},
		{"header-only", mpuHeader, true, []string{"header-only.csv:2: no data rows"}},
		{"no-az", "time,ax,ay,label\n0,1,2,walk\n", false, []string{"no-az.csv:1:", `no column "az"`}},
		{"no-gyro", "time,ax,ay,az,label\n0,1,2,3,\n", true, []string{"no-gyro.csv:1:", `no column "gx"`, "MPU-6050"}},
		{"part-gyro", "ax,ay,az,gx,gz\n1,2,3,4,5\n", false, []string{"part-gyro.csv:1:", `no column "gy"`}},
		{"unknown", "time,ax,foo,ay,az,Bar\n0,1,2,3,4,5\n", false, []string{"unknown.csv:1:", `unknown column "foo", "bar"`}},
		{"twice", "ax,ay,az,AX\n1,2,3,4\n", false, []string{"twice.csv:1:", `column "ax" appears twice`}},
		{"text", mpuHeader + "0,1,2,3,4,5,6,\n0.01,1,abc,3,4,5,6,walk\n", true, []string{"text.csv:3:8:", `column "ay"`, `"abc" is not a finite number`}},
		{"nan", mpuHeader + "0,1,2,3,4,5,NaN,\n", true, []string{"nan.csv:2:13:", `column "gz"`, `"NaN"`}},
		{"inf", "az,ay,ax\n1,-Inf,2\n", false, []string{"inf.csv:2:3:", `column "ay"`, `"-Inf"`}},
		{"huge", "ax,ay,az\n1,2,1e999\n", false, []string{"huge.csv:2:5:", `column "az"`, `"1e999"`}},
		{"empty-cell", "ax,ay,az\n1,,3\n", false, []string{"empty-cell.csv:2:3:", `column "ay": empty cell`}},
		{"short", mpuHeader + "0,1,2,3,4,5,6,\n0,1,2,3\n", true, []string{"short.csv:3: 4 fields, the header has 8"}},
		{"long", "ax,ay,az\n1,2,3,4\n", false, []string{"long.csv:2: 4 fields, the header has 3"}},
		{"quote", "ax,ay,az\n1,2,3\n1,\"2,3\n", false, []string{"quote.csv:3:", "extraneous or missing"}},
		{"longline", long, false, []string{"longline.csv:2: line longer than"}},
	} {
		dir := t.TempDir()
		writeFile(t, dir, c.name+".csv", c.body)
		_, err := OpenReplay(ReplayOptions{Glob: filepath.Join(dir, "*.csv"), Gyro: c.gyro})
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "simbus: ") {
			t.Errorf("%s: %q does not start with simbus:", c.name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not contain %q", c.name, msg, w)
			}
		}
	}
}

func TestReplayGlobErrors(t *testing.T) {
	dir := t.TempDir()
	glob := filepath.Join(dir, "walk-*.csv")
	if _, err := OpenReplay(ReplayOptions{Glob: glob}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("simbus: no file matches glob %q", glob)) {
		t.Errorf("empty glob: %v", err)
	}
	if _, err := OpenReplay(ReplayOptions{Glob: "["}); err == nil || !strings.Contains(err.Error(), `glob "["`) {
		t.Errorf("bad pattern: %v", err)
	}
	// The second file's error names the second file.
	writeFile(t, dir, "walk-1.csv", "ax,ay,az\n1,2,3\n")
	writeFile(t, dir, "walk-2.csv", "ax,ay,az\n1,2,3\n1,2,x\n")
	if _, err := OpenReplay(ReplayOptions{Glob: glob}); err == nil || !strings.Contains(err.Error(), "walk-2.csv:3:5:") {
		t.Errorf("error in the second file: %v", err)
	}
}

// Files play in name order; with Loop the first follows the last, and
// labels are called again where they change across the wrap. Gyro
// columns are used when present even if not required.
func TestReplayLoopAndOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "b.csv", "label,ax,ay,az,time\nrun,3,0,0,0\n")
	writeFile(t, dir, "a.csv", " AX ,ay,az,gx,gy,gz,label\n1,0,0,0.5,0,0,walk\n2,0,0,0,0,0,walk\n")
	writeFile(t, dir, "c.csv", "\ufeffax,ay,az\n4,0,0\n")
	var log []string
	var rp *Replay
	rp, err := OpenReplay(ReplayOptions{Glob: filepath.Join(dir, "*.csv"), Loop: true, OnLabel: func(name string) error {
		// As a daemon logging label changes would: OnLabel runs inside
		// Next, and Position already names the row of the label.
		f, row := rp.Position()
		log = append(log, fmt.Sprintf("%s@%s:%d", name, filepath.Base(f), row))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f, row := rp.Position(); f != "" || row != 0 {
		t.Errorf("Position before Next: %q %d", f, row)
	}
	var got []string
	for range 9 {
		fr, err := rp.Next()
		if err != nil {
			t.Fatal(err)
		}
		f, row := rp.Position()
		got = append(got, fmt.Sprintf("%s:%d=%g/%g", filepath.Base(f), row, fr.Accel[0], fr.Gyro[0]))
	}
	want := "[a.csv:2=1/0.5 a.csv:3=2/0 b.csv:2=3/0 c.csv:2=4/0 a.csv:2=1/0.5 a.csv:3=2/0 b.csv:2=3/0 c.csv:2=4/0 a.csv:2=1/0.5]"
	if fmt.Sprint(got) != want {
		t.Errorf("frames %v\nwant   %v", got, want)
	}
	// c.csv has no label column: "run" stays until a.csv says walk again.
	if w := "[walk@a.csv:2 run@b.csv:2 walk@a.csv:2 run@b.csv:2 walk@a.csv:2]"; fmt.Sprint(log) != w {
		t.Errorf("OnLabel calls %v, want %v", log, w)
	}
	if err := rp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Next(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Next after Close: %v", err)
	}
}

// An OnLabel error ends playback with it, naming file and line.
func TestReplayOnLabelError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "rec.csv", mpuHeader+"0,1,2,3,4,5,6,walk\n0,1,2,3,4,5,6,jump!\n0,1,2,3,4,5,6,walk\n")
	errBad := errors.New("not a class")
	rp, err := OpenReplay(ReplayOptions{Glob: filepath.Join(dir, "rec.csv"), Gyro: true, OnLabel: func(name string) error {
		if name == "jump!" {
			return errBad
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Next(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = rp.Next()
		if !errors.Is(err, errBad) || !strings.Contains(err.Error(), `simbus: `) || !strings.Contains(err.Error(), `rec.csv:3: label "jump!": not a class`) {
			t.Errorf("Next on a refused label: %v", err)
		}
	}
}

// Playback streams: a file changed after OpenReplay is reported where
// playback meets the problem, and a recording that ends is io.EOF for
// good.
func TestReplayStreamsAndEnds(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "rec.csv", "ax,ay,az\n1,2,3\n4,5,6\n")
	rp, err := OpenReplay(ReplayOptions{Glob: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("ax,ay,az\n1,2,3\n4,5,?\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Next(); err == nil || !strings.Contains(err.Error(), "rec.csv:3:5:") {
		t.Errorf("changed file: %v", err)
	}

	rp, err = OpenReplay(ReplayOptions{Glob: filepath.Join(dir, "*.csv"), Loop: true})
	if err == nil {
		t.Fatal("the changed file passed the check")
	}
	os.WriteFile(p, []byte("ax,ay,az\n1,2,3\n"), 0o644)
	rp, err = OpenReplay(ReplayOptions{Glob: p})
	if err != nil {
		t.Fatal(err)
	}
	if fr, err := rp.Next(); err != nil || fr.Accel != [3]float64{1, 2, 3} {
		t.Fatalf("first row: %+v %v", fr, err)
	}
	for range 2 {
		if _, err := rp.Next(); err != io.EOF {
			t.Errorf("after the last row: %v, want io.EOF", err)
		}
	}
	// A looping replay whose files were emptied since stops instead of
	// spinning.
	rp, err = OpenReplay(ReplayOptions{Glob: p, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	rp.Next()
	os.WriteFile(p, []byte("ax,ay,az\n"), 0o644)
	if _, err := rp.Next(); err == nil || !strings.Contains(err.Error(), "no data rows left") {
		t.Errorf("looping over emptied files: %v", err)
	}
}

// The reader never panics, and a file OpenReplay accepts plays exactly
// its rows and then io.EOF, without other errors.
func FuzzReplayCSV(f *testing.F) {
	f.Add([]byte(mpuHeader+"0,1,2,3,4,5,6,walk\n0.01,1,2,3,4,5,6,\n"), true)
	f.Add([]byte("ax,ay,az\n1,2,3\n"), false)
	f.Add([]byte("\ufeffAX, ay ,az,label\n\"1\",2,3,\"a\nb\"\n"), false)
	f.Add([]byte("ax,ay,az\n1,2,3,4\n"), false)
	f.Add([]byte("ax,ay,az\n1,\"2,3\n"), false)
	f.Add([]byte("ax,ay,az\n0x1p-2,1e-300,-0\n"), false)
	f.Add([]byte(""), true)
	f.Fuzz(func(t *testing.T, data []byte, gyro bool) {
		dir := t.TempDir()
		p := filepath.Join(dir, "f.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rp, err := OpenReplay(ReplayOptions{Glob: p, Gyro: gyro, OnLabel: func(name string) error {
			if name == "" {
				t.Error("OnLabel with an empty name")
			}
			return nil
		}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "simbus: ") {
				t.Errorf("error %q does not start with simbus:", err)
			}
			return
		}
		defer rp.Close()
		for n := 0; ; n++ {
			_, err := rp.Next()
			if err == io.EOF {
				if n != rp.rows {
					t.Errorf("played %d rows, checked %d", n, rp.rows)
				}
				return
			}
			if err != nil {
				t.Fatalf("row %d of an accepted file: %v", n+1, err)
			}
		}
	})
}
