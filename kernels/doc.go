// Package kernels holds the bit-packed binary neural network kernels that
// training and inference spend their time in: sign packing, XNOR-popcount
// matrix products (forward), ±1-times-float products (backward), 3×3
// binary convolution, and a deterministic parallel-for helper.
//
// # Bit convention
//
// A packed bit 1 means −1 (the sign bit) and a bit 0 means +1. A row of k
// values is stored in Words(k) 64-bit words, value kk in bit kk%64 of word
// kk/64. Padding bits (from k up to the end of the last word) are zero in
// every operand, so the XOR of two rows never has a 1 there and
//
//	dot(a, b) = k − 2·popcount(a XOR b)
//
// counts only the k valid positions. Every kernel that reads packed rows
// relies on this invariant and every kernel that writes packed rows keeps it.
//
// # Implementations
//
// Every kernel has a pure-Go version (always compiled, the only one on 32-bit
// ARM and under the purego build tag) and, where it pays, assembly versions:
// AVX2 and AVX-512 on amd64, NEON on arm64. One implementation is chosen at
// init (see dispatch.go); BNND_KERNELS=generic|avx2|avx512|avx512vector|neon
// forces one. avx512 runs the forward GEMM with a few scalar POPCNT columns
// beside the vector ones (the integer ports are otherwise idle);
// avx512vector is the same without them.
// Integer results are identical across implementations. Float results are
// sums of the same terms in a different order, so they agree to within a few
// float32 ulps of the sum of the absolute values of the terms (the tests
// check |got − want| ≤ 1e-5·Σ|term|).
//
// # Errors
//
// The kernels take slices and sizes and return nothing: they are called
// millions of times from code that has already validated its shapes. A size
// that does not match its slice is a programming error, and the kernels
// panic with a message naming the kernel, the argument and the sizes
// (checked in Go before any assembly runs, so assembly never reads or writes
// out of bounds).
package kernels
