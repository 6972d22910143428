package sensors

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Synthetic IMU: a deterministic simulated 6-axis IMU (accelerometer in
// m/s², gyroscope in rad/s) doing a sequence of activities. Each activity
// segment lasts 3–10 s and draws its own device tilt, frequency, amplitude,
// phase, sensor bias and noise level, so windows of one class differ from
// each other and the classes overlap in single features (gravity dominates
// every accelerometer axis; walk and run differ mostly in rhythm and
// strength; still and slow rotation differ only on the gyroscope).

// SyntheticClasses are the activities of synthetic-imu, in label order.
var SyntheticClasses = []string{"still", "walk", "run", "shake", "rotate"}

// SyntheticChannels names the six channels of synthetic-imu.
var SyntheticChannels = []string{"ax", "ay", "az", "gx", "gy", "gz"}

const (
	gravity = 9.80665
	// DefaultSyntheticRate is the sample rate of synthetic-imu in Hz.
	DefaultSyntheticRate = 50
	// DefaultSyntheticWindows is the approximate number of windows of
	// synthetic-imu as a dataset (n=).
	DefaultSyntheticWindows = 6000
)

// Activity segments last between these many seconds.
const minSegmentSeconds, maxSegmentSeconds = 3, 10

type vec3 [3]float64

func (a vec3) add(b vec3) vec3      { return vec3{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }
func (a vec3) scale(k float64) vec3 { return vec3{a[0] * k, a[1] * k, a[2] * k} }
func (a vec3) dot(b vec3) float64   { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func (a vec3) cross(b vec3) vec3 {
	return vec3{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}
func mat3mul(m [3]vec3, v vec3) vec3 { return vec3{m[0].dot(v), m[1].dot(v), m[2].dot(v)} }
func rotateAbout(v, axis vec3, angle float64) vec3 { // Rodrigues, axis unit length
	c, s := math.Cos(angle), math.Sin(angle)
	return v.scale(c).add(axis.cross(v).scale(s)).add(axis.scale(axis.dot(v) * (1 - c)))
}

// imuSim generates samples one at a time.
type imuSim struct {
	rng  *rand.Rand
	rate float64
	// mounted keeps the first segment's orientation, sensor bias and noise
	// for all: one board, fixed to a machine or a door, does not tilt
	// between activities.
	mounted, oriented bool

	act     int
	left, t int // samples left in the segment, sample index within it
	// segment parameters
	world2dev           [3]vec3 // device orientation (rows)
	freq, amp           float64
	phase               [4]float64
	axis                vec3 // shake direction or rotation axis (device frame)
	omega               float64
	accBias, gyroBias   vec3
	accNoise, gyroNoise float64
}

func newIMUSim(seed uint64, rate float64, mounted bool) *imuSim {
	return &imuSim{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), rate: rate, mounted: mounted}
}

func (s *imuSim) uniform(lo, hi float64) float64 { return lo + (hi-lo)*s.rng.Float64() }

func (s *imuSim) unitVector() vec3 {
	for {
		v := vec3{s.rng.NormFloat64(), s.rng.NormFloat64(), s.rng.NormFloat64()}
		if n := math.Sqrt(v.dot(v)); n > 1e-6 {
			return v.scale(1 / n)
		}
	}
}

func (s *imuSim) newSegment() {
	s.act = s.rng.IntN(len(SyntheticClasses))
	s.left = max(1, int(s.uniform(minSegmentSeconds, maxSegmentSeconds)*s.rate))
	s.t = 0
	if !s.mounted || !s.oriented {
		// Device held with a random tilt (roll, pitch within ±35°) and heading.
		roll, pitch, yaw := s.uniform(-0.6, 0.6), s.uniform(-0.6, 0.6), s.uniform(-math.Pi, math.Pi)
		cr, sr, cp, sp, cy, sy := math.Cos(roll), math.Sin(roll), math.Cos(pitch), math.Sin(pitch), math.Cos(yaw), math.Sin(yaw)
		// Rows of R^T where R = Rz(yaw)·Ry(pitch)·Rx(roll) maps device to world.
		s.world2dev = [3]vec3{
			{cy * cp, sy * cp, -sp},
			{cy*sp*sr - sy*cr, sy*sp*sr + cy*cr, cp * sr},
			{cy*sp*cr + sy*sr, sy*sp*cr - cy*sr, cp * cr},
		}
		s.oriented = true
	}
	for i := range s.phase {
		s.phase[i] = s.uniform(0, 2*math.Pi)
	}
	s.axis = s.unitVector()
	if !s.mounted || s.accNoise == 0 {
		// One chip's bias and noise; a new device in each segment
		// unless mounted.
		s.accBias = vec3{s.uniform(-0.3, 0.3), s.uniform(-0.3, 0.3), s.uniform(-0.3, 0.3)}
		s.gyroBias = vec3{s.uniform(-0.03, 0.03), s.uniform(-0.03, 0.03), s.uniform(-0.03, 0.03)}
		s.accNoise = s.uniform(0.1, 0.4)
		s.gyroNoise = s.uniform(0.02, 0.08)
	}
	switch SyntheticClasses[s.act] {
	case "still":
		s.amp = s.uniform(0, 0.3) // slight hand tremor
		s.freq = s.uniform(6, 10)
	case "walk":
		s.freq = s.uniform(1.4, 2.2) // steps per second
		s.amp = s.uniform(1.5, 3.5)
	case "run":
		s.freq = s.uniform(2.4, 3.3)
		s.amp = s.uniform(4.5, 9)
	case "shake":
		s.freq = s.uniform(4, 8)
		s.amp = s.uniform(4, 12)
	case "rotate":
		s.omega = s.uniform(0.7, 2.5)
		if s.rng.IntN(2) == 0 {
			s.omega = -s.omega
		}
		s.amp = s.uniform(0, 0.5)
		s.freq = s.uniform(0.5, 1.5)
	}
}

// next writes one sample (ax, ay, az, gx, gy, gz) and returns its class.
func (s *imuSim) next(dst []float32) int {
	if s.left == 0 {
		s.newSegment()
	}
	tt := float64(s.t) / s.rate
	w := 2 * math.Pi * s.freq
	up := vec3{0, 0, gravity}  // an accelerometer at rest reads +g upwards
	var accW, accD, gyroD vec3 // motion acceleration (world, device), angular rate (device)
	switch SyntheticClasses[s.act] {
	case "still":
		accW = vec3{s.amp * math.Sin(w*tt+s.phase[0]), s.amp * math.Sin(w*tt+s.phase[1]), 0}
	case "walk", "run":
		// Vertical bounce at the step rate with a harmonic, fore-aft surge,
		// sideways sway at half the step rate; the body pitches and yaws.
		accW = vec3{
			0.4 * s.amp * math.Sin(w*tt+s.phase[1]),
			0.25 * s.amp * math.Sin(0.5*w*tt+s.phase[2]),
			s.amp * (math.Sin(w*tt+s.phase[0]) + 0.35*math.Sin(2*w*tt+s.phase[3])),
		}
		k := 0.08 * s.amp
		gyroD = vec3{k * math.Sin(0.5*w*tt+s.phase[2]), k * math.Cos(w*tt+s.phase[1]), 0.5 * k * math.Sin(0.5*w*tt+s.phase[3])}
	case "shake":
		// Back and forth along one device axis, amplitude wobbling.
		a := s.amp * (1 + 0.3*math.Sin(0.7*w*tt+s.phase[1])) * math.Sin(w*tt+s.phase[0])
		accD = s.axis.scale(a)
		gyroD = s.axis.cross(vec3{0, 0, 1}).scale(0.15 * s.amp * math.Cos(w*tt+s.phase[0]))
	case "rotate":
		gyroD = s.axis.scale(s.omega * (1 + s.amp*math.Sin(w*tt+s.phase[0])*0.3))
	}
	var acc vec3
	if SyntheticClasses[s.act] == "rotate" {
		// The device turns about axis: gravity seen in the device frame
		// turns the opposite way (angle is the integral of the rate).
		angle := s.omega * (tt - 0.3*s.amp/w*(math.Cos(w*tt+s.phase[0])-math.Cos(s.phase[0])))
		acc = rotateAbout(mat3mul(s.world2dev, up), s.axis, -angle)
	} else {
		acc = mat3mul(s.world2dev, up.add(accW)).add(accD)
	}
	for i := 0; i < 3; i++ {
		dst[i] = float32(acc[i] + s.accBias[i] + s.accNoise*s.rng.NormFloat64())
		dst[3+i] = float32(gyroD[i] + s.gyroBias[i] + s.gyroNoise*s.rng.NormFloat64())
	}
	s.left--
	s.t++
	return s.act
}

type syntheticParams struct {
	seed    uint64
	n       int
	rate    float64
	mounted bool
	label   string
}

func parseSyntheticSpec(s *spec) (syntheticParams, error) {
	var p syntheticParams
	if s.arg != "" {
		return p, s.errorf("synthetic-imu takes no ':' argument (got %q); use options like seed=N", s.arg)
	}
	seed, err := s.intOpt("seed", 1, 0, math.MaxInt64)
	if err != nil {
		return p, err
	}
	n, err := s.intOpt("n", DefaultSyntheticWindows, 1, 10_000_000)
	if err != nil {
		return p, err
	}
	rate, err := s.floatOpt("rate", DefaultSyntheticRate, 1, 10000)
	if err != nil {
		return p, err
	}
	mounted, err := s.intOpt("mounted", 0, 0, 1)
	if err != nil {
		return p, err
	}
	return syntheticParams{seed: uint64(seed), n: int(n), rate: rate, mounted: mounted == 1}, nil
}

func loadSyntheticSpec(s *spec, split Split, opt LoadOptions) (Dataset, error) {
	p, window, hop, err := windowedSpec(s, opt, parseSyntheticSpec, nil)
	if err != nil {
		return nil, err
	}
	if longest := int(maxSegmentSeconds * p.rate); window > longest {
		return nil, s.errorf("window %d is longer than the longest activity segment (%d samples at %g Hz)", window, longest, p.rate)
	}
	ser := syntheticSeries(p, window, hop)
	if opt.Classes == nil {
		// The canonical order, also used by the stream source, rather
		// than the sorted names of the activities that happen to occur.
		opt.Classes = SyntheticClasses
	}
	ds, err := newWindows(ser, fmt.Sprintf("sensors: spec %q", s.raw), split, opt, window, hop)
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// syntheticSeries simulates segments until they hold about p.n windows in
// all splits together (stopping at a segment boundary).
func syntheticSeries(p syntheticParams, window, hop int) *series {
	sim := newIMUSim(p.seed, p.rate, p.mounted)
	ser := &series{channels: 6, channelNames: SyntheticChannels, labelNames: SyntheticClasses}
	var sample [6]float32
	windows := 0
	// Segments shorter than a window hold none; the bound on segments stops
	// the loop even then (the caller rejects windows no segment can hold).
	for segments := 0; windows < p.n && segments < 4*p.n+100; segments++ {
		start := ser.samples()
		label := sim.next(sample[:])
		ser.data = append(ser.data, sample[:]...)
		for sim.left > 0 {
			sim.next(sample[:])
			ser.data = append(ser.data, sample[:]...)
		}
		r := run{start: start, end: ser.samples(), label: label}
		ser.runs = append(ser.runs, r)
		one := &series{channels: 1, runs: []run{r}}
		one.forEachChunk(window, func(_ int, _ run, a, b int) {
			if b-a >= window {
				windows += (b-a-window)/hop + 1
			}
		})
	}
	return ser
}
