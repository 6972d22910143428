package bnn

import (
	"fmt"
	"io"
	"sort"
)

// Memory is the training state in bytes by part, counted from the buffers
// actually allocated (len × element size), not from a formula beside them.
type Memory struct {
	BinaryWeights   int64            `json:"binary_weights"`
	Momenta         int64            `json:"momenta"`
	MomentaByFormat map[string]int64 `json:"momenta_by_format,omitempty"`
	RealParams      int64            `json:"real_params"` // batch-norm scale, shift, running and batch statistics
	AdamState       int64            `json:"adam_state"`
	Activations     int64            `json:"activations"` // kept for backward: sign + straight-through mask bits
	GradientTiles   int64            `json:"gradient_tiles"`
	Buffers         int64            `json:"buffers"` // pre-activations, gradient rows, optimizer scratch
	InputBatch      int64            `json:"input_batch"`
}

// Total is the sum of all parts.
func (m Memory) Total() int64 {
	return m.BinaryWeights + m.Momenta + m.RealParams + m.AdamState + m.Activations +
		m.GradientTiles + m.Buffers + m.InputBatch
}

// WriteTable prints the breakdown, one part per line.
func (m Memory) WriteTable(w io.Writer) {
	row := func(name string, v int64) {
		fmt.Fprintf(w, "  %-16s %12d B  %8.3f MiB\n", name, v, float64(v)/(1<<20))
	}
	row("binary weights", m.BinaryWeights)
	row("momenta", m.Momenta)
	formats := make([]string, 0, len(m.MomentaByFormat))
	for f := range m.MomentaByFormat {
		formats = append(formats, f)
	}
	sort.Strings(formats)
	for _, f := range formats {
		row("  "+f, m.MomentaByFormat[f])
	}
	row("real params", m.RealParams)
	row("adam state", m.AdamState)
	row("activations", m.Activations)
	row("gradient tiles", m.GradientTiles)
	row("buffers", m.Buffers)
	row("input batch", m.InputBatch)
	row("total", m.Total())
}

func f32Bytes(s []float32) int64 { return int64(len(s)) * 4 }
func u64Bytes(s []uint64) int64  { return int64(len(s)) * 8 }

// Memory returns the network's part of the training state; an optimizer adds
// the momenta, Adam state and its own scratch (see bop.Optimizer.AddMemory).
func (n *Network) Memory() Memory {
	var m Memory
	for _, l := range n.layers {
		m.BinaryWeights += u64Bytes(l.w)
		m.RealParams += l.bn.bytes()
		m.Activations += u64Bytes(l.sign) + u64Bytes(l.mask)
		m.GradientTiles += f32Bytes(l.grad)
		m.Buffers += u64Bytes(l.cols) + f32Bytes(l.colsF) + f32Bytes(l.z) + f32Bytes(l.zp) +
			f32Bytes(l.dz) + f32Bytes(l.dy)
	}
	for _, t := range n.tiles {
		m.GradientTiles += f32Bytes(t)
	}
	m.Buffers += f32Bytes(n.dy) + f32Bytes(n.dx) + f32Bytes(n.dcols) + f32Bytes(n.ones) + f32Bytes(n.zeros)
	m.InputBatch = f32Bytes(n.x) + int64(len(n.labels))*4
	return m
}
