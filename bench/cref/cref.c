/* C reference kernels for `make bench`: the same operations as package
 * kernels, written as the plain loops a C programmer would write first
 * (a __builtin_popcountll loop for the binary GEMM, plain float loops for
 * the backward kernels), built with gcc -O3 -march=native. It prints one
 * JSON object per kernel and shape in the format of `bnnd bench --json`:
 *   {"impl":"cref","kernel":...,"shape":...,"seconds":...,"gbops":...}
 * seconds is the best time of several repetitions of one call; gbops is
 * multiply-accumulates (binary or float) per second / 1e9.
 * Bit convention as in package kernels: bit 1 means -1; rows padded to
 * whole 64-bit words with zero bits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { /* splitmix64 */
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void *xmalloc(size_t n) {
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "cref: out of memory allocating %zu bytes\n", n);
		exit(1);
	}
	return p;
}

static uint64_t *rand_bits(int rows, int k) {
	int kw = (k + 63) / 64;
	uint64_t *s = xmalloc(sizeof(uint64_t) * rows * kw);
	for (int r = 0; r < rows; r++)
		for (int w = 0; w < kw; w++) {
			uint64_t v = next();
			if ((w + 1) * 64 > k) v &= (k % 64 == 0) ? ~0ull : ((1ull << (k % 64)) - 1);
			s[r * kw + w] = v;
		}
	return s;
}

static float *rand_floats(size_t n) {
	float *s = xmalloc(sizeof(float) * n);
	for (size_t i = 0; i < n; i++) s[i] = (float)((int64_t)(next() >> 40) - (1 << 23)) / (1 << 23);
	return s;
}

/* c[i*n+j] = k - 2*popcount(a_i ^ b_j) */
static void bgemm(int32_t *c, const uint64_t *a, const uint64_t *b, int m, int n, int kw, int k) {
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			int p = 0;
			for (int w = 0; w < kw; w++) p += __builtin_popcountll(a[i * kw + w] ^ b[j * kw + w]);
			c[i * n + j] = k - 2 * p;
		}
}

/* dx[i*k+kk] = sum_j dy[i*n+j] * (w_j bit kk ? -1 : +1) */
static void bin_grad_input(float *dx, const float *dy, const uint64_t *w, int m, int n, int k) {
	int kw = (k + 63) / 64;
	for (int i = 0; i < m; i++) {
		float *d = dx + (size_t)i * k;
		memset(d, 0, sizeof(float) * k);
		for (int j = 0; j < n; j++) {
			float v = dy[i * n + j];
			const uint64_t *wj = w + (size_t)j * kw;
			for (int kk = 0; kk < k; kk++) d[kk] += ((wj[kk >> 6] >> (kk & 63)) & 1) ? -v : v;
		}
	}
}

/* tile[j*k+kk] = sum_i dy[i*n+j] * (a_i bit kk ? -1 : +1), the whole matrix as one tile */
static void bin_grad_weight(float *g, const float *dy, const uint64_t *a, int m, int n, int k) {
	int kw = (k + 63) / 64;
	memset(g, 0, sizeof(float) * n * k);
	for (int j = 0; j < n; j++) {
		float *gj = g + (size_t)j * k;
		for (int i = 0; i < m; i++) {
			float v = dy[i * n + j];
			const uint64_t *ai = a + (size_t)i * kw;
			for (int kk = 0; kk < k; kk++) gj[kk] += ((ai[kk >> 6] >> (kk & 63)) & 1) ? -v : v;
		}
	}
}

/* tile[j*k+kk] = sum_i dy[i*n+j] * x[i*k+kk] */
static void real_grad_weight(float *g, const float *dy, const float *x, int m, int n, int k) {
	memset(g, 0, sizeof(float) * n * k);
	for (int j = 0; j < n; j++) {
		float *gj = g + (size_t)j * k;
		for (int i = 0; i < m; i++) {
			float v = dy[i * n + j];
			const float *xi = x + (size_t)i * k;
			for (int kk = 0; kk < k; kk++) gj[kk] += v * xi[kk];
		}
	}
}

/* c[i*n+j] = sum_kk x[i*k+kk] * (w_j bit kk ? -1 : +1) */
static void real_bin_gemm(float *c, const float *x, const uint64_t *w, int m, int n, int k) {
	int kw = (k + 63) / 64;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			float s = 0;
			const uint64_t *wj = w + (size_t)j * kw;
			for (int kk = 0; kk < k; kk++) s += ((wj[kk >> 6] >> (kk & 63)) & 1) ? -x[i * k + kk] : x[i * k + kk];
			c[i * n + j] = s;
		}
}

