package bnn

import (
	"fmt"
	"io"

	"github.com/bnnd/bnnd/internal/binio"
)

// WriteParams streams what training changes in the network — binary
// weights, batch-norm scales, shifts and running statistics — so that
// ReadParams can put the network back in that state in place. Unlike
// WriteTo it neither builds the payload in memory nor needs a second
// network to read it back, so a search can try several continuations from
// one starting point without holding two models.
func (n *Network) WriteParams(w io.Writer) error {
	var s binio.Stream
	return n.streamParams("writing",
		func(v []uint64) error { return s.WriteU64s(w, v) },
		func(v []float32) error { return s.WriteF32s(w, v) })
}

// ReadParams restores what WriteParams wrote from this network.
func (n *Network) ReadParams(r io.Reader) error {
	var s binio.Stream
	return n.streamParams("reading",
		func(v []uint64) error { return s.ReadU64s(r, v) },
		func(v []float32) error { return s.ReadF32s(r, v) })
}

// streamParams hands each layer's binary weights to words and its stored
// batch-norm arrays to floats, in the order of the snapshot; verb says
// what they do, for errors.
func (n *Network) streamParams(verb string, words func([]uint64) error, floats func([]float32) error) error {
	for i, l := range n.layers {
		if err := words(l.w); err != nil {
			return fmt.Errorf("bnn: %s layer %d weights: %w", verb, i, err)
		}
		for _, v := range l.bn.stored() {
			if err := floats(v); err != nil {
				return fmt.Errorf("bnn: %s layer %d batch norm: %w", verb, i, err)
			}
		}
	}
	return nil
}
