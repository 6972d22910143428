// Package bnn is the binarized network: binary dense and 3×3 conv layers,
// batch norm, sign activations with the straight-through estimator, 2×2
// max-pooling, softmax cross-entropy, the forward and backward passes on the
// kernels package, exact memory accounting and the model file format.
//
// Bit convention (docs/engine.md): a packed bit 1 means −1. Activations kept for
// the backward pass are two bits each: the sign and the straight-through mask
// (|y| ≤ 1). Weight gradients never exist as a whole: they are produced tile
// by tile and handed to an Optimizer (package bop) that folds each tile into
// the momenta and flips weights before the next tile is computed.
package bnn

import (
	"fmt"
	"strconv"
	"strings"
)

// LayerKind is the kind of a hidden block.
type LayerKind uint8

const (
	// Dense is a fully connected block: dense → batch norm → sign.
	Dense LayerKind = iota + 1
	// Conv3x3 is a 3×3 convolution (stride 1, padding 1), optionally followed
	// by 2×2 max-pooling, then batch norm → sign.
	Conv3x3
)

func (k LayerKind) String() string {
	switch k {
	case Dense:
		return "dense"
	case Conv3x3:
		return "conv3x3"
	}
	return fmt.Sprintf("LayerKind(%d)", uint8(k))
}

// LayerSpec is one hidden block of a Spec.
type LayerSpec struct {
	Kind  LayerKind
	Units int  // output units (dense) or output channels (conv)
	Pool  bool // conv only: 2×2 max-pool after the convolution
}

// Spec is a network architecture without its data-dependent ends: the input
// shape and the number of classes come from the data. The output block
// (dense → batch norm → softmax) is implicit.
type Spec struct {
	Name   string // canonical name: a preset ("mlp-s") or "mlp:256,256"
	Hidden []LayerSpec
}

// Presets are the named architectures of issue 4.
var Presets = map[string]string{
	"mlp-s": "mlp:256,256",
	"mlp-l": "mlp:2048,2048",
	"cnn":   "conv:64p,64p,d2048",
}

// ParseSpec parses a model name: a preset (mlp-s, mlp-l, cnn), "mlp:H1,H2,…"
// (hidden dense sizes) or "conv:C1[p],C2[p],…,dH,…" (conv channels, p = 2×2
// max-pool after it, dH = dense hidden layer of H units after the convs).
func ParseSpec(name string) (Spec, error) {
	body := name
	if p, ok := Presets[name]; ok {
		body = p
	}
	kind, list, ok := strings.Cut(body, ":")
	if !ok {
		return Spec{}, fmt.Errorf("model %q: want a preset (mlp-s, mlp-l, cnn), mlp:H1,H2,… or conv:C1p,C2p,dH", name)
	}
	spec := Spec{Name: name}
	if list == "" {
		return Spec{}, fmt.Errorf("model %q: no hidden layers listed after %q", name, kind+":")
	}
	items := strings.Split(list, ",")
	switch kind {
	case "mlp":
		for i, it := range items {
			n, err := parseUnits(it)
			if err != nil {
				return Spec{}, fmt.Errorf("model %q: hidden layer %d: %w", name, i+1, err)
			}
			spec.Hidden = append(spec.Hidden, LayerSpec{Kind: Dense, Units: n})
		}
	case "conv":
		dense := false
		for i, it := range items {
			ls := LayerSpec{Kind: Conv3x3}
			switch {
			case strings.HasPrefix(it, "d"):
				ls.Kind = Dense
				it = it[1:]
				dense = true
			case dense:
				return Spec{}, fmt.Errorf("model %q: layer %d: conv layer %q after a dense layer", name, i+1, it)
			case strings.HasSuffix(it, "p"):
				ls.Pool = true
				it = it[:len(it)-1]
			}
			n, err := parseUnits(it)
			if err != nil {
				return Spec{}, fmt.Errorf("model %q: layer %d: %w", name, i+1, err)
			}
			ls.Units = n
			spec.Hidden = append(spec.Hidden, ls)
		}
	default:
		return Spec{}, fmt.Errorf("model %q: unknown family %q (want mlp or conv)", name, kind)
	}
	return spec, nil
}

func parseUnits(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("size %q is not an integer", s)
	}
	if n < 1 || n > 1<<16 {
		return 0, fmt.Errorf("size %d out of range 1..65536", n)
	}
	return n, nil
}

// Shape is the per-example input shape, NHWC: element (y, x, c) is at
// (y*Width+x)*Channels+c. Sequences (IMU windows) have Height 1.
type Shape struct{ Height, Width, Channels int }

// Size is the number of values per example.
func (s Shape) Size() int { return s.Height * s.Width * s.Channels }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.Height, s.Width, s.Channels) }
