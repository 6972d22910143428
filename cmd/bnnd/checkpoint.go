package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bnnd/bnnd/daemon/checkpoint"
	"github.com/bnnd/bnnd/daemon/config"
)

func init() {
	register(&command{
		name:    "checkpoint",
		summary: "inspect, list and restore checkpoints: version, time, sections, checksums, meta, archive",
		run:     runCheckpoint,
	})
}

const checkpointUsage = `usage:
  bnnd checkpoint inspect [--json] FILE|DIR   a checkpoint file, or the latest and previous
                                             checkpoints of a state directory
  bnnd checkpoint list [--json] [DIR]         the checkpoints of a state directory: latest,
                                             previous, failed and archived (time, step,
                                             reason, size, model, classes)
  bnnd checkpoint restore [--state-dir DIR] [--keep N] ARCHIVED_FILE
                                             make an archived checkpoint the latest one; the
                                             current latest goes into the archive. The daemon
                                             must be stopped (refused while it holds DIR).
DIR defaults to the daemon's state directory ($STATE_DIRECTORY, $XDG_STATE_HOME/bnnd or
~/.local/state/bnnd; /var/lib/bnnd for the service).`

func runCheckpoint(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runCheckpointList(args[1:], stdout, stderr)
		case "restore":
			return runCheckpointRestore(args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "inspect" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stderr, checkpointUsage)
			return nil
		}
		return usagef("expected 'inspect', 'list' or 'restore'\n%s", checkpointUsage)
	}
	fs := newFlagSet("checkpoint inspect", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	// Flags may come before or after the file name.
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("checkpoint inspect: missing FILE\n%s", checkpointUsage)
	}
	target := rest[0]
	if err := fs.Parse(rest[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}

	paths := []string{target}
	if fi, err := os.Stat(target); err == nil && fi.IsDir() {
		paths = []string{filepath.Join(target, checkpoint.LatestName), filepath.Join(target, checkpoint.PreviousName)}
	}
	var reports []inspectReport
	var failed []error
	for _, p := range paths {
		r, err := inspectCheckpoint(p)
		if err != nil && errors.Is(err, os.ErrNotExist) && len(paths) > 1 {
			r.Error = "missing"
			reports = append(reports, r)
			continue
		}
		reports = append(reports, r)
		if err != nil {
			failed = append(failed, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = reports
		if len(reports) == 1 {
			v = reports[0]
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		for i, r := range reports {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			r.writeText(stdout)
		}
	}
	return errors.Join(failed...)
}

type inspectSection struct {
	Name       string `json:"name"`
	Size       int    `json:"size"`
	ChecksumOK bool   `json:"checksum_ok"`
}

type inspectReport struct {
	File         string           `json:"file"`
	Version      int              `json:"version,omitempty"`
	Created      *time.Time       `json:"created,omitempty"`
	Size         int64            `json:"size"`
	DeclaredSize int64            `json:"declared_size,omitempty"`
	ChecksumOK   bool             `json:"checksum_ok"`
	Valid        bool             `json:"valid"`
	Error        string           `json:"error,omitempty"`
	Sections     []inspectSection `json:"sections"`
	Meta         json.RawMessage  `json:"meta,omitempty"`
}

func inspectCheckpoint(path string) (inspectReport, error) {
	r := inspectReport{File: path, Sections: []inspectSection{}}
	data, err := checkpoint.ReadBytes(path, 0)
	if err != nil {
		r.Error = err.Error()
		return r, err
	}
	info, perr := checkpoint.Parse(data)
	r.Size, r.DeclaredSize, r.ChecksumOK, r.Valid = info.Size, info.DeclaredSize, info.ChecksumOK, perr == nil
	r.Version = info.Version
	if info.Version != 0 {
		created := info.Created
		r.Created = &created
	}
	for i, s := range info.Sections {
		r.Sections = append(r.Sections, inspectSection{Name: s.Name, Size: len(s.Data), ChecksumOK: info.SectionOK[i]})
		if s.Name == "meta" && json.Valid(s.Data) {
			var compact bytes.Buffer
			if json.Compact(&compact, s.Data) == nil {
				r.Meta = compact.Bytes()
			}
		}
	}
	if perr != nil {
		r.Error = perr.Error()
		return r, &checkpoint.Error{Path: path, Problem: perr.Error()}
	}
	return r, nil
}

func (r inspectReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "file:     %s\n", r.File)
	if r.Error == "missing" {
		fmt.Fprintf(w, "status:   missing\n")
		return
	}
	if r.Version != 0 {
		fmt.Fprintf(w, "format:   version %d\n", r.Version)
	}
	if r.Created != nil {
		fmt.Fprintf(w, "created:  %s\n", r.Created.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "size:     %d bytes", r.Size)
	if r.DeclaredSize != 0 && r.DeclaredSize != r.Size {
		fmt.Fprintf(w, " (header declares %d)", r.DeclaredSize)
	}
	fmt.Fprintln(w)
	status := "valid (CRC-32C ok)"
	if !r.Valid {
		status = "INVALID: " + r.Error
	}
	fmt.Fprintf(w, "status:   %s\n", status)
	if len(r.Sections) > 0 {
		fmt.Fprintln(w, "sections:")
		for _, s := range r.Sections {
			ok := "ok"
			if !s.ChecksumOK {
				ok = "CHECKSUM MISMATCH"
			}
			fmt.Fprintf(w, "  %-12s %10d bytes  %s\n", s.Name, s.Size, ok)
		}
	}
	if len(r.Meta) > 0 {
		var pretty bytes.Buffer
		json.Indent(&pretty, r.Meta, "  ", "  ")
		fmt.Fprintf(w, "meta:\n  %s\n", pretty.String())
	}
}

func defaultStateDir() (string, error) {
	dir, err := config.Default().StateDir()
	if err != nil {
		return "", usagef("no state directory given and none can be derived: %v", err)
	}
	return dir, nil
}

func runCheckpointList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("checkpoint list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) > 1 {
		return usagef("checkpoint list: unexpected argument %q\n%s", pos[1], checkpointUsage)
	}
	var dir string
	if len(pos) == 1 {
		dir = pos[0]
	} else if dir, err = defaultStateDir(); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("state directory: %w", err)
	} else if !fi.IsDir() {
		return usagef("checkpoint list: %s is not a directory (use 'bnnd checkpoint inspect' for a file)", dir)
	}
	entries, err := checkpoint.List(dir)
	if *asJSON {
		if entries == nil {
			entries = []checkpoint.Entry{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(entries); jerr != nil {
			return jerr
		}
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "no checkpoints in %s\n", dir)
		return err
	}
	fmt.Fprintf(stdout, "%-8s  %-24s  %8s  %-22s  %10s  %-10s  %-7s  %s\n", "SLOT", "CREATED", "STEP", "REASON", "BYTES", "MODEL", "CLASSES", "FILE")
	for _, e := range entries {
		created, step, reason, model, classes := "-", "-", "-", "-", "-"
		if !e.Created.IsZero() {
			created = e.Created.Format("2006-01-02T15:04:05.000Z")
		}
		if e.Error == "" {
			step, reason, model = fmt.Sprint(e.Step), e.Reason, e.Model
			classes = fmt.Sprint(len(e.Classes))
		} else {
			reason = "INVALID: " + e.Error
		}
		file := e.Path
		if rel, rerr := filepath.Rel(dir, e.Path); rerr == nil {
			file = rel
		}
		fmt.Fprintf(stdout, "%-8s  %-24s  %8s  %-22s  %10d  %-10s  %-7s  %s\n", e.Slot, created, step, reason, e.Size, model, classes, file)
	}
	return err
}

func runCheckpointRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("checkpoint restore", stderr)
	stateDir := fs.String("state-dir", "", "the daemon's state `directory` (default: as the daemon resolves it)")
	keep := fs.Int("keep", config.Default().Checkpoint.ArchiveKeep, "archived checkpoints to keep (checkpoint.archive_keep)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError{err}
	}
	if len(pos) != 1 {
		return usagef("checkpoint restore: want one ARCHIVED_FILE\n%s", checkpointUsage)
	}
	dir := *stateDir
	if dir == "" {
		if dir, err = defaultStateDir(); err != nil {
			return err
		}
	}
	file := pos[0]
	// A bare name is looked up in the archive, as 'list' shows it.
	if _, err := os.Lstat(file); err != nil && !strings.ContainsRune(file, filepath.Separator) {
		if alt := filepath.Join(checkpoint.ArchivePath(dir), file); fileExists(alt) {
			file = alt
		}
	}
	res, err := checkpoint.Restore(dir, file, *keep)
	if res.Archived != "" {
		fmt.Fprintf(stdout, "archived the replaced latest checkpoint as %s\n", res.Archived)
	}
	if res.Restored != "" {
		fmt.Fprintf(stdout, "restored %s as %s; the daemon resumes from it at its next start\n", res.Restored, filepath.Join(dir, checkpoint.LatestName))
	}
	return err
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
