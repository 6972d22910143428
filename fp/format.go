// Package fp implements small floating-point formats for storing Bop
// momenta: a sign bit, 1–8 exponent bits, 0–23 mantissa bits and a free
// integer exponent bias, with subnormals always, either IEEE-style (top
// exponent reserved for Inf/NaN) or all-finite (saturating at the largest
// magnitude). It encodes float32 values with round-to-nearest-even,
// stochastic or toward-zero rounding, packs codes of any width 2–32 bits into
// vectors, measures how many momentum updates an encoding loses, and searches
// for the fewest-bit encoding that keeps Bop's decisions close to FP32.
//
// Every representable value of a valid Format is exactly a float32 (the bias
// is limited accordingly), so Decode is exact and Encode rounds exactly once.
package fp

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rounding selects how Encode maps a float32 to a code when the value falls
// between two representable neighbours.
type Rounding uint8

const (
	// NearestEven rounds to the nearest representable value, ties to the
	// one with an even last mantissa bit (IEEE 754 default).
	NearestEven Rounding = iota
	// Stochastic rounds up with probability equal to the distance from the
	// lower neighbour divided by the gap, so E[Decode(Encode(x))] == x.
	Stochastic
	// TowardZero truncates the magnitude.
	TowardZero
)

func (r Rounding) String() string {
	switch r {
	case NearestEven:
		return "nearest-even"
	case Stochastic:
		return "stochastic"
	case TowardZero:
		return "toward-zero"
	}
	return "Rounding(" + strconv.Itoa(int(r)) + ")"
}

// Format describes a binary floating-point format with a sign bit, Exp
// exponent bits, Mant mantissa bits and exponent bias Bias. A code with
// exponent field e and mantissa field m has the value
//
//	(-1)^s · m · 2^(1-Bias-Mant)            if e == 0 (subnormal)
//	(-1)^s · (1 + m/2^Mant) · 2^(e-Bias)    otherwise
//
// except that IEEE formats reserve e == 2^Exp-1 for Inf (m == 0) and NaN.
type Format struct {
	Exp, Mant int // exponent and mantissa bits (sign bit always present)
	Bias      int
	IEEE      bool // true: top exponent reserved for Inf/NaN (fp16, bf16, fp32); false: all-finite, saturating
	Rounding  Rounding
}

// The IEEE formats that have names. Other layouts are all-finite.
var (
	FP32 = Format{Exp: 8, Mant: 23, Bias: 127, IEEE: true}
	FP16 = Format{Exp: 5, Mant: 10, Bias: 15, IEEE: true}
	BF16 = Format{Exp: 8, Mant: 7, Bias: 127, IEEE: true}
)

var namedIEEE = []struct {
	name string
	f    Format
}{{"fp32", FP32}, {"fp16", FP16}, {"bf16", BF16}}

// DefaultBias is the IEEE-style bias 2^(exp-1)-1 used when a name has no bZ.
func DefaultBias(exp int) int { return 1<<(exp-1) - 1 }

// Bits is the code width: sign + exponent + mantissa.
func (f Format) Bits() int { return 1 + f.Exp + f.Mant }

// maxExpField is the largest exponent field that holds finite values.
func (f Format) maxExpField() int {
	top := 1<<f.Exp - 1
	if f.IEEE {
		return top - 1
	}
	return top
}

// BiasRange returns the biases for which every value of a format with this
// exponent and mantissa width (and IEEE flag) is exactly a float32: the
// smallest subnormal must not be below 2^-149 and the largest value must be
// below 2^128.
func BiasRange(exp, mant int, ieee bool) (lo, hi int) {
	top := 1<<exp - 1
	if ieee {
		top--
	}
	// top - bias <= 127 and 1 - bias - mant >= -149
	return top - 127, 150 - mant
}

