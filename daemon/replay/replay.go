// Package replay is the daemon's reservoir of labelled samples: a uniform
// sample of every window seen, under a byte budget, stored compactly
// (Storage), drawn in batches with the newest windows first, and written
// into checkpoints bit for bit.
package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/x448/float16"
)

// Storage is how the replay buffer stores each input value.
//
// The choice follows the source rather than a fixed format:
//   - Images (MNIST) arrive as pixel/255 in [0,1]; their information is 8
//     bits, so Uint8 keeps round(255·x) in one byte and decodes it as
//     float32(b)/255, exactly the float the source produced: lossless at a
//     quarter of float32.
//   - Standardised sensor windows are real values of either sign and a wide
//     range (a quiet axis at 0.01 next to gravity at 1). Float16
//     (IEEE binary16, github.com/x448/float16) keeps a relative error of at
//     most 2^-11 for every value independently (an absolute one of 2^-25
//     below 6.1e-5, where standardised data is noise), whereas int8 with one
//     scale per sample would give the quiet axis only a few of its 256
//     steps. fp16's error is far below an IMU's noise.
type Storage uint8

const (
	Uint8   Storage = 1 // values in [0,1] as one byte, round(255·x)
	Float16 Storage = 2 // IEEE half precision
)

var storageNames = map[Storage]string{Uint8: "uint8", Float16: "float16"}

func (k Storage) String() string {
	if name, ok := storageNames[k]; ok {
		return name
	}
	return fmt.Sprintf("Storage(%d)", uint8(k))
}

func (k Storage) bytesPerValue() int {
	if k == Uint8 {
		return 1
	}
	return 2
}

// uint8Value[b] is the float a source produces for pixel b (b/255), so that
// decoding returns exactly the value that was offered.
var uint8Value = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return
}()

const (
	maxFloat16     = 65504
	replayMagic    = "RPLY"
	replayVersion  = 1
	replayHdrSize  = 4 + 1 + 1 + 2 + 4 + 4 + 4 + 4 + 8
	pcgStateSize   = 20 // what rand.PCG.MarshalBinary writes
	labelBytes     = 2
	maxReplayClass = 1 << 16
)

// Buffer is a reservoir of labelled samples under a byte budget. Every
// sample offered so far is in the buffer with the same probability
// capacity/seen (Vitter's algorithm R), so the buffer stays a uniform sample
// of the whole stream, old and new, however long it runs. All random choices
// come from two seeded PCG streams (one for admission, one for mini-batches)
// that are checkpointed with the contents, so a resumed run continues
// exactly as an uninterrupted one.
//
// A Buffer is not safe for concurrent use; the training loop owns it.
type Buffer struct {
	kind     Storage
	features int
	classes  int
	capacity int

	values []byte   // len = n·features·bytesPerValue, grows up to capacity
	labels []uint16 // len = n
	picked []uint64 // bitset over slots, scratch for SampleBatch
	chosen []int32  // slot indices of the last batch, scratch

	seen      uint64 // samples offered so far
	clamped   uint64 // values outside the storable range, clamped
	admitPCG  *rand.PCG
	admitRand *rand.Rand
	batchPCG  *rand.PCG
	batchRand *rand.Rand
}

// BytesFor is the memory a buffer of capacity samples holds when full
// (what Bytes returns then).
func BytesFor(features int, kind Storage, capacity int) int64 {
	perSample := int64(features*kind.bytesPerValue() + labelBytes + 4) // +4: chosen scratch
	return perSample*int64(capacity) + int64((capacity+63)/64)*8
}

// capacityFor is the largest number of samples whose full size fits
// budget.
func capacityFor(features int, kind Storage, budget int64) int {
	per := BytesFor(features, kind, 1) - 8
	capacity := int64(budget) / per
	capacity = min(capacity, math.MaxInt32)
	for capacity > 0 && BytesFor(features, kind, int(capacity)) > int64(budget) {
		capacity--
	}
	return int(capacity)
}

