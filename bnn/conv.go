package bnn

import "github.com/bnnd/bnnd/kernels"

// Conv layers run a chunk of images at a time, so no buffer of a conv layer
// grows with the batch except the 2 bits per activation kept for backward.
// Batch norm needs whole-batch sums, so each conv pass goes over the chunks
// twice, recomputing the binary convolution (cheap) instead of keeping its
// float output:
//
//	forward:  sums of y and y² over all chunks; then normalise and pack signs.
//	backward: sums of dy and dy·x̂; then the gradient before pooling, summed
//	          into the layer's weight gradient chunk by chunk.
//
// The gradient of a lower conv layer's output is recomputed through the conv
// layers above it (outGrad), so the largest activation gradient — the first
// layer's, 28×28×64 floats per MNIST image — never exists for the whole batch.

// convPre computes layer l's pre-activations for images [b0, b0+c): z before
// pooling and y after it (y == z without pooling), in the layer's chunk
// buffers. The chunk's im2col rows stay in l.cols / l.colsF.
func (n *Network) convPre(l *layer, b0, c int) (y, z []float32) {
	hw := l.h * l.wd
	rows := c * hw
	z = l.z[:rows*l.out]
	if l.realInput {
		per := hw * l.c
		cols := l.colsF[:rows*l.in]
		kernels.Im2Col3x3Float(cols, n.x[b0*per:(b0+c)*per], c, l.h, l.wd, l.c)
		n.gemm(l, z, cols, nil, rows)
	} else {
		per := hw * kernels.Words(l.c)
		cols := l.cols[:rows*l.kw]
		kernels.Im2Col3x3Bits(cols, n.layers[l.index-1].sign[b0*per:(b0+c)*per], c, l.h, l.wd, l.c)
		n.gemm(l, z, nil, cols, rows)
	}
	if !l.pool {
		return z, z
	}
	y = l.zp[:c*l.actRows*l.out]
	maxPool(y, z, c, l.h, l.wd, l.out)
	return y, z
}

// chunks calls fn for each chunk [b0, b0+c) of m images, in order.
func (n *Network) chunks(m int, fn func(b0, c int)) {
	for b0 := 0; b0 < m; b0 += n.chunk {
		fn(b0, min(n.chunk, m-b0))
	}
}

func (n *Network) convForward(l *layer, m int, train bool) {
	if train {
		l.bn.beginStats()
		n.chunks(m, func(b0, c int) {
			y, _ := n.convPre(l, b0, c)
			l.bn.addStats(y, c*l.actRows)
		})
		l.bn.endStats(m * l.actRows)
	}
	n.chunks(m, func(b0, c int) {
		y, _ := n.convPre(l, b0, c)
		rows := c * l.actRows
		if train {
			l.bn.normalize(y, rows)
		} else {
			l.bn.evalForward(y, rows)
		}
		at := b0 * l.actRows * l.ow
		packSignMask(l.sign[at:], l.mask[at:], y, rows, l.out, l.ow)
	})
}

// convBackward sums conv layer l's batch-norm gradients and its weight
// gradient (into l.grad) over the batch; backward folds l.grad afterwards.
func (n *Network) convBackward(l *layer, m int) {
	l.bn.beginGrad()
	n.chunks(m, func(b0, c int) {
		g := n.outGrad(l, b0, c)
		y, _ := n.convPre(l, b0, c)
		l.bn.addGrad(y, g, c*l.actRows)
	})
	l.bn.endGrad(m * l.actRows)
	clear(l.grad)
	n.chunks(m, func(b0, c int) {
		dz := n.convGradZ(l, b0, c)
		rows := c * l.gemmRows
		// Each tile is summed by one worker per chunk, chunks in order: the
		// same additions in the same order for any thread count.
		forEachWorker(n.opt.Threads, l.rowTiles*l.colTiles, func(worker, t int) {
			j0, j1, k0, k1 := l.tileBounds(t)
			tile := n.tiles[worker][:(j1-j0)*(k1-k0)]
			if l.realInput {
				kernels.RealGradWeightTile(tile, dz, l.colsF[:rows*l.in], rows, l.out, l.in, j0, j1, k0, k1)
			} else {
				kernels.BinGradWeightTile(tile, dz, l.cols[:rows*l.kw], rows, l.out, l.in, j0, j1, k0, k1)
			}
			sum := l.gradTile(j0, j1, k0, k1)
			for i, v := range tile {
				sum[i] += v
			}
		})
	})
}

// gradTile is tile (j0,j1,k0,k1) of a conv layer's summed weight gradient.
func (l *layer) gradTile(j0, j1, k0, k1 int) []float32 {
	at := j0*l.in + (j1-j0)*k0
	return l.grad[at : at+(j1-j0)*(k1-k0)]
}

// convGradZ returns ∂L/∂z (before pooling) of conv layer l for images
// [b0, b0+c), once endGrad has run for l, and leaves the chunk's im2col
// rows in l.cols / l.colsF.
func (n *Network) convGradZ(l *layer, b0, c int) []float32 {
	g := n.outGrad(l, b0, c)
	y, z := n.convPre(l, b0, c)
	l.bn.applyGrad(y, g, c*l.actRows)
	if !l.pool {
		return g
	}
	dz := l.dz[:c*l.gemmRows*l.out]
	unpool(dz, g, z, c, l.h, l.wd, l.out)
	return dz
}

// outGrad returns ∂L/∂(output of conv layer l) for images [b0, b0+c), through
// l's straight-through mask, in l.dy. Below the top conv layer it is
// recomputed from the conv layer above.
func (n *Network) outGrad(l *layer, b0, c int) []float32 {
	size := l.actRows * l.out
	d := l.dy[:c*size]
	next := n.layers[l.index+1]
	if next.kind != Conv3x3 {
		copy(d, n.convTop[b0*size:(b0+c)*size]) // already masked by the dense layer
		return d
	}
	dz := n.convGradZ(next, b0, c)
	hw := next.h * next.wd
	dcols := n.dcols[:hw*next.in]
	for b := range c {
		dzb := dz[b*hw*next.out : (b+1)*hw*next.out]
		kernels.Parallel(n.opt.Threads, hw, (hw+n.opt.Threads-1)/n.opt.Threads, func(lo, hi int) {
			kernels.BinGradInput(dcols[lo*next.in:hi*next.in], dzb[lo*next.out:hi*next.out], next.w, hi-lo, next.out, next.in)
		})
		kernels.Col2Im3x3Float(d[b*size:(b+1)*size], dcols, 1, next.h, next.wd, next.c)
	}
	applyMask(d, l.mask[b0*l.actRows*l.ow:], c*l.actRows, l.out, l.ow)
	return d
}
