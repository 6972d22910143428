package binio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// streamChunk is how many bytes the streaming helpers stage at a time: a
// snapshot of several megabytes passes through one small buffer instead of
// being built whole in memory next to the values it copies.
const streamChunk = 32 << 10

// Stream writes and reads slices of little-endian values through one small
// staging buffer, for snapshots that must not double the memory of what
// they copy. The zero value is ready to use; it is not safe for concurrent
// use.
type Stream struct{ buf []byte }

func (s *Stream) chunk() []byte {
	if s.buf == nil {
		s.buf = make([]byte, streamChunk)
	}
	return s.buf
}

// WriteU64s writes v, 8 bytes per value.
func (s *Stream) WriteU64s(w io.Writer, v []uint64) error { return writeValues(s, w, v) }

// ReadU64s fills v with what WriteU64s wrote.
func (s *Stream) ReadU64s(r io.Reader, v []uint64) error { return readValues(s, r, v, "words") }

// WriteF32s writes v, 4 bytes per value.
func (s *Stream) WriteF32s(w io.Writer, v []float32) error { return writeValues(s, w, v) }

// ReadF32s fills v with what WriteF32s wrote.
func (s *Stream) ReadF32s(r io.Reader, v []float32) error { return readValues(s, r, v, "floats") }

// writeValues writes v little-endian through the staging buffer, as many
// values at a time as it holds.
func writeValues[T uint64 | float32](s *Stream, w io.Writer, v []T) error {
	b := s.chunk()
	size := binary.Size(*new(T))
	for len(v) > 0 {
		n := min(len(v), len(b)/size)
		encode(b, v[:n])
		if _, err := w.Write(b[:size*n]); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

// readValues fills v with what writeValues wrote; what names the values
// in errors.
func readValues[T uint64 | float32](s *Stream, r io.Reader, v []T, what string) error {
	b := s.chunk()
	size := binary.Size(*new(T))
	for len(v) > 0 {
		n := min(len(v), len(b)/size)
		if _, err := io.ReadFull(r, b[:size*n]); err != nil {
			return fmt.Errorf("binio: reading %d %s: %w", n, what, err)
		}
		decode(v[:n], b)
		v = v[n:]
	}
	return nil
}

// encode and decode convert a chunk of values, with the byte order's
// functions called directly (not through binary.ByteOrder) in the loops.
func encode[T uint64 | float32](b []byte, v []T) {
	switch v := any(v).(type) {
	case []uint64:
		for i, x := range v {
			binary.LittleEndian.PutUint64(b[8*i:], x)
		}
	case []float32:
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	}
}

func decode[T uint64 | float32](v []T, b []byte) {
	switch v := any(v).(type) {
	case []uint64:
		for i := range v {
			v[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	case []float32:
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
}
