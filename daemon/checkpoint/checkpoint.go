// Package checkpoint is the daemon's store of checkpoint files in a state
// directory: atomic saves of named sections with checksums, the previous
// file kept beside the latest, a load that falls back past damaged or
// refused files, the archive that makes a reset recoverable, and the
// listing and restore behind 'bnnd checkpoint'. What the sections hold is
// the daemon's business (daemon/state.go), except the Meta section that
// describes a checkpoint to a reader.
package checkpoint

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
	"syscall"
	"time"

	"github.com/bnnd/bnnd/internal/binio"
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
	checkpointMagic = "BNNDCKPT"
	formatVersion   = 1

	checkpointHeaderSize = 32
	sectionHeaderFixed   = 2 + 8 + 4
	checkpointTrailer    = 4
	maxSections          = 1024
	maxSectionName       = 64
)

// Names of the files in a checkpoint directory.
const (
	LatestName   = "checkpoint.bnnd"
	PreviousName = "checkpoint.prev.bnnd"
	// FailedName holds a state that must not replace a good
	// checkpoint: the state at a training error, or a latest checkpoint
	// that failed the resume checks and was set aside when the daemon
	// resumed from the previous one. Only for inspection; never resumed.
	FailedName  = "checkpoint.failed.bnnd"
	tempPattern = ".checkpoint-*.tmp"
)

// ErrNotFound is returned by (*Store).Load when the directory holds no
// checkpoint at all (a first start).
var ErrNotFound = errors.New("no checkpoint")

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
type File struct {
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
func (c *File) Section(name string) ([]byte, bool) {
	for _, s := range c.Sections {
		if s.Name == name {
			return s.Data, true
		}
	}
	return nil, false
}

// Error says what is wrong with a checkpoint file.
type Error struct {
	Path    string
	Problem string
	err     error // the cause, when there is one
}

func (e *Error) Error() string { return "checkpoint " + e.Path + ": " + e.Problem }
func (e *Error) Unwrap() error { return e.err }

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
	// latestRejected is set when Load refused an existing latest file
	// (damaged, too large, not decodable, inconsistent): the next Save
	// moves it to FailedName, neither over the previous checkpoint
	// the run resumed from nor into oblivion (a file refused for its size
	// may be a good checkpoint of a larger replay.budget).
	latestRejected error
	// maxSize bounds the files Load reads (0: no bound but MaxReadSize).
	maxSize int64
}

// MaxReadSize bounds every checkpoint read when no tighter bound is set: a
// checkpoint file is read whole, and on a 32-bit board more than this could
// not be allocated anyway.
const maxReadSize = 1 << 30

// SetMaxSize bounds the size of the files Load accepts, so that a file
// larger than any state the configuration can produce is refused before it
// is read rather than exhausting memory.
func (s *Store) SetMaxSize(n int64) { s.maxSize = n }

