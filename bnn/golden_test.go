package bnn

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// Model files outlive the binary that wrote them: a change to how they are
// framed or laid out must be a deliberate new version, not a side effect.
// The digest was taken from version 2 as first released.
func TestModelBytesUnchanged(t *testing.T) {
	file := smallModelFile(t)
	sum := sha256.Sum256(file)
	if got, want := hex.EncodeToString(sum[:]), "3a6b06fb5ddc1f6e094e3de6a699ed37b66b3cddd8c3b6e5e19cf6519fbf6eff"; got != want {
		t.Errorf("model file of %d bytes has sha256 %s, want %s", len(file), got, want)
	}
}