// Resize changes the budget of a buffer, for a run resumed with another
// replay.budget. Shrinking keeps a uniformly chosen subset of the samples,
// which is again a uniform sample of everything seen, so the reservoir
// stays exact. Growing a buffer that was full admits the next samples
// unconditionally until it is full again: they are over-represented for a
// while, as the samples that were dropped before cannot come back.
func (r *Buffer) Resize(budget int64) error {
	capacity := capacityFor(r.features, r.kind, budget)
	if capacity == 0 {
		return fmt.Errorf("replay: budget of %d bytes holds no sample of %d bytes", budget, BytesFor(r.features, r.kind, 1))
	}
	if capacity == r.capacity {
		return nil
	}
	bpv := r.kind.bytesPerValue()
	rowBytes := r.features * bpv
	if n := len(r.labels); capacity < n {
		// Partial Fisher-Yates: the first capacity entries of perm become
		// a uniform random subset of the slots.
		perm := make([]int32, n)
		for i := range perm {
			perm[i] = int32(i)
		}
		for i := 0; i < capacity; i++ {
			j := i + int(r.admitRand.Uint64N(uint64(n-i)))
			perm[i], perm[j] = perm[j], perm[i]
		}
		keep := perm[:capacity]
		values := make([]byte, capacity*rowBytes)
		labels := make([]uint16, capacity)
		for i, slot := range keep {
			copy(values[i*rowBytes:], r.values[int(slot)*rowBytes:int(slot+1)*rowBytes])
			labels[i] = r.labels[slot]
		}
		r.values, r.labels = values, labels
	}
	r.capacity = capacity
	r.picked = make([]uint64, (capacity+63)/64)
	if cap(r.chosen) > capacity {
		r.chosen = nil
	}
	return nil
}

// New makes an empty buffer for samples of features values and labels
// in [0, classes), holding as many samples as fit in budget bytes.
func New(features, classes int, kind Storage, budget int64, seed int64) (*Buffer, error) {
	if kind != Uint8 && kind != Float16 {
		return nil, fmt.Errorf("replay: unknown storage kind %d", kind)
	}
	if features <= 0 || features > 1<<24 {
		return nil, fmt.Errorf("replay: %d features per sample, want 1 to %d", features, 1<<24)
	}
	if classes <= 0 || classes > maxReplayClass {
		return nil, fmt.Errorf("replay: %d classes, want 1 to %d", classes, maxReplayClass)
	}
	capacity := capacityFor(features, kind, budget)
	if capacity == 0 {
		return nil, fmt.Errorf("replay: budget of %d bytes holds no sample of %d bytes (%d %s values and a label)",
			budget, BytesFor(features, kind, 1), features, kind)
	}
	r := &Buffer{kind: kind, features: features, classes: classes, capacity: capacity}
	r.admitPCG = rand.NewPCG(uint64(seed), 0x7265706c61792d61) // "replay-a"
	r.batchPCG = rand.NewPCG(uint64(seed), 0x7265706c61792d62) // "replay-b"
	r.admitRand = rand.New(r.admitPCG)
	r.batchRand = rand.New(r.batchPCG)
	r.picked = make([]uint64, (capacity+63)/64)
	return r, nil
}

// Kind is the storage kind.
func (r *Buffer) Kind() Storage { return r.kind }

// Features is the number of values per sample.
func (r *Buffer) Features() int { return r.features }

// maxLabel is the largest label held (-1 when empty).
// MaxLabel is the largest label held, -1 when empty.
func (r *Buffer) MaxLabel() int {
	m := -1
	for _, l := range r.labels {
		m = max(m, int(l))
	}
	return m
}

// Classes is the number of classes the labels may index.
func (r *Buffer) Classes() int { return r.classes }

// Capacity is the number of samples the budget allows.
func (r *Buffer) Capacity() int { return r.capacity }

// Len is the number of samples held.
func (r *Buffer) Len() int { return len(r.labels) }

// Seen is the number of samples offered since the buffer was created
// (including before a checkpoint it was restored from).
func (r *Buffer) Seen() uint64 { return r.seen }

