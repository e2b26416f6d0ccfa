/*
 * Fused elementwise kernels for the decoder layers: each reads its inputs once and writes
 * its outputs once, where the same work as separate tfjs kernels makes several passes over
 * memory (and the wasm sigmoid and exp run ~30 ns per value). Row sums are accumulated in
 * double. exp is a branch-free Cephes-style polynomial (about 1 ulp in float32) so that the
 * loops vectorise; the hot loops are compiled for AVX2 and for the baseline, chosen at load.
 *
 * Op codes, operands (float32 unless said) and dims:
 *   0 swiGlu          g, u -> out                     [n]            out = silu(g) u
 *   1 swiGlu gradient g, u, dy -> dg, du              [n]
 *   2 rmsNorm         x, w -> y, r                    [rows, cols]   r = 1/sqrt(mean(x^2) + eps), y = x r w; scalar = eps
 *   3 rmsNorm grad.   x, r, w, dy -> dx               [rows, cols]   dx = r (g - x r^2 mean(g x)), g = dy w
 *   4 rotary          x, cos, sin -> out              [B, T, heads, d]   x cos + rotate_half(x) sin (scalar 1),
 *                                                                         or its transpose (scalar -1: the gradient)
 *   5 softmax grad.   p, dp -> ds                     [rows, cols]   ds = p (dp - sum(dp p))
 *   6 cross-entropy   logits, labels (int32) -> loss, probs   [rows, V]   probs = softmax, loss = -log probs[label]
 */
#include "native_elementwise.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

/* exp(x) for float32 without branches: 2^n e^f with |f| <= ln2/2, clamped to the float range. */
static inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float t = x * 1.44269504088896341f + magic;
  float n = t - magic;
  float f = x - n * 0.693359375f;
  f = f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  float y = p * f * f + f + 1.0f;
  int32_t bits;
  memcpy(&bits, &t, 4);
  bits = (bits - 0x4B400000 + 127) << 23; /* 2^n */
  float scale;
  memcpy(&scale, &bits, 4);
  return y * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

HOT static void swiglu(const float *g, const float *u, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = g[i] * sigmoid(g[i]) * u[i];
}

HOT static void swiglu_grad(const float *g, const float *u, const float *dy, float *dg, float *du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float s = sigmoid(g[i]);
    float silu = g[i] * s;
    du[i] = dy[i] * silu;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] - silu);
  }
}

HOT static void rmsnorm(const float *x, const float *w, float *y, float *r, int64_t rows, int64_t cols, float eps) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = x + i * cols;
    double ss = 0;
    for (int64_t j = 0; j < cols; j++) ss += (double)xi[j] * xi[j];
    float ri = (float)(1.0 / sqrt(ss / (double)cols + (double)eps));
    r[i] = ri;
    float *yi = y + i * cols;
    for (int64_t j = 0; j < cols; j++) yi[j] = xi[j] * ri * w[j];
  }
}

HOT static void rmsnorm_grad(const float *x, const float *r, const float *w, const float *dy, float *dx, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = x + i * cols, *dyi = dy + i * cols;
    double dot = 0;
    for (int64_t j = 0; j < cols; j++) dot += (double)dyi[j] * w[j] * xi[j];
    float ri = r[i];
    float c = (float)(dot / (double)cols) * ri * ri;
    float *dxi = dx + i * cols;
    for (int64_t j = 0; j < cols; j++) dxi[j] = (dyi[j] * w[j] - xi[j] * c) * ri;
  }
}

/*
 * Forward: out[j] = x[j] cos[j] + rot(x)[j] sin[j], rot(x) = (-x[h..d), x[0..h)), h = d/2.
 * Gradient (the transpose): out[j] = x[j] cos[j] + x[j+h] sin[j+h] (j < h), x[j] cos[j] - x[j-h] sin[j-h] (j >= h).
 */