// Open creates dir if needed (mode 0750) and removes temporary files
// left by a save that was interrupted (they are never valid checkpoints).
func Open(dir string, keepPrevious bool, log *slog.Logger) (*Store, error) {
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
	archiveStale, _ := filepath.Glob(filepath.Join(dir, archiveDir, tempPattern))
	stale = append(stale, archiveStale...)
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
func (s *Store) LatestPath() string { return filepath.Join(s.dir, LatestName) }

// PreviousPath is the path of the previous checkpoint file.
func (s *Store) PreviousPath() string { return filepath.Join(s.dir, PreviousName) }

// Save writes a new checkpoint atomically: a temporary file in the same
// directory, fsync, then the latest file becomes the previous one and the
// temporary file becomes the latest (two renames, each atomic), then the
// directory is fsynced. At every instant a crash leaves either the old or
// the new checkpoint loadable. It returns the size written.
func (s *Store) Save(created time.Time, sections ...Section) (int64, error) {
	return s.save(created, sections, true)
}

// SaveFailed writes a state that must not become the latest checkpoint to
// FailedName (atomically, replacing an older one). The latest and
// previous checkpoints are not touched.
func (s *Store) SaveFailed(created time.Time, sections ...Section) (int64, error) {
	return s.save(created, sections, false)
}

// FailedPath is the path of the file SaveFailed writes.
func (s *Store) FailedPath() string { return filepath.Join(s.dir, FailedName) }

func (s *Store) save(created time.Time, sections []Section, latest bool) (int64, error) {
	return saveFile(s.dir, created, sections, func(tmpName string) error {
		if !latest {
			return os.Rename(tmpName, s.FailedPath())
		}
		if s.keepPrevious {
			if err := s.rotate(s.LatestPath()); err != nil {
				return err
			}
		} else if err := s.setAsideRejected(); err != nil {
			return err
		}
		if err := os.Rename(tmpName, s.LatestPath()); err != nil {
			return err
		}
		s.latestValid = true
		s.latestRejected = nil
		return nil
	})
}

// saveFile writes the sections to a temporary file in dir, fsyncs it, hands
// its name to commit (which renames it into place) and fsyncs dir. On any
// failure the temporary file is removed and nothing else changes.
func saveFile(dir string, created time.Time, sections []Section, commit func(tmpName string) error) (int64, error) {
	return writeAtomic(dir, func(f *os.File) (int64, error) { return writeCheckpoint(f, created, sections) }, commit)
}

// writeAtomic is saveFile for any content: write fills the temporary file.
func writeAtomic(dir string, write func(*os.File) (int64, error), commit func(tmpName string) error) (int64, error) {
	tmp, err := os.CreateTemp(dir, tempPattern)
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
	size, err := write(tmp)
	if err != nil {
		return 0, fmt.Errorf("checkpoint save %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("checkpoint save: fsync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("checkpoint save: close %s: %w", tmpName, err)
	}
	if err := commit(tmpName); err != nil {
		return 0, fmt.Errorf("checkpoint save: %w", err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return size, fmt.Errorf("checkpoint save: fsync directory %s: %w", dir, err)
	}
	return size, nil
}

// setAsideRejected moves a latest file that Load refused to the failed
// slot, so that it stays available for inspection and is not taken for the
// previous checkpoint.
func (s *Store) setAsideRejected() error {
	if s.latestRejected == nil {
		return nil
	}
	if err := os.Rename(s.LatestPath(), s.FailedPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("setting the rejected latest checkpoint aside: %w", err)
	}
	s.log.Warn("the rejected latest checkpoint was set aside", "file", s.FailedPath(), "reason", s.latestRejected)
	s.latestRejected = nil
	return nil
}

// rotate moves a good latest checkpoint to the previous slot.
func (s *Store) rotate(latest string) error {
	if s.latestRejected != nil {
		return s.setAsideRejected()
	}
	if !s.latestValid {
		if _, err := os.Lstat(latest); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if _, err := readFile(latest, s.readLimit()); err != nil {
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
// returns ErrNotFound; if every file is damaged, an error naming each.
func (s *Store) Load() (*File, error) {
	return s.LoadAccepted(nil)
}

// LoadAccepted is Load with a further test: accept (if not nil) is given
// each checkpoint that passed its checksums, newest first, and a checkpoint
// it rejects is skipped like a damaged one, so the previous checkpoint is
// tried. A rejection that wraps ErrStop is returned at once instead: the
// file is sound but must not be replaced by an older one (it was made for
// another configuration). Files that are not regular or larger than the
// bound set with SetMaxSize are refused before they are read.
func (s *Store) LoadAccepted(accept func(*File) error) (*File, error) {
	var skipped, damaged []error
	for i, path := range []string{s.LatestPath(), s.PreviousPath()} {
		c, err := readFile(path, s.readLimit())
		if err == nil && accept != nil {
			if err = accept(c); errors.Is(err, ErrStop) {
				return nil, err
			}
			if err != nil {
				err = &Error{Path: path, Problem: err.Error(), err: err}
			}
		}
		if err != nil && i == 0 && !errors.Is(err, fs.ErrNotExist) {
			s.latestRejected = err
		}
		if err == nil {
			c.Skipped = skipped
			s.latestValid = i == 0
			if len(skipped) > 0 {
				s.log.Warn("resuming from the previous checkpoint", "file", path, "created", c.Created, "skipped", errors.Join(skipped...))
			}
			return c, nil
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if i == 0 {
				skipped = append(skipped, fmt.Errorf("checkpoint %s: missing", path))
			}
		default:
			if i == 0 && s.keepPrevious {
				s.log.Warn("latest checkpoint unusable; trying the previous one", "file", path, "reason", problemOf(err))
			} else {
				s.log.Error("checkpoint unusable", "file", path, "reason", problemOf(err))
			}
			skipped = append(skipped, err)
			damaged = append(damaged, err)
		}
	}
	if len(damaged) == 0 {
		return nil, ErrNotFound
	}
	return nil, fmt.Errorf("no usable checkpoint in %s: %w", s.dir, errors.Join(damaged...))
}

// ErrStop marks a checkpoint rejection that must stop the start rather than
// fall back to an older checkpoint.
var ErrStop = errors.New("checkpoint does not fit the configuration")

func problemOf(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Problem
	}
	return err.Error()
}

func (s *Store) readLimit() int64 {
	if s.maxSize > 0 {
		return s.maxSize
	}
	return maxReadSize
}

// openRegular opens path for reading only if it is a regular file no larger
// than limit: a symlink to /dev/zero, a FIFO or a huge file must not make
// the daemon read without end or hang. O_NOFOLLOW and the check of the
// opened file close the window between the Lstat and the open.
func openRegular(path string, limit int64) (*os.File, int64, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, &Error{Path: path, Problem: fmt.Sprintf("not a regular file (%s); refused without reading it", fileKind(fi.Mode()))}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, &Error{Path: path, Problem: fmt.Sprintf("not a regular file (%s); refused without reading it", fileKind(fi.Mode()))}
	}
	if fi.Size() > limit {
		f.Close()
		return nil, 0, &Error{Path: path, Problem: fmt.Sprintf("%d bytes, more than the %d bytes the configuration can produce; refused without reading it",
			fi.Size(), limit)}
	}
	return f, fi.Size(), nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// readRegular reads a whole regular file of at most limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	f, size, err := openRegular(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than the size shows a file that grew since the stat;
	// the read never goes past the limit.
	data, err := io.ReadAll(io.LimitReader(f, min(size, limit)+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &Error{Path: path, Problem: fmt.Sprintf("grew past %d bytes while being read; refused", limit)}
	}
	return data, nil
}

// ReadBytes reads a checkpoint file for inspection: only a regular
// file, and at most limit bytes (MaxReadSize if limit is 0).
func ReadBytes(path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = maxReadSize
	}
	return readRegular(path, limit)
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
	binary.LittleEndian.PutUint32(hdr[8:], formatVersion)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(sections)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(created.UnixNano()))
	// hdr[24:32], the total length, is patched at the end.
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := w.Write(hdr[:]); err != nil {
		return 0, err
	}
	off := int64(checkpointHeaderSize)
	crc := crc32.New(binio.Castagnoli)
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

// ReadFile reads and fully verifies one checkpoint file. Errors
// other than a missing file are *Error naming the file and the
// problem.
func ReadFile(path string) (*File, error) {
	return readFile(path, maxReadSize)
}

func readFile(path string, limit int64) (*File, error) {
	data, err := readRegular(path, limit)
	var ce *Error
	if errors.As(err, &ce) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	info, err := Parse(data)
	if err != nil {
		return nil, &Error{Path: path, Problem: err.Error()}
	}
	return &File{
		Path:     path,
		Version:  info.Version,
		Created:  info.Created,
		Size:     int64(len(data)),
		Sections: info.Sections,
	}, nil
}

// Info is what Parse could read from a checkpoint,
// valid or not, for 'bnnd checkpoint inspect'.
type Info struct {
	Version      int
	Created      time.Time
	DeclaredSize int64
	Size         int64
	Sections     []SectionData
	SectionOK    []bool // per section: its own checksum matches
	ChecksumOK   bool   // the whole-file checksum matches
}

// Parse verifies a checkpoint held in memory. It returns what
// could be read even when it also returns an error, so that a damaged file
// can still be inspected.
func Parse(data []byte) (*Info, error) {
	info := &Info{Size: int64(len(data))}
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
	if info.Version != formatVersion {
		return info, fmt.Errorf("format version %d, this bnnd reads version %d", info.Version, formatVersion)
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
	computed := crc32.Checksum(body, binio.Castagnoli)
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
		info.SectionOK = append(info.SectionOK, crc32.Checksum(sec, binio.Castagnoli) == dcrc)
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

// Peeked is one file's copy of a section read by PeekSection.
type Peeked struct {
	Path string
	Data []byte
}

// PeekSection reads one small section of each checkpoint file that holds
// it intact, newest first, without reading the rest of the files: the
// section table is walked with reads of its headers, and only the named
// section's data (at most limit bytes) is read and checked against its own
// checksum. The daemon needs the normaliser before it can open its source,
// and the source's shape before it knows how large a checkpoint may be;
// this breaks the circle without reading a file of unknown size. Files
// that lack the section or cannot be read are left out (errs says why).
func (s *Store) PeekSection(name string, limit int64) (found []Peeked, errs []error) {
	for _, p := range []string{s.LatestPath(), s.PreviousPath()} {
		b, err := peekSection(p, name, limit)
		switch {
		case err == nil:
			found = append(found, Peeked{Path: p, Data: b})
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	return found, errs
}

func peekSection(path, name string, limit int64) ([]byte, error) {
	f, size, err := openRegular(path, maxReadSize)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bad := func(format string, args ...any) error {
		return &Error{Path: path, Problem: fmt.Sprintf(format, args...)}
	}
	var hdr [checkpointHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, bad("header: %v", err)
	}
	if string(hdr[:8]) != checkpointMagic || binary.LittleEndian.Uint32(hdr[8:]) != formatVersion {
		return nil, bad("not a version %d bnnd checkpoint", formatVersion)
	}
	count := binary.LittleEndian.Uint32(hdr[12:])
	if count > maxSections {
		return nil, bad("header declares %d sections", count)
	}
	off := int64(checkpointHeaderSize)
	end := size - checkpointTrailer
	for i := uint32(0); i < count; i++ {
		var sh [sectionHeaderFixed + maxSectionName]byte
		n, _ := f.ReadAt(sh[:], off)
		if n < 2 {
			return nil, bad("section %d header runs past the end", i)
		}
		nameLen := int(binary.LittleEndian.Uint16(sh[:]))
		if nameLen > maxSectionName || n < sectionHeaderFixed+nameLen {
			return nil, bad("section %d header is malformed", i)
		}
		secName := string(sh[2 : 2+nameLen])
		dlen := binary.LittleEndian.Uint64(sh[2+nameLen:])
		dcrc := binary.LittleEndian.Uint32(sh[2+nameLen+8:])
		off += int64(sectionHeaderFixed + nameLen)
		if dlen > uint64(end-off) {
			return nil, bad("section %q runs past the end", secName)
		}
		if secName == name {
			if int64(dlen) > limit {
				return nil, bad("section %q has %d bytes, at most %d expected", name, dlen, limit)
			}
			data := make([]byte, dlen)
			if _, err := f.ReadAt(data, off); err != nil {
				return nil, bad("section %q: %v", name, err)
			}
			if crc32.Checksum(data, binio.Castagnoli) != dcrc {
				return nil, bad("section %q: checksum mismatch", name)
			}
			return data, nil
		}
		off += int64(dlen)
	}
	return nil, fmt.Errorf("checkpoint %s: no %q section: %w", path, name, fs.ErrNotExist)
}

// MetaSection names the section that holds Meta.
const MetaSection = "meta"

// Meta is the "meta" section every checkpoint the daemon writes carries:
// what 'bnnd checkpoint list' and 'inspect' show and what a resume checks
// against the configuration.
type Meta struct {
	Version  string   `json:"bnnd_version"`
	Model    string   `json:"model"`
	Source   string   `json:"source"`
	Momentum []string `json:"momentum"`
	Classes  []string `json:"classes"`
	// Outputs is the number of output units, the most classes labels can
	// create; absent (0) in checkpoints written before classes could grow,
	// whose models have one unit per class.
	Outputs int       `json:"outputs,omitempty"`
	Input   string    `json:"input_shape"`
	Step    uint64    `json:"step"`
	Saved   time.Time `json:"saved"`
	Reason  string    `json:"reason"`
}
