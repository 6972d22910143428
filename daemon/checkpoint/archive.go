package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The archive keeps the checkpoints that a reset or a restore would
// otherwise replace: <state dir>/archive/checkpoint-<created>.bnnd, the
// newest checkpoint.archive_keep of them. A reset is thereby undone with
// 'bnnd checkpoint restore'.
const (
	archiveDir         = "archive"
	DefaultArchiveKeep = 3
	archivePrefix      = "checkpoint-"
	archiveSuffix      = ".bnnd"
	archiveTimeLayout  = "20060102T150405.000000000Z"
	lockFile           = ".lock"
)

// ArchivePath is the archive directory of a state directory.
func ArchivePath(stateDir string) string { return filepath.Join(stateDir, archiveDir) }

func archiveName(created time.Time) string {
	return archivePrefix + created.UTC().Format(archiveTimeLayout) + archiveSuffix
}

// LockStateDir takes an exclusive lock on the state directory (creating it
// if needed), held until unlock is called or the process ends, even by
// SIGKILL. The daemon holds it while it runs, so that a restore cannot
// replace the checkpoint under it and two daemons cannot share a
// directory.
func LockStateDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("state directory %s is in use by %s (a running bnnd); stop it first (systemctl stop bnnd)", dir, who)
		}
		return nil, fmt.Errorf("state directory lock %s: %w", path, err)
	}
	// The pid is only for the message above; the lock is the flock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// Archive writes sections as a new checkpoint in the archive directory and
// removes the oldest archived checkpoints beyond keep. It returns the path
// written.
func (s *Store) Archive(created time.Time, keep int, sections ...Section) (string, error) {
	dir := ArchivePath(s.dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("checkpoint archive: %w", err)
	}
	path := filepath.Join(dir, archiveName(created))
	_, err := saveFile(dir, created, sections, func(tmpName string) error {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s exists", path)
		}
		return os.Rename(tmpName, path)
	})
	if err != nil {
		return "", fmt.Errorf("checkpoint archive: %w", err)
	}
	if err := pruneArchive(dir, keep, s.log.Info); err != nil {
		return path, err
	}
	return path, nil
}

// archived lists the archived checkpoint files, oldest first (the names
// sort by creation time).
func archived(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, archivePrefix) && strings.HasSuffix(n, archiveSuffix) && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func pruneArchive(dir string, keep int, logf func(msg string, args ...any)) error {
	names, err := archived(dir)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	for len(names) > max(keep, 0) {
		p := filepath.Join(dir, names[0])
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("checkpoint archive: %w", err)
		}
		logf("removed the oldest archived checkpoint", "file", p, "archive_keep", keep)
		names = names[1:]
	}
	return nil
}

// Entry describes one checkpoint file of a state directory for
// 'bnnd checkpoint list'.
type Entry struct {
	Slot    string    `json:"slot"` // latest, previous, failed or archive
	Path    string    `json:"file"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	Step    uint64    `json:"step"`
	Reason  string    `json:"reason"`
	Model   string    `json:"model"`
	Classes []string  `json:"classes"`
	Error   string    `json:"error,omitempty"` // why the file is not a valid checkpoint
}

// List describes the checkpoints of a state directory: the
// latest, previous and failed slots and the archive (oldest first).
func List(stateDir string) ([]Entry, error) {
	var out []Entry
	for _, f := range []struct{ slot, name string }{{"latest", LatestName}, {"previous", PreviousName}, {"failed", FailedName}} {
		p := filepath.Join(stateDir, f.name)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, describeCheckpoint(f.slot, p))
	}
	names, err := archived(ArchivePath(stateDir))
	if err != nil {
		return out, fmt.Errorf("checkpoint archive: %w", err)
	}
	for _, n := range names {
		out = append(out, describeCheckpoint("archive", filepath.Join(ArchivePath(stateDir), n)))
	}
	return out, nil
}

func describeCheckpoint(slot, path string) Entry {
	e := Entry{Slot: slot, Path: path}
	if fi, err := os.Lstat(path); err == nil {
		e.Size = fi.Size()
	}
	ck, err := ReadFile(path)
	if err != nil {
		e.Error = problemOf(err)
		return e
	}
	e.Created = ck.Created
	var m Meta
	if b, ok := ck.Section(MetaSection); !ok {
		e.Error = "no meta section"
	} else if err := json.Unmarshal(b, &m); err != nil {
		e.Error = "meta: " + err.Error()
	}
	e.Step, e.Reason, e.Model, e.Classes = m.Step, m.Reason, m.Model, m.Classes
	return e
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	Restored string // the archived file now the latest checkpoint
	Archived string // where the replaced latest checkpoint went ("" if there was none)
}

// Restore makes an archived checkpoint the latest one of
// stateDir. The current latest checkpoint goes into the archive first, so
// a restore loses nothing and can itself be undone. It refuses while a
// daemon holds the state directory, and refuses a file that is not a
// valid checkpoint. The archived file stays in the archive.
func Restore(stateDir, file string, keep int) (RestoreResult, error) {
	var res RestoreResult
	unlock, err := LockStateDir(stateDir)
	if err != nil {
		return res, err
	}
	defer unlock()
	data, err := ReadBytes(file, 0)
	if err != nil {
		return res, err
	}
	if _, err := Parse(data); err != nil {
		return res, &Error{Path: file, Problem: err.Error() + "; not restored"}
	}
	archive := ArchivePath(stateDir)
	if err := os.MkdirAll(archive, 0o750); err != nil {
		return res, fmt.Errorf("checkpoint archive: %w", err)
	}
	latest := filepath.Join(stateDir, LatestName)
	if res.Archived, err = archiveLatest(latest, archive); err != nil {
		return res, err
	}
	_, err = writeAtomic(stateDir, func(f *os.File) (int64, error) {
		n, err := f.Write(data)
		return int64(n), err
	}, func(tmpName string) error {
		return os.Rename(tmpName, latest)
	})
	if err != nil {
		return res, fmt.Errorf("restoring %s: %w", file, err)
	}
	res.Restored = file
	if err := syncDir(archive); err != nil {
		return res, fmt.Errorf("checkpoint archive: fsync: %w", err)
	}
	return res, pruneArchive(archive, max(keep, 1), func(string, ...any) {})
}

// archiveLatest moves the latest checkpoint file into the archive under
// the name of its creation time. A latest that is already archived (it was
// restored from there) is simply removed. It returns the archived path.
func archiveLatest(latest, archive string) (string, error) {
	fi, err := os.Lstat(latest)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	created := fi.ModTime()
	if ck, err := ReadFile(latest); err == nil {
		created = ck.Created
	}
	dst := filepath.Join(archive, archiveName(created))
	if other, err := os.Lstat(dst); err == nil {
		a, _ := ReadBytes(latest, 0)
		b, _ := ReadBytes(dst, 0)
		if other.Size() == fi.Size() && a != nil && string(a) == string(b) {
			return dst, os.Remove(latest)
		}
		dst = strings.TrimSuffix(dst, archiveSuffix) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10) + archiveSuffix
	}
	if err := os.Rename(latest, dst); err != nil {
		return "", fmt.Errorf("archiving the latest checkpoint: %w", err)
	}
	return dst, nil
}
