package bnn

import "math"

// CrossEntropy is the softmax cross-entropy of one row of logits (those of
// the model's classes) against label, as training computes it.
func CrossEntropy(logits []float32, label int) float64 {
	hi, sum := expSum(logits)
	return math.Log(sum) - float64(logits[label]-hi)
}

// MaxProbability is the softmax probability of the largest of logits (0
// for none): how sure the prediction is.
func MaxProbability(logits []float32) float32 {
	if len(logits) == 0 {
		return 0
	}
	_, sum := expSum(logits)
	return float32(1 / sum)
}

// expSum is the largest logit and Σ exp(z − largest), the stable form of
// the softmax denominator.
func expSum(z []float32) (hi float32, sum float64) {
	hi = z[0]
	for _, v := range z[1:] {
		hi = max(hi, v)
	}
	for _, v := range z {
		sum += math.Exp(float64(v - hi))
	}
	return hi, sum
}
