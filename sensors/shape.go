package sensors

import "fmt"

// Shape is the per-example shape. Data is laid out NHWC: element (y, x, c)
// is at index (y*Width+x)*Channels+c. MNIST images are {1,28,28}; a window
// of W samples of C channels is {C,1,W}, so index t*C+c holds channel c at
// time step t (the order in which samples arrive).
type Shape struct{ Channels, Height, Width int }

// Size is the number of float32 values of one example.
func (s Shape) Size() int { return s.Channels * s.Height * s.Width }

func (s Shape) String() string {
	return fmt.Sprintf("%dx%dx%d (HxWxC)", s.Height, s.Width, s.Channels)
}

// Split selects the part of a source a dataset is made of.
type Split int

const (
	SplitAll   Split = iota // every example
	SplitTrain              // the source's training part
	SplitTest               // the source's test part
)

func (s Split) String() string {
	switch s {
	case SplitAll:
		return "all"
	case SplitTrain:
		return "train"
	case SplitTest:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}
