package sensors

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bnnd/bnnd/internal/csvrec"
)

// MaxCSVLine bounds one physical CSV line, so a corrupt file without line
// breaks cannot exhaust memory.
const MaxCSVLine = csvrec.MaxLine

var timeColumns = map[string]bool{"time": true, "timestamp": true, "t": true, "ms": true, "us": true}

type csvConfig struct {
	glob       string   // the spec's file name or glob
	cols       []string // nil = automatic
	fixedLabel string
	skipBad    bool
}

func parseCSVSpec(s *spec) (csvConfig, error) {
	cfg := csvConfig{glob: s.arg}
	if s.arg == "" {
		return cfg, s.errorf("csv needs a file or glob: csv:PATH")
	}
	if v, ok := s.str("cols"); ok {
		seen := map[string]bool{}
		for _, c := range strings.Split(v, ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				return cfg, s.errorf("cols=%q has an empty column name", v)
			}
			if seen[c] {
				return cfg, s.errorf("cols=%q names %q twice", v, c)
			}
			seen[c] = true
			cfg.cols = append(cfg.cols, c)
		}
	}
	if v, ok := s.str("label"); ok {
		if err := ValidateLabel(v); err != nil {
			return cfg, s.errorf("label=%q is not a usable class name", v)
		}
		cfg.fixedLabel = v
	}
	if v, ok := s.str("bad"); ok {
		switch v {
		case "skip":
			cfg.skipBad = true
		case "error":
		default:
			return cfg, s.errorf("bad=%q is not skip or error", v)
		}
	}
	return cfg, nil
}

func loadCSVSpec(s *spec, split Split, opt LoadOptions) (Dataset, error) {
	cfg, window, hop, err := windowedSpec(s, opt, parseCSVSpec, nil)
	if err != nil {
		return nil, err
	}
	glob := cfg.glob
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, s.errorf("bad glob %q: %v", glob, err)
	}
	if len(files) == 0 {
		return nil, s.errorf("no file matches %q", glob)
	}
	sort.Strings(files)
	l := newCSVLoader(cfg)
	for _, f := range files {
		if err := l.readFile(f); err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", s.raw, err)
		}
	}
	w, err := newWindows(l.ser, fmt.Sprintf("sensors: spec %q", s.raw), split, opt, window, hop)
	if err != nil {
		return nil, err
	}
	w.skipped = l.skipped
	return w, nil
}

type csvLoader struct {
	cfg     csvConfig
	ser     *series
	labels  map[string]int
	skipped int
}

func newCSVLoader(cfg csvConfig) *csvLoader {
	return &csvLoader{cfg: cfg, ser: &series{channelNames: cfg.cols, channels: len(cfg.cols)}, labels: map[string]int{}}
}

func (l *csvLoader) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return l.read(f, path)
}

// fileLabel derives a label from a file name: its leading run of letters,
// digits and '_'.
func fileLabel(path string) string {
	base := filepath.Base(path)
	n := 0
	for n < len(base) {
		c := base[n]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			n++
			continue
		}
		break
	}
	return base[:n]
}

func (l *csvLoader) labelIndex(name string) int {
	if name == "" || name == "none" {
		return -1
	}
	if i, ok := l.labels[name]; ok {
		return i
	}
	i := len(l.ser.labelNames)
	l.ser.labelNames = append(l.ser.labelNames, name)
	l.labels[name] = i
	return i
}

