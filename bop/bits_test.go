package bop

import (
	"testing"

	"github.com/bnnd/bnnd/fp"
)

func TestMomentumBits(t *testing.T) {
	net := testNet(t, []int{16}, 8, 4, 4, 1, 1)
	layers := net.Layers()
	if len(layers) != 2 {
		t.Fatalf("one hidden layer: %d layers", len(layers))
	}
	fp32, e4m3 := fp.MustParseFormat("fp32"), fp.MustParseFormat("e4m3b20")
	if got := MomentumBits(net, []fp.Format{fp32}); got != 32 {
		t.Errorf("one fp32 format: %g bits", got)
	}
	if got := MomentumBits(net, []fp.Format{e4m3, e4m3}); got != 8 {
		t.Errorf("e4m3 per layer: %g bits", got)
	}
	w0, w1 := float64(layers[0].Weights), float64(layers[1].Weights)
	if got, want := MomentumBits(net, []fp.Format{fp32, e4m3}), (32*w0+8*w1)/(w0+w1); got != want {
		t.Errorf("fp32, e4m3: %g bits, want %g", got, want)
	}
	if got := MomentumBits(net, nil); got != 0 {
		t.Errorf("no formats: %g bits", got)
	}
}
