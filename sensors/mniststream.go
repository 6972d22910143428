package sensors

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// mnistStream is the streaming Source for "mnist:" specs: it reads the IDX
// label and image files of each part sequentially, one example per Next,
// and reopens them at the end when looping. Unlike the MNIST Dataset it
// holds no images, so a daemon replaying the 60,000-image train split needs
// a few hundred KiB (the read and gzip buffers) instead of tens of MiB. It
// yields the examples of LoadMNIST, in order.
type mnistStream struct {
	sourceState // mu also serialises Next and Close
	dir         string
	parts       []string // IDX prefixes in order: "train", "t10k"
	loop        bool
	shape       Shape
	remap       [256]int // label byte -> class index
	cls         []string

	part      int        // index into parts of the open files
	cur       *idxCursor // nil until the first Next and between parts
	failed    error      // a read error is final: the files no longer line up
	pixelsBuf []byte
}

// idxCursor is one part's pair of open files and the position in them.
type idxCursor struct {
	labels, images         io.ReadCloser
	labelPath, imagePath   string
	lr, ir                 *bufio.Reader
	count, next            int   // items in the part; index of the next one
	labelOffset, imgOffset int64 // uncompressed byte offset of the next item
}

func (c *idxCursor) close() error {
	return errors.Join(c.labels.Close(), c.images.Close())
}

// openMNISTStream validates the spec and every part's headers and labels
// (one sequential pass over the small label files, so a bad label or a
// class missing from opt.Classes fails at open as with LoadDataset), then
// returns a stream positioned before the first example.
func openMNISTStream(s *spec, split Split, loop bool, opt LoadOptions) (Source, error) {
	dir, err := mnistSpecDir(s, opt)
	if err != nil {
		return nil, err
	}
	m := &mnistStream{dir: dir, loop: loop, cls: mnistClasses, sourceState: sourceState{health: Health{Healthy: true, State: "ok"}}}
	switch split {
	case SplitTrain:
		m.parts = []string{"train"}
	case SplitTest:
		m.parts = []string{"t10k"}
	case SplitAll:
		m.parts = []string{"train", "t10k"}
	default:
		return nil, s.errorf("invalid split %d", int(split))
	}
	for i := range m.remap {
		m.remap[i] = i
	}
	var seen [256]bool
	for i := range m.parts {
		if err := m.scanPart(i, &seen); err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", s.raw, err)
		}
	}
	if opt.Classes != nil {
		if err := m.remapClasses(opt.Classes, &seen); err != nil {
			return nil, fmt.Errorf("sensors: spec %q: %w", s.raw, err)
		}
	}
	m.pixelsBuf = make([]byte, m.shape.Size())
	return m, nil
}

// scanPart opens part i, checks its headers against the shape of the
// earlier parts, and records which labels occur.
func (m *mnistStream) scanPart(i int, seen *[256]bool) error {
	c, err := m.openPart(i)
	if err != nil {
		return err
	}
	defer c.close()
	var buf [4096]byte
	for c.labelOffset < idxLabelHeader+int64(c.count) {
		n := min(len(buf), int(idxLabelHeader+int64(c.count)-c.labelOffset))
		got, err := io.ReadFull(c.lr, buf[:n])
		if err != nil {
			return fmt.Errorf("sensors: %s: reading %d labels: at %s: %w", c.labelPath, c.count, offsetIn(c.labels, c.labelOffset+int64(got)), unexpectedEOF(err))
		}
		for k, l := range buf[:n] {
			if int(l) >= len(mnistClasses) {
				return fmt.Errorf("sensors: %s: label %d at item %d (%s) is not a digit 0-9", c.labelPath, l, c.labelOffset-idxLabelHeader+int64(k), offsetIn(c.labels, c.labelOffset+int64(k)))
			}
			seen[l] = true
		}
		c.labelOffset += int64(n)
	}
	return nil
}

// IDX header sizes: magic and one (labels) or three (images) dimensions.
const (
	idxLabelHeader = 8
	idxImageHeader = 16
)