HOT static void rotary(const float *x, const float *cs, const float *sn, float *out, int64_t B, int64_t T, int64_t heads, int64_t d, float direction) {
  const int64_t h = d / 2;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t t = 0; t < T; t++) {
      const float *c = cs + t * d, *s = sn + t * d;
      for (int64_t k = 0; k < heads; k++) {
        const int64_t o = ((b * T + t) * heads + k) * d;
        const float *xi = x + o;
        float *yi = out + o;
        if (direction > 0) {
          for (int64_t j = 0; j < h; j++) yi[j] = xi[j] * c[j] - xi[j + h] * s[j];
          for (int64_t j = h; j < d; j++) yi[j] = xi[j] * c[j] + xi[j - h] * s[j];
        } else {
          for (int64_t j = 0; j < h; j++) yi[j] = xi[j] * c[j] + xi[j + h] * s[j + h];
          for (int64_t j = h; j < d; j++) yi[j] = xi[j] * c[j] - xi[j - h] * s[j - h];
        }
      }
    }
  }
}

HOT static void softmax_grad(const float *p, const float *dp, float *ds, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *pi = p + i * cols, *dpi = dp + i * cols;
    double dot = 0;
    for (int64_t j = 0; j < cols; j++) dot += (double)dpi[j] * pi[j];
    float fd = (float)dot;
    float *dsi = ds + i * cols;
    for (int64_t j = 0; j < cols; j++) dsi[j] = pi[j] * (dpi[j] - fd);
  }
}

HOT static void cross_entropy(const float *logits, const int32_t *labels, float *loss, float *probs, int64_t rows, int64_t V) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xi = logits + i * V;
    float *pi = probs + i * V;
    float mx = xi[0];
    for (int64_t j = 1; j < V; j++) mx = xi[j] > mx ? xi[j] : mx;
    for (int64_t j = 0; j < V; j++) pi[j] = exp_approx(xi[j] - mx);
    double sum = 0;
    for (int64_t j = 0; j < V; j++) sum += pi[j];
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < V; j++) pi[j] *= inv;
    loss[i] = (float)(log(sum) + (double)mx - (double)xi[labels[i]]);
  }
}

/* Four double accumulators, so that the loop keeps the FP units busy without reassociating floats. */
HOT void tda_row_squared_norms(const float *a, int64_t rows, int64_t cols, double *out) {
  for (int64_t i = 0; i < rows; i++) {
    const float *r = a + i * cols;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t j = 0;
    for (; j + 4 <= cols; j += 4) {
      s0 += (double)r[j] * r[j];
      s1 += (double)r[j + 1] * r[j + 1];
      s2 += (double)r[j + 2] * r[j + 2];
      s3 += (double)r[j + 3] * r[j + 3];
    }
    for (; j < cols; j++) s0 += (double)r[j] * r[j];
    out[i] = (s0 + s1) + (s2 + s3);
  }
}

