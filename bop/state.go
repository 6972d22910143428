package bop

import (
	"errors"
	"fmt"
	"io"

	"github.com/bnnd/bnnd/fp"
	"github.com/bnnd/bnnd/internal/binio"
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

// Errors ReadState wraps.
var (
	ErrStateTruncated = errors.New("optimizer state truncated")
	ErrStateVersion   = errors.New("unsupported optimizer state version")
	ErrStateChecksum  = errors.New("optimizer state checksum mismatch")
)

// stateFrame has no bad-magic sentinel of its own: a wrong magic is a
// malformed state.
var stateFrame = binio.Frame{
	Magic: stateMagic, What: "optimizer state", MinVersion: StateVersion, MaxVersion: StateVersion, MaxLength: 1 << 31,
	BadMagic: errState, Version: ErrStateVersion, Checksum: ErrStateChecksum, Truncated: ErrStateTruncated, Format: errState,
}

// WriteState writes the momenta (in their compact codes), Adam state, step
// count, current γ and counter totals.
func (o *Optimizer) WriteState(w io.Writer) (int64, error) {
	var p binio.Writer
	p.U64(uint64(o.step))
	p.F32(o.gamma)
	p.F32(o.cfg.Gamma)
	p.F32(o.cfg.Tau)
	p.F32(o.cfg.AdamLR)
	p.U64(o.cfg.Seed)
	p.U64(uint64(o.cfg.Decay.Every))
	p.F64(o.cfg.Decay.Factor)
	p.U32(uint32(len(o.layers)))
	for _, l := range o.layers {
		p.Str(l.momentum.Format().String())
		p.U64(uint64(l.momentum.Len()))
		words := l.momentum.Words()
		p.U64(uint64(len(words)))
		p.RawU64s(words)
	}
	p.U32(uint32(len(o.adam)))
	for _, a := range o.adam {
		p.U32(uint32(len(a.m)))
		for i := range a.m {
			p.F32(a.m[i])
			p.F32(a.v[i])
		}
	}
	for _, c := range o.sum {
		for _, v := range []int64{c.Values, c.Changed, c.Lost, c.Underflow, c.Saturated, c.Flips} {
			p.U64(uint64(v))
		}
	}
	k, err := w.Write(stateFrame.Append(nil, StateVersion, p.Bytes()))
	if err != nil {
		return int64(k), fmt.Errorf("bop: writing optimizer state: %w", err)
	}
	return int64(k), nil
}

// ReadState restores what WriteState wrote into an optimizer built for the
// same network (layer sizes and parameter counts must match). The momentum
// formats come from the state, not from the Config the optimizer was made with.
func (o *Optimizer) ReadState(rd io.Reader) error {
	_, payload, err := stateFrame.Read(rd)
	if err != nil {
		return fmt.Errorf("bop: %w", err)
	}
	r := binio.NewReader(payload, errState)
	step := int64(r.U64("step"))
	gamma := r.F32("gamma")
	cfg := o.cfg
	cfg.Gamma, cfg.Tau, cfg.AdamLR = r.F32("gamma"), r.F32("tau"), r.F32("adam lr")
	cfg.Seed = r.U64("seed")
	cfg.Decay.Every = int64(r.U64("decay every"))
	cfg.Decay.Factor = r.F64("decay factor")
	if nl := int(r.U32("layer count")); r.Err() == nil && nl != len(o.layers) {
		return fmt.Errorf("bop: %w: %d layers stored, network has %d", errState, nl, len(o.layers))
	}
	vecs := make([]*fp.Vector, len(o.layers))
	cfg.Formats = make([]fp.Format, len(o.layers))
	for i, l := range o.layers {
		what := fmt.Sprintf("layer %d", i)
		name := r.Str(what + " format")
		count := int(r.U64(what + " momentum count"))
		nw := r.U64(what + " word count")
		if r.Err() != nil {
			return fmt.Errorf("bop: %w", r.Err())
		}
		f, err := fp.ParseFormat(name)
		if err != nil {
			return fmt.Errorf("bop: %w: %s: %w", errState, what, err)
		}
		if count != l.info.Out*l.info.Stride {
			return fmt.Errorf("bop: %w: %s has %d momenta, network needs %d", errState, what, count, l.info.Out*l.info.Stride)
		}
		words := r.RawU64s(nw, what+" momentum words")
		if r.Err() != nil {
			return fmt.Errorf("bop: %w", r.Err())
		}
		v, err := fp.VectorFromWords(f, count, words)
		if err != nil {
			return fmt.Errorf("bop: %w: %s: %w", errState, what, err)
		}
		vecs[i] = v
		cfg.Formats[i] = f
	}
	if na := int(r.U32("adam vector count")); r.Err() == nil && na != len(o.adam) {
		return fmt.Errorf("bop: %w: %d Adam vectors stored, network has %d", errState, na, len(o.adam))
	}
	adam := make([]adamState, len(o.adam))
	for i, a := range o.adam {
		k := int(r.U32("adam vector length"))
		if r.Err() == nil && k != len(a.m) {
			return fmt.Errorf("bop: %w: Adam vector %d has %d values, want %d", errState, i, k, len(a.m))
		}
		adam[i] = adamState{m: make([]float32, k), v: make([]float32, k)}
		for j := 0; j < k && r.Err() == nil; j++ {
			adam[i].m[j], adam[i].v[j] = r.F32("adam m"), r.F32("adam v")
		}
	}
	sum := make([]Counters, len(o.sum))
	for i := range sum {
		c := &sum[i]
		for _, p := range []*int64{&c.Values, &c.Changed, &c.Lost, &c.Underflow, &c.Saturated, &c.Flips} {
			*p = int64(r.U64("counters"))
		}
	}
	if r.Err() != nil {
		return fmt.Errorf("bop: %w", r.Err())
	}
	if r.Remaining() != 0 {
		return fmt.Errorf("bop: %w: %d trailing bytes", errState, r.Remaining())
	}
	o.step, o.gamma, o.cfg, o.adam, o.sum = step, gamma, cfg, adam, sum
	for i := range o.layers {
		o.layers[i] = newLayerState(o.layers[i].info, vecs[i])
	}
	return nil
}