// openPart opens part i's files and reads their headers.
func (m *mnistStream) openPart(i int) (*idxCursor, error) {
	part := m.parts[i]
	lr, lpath, err := openIDX(m.dir, part, "labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	ir, ipath, err := openIDX(m.dir, part, "images-idx3-ubyte")
	if err != nil {
		lr.Close()
		return nil, err
	}
	c := &idxCursor{labels: lr, images: ir, labelPath: lpath, imagePath: ipath, lr: bufferOf(lr), ir: bufferOf(ir)}
	if err := m.readHeaders(c, part); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (m *mnistStream) readHeaders(c *idxCursor, part string) error {
	ldims, err := readIDXHeader(c.lr, c.labelPath, 1)
	if err != nil {
		return err
	}
	idims, err := readIDXHeader(c.ir, c.imagePath, 3)
	if err != nil {
		return err
	}
	if ldims[0] != idims[0] {
		return fmt.Errorf("sensors: MNIST %s: %d labels in %s but %d images in %s", part, ldims[0], c.labelPath, idims[0], c.imagePath)
	}
	shape := Shape{Channels: 1, Height: idims[1], Width: idims[2]}
	if shape.Size() > 1<<20 {
		return fmt.Errorf("sensors: %s: image size %dx%d too large", c.imagePath, shape.Height, shape.Width)
	}
	if m.shape == (Shape{}) {
		m.shape = shape
	} else if m.shape != shape {
		return fmt.Errorf("sensors: %s: images are %dx%d but earlier files had %dx%d", c.imagePath, shape.Height, shape.Width, m.shape.Height, m.shape.Width)
	}
	c.count = ldims[0]
	c.labelOffset, c.imgOffset = idxLabelHeader, idxImageHeader
	return nil
}

// remapClasses makes digit d's label the index of its name in classes; the
// labels present (seen) must all be among them.
func (m *mnistStream) remapClasses(classes []string, seen *[256]bool) error {
	if err := remapDigits(classes, seen, m.remap[:]); err != nil {
		return err
	}
	m.cls = classes
	return nil
}

// offsetIn names a byte offset of an IDX file, opened by openIDX.
func offsetIn(rc io.ReadCloser, off int64) string {
	if r, ok := rc.(*readCloser); ok && r.gzipped {
		return fmt.Sprintf("byte %d of the decompressed data", off)
	}
	return fmt.Sprintf("byte %d", off)
}

// bufferOf returns the buffered reader openIDX already put on top of a file
// (or its gzip stream), so bytes are not copied through a second buffer.
func bufferOf(rc io.ReadCloser) *bufio.Reader {
	if r, ok := rc.(*readCloser); ok {
		if br, ok := r.Reader.(*bufio.Reader); ok {
			return br
		}
	}
	return bufio.NewReader(rc)
}

// unexpectedEOF turns io.EOF inside a file into io.ErrUnexpectedEOF, so a
// truncated file is never taken for the end of the replay.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (m *mnistStream) Next(ctx context.Context) (Sample, error) {
	if err := m.lockOpen(ctx); err != nil {
		return Sample{}, err
	}
	defer m.mu.Unlock()
	if m.failed != nil {
		return Sample{}, m.failed
	}
	for m.cur == nil || m.cur.next == m.cur.count {
		if m.cur != nil {
			err := m.cur.close()
			m.cur = nil
			if err != nil {
				return Sample{}, m.fail(fmt.Errorf("sensors: MNIST %s: closing: %w", m.parts[m.part], err))
			}
			m.part++
		}
		if m.part == len(m.parts) {
			if !m.loop {
				m.health.State = "ended"
				return Sample{}, io.EOF
			}
			m.part = 0
		}
		c, err := m.openPart(m.part)
		if err != nil {
			return Sample{}, m.fail(err)
		}
		m.cur = c
	}
	c := m.cur
	l, err := c.lr.ReadByte()
	if err != nil {
		return Sample{}, m.fail(fmt.Errorf("sensors: %s: reading label %d of %d at %s: %w", c.labelPath, c.next, c.count, offsetIn(c.labels, c.labelOffset), unexpectedEOF(err)))
	}
	if int(l) >= len(mnistClasses) {
		return Sample{}, m.fail(fmt.Errorf("sensors: %s: label %d at item %d (%s) is not a digit 0-9", c.labelPath, l, c.next, offsetIn(c.labels, c.labelOffset)))
	}
	c.labelOffset++
	if got, err := io.ReadFull(c.ir, m.pixelsBuf); err != nil {
		return Sample{}, m.fail(fmt.Errorf("sensors: %s: reading image %d of %d: truncated at %s: %w", c.imagePath, c.next, c.count, offsetIn(c.images, c.imgOffset+int64(got)), unexpectedEOF(err)))
	}
	c.imgOffset += int64(len(m.pixelsBuf))
	c.next++

	smp := Sample{Data: make([]float32, len(m.pixelsBuf)), Shape: m.shape, Time: time.Now()}
	for k, p := range m.pixelsBuf {
		smp.Data[k] = pixelScale[p]
	}
	smp.Label = m.remap[l]
	smp.LabelName = m.cls[smp.Label]
	m.health.Samples++
	m.health.Windows++
	return smp, nil
}

// fail records a read error; the stream then returns it from every Next.
func (m *mnistStream) fail(err error) error {
	if m.cur != nil {
		m.cur.close()
		m.cur = nil
	}
	m.failed = err
	m.health.Healthy, m.health.State = false, "unhealthy"
	m.health.Errors++
	m.health.LastError, m.health.LastErrorAt = err.Error(), time.Now()
	return err
}

func (m *mnistStream) Classes() []string { return m.cls }

// BytePixels is true: the values are the IDX bytes divided by 255.
func (m *mnistStream) BytePixels() bool { return true }

func (m *mnistStream) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.markClosed()
	if m.cur != nil {
		err := m.cur.close()
		m.cur = nil
		return err
	}
	return nil
}
