package bop

import (
	"github.com/bnnd/bnnd/bnn"
	"github.com/bnnd/bnnd/fp"
)

// MomentumBits is the mean bits per momentum over the layers of net, with
// formats either one per layer or one for all layers.
func MomentumBits(net *bnn.Network, formats []fp.Format) float64 {
	if len(formats) == 0 {
		return 0
	}
	var bits, n float64
	for i, l := range net.Layers() {
		f := formats[min(i, len(formats)-1)]
		bits += float64(l.Weights * f.Bits())
		n += float64(l.Weights)
	}
	if n == 0 {
		return 0
	}
	return bits / n
}
