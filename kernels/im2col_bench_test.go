package kernels_test

import (
	"fmt"
	"testing"

	"github.com/bnnd/bnnd/kernels"
)

// The kbench cases gather 64 channels, which takes the one-word path; these
// time the general loops: more than one word per pixel, and the first
// layer's real input (one channel for MNIST, six for an IMU).
func BenchmarkIm2Col3x3General(b *testing.B) {
	const batch = 32
	for _, c := range []int{128, 256} {
		hw := 14
		src := make([]uint64, batch*hw*hw*kernels.Words(c))
		for i := range src {
			src[i] = uint64(i) * 0x9e3779b97f4a7c15
		}
		dst := make([]uint64, len(src)*9)
		b.Run(fmt.Sprintf("bits/%dx%dx%dx%d", batch, hw, hw, c), func(b *testing.B) {
			for b.Loop() {
				kernels.Im2Col3x3Bits(dst, src, batch, hw, hw, c)
			}
		})
	}
	for _, c := range []int{1, 6} {
		hw := 28
		src := make([]float32, batch*hw*hw*c)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, len(src)*9)
		b.Run(fmt.Sprintf("float/%dx%dx%dx%d", batch, hw, hw, c), func(b *testing.B) {
			for b.Loop() {
				kernels.Im2Col3x3Float(dst, src, batch, hw, hw, c)
			}
		})
	}
}
