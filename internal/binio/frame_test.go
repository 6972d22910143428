package binio

import (
	"bytes"
	"errors"
	"testing"
)

var (
	errMagic   = errors.New("magic")
	errVersion = errors.New("version")
	errSum     = errors.New("checksum")
	errShort   = errors.New("truncated")
	errFormat  = errors.New("format")
)

var testFrame = Frame{
	Magic: "TESTFRAM", What: "test file", MinVersion: 1, MaxVersion: 2, MaxLength: 64,
	BadMagic: errMagic, Version: errVersion, Checksum: errSum, Truncated: errShort, Format: errFormat,
}

// Each way a frame can be wrong is reported with the owner's sentinel.
func TestFrame(t *testing.T) {
	good := testFrame.Append([]byte("prefix"), 2, []byte("payload"))[len("prefix"):]
	v, p, err := testFrame.Read(bytes.NewReader(good))
	if err != nil || v != 2 || string(p) != "payload" {
		t.Fatalf("round trip: version %d, payload %q, error %v", v, p, err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, errShort},
		{"short header", good[:10], errShort},
		{"short payload", good[:len(good)-1], errShort},
		{"magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), errMagic},
		{"old version", mutate(func(b []byte) []byte { b[8] = 0; return b }), errVersion},
		{"new version", mutate(func(b []byte) []byte { b[8] = 3; return b }), errVersion},
		{"length", mutate(func(b []byte) []byte { b[12] = 65; return b }), errFormat},
		{"flipped bit", mutate(func(b []byte) []byte { b[FrameHeaderSize] ^= 1; return b }), errSum},
	} {
		if _, _, err := testFrame.Read(bytes.NewReader(c.file)); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
}
