package binio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Castagnoli is the CRC-32C table of every checksum in bnnd's files (model,
// optimizer state, checkpoint): one table, so the files cannot drift apart
// in which polynomial they use.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FrameHeaderSize is the size of a frame's magic, version and length.
const FrameHeaderSize = 8 + 4 + 8

// Frame is the envelope of a bnnd binary file or section (all integers
// little-endian):
//
//	magic   [8]byte
//	version uint32
//	length  uint64  payload bytes
//	payload
//	crc     uint32  CRC-32C (Castagnoli) of everything before it
//
// Its error fields are the sentinels the owning package exposes: what Read
// returns wraps one of them, so errors.Is keeps working on that package's
// names. Format may equal BadMagic where a package has no separate one.
type Frame struct {
	Magic      string // 8 bytes
	What       string // what the file is, in error messages ("model", "optimizer state")
	MinVersion uint32 // the oldest version Read accepts
	MaxVersion uint32 // the newest version Read accepts (the one written)
	MaxLength  uint64 // payload lengths above this are Format errors, before anything is allocated
	BadMagic   error
	Version    error
	Checksum   error
	Truncated  error
	Format     error
}

// Append appends the framed payload (header, payload, checksum) to dst.
func (f *Frame) Append(dst []byte, version uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, f.Magic...)
	dst = binary.LittleEndian.AppendUint32(dst, version)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(payload)))
	dst = append(dst, payload...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], Castagnoli))
}

// Read reads one frame from r, checks its magic, version, length and
// checksum, and returns the version and the payload.
func (f *Frame) Read(r io.Reader) (version uint32, payload []byte, err error) {
	head := make([]byte, FrameHeaderSize)
	if k, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("reading %s header: %w: got %d of %d bytes", f.What, f.Truncated, k, FrameHeaderSize)
		}
		return 0, nil, fmt.Errorf("reading %s header: %w", f.What, err)
	}
	if string(head[:8]) != f.Magic {
		return 0, nil, fmt.Errorf("%w: bad magic %q", f.BadMagic, head[:8])
	}
	version = binary.LittleEndian.Uint32(head[8:])
	if version < f.MinVersion || version > f.MaxVersion {
		if f.MinVersion == f.MaxVersion {
			return 0, nil, fmt.Errorf("%w %d (this build reads %d)", f.Version, version, f.MaxVersion)
		}
		return 0, nil, fmt.Errorf("%w %d (this build reads versions %d to %d)", f.Version, version, f.MinVersion, f.MaxVersion)
	}
	length := binary.LittleEndian.Uint64(head[12:])
	if length > f.MaxLength {
		return 0, nil, fmt.Errorf("%w: payload length %d exceeds %d", f.Format, length, f.MaxLength)
	}
	if length > math.MaxInt-4 {
		// On 32-bit ARM a length this large cannot be read into memory: the
		// input, not the platform, is at fault.
		return 0, nil, fmt.Errorf("reading %s: %w: payload and checksum need %d bytes, more than this platform holds", f.What, f.Truncated, length+4)
	}
	// Read what is there rather than allocate what the header claims, so a
	// corrupt length cannot take gigabytes (or, on 32-bit ARM, more than
	// the address space) from a small board.
	rest, err := ReadFull(r, length+4)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("reading %s: %w: payload and checksum need %d bytes, got %d", f.What, f.Truncated, length+4, len(rest))
		}
		return 0, nil, fmt.Errorf("reading %s: %w", f.What, err)
	}
	payload = rest[:length]
	want := binary.LittleEndian.Uint32(rest[length:])
	if got := crc32.Update(crc32.Checksum(head, Castagnoli), Castagnoli, payload); got != want {
		return 0, nil, fmt.Errorf("%w: stored %08x, computed %08x", f.Checksum, want, got)
	}
	return version, payload, nil
}