// Clamped counts values that were outside the storable range ([0,1] for
// uint8, ±65504 for float16) and were stored clamped.
func (r *Buffer) Clamped() uint64 { return r.clamped }

// Bytes is the exact memory held by the buffer's storage: every backing
// array at its allocated capacity. It grows with the contents and never
// exceeds the budget.
func (r *Buffer) Bytes() int64 {
	return int64(cap(r.values)) + int64(cap(r.labels))*labelBytes + int64(cap(r.picked))*8 + int64(cap(r.chosen))*4
}

// Offer presents one labelled sample. It is kept with probability
// capacity/seen (always while the buffer is not full), replacing a slot
// chosen uniformly. It returns the slot written, or -1 if not kept. x is
// not retained.
func (r *Buffer) Offer(x []float32, label int) (int, error) {
	if len(x) != r.features {
		return -1, fmt.Errorf("replay: sample has %d values, the buffer holds %d", len(x), r.features)
	}
	if label < 0 || label >= r.classes {
		return -1, fmt.Errorf("replay: label %d outside [0, %d)", label, r.classes)
	}
	for i, v := range x {
		if v != v {
			return -1, fmt.Errorf("replay: value %d of the sample is NaN", i)
		}
	}
	r.seen++
	var slot int
	if n := len(r.labels); n < r.capacity {
		r.grow()
		slot = n
		r.labels = r.labels[:n+1]
		r.values = r.values[:(n+1)*r.features*r.kind.bytesPerValue()]
	} else {
		j := r.admitRand.Uint64N(r.seen)
		if j >= uint64(r.capacity) {
			return -1, nil
		}
		slot = int(j)
	}
	r.labels[slot] = uint16(label)
	r.encode(r.values[slot*r.features*r.kind.bytesPerValue():][:r.features*r.kind.bytesPerValue()], x)
	return slot, nil
}

// grow makes room for one more sample, doubling the storage up to capacity
// so that memory follows the contents without one copy per sample.
func (r *Buffer) grow() {
	n := len(r.labels)
	if n < cap(r.labels) {
		return
	}
	newCap := max(2*n, 64)
	newCap = min(newCap, r.capacity)
	bpv := r.kind.bytesPerValue()
	values := make([]byte, len(r.values), newCap*r.features*bpv)
	copy(values, r.values)
	labels := make([]uint16, n, newCap)
	copy(labels, r.labels)
	r.values, r.labels = values, labels
}

func (r *Buffer) encode(dst []byte, x []float32) {
	switch r.kind {
	case Uint8:
		for i, v := range x {
			q := v*255 + 0.5
			switch {
			case !(q >= 0): // negative (NaN was rejected by Offer)
				q = 0
				r.clamped++
			case q >= 256:
				q = 255
				r.clamped++
			}
			dst[i] = byte(q)
		}
	case Float16:
		for i, v := range x {
			if v > maxFloat16 {
				v = maxFloat16
				r.clamped++
			} else if v < -maxFloat16 {
				v = -maxFloat16
				r.clamped++
			}
			binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
		}
	}
}

// Sample decodes the sample in slot into dst (len Features) and returns its
// label.
func (r *Buffer) Sample(slot int, dst []float32) (int, error) {
	if slot < 0 || slot >= len(r.labels) {
		return 0, fmt.Errorf("replay: slot %d outside [0, %d)", slot, len(r.labels))
	}
	if len(dst) != r.features {
		return 0, fmt.Errorf("replay: destination has %d values, samples have %d", len(dst), r.features)
	}
	r.decode(dst, slot)
	return int(r.labels[slot]), nil
}

func (r *Buffer) decode(dst []float32, slot int) {
	bpv := r.kind.bytesPerValue()
	src := r.values[slot*r.features*bpv:][:r.features*bpv]
	switch r.kind {
	case Uint8:
		for i, b := range src {
			dst[i] = uint8Value[b]
		}
	case Float16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
	}
}