// Validate reports whether f is a format this package supports, naming the
// offending field.
func (f Format) Validate() error {
	if f.Exp < 1 || f.Exp > 8 {
		return fmt.Errorf("fp: exponent bits must be 1..8, got %d", f.Exp)
	}
	if f.Mant < 0 || f.Mant > 23 {
		return fmt.Errorf("fp: mantissa bits must be 0..23, got %d", f.Mant)
	}
	if f.Rounding > TowardZero {
		return fmt.Errorf("fp: unknown rounding mode %d", f.Rounding)
	}
	if f.IEEE {
		ok := false
		for _, n := range namedIEEE {
			if f.Exp == n.f.Exp && f.Mant == n.f.Mant && f.Bias == n.f.Bias {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("fp: IEEE (Inf/NaN) layout e%dm%db%d is not one of fp32, fp16, bf16; compact formats are all-finite", f.Exp, f.Mant, f.Bias)
		}
	}
	lo, hi := BiasRange(f.Exp, f.Mant, f.IEEE)
	if f.Bias < lo {
		return fmt.Errorf("fp: bias %d puts the largest value of e%dm%d above float32's range; bias must be ≥ %d", f.Bias, f.Exp, f.Mant, lo)
	}
	if f.Bias > hi {
		return fmt.Errorf("fp: bias %d puts the smallest value of e%dm%d below float32's smallest subnormal 2^-149; bias must be ≤ %d", f.Bias, f.Exp, f.Mant, hi)
	}
	return nil
}

// String returns the canonical name: fp32, fp16, bf16 (with a trailing s or
// z for stochastic or toward-zero rounding), or eXmY[bZ][s|z] where bZ is
// omitted for the default bias. ParseFormat(f.String()) == f for every valid f.
func (f Format) String() string {
	var b strings.Builder
	named := false
	if f.IEEE {
		for _, n := range namedIEEE {
			if f.Exp == n.f.Exp && f.Mant == n.f.Mant && f.Bias == n.f.Bias {
				b.WriteString(n.name)
				named = true
				break
			}
		}
	}
	if !named {
		fmt.Fprintf(&b, "e%dm%d", f.Exp, f.Mant)
		if f.Exp < 1 || f.Exp > 30 || f.Bias != DefaultBias(f.Exp) {
			fmt.Fprintf(&b, "b%d", f.Bias)
		}
		if f.IEEE {
			b.WriteString("-ieee") // not parseable: Validate rejects it
		}
	}
	switch f.Rounding {
	case NearestEven:
	case Stochastic:
		b.WriteByte('s')
	case TowardZero:
		b.WriteByte('z')
	default:
		fmt.Fprintf(&b, "-rounding%d", f.Rounding)
	}
	return b.String()
}

// ParseFormat parses fp32, fp16, bf16 or eXmY[bZ] (X exponent bits 1..8, Y
// mantissa bits 0..23, Z the bias, possibly negative, default 2^(X-1)-1),
// each optionally followed by s (stochastic rounding) or z (toward zero).
// eXmY formats are all-finite; fp32, fp16 and bf16 are IEEE.
func ParseFormat(name string) (Format, error) {
	f, err := parseFormat(name)
	if err != nil {
		return Format{}, fmt.Errorf("%q: %w", name, err)
	}
	if err := f.Validate(); err != nil {
		return Format{}, fmt.Errorf("%q: %w", name, err)
	}
	return f, nil
}

var errSyntax = errors.New("fp: format names are fp32, fp16, bf16 or eXmY[bZ] with an optional s (stochastic) or z (toward zero) suffix")

func parseFormat(name string) (Format, error) {
	rest := name
	var f Format
	switch {
	case strings.HasSuffix(rest, "s"):
		f.Rounding = Stochastic
		rest = rest[:len(rest)-1]
	case strings.HasSuffix(rest, "z"):
		f.Rounding = TowardZero
		rest = rest[:len(rest)-1]
	}
	for _, n := range namedIEEE {
		if rest == n.name {
			r := f.Rounding
			f = n.f
			f.Rounding = r
			return f, nil
		}
	}
	if !strings.HasPrefix(rest, "e") {
		return f, errSyntax
	}
	rest = rest[1:]
	exp, rest, ok := leadingInt(rest, false)
	if !ok {
		return f, fmt.Errorf("%w (no exponent bit count after e)", errSyntax)
	}
	if !strings.HasPrefix(rest, "m") {
		return f, fmt.Errorf("%w (expected m after the exponent bits)", errSyntax)
	}
	mant, rest, ok := leadingInt(rest[1:], false)
	if !ok {
		return f, fmt.Errorf("%w (no mantissa bit count after m)", errSyntax)
	}
	// Range-check the widths before they are used to compute a default bias.
	if exp < 1 || exp > 8 {
		return f, fmt.Errorf("exponent bits must be 1..8, got %d", exp)
	}
	if mant < 0 || mant > 23 {
		return f, fmt.Errorf("mantissa bits must be 0..23, got %d", mant)
	}
	f.Exp, f.Mant, f.Bias = exp, mant, DefaultBias(exp)
	if rest == "" {
		return f, nil
	}
	if !strings.HasPrefix(rest, "b") {
		return f, fmt.Errorf("%w (unexpected %q after e%dm%d)", errSyntax, rest, exp, mant)
	}
	bias, rest, ok := leadingInt(rest[1:], true)
	if !ok {
		return f, fmt.Errorf("%w (no bias after b)", errSyntax)
	}
	if rest != "" {
		return f, fmt.Errorf("%w (unexpected %q after the bias)", errSyntax, rest)
	}
	f.Bias = bias
	return f, nil
}

// leadingInt parses a decimal integer at the start of s without leading
// zeros (so names stay canonical) and at most 4 digits.
func leadingInt(s string, signed bool) (v int, rest string, ok bool) {
	neg := false
	if signed && strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	}
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 || n > 4 || (n > 1 && s[0] == '0') || (neg && s[:n] == "0") {
		return 0, s, false
	}
	v, _ = strconv.Atoi(s[:n])
	if neg {
		v = -v
	}
	return v, s[n:], true
}

