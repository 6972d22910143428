// Package binio writes and reads the little-endian fields of bnnd's binary
// files (the bnn model file, the bop optimizer state).
//
// A Writer appends fields to a growing buffer and cannot fail. A Reader
// takes fields from a byte slice with a sticky error: after the first field
// that does not fit, every later read returns the zero value and Err keeps
// naming the first field that failed, so a decoder reads a whole record and
// checks Err once.
//
// Variable-length fields carry a uint32 count in front: Str is a byte
// length and the bytes, F32s and U64s a value count and the values.
package binio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Writer appends little-endian fields. The zero value is ready to use.
type Writer struct{ buf []byte }

// Bytes returns the bytes written so far; they alias the Writer's buffer
// until the next write.
func (w *Writer) Bytes() []byte { return w.buf }

// Len is the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// RawString appends s as is, without a length (file magics).
func (w *Writer) RawString(s string) { w.buf = append(w.buf, s...) }

// U8 appends one byte.
func (w *Writer) U8(v uint8) { w.buf = append(w.buf, v) }

// U32 appends v in 4 bytes.
func (w *Writer) U32(v uint32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, v) }

// U64 appends v in 8 bytes.
func (w *Writer) U64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }

// F32 appends the IEEE bits of v in 4 bytes.
func (w *Writer) F32(v float32) { w.U32(math.Float32bits(v)) }

// F64 appends the IEEE bits of v in 8 bytes.
func (w *Writer) F64(v float64) { w.U64(math.Float64bits(v)) }

// Str appends the byte length of s as a uint32, then s.
func (w *Writer) Str(s string) {
	w.U32(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// F32s appends the count of v as a uint32, then the values.
func (w *Writer) F32s(v []float32) {
	w.U32(uint32(len(v)))
	w.grow(4 * len(v))
	for _, x := range v {
		w.F32(x)
	}
}

// U64s appends the count of v as a uint32, then the values.
func (w *Writer) U64s(v []uint64) {
	w.U32(uint32(len(v)))
	w.RawU64s(v)
}

// RawU64s appends the values of v without a count (for formats that store
// the count elsewhere or in another width).
func (w *Writer) RawU64s(v []uint64) {
	w.grow(8 * len(v))
	for _, x := range v {
		w.U64(x)
	}
}

// grow makes room for k more bytes at once, so long vectors are copied once.
func (w *Writer) grow(k int) {
	if cap(w.buf)-len(w.buf) < k {
		nb := make([]byte, len(w.buf), 2*cap(w.buf)+k)
		copy(nb, w.buf)
		w.buf = nb
	}
}

// Reader takes little-endian fields from a byte slice. Each read names the
// field it reads (what); the first one that runs past the end sets Err,
// which wraps the Reader's kind error and says which field, at which
// offset, needed how many bytes, and how many were left.
type Reader struct {
	b    []byte
	off  int
	kind error
	err  error
}

// NewReader reads fields from b. Errors the Reader makes wrap kind (for
// errors.Is), e.g. a package's "malformed file" sentinel.
func NewReader(b []byte, kind error) *Reader { return &Reader{b: b, kind: kind} }

// Err is the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Remaining is the number of bytes not read yet.
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Take returns the next k bytes (aliasing the input), or nil once Err is set
// or when fewer than k bytes are left.
func (r *Reader) Take(k int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if k < 0 || r.Remaining() < k {
		r.err = fmt.Errorf("%w: %s at offset %d needs %d bytes, %d left", r.kind, what, r.off, k, r.Remaining())
		return nil
	}
	s := r.b[r.off : r.off+k : r.off+k]
	r.off += k
	return s
}

// takeN returns the next n elements of size bytes each. The count is
// checked against what is left before it is multiplied, so a corrupt count
// cannot overflow int (on 32-bit ARM) into a small, wrong length.
func (r *Reader) takeN(n uint64, size int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Remaining()/size) {
		r.err = fmt.Errorf("%w: %s at offset %d needs %d values of %d bytes, %d bytes left", r.kind, what, r.off, n, size, r.Remaining())
		return nil
	}
	return r.Take(int(n)*size, what)
}

// U8 reads one byte.
func (r *Reader) U8(what string) uint8 {
	if s := r.Take(1, what); s != nil {
		return s[0]
	}
	return 0
}

// U32 reads a uint32.
func (r *Reader) U32(what string) uint32 {
	if s := r.Take(4, what); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

// U64 reads a uint64.
func (r *Reader) U64(what string) uint64 {
	if s := r.Take(8, what); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// F32 reads a float32 from its IEEE bits.
func (r *Reader) F32(what string) float32 { return math.Float32frombits(r.U32(what)) }

// F64 reads a float64 from its IEEE bits.
func (r *Reader) F64(what string) float64 { return math.Float64frombits(r.U64(what)) }

// Str reads what Writer.Str wrote: a uint32 byte length ("<what> length")
// and the bytes.
func (r *Reader) Str(what string) string {
	k := r.U32(what + " length")
	return string(r.takeN(uint64(k), 1, what))
}

// F32s reads what Writer.F32s wrote: a uint32 count ("<what> length") and
// the values. It returns nil once Err is set.
func (r *Reader) F32s(what string) []float32 {
	k := r.U32(what + " length")
	s := r.takeN(uint64(k), 4, what)
	if s == nil {
		return nil
	}
	v := make([]float32, k)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return v
}

// U64s reads what Writer.U64s wrote: a uint32 count ("<what> length") and
// the values. It returns nil once Err is set.
func (r *Reader) U64s(what string) []uint64 {
	return r.RawU64s(uint64(r.U32(what+" length")), what)
}

// RawU64s reads n uint64 values that have no count in front. It returns nil
// once Err is set.
func (r *Reader) RawU64s(n uint64, what string) []uint64 {
	s := r.takeN(n, 8, what)
	if s == nil {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = binary.LittleEndian.Uint64(s[8*i:])
	}
	return v
}

// readChunk is how much ReadFull reads (and grows its buffer) at a time.
const readChunk = 1 << 20

// ReadFull reads exactly n bytes from r, such as a payload whose length a
// file header gives. Its buffer grows with the bytes actually read, so a
// corrupt length costs no more memory than the input holds (at most about
// four times it); a reader that knows how much it holds (bytes.Reader,
// bytes.Buffer, strings.Reader: a Len method) gets one buffer of the right
// size. When r ends first it returns the bytes read with io.EOF (none) or
// io.ErrUnexpectedEOF (some), like io.ReadFull.
func ReadFull(r io.Reader, n uint64) ([]byte, error) {
	if n > uint64(math.MaxInt) {
		return nil, fmt.Errorf("binio: %d bytes do not fit in memory on this platform", n)
	}
	sized, isSized := r.(interface{ Len() int })
	size := min(n, readChunk)
	if isSized {
		size = min(n, uint64(max(sized.Len(), 0)))
	}
	buf := make([]byte, 0, size)
	for uint64(len(buf)) < n {
		if len(buf) == cap(buf) {
			if isSized && sized.Len() <= 0 {
				return buf, short(len(buf))
			}
			// Double, so the copies add up to less than the final size.
			grown := make([]byte, len(buf), min(n, max(2*uint64(cap(buf)), uint64(len(buf))+readChunk)))
			copy(grown, buf)
			buf = grown
		}
		got, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = short(len(buf))
			}
			return buf, err
		}
	}
	return buf, nil
}

// short is the error for an input that ended after k bytes.
func short(k int) error {
	if k == 0 {
		return io.EOF
	}
	return io.ErrUnexpectedEOF
}
