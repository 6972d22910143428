package bnn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"

	"github.com/bnnd/bnnd/internal/binio"
)

func smallModelFile(t *testing.T) []byte {
	t.Helper()
	spec, err := ParseSpec("mlp:16")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(spec, Shape{Height: 1, Width: 1, Channels: 20}, []string{"a", "b", "c"}, Options{Batch: 4, Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := n.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A header that claims the largest payload ReadModel accepts, in front of
// a small model, is a truncation error that costs no more memory than the
// input.
func TestReadModelCorruptLength(t *testing.T) {
	file := smallModelFile(t)
	binary.LittleEndian.PutUint64(file[12:], maxModelBytes)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadModel(bytes.NewReader(file), Options{Batch: 4, Threads: 1})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("header claiming 1 GiB: error %v, want ErrTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("reading %d bytes allocated %d bytes", len(file), grew)
	}
}

// A payload whose fields run past its end names the field that did not fit.
func TestReadModelNamesShortField(t *testing.T) {
	file := smallModelFile(t)
	// Keep the header and the model name (4+6 bytes: "mlp:16"), drop the
	// rest, and write a matching length and checksum.
	short := append([]byte(nil), file[:20+10]...)
	binary.LittleEndian.PutUint64(short[12:], 10)
	short = binary.LittleEndian.AppendUint32(short, crc32.Checksum(short, binio.Castagnoli))
	_, err := ReadModel(bytes.NewReader(short), Options{Batch: 4, Threads: 1})
	if !errors.Is(err, ErrModelFormat) || !strings.Contains(err.Error(), "input height at offset 10 needs 4 bytes, 0 left") {
		t.Errorf("short payload: error %v", err)
	}
}
