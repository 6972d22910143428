package binio

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

var errTest = errors.New("malformed test record")

// writeRecord writes one of every field.
func writeRecord(w *Writer) {
	w.RawString("MAGC")
	w.U8(0xa5)
	w.U32(0x01020304)
	w.U64(0x0102030405060708)
	w.F32(-1.5)
	w.F64(math.Pi)
	w.Str("héllo")
	w.F32s([]float32{1, float32(math.Inf(-1)), 0.5})
	w.U64s([]uint64{math.MaxUint64, 0})
	w.RawU64s([]uint64{42})
	w.Str("")
	w.F32s(nil)
}

// The byte layout is fixed by the files written with it: check it byte by
// byte, not only by reading it back.
func TestWriterLayout(t *testing.T) {
	var w Writer
	writeRecord(&w)
	want := []byte("MAGC")
	want = append(want, 0xa5)
	want = append(want, 4, 3, 2, 1)
	want = append(want, 8, 7, 6, 5, 4, 3, 2, 1)
	want = append(want, 0x00, 0x00, 0xc0, 0xbf)                         // -1.5
	want = append(want, 0x18, 0x2d, 0x44, 0x54, 0xfb, 0x21, 0x09, 0x40) // π
	want = append(want, 6, 0, 0, 0)
	want = append(want, "héllo"...)
	want = append(want, 3, 0, 0, 0, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0xff)
	want = append(want, 0x00, 0x00, 0x00, 0x3f) // 0.5
	want = append(want, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 42, 0, 0, 0, 0, 0, 0, 0)
	want = append(want, 0, 0, 0, 0)
	want = append(want, 0, 0, 0, 0)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("layout:\n got % x\nwant % x", w.Bytes(), want)
	}
	if w.Len() != len(want) {
		t.Errorf("Len %d, want %d", w.Len(), len(want))
	}
}

func TestRoundTrip(t *testing.T) {
	var w Writer
	writeRecord(&w)
	r := NewReader(w.Bytes(), errTest)
	if m := string(r.Take(4, "magic")); m != "MAGC" {
		t.Errorf("magic %q", m)
	}
	if v := r.U8("u8"); v != 0xa5 {
		t.Errorf("U8 %#x", v)
	}
	if v := r.U32("u32"); v != 0x01020304 {
		t.Errorf("U32 %#x", v)
	}
	if v := r.U64("u64"); v != 0x0102030405060708 {
		t.Errorf("U64 %#x", v)
	}
	if v := r.F32("f32"); v != -1.5 {
		t.Errorf("F32 %g", v)
	}
	if v := r.F64("f64"); v != math.Pi {
		t.Errorf("F64 %g", v)
	}
	if v := r.Str("str"); v != "héllo" {
		t.Errorf("Str %q", v)
	}
	if v := r.F32s("f32s"); len(v) != 3 || v[0] != 1 || !math.IsInf(float64(v[1]), -1) || v[2] != 0.5 {
		t.Errorf("F32s %v", v)
	}
	if v := r.U64s("u64s"); len(v) != 2 || v[0] != math.MaxUint64 || v[1] != 0 {
		t.Errorf("U64s %v", v)
	}
	if v := r.RawU64s(1, "raw"); len(v) != 1 || v[0] != 42 {
		t.Errorf("RawU64s %v", v)
	}
	if v := r.Str("empty str"); v != "" {
		t.Errorf("empty Str %q", v)
	}
	if v := r.F32s("empty f32s"); len(v) != 0 {
		t.Errorf("empty F32s %v", v)
	}
	if r.Err() != nil {
		t.Fatalf("Err %v", r.Err())
	}
	if r.Remaining() != 0 || r.Offset() != w.Len() {
		t.Errorf("offset %d remaining %d after reading all %d bytes", r.Offset(), r.Remaining(), w.Len())
	}
}

// Every cut of a record fails with an error that wraps the kind and names a
// field, and the error is sticky: later reads give zero values and do not
// replace it.
func TestTruncationIsStickyAndNamed(t *testing.T) {
	var w Writer
	w.U32(7)
	w.Str("abc")
	w.F32s([]float32{1, 2})
	full := w.Bytes()
	fields := []string{"count", "name length", "name", "values length", "values"}
	for cut := 0; cut < len(full); cut++ {
		r := NewReader(full[:cut], errTest)
		n, s, v := r.U32("count"), r.Str("name"), r.F32s("values")
		err := r.Err()
		if !errors.Is(err, errTest) {
			t.Fatalf("cut %d: error %v does not wrap the kind", cut, err)
		}
		named := false
		for _, f := range fields {
			if strings.Contains(err.Error(), f+" at offset") {
				named = true
			}
		}
		if !named {
			t.Errorf("cut %d: error %q names no field", cut, err)
		}
		if v != nil {
			t.Errorf("cut %d: F32s after the error returned %v", cut, v)
		}
		if cut < 4 && (n != 0 || s != "") {
			t.Errorf("cut %d: reads after the error returned %d %q", cut, n, s)
		}
		first := err.Error()
		if r.U64("later") != 0 || r.Err().Error() != first {
			t.Errorf("cut %d: a later read changed the error to %v", cut, r.Err())
		}
	}
	r := NewReader(full[:5], errTest)
	r.U32("count")
	r.Str("name")
	if want := "malformed test record: name length at offset 4 needs 4 bytes, 1 left"; r.Err().Error() != want {
		t.Errorf("error %q, want %q", r.Err(), want)
	}
}

