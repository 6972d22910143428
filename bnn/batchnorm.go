package bnn

import "math"

const (
	bnEpsilon  = 1e-5
	bnMomentum = 0.9 // running = bnMomentum·running + (1−bnMomentum)·batch
)

// batchNorm normalises each output unit: y = scale·(z−μ)/σ + shift, with the
// batch's μ, σ in training and running estimates in evaluation.
type batchNorm struct {
	n             int
	gamma, beta   []float32 // scale, shift (trained with Adam)
	dgamma, dbeta []float32 // their gradients from the last step
	runMean       []float32
	runVar        []float32
	mean, invStd  []float32 // statistics of the last training batch, for backward
	sum, sumSq    []float64 // accumulators
}

func newBatchNorm(n int) batchNorm {
	b := batchNorm{n: n}
	b.gamma = make([]float32, n)
	b.beta = make([]float32, n)
	b.dgamma = make([]float32, n)
	b.dbeta = make([]float32, n)
	b.runMean = make([]float32, n)
	b.runVar = make([]float32, n)
	b.mean = make([]float32, n)
	b.invStd = make([]float32, n)
	b.sum = make([]float64, n)
	b.sumSq = make([]float64, n)
	for i := range n {
		b.gamma[i] = 1
		b.runVar[i] = 1
	}
	return b
}

func (b *batchNorm) bytes() int64 {
	return int64(8*b.n)*4 + int64(2*b.n)*8
}

// trainForward normalises z (m rows × n) in place with the batch statistics,
// keeps them for backward and updates the running estimates.
func (b *batchNorm) trainForward(z []float32, m int) {
	n := b.n
	clear(b.sum)
	clear(b.sumSq)
	for i := 0; i < m; i++ {
		row := z[i*n : (i+1)*n]
		for j, v := range row {
			b.sum[j] += float64(v)
		}
	}
	for j := range n {
		b.sum[j] /= float64(m)
	}
	for i := 0; i < m; i++ {
		row := z[i*n : (i+1)*n]
		for j, v := range row {
			d := float64(v) - b.sum[j]
			b.sumSq[j] += d * d
		}
	}
	unbiased := float64(m) / float64(max(m-1, 1))
	for j := range n {
		v := b.sumSq[j] / float64(m)
		b.mean[j] = float32(b.sum[j])
		b.invStd[j] = float32(1 / math.Sqrt(v+bnEpsilon))
		b.runMean[j] = bnMomentum*b.runMean[j] + (1-bnMomentum)*float32(b.sum[j])
		b.runVar[j] = bnMomentum*b.runVar[j] + (1-bnMomentum)*float32(v*unbiased)
	}
	for i := 0; i < m; i++ {
		row := z[i*n : (i+1)*n]
		for j, v := range row {
			row[j] = b.gamma[j]*(v-b.mean[j])*b.invStd[j] + b.beta[j]
		}
	}
}

// evalForward normalises z in place with the running estimates.
func (b *batchNorm) evalForward(z []float32, m int) {
	n := b.n
	// y = z·scale + shift with the running statistics folded in; the
	// accumulators serve as scratch.
	for j := range n {
		inv := 1 / math.Sqrt(float64(b.runVar[j])+bnEpsilon)
		b.sum[j] = float64(b.gamma[j]) * inv
		b.sumSq[j] = float64(b.beta[j]) - float64(b.runMean[j])*b.sum[j]
	}
	for i := 0; i < m; i++ {
		row := z[i*n : (i+1)*n]
		for j, v := range row {
			row[j] = float32(float64(v)*b.sum[j] + b.sumSq[j])
		}
	}
}

// backward takes the recomputed pre-activations z and dy = ∂L/∂y (both m×n),
// sets dgamma, dbeta, and overwrites dy with ∂L/∂z:
//
//	∂L/∂z = scale·invStd·(dy − mean(dy) − x̂·mean(dy·x̂)),  x̂ = (z−μ)·invStd
//
// z is overwritten with x̂.
func (b *batchNorm) backward(z, dy []float32, m int) {
	n := b.n
	clear(b.sum)
	clear(b.sumSq)
	for i := 0; i < m; i++ {
		zr := z[i*n : (i+1)*n]
		dr := dy[i*n : (i+1)*n]
		for j := range zr {
			xh := (zr[j] - b.mean[j]) * b.invStd[j]
			zr[j] = xh
			b.sum[j] += float64(dr[j])
			b.sumSq[j] += float64(dr[j] * xh)
		}
	}
	inv := 1 / float64(m)
	for j := range n {
		b.dbeta[j] = float32(b.sum[j])
		b.dgamma[j] = float32(b.sumSq[j])
		b.sum[j] *= inv
		b.sumSq[j] *= inv
	}
	for i := 0; i < m; i++ {
		zr := z[i*n : (i+1)*n]
		dr := dy[i*n : (i+1)*n]
		for j := range dr {
			dr[j] = b.gamma[j] * b.invStd[j] * (dr[j] - float32(b.sum[j]) - zr[j]*float32(b.sumSq[j]))
		}
	}
}
