package csvrec

import (
	"bufio"
	"errors"
	"io"
)

// Reader bounds the physical lines a text reader hands on, so that a CSV
// file without newlines cannot make encoding/csv buffer it all.

// ErrTooLong is what Read returns once a line exceeds the limit.
var ErrTooLong = errors.New("line too long")

// Reader passes r through and fails a read once a physical line exceeds
// its limit.
type Reader struct {
	r       io.Reader
	max     int
	current int
	line    int
}

// New reads r, buffered, with lines of at most limit bytes.
func New(r io.Reader, limit int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: limit}
}

// Line is the number of lines completed so far, so Line()+1 names the line
// being read when an error came.
func (ll *Reader) Line() int { return ll.line }

func (ll *Reader) Read(p []byte) (int, error) {
	n, err := ll.r.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			ll.current = 0
			ll.line++
			continue
		}
		ll.current++
		if ll.current > ll.max {
			return i, ErrTooLong
		}
	}
	return n, err
}
