package daemon

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Checkpoint file format, version 1. All integers are little-endian.
//
//	offset 0   [8]byte  magic "BNNDCKPT"
//	       8   uint32   format version (1)
//	      12   uint32   number of sections
//	      16   int64    creation time, Unix nanoseconds
//	      24   uint64   total file length in bytes, trailer included
//	      32   sections, each:
//	             uint16  name length, then the name (ASCII a-z 0-9 _ . -)
//	             uint64  data length
//	             uint32  CRC-32C of the data
//	             data
//	     end-4 uint32   CRC-32C (Castagnoli) of every byte before it
//
// The total length in the header tells a truncated file (shorter than
// declared) from a damaged one (right length, wrong checksum); the
// per-section checksums say which section a damage hit.
const (
	checkpointMagic   = "BNNDCKPT"
	CheckpointVersion = 1

	checkpointHeaderSize = 32
	sectionHeaderFixed   = 2 + 8 + 4
	checkpointTrailer    = 4
	maxSections          = 1024
	maxSectionName       = 64
)

// Names of the files in a checkpoint directory.
const (
	LatestCheckpoint   = "checkpoint.bnnd"
	PreviousCheckpoint = "checkpoint.prev.bnnd"
	tempPattern        = ".checkpoint-*.tmp"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrNoCheckpoint is returned by (*Store).Load when the directory holds no
// checkpoint at all (a first start).
var ErrNoCheckpoint = errors.New("no checkpoint")

// Section is one named part of a checkpoint, such as "model" or "replay".
// Its body is written with WriteTo, so large parts can stream to the file
// without an intermediate copy; BytesSection wraps a byte slice.
type Section struct {
	Name string
	Body io.WriterTo
}

// BytesSection is a Section whose body is b.
func BytesSection(name string, b []byte) Section {
	return Section{Name: name, Body: bytes.NewReader(b)}
}

// SectionData is a section read back from a checkpoint.
type SectionData struct {
	Name string
	Data []byte // points into the file contents read
}

// Checkpoint is a verified checkpoint read from disk.
type Checkpoint struct {
	Path     string
	Version  int
	Created  time.Time
	Size     int64
	Sections []SectionData
	// Skipped says why newer checkpoint files were not used (damaged or
	// missing latest); empty when the latest file was loaded.
	Skipped []error
}

// Section returns the data of the named section.
func (c *Checkpoint) Section(name string) ([]byte, bool) {
	for _, s := range c.Sections {
		if s.Name == name {
			return s.Data, true
		}
	}
	return nil, false
}

// CheckpointError says what is wrong with a checkpoint file.
type CheckpointError struct {
	Path    string
	Problem string
}

func (e *CheckpointError) Error() string { return "checkpoint " + e.Path + ": " + e.Problem }

func validSectionName(name string) bool {
	if name == "" || len(name) > maxSectionName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Store keeps the latest checkpoint and, if asked, the one before it in a
// directory. One process owns a store at a time.
type Store struct {
	dir          string
	keepPrevious bool
	log          *slog.Logger
	// latestValid is true once the latest file is known good (we wrote or
	// verified it), so Save may move it to the previous slot without
	// rereading it. A damaged latest file is never moved over a good
	// previous one.
	latestValid bool
}

// OpenStore creates dir if needed (mode 0750) and removes temporary files
// left by a save that was interrupted (they are never valid checkpoints).
func OpenStore(dir string, keepPrevious bool, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(dir, tempPattern))
	if err != nil {
		return nil, fmt.Errorf("checkpoint store %s: %w", dir, err)
	}
	for _, p := range stale {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint store: removing interrupted save: %w", err)
		}
		log.Info("removed an interrupted checkpoint save", "file", p)
	}
	return &Store{dir: dir, keepPrevious: keepPrevious, log: log}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// LatestPath is the path of the latest checkpoint file.
func (s *Store) LatestPath() string { return filepath.Join(s.dir, LatestCheckpoint) }

// PreviousPath is the path of the previous checkpoint file.
func (s *Store) PreviousPath() string { return filepath.Join(s.dir, PreviousCheckpoint) }

// Save writes a new checkpoint atomically: a temporary file in the same
// directory, fsync, then the latest file becomes the previous one and the
// temporary file becomes the latest (two renames, each atomic), then the
// directory is fsynced. At every instant a crash leaves either the old or
// the new checkpoint loadable. It returns the size written.
func (s *Store) Save(created time.Time, sections ...Section) (int64, error) {
	tmp, err := os.CreateTemp(s.dir, tempPattern)
	if err != nil {
		return 0, fmt.Errorf("checkpoint save: %w", err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	size, err := writeCheckpoint(tmp, created, sections)
	if err != nil {
		return 0, fmt.Errorf("checkpoint save %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("checkpoint save: fsync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("checkpoint save: close %s: %w", tmpName, err)
	}

	latest := s.LatestPath()
	if s.keepPrevious {
		if err := s.rotate(latest); err != nil {
			return 0, err
		}
	}
	if err := os.Rename(tmpName, latest); err != nil {
		return 0, fmt.Errorf("checkpoint save: %w", err)
	}
	committed = true
	s.latestValid = true
	if err := syncDir(s.dir); err != nil {
		return size, fmt.Errorf("checkpoint save: fsync directory %s: %w", s.dir, err)
	}
	return size, nil
}

// rotate moves a good latest checkpoint to the previous slot.
func (s *Store) rotate(latest string) error {
	if !s.latestValid {
		if _, err := os.Stat(latest); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if _, err := ReadCheckpointFile(latest); err != nil {
			s.log.Warn("not keeping the damaged latest checkpoint as the previous one", "err", err)
			return nil
		}
	}
	if err := os.Rename(latest, s.PreviousPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checkpoint save: keeping the previous checkpoint: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load returns the newest valid checkpoint: the latest file, or the previous
// one if the latest is missing, truncated or damaged; what was skipped and
// why is in Checkpoint.Skipped and logged. With no checkpoint at all it
// returns ErrNoCheckpoint; if every file is damaged, an error naming each.
func (s *Store) Load() (*Checkpoint, error) {
	var skipped, damaged []error
	for i, path := range []string{s.LatestPath(), s.PreviousPath()} {
		c, err := ReadCheckpointFile(path)
		if err == nil {
			c.Skipped = skipped
			s.latestValid = i == 0
			if len(skipped) > 0 {
				s.log.Warn("resuming from the previous checkpoint", "file", path, "created", c.Created)
			}
			return c, nil
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if i == 0 {
				skipped = append(skipped, fmt.Errorf("checkpoint %s: missing", path))
			}
		default:
			s.log.Error("checkpoint unusable", "err", err)
			skipped = append(skipped, err)
			damaged = append(damaged, err)
		}
	}
	if len(damaged) == 0 {
		return nil, ErrNoCheckpoint
	}
	return nil, fmt.Errorf("no usable checkpoint in %s: %w", s.dir, errors.Join(damaged...))
}

// writeCheckpoint streams the file: each section's length and checksum are
// patched in once its body is written, then the whole file is read back to
// compute the trailer checksum (from the page cache; cheap next to fsync).
func writeCheckpoint(f *os.File, created time.Time, sections []Section) (int64, error) {
	if len(sections) > maxSections {
		return 0, fmt.Errorf("%d sections, at most %d", len(sections), maxSections)
	}
	seen := map[string]bool{}
	for _, sec := range sections {
		if !validSectionName(sec.Name) {
			return 0, fmt.Errorf("section name %q: want 1-%d characters from a-z 0-9 _ . -", sec.Name, maxSectionName)
		}
		if seen[sec.Name] {
			return 0, fmt.Errorf("section %q given twice", sec.Name)
		}
		seen[sec.Name] = true
		if sec.Body == nil {
			return 0, fmt.Errorf("section %q has no body", sec.Name)
		}
	}

	var hdr [checkpointHeaderSize]byte
	copy(hdr[:8], checkpointMagic)
	binary.LittleEndian.PutUint32(hdr[8:], CheckpointVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(sections)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(created.UnixNano()))
	// hdr[24:32], the total length, is patched at the end.
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := w.Write(hdr[:]); err != nil {
		return 0, err
	}
	off := int64(checkpointHeaderSize)
	crc := crc32.New(castagnoli)
	for _, sec := range sections {
		var sh [sectionHeaderFixed + maxSectionName]byte
		binary.LittleEndian.PutUint16(sh[:], uint16(len(sec.Name)))
		n := copy(sh[2:], sec.Name)
		fixed := sh[:2+n+8+4] // length and checksum patched below
		if _, err := w.Write(fixed); err != nil {
			return 0, err
		}
		crc.Reset()
		cw := &countingWriter{w: w, h: crc}
		if _, err := sec.Body.WriteTo(cw); err != nil {
			return 0, fmt.Errorf("section %q: %w", sec.Name, err)
		}
		if err := w.Flush(); err != nil {
			return 0, err
		}
		var patch [12]byte
		binary.LittleEndian.PutUint64(patch[:], uint64(cw.n))
		binary.LittleEndian.PutUint32(patch[8:], crc.Sum32())
		if _, err := f.WriteAt(patch[:], off+2+int64(n)); err != nil {
			return 0, err
		}
		off += int64(len(fixed)) + cw.n
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	total := off + checkpointTrailer
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(total))
	if _, err := f.WriteAt(lenBuf[:], 24); err != nil {
		return 0, err
	}
	crc.Reset()
	if _, err := io.Copy(crc, io.NewSectionReader(f, 0, off)); err != nil {
		return 0, fmt.Errorf("reading back for the checksum: %w", err)
	}
	var tr [checkpointTrailer]byte
	binary.LittleEndian.PutUint32(tr[:], crc.Sum32())
	if _, err := f.WriteAt(tr[:], off); err != nil {
		return 0, err
	}
	return total, nil
}

type countingWriter struct {
	w io.Writer
	h hash.Hash32
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// ReadCheckpointFile reads and fully verifies one checkpoint file. Errors
// other than a missing file are *CheckpointError naming the file and the
// problem.
func ReadCheckpointFile(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	info, err := ParseCheckpoint(data)
	if err != nil {
		return nil, &CheckpointError{Path: path, Problem: err.Error()}
	}
	return &Checkpoint{
		Path:     path,
		Version:  info.Version,
		Created:  info.Created,
		Size:     int64(len(data)),
		Sections: info.Sections,
	}, nil
}

// CheckpointInfo is what ParseCheckpoint could read from a checkpoint,
// valid or not, for 'bnnd checkpoint inspect'.
type CheckpointInfo struct {
	Version      int
	Created      time.Time
	DeclaredSize int64
	Size         int64
	Sections     []SectionData
	SectionOK    []bool // per section: its own checksum matches
	ChecksumOK   bool   // the whole-file checksum matches
}

// ParseCheckpoint verifies a checkpoint held in memory. It returns what
// could be read even when it also returns an error, so that a damaged file
// can still be inspected.
func ParseCheckpoint(data []byte) (*CheckpointInfo, error) {
	info := &CheckpointInfo{Size: int64(len(data))}
	if len(data) < checkpointHeaderSize {
		if len(data) >= 8 && string(data[:8]) != checkpointMagic {
			return info, fmt.Errorf("not a bnnd checkpoint (starts with %q)", data[:8])
		}
		return info, fmt.Errorf("truncated: %d bytes, shorter than the %d-byte header", len(data), checkpointHeaderSize)
	}
	if string(data[:8]) != checkpointMagic {
		return info, fmt.Errorf("not a bnnd checkpoint (starts with %q)", data[:8])
	}
	info.Version = int(binary.LittleEndian.Uint32(data[8:]))
	if info.Version != CheckpointVersion {
		return info, fmt.Errorf("format version %d, this bnnd reads version %d", info.Version, CheckpointVersion)
	}
	count := binary.LittleEndian.Uint32(data[12:])
	info.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(data[16:]))).UTC()
	declared := binary.LittleEndian.Uint64(data[24:])
	info.DeclaredSize = int64(declared)
	if declared == 0 {
		return info, fmt.Errorf("incomplete: the writer never finished it (total length 0)")
	}
	if uint64(len(data)) < declared {
		return info, fmt.Errorf("truncated: %d of %d bytes", len(data), declared)
	}
	if uint64(len(data)) > declared {
		return info, fmt.Errorf("%d unexpected bytes after the declared end at %d", uint64(len(data))-declared, declared)
	}
	body := data[:len(data)-checkpointTrailer]
	stored := binary.LittleEndian.Uint32(data[len(body):])
	computed := crc32.Checksum(body, castagnoli)
	info.ChecksumOK = stored == computed

	// Walk the sections even when the checksum failed, to say which one is
	// damaged.
	var structErr error
	if count > maxSections {
		structErr = fmt.Errorf("header declares %d sections, at most %d", count, maxSections)
	}
	off := checkpointHeaderSize
	for i := uint32(0); structErr == nil && i < count; i++ {
		if len(body)-off < 2 {
			structErr = fmt.Errorf("section %d header runs past the end", i)
			break
		}
		nameLen := int(binary.LittleEndian.Uint16(body[off:]))
		if nameLen > maxSectionName || len(body)-off < sectionHeaderFixed+nameLen {
			structErr = fmt.Errorf("section %d header is malformed (name length %d)", i, nameLen)
			break
		}
		name := string(body[off+2 : off+2+nameLen])
		dlen := binary.LittleEndian.Uint64(body[off+2+nameLen:])
		dcrc := binary.LittleEndian.Uint32(body[off+2+nameLen+8:])
		off += sectionHeaderFixed + nameLen
		if !validSectionName(name) {
			structErr = fmt.Errorf("section %d has an invalid name %q", i, name)
			break
		}
		if dlen > uint64(len(body)-off) {
			structErr = fmt.Errorf("section %q declares %d bytes but only %d remain", name, dlen, len(body)-off)
			break
		}
		sec := body[off : off+int(dlen)]
		off += int(dlen)
		info.Sections = append(info.Sections, SectionData{Name: name, Data: sec})
		info.SectionOK = append(info.SectionOK, crc32.Checksum(sec, castagnoli) == dcrc)
	}
	if structErr == nil && off != len(body) {
		structErr = fmt.Errorf("%d bytes between the last section and the checksum", len(body)-off)
	}
	if !info.ChecksumOK {
		var bad []string
		for i, ok := range info.SectionOK {
			if !ok {
				bad = append(bad, info.Sections[i].Name)
			}
		}
		where := ""
		if len(bad) > 0 {
			where = fmt.Sprintf("; damaged section(s): %s", strings.Join(bad, ", "))
		} else if structErr != nil {
			where = "; " + structErr.Error()
		}
		return info, fmt.Errorf("checksum mismatch: stored %08x, computed %08x (the file is damaged%s)", stored, computed, where)
	}
	if structErr != nil {
		return info, fmt.Errorf("malformed: %w", structErr)
	}
	for i, name := range info.Sections {
		for _, other := range info.Sections[:i] {
			if other.Name == name.Name {
				return info, fmt.Errorf("malformed: section %q appears twice", name.Name)
			}
		}
	}
	return info, nil
}
