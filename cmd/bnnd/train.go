package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/bop"
	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/kernels"
	"github.com/bnnd/bnnd/sensors"
	"github.com/bnnd/bnnd/train"
)

func init() {
	register(&command{
		name:    "train",
		summary: "train a binarized network with Bop on a dataset and report accuracy and memory",
		run:     runTrain,
	})
}

// trainFlags are the flags train and calibrate share.
type trainFlags struct {
	data, test, model string
	batch, threads    int
	seed              uint64
	gamma, tau        float64
	window, hop       int
}

func (t *trainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.data, "data", "mnist:", "training data SOURCE (mnist:DIR, csv:GLOB, synthetic-imu); mnist: = the MNIST files in the GoMNIST module")
	fs.StringVar(&t.test, "test", "", "test data SOURCE (default: the --data source's own test split)")
	fs.StringVar(&t.model, "model", "mlp-s", "MODEL: mlp-s, mlp-l, cnn or mlp:H1,H2,…")
	fs.IntVar(&t.batch, "batch", 100, "examples per training step")
	fs.IntVar(&t.threads, "threads", runtime.NumCPU(), "worker threads")
	fs.Uint64Var(&t.seed, "seed", 1, "random seed (weights, shuffling, stochastic rounding)")
	fs.Float64Var(&t.gamma, "gamma", 1e-3, "Bop momentum rate γ")
	fs.Float64Var(&t.tau, "tau", 1e-6, "Bop flip threshold τ")
	fs.IntVar(&t.window, "window", 0, "window length in samples for time-series sources (0 = the source's default)")
	fs.IntVar(&t.hop, "hop", 0, "hop between windows in samples (0 = the source's default)")
}

func (t *trainFlags) check() error {
	switch {
	case t.batch < 2:
		return usagef("--batch %d: want ≥ 2", t.batch)
	case t.threads < 1:
		return usagef("--threads %d: want ≥ 1", t.threads)
	case !(t.gamma > 0 && t.gamma <= 1):
		return usagef("--gamma %g: want a value in (0, 1]", t.gamma)
	case !(t.tau >= 0):
		return usagef("--tau %g: want ≥ 0", t.tau)
	case t.window < 0 || t.hop < 0:
		return usagef("--window/--hop must be ≥ 0")
	}
	if _, err := bnn.ParseSpec(t.model); err != nil {
		return usageError{err}
	}
	return nil
}

// setup loads the training data and builds the network.
func (t *trainFlags) setup() (sensors.Dataset, *bnn.Network, error) {
	ds, err := sensors.LoadDataset(t.data, sensors.SplitTrain, sensors.LoadOptions{Window: t.window, Hop: t.hop})
	if err != nil {
		return nil, nil, fmt.Errorf("loading --data: %w", err)
	}
	if ds.Len() < t.batch {
		return nil, nil, fmt.Errorf("--data %s has %d examples, fewer than one batch of %d", t.data, ds.Len(), t.batch)
	}
	spec, _ := bnn.ParseSpec(t.model)
	s := ds.Shape()
	net, err := bnn.New(spec, bnn.Shape{Height: s.Height, Width: s.Width, Channels: s.Channels}, ds.Classes(),
		bnn.Options{Batch: t.batch, Threads: t.threads, Seed: t.seed})
	if err != nil {
		return nil, nil, err
	}
	if nm := sensors.NormalizerOf(ds); nm != nil {
		net.SetNormalizer(bnn.Normalizer{Mean: nm.Mean, Std: nm.Std})
	}
	return ds, net, nil
}

// loadTest opens the test set: the training source's own test split, or
// --test (its test split for MNIST, all of it otherwise), with the training
// classes and normaliser.
func (t *trainFlags) loadTest(trainDs sensors.Dataset) (sensors.Dataset, error) {
	spec, split := t.data, sensors.SplitTest
	if t.test != "" {
		spec, split = t.test, sensors.SplitAll
		if strings.HasPrefix(spec, "mnist") {
			split = sensors.SplitTest
		}
	}
	ds, err := sensors.LoadDataset(spec, split, sensors.LoadOptions{Window: t.window, Hop: t.hop,
		Classes: trainDs.Classes(), Norm: sensors.NormalizerOf(trainDs)})
	if err != nil {
		return nil, fmt.Errorf("loading test data: %w", err)
	}
	if ds.Shape() != trainDs.Shape() {
		return nil, fmt.Errorf("test data %s has shape %v, training data %v", spec, ds.Shape(), trainDs.Shape())
	}
	return ds, nil
}

