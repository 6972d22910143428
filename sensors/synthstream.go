package sensors

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// synthSource streams windows of the simulated IMU, labelled with the
// simulated activity (-1 when a window spans two activities).
type synthSource struct {
	// nextMu serialises Next; sourceState.mu guards only the state, so
	// Health and Close never wait for Next.
	nextMu sync.Mutex
	sourceState
	sim     *imuSim
	win     *windower
	labels  []int // activity per ring slot, parallel to the windower
	norm    *Normalizer
	classes []string
	toClass []int // activity -> class index
	period  time.Duration
	pace    bool
	start   time.Time
	k       int64 // samples generated
	sample  [6]float32
}

// Without LoadOptions.Norm the stream is standardised with the statistics
// of the synthetic-imu dataset's train split of the same spec (seed, n,
// rate, window), so it is scaled exactly as `bnnd train --data` saw it.

func openSynthetic(s *spec, opt LoadOptions) (Source, error) {
	var pace int64
	p, window, hop, err := windowedSpec(s, opt, parseSyntheticSpec, func(*syntheticParams, int, int) (err error) {
		pace, err = s.intOpt("pace", 1, 0, 1)
		return err
	})
	if err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("sensors: spec %q", s.raw)
	cm, err := opt.classMapper(SyntheticClasses, desc)
	if err != nil {
		return nil, err
	}
	classes := cm.classes
	toClass := make([]int, len(SyntheticClasses))
	for a, name := range SyntheticClasses {
		i, ok := cm.index[name]
		if !ok {
			return nil, fmt.Errorf("%s: activity %q is not among the classes %q", desc, name, classes)
		}
		toClass[a] = i
	}
	norm, err := opt.fixedNorm(6)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	if norm == nil {
		if window > int(maxSegmentSeconds*p.rate) {
			return nil, s.errorf("window %d is longer than the longest activity segment", window)
		}
		w, err := newWindows(syntheticSeries(p, window, hop), desc, SplitTrain, LoadOptions{}, window, hop)
		if err != nil {
			return nil, err
		}
		norm = w.norm
	}
	return &synthSource{
		sim:         newIMUSim(p.seed, p.rate, p.mounted),
		win:         newWindower(6, window, hop),
		labels:      make([]int, window),
		norm:        norm,
		classes:     classes,
		toClass:     toClass,
		period:      time.Duration(float64(time.Second) / p.rate),
		pace:        pace == 1,
		sourceState: sourceState{health: Health{Healthy: true, State: "ok"}},
	}, nil
}

func (s *synthSource) Next(ctx context.Context) (Sample, error) {
	s.nextMu.Lock()
	defer s.nextMu.Unlock()
	if s.start.IsZero() {
		s.start = time.Now()
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return Sample{}, err
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Sample{}, ErrClosed
		}
		if s.pace {
			due := s.start.Add(time.Duration(s.k) * s.period)
			if d := time.Until(due); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return Sample{}, ctx.Err()
				case <-timer.C:
				}
			}
		}
		act := s.sim.next(s.sample[:])
		s.labels[s.win.head] = act
		s.k++
		s.mu.Lock()
		s.health.Samples++
		s.mu.Unlock()
		if !s.win.push(s.sample[:]) {
			continue
		}
		sh := Shape{Channels: 6, Height: 1, Width: s.win.window}
		// Simulated time of the window's last sample (real time when paced).
		smp := Sample{Data: make([]float32, sh.Size()), Shape: sh, Label: -1, Time: s.start.Add(time.Duration(s.k-1) * s.period)}
		s.win.read(smp.Data)
		s.norm.Apply(smp.Data)
		if a := s.labels[0]; allEqual(s.labels, a) {
			smp.Label = s.toClass[a]
			smp.LabelName = s.classes[smp.Label]
		}
		s.mu.Lock()
		s.health.Windows++
		s.mu.Unlock()
		return smp, nil
	}
}

func allEqual(xs []int, v int) bool {
	for _, x := range xs {
		if x != v {
			return false
		}
	}
	return true
}

func (s *synthSource) Classes() []string       { return s.classes }
func (s *synthSource) ChannelNames() []string  { return SyntheticChannels }
func (s *synthSource) Normalizer() *Normalizer { return s.norm }
