package daemon

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
	"github.com/bnnd/bnnd/sensors"
)

// Classes come from one of four places, in this order: the checkpoint (a
// resumed run keeps its classes), model.init, model.classes, and for live
// sensors the labels a person gives; a source whose data carry labels
// brings its own. The label box holds the list; the network follows it,
// taking a reserved output unit for each class a label creates.

// netOptions are the network's buffer sizes and seed, with room for
// outputs classes (0: one unit per class).
func (r *runner) netOptions(outputs int) bnn.Options {
	t := &r.cfg.Training
	threads := t.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	return bnn.Options{Batch: t.Batch, Threads: threads, Seed: uint64(t.Seed), Outputs: outputs}
}

// readInitModel reads model.init, a file written by 'bnnd train --save'.
func readInitModel(path string, opts bnn.Options) (*bnn.Network, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model.init: %w", err)
	}
	defer f.Close()
	net, err := bnn.ReadModel(f, opts)
	if err != nil {
		return nil, fmt.Errorf("model.init %s: %w (want a model file written by 'bnnd train --save')", path, err)
	}
	return net, nil
}

// startingClasses returns the classes the run starts with and the most it
// may have, checking that model.classes agrees with a checkpoint or
// model.init.
func (r *runner) startingClasses(ckPath string, meta *checkpoint.Meta, initNet *bnn.Network) (known []string, outputs int, err error) {
	configured := r.cfg.Model.Classes
	switch {
	case meta != nil:
		known, outputs = meta.Classes, max(meta.Outputs, len(meta.Classes))
	case initNet != nil:
		known, outputs = initNet.Classes(), initNet.Outputs()
	case len(configured) > 0:
		return slices.Clone(configured), len(configured), nil
	default:
		return nil, r.cfg.Model.MaxClasses, nil
	}
	if len(configured) > 0 && !slices.Equal(configured, known) {
		return nil, 0, classesMismatch(ckPath, meta, initNet, r.cfg, configured)
	}
	return known, outputs, nil
}

// checkInit checks that model.init fits the source and model.spec.
func (r *runner) checkInit(initNet *bnn.Network, in bnn.Shape) error {
	if initNet == nil {
		return nil
	}
	cfg := r.cfg
	if got := initNet.InputShape(); got != in {
		return fmt.Errorf("model.init %s takes input %v, but source %q gives %v: record its training data with the same window and sensor",
			cfg.Model.Init, got, cfg.Source.Spec, in)
	}
	if initNet.Spec().Name != cfg.Model.Spec {
		return fmt.Errorf("model.init %s holds model %s, but model.spec is %s: set model.spec to %s",
			cfg.Model.Init, initNet.Spec().Name, cfg.Model.Spec, initNet.Spec().Name)
	}
	r.log.Info("starting from model.init", "file", cfg.Model.Init, "classes", initNet.Classes())
	return nil
}

// classesMismatch is the error for classes that differ from those a
// checkpoint or model.init was trained with; it says how to go on.
func classesMismatch(ckPath string, meta *checkpoint.Meta, initNet *bnn.Network, cfg *config.Config, want []string) error {
	if meta != nil {
		return fmt.Errorf("checkpoint %s was trained with classes %q, but the configuration asks for %q: "+
			"remove model.classes to go on with the checkpoint's classes, or use another checkpoint.dir "+
			"(or move the checkpoint away) to start a new model", ckPath, meta.Classes, want)
	}
	return fmt.Errorf("model.init %s was trained with classes %q, but the configuration asks for %q: "+
		"remove model.classes to take the model's classes, or train a model on these classes", cfg.Model.Init, initNet.Classes(), want)
}

// labelChanged follows the label box: new classes join the network and
// are announced, and the label topic shows the current label.
func (r *runner) labelChanged() error {
	classes := r.labels.Classes()
	added := classes[len(r.net.Classes()):]
	for _, name := range added {
		i, err := r.net.AddClass(name)
		if err != nil {
			return fmt.Errorf("label %q: %w", name, err)
		}
		r.log.Info("new class", "class", name, "index", i, "classes", classes)
	}
	if len(added) > 0 && r.mq != nil {
		if err := r.mq.SetClasses(classes); err != nil {
			r.log.Warn("mqtt: announcing the classes", "err", err)
		}
	}
	label, _ := r.labels.Current(time.Now())
	if label != r.label {
		r.label = label
		r.log.Info("label", "label", labelOrNone(label.Name), "until", label.Until)
		if r.mq != nil {
			r.mq.SetLabel(label.Name)
		}
	}
	return nil
}

func labelOrNone(name string) string {
	if name == "" {
		return sensors.LabelNone
	}
	return name
}

// setLabel is the label command: what a person says the sensor sees from
// now on, for hold (0: until the next label).
func (r *runner) setLabel(name string, hold time.Duration) (any, error) {
	if sensors.LabelBoxOf(r.src) == nil {
		return nil, errors.New("the source's data carry their labels; labels are for live sensors")
	}
	l, err := r.labels.Set(name, hold, time.Now())
	if err != nil {
		return nil, err
	}
	if err := r.labelChanged(); err != nil {
		return nil, err
	}
	res := map[string]any{"label": labelOrNone(l.Name), "classes": r.net.Classes()}
	if l.Index >= 0 {
		res["class_index"] = l.Index
	}
	if l.NewClass {
		res["new_class"] = true
	}
	if !l.Until.IsZero() {
		res["until"] = l.Until.UTC().Format(time.RFC3339Nano)
	}
	return res, nil
}
