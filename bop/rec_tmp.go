package bop

// recorder is replaced by calibrate.go once fp.Trace lands.
type recorder struct{ stop bool }

func (r *recorder) capture(layer, base int, g []float32) {}
func (r *recorder) endStep()                             {}
func (r *recorder) done() bool                           { return true }