// MustParseFormat is ParseFormat for names known to be valid; it panics
// otherwise. Use it for constants in code, never for user input.
func MustParseFormat(name string) Format {
	f, err := ParseFormat(name)
	if err != nil {
		panic(err)
	}
	return f
}

// MinSubnormal is the smallest positive value, 2^(1-Bias-Mant).
func (f Format) MinSubnormal() float64 { return math.Ldexp(1, 1-f.Bias-f.Mant) }

// MinNormal is the smallest positive normal value, 2^(1-Bias).
func (f Format) MinNormal() float64 { return math.Ldexp(1, 1-f.Bias) }

// MaxValue is the largest finite value, (2-2^-Mant)·2^(emax-Bias).
func (f Format) MaxValue() float64 {
	return math.Ldexp(2-math.Ldexp(1, -f.Mant), f.maxExpField()-f.Bias)
}

// Epsilon is the machine epsilon 2^-Mant: the gap between 1 and the next
// value, relative to the value, for normal numbers.
func (f Format) Epsilon() float64 { return math.Ldexp(1, -f.Mant) }

// Step returns the gap between the representable values around |x| (the
// ulp at x): the subnormal quantum below MinNormal, 2^(floor(log2|x|)-Mant)
// for normal magnitudes, and the last gap for |x| ≥ MaxValue.
func (f Format) Step(x float64) float64 {
	ax := math.Abs(x)
	if ax < f.MinNormal() {
		return f.MinSubnormal()
	}
	if ax >= f.MaxValue() {
		return math.Ldexp(1, f.maxExpField()-f.Bias-f.Mant)
	}
	_, e := math.Frexp(ax) // ax = frac·2^e, frac in [0.5,1)
	return math.Ldexp(1, e-1-f.Mant)
}
