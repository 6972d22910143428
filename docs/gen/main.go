// Command gen runs the paper-table comparison (issue 4) with bnnd train and
// writes docs/results.md (table, exact commands, machine) and
// docs/results.svg (accuracy and training-state memory against momentum
// bits, one line per model). Results are cached in docs/results.json so the
// models can be run separately (-models) and the table regenerated from the
// cache (-reuse).
//
// It is a Go module of its own so that its plotting library is not among
// the daemon's dependencies. From the repository's root:
//
//	make paper-table GENFLAGS='-models mlp-s,mlp-l,cnn'
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// variant is one row per model: a label and the bnnd train flags that make it.
type variant struct {
	Label string
	Args  []string
}

var variants = []variant{
	{"fp32", []string{"--momentum", "fp32"}},
	{"fp16", []string{"--momentum", "fp16"}},
	{"bf16", []string{"--momentum", "bf16"}},
	{"e4m3 (default bias)", []string{"--momentum", "e4m3"}},
	{"search (auto)", []string{"--momentum", "auto"}},
	{"auto per layer", []string{"--momentum", "auto", "--per-layer"}},
	{"best 8-bit stochastic", []string{"--momentum", "auto", "--min-bits", "8", "--max-bits", "8", "--stochastic-only", "--best-effort"}},
	{"best 6-bit stochastic", []string{"--momentum", "auto", "--min-bits", "6", "--max-bits", "6", "--stochastic-only", "--best-effort"}},
	{"best 5-bit stochastic", []string{"--momentum", "auto", "--min-bits", "5", "--max-bits", "5", "--stochastic-only", "--best-effort"}},
	{"best 6-bit stochastic, layers < 65536 weights fp32", []string{"--momentum", "auto", "--min-bits", "6", "--max-bits", "6", "--stochastic-only", "--best-effort", "--fp32-below", "65536"}},
}

// firstGeneration and firstMachine are when and where the cached rows
// without a Measured date ran.
const (
	firstGeneration = "2026-11-29"
	firstMachine    = "AMD EPYC, 2 logical cores, linux/amd64, go1.26.8"
)

// run is one finished bnnd train run (the fields of its JSON line we use).
type run struct {
	Model           string   `json:"model"`
	Label           string   `json:"label"`
	Command         string   `json:"command"`
	Formats         []string `json:"formats"`
	Epochs          int      `json:"epochs"`
	TestAcc         float64  `json:"test_acc"`
	TrainStateBytes int64    `json:"train_state_bytes"`
	MomentumBits    float64  `json:"momentum_bits"`
	LostRatio       float64  `json:"lost_ratio"`
	FlipRate        float64  `json:"flip_rate"`
	FlipAgreement   *float64 `json:"flip_agreement"`
	SamplesPerS     float64  `json:"samples_per_s"`
	PeakRSSBytes    int64    `json:"peak_rss_bytes"`
	Seconds         float64  `json:"seconds"`
	// SelectionSeconds is what --momentum auto spent choosing (bnnd train
	// reports it since the race); Measured is the day of the run (rows
	// cached before it was recorded were measured on the table's first
	// generation).
	SelectionSeconds *float64 `json:"selection_seconds,omitempty"`
	Measured         string   `json:"measured,omitempty"`
	Machine          string   `json:"machine,omitempty"`
}

