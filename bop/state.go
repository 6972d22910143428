package bop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/bnnd/bnnd/fp"
)

// Optimizer state file section (little-endian), for checkpoints next to the
// bnn model file:
//
//	magic   [8]byte "BNNDBOP1"
//	version uint32
//	length  uint64
//	payload  step, γ now, γ, τ, Adam lr, seed, decay; per layer: format
//	         name, count, code words; per Adam vector: m and v; counter totals
//	crc     uint32  CRC-32C of everything before it
const (
	stateMagic = "BNNDBOP1"
	// StateVersion is the optimizer state version this package writes and reads.
	StateVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors ReadState wraps.
var (
	ErrStateTruncated = errors.New("optimizer state truncated")
	ErrStateVersion   = errors.New("unsupported optimizer state version")
	ErrStateChecksum  = errors.New("optimizer state checksum mismatch")
)

type wbuf struct{ bytes.Buffer }

func (b *wbuf) u32(v uint32) { b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (b *wbuf) u64(v uint64) { b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (b *wbuf) f32(v float32) {
	b.u32(math.Float32bits(v))
}
func (b *wbuf) str(s string) { b.u32(uint32(len(s))); b.WriteString(s) }

// WriteState writes the momenta (in their compact codes), Adam state, step
// count, current γ and counter totals.
func (o *Optimizer) WriteState(w io.Writer) (int64, error) {
	var p wbuf
	p.u64(uint64(o.step))
	p.f32(o.gamma)
	p.f32(o.cfg.Gamma)
	p.f32(o.cfg.Tau)
	p.f32(o.cfg.AdamLR)
	p.u64(o.cfg.Seed)
	p.u64(uint64(o.cfg.Decay.Every))
	p.u64(math.Float64bits(o.cfg.Decay.Factor))
	p.u32(uint32(len(o.layers)))
	for _, l := range o.layers {
		p.str(l.momentum.Format().String())
		p.u64(uint64(l.momentum.Len()))
		words := l.momentum.Words()
		p.u64(uint64(len(words)))
		for _, x := range words {
			p.u64(x)
		}
	}
	p.u32(uint32(len(o.adam)))
	for _, a := range o.adam {
		p.u32(uint32(len(a.m)))
		for i := range a.m {
			p.f32(a.m[i])
			p.f32(a.v[i])
		}
	}
	for _, c := range o.sum {
		for _, v := range []int64{c.Values, c.Changed, c.Lost, c.Underflow, c.Saturated, c.Flips} {
			p.u64(uint64(v))
		}
	}
	var f wbuf
	f.WriteString(stateMagic)
	f.u32(StateVersion)
	f.u64(uint64(p.Len()))
	f.Write(p.Bytes())
	f.u32(crc32.Checksum(f.Bytes(), castagnoli))
	k, err := w.Write(f.Bytes())
	if err != nil {
		return int64(k), fmt.Errorf("bop: writing optimizer state: %w", err)
	}
	return int64(k), nil
}

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) take(k int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if k < 0 || len(r.b) < k {
		r.err = fmt.Errorf("%w: %s needs %d bytes, %d left", errState, what, k, len(r.b))
		return nil
	}
	s := r.b[:k]
	r.b = r.b[k:]
	return s
}
func (r *rbuf) u32(what string) uint32 {
	if s := r.take(4, what); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}
func (r *rbuf) u64(what string) uint64 {
	if s := r.take(8, what); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}
func (r *rbuf) f32(what string) float32 { return math.Float32frombits(r.u32(what)) }

// ReadState restores what WriteState wrote into an optimizer built for the
// same network (layer sizes and parameter counts must match). The momentum
// formats come from the state, not from the Config the optimizer was made with.
func (o *Optimizer) ReadState(rd io.Reader) error {
	head := make([]byte, 20)
	if _, err := io.ReadFull(rd, head); err != nil {
		return fmt.Errorf("bop: reading optimizer state header: %w: %w", ErrStateTruncated, err)
	}
	if string(head[:8]) != stateMagic {
		return fmt.Errorf("bop: %w: bad magic %q", errState, head[:8])
	}
	if v := binary.LittleEndian.Uint32(head[8:]); v != StateVersion {
		return fmt.Errorf("bop: %w %d (this build reads %d)", ErrStateVersion, v, StateVersion)
	}
	n := binary.LittleEndian.Uint64(head[12:])
	if n > 1<<31 {
		return fmt.Errorf("bop: %w: payload length %d", errState, n)
	}
	rest := make([]byte, n+4)
	if _, err := io.ReadFull(rd, rest); err != nil {
		return fmt.Errorf("bop: reading optimizer state: %w: %w", ErrStateTruncated, err)
	}
	want := binary.LittleEndian.Uint32(rest[n:])
	if got := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, rest[:n]); got != want {
		return fmt.Errorf("bop: %w: stored %08x, computed %08x", ErrStateChecksum, want, got)
	}
	r := &rbuf{b: rest[:n]}
	step := int64(r.u64("step"))
	gamma := r.f32("gamma")
	cfg := o.cfg
	cfg.Gamma, cfg.Tau, cfg.AdamLR = r.f32("gamma"), r.f32("tau"), r.f32("adam lr")
	cfg.Seed = r.u64("seed")
	cfg.Decay.Every = int64(r.u64("decay every"))
	cfg.Decay.Factor = math.Float64frombits(r.u64("decay factor"))
	if nl := int(r.u32("layer count")); r.err == nil && nl != len(o.layers) {
		return fmt.Errorf("bop: %w: %d layers stored, network has %d", errState, nl, len(o.layers))
	}
	vecs := make([]*fp.Vector, len(o.layers))
	cfg.Formats = make([]fp.Format, len(o.layers))
	for i, l := range o.layers {
		what := fmt.Sprintf("layer %d", i)
		name := string(r.take(int(r.u32(what+" format length")), what+" format"))
		count := int(r.u64(what + " momentum count"))
		nw := int(r.u64(what + " word count"))
		if r.err != nil {
			return fmt.Errorf("bop: %w", r.err)
		}
		f, err := fp.ParseFormat(name)
		if err != nil {
			return fmt.Errorf("bop: %w: %s: %w", errState, what, err)
		}
		if count != l.info.Out*l.info.Stride {
			return fmt.Errorf("bop: %w: %s has %d momenta, network needs %d", errState, what, count, l.info.Out*l.info.Stride)
		}
		raw := r.take(8*nw, what+" momentum words")
		if r.err != nil {
			return fmt.Errorf("bop: %w", r.err)
		}
		words := make([]uint64, nw)
		for k := range words {
			words[k] = binary.LittleEndian.Uint64(raw[8*k:])
		}
		v, err := fp.VectorFromWords(f, count, words)
		if err != nil {
			return fmt.Errorf("bop: %w: %s: %w", errState, what, err)
		}
		vecs[i] = v
		cfg.Formats[i] = f
	}
	if na := int(r.u32("adam vector count")); r.err == nil && na != len(o.adam) {
		return fmt.Errorf("bop: %w: %d Adam vectors stored, network has %d", errState, na, len(o.adam))
	}
	adam := make([]adamState, len(o.adam))
	for i, a := range o.adam {
		k := int(r.u32("adam vector length"))
		if r.err == nil && k != len(a.m) {
			return fmt.Errorf("bop: %w: Adam vector %d has %d values, want %d", errState, i, k, len(a.m))
		}
		adam[i] = adamState{m: make([]float32, k), v: make([]float32, k)}
		for j := 0; j < k && r.err == nil; j++ {
			adam[i].m[j], adam[i].v[j] = r.f32("adam m"), r.f32("adam v")
		}
	}
	sum := make([]Counters, len(o.sum))
	for i := range sum {
		c := &sum[i]
		for _, p := range []*int64{&c.Values, &c.Changed, &c.Lost, &c.Underflow, &c.Saturated, &c.Flips} {
			*p = int64(r.u64("counters"))
		}
	}
	if r.err != nil {
		return fmt.Errorf("bop: %w", r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("bop: %w: %d trailing bytes", errState, len(r.b))
	}
	o.step, o.gamma, o.cfg, o.adam, o.sum = step, gamma, cfg, adam, sum
	for i := range o.layers {
		o.layers[i] = newLayerState(o.layers[i].info, vecs[i])
	}
	return nil
}
