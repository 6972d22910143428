package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/sensors"
	"github.com/bnnd/bnnd/train"
)

func init() {
	register(&command{
		name:    "eval",
		summary: "accuracy, per-class recall and confusion matrix of a model file or checkpoint on a data source",
		run:     runEval,
	})
}

const evalUsage = `usage:
  bnnd eval MODEL_OR_CHECKPOINT --data SOURCE [--hop H] [--json]

MODEL_OR_CHECKPOINT is a model file written by 'bnnd train --save' or a
checkpoint of 'bnnd run' (its model, normaliser and classes are used).
SOURCE is a data spec as for 'bnnd train --data' (the test split of MNIST,
all of a CSV recording); its labels must be among the model's classes.`

// evalResult is what 'bnnd eval --json' prints.
type evalResult struct {
	Model     string              `json:"model"`
	Data      string              `json:"data"`
	Examples  int                 `json:"examples"`
	Accuracy  float64             `json:"accuracy"`
	Classes   []string            `json:"classes"`
	Recall    map[string]*float64 `json:"recall"` // null for a class without examples
	Confusion [][]int             `json:"confusion"`
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", stderr)
	data := fs.String("data", "", "data source `spec`, e.g. mnist: or csv:rec/*.csv")
	hop := fs.Int("hop", 0, "hop between windows of time series (0 = half the model's window)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL_OR_CHECKPOINT, got %d arguments\n%s", len(pos), evalUsage)
	}
	if *data == "" {
		return usagef("--data is required\n%s", evalUsage)
	}
	threads := runtime.NumCPU()
	net, err := loadModelOrCheckpoint(pos[0], bnn.Options{Batch: 100, Threads: threads})
	if err != nil {
		return err
	}
	in := net.InputShape()
	opts := sensors.LoadOptions{Classes: net.Classes(), Hop: *hop}
	if in.Height == 1 {
		opts.Window = in.Width // a time series: the model's window
	}
	if n := net.Normalizer(); len(n.Mean) > 0 {
		opts.Norm = &sensors.Normalizer{Mean: n.Mean, Std: n.Std}
	}
	split := sensors.SplitAll
	if strings.HasPrefix(*data, "mnist") {
		split = sensors.SplitTest
	}
	ds, err := sensors.LoadDataset(*data, split, opts)
	if err != nil {
		return fmt.Errorf("loading --data %s for model %s: %w", *data, pos[0], err)
	}
	cm, err := train.Confusion(ctx, net, ds, threads)
	if err != nil {
		return fmt.Errorf("evaluating %s on %s: %w", pos[0], *data, err)
	}
	res := evalResult{Model: pos[0], Data: *data, Examples: cm.Total(), Accuracy: cm.Accuracy(), Classes: cm.Classes,
		Recall: map[string]*float64{}, Confusion: cm.Counts}
	for i, r := range cm.Recall() {
		if !math.IsNaN(r) {
			res.Recall[cm.Classes[i]] = &r
		} else {
			res.Recall[cm.Classes[i]] = nil
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "%s on %s: accuracy %.4f over %d examples\n\n", res.Model, res.Data, res.Accuracy, res.Examples)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "true \\ predicted\t")
	for _, c := range cm.Classes {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprint(tw, "recall\t\n")
	for i, row := range cm.Counts {
		fmt.Fprintf(tw, "%s\t", cm.Classes[i])
		for _, k := range row {
			fmt.Fprintf(tw, "%d\t", k)
		}
		if r := res.Recall[cm.Classes[i]]; r != nil {
			fmt.Fprintf(tw, "%.3f\t\n", *r)
		} else {
			fmt.Fprint(tw, "-\t\n")
		}
	}
	return tw.Flush()
}

// loadModelOrCheckpoint reads a model file, or the model of a checkpoint
// (with the normaliser it was trained with).
func loadModelOrCheckpoint(path string, opts bnn.Options) (*bnn.Network, error) {
	f, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(f, []byte(bnn.ModelMagic)) {
		net, err := bnn.ReadModel(bytes.NewReader(f), opts)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		return net, nil
	}
	ck, err := checkpoint.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a model file nor a valid checkpoint: %w", path, err)
	}
	model, ok := ck.Section("model")
	if !ok {
		return nil, fmt.Errorf("checkpoint %s has no model section", path)
	}
	net, err := bnn.ReadModel(bytes.NewReader(model), opts)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: model: %w", path, err)
	}
	if b, ok := ck.Section("normalizer"); ok {
		var n sensors.Normalizer
		if err := n.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("checkpoint %s: normalizer: %w", path, err)
		}
		net.SetNormalizer(bnn.Normalizer{Mean: n.Mean, Std: n.Std})
	}
	return net, nil
}