func main() {
	bnnd := flag.String("bnnd", "bin/bnnd", "the bnnd binary")
	models := flag.String("models", "mlp-s,mlp-l,cnn", "models to run (comma list)")
	epochsFlag := flag.String("epochs", "mlp-s=2,mlp-l=4,cnn=3", "epochs per model")
	batchFlag := flag.String("batch", "mlp-s=100,mlp-l=100,cnn=50", "batch size per model")
	tauFlag := flag.String("tau", "mlp-s=1e-6,mlp-l=1e-7,cnn=1e-7", "Bop threshold per model (replaces {tau} in -args)")
	extra := flag.String("args", "--gamma 1e-3 --tau {tau} --seed 1 --threads 2", "flags passed to every run")
	only := flag.String("only", "", "run only the variants whose label contains one of these (comma list)")
	dir := flag.String("out", "docs", "output folder")
	reuse := flag.Bool("reuse", true, "keep cached results of runs with the same command")
	speedModels := flag.String("speed", "mlp-l", "models whose speed is measured in interleaved one-epoch runs (comma list)")
	speedRounds := flag.Int("speed-rounds", 2, "rounds of the interleaved speed runs (each round runs every encoding once)")
	flag.Parse()
	epochs, err := perModel(*epochsFlag)
	if err != nil {
		log.Fatal(err)
	}
	batches, err := perModel(*batchFlag)
	if err != nil {
		log.Fatal(err)
	}
	taus := map[string]string{}
	for _, kv := range strings.Split(*tauFlag, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			taus[k] = v
		}
	}
	cachePath := filepath.Join(*dir, "results.json")
	var cache []run
	readJSON(cachePath, &cache)
	for _, model := range commaList(*models) {
		for _, v := range variants {
			if *only != "" && !slices.ContainsFunc(strings.Split(*only, ","), func(o string) bool { return strings.Contains(v.Label, o) }) {
				continue
			}
			args := []string{"train", "--model", model, "--epochs", fmt.Sprint(epochs[model]), "--batch", fmt.Sprint(batches[model])}
			args = append(args, strings.Fields(strings.ReplaceAll(*extra, "{tau}", taus[model]))...)
			args = append(args, v.Args...)
			args = append(args, "--json")
			cmd := "bnnd " + strings.Join(args, " ")
			if i := slices.IndexFunc(cache, func(r run) bool { return r.Command == cmd }); i >= 0 && *reuse {
				log.Printf("cached: %s", cmd)
				continue
			}
			log.Printf("running: %s", cmd)
			r, err := train(*bnnd, args)
			if err != nil {
				log.Printf("%s: %v", cmd, err)
				continue
			}
			r.Model, r.Label, r.Command = model, v.Label, cmd
			r.Measured, r.Machine = today(), machine()
			cache = slices.DeleteFunc(cache, func(o run) bool { return o.Model == model && o.Label == v.Label })
			cache = append(cache, r)
			if err := writeJSON(cachePath, cache); err != nil {
				log.Fatal(err)
			}
			log.Printf("%s %s: test acc %.4f, %d bytes, %.0f samples/s", model, v.Label, r.TestAcc, r.TrainStateBytes, r.SamplesPerS)
		}
	}
	speedPath := filepath.Join(*dir, "speed.json")
	var speeds []speedRun
	readJSON(speedPath, &speeds)
	for _, model := range commaList(*speedModels) {
		base := []string{"train", "--model", model, "--epochs", "1", "--batch", fmt.Sprint(batches[model])}
		base = append(base, strings.Fields(strings.ReplaceAll(*extra, "{tau}", taus[model]))...)
		base = append(base, "--agreement-samples", "0")
		for round := 1; round <= *speedRounds; round++ {
			for _, momentum := range speedEncodings(cache, model) {
				args := append(slices.Clone(base), "--momentum", momentum, "--json")
				cmd := "bnnd " + strings.Join(args, " ")
				if slices.ContainsFunc(speeds, func(r speedRun) bool { return r.Command == cmd && r.Round == round }) && *reuse {
					continue
				}
				log.Printf("speed round %d: %s", round, cmd)
				r, err := train(*bnnd, args)
				if err != nil {
					log.Printf("%s: %v", cmd, err)
					continue
				}
				speeds = slices.DeleteFunc(speeds, func(o speedRun) bool { return o.Command == cmd && o.Round == round })
				speeds = append(speeds, speedRun{Model: model, Momentum: momentum, Round: round, Command: cmd, SamplesPerS: r.SamplesPerS,
					Measured: today(), Machine: machine()})
				if err := writeJSON(speedPath, speeds); err != nil {
					log.Fatal(err)
				}
			}
		}
	}
	if err := writeTable(filepath.Join(*dir, "results.md"), cache, speeds); err != nil {
		log.Fatal(err)
	}
	if err := writeChart(filepath.Join(*dir, "results.svg"), cache); err != nil {
		log.Fatal(err)
	}
}