// SampleBatch draws min(len(labels), Len()) distinct samples uniformly
// (Floyd's algorithm) and decodes them into x, row after row (len(x) must
// be at least len(labels)·Features), and their labels into labels. It
// returns the number drawn. x and labels may be a bnn.Network's Input and
// Labels. The draw is deterministic for the seed and the
// sequence of calls, and allocates nothing after the first batch.
func (r *Buffer) SampleBatch(x []float32, labels []int32) (int, error) {
	return r.SampleBatchWith(x, labels, nil)
}

// Mark returns a function that puts the mini-batch generator back to where
// it is now, so that the batches drawn since repeat exactly (the contents
// must not change in between). The encoding race trains every arm on the
// same batches this way.
func (r *Buffer) Mark() (rewind func() error) {
	state, err := r.batchPCG.MarshalBinary()
	return func() error {
		if err != nil {
			return err
		}
		return r.batchPCG.UnmarshalBinary(state)
	}
}

// SampleBatchWith is SampleBatch with the samples in slots fresh (those
// just offered, as Offer returned them; -1 and repeats are skipped) placed
// first, and the rest of the batch drawn uniformly from the other slots.
// Online learning needs it: with uniform draws alone the first samples of
// a stream are trained far more often than the last, and a new sample may
// wait many steps for its first.
func (r *Buffer) SampleBatchWith(x []float32, labels []int32, fresh []int) (int, error) {
	n := min(len(labels), len(r.labels))
	if len(x) < n*r.features {
		return 0, fmt.Errorf("replay: batch buffer has %d values, %d samples need %d", len(x), n, n*r.features)
	}
	if cap(r.chosen) < n {
		r.chosen = make([]int32, 0, n)
	}
	chosen := r.chosen[:0]
	total := len(r.labels)
	for _, slot := range fresh {
		if len(chosen) == n || slot < 0 || slot >= total || slices.Contains(chosen, int32(slot)) {
			continue
		}
		chosen = append(chosen, int32(slot))
	}
	k := len(chosen)
	slices.Sort(chosen)
	// Floyd's algorithm over the total-k other slots, numbered without the
	// fresh ones; "picked" marks those numbers.
	others := total - k
	for j := others - (n - k); j < others; j++ {
		t := int(r.batchRand.Uint64N(uint64(j + 1)))
		if r.picked[t>>6]&(1<<(t&63)) != 0 {
			t = j
		}
		r.picked[t>>6] |= 1 << (t & 63)
		chosen = append(chosen, int32(t))
	}
	for i := k; i < len(chosen); i++ {
		v := chosen[i]
		r.picked[v>>6] &^= 1 << (v & 63)
		for _, f := range chosen[:k] { // ascending: skip the fresh slots
			if f <= v {
				v++
			}
		}
		chosen[i] = v
	}
	for i, slot := range chosen {
		r.decode(x[i*r.features:(i+1)*r.features], int(slot))
		labels[i] = int32(r.labels[slot])
	}
	r.chosen = chosen
	return n, nil
}

