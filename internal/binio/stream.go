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
func (s *Stream) WriteU64s(w io.Writer, v []uint64) error {
	b := s.chunk()
	for len(v) > 0 {
		n := min(len(v), len(b)/8)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint64(b[8*i:], x)
		}
		if _, err := w.Write(b[:8*n]); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

// ReadU64s fills v with what WriteU64s wrote.
func (s *Stream) ReadU64s(r io.Reader, v []uint64) error {
	b := s.chunk()
	for len(v) > 0 {
		n := min(len(v), len(b)/8)
		if _, err := io.ReadFull(r, b[:8*n]); err != nil {
			return fmt.Errorf("binio: reading %d words: %w", n, err)
		}
		for i := range v[:n] {
			v[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		v = v[n:]
	}
	return nil
}

// WriteF32s writes v, 4 bytes per value.
func (s *Stream) WriteF32s(w io.Writer, v []float32) error {
	b := s.chunk()
	for len(v) > 0 {
		n := min(len(v), len(b)/4)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		if _, err := w.Write(b[:4*n]); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

// ReadF32s fills v with what WriteF32s wrote.
func (s *Stream) ReadF32s(r io.Reader, v []float32) error {
	b := s.chunk()
	for len(v) > 0 {
		n := min(len(v), len(b)/4)
		if _, err := io.ReadFull(r, b[:4*n]); err != nil {
			return fmt.Errorf("binio: reading %d floats: %w", n, err)
		}
		for i := range v[:n] {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		v = v[n:]
	}
	return nil
}
