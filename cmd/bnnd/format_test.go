package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runBnnd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestFormatDescribes(t *testing.T) {
	code, out, errOut := runBnnd(t, "format", "e4m3b28", "--at", "3e-7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"e4m3b28: 8 bits = sign + 4 exponent + 3 mantissa, bias 28, all-finite",
		"smallest subnormal  9.3132e-10  2^-30",
		"smallest normal     7.4506e-09  2^-27",
		"largest value       0.00022888  (2-2^-3)·2^-13",
		"machine epsilon     0.125       2^-3",
		"stored as 2.9802e-07 (normal)",
		"step              2.9802e-08 (relative 0.099341)",
		"below 1.4901e-08 are lost",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatJSON(t *testing.T) {
	code, out, errOut := runBnnd(t, "format", "--json", "fp16", "--at", "1e-8")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var info formatInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if info.Name != "fp16" || info.Bits != 16 || !info.IEEE || info.Max != 65504 || info.MinSubnormal != 1.0/(1<<24) {
		t.Errorf("fp16 described as %+v", info)
	}
	if info.At == nil || info.At.Range != "underflow" || info.At.Stored != 0 {
		t.Errorf("1e-8 in fp16 should underflow: %+v", info.At)
	}
}

func TestFormatCompare(t *testing.T) {
	code, out, errOut := runBnnd(t, "format", "--compare", "--at", "3e-7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	row := func(name string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", name, out)
		return nil
	}
	if r := row("e4m3"); r[len(r)-1] != "underflow" || r[1] != "8" {
		t.Errorf("default-bias e4m3 at 3e-7: %v", r)
	}
	if r := row("fp16"); r[len(r)-1] != "subnormal" {
		t.Errorf("fp16 at 3e-7: %v", r)
	}
	if r := row("e4m3b28"); r[len(r)-1] != "normal" || r[4] != "0.00022888" {
		t.Errorf("e4m3b28 at 3e-7: %v", r)
	}
	if r := row("e3m2b24s"); r[1] != "6" {
		t.Errorf("e3m2b24s: %v", r)
	}
	// Named formats only, as JSON.
	code, out, _ = runBnnd(t, "format", "--compare", "--json", "e2m1b22s", "bf16")
	var infos []formatInfo
	if code != 0 || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 || infos[0].Bits != 4 || infos[1].Name != "bf16" {
		t.Errorf("compare --json: exit %d, %s", code, out)
	}
}

func TestFormatUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"format"}, "want exactly one format name"},
		{[]string{"format", "e4m3", "e5m2"}, "want exactly one format name"},
		{[]string{"format", "e9m3"}, `"e9m3": exponent bits must be 1..8`},
		{[]string{"format", "e4m3", "--at", "-1"}, "want a positive magnitude"},
		{[]string{"format", "--compare", "fp8"}, `"fp8": fp: format names are`},
	} {
		code, _, errOut := runBnnd(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