// WriteTo serialises the buffer (contents, counters and random state) for a
// checkpoint section. Format version 1, little-endian:
//
//	"RPLY" u8 version u8 kind u16 0 u32 features u32 classes u32 capacity
//	u32 n u64 seen, 20 bytes admission PCG, 20 bytes batch PCG,
//	n u16 labels, n·features values (1 byte for uint8, 2 for float16)
func (r *Buffer) WriteTo(w io.Writer) (int64, error) {
	var hdr [replayHdrSize + 2*pcgStateSize]byte
	copy(hdr[:], replayMagic)
	hdr[4] = replayVersion
	hdr[5] = byte(r.kind)
	le := binary.LittleEndian
	le.PutUint32(hdr[8:], uint32(r.features))
	le.PutUint32(hdr[12:], uint32(r.classes))
	le.PutUint32(hdr[16:], uint32(r.capacity))
	le.PutUint32(hdr[20:], uint32(len(r.labels)))
	le.PutUint64(hdr[24:], r.seen)
	for i, p := range []*rand.PCG{r.admitPCG, r.batchPCG} {
		state, err := p.MarshalBinary()
		if err != nil || len(state) != pcgStateSize {
			return 0, fmt.Errorf("replay: random state: %d bytes, %v", len(state), err)
		}
		copy(hdr[replayHdrSize+i*pcgStateSize:], state)
	}
	var total int64
	n, err := w.Write(hdr[:])
	total += int64(n)
	if err != nil {
		return total, err
	}
	var lb [512]byte
	for i := 0; i < len(r.labels); i += len(lb) / 2 {
		chunk := r.labels[i:min(i+len(lb)/2, len(r.labels))]
		for j, l := range chunk {
			le.PutUint16(lb[2*j:], l)
		}
		n, err = w.Write(lb[:2*len(chunk)])
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	n, err = w.Write(r.values)
	total += int64(n)
	return total, err
}

// Read restores a buffer written by WriteTo. The capacity is the one
// saved; the data is checked for consistency, never trusted.
func Read(data []byte) (*Buffer, error) {
	if len(data) < replayHdrSize+2*pcgStateSize {
		return nil, fmt.Errorf("replay: %d bytes, shorter than the %d-byte header", len(data), replayHdrSize+2*pcgStateSize)
	}
	if string(data[:4]) != replayMagic {
		return nil, fmt.Errorf("replay: not a replay buffer (starts with %q)", data[:4])
	}
	if data[4] != replayVersion {
		return nil, fmt.Errorf("replay: format version %d, this bnnd reads %d", data[4], replayVersion)
	}
	le := binary.LittleEndian
	kind := Storage(data[5])
	features, classes := int(le.Uint32(data[8:])), int(le.Uint32(data[12:]))
	capacity, n := int64(le.Uint32(data[16:])), int64(le.Uint32(data[20:]))
	seen := le.Uint64(data[24:])
	if kind != Uint8 && kind != Float16 {
		return nil, fmt.Errorf("replay: unknown storage kind %d", kind)
	}
	if features <= 0 || features > 1<<24 || classes <= 0 || classes > maxReplayClass {
		return nil, fmt.Errorf("replay: %d features and %d classes out of range", features, classes)
	}
	// A buffer that is not full has normally kept every sample (n = seen),
	// but not after Resize grew it, so only the bounds are checked.
	if capacity <= 0 || capacity > math.MaxInt32 || n > capacity || uint64(n) > seen {
		return nil, fmt.Errorf("replay: inconsistent counts: %d held, capacity %d, %d seen", n, capacity, seen)
	}
	want := int64(replayHdrSize+2*pcgStateSize) + n*labelBytes + n*int64(features*kind.bytesPerValue())
	if int64(len(data)) != want {
		return nil, fmt.Errorf("replay: %d bytes, the header describes %d", len(data), want)
	}
	r := &Buffer{kind: kind, features: features, classes: classes, capacity: int(capacity), seen: seen}
	r.admitPCG, r.batchPCG = new(rand.PCG), new(rand.PCG)
	for i, p := range []*rand.PCG{r.admitPCG, r.batchPCG} {
		off := replayHdrSize + i*pcgStateSize
		if err := p.UnmarshalBinary(data[off : off+pcgStateSize]); err != nil {
			return nil, fmt.Errorf("replay: random state: %w", err)
		}
	}
	r.admitRand, r.batchRand = rand.New(r.admitPCG), rand.New(r.batchPCG)
	off := replayHdrSize + 2*pcgStateSize
	r.labels = make([]uint16, n)
	for i := range r.labels {
		r.labels[i] = le.Uint16(data[off+2*i:])
		if int(r.labels[i]) >= classes {
			return nil, fmt.Errorf("replay: sample %d has label %d, outside [0, %d)", i, r.labels[i], classes)
		}
	}
	off += int(n) * labelBytes
	r.values = append([]byte(nil), data[off:]...)
	if kind == Float16 {
		for i := 0; i < len(r.values); i += 2 {
			if !float16.Frombits(le.Uint16(r.values[i:])).IsFinite() {
				return nil, errors.New("replay: a stored value is not finite")
			}
		}
	}
	r.picked = make([]uint64, (capacity+63)/64)
	return r, nil
}
