package sensors

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
)

// LabelBox is what a person teaching a board says the sensor sees: the
// current label, with the time it was set and, optionally, when it clears
// itself, and the list of classes the labels have named so far. A live
// source reads it for every sample it takes, so a window is labelled only
// when one label held from its first sample to its last. It is safe for
// concurrent use.
//
// The zero value accepts any valid name and makes a new class of each name
// it has not seen, up to DefaultMaxClasses.
type LabelBox struct {
	mu      sync.Mutex
	classes []string
	index   map[string]int
	fixed   bool // only the initial classes are accepted
	max     int  // most classes (0: DefaultMaxClasses)

	name  string
	label int // index of name, -1 for none
	until time.Time
	// seq counts label changes (a timed label clearing itself included):
	// two samples were taken under the same label exactly when they read
	// the same seq.
	seq     uint64
	changed chan struct{}
}

// Limits on labels. Names travel in MQTT payloads, file names and Home
// Assistant selects; a timed label longer than a day is a mistake.
const (
	DefaultMaxClasses = 16
	MaxLabelLen       = 64
	MaxLabelHold      = 24 * time.Hour
	// LabelNone is the name that clears the label (and cannot be a class).
	LabelNone = "none"
)

// ErrClassLimit is returned by Set when a new name would exceed the class
// limit, ErrUnknownClass when the classes are fixed and the name is not one
// of them.
var (
	ErrClassLimit   = errors.New("class limit reached")
	ErrUnknownClass = errors.New("not one of the classes")
)

// NewLabelBox returns a box that accepts only the given classes (and "none"
// or "" to clear).
func NewLabelBox(classes ...string) *LabelBox {
	b := &LabelBox{fixed: true}
	b.init(classes)
	return b
}

// NewGrowingLabelBox returns a box that starts with the known classes and
// makes a new class of each new name, up to max classes in all.
func NewGrowingLabelBox(known []string, max int) *LabelBox {
	b := &LabelBox{max: max}
	b.init(known)
	return b
}

func (b *LabelBox) init(classes []string) {
	b.label = -1
	for _, c := range classes {
		b.addLocked(c)
	}
}

func (b *LabelBox) addLocked(name string) int {
	if b.index == nil {
		b.index = map[string]int{}
	}
	b.index[name] = len(b.classes)
	b.classes = append(b.classes, name)
	return len(b.classes) - 1
}

// Label is the outcome of Set.
type Label struct {
	Name     string // "" for none
	Index    int    // class index, -1 for none
	NewClass bool   // Name was made a class by this call
	Until    time.Time
}

// ValidateLabel checks a label name: not empty, at most MaxLabelLen bytes,
// no control characters, no spaces at either end, not "none".
func ValidateLabel(name string) error {
	switch {
	case name == "":
		return errors.New("label name is empty")
	case name == LabelNone:
		return fmt.Errorf("label %q clears the label and cannot name a class", LabelNone)
	case len(name) > MaxLabelLen:
		return fmt.Errorf("label %.20q... is %d bytes, longer than %d", name, len(name), MaxLabelLen)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("label %q has spaces at either end", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("label %q has a control or invalid character", name)
		}
	}
	return nil
}

// Set makes name the current label from now on; "" or "none" clears it. A
// positive hold clears it again after that long (0 holds until the next
// Set). A name the box has not seen becomes a new class, unless the
// classes are fixed (ErrUnknownClass) or at their limit (ErrClassLimit).
func (b *LabelBox) Set(name string, hold time.Duration, now time.Time) (Label, error) {
	if name == LabelNone {
		name = ""
	}
	if hold < 0 || hold > MaxLabelHold {
		return Label{}, fmt.Errorf("label hold %v is outside 0 to %v", hold, MaxLabelHold)
	}
	if name == "" && hold > 0 {
		return Label{}, errors.New("a hold time needs a label to hold; \"none\" takes none")
	}
	if name != "" {
		if err := ValidateLabel(name); err != nil {
			return Label{}, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	out := Label{Name: name, Index: -1}
	if name != "" {
		i, ok := b.index[name]
		if !ok {
			switch max := b.limit(); {
			case b.fixed:
				return Label{}, fmt.Errorf("label %q: %w %q", name, ErrUnknownClass, b.classes)
			case len(b.classes) >= max:
				return Label{}, fmt.Errorf("label %q would be class %d: %w (%d classes: %s)", name, len(b.classes)+1, ErrClassLimit, max, strings.Join(b.classes, ", "))
			}
			i = b.addLocked(name)
			out.NewClass = true
		}
		out.Index = i
	}
	if hold > 0 {
		out.Until = now.Add(hold)
	}
	if name != b.name {
		b.seq++
	}
	b.name, b.label, b.until = name, out.Index, out.Until
	b.signalLocked()
	return out, nil
}

func (b *LabelBox) limit() int {
	if b.max > 0 {
		return b.max
	}
	return DefaultMaxClasses
}

// expireLocked clears a timed label whose time has come.
func (b *LabelBox) expireLocked(now time.Time) {
	if b.name != "" && !b.until.IsZero() && !now.Before(b.until) {
		b.name, b.label, b.until = "", -1, time.Time{}
		b.seq++
		b.signalLocked()
	}
}

func (b *LabelBox) signalLocked() {
	if b.changed == nil {
		b.changed = make(chan struct{}, 1)
	}
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled after the label or the classes change (a timed
// label clearing itself is noticed by the next Current or Set).
func (b *LabelBox) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{}, 1)
	}
	return b.changed
}

// Current returns the label at time now (name "" and index -1 for none),
// when it clears itself (zero: it does not), and its change count.
func (b *LabelBox) Current(now time.Time) (l Label, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	if b.name == "" {
		return Label{Index: -1}, b.seq
	}
	return Label{Name: b.name, Index: b.label, Until: b.until}, b.seq
}

// Classes returns the classes named so far, in index order.
func (b *LabelBox) Classes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.classes...)
}

// LabelBoxOf returns the label box a source takes its labels from (a live
// sensor), or nil for a source whose data carry their labels.
func LabelBoxOf(src Source) *LabelBox {
	if l, ok := src.(interface{ LabelBox() *LabelBox }); ok {
		return l.LabelBox()
	}
	return nil
}
