package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bnnd/bnnd/internal/binio"
	"github.com/bnnd/bnnd/internal/testutil"
)

func testSections(gen int) []Section {
	payload := make([]byte, 1000+gen*37%5000)
	r := rand.New(rand.NewPCG(uint64(gen), 7))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	meta, _ := json.Marshal(map[string]int{"gen": gen, "payload_len": len(payload)})
	return []Section{
		BytesSection("meta", meta),
		BytesSection("payload", payload),
		BytesSection("empty", nil),
	}
}

// checkGeneration verifies that a loaded checkpoint is exactly what
// testSections(gen) wrote, for the gen recorded in its meta section.
func checkGeneration(t *testing.T, c *File) int {
	t.Helper()
	meta, ok := c.Section("meta")
	if !ok {
		t.Fatal("no meta section")
	}
	var m map[string]int
	if err := json.Unmarshal(meta, &m); err != nil {
		t.Fatalf("meta: %v", err)
	}
	want := testSections(m["gen"])
	for _, s := range want {
		got, ok := c.Section(s.Name)
		if !ok {
			t.Fatalf("gen %d: section %s missing", m["gen"], s.Name)
		}
		var buf bytes.Buffer
		s.Body.WriteTo(&buf)
		if !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("gen %d: section %s differs", m["gen"], s.Name)
		}
	}
	return m["gen"]
}

func TestCheckpointRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v, want ErrNoCheckpoint", err)
	}
	created := time.Date(2026, 11, 28, 12, 0, 0, 123, time.UTC)
	for gen := 1; gen <= 3; gen++ {
		size, err := st.Save(created.Add(time.Duration(gen)*time.Minute), testSections(gen)...)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(st.LatestPath())
		if fi.Size() != size {
			t.Errorf("Save reported %d bytes, file has %d", size, fi.Size())
		}
	}
	c, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if gen := checkGeneration(t, c); gen != 3 || len(c.Skipped) != 0 {
		t.Fatalf("loaded gen %d, skipped %v", gen, c.Skipped)
	}
	if !c.Created.Equal(created.Add(3*time.Minute)) || c.Version != formatVersion {
		t.Errorf("created %v version %d", c.Created, c.Version)
	}
	prev, err := ReadFile(st.PreviousPath())
	if err != nil || checkGeneration(t, prev) != 2 {
		t.Fatalf("previous checkpoint: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want latest and previous", len(entries))
	}
}

func TestCheckpointRejectsBadSections(t *testing.T) {
	st, _ := Open(t.TempDir(), true, nil)
	for _, secs := range [][]Section{
		{BytesSection("Model", nil)},
		{BytesSection("", nil)},
		{BytesSection("a", nil), BytesSection("a", nil)},
		{{Name: "nobody"}},
	} {
		if _, err := st.Save(time.Now(), secs...); err == nil {
			t.Errorf("sections %v accepted", secs)
		}
	}
	if _, err := os.Stat(st.LatestPath()); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed save left a checkpoint")
	}
	if m, _ := filepath.Glob(filepath.Join(st.Dir(), tempPattern)); len(m) != 0 {
		t.Errorf("a failed save left temporary files %v", m)
	}
}

type failingWriterTo struct{}

func (failingWriterTo) WriteTo(w io.Writer) (int64, error) {
	w.Write([]byte("partial"))
	return 7, errors.New("engine refused")
}

func TestCheckpointSectionWriteErrorKeepsOld(t *testing.T) {
	st, _ := Open(t.TempDir(), true, nil)
	if _, err := st.Save(time.Now(), testSections(1)...); err != nil {
		t.Fatal(err)
	}
	_, err := st.Save(time.Now(), Section{Name: "model", Body: failingWriterTo{}})
	if err == nil || !strings.Contains(err.Error(), `section "model": engine refused`) {
		t.Fatalf("error %v", err)
	}
	c, err := st.Load()
	if err != nil || checkGeneration(t, c) != 1 {
		t.Fatalf("after failed save: %v", err)
	}
}