/* Binary 3x3 conv, stride 1, +1 padding: im2col then bgemm, as kernels.BConv3x3. */
static void bconv3x3(int32_t *out, const uint64_t *src, const uint64_t *wts, uint64_t *cols,
                     int batch, int h, int w, int c, int cout) {
	int cw = (c + 63) / 64, row = 9 * cw;
	for (int b = 0; b < batch; b++)
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				uint64_t *o = cols + ((size_t)(b * h + y) * w + x) * row;
				for (int dy = -1; dy <= 1; dy++)
					for (int dx = -1; dx <= 1; dx++, o += cw) {
						int yy = y + dy, xx = x + dx;
						if (yy < 0 || yy >= h || xx < 0 || xx >= w) memset(o, 0, 8 * cw);
						else memcpy(o, src + ((size_t)(b * h + yy) * w + xx) * cw, 8 * cw);
					}
			}
	bgemm(out, cols, wts, batch * h * w, cout, row, 9 * c);
}

static volatile double sink;

static void report(const char *kernel, const char *shape, double secs, double macs) {
	printf("{\"impl\":\"cref\",\"kernel\":\"%s\",\"shape\":\"%s\",\"threads\":1,\"seconds\":%.9f,\"gbops\":%.4f}\n",
	       kernel, shape, secs, macs / secs / 1e9);
	fflush(stdout);
}

/* TIME runs stmt at least once, for at least 0.3 s, and at least 3 times
 * unless that would take more than 1 s; it keeps the best single time. */
#define TIME(best, stmt)                                            \
	do {                                                            \
		double t_start = now(), t0, dt;                             \
		best = 1e30;                                                \
		for (int rep = 0; rep < 1 || now() - t_start < 0.3 || (rep < 3 && now() - t_start < 1.0); rep++) { \
			t0 = now();                                             \
			stmt;                                                   \
			dt = now() - t0;                                        \
			if (dt < best) best = dt;                               \
		}                                                           \
	} while (0)

static void bench_gemm(int m, int n, int k) {
	int kw = (k + 63) / 64;
	uint64_t *a = rand_bits(m, k), *b = rand_bits(n, k);
	int32_t *c = xmalloc(sizeof(int32_t) * m * n);
	char shape[64];
	double best;
	snprintf(shape, sizeof shape, "%dx%dx%d", m, n, k);
	TIME(best, bgemm(c, a, b, m, n, kw, k));
	sink += c[0];
	report("bgemm", shape, best, (double)m * n * k);
	free(a), free(b), free(c);
}

static void bench_conv(int batch, int hw, int c, int cout) {
	int cw = (c + 63) / 64;
	uint64_t *src = rand_bits(batch * hw * hw, c), *wts = rand_bits(cout, 9 * cw * 64);
	uint64_t *cols = xmalloc(sizeof(uint64_t) * batch * hw * hw * 9 * cw);
	int32_t *out = xmalloc(sizeof(int32_t) * batch * hw * hw * cout);
	char shape[64];
	double best;
	snprintf(shape, sizeof shape, "%dx%dx%dx%d->%d", batch, hw, hw, c, cout);
	TIME(best, bconv3x3(out, src, wts, cols, batch, hw, hw, c, cout));
	sink += out[0];
	report("bconv3x3", shape, best, (double)batch * hw * hw * cout * 9 * c);
	free(src), free(wts), free(cols), free(out);
}

static void bench_backward(int m, int n, int k) {
	uint64_t *w = rand_bits(n, k), *a = rand_bits(m, k);
	float *dy = rand_floats((size_t)m * n), *dx = xmalloc(sizeof(float) * m * k);
	float *g = xmalloc(sizeof(float) * (size_t)n * k), *x = rand_floats((size_t)m * k);
	float *c = xmalloc(sizeof(float) * m * n);
	char shape[64];
	double best, macs = (double)m * n * k;
	snprintf(shape, sizeof shape, "%dx%dx%d", m, n, k);
	TIME(best, bin_grad_input(dx, dy, w, m, n, k));
	sink += dx[0];
	report("bingradinput", shape, best, macs);
	TIME(best, bin_grad_weight(g, dy, a, m, n, k));
	sink += g[0];
	report("bingradweight", shape, best, macs);
	TIME(best, real_grad_weight(g, dy, x, m, n, k));
	sink += g[0];
	report("realgradweight", shape, best, macs);
	TIME(best, real_bin_gemm(c, x, w, m, n, k));
	sink += c[0];
	report("realbingemm", shape, best, macs);
	free(w), free(a), free(dy), free(dx), free(g), free(x), free(c);
}

int main(void) {
	bench_gemm(256, 1024, 1024);
	bench_gemm(100, 2048, 2048);
	bench_conv(32, 14, 64, 64);
	bench_conv(32, 28, 64, 64);
	bench_backward(100, 2048, 2048);
	return 0;
}