// trainResult is the JSON object printed as the last line with --json.
type trainResult struct {
	Model           string         `json:"model"`
	Momentum        string         `json:"momentum"`
	Formats         []string       `json:"formats"`
	Epochs          int            `json:"epochs"`
	Batch           int            `json:"batch"`
	Threads         int            `json:"threads"`
	Seed            uint64         `json:"seed"`
	Gamma           float64        `json:"gamma"`
	Tau             float64        `json:"tau"`
	TestAcc         float64        `json:"test_acc"`
	TrainAcc        *float64       `json:"train_acc"`  // null: no training step after the selection's warm-up
	TrainLoss       *float64       `json:"train_loss"` // null: as TrainAcc
	TrainStateBytes int64          `json:"train_state_bytes"`
	TrainState      bnn.Memory     `json:"train_state"`
	MomentumBits    float64        `json:"momentum_bits"`
	LostRatio       float64        `json:"lost_ratio"`
	FlipRate        float64        `json:"flip_rate"`
	UnderflowRatio  float64        `json:"underflow_ratio"`
	FlipAgreement   *float64       `json:"flip_agreement,omitempty"` // Jaccard of encoded vs fp32-shadow flips on sampled weights
	Counters        []bop.Counters `json:"counters"`
	Steps           int64          `json:"steps"`
	SamplesPerS     float64        `json:"samples_per_s"`
	PeakRSSBytes    int64          `json:"peak_rss_bytes"`
	Seconds         float64        `json:"seconds"`
	Kernels         string         `json:"kernels"`
	// With --momentum auto: the selection's seconds (warm-up, pre-filter,
	// race) and what it decided.
	SelectionSeconds *float64       `json:"selection_seconds,omitempty"`
	Selection        *bop.Selection `json:"selection,omitempty"`
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("train", stderr)
	var tf trainFlags
	tf.register(fs)
	epochs := fs.Int("epochs", 2, "passes over the training data")
	momentum := fs.String("momentum", "fp32", "momentum encoding: fp32, fp16, bf16, eXmY[bZ][s] (comma list = one per layer), or auto")
	save := fs.String("save", "", "write the trained model to FILE")
	asJSON := fs.Bool("json", false, "print a JSON summary as the last line of stdout")
	decayEvery := fs.Int("decay-every", 0, "multiply γ by --decay-factor every N epochs (0 = no decay)")
	decayFactor := fs.Float64("decay-factor", 0.1, "γ decay factor")
	calSteps := fs.Int("calibrate-steps", 30, "with --momentum auto: warm-up steps traced for the pre-filter (after --calibrate-warmup)")
	calWarmup := fs.Int("calibrate-warmup", 300, "with --momentum auto: steps in the 8-bit warm-up format before the traced ones (momenta grow from zero with time constant 1/γ)")
	perLayer := fs.Bool("per-layer", false, "with --momentum auto: small layers keep the reference format and the largest may take one width less")
	var af autoFlags
	af.register(fs)
	agreeSamples := fs.Int("agreement-samples", 4096, "weights per layer tracked by an fp32 shadow Bop to measure flip agreement (0 = off)")
	statBatches := fs.Int("stat-batches", 20, "before each evaluation, batch-norm statistics from this many training batches with the current weights (0 = the running averages of training)")
	if err := parseFlags(fs, args, tf.check, af.check); err != nil {
		return err
	}
	if *epochs < 1 {
		return usagef("--epochs %d: want ≥ 1", *epochs)
	}
	if *calSteps < 1 || *calWarmup < 0 {
		return usagef("--calibrate-steps must be ≥ 1 and --calibrate-warmup ≥ 0")
	}
	if *decayEvery < 0 || !(*decayFactor > 0 && *decayFactor <= 1) {
		return usagef("--decay-every must be ≥ 0 and --decay-factor in (0, 1]")
	}
	if *statBatches < 0 {
		return usagef("--stat-batches %d: want ≥ 0", *statBatches)
	}
	auto := *momentum == "auto"
	var formats []fp.Format
	if !auto {
		for _, name := range strings.Split(*momentum, ",") {
			f, err := fp.ParseFormat(name)
			if err != nil {
				return usagef("--momentum: %v", err)
			}
			formats = append(formats, f)
		}
	} else if af.bestEffort {
		formats = []fp.Format{fp.MustParseFormat("fp32")} // the trace-only search warms up in fp32
	} else {
		formats = []fp.Format{bop.WarmupFormat(float32(tf.tau))}
	}
	if err := kernels.InitError(); err != nil {
		fmt.Fprintf(stderr, "bnnd train: kernels: %v\n", err)
	}

	start := time.Now()
	ds, net, err := tf.setup()
	if err != nil {
		return err
	}
	testDs, err := tf.loadTest(ds)
	if err != nil {
		return err
	}
	stepsPerEpoch := ds.Len() / tf.batch
	cfg := bop.Config{Gamma: float32(tf.gamma), Tau: float32(tf.tau), Formats: formats, Seed: tf.seed}
	if *decayEvery > 0 {
		cfg.Decay = bop.Decay{Every: int64(*decayEvery * stepsPerEpoch), Factor: *decayFactor}
	}
	opt, err := bop.New(net, cfg)
	if err != nil {
		return err
	}
	bat := train.NewBatcher(ds, net, tf.threads, tf.seed)

	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(*epochs*stepsPerEpoch,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(25),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}

	var trainTime time.Duration
	var samples int64
	var lastLoss, lastAcc float64
	measured := false // a training epoch ran after the selection
	var sel *bop.Selection
	var selSeconds float64
	if auto && af.bestEffort {
		// The trace-only search of earlier versions (fp32 warm-up, flip
		// and lost-update limits), kept for the table's fixed-width rows.
		t0 := time.Now()
		fs, err := calibrateFor(net, opt, func() (int, error) {
			m, err := bat.NextAcrossEpochs()
			samples += int64(m)
			return m, err
		}, *calWarmup, *calSteps, *perLayer, tf.seed, &af, stderr)
		trainTime += time.Since(t0)
		if err != nil {
			return err
		}
		if err := opt.Convert(fs); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "calibrated after %d fp32 steps: momentum %s\n", *calWarmup+*calSteps, formatList(fs))
		if bar != nil {
			_ = bar.Add(*calWarmup + *calSteps)
		}
	} else if auto {
		warmup, traced := fitWarmup(*calWarmup, *calSteps, *epochs*stepsPerEpoch, stderr)
		t0 := time.Now()
		s, warmTime, err := raceFor(ctx, net, opt, ds, bat, &tf, &af, warmup, traced, *perLayer, *statBatches, &samples, stderr)
		selSeconds = time.Since(t0).Seconds()
		trainTime += warmTime
		if err != nil {
			return err
		}
		sel = &s
		if bar != nil {
			_ = bar.Add(warmup + traced)
		}
	}
	if *agreeSamples > 0 {
		opt.TrackFlipAgreement(net, *agreeSamples, tf.seed)
	}
	epochLine := func(epoch int, loss, acc, testAcc float64) {
		c := train.SumCounters(opt.Totals())
		fmt.Fprintf(stderr, "epoch %d/%d: loss %.4f train acc %.4f test acc %.4f | flips %.3g/weight/step lost %.3f | %.0f samples/s\n",
			epoch, *epochs, loss, acc, testAcc, c.FlipRate(), c.LostRatio(), float64(samples)/trainTime.Seconds())
	}
	var testAcc float64
	evaluated := false
	for epoch := bat.Epoch(); epoch < *epochs; epoch = bat.Epoch() {
		st, err := train.RunEpoch(ctx, net, opt, bat, func(sofar train.EpochStats) {
			if bar != nil {
				bar.Describe(fmt.Sprintf("epoch %d loss %.3f acc %.3f %.0f/s", epoch+1, sofar.Loss(), sofar.Accuracy(),
					float64(samples+int64(sofar.Samples))/(trainTime+sofar.Time).Seconds()))
				_ = bar.Add(1)
			}
		})
		trainTime += st.Time
		samples += int64(st.Samples)
		if err != nil {
			return err
		}
		if st.Samples > 0 {
			lastLoss, lastAcc, measured = st.Loss(), st.Accuracy(), true
		}
		if err := train.RefreshStatistics(net, ds, tf.threads, *statBatches, tf.seed); err != nil {
			return err
		}
		testAcc, err = train.Evaluate(ctx, net, testDs, tf.threads)
		if err != nil {
			return err
		}
		evaluated = true
		if bar != nil {
			_ = bar.Clear()
		}
		epochLine(epoch+1, lastLoss, lastAcc, testAcc)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if !evaluated {
		// The warm-up took every epoch (it is capped to a quarter of the
		// run, so only a run of a handful of steps gets here): the network
		// is still tested, and the training figures say they were not measured.
		if err := train.RefreshStatistics(net, ds, tf.threads, *statBatches, tf.seed); err != nil {
			return err
		}
		if testAcc, err = train.Evaluate(ctx, net, testDs, tf.threads); err != nil {
			return err
		}
	}
	if *save != "" {
		if err := saveModel(*save, net); err != nil {
			return err
		}
	}

	mem := net.Memory()
	opt.AddMemory(&mem)
	total := train.SumCounters(opt.Totals())
	res := trainResult{
		Model: tf.model, Momentum: *momentum, Formats: formatStrings(opt.Formats()), Epochs: *epochs,
		Batch: tf.batch, Threads: tf.threads, Seed: tf.seed, Gamma: tf.gamma, Tau: tf.tau,
		TestAcc:         testAcc,
		TrainStateBytes: mem.Total(), TrainState: mem,
		MomentumBits: bop.MomentumBits(net, opt.Formats()),
		LostRatio:    total.LostRatio(), FlipRate: total.FlipRate(),
		UnderflowRatio: ratioOf(total.Underflow, total.Values),
		Counters:       opt.Totals(), Steps: opt.Steps(),
		SamplesPerS:  float64(samples) / trainTime.Seconds(),
		PeakRSSBytes: train.PeakRSS(), Seconds: time.Since(start).Seconds(), Kernels: kernels.Impl(),
		Selection: sel,
	}
	if measured {
		res.TrainAcc, res.TrainLoss = &lastAcc, &lastLoss
	}
	if sel != nil {
		res.SelectionSeconds = &selSeconds
	}
	if agree := opt.FlipAgreement(); agree != nil {
		var a bop.FlipAgreement
		for _, l := range agree {
			a.Add(l)
		}
		v := a.Agreement()
		res.FlipAgreement = &v
	}
	fmt.Fprintf(stdout, "model %s, momentum %s (%.2f bits): test accuracy %.4f\n", res.Model, strings.Join(res.Formats, ","), res.MomentumBits, res.TestAcc)
	if !measured {
		fmt.Fprintln(stdout, "train loss and accuracy: not measured (no training step after the warm-up)")
	}
	if sel != nil {
		fmt.Fprintf(stdout, "momentum selection: %.1f s, %d warm-up steps kept, %d race steps undone; %s\n", selSeconds, sel.Steps, sel.RaceSteps, sel.Reason)
	}
	fmt.Fprintf(stdout, "training state %d bytes:\n", res.TrainStateBytes)
	mem.WriteTable(stdout)
	fmt.Fprintf(stdout, "lost ratio %.4f, flip rate %.3g, underflow ratio %.4f, %.0f samples/s, peak RSS %.1f MiB, %.1f s\n",
		res.LostRatio, res.FlipRate, res.UnderflowRatio, res.SamplesPerS, float64(res.PeakRSSBytes)/(1<<20), res.Seconds)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	return nil
}

func ratioOf(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func formatStrings(fs []fp.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

func formatList(fs []fp.Format) string { return strings.Join(formatStrings(fs), ",") }

// saveModel writes the model atomically: temporary file, fsync, rename.
func saveModel(path string, net *bnn.Network) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := net.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving model to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving model: %w", err)
	}
	return nil
}
