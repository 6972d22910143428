package sensors

import (
	"errors"
	"fmt"
	"time"

	"github.com/bnnd/bnnd/sensors/simbus"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
)

// simBusName is the I²C bus of the simulated chips (mpu6050:sim,
// adxl345:sim): register-level emulators that the real drivers talk to.
const simBusName = simbus.Name

// errStopSource marks a read error that retrying cannot cure: a label in
// a recording that the label box refuses (a name past the class limit)
// ends the source with that error.
var errStopSource = errors.New("sensors: source stopped")

// simParams are the options of a simulated chip's spec.
type simParams struct {
	replay  string        // CSV recordings to play; "" drives the chip with synthetic-imu
	loop    bool          // play the recordings again after the last
	teach   time.Duration // synthetic-imu: label its activities for this long (simulated time)
	seed    uint64        // synthetic-imu's seed
	mounted bool          // synthetic-imu keeps one orientation
}

func parseSimParams(s *spec, p *liveParams) (simParams, error) {
	var sp simParams
	var err error
	if p.pace, err = s.floatOpt("pace", 1, 0, 1000); err != nil {
		return sp, err
	}
	sp.replay, _ = s.str("replay")
	loop, err := s.intOpt("loop", 0, 0, 1)
	if err != nil {
		return sp, err
	}
	sp.loop = loop == 1
	if v, ok := s.str("teach"); ok {
		if sp.replay != "" {
			return sp, s.errorf("teach= labels synthetic activities; a replay takes its labels from its label column")
		}
		if sp.teach, err = time.ParseDuration(v); err != nil || sp.teach < 0 {
			return sp, s.errorf("teach=%q is not a duration such as 90s or 5m", v)
		}
	}
	for _, synthOnly := range []string{"seed", "mounted"} {
		if _, ok := s.opts[synthOnly]; ok && sp.replay != "" {
			return sp, s.errorf("%s= drives synthetic-imu; a replay plays its files", synthOnly)
		}
	}
	seed, err := s.intOpt("seed", 1, 0, 1<<62)
	if err != nil {
		return sp, err
	}
	sp.seed = uint64(seed)
	mounted, err := s.intOpt("mounted", 0, 0, 1)
	if err != nil {
		return sp, err
	}
	sp.mounted = mounted == 1
	if sp.loop && sp.replay == "" {
		return sp, s.errorf("loop=1 repeats a replay=GLOB; synthetic-imu never ends")
	}
	return sp, nil
}

// openSimBus opens the simulated bus and gives the chip at p.addr its
// feed: the recordings, or synthetic-imu. Labels found in the recordings
// (or the synthetic activities while teaching) go through labels.Set, the
// way a person's labels do.
func openSimBus(raw string, p liveParams, labels *LabelBox) (i2c.BusCloser, error) {
	if err := simbus.Register(); err != nil {
		return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
	}
	bc, err := i2creg.Open(simBusName)
	if err != nil {
		return nil, fmt.Errorf("sensors: spec %q: opening the simulated I²C bus: %w", raw, err)
	}
	bus, ok := bc.(*simbus.Bus)
	if !ok {
		bc.Close()
		return nil, fmt.Errorf("sensors: spec %q: I²C bus %q is not the simulated bus", raw, simBusName)
	}
	setLabel := func(name string) error {
		if labels == nil {
			return nil
		}
		if _, err := labels.Set(name, 0, time.Now()); err != nil {
			return fmt.Errorf("%w: %w", errStopSource, err)
		}
		return nil
	}
	var feed simbus.Feed
	if p.sim.replay != "" {
		feed, err = simbus.OpenReplay(simbus.ReplayOptions{Glob: p.sim.replay, Loop: p.sim.loop, Gyro: p.kind == "mpu6050", OnLabel: setLabel})
		if err != nil {
			bus.Close()
			return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
		}
	} else {
		feed = &syntheticFeed{sim: newIMUSim(p.sim.seed, p.rate, p.sim.mounted), teach: int64(p.sim.teach.Seconds() * p.rate), setLabel: setLabel}
	}
	if err := bus.SetFeed(p.addr, feed); err != nil {
		bus.Close()
		return nil, fmt.Errorf("sensors: spec %q: %w", raw, err)
	}
	return bus, nil
}

// syntheticFeed drives a simulated chip with synthetic-imu. For its first
// teach samples it labels the activity it plays, as a person would.
type syntheticFeed struct {
	sim      *imuSim
	buf      [6]float32
	n, teach int64
	last     int // activity labelled last, -1 for none
	setLabel func(string) error
}

func (f *syntheticFeed) Next() (simbus.Frame, error) {
	act := f.sim.next(f.buf[:])
	switch {
	case f.n < f.teach && (f.n == 0 || act != f.last):
		if err := f.setLabel(SyntheticClasses[act]); err != nil {
			return simbus.Frame{}, fmt.Errorf("synthetic-imu label %q: %w", SyntheticClasses[act], err)
		}
		f.last = act
	case f.n == f.teach && f.teach > 0:
		if err := f.setLabel(LabelNone); err != nil {
			return simbus.Frame{}, err
		}
	}
	f.n++
	var fr simbus.Frame
	for i := range 3 {
		fr.Accel[i] = float64(f.buf[i])
		fr.Gyro[i] = float64(f.buf[3+i])
	}
	return fr, nil
}