// speedRun is one run of the interleaved speed measurement.
type speedRun struct {
	Model       string  `json:"model"`
	Momentum    string  `json:"momentum"`
	Round       int     `json:"round"`
	Command     string  `json:"command"`
	SamplesPerS float64 `json:"samples_per_s"`
	Measured    string  `json:"measured"`
	Machine     string  `json:"machine"`
}

// speedEncodings are fp32 and the encodings the best 8-, 6- and 5-bit rows
// of model chose, fixed: the speed runs time training, not the choice.
func speedEncodings(runs []run, model string) []string {
	out := []string{"fp32"}
	for _, label := range []string{"best 8-bit stochastic", "best 6-bit stochastic", "best 5-bit stochastic"} {
		if i := slices.IndexFunc(runs, func(r run) bool { return r.Model == model && r.Label == label }); i >= 0 {
			out = append(out, strings.Join(runs[i].Formats, ","))
		}
	}
	return out
}

func perModel(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		var n int
		if _, err := fmt.Sscan(v, &n); !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("bad per-model value %q (want model=N)", kv)
		}
		out[k] = n
	}
	return out, nil
}

func train(bnnd string, args []string) (run, error) {
	c := exec.Command(bnnd, args...)
	var out bytes.Buffer
	c.Stdout = &out
	c.Stderr = os.Stderr
	if err := c.Run(); err != nil {
		return run{}, err
	}
	var last string
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			last = t
		}
	}
	var r run
	if err := json.Unmarshal([]byte(last), &r); err != nil {
		return run{}, fmt.Errorf("last line is not the JSON summary: %w", err)
	}
	return r, nil
}

// commaList is the items of a comma-separated list, empty ones left out.
func commaList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
}

