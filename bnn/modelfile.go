package bnn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
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
//	payload         spec name, input shape, classes, normaliser, layers
//	crc     uint32  CRC-32C (Castagnoli) of everything before it
//
// A layer is: kind u8, in u32, out u32, weights (out·Words(in) u64), then
// batch-norm scale, shift, running mean, running variance (out f32 each).
const (
	modelMagic = "BNNDMODL"
	// ModelVersion is the model file version this package writes and reads.
	ModelVersion = 1
	// maxModelBytes bounds what ReadModel accepts, so a corrupt length field
	// cannot make it allocate without limit.
	maxModelBytes = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors ReadModel wraps, for errors.Is.
var (
	ErrBadMagic    = errors.New("not a bnnd model file (bad magic)")
	ErrVersion     = errors.New("unsupported model file version")
	ErrChecksum    = errors.New("model file checksum mismatch")
	ErrTruncated   = errors.New("model file truncated")
	ErrModelFormat = errors.New("malformed model file")
)

type encoder struct{ buf bytes.Buffer }

func (e *encoder) u8(v uint8)   { e.buf.WriteByte(v) }
func (e *encoder) u32(v uint32) { e.buf.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (e *encoder) u64(v uint64) { e.buf.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (e *encoder) str(s string) { e.u32(uint32(len(s))); e.buf.WriteString(s) }
func (e *encoder) f32s(v []float32) {
	e.u32(uint32(len(v)))
	for _, x := range v {
		e.u32(math.Float32bits(x))
	}
}
func (e *encoder) u64s(v []uint64) {
	e.u32(uint32(len(v)))
	for _, x := range v {
		e.u64(x)
	}
}

// WriteTo writes the model (architecture, weights, batch-norm parameters and
// statistics, normaliser, class names) in the versioned, checksummed format.
// Optimizer state is not part of it (see bop.Optimizer.WriteState).
func (n *Network) WriteTo(w io.Writer) (int64, error) {
	var p encoder
	p.str(n.spec.Name)
	p.u32(uint32(n.in.Height))
	p.u32(uint32(n.in.Width))
	p.u32(uint32(n.in.Channels))
	p.u32(uint32(len(n.classes)))
	for _, c := range n.classes {
		p.str(c)
	}
	p.f32s(n.norm.Mean)
	p.f32s(n.norm.Std)
	p.u32(uint32(len(n.layers)))
	for _, l := range n.layers {
		p.u8(uint8(l.kind))
		p.u32(uint32(l.in))
		p.u32(uint32(l.out))
		p.u64s(l.w)
		p.f32s(l.bn.gamma)
		p.f32s(l.bn.beta)
		p.f32s(l.bn.runMean)
		p.f32s(l.bn.runVar)
	}
	var f encoder
	f.buf.WriteString(modelMagic)
	f.u32(ModelVersion)
	f.u64(uint64(p.buf.Len()))
	f.buf.Write(p.buf.Bytes())
	f.u32(crc32.Checksum(f.buf.Bytes(), castagnoli))
	k, err := w.Write(f.buf.Bytes())
	if err != nil {
		return int64(k), fmt.Errorf("bnn: writing model: %w", err)
	}
	return int64(k), nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) take(k int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if k < 0 || len(d.b)-d.off < k {
		d.err = fmt.Errorf("%w: %s at payload offset %d needs %d bytes, %d left", ErrModelFormat, what, d.off, k, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+k]
	d.off += k
	return s
}
func (d *decoder) u8(what string) uint8 {
	if s := d.take(1, what); s != nil {
		return s[0]
	}
	return 0
}
func (d *decoder) u32(what string) uint32 {
	if s := d.take(4, what); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}
func (d *decoder) u64(what string) uint64 {
	if s := d.take(8, what); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}
func (d *decoder) str(what string) string {
	k := d.u32(what + " length")
	return string(d.take(int(k), what))
}
func (d *decoder) f32s(what string) []float32 {
	k := int(d.u32(what + " length"))
	s := d.take(4*k, what)
	if s == nil {
		return nil
	}
	v := make([]float32, k)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(s[4*i:]))
	}
	return v
}
func (d *decoder) u64s(what string) []uint64 {
	k := int(d.u32(what + " length"))
	s := d.take(8*k, what)
	if s == nil {
		return nil
	}
	v := make([]uint64, k)
	for i := range v {
		v[i] = binary.LittleEndian.Uint64(s[8*i:])
	}
	return v
}

// ReadModel reads a model written by WriteTo and builds a Network around it
// with the buffers opt asks for. Truncated files, other versions and checksum
// mismatches are errors wrapping ErrTruncated, ErrVersion and ErrChecksum.
func ReadModel(r io.Reader, opt Options) (*Network, error) {
	head := make([]byte, 20)
	if k, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("bnn: reading model header: %w: got %d of 20 bytes", ErrTruncated, k)
		}
		return nil, fmt.Errorf("bnn: reading model header: %w", err)
	}
	if string(head[:8]) != modelMagic {
		return nil, fmt.Errorf("bnn: %w: %q", ErrBadMagic, head[:8])
	}
	if v := binary.LittleEndian.Uint32(head[8:]); v != ModelVersion {
		return nil, fmt.Errorf("bnn: %w %d (this build reads version %d)", ErrVersion, v, ModelVersion)
	}
	length := binary.LittleEndian.Uint64(head[12:])
	if length > maxModelBytes {
		return nil, fmt.Errorf("bnn: %w: payload length %d exceeds %d", ErrModelFormat, length, maxModelBytes)
	}
	rest := make([]byte, int(length)+4)
	if k, err := io.ReadFull(r, rest); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("bnn: reading model: %w: payload and checksum need %d bytes, got %d", ErrTruncated, len(rest), k)
		}
		return nil, fmt.Errorf("bnn: reading model: %w", err)
	}
	payload := rest[:length]
	want := binary.LittleEndian.Uint32(rest[length:])
	crc := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, payload)
	if crc != want {
		return nil, fmt.Errorf("bnn: %w: stored %08x, computed %08x", ErrChecksum, want, crc)
	}
	d := &decoder{b: payload}
	name := d.str("model name")
	in := Shape{Height: int(d.u32("input height")), Width: int(d.u32("input width")), Channels: int(d.u32("input channels"))}
	nc := int(d.u32("class count"))
	if d.err == nil && nc > len(payload) {
		return nil, fmt.Errorf("bnn: %w: class count %d", ErrModelFormat, nc)
	}
	var classes []string
	for i := 0; i < nc && d.err == nil; i++ {
		classes = append(classes, d.str(fmt.Sprintf("class %d name", i)))
	}
	norm := Normalizer{Mean: d.f32s("normaliser mean"), Std: d.f32s("normaliser std")}
	nl := int(d.u32("layer count"))
	if d.err != nil {
		return nil, fmt.Errorf("bnn: %w", d.err)
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
		kind := LayerKind(d.u8(what + " kind"))
		lin, lout := int(d.u32(what+" inputs")), int(d.u32(what+" outputs"))
		if d.err == nil && (kind != l.kind || lin != l.in || lout != l.out) {
			return nil, fmt.Errorf("bnn: %w: %s is %v %d→%d, model %q needs %v %d→%d", ErrModelFormat, what, kind, lin, lout, name, l.kind, l.in, l.out)
		}
		parts := []struct {
			dst  any
			name string
		}{{l.w, "weights"}, {l.bn.gamma, "bn scale"}, {l.bn.beta, "bn shift"}, {l.bn.runMean, "bn running mean"}, {l.bn.runVar, "bn running variance"}}
		for _, p := range parts {
			switch dst := p.dst.(type) {
			case []uint64:
				v := d.u64s(what + " " + p.name)
				if d.err == nil && len(v) != len(dst) {
					return nil, fmt.Errorf("bnn: %w: %s %s has %d words, want %d", ErrModelFormat, what, p.name, len(v), len(dst))
				}
				copy(dst, v)
			case []float32:
				v := d.f32s(what + " " + p.name)
				if d.err == nil && len(v) != len(dst) {
					return nil, fmt.Errorf("bnn: %w: %s %s has %d values, want %d", ErrModelFormat, what, p.name, len(v), len(dst))
				}
				copy(dst, v)
			}
		}
		if d.err != nil {
			return nil, fmt.Errorf("bnn: %w", d.err)
		}
		if tail := l.in % 64; tail != 0 {
			for j := 0; j < l.out; j++ {
				if l.w[j*l.kw+l.kw-1]>>tail != 0 {
					return nil, fmt.Errorf("bnn: %w: %s row %d has padding bits set", ErrModelFormat, what, j)
				}
			}
		}
	}
	if d.off != len(payload) {
		return nil, fmt.Errorf("bnn: %w: %d unread bytes after the last layer", ErrModelFormat, len(payload)-d.off)
	}
	return net, nil
}
