package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/sensors"
)

func TestSensorsReadSyntheticJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"sensors", "read", "synthetic-imu,pace=0,n=300", "-n", "3", "--json", "--window", "32"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		var s sampleJSON
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if s.Index != i || s.Shape != [3]int{1, 32, 6} || len(s.Data) != 192 {
			t.Errorf("line %d: %+v", i, s)
		}
		if s.Label == nil || s.LabelIndex < 0 {
			t.Errorf("line %d unlabelled", i)
		}
	}
}

func TestSensorsReadCSVText(t *testing.T) {
	dir := t.TempDir()
	body := "ax,ay\r\n" + strings.Repeat("1,2\r\n3,4\r\n", 20)
	if err := os.WriteFile(filepath.Join(dir, "tap-01.csv"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"sensors", "read", "-n", "100", "csv:" + dir + "/*.csv,window=8,hop=8"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "tap") || !strings.Contains(lines[0], "c1 ") {
		t.Fatalf("output:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "source ended after 5 samples") {
		t.Errorf("stderr %q", errOut.String())
	}
}

func TestSensorsUsageAndErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sensors"}, 2, "missing subcommand"},
		{[]string{"sensors", "fly"}, 2, `unknown subcommand "fly"`},
		{[]string{"sensors", "read"}, 2, "want exactly one SPEC"},
		{[]string{"sensors", "read", "synthetic-imu", "-n", "0"}, 2, "-n 0"},
		{[]string{"sensors", "read", "synthetic-imu,colour=red"}, 1, `spec "synthetic-imu,colour=red"`},
		{[]string{"sensors", "read", "csv:/nonexistent/*.csv"}, 1, "no file matches"},
		{[]string{"sensors", "scan", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"sensors", "scan", "--bus", "no-such-bus-xyz"}, 1, `no I²C bus named "no-such-bus-xyz"`},
	} {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), c.args, &out, &errOut)
		if code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut.String(), c.code, c.want)
		}
	}
}

func TestSensorsScanRuns(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(context.Background(), []string{"sensors", "scan"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if out.Len() == 0 {
		t.Error("scan printed nothing")
	}
}

// scan lists the simulated bus with both emulated chips and their specs.
func TestSensorsScanListsSimBus(t *testing.T) {
	for _, args := range [][]string{{"sensors", "scan"}, {"sensors", "scan", "--bus", "sim"}} {
		var out, errOut bytes.Buffer
		if code := runMain(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
		}
		want := "sim\n" +
			"  0x68 MPU-6050 (id 0x68)  → spec mpu6050:sim,addr=0x68\n" +
			"  0x53 ADXL345 (id 0xe5)  → spec adxl345:sim,addr=0x53\n"
		if !strings.Contains(out.String(), want) {
			t.Errorf("%q printed\n%s\nwant it to contain\n%s", args, out.String(), want)
		}
	}
}

// --csv records readings that csv: reads back with the same labels.
func TestSensorsReadCSVRecordsRoundTrip(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), []string{"sensors", "read", "synthetic-imu,pace=0,seed=5", "--csv", "-n", "400"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 401 || lines[0] != "time,ax,ay,az,gx,gy,gz,label" {
		t.Fatalf("%d lines, header %q", len(lines), lines[0])
	}
	if !strings.HasPrefix(lines[2], "0.0200,") {
		t.Errorf("second reading %q, want time 0.0200 at 50 Hz", lines[2])
	}
	p := filepath.Join(t.TempDir(), "rec.csv")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := sensors.LoadDataset("csv:"+p+",window=16,hop=16", sensors.SplitAll, sensors.LoadOptions{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Shape() != (sensors.Shape{Channels: 6, Height: 1, Width: 16}) || ds.Len() < 20 {
		t.Fatalf("read back %v × %d", ds.Shape(), ds.Len())
	}
	first := strings.Split(lines[1], ",")
	dst := make([]float32, ds.Shape().Size())
	l := ds.Example(0, dst)
	if ds.Classes()[l] != first[7] || fmt.Sprint(dst[0]) != first[1] {
		t.Errorf("first window %v label %s; CSV row %q", dst[:6], ds.Classes()[l], lines[1])
	}
	for _, bad := range [][]string{
		{"sensors", "read", "synthetic-imu", "--csv", "--json"},
		{"sensors", "read", "synthetic-imu", "--csv", "--window", "8"},
		{"sensors", "read", "synthetic-imu", "--label", " x"},
	} {
		if code := runMain(context.Background(), bad, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
	code = runMain(context.Background(), []string{"sensors", "read", "mnist:", "--csv", "-n", "1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "MNIST holds images, not time series") {
		t.Errorf("mnist --csv: exit %d %q", code, errOut.String())
	}
}

// A recording played through a simulated chip and recorded again with
// --csv comes back as the chip measures it: quantised to its LSB, clipped
// at its range, with the labels of its label column.
func TestSensorsReadSimulatedChipReplay(t *testing.T) {
	var rec bytes.Buffer
	if code := runMain(context.Background(), []string{"sensors", "read", "synthetic-imu,pace=0,seed=7", "--csv", "-n", "300"}, &rec, io.Discard); code != 0 {
		t.Fatal("recording failed")
	}
	in := filepath.Join(t.TempDir(), "rec.csv")
	if err := os.WriteFile(in, rec.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	spec := "mpu6050:sim,replay=" + in + ",pace=0,range=8g,gyro=500"
	if code := runMain(context.Background(), []string{"sensors", "read", spec, "--csv", "-n", "1000"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "source ended after 300 samples") {
		t.Errorf("the replay did not end after its 300 readings: %q", errOut.String())
	}
	want := strings.Split(strings.TrimSpace(rec.String()), "\n")
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("%d lines with header %q, want %d with %q", len(got), got[0], len(want), want[0])
	}
	accelLSB, gyroLSB := 9.80665/4096, 1/65.5*math.Pi/180 // ±8 g, ±500 °/s
	for i := 1; i < len(want); i++ {
		w, g := strings.Split(want[i], ","), strings.Split(got[i], ",")
		for c := 1; c <= 6; c++ {
			wv, _ := strconv.ParseFloat(w[c], 64)
			gv, _ := strconv.ParseFloat(g[c], 64)
			lsb := accelLSB
			if c > 3 {
				lsb = gyroLSB
			}
			if math.Abs(wv-gv) > lsb/2+1e-6*math.Abs(wv) {
				t.Fatalf("reading %d column %d: played %v, the chip measured %v (LSB %v)", i, c, wv, gv, lsb)
			}
		}
		if w[7] != g[7] {
			t.Fatalf("reading %d: label %q, the recording says %q", i, g[7], w[7])
		}
	}
	// At ±2 g the chip clips what it cannot measure.
	out.Reset()
	if code := runMain(context.Background(), []string{"sensors", "read", "adxl345:sim,replay=" + in + ",pace=0,range=2g", "--csv", "-n", "1000"}, &out, io.Discard); code != 0 {
		t.Fatal("adxl345 replay failed")
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		for _, f := range strings.Split(line, ",")[1:4] {
			if v, _ := strconv.ParseFloat(f, 64); math.Abs(v) > 2*9.80665+0.05 {
				t.Fatalf("ADXL345 at ±2 g measured %v m/s²", v)
			}
		}
	}
}
