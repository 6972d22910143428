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
	for i, l := range n.layers {
		if err := s.WriteU64s(w, l.w); err != nil {
			return fmt.Errorf("bnn: writing layer %d weights: %w", i, err)
		}
		for _, v := range [][]float32{l.bn.gamma, l.bn.beta, l.bn.runMean, l.bn.runVar} {
			if err := s.WriteF32s(w, v); err != nil {
				return fmt.Errorf("bnn: writing layer %d batch norm: %w", i, err)
			}
		}
	}
	return nil
}

// ReadParams restores what WriteParams wrote from this network.
func (n *Network) ReadParams(r io.Reader) error {
	var s binio.Stream
	for i, l := range n.layers {
		if err := s.ReadU64s(r, l.w); err != nil {
			return fmt.Errorf("bnn: reading layer %d weights: %w", i, err)
		}
		for _, v := range [][]float32{l.bn.gamma, l.bn.beta, l.bn.runMean, l.bn.runVar} {
			if err := s.ReadF32s(r, v); err != nil {
				return fmt.Errorf("bnn: reading layer %d batch norm: %w", i, err)
			}
		}
	}
	return nil
}
