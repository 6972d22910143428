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
	// keep is the weight of the old running estimates when a training batch
	// updates them: bnMomentum, except while EstimateStatistics averages.
	keep float32
}

// stored are the arrays of a batch norm that the model file and parameter
// snapshots keep, in their order; storedNames names them in errors.
func (b *batchNorm) stored() [4][]float32 { return [4][]float32{b.gamma, b.beta, b.runMean, b.runVar} }

var storedNames = [4]string{"bn scale", "bn shift", "bn running mean", "bn running variance"}

func newBatchNorm(n int) batchNorm {
	b := batchNorm{n: n, keep: bnMomentum}
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

// trainForward normalises y (m rows × n) in place with the batch statistics,
// keeps them for backward and updates the running estimates.
func (b *batchNorm) trainForward(y []float32, m int) {
	b.beginStats()
	b.addStats(y, m)
	b.endStats(m)
	b.normalize(y, m)
}

// beginStats, addStats and endStats gather the batch statistics from rows
// that arrive a chunk at a time (a conv layer's images): the sums are kept in
// float64 and added in row order, so the result does not depend on the
// chunking or on the number of threads.
func (b *batchNorm) beginStats() {
	clear(b.sum)
	clear(b.sumSq)
}

func (b *batchNorm) addStats(y []float32, m int) {
	n := b.n
	for i := 0; i < m; i++ {
		for j, v := range y[i*n : (i+1)*n] {
			b.sum[j] += float64(v)
			b.sumSq[j] += float64(v) * float64(v)
		}
	}
}

// endStats turns the sums over m rows into the batch mean and 1/σ and
// updates the running estimates.
func (b *batchNorm) endStats(m int) {
	unbiased := float64(m) / float64(max(m-1, 1))
	for j := range b.n {
		mean := b.sum[j] / float64(m)
		v := max(b.sumSq[j]/float64(m)-mean*mean, 0)
		b.mean[j] = float32(mean)
		b.invStd[j] = float32(1 / math.Sqrt(v+bnEpsilon))
		b.runMean[j] = b.keep*b.runMean[j] + (1-b.keep)*float32(mean)
		b.runVar[j] = b.keep*b.runVar[j] + (1-b.keep)*float32(v*unbiased)
	}
}

// normalize applies the last batch statistics to y in place.
func (b *batchNorm) normalize(y []float32, m int) {
	n := b.n
	for i := 0; i < m; i++ {
		row := y[i*n : (i+1)*n]
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

// backward takes the recomputed pre-activations y and dy = ∂L/∂(output)
// (both m×n), sets dgamma, dbeta, and overwrites dy with ∂L/∂y:
//
//	∂L/∂y = scale·invStd·(dy − mean(dy) − x̂·mean(dy·x̂)),  x̂ = (y−μ)·invStd
func (b *batchNorm) backward(y, dy []float32, m int) {
	b.beginGrad()
	b.addGrad(y, dy, m)
	b.endGrad(m)
	b.applyGrad(y, dy, m)
}

// beginGrad, addGrad and endGrad gather Σdy and Σdy·x̂ over rows that
// arrive a chunk at a time, like the forward statistics.
func (b *batchNorm) beginGrad() {
	clear(b.sum)
	clear(b.sumSq)
}

func (b *batchNorm) addGrad(y, dy []float32, m int) {
	n := b.n
	for i := 0; i < m; i++ {
		yr := y[i*n : (i+1)*n]
		dr := dy[i*n : (i+1)*n]
		for j := range yr {
			xh := (yr[j] - b.mean[j]) * b.invStd[j]
			b.sum[j] += float64(dr[j])
			b.sumSq[j] += float64(dr[j] * xh)
		}
	}
}

// endGrad sets dgamma and dbeta from the sums over m rows and keeps their
// means for applyGrad.
func (b *batchNorm) endGrad(m int) {
	inv := 1 / float64(m)
	for j := range b.n {
		b.dbeta[j] = float32(b.sum[j])
		b.dgamma[j] = float32(b.sumSq[j])
		b.sum[j] *= inv
		b.sumSq[j] *= inv
	}
}

// applyGrad overwrites dy (rows of the batch that endGrad summed) with ∂L/∂y.
func (b *batchNorm) applyGrad(y, dy []float32, m int) {
	n := b.n
	for i := 0; i < m; i++ {
		yr := y[i*n : (i+1)*n]
		dr := dy[i*n : (i+1)*n]
		for j := range dr {
			xh := (yr[j] - b.mean[j]) * b.invStd[j]
			dr[j] = b.gamma[j] * b.invStd[j] * (dr[j] - float32(b.sum[j]) - xh*float32(b.sumSq[j]))
		}
	}
}