// readJSON reads into v what writeJSON wrote to path, if the file exists.
func readJSON(path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if err := json.Unmarshal(b, v); err != nil {
		log.Fatalf("%s: %v", path, err)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func modelsOf(runs []run) []string {
	var ms []string
	for _, r := range runs {
		if !slices.Contains(ms, r.Model) {
			ms = append(ms, r.Model)
		}
	}
	order := map[string]int{"mlp-s": 0, "mlp-l": 1, "cnn": 2}
	slices.SortStableFunc(ms, func(a, b string) int { return order[a] - order[b] })
	return ms
}

func reference(runs []run, model string) (run, bool) {
	for _, r := range runs {
		if r.Model == model && r.Label == "fp32" {
			return r, true
		}
	}
	return run{}, false
}

// today is the day a run is measured or the table generated (UTC).
func today() string { return time.Now().UTC().Format("2006-01-02") }

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d logical cores, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func writeTable(path string, runs []run, speeds []speedRun) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Bop momenta in compact encodings: MNIST results\n\n")
	fmt.Fprintf(&b, "Generated by `make paper-table` (`docs/gen`) on %s, from the runs cached in results.json", today())
	common := mostCommonMeasurement(runs)
	if common != "" {
		fmt.Fprintf(&b, ":\nevery row was measured on %s, one run after another, unless a note below the table says otherwise.\n", common)
	} else {
		fmt.Fprintf(&b, ".\n")
	}
	fmt.Fprintf(&b, "Training state = every buffer training allocates (binary weights, momenta, batch-norm parameters and Adam state,\n")
	fmt.Fprintf(&b, "activations kept for backward, gradient tiles, other buffers, input batch), counted from the allocations.\n")
	fmt.Fprintf(&b, "Reduction = training state with fp32 momenta ÷ this run's. Flip agreement = |flips of both| ÷ |flips of either|\n")
	fmt.Fprintf(&b, "between the encoded momenta and an fp32 shadow Bop fed the same gradients, on 4096 sampled weights per layer.\n")
	fmt.Fprintf(&b, "Test accuracy is measured after each run with batch-norm statistics re-estimated on 20 training batches\n")
	fmt.Fprintf(&b, "(`--stat-batches`, the default). The table's samples/s include that shadow Bop and, for auto rows, the choice;\n")
	fmt.Fprintf(&b, "the speed of training itself is in the interleaved runs below a model's table. The machine may be shared\n")
	fmt.Fprintf(&b, "with other jobs, so samples/s are lower bounds.\n\n")
	for _, model := range modelsOf(runs) {
		ref, hasRef := reference(runs, model)
		fmt.Fprintf(&b, "## %s\n\n", model)
		fmt.Fprintf(&b, "| momentum | encoding(s) | bits | test acc | Δ vs fp32 | training state | reduction | lost ratio | flip agreement | flips/weight/step | samples/s | peak RSS |\n")
		fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		var elsewhen, choices []string
		for _, v := range variants {
			i := slices.IndexFunc(runs, func(r run) bool { return r.Model == model && r.Label == v.Label })
			if i < 0 {
				continue
			}
			r := runs[i]
			delta, red := "", ""
			if hasRef {
				delta = fmt.Sprintf("%+.2f", 100*(r.TestAcc-ref.TestAcc))
				red = fmt.Sprintf("%.2f×", float64(ref.TrainStateBytes)/float64(r.TrainStateBytes))
			}
			agree := "–"
			if r.FlipAgreement != nil {
				agree = fmt.Sprintf("%.3f", *r.FlipAgreement)
			}
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f%% | %s | %.2f MiB | %s | %.3f | %s | %.2g | %.0f | %.1f MiB |\n",
				v.Label, uniq(r.Formats), r.MomentumBits, 100*r.TestAcc, delta, float64(r.TrainStateBytes)/(1<<20), red,
				r.LostRatio, agree, r.FlipRate, r.SamplesPerS, float64(r.PeakRSSBytes)/(1<<20))
			if w := measuredOn(r); w != common {
				elsewhen = append(elsewhen, fmt.Sprintf("%s on %s", v.Label, w))
			}
			if sel := r.SelectionSeconds; sel != nil {
				choices = append(choices, fmt.Sprintf("%s %.0f s of its %.0f s", v.Label, *sel, r.Seconds))
			}
		}
		if len(elsewhen) > 0 {
			fmt.Fprintf(&b, "\nMeasured at another time: %s.\n", strings.Join(elsewhen, "; "))
		}
		if len(choices) > 0 {
			fmt.Fprintf(&b, "\nThe choice of encoding took: %s.\n", strings.Join(choices, "; "))
		}
		writeSpeeds(&b, model, speeds)
		fmt.Fprintf(&b, "\nCommands:\n\n```\n")
		for _, v := range variants {
			if i := slices.IndexFunc(runs, func(r run) bool { return r.Model == model && r.Label == v.Label }); i >= 0 {
				fmt.Fprintln(&b, runs[i].Command)
			}
		}
		fmt.Fprintf(&b, "```\n\n")
	}
	var others []run
	for _, r := range runs {
		if !slices.ContainsFunc(variants, func(v variant) bool { return v.Label == r.Label }) {
			others = append(others, r)
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(&b, "## Longer runs (accuracy targets)\n\n")
		fmt.Fprintf(&b, "| model | run | encoding(s) | epochs | test acc | training state | samples/s | peak RSS | command |\n")
		fmt.Fprintf(&b, "|---|---|---|---:|---:|---:|---:|---:|---|\n")
		for _, r := range others {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %.2f%% | %.2f MiB | %.0f | %.1f MiB | `%s` |\n", r.Model, r.Label, uniq(r.Formats),
				r.Epochs, 100*r.TestAcc, float64(r.TrainStateBytes)/(1<<20), r.SamplesPerS, float64(r.PeakRSSBytes)/(1<<20), r.Command)
		}
		fmt.Fprintf(&b, "\n")
	}
	fmt.Fprintf(&b, "![accuracy and training state against momentum bits](results.svg)\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// measuredOn is when and where a run was measured.
func measuredOn(r run) string {
	if r.Measured == "" {
		return firstGeneration + " on " + firstMachine
	}
	return r.Measured + " on " + r.Machine
}

// mostCommonMeasurement is the day and machine of most table rows.
func mostCommonMeasurement(runs []run) string {
	count := map[string]int{}
	best := ""
	for _, r := range runs {
		if !slices.ContainsFunc(variants, func(v variant) bool { return v.Label == r.Label }) {
			continue
		}
		w := measuredOn(r)
		count[w]++
		if count[w] > count[best] {
			best = w
		}
	}
	return best
}

// writeSpeeds writes the interleaved speed runs of model: samples/s per
// round, the median, and the ratio to fp32's median.
func writeSpeeds(b *strings.Builder, model string, speeds []speedRun) {
	var encodings []string
	per := map[string][]float64{}
	var cmd string
	var when string
	rounds := 0
	for _, s := range speeds {
		if s.Model != model {
			continue
		}
		if !slices.Contains(encodings, s.Momentum) {
			encodings = append(encodings, s.Momentum)
		}
		per[s.Momentum] = append(per[s.Momentum], s.SamplesPerS)
		rounds = max(rounds, s.Round)
		if s.Momentum == "fp32" {
			cmd, when = s.Command, s.Measured+" on "+s.Machine
		}
	}
	if len(encodings) == 0 {
		return
	}
	median := func(xs []float64) float64 {
		xs = slices.Sorted(slices.Values(xs))
		n := len(xs)
		if n%2 == 1 {
			return xs[n/2]
		}
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	ref := median(per["fp32"])
	fmt.Fprintf(b, "\nSpeed of training, interleaved: %d rounds, each running every encoding once for one epoch without the shadow Bop, on %s\n", rounds, when)
	fmt.Fprintf(b, "(`%s`, with each encoding fixed):\n\n", cmd)
	fmt.Fprintf(b, "| momentum | samples/s per round | median | ÷ fp32 |\n|---|---|---:|---:|\n")
	for _, e := range encodings {
		var each []string
		for _, v := range per[e] {
			each = append(each, fmt.Sprintf("%.0f", v))
		}
		m := median(per[e])
		fmt.Fprintf(b, "| %s | %s | %.0f | %.2f |\n", e, strings.Join(each, ", "), m, m/ref)
	}
}

func uniq(fs []string) string {
	var u []string
	for _, f := range fs {
		if !slices.Contains(u, f) {
			u = append(u, f)
		}
	}
	return strings.Join(u, ", ")
}

var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
}

func writeChart(path string, runs []run) error {
	acc := plot.New()
	acc.Title.Text = "MNIST test accuracy"
	acc.X.Label.Text = "momentum bits"
	acc.Y.Label.Text = "accuracy (%)"
	mem := plot.New()
	mem.Title.Text = "training state"
	mem.X.Label.Text = "momentum bits"
	mem.Y.Label.Text = "MiB"
	for i, model := range modelsOf(runs) {
		var pa, pm plotter.XYs
		for _, r := range runs {
			if r.Model != model || !slices.ContainsFunc(variants, func(v variant) bool { return v.Label == r.Label }) {
				continue
			}
			pa = append(pa, plotter.XY{X: r.MomentumBits, Y: 100 * r.TestAcc})
			pm = append(pm, plotter.XY{X: r.MomentumBits, Y: float64(r.TrainStateBytes) / (1 << 20)})
		}
		byX := func(a, b plotter.XY) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		}
		slices.SortFunc(pa, byX)
		slices.SortFunc(pm, byX)
		for _, p := range []struct {
			plt *plot.Plot
			xys plotter.XYs
		}{{acc, pa}, {mem, pm}} {
			l, s, err := plotter.NewLinePoints(p.xys)
			if err != nil {
				return err
			}
			l.Color = palette[i%len(palette)]
			s.Color = l.Color
			s.Shape = draw.CircleGlyph{}
			p.plt.Add(l, s)
			p.plt.Legend.Add(model, l, s)
		}
	}
	acc.Legend.Top = false
	mem.Legend.Top = true
	const w, h = 12 * vg.Centimeter, 9 * vg.Centimeter
	c := vgsvg.New(2*w, h)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{{acc, mem}}, tiles, dc)
	acc.Draw(canvases[0][0])
	mem.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Close())
}
