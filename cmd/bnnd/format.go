package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"

	"github.com/bnnd/bnnd/fp"
)

func init() {
	register(&command{
		name:    "format",
		summary: "describe a momentum encoding (e.g. e4m3b28) or compare common ones",
		run:     runFormat,
	})
}

// compareFormats are the encodings 'bnnd format --compare' shows by default:
// the IEEE references, default-bias 8-bit formats, and formats biased for
// Bop momenta of 1e-8..1e-5 (where they sit with bnnd train's γ = 1e-3, τ = 1e-6) down
// to 4 bits.
var compareFormats = []string{
	"fp32", "fp16", "bf16", "e5m2", "e4m3",
	"e5m6b31", "e5m2b30", "e4m3b28", "e3m4b24", "e3m2b24s", "e2m2b22s", "e3m0b22s", "e2m1b22s",
}

const formatUsage = `usage: bnnd format NAME [--json] [--at X]
       bnnd format --compare [--at X] [NAME...]

NAME is fp32, fp16, bf16 or eXmY[bZ][s|z]: X exponent bits (1..8), Y mantissa
bits (0..23), bias Z (default 2^(X-1)-1), s = stochastic rounding, z = toward
zero. eXmY formats are all-finite: no Inf/NaN, they saturate at the largest
value. --at X also shows how a value of magnitude X is stored.`

// atFlag is an optional magnitude.
type atFlag struct {
	set bool
	x   float64
}

func (a *atFlag) String() string {
	if !a.set {
		return ""
	}
	return strconv.FormatFloat(a.x, 'g', -1, 64)
}

func (a *atFlag) Set(s string) error {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x <= 0 || math.IsInf(x, 0) {
		return fmt.Errorf("want a positive magnitude such as 3e-7, got %q", s)
	}
	a.x, a.set = x, true
	return nil
}

func runFormat(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("format", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, formatUsage)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "print JSON")
	compare := fs.Bool("compare", false, "print a table of formats (the common ones unless NAMEs are given)")
	var at atFlag
	fs.Var(&at, "at", "show how a value of this magnitude is stored (e.g. 3e-7, a typical Bop momentum)")
	names, err := parseInterspersed(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return usageError{err}
	}
	if *compare {
		if len(names) == 0 {
			names = compareFormats
		}
	} else if len(names) != 1 {
		return usagef("want exactly one format name (or --compare), got %d arguments\n%s", len(names), formatUsage)
	}
	var infos []formatInfo
	for _, name := range names {
		f, err := fp.ParseFormat(name)
		if err != nil {
			return usageError{err}
		}
		infos = append(infos, describe(f, at))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if *compare {
			return enc.Encode(infos)
		}
		return enc.Encode(infos[0])
	}
	if *compare {
		return printCompare(stdout, infos, at)
	}
	return printFormat(stdout, infos[0])
}

// formatInfo is what 'bnnd format' reports about one format.
type formatInfo struct {
	Name         string   `json:"name"`
	Bits         int      `json:"bits"`
	Exp          int      `json:"exponent_bits"`
	Mant         int      `json:"mantissa_bits"`
	Bias         int      `json:"bias"`
	IEEE         bool     `json:"ieee"`
	Rounding     string   `json:"rounding"`
	MinSubnormal float64  `json:"min_subnormal"`
	MinNormal    float64  `json:"min_normal"`
	Max          float64  `json:"max"`
	Epsilon      float64  `json:"epsilon"`
	At           *atValue `json:"at,omitempty"`
}

// atValue is how one magnitude is stored.
type atValue struct {
	X            float64 `json:"x"`
	Stored       float64 `json:"stored"`        // Decode(Encode(x)) with round to nearest
	Step         float64 `json:"step"`          // gap between neighbouring values at x
	RelativeStep float64 `json:"relative_step"` // Step / x
	LostBelow    float64 `json:"lost_below"`    // updates smaller than this are rounded away (nearest)
	Range        string  `json:"range"`         // normal, subnormal, underflow, saturated
}