// read appends one recording.
func (l *csvLoader) read(r io.Reader, path string) error {
	cr := csvrec.NewCSV(r)
	readErr := func(err error) error { return cr.Err(path, err, false) }
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file (want a header row)", path)
	}
	if err != nil {
		return readErr(err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // byte-order mark from spreadsheet exports
	}
	pos := map[string]int{}
	labelCol := -1
	for i, h := range header {
		h = strings.TrimSpace(h)
		header[i] = h
		if _, dup := pos[h]; dup && h != "" {
			return fmt.Errorf("%s:1: column %q appears twice in the header", path, h)
		}
		pos[h] = i
		if strings.EqualFold(h, "label") {
			labelCol = i
		}
	}

	first, err := cr.Read()
	if err == io.EOF {
		return nil // a header without data adds nothing
	}
	if err != nil && !(l.cfg.skipBad && csvrec.IsRowError(err)) {
		return readErr(err)
	}
	if l.ser.channelNames == nil { // automatic columns, from the first data row of the first file
		if err != nil {
			return readErr(err)
		}
		for i, h := range header {
			if i == labelCol || timeColumns[strings.ToLower(h)] || h == "" || i >= len(first) {
				continue
			}
			if _, ok := csvrec.ParseValue(strings.TrimSpace(first[i]), 64); ok {
				l.ser.channelNames = append(l.ser.channelNames, h)
			}
		}
		if len(l.ser.channelNames) == 0 {
			return fmt.Errorf("%s:2: no numeric column in the first data row (columns %q)", path, header)
		}
		l.ser.channels = len(l.ser.channelNames)
	}
	idx := make([]int, l.ser.channels)
	for c, name := range l.ser.channelNames {
		i, ok := pos[name]
		if !ok {
			return fmt.Errorf("%s:1: no column %q in the header (columns %q)", path, name, header)
		}
		idx[c] = i
	}
	defLabel := l.cfg.fixedLabel
	if defLabel == "" && labelCol < 0 {
		defLabel = fileLabel(path)
		if defLabel == "" {
			return fmt.Errorf("%s: no label column, and the file name does not start with a letter, digit or '_'; use label=NAME", path)
		}
	}
	useLabelCol := l.cfg.fixedLabel == "" && labelCol >= 0

	sample := make([]float32, l.ser.channels)
	cur := run{start: l.ser.samples(), label: -2}
	flush := func() {
		if end := l.ser.samples(); cur.label != -2 && end > cur.start {
			cur.end = end
			l.ser.runs = append(l.ser.runs, cur)
		}
		cur = run{start: l.ser.samples(), label: -2}
	}
	rec, err := first, err
	for {
		if err == io.EOF {
			break
		}
		line := 0
		if err == nil {
			line, _ = cr.FieldPos(0)
		}
		var bad error
		if err != nil {
			if !csvrec.IsRowError(err) {
				return readErr(err)
			}
			bad = readErr(err)
		} else {
			bad = l.parseRow(rec, idx, sample, path, line, len(header))
		}
		if bad != nil {
			if !l.cfg.skipBad {
				return bad
			}
			l.skipped++
			flush() // no window spans a skipped row
		} else {
			label := -1
			if useLabelCol {
				name := strings.TrimSpace(rec[labelCol])
				if name != "" && name != "none" {
					if err := ValidateLabel(name); err != nil {
						return fmt.Errorf("%s:%d: %w", path, line, err)
					}
				}
				label = l.labelIndex(name)
			} else {
				label = l.labelIndex(defLabel)
			}
			if label != cur.label {
				flush()
				cur.label = label
			}
			l.ser.data = append(l.ser.data, sample...)
		}
		rec, err = cr.Read()
	}
	flush()
	return nil
}

func (l *csvLoader) parseRow(rec []string, idx []int, dst []float32, path string, line, fields int) error {
	if len(rec) != fields {
		return fmt.Errorf("%s:%d: %d fields, the header has %d", path, line, len(rec), fields)
	}
	for c, i := range idx {
		cell := strings.TrimSpace(rec[i])
		if cell == "" {
			return fmt.Errorf("%s:%d: column %q is empty", path, line, l.ser.channelNames[c])
		}
		v, ok := csvrec.ParseValue(cell, 32)
		if !ok {
			return fmt.Errorf("%s:%d: column %q: %.40q is not a finite number", path, line, l.ser.channelNames[c], cell)
		}
		dst[c] = float32(v)
	}
	return nil
}

// SkippedRows is the number of bad CSV rows skipped with bad=skip.
func (w *Windows) SkippedRows() int { return w.skipped }
