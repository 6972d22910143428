package bnn

import (
	"errors"
	"fmt"
	"io"

	"github.com/bnnd/bnnd/internal/binio"
)

// Normalizer is the per-channel input standardisation learned from the
// training data (x−Mean)/Std; it travels with the model so a deployed model
// sees inputs scaled as in training. Empty means the inputs are used as is.
type Normalizer struct{ Mean, Std []float32 }

// SetNormalizer records the input normalisation saved with the model.
func (n *Network) SetNormalizer(nm Normalizer) {
	n.norm = Normalizer{Mean: append([]float32(nil), nm.Mean...), Std: append([]float32(nil), nm.Std...)}
}

// Normalizer returns the recorded input normalisation.
func (n *Network) Normalizer() Normalizer { return n.norm }

// Model file layout (all integers little-endian):
//
//	magic   [8]byte "BNNDMODL"
//	version uint32  (ModelVersion)
//	length  uint64  payload bytes
//	payload         spec name, input shape, classes, output units (from
//	                version 2; version 1 has one per class), normaliser, layers
//	crc     uint32  CRC-32C (Castagnoli) of everything before it
//
// A layer is: kind u8, in u32, out u32, weights (out·Words(in) u64), then
// batch-norm scale, shift, running mean, running variance (out f32 each).
const (
	// ModelMagic starts every model file.
	ModelMagic = "BNNDMODL"
	// ModelVersion is the model file version this package writes; it reads
	// version 1 too.
	ModelVersion = 2
	// maxModelBytes bounds what ReadModel accepts, so a corrupt length field
	// cannot make it allocate without limit.
	maxModelBytes = 1 << 30
)

// Errors ReadModel wraps, for errors.Is.
var (
	ErrBadMagic    = errors.New("not a bnnd model file (bad magic)")
	ErrVersion     = errors.New("unsupported model file version")
	ErrChecksum    = errors.New("model file checksum mismatch")
	ErrTruncated   = errors.New("model file truncated")
	ErrModelFormat = errors.New("malformed model file")
)

var modelFrame = binio.Frame{
	Magic: ModelMagic, What: "model", MinVersion: 1, MaxVersion: ModelVersion, MaxLength: maxModelBytes,
	BadMagic: ErrBadMagic, Version: ErrVersion, Checksum: ErrChecksum, Truncated: ErrTruncated, Format: ErrModelFormat,
}

// WriteTo writes the model (architecture, weights, batch-norm parameters and
// statistics, normaliser, class names) in the versioned, checksummed format.
// Optimizer state is not part of it (see bop.Optimizer.WriteState).
func (n *Network) WriteTo(w io.Writer) (int64, error) {
	var p binio.Writer
	p.Str(n.spec.Name)
	p.U32(uint32(n.in.Height))
	p.U32(uint32(n.in.Width))
	p.U32(uint32(n.in.Channels))
	p.U32(uint32(len(n.classes)))
	for _, c := range n.classes {
		p.Str(c)
	}
	p.U32(uint32(n.opt.Outputs))
	p.F32s(n.norm.Mean)
	p.F32s(n.norm.Std)
	p.U32(uint32(len(n.layers)))
	for _, l := range n.layers {
		p.U8(uint8(l.kind))
		p.U32(uint32(l.in))
		p.U32(uint32(l.out))
		p.U64s(l.w)
		for _, v := range l.bn.stored() {
			p.F32s(v)
		}
	}
	k, err := w.Write(modelFrame.Append(nil, ModelVersion, p.Bytes()))
	if err != nil {
		return int64(k), fmt.Errorf("bnn: writing model: %w", err)
	}
	return int64(k), nil
}

// ReadModel reads a model written by WriteTo and builds a Network around it
// with the buffers opt asks for. Truncated files, other versions and checksum
// mismatches are errors wrapping ErrTruncated, ErrVersion and ErrChecksum.
func ReadModel(r io.Reader, opt Options) (*Network, error) {
	version, payload, err := modelFrame.Read(r)
	if err != nil {
		return nil, fmt.Errorf("bnn: %w", err)
	}
	d := binio.NewReader(payload, ErrModelFormat)
	name := d.Str("model name")
	in := Shape{Height: int(d.U32("input height")), Width: int(d.U32("input width")), Channels: int(d.U32("input channels"))}
	nc := int(d.U32("class count"))
	if d.Err() == nil && nc > len(payload) {
		return nil, fmt.Errorf("bnn: %w: class count %d", ErrModelFormat, nc)
	}
	var classes []string
	for i := 0; i < nc && d.Err() == nil; i++ {
		classes = append(classes, d.Str(fmt.Sprintf("class %d name", i)))
	}
	opt.Outputs = len(classes)
	if version >= 2 {
		opt.Outputs = int(d.U32("output units"))
		if d.Err() == nil && (opt.Outputs < len(classes) || opt.Outputs > len(payload)) {
			return nil, fmt.Errorf("bnn: %w: %d output units for %d classes", ErrModelFormat, opt.Outputs, len(classes))
		}
	}
	norm := Normalizer{Mean: d.F32s("normaliser mean"), Std: d.F32s("normaliser std")}
	nl := int(d.U32("layer count"))
	if d.Err() != nil {
		return nil, fmt.Errorf("bnn: %w", d.Err())
	}
	spec, err := ParseSpec(name)
	if err != nil {
		return nil, fmt.Errorf("bnn: %w: %w", ErrModelFormat, err)
	}
	net, err := New(spec, in, classes, opt)
	if err != nil {
		return nil, fmt.Errorf("bnn: %w: %w", ErrModelFormat, err)
	}
	if nl != len(net.layers) {
		return nil, fmt.Errorf("bnn: %w: %d layers stored, model %q has %d", ErrModelFormat, nl, name, len(net.layers))
	}
	net.SetNormalizer(norm)
	for _, l := range net.layers {
		what := fmt.Sprintf("layer %d", l.index)
		kind := LayerKind(d.U8(what + " kind"))
		lin, lout := int(d.U32(what+" inputs")), int(d.U32(what+" outputs"))
		if d.Err() == nil && (kind != l.kind || lin != l.in || lout != l.out) {
			return nil, fmt.Errorf("bnn: %w: %s is %v %d→%d, model %q needs %v %d→%d", ErrModelFormat, what, kind, lin, lout, name, l.kind, l.in, l.out)
		}
		w := d.U64s(what + " weights")
		if d.Err() == nil && len(w) != len(l.w) {
			return nil, fmt.Errorf("bnn: %w: %s weights has %d words, want %d", ErrModelFormat, what, len(w), len(l.w))
		}
		copy(l.w, w)
		for k, dst := range l.bn.stored() {
			v := d.F32s(what + " " + storedNames[k])
			if d.Err() == nil && len(v) != len(dst) {
				return nil, fmt.Errorf("bnn: %w: %s %s has %d values, want %d", ErrModelFormat, what, storedNames[k], len(v), len(dst))
			}
			copy(dst, v)
		}
		if d.Err() != nil {
			return nil, fmt.Errorf("bnn: %w", d.Err())
		}
		if tail := l.in % 64; tail != 0 {
			for j := 0; j < l.out; j++ {
				if l.w[j*l.kw+l.kw-1]>>tail != 0 {
					return nil, fmt.Errorf("bnn: %w: %s row %d has padding bits set", ErrModelFormat, what, j)
				}
			}
		}
	}
	if d.Remaining() != 0 {
		return nil, fmt.Errorf("bnn: %w: %d unread bytes after the last layer", ErrModelFormat, d.Remaining())
	}
	return net, nil
}
