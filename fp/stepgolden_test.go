package fp

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// stepGolden is the FNV-64a hash of the codes, row, counts and flips of
// the steps in TestStepGolden, recorded on amd64: a checkpoint resumed on
// another machine (arm64 under qemu runs this test too) or with another
// kernel must continue bit for bit. A deliberate change of the step's
// arithmetic or random stream changes it; say so in the commit.
const stepGoldenHash = 0xcf29ca0a16b4b855

func TestStepGolden(t *testing.T) {
	withEachStepImpl(t, func(impl string) {
		h := fnv.New64a()
		for _, name := range []string{"e2m3b21s", "e2m2b21s", "e4m3b28", "e4m3b28s", "e3m2b24z", "e5m10b24s", "fp16", "bf16s", "fp32"} {
			f := MustParseFormat(name)
			r := rand.New(rand.NewPCG(11, 12))
			const n = 1100
			v := NewVector(f, n)
			m := make([]float32, n)
			for i := range m {
				m[i] = float32(r.NormFloat64() * 3e-6)
			}
			v.EncodeRange(0, m, nil)
			row := make([]uint64, 20)
			for i := range row {
				row[i] = r.Uint64()
			}
			g := make([]float32, n)
			rng := NewRand(5, 6)
			for step := range 5 {
				for i := range g {
					g[i] = float32(r.NormFloat64() * 3e-5)
				}
				c, flips := v.StepFlip(64, g[64+step:], 0.01, &rng, row, 0, 1e-6)
				fmt.Fprintf(h, "%s %d %+v %d ", name, step, c, flips)
			}
			for _, w := range v.Words() {
				fmt.Fprintf(h, "%x", w)
			}
			for _, w := range row {
				fmt.Fprintf(h, "%x", w)
			}
		}
		if got := h.Sum64(); got != stepGoldenHash {
			t.Errorf("%s: step results hash to %#x, recorded %#x", impl, got, uint64(stepGoldenHash))
		}
	})
}
