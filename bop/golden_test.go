package bop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// The optimizer state's bytes are part of every checkpoint: a change to how
// they are framed or laid out must be a deliberate new version, not a side
// effect. The digest was taken from the format as first released. No step
// is taken: the step kernels round differently per architecture, and the
// framing and layout are what this guards.
func TestStateBytesUnchanged(t *testing.T) {
	net := testNet(t, []int{16}, 20, 3, 4, 1, 1)
	o, err := New(net, Config{Seed: 3, Gamma: 2e-3, Tau: 1e-6, AdamLR: 1e-2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := o.WriteState(&buf); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got, want := hex.EncodeToString(sum[:]), "0350a7090dae4f0a8593c96913efb52bcb09822f08c7faf41b8c6e2582f40197"; got != want {
		t.Errorf("state of %d bytes has sha256 %s, want %s", buf.Len(), got, want)
	}
}
