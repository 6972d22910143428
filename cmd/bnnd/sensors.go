package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bnnd/bnnd/sensors"
	"github.com/bnnd/bnnd/sensors/simbus"
)

func init() {
	register(&command{
		name:    "sensors",
		summary: "list I²C sensors (scan) or print samples from any source (read)",
		run:     runSensors,
	})
}

const sensorsUsage = `usage:
  bnnd sensors scan [--bus NAME]
  bnnd sensors read SPEC [-n N] [--json | --csv] [--raw] [--label NAME] [--window W] [--hop H]

SPEC is one of:
  mpu6050[:BUS][,addr=0x68][,rate=HZ][,range=2g|4g|8g|16g][,gyro=250][,fail=N]
  adxl345[:BUS][,addr=0x53][,rate=HZ][,range=2g|4g|8g|16g][,fail=N]
  csv:GLOB[,cols=a,b,c][,label=NAME][,bad=skip]
  mnist:DIR (mnist: = the copy in the GoMNIST module)
  synthetic-imu[,seed=N][,rate=HZ][,pace=0][,mounted=1]
  mpu6050:sim[,replay=GLOB][,pace=0|K][,loop=1][,teach=DURATION] and the
    options of mpu6050 (adxl345:sim the same): the real driver on an
    emulated chip that plays CSV recordings (as --csv writes them; a label
    column labels them) or, without replay=, synthetic-imu, whose
    activities teach= labels for that long
Time series also take window=N,hop=H.

scan also lists the simulated bus "sim": an emulated MPU-6050 at 0x68 and
ADXL345 at 0x53 on a board lying still.

read prints one line per window (label, per-channel mean±std after
standardisation), or with --json the full window. --csv records single raw
readings as CSV that csv: reads back, e.g.
  bnnd sensors read mpu6050 -n 3000 --csv --label walk > walk-01.csv`

func runSensors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("missing subcommand\n%s", sensorsUsage)
	}
	switch args[0] {
	case "scan":
		return runSensorsScan(args[1:], stdout, stderr)
	case "read":
		return runSensorsRead(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, sensorsUsage)
		return nil
	}
	return usagef("unknown subcommand %q\n%s", args[0], sensorsUsage)
}