// saveTwo writes generations 1 and 2 and returns the bytes of the latest.
func saveTwo(t *testing.T) (*Store, []byte) {
	t.Helper()
	st, err := Open(t.TempDir(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for gen := 1; gen <= 2; gen++ {
		if _, err := st.Save(time.Unix(int64(gen), 0), testSections(gen)...); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := os.ReadFile(st.LatestPath())
	if err != nil {
		t.Fatal(err)
	}
	return st, latest
}

func TestCheckpointTruncationFallsBack(t *testing.T) {
	st, latest := saveTwo(t)
	for cut := 0; cut < len(latest); cut++ {
		_, err := Parse(latest[:cut])
		if err == nil {
			t.Fatalf("truncated at %d of %d bytes: accepted", cut, len(latest))
		}
		msg := err.Error()
		if !strings.Contains(msg, "truncated") {
			t.Fatalf("truncated at %d: error %q does not say truncated", cut, msg)
		}
	}
	// Through the store, for a sample of offsets (every offset would rewrite
	// the file thousands of times).
	for _, cut := range []int{0, 1, 7, 8, 31, 32, 33, 50, len(latest) / 2, len(latest) - 5, len(latest) - 1} {
		if err := os.WriteFile(st.LatestPath(), latest[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := st.Load()
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if gen := checkGeneration(t, c); gen != 1 {
			t.Fatalf("cut %d: loaded gen %d, want the previous (1)", cut, gen)
		}
		if len(c.Skipped) != 1 || !strings.Contains(c.Skipped[0].Error(), st.LatestPath()) {
			t.Fatalf("cut %d: skipped %v does not name the latest file", cut, c.Skipped)
		}
	}
}

func TestCheckpointBitFlips(t *testing.T) {
	st, latest := saveTwo(t)
	damaged := make([]byte, len(latest))
	step := 1
	if testing.Short() {
		step = 7
	}
	for off := 0; off < len(latest); off += step {
		for _, bit := range []byte{0x01, 0x80} {
			copy(damaged, latest)
			damaged[off] ^= bit
			_, err := Parse(damaged)
			if err == nil {
				t.Fatalf("bit flip %#x at offset %d accepted", bit, off)
			}
		}
	}
	// A flip inside the payload names the damaged section.
	copy(damaged, latest)
	damaged[len(damaged)-100] ^= 4
	_, err := Parse(damaged)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "damaged section(s): payload") {
		t.Fatalf("payload flip: %v", err)
	}
	os.WriteFile(st.LatestPath(), damaged, 0o600)
	c, err := st.Load()
	if err != nil || checkGeneration(t, c) != 1 {
		t.Fatalf("fallback after bit flip: %v", err)
	}
	// The next save must not move the damaged latest over the good previous.
	st2, _ := Open(st.Dir(), true, nil)
	if _, err := st2.Save(time.Unix(3, 0), testSections(3)...); err != nil {
		t.Fatal(err)
	}
	prev, err := ReadFile(st2.PreviousPath())
	if err != nil || checkGeneration(t, prev) != 1 {
		t.Fatalf("previous after saving over a damaged latest: %v", err)
	}
}

func TestCheckpointBothDamaged(t *testing.T) {
	st, latest := saveTwo(t)
	os.WriteFile(st.LatestPath(), latest[:40], 0o600)
	os.WriteFile(st.PreviousPath(), []byte("hello world, not a checkpoint at all"), 0o600)
	_, err := st.Load()
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("both damaged: %v", err)
	}
	for _, want := range []string{LatestName + ": truncated", PreviousName + `: not a bnnd checkpoint (starts with "hello wo")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestCheckpointOtherProblems(t *testing.T) {
	_, latest := saveTwo(t)
	future := bytes.Clone(latest)
	binary.LittleEndian.PutUint32(future[8:], 2)
	if _, err := Parse(future); err == nil || !strings.Contains(err.Error(), "format version 2, this bnnd reads version 1") {
		t.Errorf("version: %v", err)
	}
	long := append(bytes.Clone(latest), 0)
	if _, err := Parse(long); err == nil || !strings.Contains(err.Error(), "1 unexpected bytes after the declared end") {
		t.Errorf("trailing byte: %v", err)
	}
	unfinished := bytes.Clone(latest)
	binary.LittleEndian.PutUint64(unfinished[24:], 0)
	if _, err := Parse(unfinished); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("unfinished: %v", err)
	}
	// A structurally wrong file with a correct checksum (a writer bug) is
	// reported as malformed, not trusted.
	bad := bytes.Clone(latest)
	binary.LittleEndian.PutUint32(bad[12:], 5)
	binary.LittleEndian.PutUint32(bad[len(bad)-4:], crc32.Checksum(bad[:len(bad)-4], binio.Castagnoli))
	if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("wrong count: %v", err)
	}
}

func TestOpenStoreRemovesInterruptedSaves(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".checkpoint-123.tmp")
	os.WriteFile(stale, []byte("half"), 0o600)
	if _, err := Open(dir, true, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
}

// crashChildEnv makes the test binary a checkpoint writer that saves in a
// loop until it is killed.
const crashChildEnv = "BNND_CHECKPOINT_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	os.Exit(m.Run())
}

func crashChild(dir string) int {
	st, err := Open(dir, true, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := 1
	if c, err := st.Load(); err == nil {
		var m map[string]int
		meta, _ := c.Section("meta")
		json.Unmarshal(meta, &m)
		start = m["gen"] + 1
	}
	for gen := start; ; gen++ {
		if _, err := st.Save(time.Now(), testSections(gen)...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if gen == start {
			fmt.Println("saved")
		}
	}
}

// TestCheckpointCrash kills a writer with SIGKILL at random moments while it
// saves in a loop; afterwards the store must always load a checkpoint that
// is exactly one the writer produced, and newer than the one loaded
// before (each child completes at least one save before it is killed).
func TestCheckpointCrash(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(42, 0))
	lastGen := 0
	for round := 0; round < rounds; round++ {
		testutil.CrashSavingChild(t, crashChildEnv+"="+dir, round, time.Duration(rng.IntN(40000))*time.Microsecond)

		st, err := Open(dir, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.Load()
		if err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		gen := checkGeneration(t, c)
		if gen <= lastGen {
			t.Fatalf("round %d: loaded generation %d, but the writer completed a save after generation %d", round, gen, lastGen)
		}
		lastGen = gen
		t.Logf("round %d: resumed at generation %d from %s", round, gen, filepath.Base(c.Path))
	}
	if lastGen < rounds {
		t.Errorf("only %d generations written in %d rounds", lastGen, rounds)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	dir := f.TempDir()
	st, _ := Open(dir, false, nil)
	st.Save(time.Unix(1, 0), BytesSection("meta", []byte(`{"a":1}`)), BytesSection("x", []byte{1, 2, 3}))
	good, _ := os.ReadFile(st.LatestPath())
	f.Add(good)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Parse(data)
		if info == nil {
			t.Fatal("nil info")
		}
		if err == nil {
			// Accepted means: every checksum matched and the sections tile
			// the file exactly.
			if !info.ChecksumOK || info.Size != info.DeclaredSize {
				t.Fatalf("accepted with checksum %v, size %d of %d", info.ChecksumOK, info.Size, info.DeclaredSize)
			}
			for i, ok := range info.SectionOK {
				if !ok {
					t.Fatalf("accepted with section %d damaged", i)
				}
			}
		}
	})
}

// The size bound: the error names the file, its size and the bound.
func TestStoreRefusesAFileOverTheBound(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Save(time.Now(), testSections(1)...); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(st.LatestPath())
	st.SetMaxSize(fi.Size() - 1)
	_, err = st.Load()
	want := fmt.Sprintf("%s: %d bytes, more than the %d bytes", st.LatestPath(), fi.Size(), fi.Size()-1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load over the bound: %v; want %q", err, want)
	}
	st.SetMaxSize(fi.Size())
	if _, err := st.Load(); err != nil {
		t.Fatal(err)
	}
}
