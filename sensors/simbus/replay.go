package simbus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/bnnd/bnnd/internal/csvrec"
)

// ReplayOptions configure OpenReplay.
type ReplayOptions struct {
	Glob string // files played in file-name order
	Loop bool   // start again after the last file instead of io.EOF
	Gyro bool   // require gx,gy,gz columns (MPU-6050); false: only ax,ay,az needed
	// OnLabel is called when the optional label column changes value
	// (an empty cell is "none"), before Next returns the frame of that
	// row, so the label takes effect from that sample on. The first row
	// with a label column always calls it; rows of a file without one
	// leave the label as it is. A returned error ends playback with that
	// error, wrapped and naming file:line.
	//
	// OnLabel runs inside Next, which a chip calls during a bus
	// transaction: it must not use the bus.
	OnLabel func(name string) error
}

// MaxLine bounds one physical line of a recording, so a corrupt file
// without line breaks cannot exhaust memory.
const MaxLine = csvrec.MaxLine

// Replay is a Feed that plays CSV recordings as written by
// 'bnnd sensors read SPEC --csv': a header naming ax,ay,az (m/s²) and
// optionally gx,gy,gz (rad/s), a time column (ignored) and a label
// column, in any order. OpenReplay checks every file; Next then streams
// them, so a recording needs no more memory than one row.
type Replay struct {
	opt   ReplayOptions
	files []string
	rows  int // data rows in all files at OpenReplay

	mu       sync.Mutex // serialises Next and Close
	next     int        // index in files of the next file to open
	cur      *csvFile   // the file being played; nil between files
	opened   int        // files opened since the last data row
	label    string     // last label passed to OnLabel
	labelled bool
	err      error // ends playback: io.EOF, a read error, or Close

	posMu sync.Mutex // separate, so OnLabel may call Position
	file  string
	row   int
}

var errClosed = errors.New("simbus: replay closed")

// OpenReplay finds the files matching opt.Glob and reads each once to
// check it: a header with the needed columns and no unknown ones, at least
// one data row, every row complete with finite numbers. Errors name the
// file and line (and for a cell, its column).
func OpenReplay(opt ReplayOptions) (*Replay, error) {
	files, err := filepath.Glob(opt.Glob)
	if err != nil {
		return nil, fmt.Errorf("simbus: glob %q: %w", opt.Glob, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("simbus: no file matches glob %q", opt.Glob)
	}
	sort.Strings(files)
	r := &Replay{opt: opt, files: files}
	for _, path := range files {
		n, err := checkFile(path, opt.Gyro)
		if err != nil {
			return nil, err
		}
		r.rows += n
	}
	return r, nil
}

// checkFile reads a whole file and returns its number of data rows.
func checkFile(path string, gyro bool) (int, error) {
	c, err := openCSV(path, gyro)
	if err != nil {
		return 0, err
	}
	defer c.close()
	n := 0
	for {
		if _, _, _, err := c.row(); err == io.EOF {
			break
		} else if err != nil {
			return 0, err
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("simbus: %s:2: no data rows after the header", path)
	}
	return n, nil
}

// Next returns the frame of the next row. After the last row of the last
// file it returns io.EOF, or with Loop the first row of the first file.
// Once it has returned an error it returns that error again.
func (r *Replay) Next() (Frame, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return Frame{}, r.err
	}
	for {
		if r.cur == nil {
			if r.next == len(r.files) {
				if !r.opt.Loop {
					r.err = io.EOF
					return Frame{}, r.err
				}
				r.next = 0
			}
			if r.opened == len(r.files) {
				// Every file was checked to have rows: they changed since.
				r.err = fmt.Errorf("simbus: no data rows left in the %d files matching %q", len(r.files), r.opt.Glob)
				return Frame{}, r.err
			}
			c, err := openCSV(r.files[r.next], r.opt.Gyro)
			if err != nil {
				r.err = err
				return Frame{}, r.err
			}
			r.next++
			r.opened++
			r.cur = c
		}
		fr, line, label, err := r.cur.row()
		if err == io.EOF {
			r.cur.close()
			r.cur = nil
			continue
		}
		if err != nil {
			r.cur.close()
			r.cur = nil
			r.err = err
			return Frame{}, r.err
		}
		r.opened = 0
		r.posMu.Lock()
		r.file, r.row = r.cur.path, line
		r.posMu.Unlock()
		if label != "" && (!r.labelled || label != r.label) {
			r.label, r.labelled = label, true
			if r.opt.OnLabel != nil {
				if err := r.opt.OnLabel(label); err != nil {
					r.cur.close()
					r.cur = nil
					r.err = fmt.Errorf("simbus: %s:%d: label %q: %w", r.file, line, label, err)
					return Frame{}, r.err
				}
			}
		}
		return fr, nil
	}
}

// Position is the file and line number of the row whose frame Next
// returned last ("", 0 before the first).
func (r *Replay) Position() (file string, row int) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	return r.file, r.row
}