func runSensorsScan(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sensors scan", stderr)
	bus := fs.String("bus", "", "only this I²C bus (name, alias or number)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	// The simulated bus is listed with the real ones, so its spec lines
	// show how to train without hardware.
	if err := simbus.Register(); err != nil {
		return err
	}
	buses, err := sensors.Scan(*bus)
	if err != nil {
		return err
	}
	if len(buses) == 0 {
		fmt.Fprintln(stdout, "no I²C buses found (is I²C enabled, e.g. dtparam=i2c_arm=on, and is /dev/i2c-* readable?)")
		return nil
	}
	for _, b := range buses {
		name := b.Name
		if len(b.Aliases) > 0 {
			name += " (" + strings.Join(b.Aliases, ", ") + ")"
		}
		fmt.Fprintf(stdout, "%s\n", name)
		if b.Err != nil {
			fmt.Fprintf(stdout, "  cannot open: %v\n", b.Err)
			continue
		}
		if len(b.Found) == 0 {
			fmt.Fprintln(stdout, "  no known sensor (probed 0x68, 0x69, 0x53, 0x1d)")
		}
		for _, f := range b.Found {
			fmt.Fprintf(stdout, "  %s", f)
			if f.Kind != "" {
				fmt.Fprintf(stdout, "  → spec %s:%s,addr=0x%02x", f.Kind, b.Name, f.Addr)
			}
			fmt.Fprintln(stdout)
		}
	}
	return nil
}

// sampleJSON is one line of 'bnnd sensors read --json'.
type sampleJSON struct {
	Index      int       `json:"i"`
	Time       time.Time `json:"time"`
	Label      *string   `json:"label"`
	LabelIndex int       `json:"label_index"`
	Shape      [3]int    `json:"shape_hwc"`
	Data       []float32 `json:"data"`
}

func runSensorsRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sensors read", stderr)
	n := fs.Int("n", 10, "number of samples (windows or images) to print")
	asJSON := fs.Bool("json", false, "print one JSON object per line with the full data")
	window := fs.Int("window", 0, "window length in samples for time series (0 = the spec's or 64)")
	hop := fs.Int("hop", 0, "hop between windows in samples (0 = the spec's or window/2)")
	raw := fs.Bool("raw", false, "do not standardise: print sensor units (m/s², rad/s)")
	asCSV := fs.Bool("csv", false, "print single raw readings as CSV rows (implies --raw --window 1 --hop 1)")
	label := fs.String("label", "", "label stamped on live sensor readings (\"\" = unlabelled)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) != 1 {
		return usagef("want exactly one SPEC, got %d arguments\n%s", len(pos), sensorsUsage)
	}
	if *n < 1 {
		return usagef("-n %d: want ≥ 1", *n)
	}
	if *window < 0 || *hop < 0 {
		return usagef("--window/--hop must be ≥ 0")
	}
	if *asCSV {
		if *asJSON {
			return usagef("--csv and --json exclude each other")
		}
		if (*window != 0 && *window != 1) || (*hop != 0 && *hop != 1) {
			return usagef("--csv records single readings: --window and --hop must be 1 if given")
		}
		*raw, *window, *hop = true, 1, 1
	}
	opts := sensors.LoadOptions{Window: *window, Hop: *hop, Raw: *raw}
	// Live sensors stamp the --label; simulated chips replaying a
	// recording stamp its label column.
	opts.Labels = sensors.NewGrowingLabelBox(nil, 0)
	if *label != "" {
		if _, err := opts.Labels.Set(*label, 0, time.Now()); err != nil {
			return usagef("--label: %v", err)
		}
	}
	src, err := sensors.Open(pos[0], opts)
	if err != nil {
		return err
	}
	defer src.Close()
	var csvOut *csv.Writer
	if *asCSV {
		csvOut = csv.NewWriter(stdout)
		defer csvOut.Flush()
		names := sensors.ChannelNamesOf(src)
		if names == nil {
			return fmt.Errorf("--csv: source %q has no named channels (it is not a time series)", pos[0])
		}
		csvOut.Write(append(append([]string{"time"}, names...), "label"))
	}
	if src.Health().State == "warming up" {
		fmt.Fprintln(stderr, "learning the standardisation from the first readings before the first window (--raw skips this)")
	}
	var start time.Time
	enc := json.NewEncoder(stdout)
	classes := src.Classes()
	for i := 0; i < *n; {
		s, err := src.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			fmt.Fprintf(stderr, "source ended after %d samples\n", i)
			return nil
		case errors.Is(err, sensors.ErrUnhealthy):
			fmt.Fprintf(stderr, "warning: %v\n", err) // it keeps retrying
			continue
		case ctx.Err() != nil:
			return nil // interrupted: a clean exit
		case err != nil:
			return err
		}
		if csvOut != nil {
			if start.IsZero() {
				start = s.Time
			}
			row := []string{strconv.FormatFloat(s.Time.Sub(start).Seconds(), 'f', 4, 64)}
			for _, v := range s.Data {
				row = append(row, strconv.FormatFloat(float64(v), 'g', 7, 32))
			}
			lab := s.LabelName
			if lab == "" {
				lab = "none" // what csv: reads as unlabelled
			}
			if err := csvOut.Write(append(row, lab)); err != nil {
				return err
			}
		} else if *asJSON {
			out := sampleJSON{Index: i, Time: s.Time.UTC(), LabelIndex: s.Label, Shape: [3]int{s.Shape.Height, s.Shape.Width, s.Shape.Channels}, Data: s.Data}
			if s.LabelName != "" {
				out.Label = &s.LabelName
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		} else {
			printSampleSummary(stdout, i, s, classes)
		}
		i++
	}
	if h := src.Health(); h.Errors > 0 || h.Missed > 0 || h.Dropped > 0 {
		fmt.Fprintf(stderr, "health: %d samples, %d failed reads, %d retries, %d late, %d missed, %d windows dropped\n",
			h.Samples, h.Errors, h.Retries, h.Late, h.Missed, h.Dropped)
	}
	return nil
}

// printSampleSummary prints one line per sample: label and, per channel,
// mean ± standard deviation over the window (after standardisation).
func printSampleSummary(w io.Writer, i int, s sensors.Sample, classes []string) {
	label := s.LabelName
	if label == "" {
		label = "-"
	}
	fmt.Fprintf(w, "%4d %s %-8s %dx%dx%d", i, s.Time.UTC().Format("15:04:05.000"), label, s.Shape.Height, s.Shape.Width, s.Shape.Channels)
	c := s.Shape.Channels
	if c > 8 {
		// Images: one summary over all pixels.
		c = 1
	}
	for ch := 0; ch < c; ch++ {
		var sum, sq float64
		cnt := 0
		for k := ch; k < len(s.Data); k += c {
			v := float64(s.Data[k])
			sum += v
			sq += v * v
			cnt++
		}
		mean := sum / float64(cnt)
		fmt.Fprintf(w, "  c%d %+.3f±%.3f", ch, mean, math.Sqrt(math.Max(0, sq/float64(cnt)-mean*mean)))
	}
	fmt.Fprintln(w)
}