// A corrupt count larger than the data must fail cleanly, also where
// count×size would overflow a 32-bit int, and must not allocate for it.
func TestHugeCounts(t *testing.T) {
	for _, count := range []uint32{math.MaxUint32, 1<<30 + 1, 1<<29 + 1, 9} {
		var w Writer
		w.U32(count)
		w.U64(0)
		for _, read := range []func(r *Reader) int{
			func(r *Reader) int { return len(r.F32s("vec")) },
			func(r *Reader) int { return len(r.U64s("vec")) },
			func(r *Reader) int { return len(r.Str("vec")) },
		} {
			r := NewReader(w.Bytes(), errTest)
			if n := read(r); n != 0 || !errors.Is(r.Err(), errTest) || !strings.Contains(r.Err().Error(), "vec at offset 4") {
				t.Errorf("count %d: got %d values, error %v", count, n, r.Err())
			}
		}
	}
	r := NewReader(make([]byte, 16), errTest)
	if v := r.RawU64s(math.MaxUint64, "words"); v != nil || !errors.Is(r.Err(), errTest) {
		t.Errorf("RawU64s(MaxUint64): %d values, error %v", len(v), r.Err())
	}
	r = NewReader(make([]byte, 16), errTest)
	if v := r.Take(-1, "negative"); v != nil || !errors.Is(r.Err(), errTest) {
		t.Errorf("Take(-1): %v, error %v", v, r.Err())
	}
}

// Take hands out slices that cannot be appended into the following bytes.
func TestTakeIsCapped(t *testing.T) {
	b := []byte{1, 2, 3, 4}
	r := NewReader(b, errTest)
	s := r.Take(2, "head")
	_ = append(s, 9)
	if b[2] != 3 {
		t.Errorf("append to a taken slice overwrote the input: %v", b)
	}
}

func BenchmarkWriteF32s(b *testing.B) {
	v := make([]float32, 4096)
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		var w Writer
		w.F32s(v)
	}
}

func TestReadFull(t *testing.T) {
	data := make([]byte, 3*readChunk+5)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// A bytes.Reader tells its length; a HalfReader does not, and returns
	// short reads.
	readers := map[string]func(b []byte) io.Reader{
		"sized":   func(b []byte) io.Reader { return bytes.NewReader(b) },
		"unsized": func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for name, reader := range readers {
		for _, n := range []uint64{0, 1, readChunk, uint64(len(data))} {
			got, err := ReadFull(reader(data), n)
			if err != nil || !bytes.Equal(got, data[:n]) {
				t.Errorf("%s n %d: %d bytes, error %v", name, n, len(got), err)
			}
		}
		for _, c := range []struct {
			have int
			want error
		}{{0, io.EOF}, {1, io.ErrUnexpectedEOF}, {readChunk, io.ErrUnexpectedEOF}, {2*readChunk + 1, io.ErrUnexpectedEOF}} {
			got, err := ReadFull(reader(data[:c.have]), uint64(c.have)+10)
			if !errors.Is(err, c.want) || !bytes.Equal(got, data[:c.have]) {
				t.Errorf("%s, %d of %d bytes: got %d bytes, error %v; want the %d and %v", name, c.have, c.have+10, len(got), err, c.have, c.want)
			}
		}
	}
	failing := errors.New("disk on fire")
	if _, err := ReadFull(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(failing)), 100); !errors.Is(err, failing) {
		t.Errorf("reader error: %v", err)
	}
}

// A header that claims a gigabyte in front of a few megabytes must not make
// ReadFull allocate the gigabyte, whether or not the reader tells its size.
func TestReadFullCorruptLength(t *testing.T) {
	data := make([]byte, 3*readChunk)
	// The sized reader's buffer is the data's size; the unsized one's
	// doubles from a chunk: 1+2+4 chunks.
	limits := map[string]uint64{"sized": uint64(len(data)) + 64<<10, "unsized": 7*readChunk + 64<<10}
	for name, r := range map[string]io.Reader{"sized": bytes.NewReader(data), "unsized": iotest.HalfReader(bytes.NewReader(data))} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := ReadFull(r, 1<<30)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != len(data) {
			t.Errorf("%s: got %d bytes, error %v", name, len(got), err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > limits[name] {
			t.Errorf("%s: allocated %d bytes for %d bytes of input", name, grew, len(data))
		}
	}
	if _, err := ReadFull(bytes.NewReader(nil), math.MaxUint64); err == nil {
		t.Error("a length beyond the address space was accepted")
	}
}

func BenchmarkStreamF32s(b *testing.B) {
	v := make([]float32, 1<<16)
	var buf bytes.Buffer
	var s Stream
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		buf.Reset()
		if err := s.WriteF32s(&buf, v); err != nil {
			b.Fatal(err)
		}
		if err := s.ReadF32s(&buf, v); err != nil {
			b.Fatal(err)
		}
	}
}
