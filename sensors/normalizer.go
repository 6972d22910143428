package sensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Normalizer is per-channel standardisation, x' = (x-Mean[c])/Std[c],
// learned from training data and saved with the model so that live samples
// are scaled exactly as the training samples were.
type Normalizer struct {
	Mean, Std []float32
}

// minStd keeps a constant channel (a sensor axis that never moved in the
// training data) from dividing by zero: it is centred but not scaled up.
const minStd = 1e-6

// Channels is the number of channels the normalizer scales.
func (n *Normalizer) Channels() int { return len(n.Mean) }

// Validate checks that Mean and Std have the same length and hold finite
// values with Std > 0.
func (n *Normalizer) Validate() error {
	if n == nil {
		return errors.New("sensors: nil normalizer")
	}
	if len(n.Mean) != len(n.Std) {
		return fmt.Errorf("sensors: normalizer has %d means but %d standard deviations", len(n.Mean), len(n.Std))
	}
	for c := range n.Mean {
		m, s := float64(n.Mean[c]), float64(n.Std[c])
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return fmt.Errorf("sensors: normalizer channel %d: mean %g is not finite", c, m)
		}
		if math.IsNaN(s) || math.IsInf(s, 0) || s <= 0 {
			return fmt.Errorf("sensors: normalizer channel %d: standard deviation %g is not finite and positive", c, s)
		}
	}
	return nil
}

// Apply standardises interleaved samples in place: data[t*C+c] for C =
// Channels(). len(data) must be a multiple of C.
func (n *Normalizer) Apply(data []float32) {
	c := len(n.Mean)
	for i := 0; i+c <= len(data); i += c {
		row := data[i : i+c]
		for j := range row {
			row[j] = (row[j] - n.Mean[j]) / n.Std[j]
		}
	}
}

// normAccumulator learns a Normalizer with Welford's algorithm (stable for
// large offsets such as gravity on one accelerometer axis).
type normAccumulator struct {
	n    float64
	mean []float64
	m2   []float64
}

func newNormAccumulator(channels int) *normAccumulator {
	return &normAccumulator{mean: make([]float64, channels), m2: make([]float64, channels)}
}

// add accumulates interleaved samples.
func (a *normAccumulator) add(data []float32) {
	c := len(a.mean)
	for i := 0; i+c <= len(data); i += c {
		a.n++
		for j := 0; j < c; j++ {
			x := float64(data[i+j])
			d := x - a.mean[j]
			a.mean[j] += d / a.n
			a.m2[j] += d * (x - a.mean[j])
		}
	}
}

func (a *normAccumulator) normalizer() *Normalizer {
	c := len(a.mean)
	nz := &Normalizer{Mean: make([]float32, c), Std: make([]float32, c)}
	for j := 0; j < c; j++ {
		nz.Mean[j] = float32(a.mean[j])
		std := 0.0
		if a.n > 1 {
			std = math.Sqrt(a.m2[j] / a.n)
		}
		if std < minStd {
			std = 1
		}
		nz.Std[j] = float32(std)
	}
	return nz
}

// Binary form: "BNNZ", version byte 1, three zero bytes, uint32 channel
// count, then count float32 means and count float32 standard deviations,
// all little-endian.
var normalizerMagic = [4]byte{'B', 'N', 'N', 'Z'}

const normalizerVersion = 1

// MarshalBinary encodes the normalizer (see the format above).
func (n *Normalizer) MarshalBinary() ([]byte, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	c := len(n.Mean)
	b := make([]byte, 12+8*c)
	copy(b, normalizerMagic[:])
	b[4] = normalizerVersion
	binary.LittleEndian.PutUint32(b[8:], uint32(c))
	for j := 0; j < c; j++ {
		binary.LittleEndian.PutUint32(b[12+4*j:], math.Float32bits(n.Mean[j]))
		binary.LittleEndian.PutUint32(b[12+4*c+4*j:], math.Float32bits(n.Std[j]))
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote and validates it.
func (n *Normalizer) UnmarshalBinary(b []byte) error {
	if len(b) < 12 {
		return fmt.Errorf("sensors: normalizer: %d bytes is shorter than the 12-byte header", len(b))
	}
	if [4]byte(b[:4]) != normalizerMagic {
		return fmt.Errorf("sensors: normalizer: bad magic %q, want %q", b[:4], normalizerMagic[:])
	}
	if b[4] != normalizerVersion {
		return fmt.Errorf("sensors: normalizer: unsupported version %d (want %d)", b[4], normalizerVersion)
	}
	c := binary.LittleEndian.Uint32(b[8:])
	if uint64(len(b)) != 12+8*uint64(c) {
		return fmt.Errorf("sensors: normalizer: %d channels need %d bytes, have %d", c, 12+8*uint64(c), len(b))
	}
	nz := Normalizer{Mean: make([]float32, c), Std: make([]float32, c)}
	for j := 0; j < int(c); j++ {
		nz.Mean[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[12+4*j:]))
		nz.Std[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[12+4*int(c)+4*j:]))
	}
	if err := nz.Validate(); err != nil {
		return err
	}
	*n = nz
	return nil
}