// Close closes the file being played; Next then fails.
func (r *Replay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.close()
		r.cur = nil
	}
	if r.err == nil || r.err == io.EOF {
		r.err = errClosed
	}
	return nil
}

// channels are the columns a recording may hold besides time and label.
var channels = [6]string{"ax", "ay", "az", "gx", "gy", "gz"}

// csvFile reads the rows of one recording.
type csvFile struct {
	path   string
	f      *os.File
	cr     *csvrec.CSV
	fields int
	col    [6]int // field of each of channels; -1 if absent
	label  int    // field of the label column; -1 if absent
}

func openCSV(path string, gyro bool) (*csvFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("simbus: %w", err)
	}
	c := &csvFile{path: path, f: f, label: -1}
	c.cr = csvrec.NewCSV(f)
	if err := c.header(gyro); err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}

func (c *csvFile) close() { c.f.Close() }

func (c *csvFile) header(gyro bool) error {
	rec, err := c.cr.Read()
	if err == io.EOF {
		return fmt.Errorf("simbus: %s:1: empty file (want a header naming ax,ay,az)", c.path)
	}
	if err != nil {
		return c.readErr(err)
	}
	c.fields = len(rec)
	c.col = [6]int{-1, -1, -1, -1, -1, -1}
	seen := map[string]bool{}
	var unknown []string
	for i, h := range rec {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // byte-order mark from spreadsheet exports
		}
		h = strings.ToLower(strings.TrimSpace(h))
		if seen[h] {
			return fmt.Errorf("simbus: %s:1: column %q appears twice in the header", c.path, h)
		}
		seen[h] = true
		switch h {
		case "time":
		case "label":
			c.label = i
		default:
			k := 0
			for k < len(channels) && channels[k] != h {
				k++
			}
			if k == len(channels) {
				unknown = append(unknown, strconv.Quote(h))
				continue
			}
			c.col[k] = i
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("simbus: %s:1: unknown column %s (want ax,ay,az[,gx,gy,gz] and optionally time and label)", c.path, strings.Join(unknown, ", "))
	}
	nGyro := 0
	for k := range channels {
		if c.col[k] >= 0 && k >= 3 {
			nGyro++
		}
	}
	for k, name := range channels {
		if c.col[k] >= 0 {
			continue
		}
		switch {
		case k < 3:
			return fmt.Errorf("simbus: %s:1: no column %q in the header (want ax,ay,az)", c.path, name)
		case gyro:
			return fmt.Errorf("simbus: %s:1: no column %q in the header (the MPU-6050 needs gx,gy,gz)", c.path, name)
		case nGyro > 0:
			return fmt.Errorf("simbus: %s:1: no column %q in the header (gyroscope columns come as gx,gy,gz)", c.path, name)
		}
	}
	return nil
}

// row reads the next data row: its frame, line number and label ("" if
// the file has no label column, "none" for an empty cell). It returns
// io.EOF itself at the end of the file.
func (c *csvFile) row() (fr Frame, line int, label string, err error) {
	rec, err := c.cr.Read()
	if err == io.EOF {
		return fr, 0, "", io.EOF
	}
	if err != nil {
		return fr, 0, "", c.readErr(err)
	}
	line, _ = c.cr.FieldPos(0)
	if len(rec) != c.fields {
		return fr, line, "", fmt.Errorf("simbus: %s:%d: %d fields, the header has %d", c.path, line, len(rec), c.fields)
	}
	for k, i := range c.col {
		if i < 0 {
			continue
		}
		cell := strings.TrimSpace(rec[i])
		v, ok := csvrec.ParseValue(cell, 64)
		if !ok {
			l, col := c.cr.FieldPos(i)
			what := fmt.Sprintf("%.40q is not a finite number", cell)
			if cell == "" {
				what = "empty cell"
			}
			return fr, line, "", fmt.Errorf("simbus: %s:%d:%d: column %q: %s", c.path, l, col, channels[k], what)
		}
		if k < 3 {
			fr.Accel[k] = v
		} else {
			fr.Gyro[k-3] = v
		}
	}
	if c.label >= 0 {
		label = strings.TrimSpace(rec[c.label])
		if label == "" {
			label = "none"
		}
	}
	return fr, line, label, nil
}

func (c *csvFile) readErr(err error) error {
	return fmt.Errorf("simbus: %w", c.cr.Err(c.path, err, true))
}