const char *tda_ew_operand_bytes(int op, const int64_t *dims, size_t n_dims, size_t n_operands, uint64_t *bytes) {
  static const size_t operands[] = {3, 5, 4, 5, 4, 3, 4};
  static const size_t ndims[] = {1, 1, 2, 2, 4, 2, 2};
  if (op < 0 || op > 6) return "elementwise: unknown op code";
  if (n_operands != operands[op]) return "elementwise: wrong number of operands for this op";
  if (n_dims != ndims[op]) return "elementwise: wrong number of dims for this op";
  const uint64_t f = 4;
  switch (op) {
    case 0:
    case 1:
      for (size_t i = 0; i < n_operands; i++) bytes[i] = f * (uint64_t)dims[0];
      return NULL;
    case 2: { /* x, w, y, r */
      uint64_t all = f * (uint64_t)dims[0] * (uint64_t)dims[1];
      bytes[0] = all, bytes[1] = f * (uint64_t)dims[1], bytes[2] = all, bytes[3] = f * (uint64_t)dims[0];
      return NULL;
    }
    case 3: { /* x, r, w, dy, dx */
      uint64_t all = f * (uint64_t)dims[0] * (uint64_t)dims[1];
      bytes[0] = all, bytes[1] = f * (uint64_t)dims[0], bytes[2] = f * (uint64_t)dims[1], bytes[3] = all, bytes[4] = all;
      return NULL;
    }
    case 4: { /* x, cos, sin, out */
      if (dims[3] % 2 != 0) return "elementwise: rotary needs an even head dimension";
      uint64_t all = f * (uint64_t)dims[0] * (uint64_t)dims[1] * (uint64_t)dims[2] * (uint64_t)dims[3];
      uint64_t table = f * (uint64_t)dims[1] * (uint64_t)dims[3];
      bytes[0] = all, bytes[1] = table, bytes[2] = table, bytes[3] = all;
      return NULL;
    }
    case 5: {
      uint64_t all = f * (uint64_t)dims[0] * (uint64_t)dims[1];
      bytes[0] = bytes[1] = bytes[2] = all;
      return NULL;
    }
    case 6: { /* logits, labels, loss, probs */
      if (dims[1] == 0 && dims[0] > 0) return "elementwise: cross-entropy needs a vocabulary";
      uint64_t all = f * (uint64_t)dims[0] * (uint64_t)dims[1];
      bytes[0] = all, bytes[1] = 4 * (uint64_t)dims[0], bytes[2] = f * (uint64_t)dims[0], bytes[3] = all;
      return NULL;
    }
  }
  return "elementwise: unknown op code";
}

static const char *run_op(int op, char **o, const int64_t *dims, float scalar);

/*
 * With subnormal numbers flushed to zero for the duration of the call (and the caller's
 * setting restored): the sigmoid loops otherwise run ~10x slower here on microcode assists.
 */
const char *tda_ew_run(int op, char **o, const int64_t *dims, float scalar) {
#if defined(__x86_64__)
  const unsigned int csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
  const char *err = run_op(op, o, dims, scalar);
  _mm_setcsr(csr);
  return err;
#else
  return run_op(op, o, dims, scalar);
#endif
}

static const char *run_op(int op, char **o, const int64_t *dims, float scalar) {
  switch (op) {
    case 0:
      swiglu((const float *)o[0], (const float *)o[1], (float *)o[2], dims[0]);
      return NULL;
    case 1:
      swiglu_grad((const float *)o[0], (const float *)o[1], (const float *)o[2], (float *)o[3], (float *)o[4], dims[0]);
      return NULL;
    case 2:
      rmsnorm((const float *)o[0], (const float *)o[1], (float *)o[2], (float *)o[3], dims[0], dims[1], scalar);
      return NULL;
    case 3:
      rmsnorm_grad((const float *)o[0], (const float *)o[1], (const float *)o[2], (const float *)o[3], (float *)o[4], dims[0], dims[1]);
      return NULL;
    case 4:
      if (scalar != 1.0f && scalar != -1.0f) return "elementwise: rotary direction must be 1 or -1";
      rotary((const float *)o[0], (const float *)o[1], (const float *)o[2], (float *)o[3], dims[0], dims[1], dims[2], dims[3], scalar);
      return NULL;
    case 5:
      softmax_grad((const float *)o[0], (const float *)o[1], (float *)o[2], dims[0], dims[1]);
      return NULL;
    case 6: {
      const int32_t *labels = (const int32_t *)o[1];
      for (int64_t i = 0; i < dims[0]; i++) {
        if (labels[i] < 0 || labels[i] >= dims[1]) return "elementwise: a cross-entropy label is outside the vocabulary";
      }
      cross_entropy((const float *)o[0], labels, (float *)o[2], (float *)o[3], dims[0], dims[1]);
      return NULL;
    }
  }
  return "elementwise: unknown op code";
}
