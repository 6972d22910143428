package sensors

import (
	"fmt"
	"sort"
	"strings"
)

// run is a stretch of one recording with one label: samples [start, end)
// of a series; label indexes series.labelNames, -1 = unlabelled.
type run struct {
	start, end int
	label      int
}

// series is recorded multichannel data: data[t*channels+c], split into
// runs of constant label (runs never cross recordings).
type series struct {
	channels     int
	channelNames []string
	data         []float32
	runs         []run
	labelNames   []string
}

func (s *series) samples() int { return len(s.data) / s.channels }

// chunkWindows is how many windows long a split chunk is (see package doc).
const chunkWindows = 10

// testEvery: chunk k is in the test part when k%testEvery == testEvery-1.
const testEvery = 5

// forEachChunk calls fn for each chunk of every run, in order, with its
// global chunk number.
func (s *series) forEachChunk(window int, fn func(k int, r run, start, end int)) {
	chunkLen := chunkWindows * window
	k := 0
	for _, r := range s.runs {
		n := (r.end - r.start) / chunkLen
		if n < 1 {
			n = 1
		}
		for j := 0; j < n; j++ {
			start := r.start + j*chunkLen
			end := start + chunkLen
			if j == n-1 {
				end = r.end
			}
			fn(k, r, start, end)
			k++
		}
	}
}

func inSplit(split Split, chunk int) bool {
	test := chunk%testEvery == testEvery-1
	switch split {
	case SplitTrain:
		return !test
	case SplitTest:
		return test
	}
	return true
}

// Windows is a time-series dataset: windows of Window samples, Hop apart,
// cut from recorded series and standardised per channel on demand. Only the
// series itself is stored (once), plus one start index and label per window.
type Windows struct {
	shape   Shape
	classes []string
	norm    *Normalizer
	hop     int
	data    []float32
	starts  []int
	labels  []int32
	chNames []string
	skipped int
}

func (w *Windows) Len() int                { return len(w.starts) }
func (w *Windows) Shape() Shape            { return w.shape }
func (w *Windows) Classes() []string       { return w.classes }
func (w *Windows) Normalizer() *Normalizer { return w.norm }
func (w *Windows) Label(i int) int         { return int(w.labels[i]) }

// ChannelNames names the channels in order (e.g. ax, ay, az, gx, gy, gz).
func (w *Windows) ChannelNames() []string { return w.chNames }

// Example copies window i into dst (len C*W, dst[t*C+c]), standardises it
// and returns its label.
func (w *Windows) Example(i int, dst []float32) int {
	c := w.shape.Channels
	n := w.shape.Size()
	copy(dst[:n], w.data[w.starts[i]*c:w.starts[i]*c+n])
	w.norm.Apply(dst[:n])
	return int(w.labels[i])
}

// newWindows windows s for split. desc names the source in errors.
func newWindows(s *series, desc string, split Split, opt LoadOptions, window, hop int) (*Windows, error) {
	// Class names: the caller's, or the sorted names used in the data.
	used := map[int]bool{}
	for _, r := range s.runs {
		if r.label >= 0 {
			used[r.label] = true
		}
	}
	var usedNames []string
	for l := range used {
		usedNames = append(usedNames, s.labelNames[l])
	}
	sort.Strings(usedNames)
	cm, err := opt.classMapper(usedNames, desc)
	if err != nil {
		return nil, err
	}
	classes := cm.classes
	if bad := cm.unknown(usedNames); len(bad) > 0 {
		return nil, fmt.Errorf("%s: label(s) %s not among the training classes %q", desc, strings.Join(bad, ", "), classes)
	}
	localToClass := make([]int32, len(s.labelNames))
	for l, name := range s.labelNames {
		localToClass[l] = -1
		if i, ok := cm.index[name]; ok {
			localToClass[l] = int32(i)
		}
	}

	w := &Windows{
		shape:   Shape{Channels: s.channels, Height: 1, Width: window},
		classes: classes,
		hop:     hop,
		data:    s.data,
		chNames: s.channelNames,
	}
	var acc *normAccumulator
	if w.norm, err = opt.fixedNorm(s.channels); err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	if w.norm == nil {
		acc = newNormAccumulator(s.channels)
	}
	normSplit := SplitTrain
	if split == SplitAll {
		normSplit = SplitAll
	}
	s.forEachChunk(window, func(k int, r run, start, end int) {
		if acc != nil && inSplit(normSplit, k) {
			acc.add(s.data[start*s.channels : end*s.channels])
		}
		if !inSplit(split, k) {
			return
		}
		label := int32(-1)
		if r.label >= 0 {
			label = localToClass[r.label]
		}
		for t := start; t+window <= end; t += hop {
			w.starts = append(w.starts, t)
			w.labels = append(w.labels, label)
		}
	})
	if acc != nil {
		if acc.n == 0 {
			return nil, fmt.Errorf("%s: no %s data to learn the standardisation from", desc, normSplit)
		}
		w.norm = acc.normalizer()
	}
	if len(w.starts) == 0 {
		return nil, fmt.Errorf("%s: no %s window of %d samples fits (%d samples in %d runs)", desc, split, window, s.samples(), len(s.runs))
	}
	return w, nil
}
