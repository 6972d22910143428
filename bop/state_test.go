package bop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"

	"github.com/bnnd/bnnd/internal/binio"
)

// writtenState is a small optimizer and the state it writes.
func writtenState(t *testing.T) (*Optimizer, []byte) {
	t.Helper()
	net := testNet(t, []int{16}, 20, 3, 4, 1, 1)
	o, err := New(net, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := o.WriteState(&buf); err != nil {
		t.Fatal(err)
	}
	return o, buf.Bytes()
}

// A state whose header claims the largest payload ReadState accepts, in
// front of a small real one, is a truncation error that costs no more
// memory than the input, also on 32-bit ARM where the claimed length does
// not fit in an int.
func TestReadStateCorruptLength(t *testing.T) {
	o, state := writtenState(t)
	binary.LittleEndian.PutUint64(state[12:], 1<<31)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := o.ReadState(bytes.NewReader(state))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrStateTruncated) {
		t.Errorf("header claiming 2 GiB: error %v, want ErrStateTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("reading %d bytes allocated %d bytes", len(state), grew)
	}
}

// A payload whose fields run past its end names the field that did not fit.
func TestReadStateNamesShortField(t *testing.T) {
	o, full := writtenState(t)
	// Keep the header, the step and γ (12 bytes), drop the rest of the
	// payload, and write a matching length and checksum.
	short := append([]byte(nil), full[:20+12]...)
	binary.LittleEndian.PutUint64(short[12:], 12)
	short = binary.LittleEndian.AppendUint32(short, crc32.Checksum(short, binio.Castagnoli))
	err := o.ReadState(bytes.NewReader(short))
	if !errors.Is(err, errState) || !bytes.Contains([]byte(err.Error()), []byte("gamma at offset 12 needs 4 bytes, 0 left")) {
		t.Errorf("short payload: error %v", err)
	}
}
