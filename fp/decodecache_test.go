package fp

import (
	"fmt"
	"math"
	"sync"
	"testing"
)

// cachedFormats lists the formats whose tables the shared cache holds.
func cachedFormats() []Format {
	p := decodeCache.Load()
	if p == nil {
		return nil
	}
	out := make([]Format, len(*p))
	for i, e := range *p {
		out[i] = e.f
	}
	return out
}

func sameBits(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

// The shared cache keeps at most decodeCacheSize tables however many
// formats are used, and every table it hands out, evicted or not, holds the
// exact values of its format.
func TestDecodeCacheBounded(t *testing.T) {
	var handed [][]float32
	var formats []Format
	for bits := 4; bits <= 12; bits++ {
		for exp := 2; exp <= 5 && exp < bits; exp++ {
			f := Format{Exp: exp, Mant: bits - 1 - exp, Bias: 1 << (exp - 1)}
			if err := f.Validate(); err != nil {
				t.Fatalf("%v: %v", f, err)
			}
			formats = append(formats, f)
			handed = append(handed, decodeTable(f))
			if n := len(cachedFormats()); n > decodeCacheSize {
				t.Fatalf("after %d formats the cache holds %d tables, want ≤ %d", len(formats), n, decodeCacheSize)
			}
		}
	}
	if len(formats) <= decodeCacheSize {
		t.Fatalf("only %d formats: the test does not overflow the cache", len(formats))
	}
	for k, f := range formats {
		tab := handed[k]
		if len(tab) != 1<<f.Bits() {
			t.Fatalf("%v: table of %d values, want %d", f, len(tab), 1<<f.Bits())
		}
		for code := range tab {
			if !sameBits(tab[code], f.Decode(uint32(code))) {
				t.Fatalf("%v: table[%#x] = %g, Decode = %g", f, code, tab[code], f.Decode(uint32(code)))
			}
		}
	}
	// The most recent format is still cached: a second lookup shares the table.
	last := formats[len(formats)-1]
	if a, b := decodeTable(last), decodeTable(last); &a[0] != &b[0] {
		t.Errorf("%v: two lookups of the newest format built two tables", last)
	}
	// Rounding does not change values, so it shares the entry.
	sto := last
	sto.Rounding = Stochastic
	if a, b := decodeTable(last), decodeTable(sto); &a[0] != &b[0] {
		t.Errorf("%v: stochastic and nearest variants do not share a table", last)
	}
}

// The encoding search tries hundreds of formats; it must not leave their
// tables in the shared cache (that was ~45 MB held for good in the daemon).
func TestSearchLeavesDecodeCacheAlone(t *testing.T) {
	before := fmt.Sprint(cachedFormats())
	tr := syntheticTrace(256, 20, 7)
	res, err := Search([]Trace{tr}, SearchOptions{Stochastic: true, Seed: 1, MaxBits: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ranking) < 2*decodeCacheSize {
		t.Fatalf("only %d candidates: the test would not notice a cache that fills", len(res.Ranking))
	}
	if after := fmt.Sprint(cachedFormats()); after != before {
		t.Errorf("search of %d candidates changed the shared decode cache:\nbefore %s\nafter  %s", len(res.Ranking), before, after)
	}
	// Its private tables give the results of SimulateTrace, which uses the
	// shared ones (nearest rounding: no random stream to line up).
	checked := 0
	for _, c := range res.Ranking {
		if c.Format.Rounding != NearestEven || c.Bits > 16 || checked == 5 {
			continue
		}
		checked++
		rng := NewRand(1, 1)
		st, err := SimulateTrace(c.Format, tr, &rng)
		if err != nil {
			t.Fatal(err)
		}
		if st.Counts.LostRatio() != c.LostRatio || st.FlipDisagreement() != c.FlipDisagreement {
			t.Errorf("%v: search says lost %g, flip disagreement %g; SimulateTrace %g, %g",
				c.Format, c.LostRatio, c.FlipDisagreement, st.Counts.LostRatio(), st.FlipDisagreement())
		}
	}
	if checked == 0 {
		t.Error("no nearest-rounding candidate of ≤ 16 bits to compare")
	}
}

// Concurrent first lookups of the same and different formats agree and stay
// within the bound (run with -race).
func TestDecodeCacheConcurrent(t *testing.T) {
	formats := []Format{MustParseFormat("e4m3b8"), MustParseFormat("e5m2b16"), FP16, BF16, MustParseFormat("e3m4b4")}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for r := range 20 {
				f := formats[(g+r)%len(formats)]
				tab := decodeTable(f)
				for _, code := range []uint32{0, 1, 0x3c, uint32(len(tab) - 1)} {
					code &= uint32(len(tab) - 1)
					if !sameBits(tab[code], f.Decode(code)) {
						errs <- fmt.Errorf("%v: table[%#x] = %g, want %g", f, code, tab[code], f.Decode(code))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(cachedFormats()); n > decodeCacheSize {
		t.Errorf("cache holds %d tables, want ≤ %d", n, decodeCacheSize)
	}
}
