package fp

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseFormatNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Format
	}{
		{"fp32", FP32},
		{"fp16", FP16},
		{"bf16", BF16},
		{"fp16s", Format{Exp: 5, Mant: 10, Bias: 15, IEEE: true, Rounding: Stochastic}},
		{"e4m3", Format{Exp: 4, Mant: 3, Bias: 7}},
		{"e5m2", Format{Exp: 5, Mant: 2, Bias: 15}},
		{"e4m3b28", Format{Exp: 4, Mant: 3, Bias: 28}},
		{"e3m2b24s", Format{Exp: 3, Mant: 2, Bias: 24, Rounding: Stochastic}},
		{"e2m1b-3z", Format{Exp: 2, Mant: 1, Bias: -3, Rounding: TowardZero}},
		{"e1m0", Format{Exp: 1, Mant: 0, Bias: 0}},
		{"e8m7b130", Format{Exp: 8, Mant: 7, Bias: 130}},
	} {
		got, err := ParseFormat(tc.name)
		if err != nil {
			t.Errorf("ParseFormat(%q): %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseFormat(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
		if s := got.String(); s != tc.name {
			t.Errorf("ParseFormat(%q).String() = %q", tc.name, s)
		}
	}
	if s := (Format{Exp: 4, Mant: 3, Bias: 7}).String(); s != "e4m3" {
		t.Errorf("default bias is written out: %q", s)
	}
}

func TestParseFormatErrorsSayWhatIsWrong(t *testing.T) {
	for name, want := range map[string]string{
		"e9m3":      "exponent bits must be 1..8",
		"e0m3":      "exponent bits must be 1..8",
		"e4m24":     "mantissa bits must be 0..23",
		"e4m3b200":  "bias must be ≤",
		"e8m7":      "bias must be ≥ 128",
		"fp8":       "format names are",
		"":          "format names are",
		"e4":        "expected m",
		"e4m":       "no mantissa bit count",
		"e4m3b":     "no bias",
		"e4m3x":     "unexpected \"x\"",
		"e4m3b28q":  "unexpected \"q\"",
		"e04m3":     "no exponent bit count",
		"E4M3":      "format names are",
		"e4m3ss":    "unexpected \"s\"",
		"e4m3b-0":   "no bias",
		"e4m3b28 ":  "unexpected",
		"fp16b15":   "format names are",
		"e4m3b2800": "bias must be ≤",
	} {
		_, err := ParseFormat(name)
		if err == nil {
			t.Errorf("ParseFormat(%q) accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("ParseFormat(%q) error %q: want it to name the input and say %q", name, err, want)
		}
	}
}

func TestValidateRejectsBadFormats(t *testing.T) {
	for _, f := range []Format{
		{Exp: 5, Mant: 10, Bias: 14, IEEE: true},
		{Exp: 4, Mant: 3, Bias: 7, Rounding: 9},
		{Exp: 4, Mant: -1, Bias: 7},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", f)
		}
	}
}

func TestLimits(t *testing.T) {
	f := MustParseFormat("e4m3b28")
	if got := f.MinSubnormal(); got != 1.0/(1<<30) {
		t.Errorf("MinSubnormal = %g, want 2^-30", got)
	}
	if got := f.MinNormal(); got != 1.0/(1<<27) {
		t.Errorf("MinNormal = %g, want 2^-27", got)
	}
	if got, want := f.MaxValue(), 1.875/(1<<13); got != want {
		t.Errorf("MaxValue = %g, want %g", got, want)
	}
	if got := FP16.MaxValue(); got != 65504 {
		t.Errorf("fp16 MaxValue = %g", got)
	}
	if got := FP16.MinSubnormal(); got != 1.0/(1<<24) {
		t.Errorf("fp16 MinSubnormal = %g", got)
	}
	if got := f.Epsilon(); got != 0.125 {
		t.Errorf("Epsilon = %g", got)
	}
	if got := f.Step(3e-7); got != 1.0/(1<<25) {
		t.Errorf("Step(3e-7) = %g, want 2^-25", got) // 3e-7 is in [2^-22, 2^-21): 2^-22·2^-3
	}
	if got := f.Step(1e-9); got != f.MinSubnormal() {
		t.Errorf("Step in the subnormals = %g", got)
	}
}

func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"fp32", "fp16", "bf16s", "e4m3", "e4m3b28", "e3m2b24s", "e2m1b-3z", "e9m1", "e4m3b", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := ParseFormat(name)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Errorf("error %q does not quote the input", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("ParseFormat(%q) returned invalid %+v: %v", name, got, err)
		}
		again, err := ParseFormat(got.String())
		if err != nil || again != got {
			t.Fatalf("ParseFormat(%q) = %+v; String %q parses to %+v, %v", name, got, got.String(), again, err)
		}
	})
}