func describe(f fp.Format, at atFlag) formatInfo {
	info := formatInfo{
		Name: f.String(), Bits: f.Bits(), Exp: f.Exp, Mant: f.Mant, Bias: f.Bias, IEEE: f.IEEE,
		Rounding:     f.Rounding.String(),
		MinSubnormal: f.MinSubnormal(), MinNormal: f.MinNormal(), Max: f.MaxValue(), Epsilon: f.Epsilon(),
	}
	if at.set {
		near := f
		near.Rounding = fp.NearestEven
		a := &atValue{X: at.x, Step: f.Step(at.x)}
		a.Stored = float64(near.Decode(near.Encode(float32(at.x), nil)))
		a.RelativeStep = a.Step / at.x
		a.LostBelow = a.Step / 2
		switch {
		case at.x > f.MaxValue():
			a.Range = "saturated"
		case a.Stored == 0:
			a.Range = "underflow"
		case at.x < f.MinNormal():
			a.Range = "subnormal"
		default:
			a.Range = "normal"
		}
		info.At = a
	}
	return info
}

// pow2 writes v as 2^k when it is an exact power of two.
func pow2(v float64) string {
	frac, e := math.Frexp(v)
	if frac == 0.5 {
		return fmt.Sprintf("2^%d", e-1)
	}
	return ""
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 5, 64) }

func printFormat(w io.Writer, info formatInfo) error {
	kind := "all-finite (no Inf/NaN, saturates at the largest value)"
	if info.IEEE {
		kind = "IEEE (top exponent holds Inf/NaN)"
	}
	fmt.Fprintf(w, "%s: %d bits = sign + %d exponent + %d mantissa, bias %d, %s, rounding %s\n",
		info.Name, info.Bits, info.Exp, info.Mant, info.Bias, kind, info.Rounding)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "smallest subnormal\t%s\t%s\n", num(info.MinSubnormal), pow2(info.MinSubnormal))
	fmt.Fprintf(tw, "smallest normal\t%s\t%s\n", num(info.MinNormal), pow2(info.MinNormal))
	fmt.Fprintf(tw, "largest value\t%s\t(2-2^-%d)·2^%d\n", num(info.Max), info.Mant, int(math.Round(math.Log2(info.Max/(2-math.Ldexp(1, -info.Mant))))))
	fmt.Fprintf(tw, "machine epsilon\t%s\t%s\n", num(info.Epsilon), pow2(info.Epsilon))
	if a := info.At; a != nil {
		fmt.Fprintf(tw, "at %s\tstored as %s (%s)\n", num(a.X), num(a.Stored), a.Range)
		fmt.Fprintf(tw, "  step\t%s (relative %s)\n", num(a.Step), num(a.RelativeStep))
		if info.Rounding == fp.Stochastic.String() {
			fmt.Fprintf(tw, "  updates\tbelow %s survive only in expectation (stochastic rounding)\n", num(a.LostBelow))
		} else {
			fmt.Fprintf(tw, "  updates\tbelow %s are lost\n", num(a.LostBelow))
		}
	}
	return tw.Flush()
}

func printCompare(w io.Writer, infos []formatInfo, at atFlag) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "format\tbits\tmin subnormal\tmin normal\tmax\tepsilon\t"
	if at.set {
		x := num(at.x)
		header += "stored " + x + "\tstep\trel. step\t" + x + " is\t"
	}
	fmt.Fprintln(tw, header)
	for _, info := range infos {
		line := fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s\t", info.Name, info.Bits, num(info.MinSubnormal), num(info.MinNormal), num(info.Max), num(info.Epsilon))
		if a := info.At; a != nil {
			line += fmt.Sprintf("%s\t%s\t%s\t%s\t", num(a.Stored), num(a.Step), num(a.RelativeStep), a.Range)
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if at.set {
		fmt.Fprintf(w, "\nWith round to nearest, a momentum of about %s loses every update smaller than half the\n"+
			"step (γ·|g−m| with γ≈1e-3 is often far smaller); formats ending in s round stochastically,\n"+
			"so such updates survive in expectation. \"underflow\" formats store %s as 0: no weight\n"+
			"would ever flip. Bop flips a weight when |m| > τ (≈1e-6), so max must exceed τ.\n", num(at.x), num(at.x))
	}
	return nil
}
