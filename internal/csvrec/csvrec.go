// Package csvrec reads CSV recordings of sensor samples, for the csv data
// source (package sensors) and the simulated bus's replay (sensors/simbus):
// records through encoding/csv with bounded lines, errors that name the
// file and line, and the rule for a value cell.
package csvrec

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// MaxLine bounds one physical line of a recording, so that a corrupt file
// without line breaks cannot exhaust memory.
const MaxLine = 1 << 20

// CSV reads the records of one recording. Field counts are left to the
// caller (to name the line and the counts) and records are reused.
type CSV struct {
	*csv.Reader
	lines *Reader
}

// NewCSV reads r with lines of at most MaxLine bytes.
func NewCSV(r io.Reader) *CSV {
	ll := New(r, MaxLine)
	cr := csv.NewReader(ll)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &CSV{Reader: cr, lines: ll}
}

// Err names the file path and the line (and with column the column) of
// an error of Read.
func (c *CSV) Err(path string, err error, column bool) error {
	if errors.Is(err, ErrTooLong) {
		return fmt.Errorf("%s:%d: line longer than %d bytes", path, c.lines.Line()+1, MaxLine)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if column {
			return fmt.Errorf("%s:%d:%d: %w", path, pe.Line, pe.Column, pe.Err)
		}
		return fmt.Errorf("%s:%d: %w", path, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// IsRowError reports whether an error of Read is confined to one record,
// so that reading can go on after it.
func IsRowError(err error) bool {
	var pe *csv.ParseError
	return errors.As(err, &pe) && !errors.Is(err, ErrTooLong)
}

// ParseValue parses a value cell (space already trimmed) at the precision
// of bitSize (32 or 64): a finite number, else ok is false.
func ParseValue(cell string, bitSize int) (v float64, ok bool) {
	v, err := strconv.ParseFloat(cell, bitSize)
	return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
}
