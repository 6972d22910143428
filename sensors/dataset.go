package sensors

import (
	"fmt"
	"strings"
)

// Dataset is a finite, replayable set of labelled examples, stored compactly.
// Implementations are safe for concurrent Example calls.
type Dataset interface {
	Len() int
	Shape() Shape      // per-example shape
	Classes() []string // class names; label i is Classes()[i]
	// Example writes example i as float32 into dst (len Shape().Size(),
	// NHWC) and returns its label index (-1 = unlabelled). MNIST pixels are
	// scaled by 1/255 into [0,1]; time-series windows are standardised per
	// channel (see Normalizer).
	Example(i int, dst []float32) int
}

// LoadOptions tune how a dataset or source is built.
type LoadOptions struct {
	// Window and Hop are the window length and the step between window
	// starts, in samples, for time series (0 = from the spec, else the
	// defaults 64 and 32).
	Window, Hop int
	// Classes maps label names to indices: label Classes[i] gets index i.
	// A test set passes the training classes here; a label not among them
	// is an error naming it. Nil = the source's own classes (for CSV, the
	// sorted label names found).
	Classes []string
	// Norm standardises time-series channels. Nil = learn it from the
	// source's train part (also for SplitTest, so a test split of the same
	// source is scaled like its train split; for SplitAll, from all data).
	Norm *Normalizer
	// Raw leaves time series unstandardised (sensor units: m/s², rad/s,
	// or the CSV's own); Norm must then be nil. For recording and display.
	Raw bool
	// Labels is the current-label box a live source stamps on each window
	// (Open only; nil = live windows are unlabelled).
	Labels *LabelBox

	// clock is a live source's time; nil is the wall clock (tests set it).
	clock clock
}

// LoadDataset opens a dataset spec (see the package documentation):
// "mnist:DIR", "csv:GLOB[,opts]", "synthetic-imu[,seed=N,n=N]", with
// windowing options in the spec or in opt. split selects the source's own
// train/test part: the MNIST train or t10k files; for time series the chunk
// rule in the package documentation.
func LoadDataset(specStr string, split Split, opt LoadOptions) (Dataset, error) {
	if split < SplitAll || split > SplitTest {
		return nil, fmt.Errorf("sensors: spec %q: invalid split %d", specStr, int(split))
	}
	s, err := parseSpec(specStr)
	if err != nil {
		return nil, err
	}
	switch s.kind {
	case "mnist":
		return loadMNISTSpec(s, split, opt)
	case "synthetic-imu":
		return loadSyntheticSpec(s, split, opt)
	case "csv":
		return loadCSVSpec(s, split, opt)
	case "mpu6050", "adxl345":
		return nil, s.errorf("%s is a live sensor; record it to CSV (bnnd sensors read) to train offline, or use it as a daemon source", s.kind)
	}
	return nil, s.errorf("unknown source kind %q (want %s)", s.kind, strings.Join(knownKinds, ", "))
}

// fixedNorm is the normalizer the options impose for channels: identity
// for Raw, Norm if set (checked), nil = learn one.
func (o LoadOptions) fixedNorm(channels int) (*Normalizer, error) {
	if o.Raw {
		if o.Norm != nil {
			return nil, fmt.Errorf("both Raw and a Normalizer given")
		}
		n := &Normalizer{Mean: make([]float32, channels), Std: make([]float32, channels)}
		for i := range n.Std {
			n.Std[i] = 1
		}
		return n, nil
	}
	if o.Norm == nil {
		return nil, nil
	}
	if err := o.Norm.Validate(); err != nil {
		return nil, err
	}
	if o.Norm.Channels() != channels {
		return nil, fmt.Errorf("normalizer has %d channels but the data has %d", o.Norm.Channels(), channels)
	}
	return o.Norm, nil
}

var knownKinds = []string{"mnist", "csv", "synthetic-imu", "mpu6050", "adxl345"}

// classMapper maps a source's label names to indices in the wanted class
// list, reporting names that are not in it.
type classMapper struct {
	classes []string
	index   map[string]int
}

func newClassMapper(classes []string) (*classMapper, error) {
	m := &classMapper{classes: classes, index: make(map[string]int, len(classes))}
	for i, c := range classes {
		if c == "" {
			return nil, fmt.Errorf("sensors: class %d has an empty name", i)
		}
		if j, dup := m.index[c]; dup {
			return nil, fmt.Errorf("sensors: class %q listed twice (indices %d and %d)", c, j, i)
		}
		m.index[c] = i
	}
	return m, nil
}

// classMapper maps the caller's classes (o.Classes), or defaults when the
// caller names none; desc names the source in errors.
func (o LoadOptions) classMapper(defaults []string, desc string) (*classMapper, error) {
	classes := o.Classes
	if classes == nil {
		classes = defaults
	}
	cm, err := newClassMapper(classes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	return cm, nil
}

// unknown lists names not among the classes, in the order given.
func (m *classMapper) unknown(names []string) []string {
	var out []string
	for _, n := range names {
		if _, ok := m.index[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}
