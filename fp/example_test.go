package fp_test

import (
	"fmt"

	"github.com/bnnd/bnnd/fp"
)

func ExampleParseFormat() {
	f, err := fp.ParseFormat("e4m3b28")
	if err != nil {
		panic(err)
	}
	code := f.Encode(3e-7, nil)
	fmt.Printf("%s: %d bits, max %.4g, 3e-7 is stored as %#02x = %.4g\n", f, f.Bits(), f.MaxValue(), code, f.Decode(code))
	_, err = fp.ParseFormat("e9m3")
	fmt.Println(err)
	// Output:
	// e4m3b28: 8 bits, max 0.0002289, 3e-7 is stored as 0x32 = 2.98e-07
	// "e9m3": exponent bits must be 1..8, got 9
}

func ExampleVector_Step() {
	f := fp.MustParseFormat("e3m2b24s")
	v := fp.NewVector(f, 1000)
	fmt.Println(v.Bytes(), "bytes for", v.Len(), "momenta")
	rng := fp.NewRand(1, 0)
	g := make([]float32, 1000)
	for i := range g {
		g[i] = 1e-4 // pushes every momentum up by γ·g = 1e-7
	}
	m := make([]float32, 1000)
	counts := v.Step(0, g, 1e-3, &rng, m)
	fmt.Println(counts.Values, "values,", counts.Lost+counts.Changed == counts.Values)
	// Output:
	// 752 bytes for 1000 momenta
	// 1000 values, true
}
