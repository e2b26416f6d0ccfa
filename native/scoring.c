/*
 * Scoring kernels: matrix products on sub-matrices of JavaScript Float32Arrays (a block of
 * queries against a chunk of training gradients, written straight into its columns of the
 * score matrix) and the widening of BF16/F16 gradient data to float32.
 *
 * Exports (registered in tda_native.c):
 *   sgemmStrided(transA, transB, m, n, k, alpha, A, aOffset, lda, B, bOffset, ldb, beta, C, cOffset, ldc[, threads])
 *     C = alpha * op(A) @ op(B) + beta * C, row-major with leading dimensions (elements per
 *     row) lda, ldb, ldc, each matrix starting at an element offset of its Float32Array.
 *     Every matrix is checked to lie inside its array. A large product is cut into parts
 *     (see sgemm_parts) that up to `threads` threads (default 1) take in turn, one BLAS
 *     thread each; the cut depends only on the shape, so results are the same bits with
 *     any number of threads.
 *   widenHalf(src, dtype, out)
 *     out[i] = value i of `src` (a Uint16Array of BF16 (dtype 1) or F16 (dtype 2) bit
 *     patterns, or a Float32Array with dtype 0) as float32; out at least as long as src.
 *   widenHalfInPlace(out, dtype)
 *     The second half of out's bytes holds out.length BF16 (dtype 1) or F16 (dtype 2) values
 *     (as read from a file); they become out's float32 values, with no second buffer.
 *   readStart(fd, positions, targets) -> id
 *     Starts reading, for each i, targets[i].byteLength bytes of the open file `fd` from byte
 *     positions[i] (a Float64Array) into the typed array targets[i], in order on one thread
 *     of its own, and returns at once: products on the previous chunk run while the next one
 *     is read. The arrays are kept alive until readFinish; JavaScript must neither read them
 *     nor transfer their buffers before then.
 *   readFinish(id) -> bytes read
 *     Waits for that read and gives the bytes read over all targets; fewer than asked means
 *     the file ended. A failed read throws with the system's message.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "half.h"
#include "napi_args.h"
#include "scoring.h"

/*
 * Whether a row-major matrix of `rows` x `cols` with `ld` elements per row, starting at
 * element `offset`, lies inside an array of `length` elements (ld >= cols; any size when
 * the matrix is empty).
 */
int tda_strided_in_bounds(uint64_t offset, uint64_t rows, uint64_t cols, uint64_t ld, uint64_t length) {
  if (ld < cols) return 0;
  if (rows == 0 || cols == 0) return offset <= length;
  /* Each factor is below 2^31: no product overflows 64 bits. */
  uint64_t last = offset + (rows - 1) * ld + cols;
  return last <= length;
}

/*
 * Large products are cut into TDA_PARTS independent sgemm calls that any number of threads
 * take in turn from a shared counter, so a thread the system deschedules delays the product
 * by at most one part. The cut depends only on the shape, never on the number of threads,
 * so results are the same bits with 1 thread or 64:
 *   - op(B) transposed (scores: C = V G^T): the inner dimension k is cut into slabs, each
 *     part writes its own partial C, and the partials are added to C in slab order;
 *   - otherwise (DataInf's update: C = coef G): the columns of C are cut; parts are disjoint.
 */
#define TDA_PARTS 8
#define TDA_SPLIT_MIN_MACS 32000000.0
#define TDA_MAX_THREADS 64

struct gemm_job {
  int trans_a, trans_b, m, n, k, lda, ldb, ldc, parts, by_k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  float *partial; /* by_k: parts x m x n partial products */
  int next;       /* the next part to take */
  pthread_mutex_t lock;
};

static void gemm_job_part(struct gemm_job *j, int p) {
  if (j->by_k) {
    int k0 = (int)((int64_t)j->k * p / j->parts), k1 = (int)((int64_t)j->k * (p + 1) / j->parts);
    const float *a = j->trans_a ? j->a + (int64_t)k0 * j->lda : j->a + k0;
    const float *b = j->b + k0; /* op(B) transposed: B is n x k */
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, CblasTrans, j->m, j->n, k1 - k0, 1.0f, a, j->lda, b, j->ldb, 0.0f,
                j->partial + (int64_t)p * j->m * j->n, j->n);
  } else {
    int n0 = (int)((int64_t)j->n * p / j->parts), n1 = (int)((int64_t)j->n * (p + 1) / j->parts);
    const float *b = j->trans_b ? j->b + (int64_t)n0 * j->ldb : j->b + n0;
    cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans, j->m, n1 - n0, j->k, j->alpha, j->a, j->lda, b,
                j->ldb, j->beta, j->c + n0, j->ldc);
  }
}

static void *gemm_job_worker(void *arg) {
  struct gemm_job *j = (struct gemm_job *)arg;
  for (;;) {
    pthread_mutex_lock(&j->lock);
    int p = j->next < j->parts ? j->next++ : -1;
    pthread_mutex_unlock(&j->lock);
    if (p < 0) return NULL;
    gemm_job_part(j, p);
  }
}

/* C = alpha op(A) op(B) + beta C; a large product in parts over up to `threads` threads (see above). 0, or -1 when out of memory. */
static int sgemm_parts(int threads, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc) {
  struct gemm_job j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, 1, 0, alpha, beta, a, b, c, NULL, 0, PTHREAD_MUTEX_INITIALIZER};
  const int large = (double)m * n * k >= TDA_SPLIT_MIN_MACS;
  if (large && trans_b && k >= TDA_PARTS * 512 && (double)m * n <= 1048576.0) { /* partials of at most 4 MB each */
    j.by_k = 1;
    j.parts = TDA_PARTS;
    j.partial = malloc(sizeof(float) * (size_t)TDA_PARTS * (size_t)m * (size_t)n);
    if (!j.partial) return -1;
  } else if (large && !trans_b && n >= TDA_PARTS * 512) {
    j.parts = TDA_PARTS;
  }
  if (j.parts == 1) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 0;
  }
  if (threads > j.parts) threads = j.parts;
  pthread_t helpers[TDA_MAX_THREADS];
  int started = 0;
  for (int t = 1; t < threads; t++) {
    if (pthread_create(&helpers[started], NULL, gemm_job_worker, &j) != 0) break;
    started++;
  }
  gemm_job_worker(&j);
  for (int t = 0; t < started; t++) pthread_join(helpers[t], NULL);
  if (j.by_k) {
    /* C = beta C + alpha (sum of the partials, in slab order). */
    for (int i = 0; i < m; i++) {
      float *row = c + (int64_t)i * ldc;
      for (int q = 0; q < n; q++) {
        float s = j.partial[(int64_t)i * n + q];
        for (int p = 1; p < j.parts; p++) s += j.partial[(int64_t)p * m * n + (int64_t)i * n + q];
        row[q] = (beta == 0 ? 0.0f : beta * row[q]) + alpha * s;
      }
    }
    free(j.partial);
  }
  pthread_mutex_destroy(&j.lock);
  return 0;
}

static napi_value sgemm_strided(napi_env env, napi_callback_info info) {
  size_t argc = 17;
  napi_value argv[17];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 16 && argc != 17) return throw_range(env, "sgemmStrided: expects 16 arguments, or 17 with the number of threads");
  int64_t threads = 1;
  if (argc == 17) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[16], &t));
    if (t != napi_undefined) threads = whole(env, argv[16], TDA_MAX_THREADS);
    if (threads < 1) return throw_range(env, "sgemmStrided: threads must be a whole number in [1, 64]");
  }
  bool trans_a, trans_b;
  if (napi_get_value_bool(env, argv[0], &trans_a) != napi_ok || napi_get_value_bool(env, argv[1], &trans_b) != napi_ok) {
    return throw_range(env, "sgemmStrided: transA and transB must be booleans");
  }
  const double lim = 2147483647.0; /* BLAS sizes are C ints */
  int64_t m = whole(env, argv[2], lim), n = whole(env, argv[3], lim), k = whole(env, argv[4], lim);
  if (m < 0 || n < 0 || k < 0) return throw_range(env, "sgemmStrided: m, n and k must be whole numbers in [0, 2^31)");
  double alpha, beta;
  if (napi_get_value_double(env, argv[5], &alpha) != napi_ok || napi_get_value_double(env, argv[12], &beta) != napi_ok) {
    return throw_range(env, "sgemmStrided: alpha and beta must be numbers");
  }
  size_t la, lb, lc;
  const float *a = typed_array(env, argv[6], napi_float32_array, &la);
  const float *b = typed_array(env, argv[9], napi_float32_array, &lb);
  float *c = typed_array(env, argv[13], napi_float32_array, &lc);
  if (!a || !b || !c) return throw_range(env, "sgemmStrided: A, B and C must be Float32Arrays");
  /* Offsets up to 2^53 (any array length); leading dimensions are C ints. */
  const double off_lim = 9007199254740991.0;
  int64_t ao = whole(env, argv[7], off_lim), bo = whole(env, argv[10], off_lim), co = whole(env, argv[14], off_lim);
  int64_t lda = whole(env, argv[8], lim), ldb = whole(env, argv[11], lim), ldc = whole(env, argv[15], lim);
  if (ao < 0 || bo < 0 || co < 0) return throw_range(env, "sgemmStrided: offsets must be whole numbers >= 0");
  if (lda < 1 || ldb < 1 || ldc < 1) return throw_range(env, "sgemmStrided: leading dimensions must be whole numbers in [1, 2^31)");
  /* Stored shapes: op(A) is m x k, so A is k x m when transposed; likewise B. */
  const uint64_t a_rows = trans_a ? (uint64_t)k : (uint64_t)m, a_cols = trans_a ? (uint64_t)m : (uint64_t)k;
  const uint64_t b_rows = trans_b ? (uint64_t)n : (uint64_t)k, b_cols = trans_b ? (uint64_t)k : (uint64_t)n;
  if (!tda_strided_in_bounds((uint64_t)ao, a_rows, a_cols, (uint64_t)lda, la)) return throw_range(env, "sgemmStrided: A lies outside its array (or lda is below its row length)");
  if (!tda_strided_in_bounds((uint64_t)bo, b_rows, b_cols, (uint64_t)ldb, lb)) return throw_range(env, "sgemmStrided: B lies outside its array (or ldb is below its row length)");
  if (!tda_strided_in_bounds((uint64_t)co, (uint64_t)m, (uint64_t)n, (uint64_t)ldc, lc)) return throw_range(env, "sgemmStrided: C lies outside its array (or ldc is below its row length)");
  if (m == 0 || n == 0) return NULL;
  float *cc = c + co;
  if (k == 0) {
    /* Nothing to sum: C = beta * C (OpenBLAS's handling of k = 0 varies by version). */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) cc[i * ldc + j] = beta == 0 ? 0.0f : (float)(beta * cc[i * ldc + j]);
    return NULL;
  }
  if (sgemm_parts((int)threads, trans_a, trans_b, (int)m, (int)n, (int)k, (float)alpha, a + ao, (int)lda, b + bo, (int)ldb, (float)beta, cc, (int)ldc) != 0) {
    napi_throw_error(env, NULL, "sgemmStrided: out of memory");
  }
  return NULL;
}

static napi_value widen_half(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) return throw_range(env, "widenHalf: expects 3 arguments");
  int64_t dtype = whole(env, argv[1], 2);
  if (dtype < 0) return throw_range(env, "widenHalf: dtype must be 0 (F32), 1 (BF16) or 2 (F16)");
  size_t ls, lo;
  const void *src = typed_array(env, argv[0], dtype == TDA_F32 ? napi_float32_array : napi_uint16_array, &ls);
  float *out = typed_array(env, argv[2], napi_float32_array, &lo);
  if (!src) return throw_range(env, dtype == TDA_F32 ? "widenHalf: src must be a Float32Array for dtype 0" : "widenHalf: src must be a Uint16Array for BF16 and F16");
  if (!out) return throw_range(env, "widenHalf: out must be a Float32Array");
  if (lo < ls) return throw_range(env, "widenHalf: out is shorter than src");
  tda_widen_fast(src, (int)dtype, ls, out);
  return NULL;
}

/* BF16 and F16 to float32: the common cases in straight loops the compiler vectorizes. */
void tda_widen_fast(const void *src, int dtype, size_t count, float *out) {
  if (dtype == TDA_BF16) {
    const uint16_t *h = (const uint16_t *)src;
    uint32_t *o = (uint32_t *)(void *)out;
    for (size_t i = 0; i < count; i++) o[i] = (uint32_t)h[i] << 16;
  } else if (dtype == TDA_F16) {
    const uint16_t *h = (const uint16_t *)src;
    for (size_t i = 0; i < count; i++) {
      uint16_t x = h[i];
      uint32_t e = (x >> 10) & 0x1f;
      if (e != 0 && e != 0x1f) { /* normal numbers: rebias the exponent */
        uint32_t bits = ((uint32_t)(x & 0x8000) << 16) | ((e + 112) << 23) | ((uint32_t)(x & 0x3ff) << 13);
        memcpy(&out[i], &bits, 4);
      } else {
        out[i] = tda_f16_to_f32(x);
      }
    }
  } else {
    tda_widen(src, dtype, count, out);
  }
}

/* Reads in flight: a few per process (a scorer has one ahead of the chunk it multiplies). */
#define TDA_MAX_READS 16
#define TDA_MAX_SEGMENTS 4096
struct tda_segment {
  uint64_t position;
  char *dst;
  size_t length;
};
struct tda_read {
  int used;
  pthread_t thread;
  int fd;
  struct tda_segment *segments;
  size_t count;
  size_t done; /* bytes read, over all segments */
  int short_read; /* some segment ended at the end of the file */
  int threaded;   /* a thread to join */
  int error;
  napi_ref *targets;
  napi_env env; /* the thread (JavaScript environment) that started it */
};
/* Shared by every worker thread of the process that loads the addon: slots under a lock. */
static struct tda_read reads[TDA_MAX_READS];
static pthread_mutex_t reads_lock = PTHREAD_MUTEX_INITIALIZER;

static void *read_thread(void *arg) {
  struct tda_read *r = (struct tda_read *)arg;
  for (size_t s = 0; s < r->count && !r->error; s++) {
    struct tda_segment *g = &r->segments[s];
    size_t got_here = 0;
    while (got_here < g->length) {
      ssize_t got = pread(r->fd, g->dst + got_here, g->length - got_here, (off_t)(g->position + got_here));
      if (got < 0) {
        if (errno == EINTR) continue;
        r->error = errno;
        break;
      }
      if (got == 0) {
        r->short_read = 1; /* end of file */
        break;
      }
      got_here += (size_t)got;
      r->done += (size_t)got;
    }
  }
  return NULL;
}

static size_t element_bytes(napi_typedarray_type type) {
  switch (type) {
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    case napi_float32_array:
    case napi_int32_array:
    case napi_uint32_array:
      return 4;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    default:
      return 1;
  }
}

static void release_read(napi_env env, struct tda_read *r) {
  for (size_t s = 0; s < r->count; s++)
    if (r->targets[s]) napi_delete_reference(env, r->targets[s]);
  free(r->targets);
  free(r->segments);
  r->targets = NULL;
  r->segments = NULL;
  pthread_mutex_lock(&reads_lock);
  r->used = 0;
  pthread_mutex_unlock(&reads_lock);
}

static napi_value read_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3) return throw_range(env, "readStart: expects 3 arguments");
  int64_t fd = whole(env, argv[0], 2147483647.0);
  if (fd < 0) return throw_range(env, "readStart: fd must be an open file descriptor");
  size_t n_pos;
  const double *positions = typed_array(env, argv[1], napi_float64_array, &n_pos);
  if (!positions) return throw_range(env, "readStart: positions must be a Float64Array");
  bool is_array = false;
  CHECK(napi_is_array(env, argv[2], &is_array));
  if (!is_array) return throw_range(env, "readStart: targets must be an array of typed arrays");
  uint32_t n_targets;
  CHECK(napi_get_array_length(env, argv[2], &n_targets));
  if (n_targets != n_pos) return throw_range(env, "readStart: one position per target");
  if (n_pos > TDA_MAX_SEGMENTS) return throw_range(env, "readStart: too many targets in one read");
  for (size_t s = 0; s < n_pos; s++) {
    double p = positions[s];
    if (!isfinite(p) || p < 0 || p > 9007199254740991.0 || floor(p) != p) return throw_range(env, "readStart: positions must be whole numbers >= 0");
  }
  struct tda_segment *segments = calloc(n_pos ? n_pos : 1, sizeof *segments);
  napi_ref *targets = calloc(n_pos ? n_pos : 1, sizeof *targets);
  if (!segments || !targets) {
    free(segments);
    free(targets);
    napi_throw_error(env, NULL, "readStart: out of memory");
    return NULL;
  }
  const char *bad = NULL;
  for (uint32_t s = 0; s < n_pos && !bad; s++) {
    napi_value t;
    bool is_typed = false;
    if (napi_get_element(env, argv[2], s, &t) != napi_ok || napi_is_typedarray(env, t, &is_typed) != napi_ok || !is_typed) {
      bad = "readStart: every target must be a typed array";
      break;
    }
    napi_typedarray_type type;
    size_t length;
    void *data;
    if (napi_get_typedarray_info(env, t, &type, &length, &data, NULL, NULL) != napi_ok) {
      bad = "readStart: a target could not be read";
      break;
    }
    segments[s].position = (uint64_t)positions[s];
    segments[s].dst = (char *)data;
    segments[s].length = length * element_bytes(type);
    if (napi_create_reference(env, t, 1, &targets[s]) != napi_ok) bad = "readStart: a target could not be kept";
  }
  if (bad) {
    for (size_t s = 0; s < n_pos; s++)
      if (targets[s]) napi_delete_reference(env, targets[s]);
    free(segments);
    free(targets);
    return throw_range(env, bad);
  }
  int slot = -1;
  pthread_mutex_lock(&reads_lock);
  for (int i = 0; i < TDA_MAX_READS; i++) {
    if (!reads[i].used) {
      slot = i;
      reads[i].used = 1;
      break;
    }
  }
  pthread_mutex_unlock(&reads_lock);
  if (slot < 0) {
    for (size_t s = 0; s < n_pos; s++) napi_delete_reference(env, targets[s]);
    free(segments);
    free(targets);
    return throw_range(env, "readStart: too many reads in flight (finish some first)");
  }
  struct tda_read *r = &reads[slot];
  r->fd = (int)fd;
  r->segments = segments;
  r->count = n_pos;
  r->done = 0;
  r->short_read = 0;
  r->error = 0;
  r->targets = targets;
  r->env = env;
  r->threaded = pthread_create(&r->thread, NULL, read_thread, r) == 0;
  if (!r->threaded) read_thread(r); /* no thread to be had: read now */
  napi_value id;
  CHECK(napi_create_int32(env, slot, &id));
  return id;
}

static napi_value read_finish(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t id = argc == 1 ? whole(env, argv[0], TDA_MAX_READS - 1) : -1;
  if (id < 0 || !reads[id].used || reads[id].env != env) return throw_range(env, "readFinish: not a read in flight (of this thread)");
  struct tda_read *r = &reads[id];
  if (r->threaded) pthread_join(r->thread, NULL);
  r->threaded = 0;
  int error = r->error;
  double done = (double)r->done;
  release_read(env, r);
  if (error) {
    char msg[160];
    snprintf(msg, sizeof msg, "readFinish: read failed: %s", strerror(error));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_double(env, done, &out));
  return out;
}

static napi_value widen_half_in_place(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return throw_range(env, "widenHalfInPlace: expects 2 arguments");
  int64_t dtype = whole(env, argv[1], 2);
  if (dtype != TDA_BF16 && dtype != TDA_F16) return throw_range(env, "widenHalfInPlace: dtype must be 1 (BF16) or 2 (F16)");
  size_t n;
  float *out = typed_array(env, argv[0], napi_float32_array, &n);
  if (!out) return throw_range(env, "widenHalfInPlace: out must be a Float32Array");
  /*
   * Forward, one value at a time: value i is read (from byte 2n + 2i) before out[i] (bytes
   * 4i .. 4i + 4) is written, and those bytes only hold values j < i, already read.
   */
  const unsigned char *src = (const unsigned char *)out + 2 * n;
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, src + 2 * i, 2);
    float f = dtype == TDA_BF16 ? tda_bf16_to_f32(h) : tda_f16_to_f32(h);
    memcpy((unsigned char *)out + 4 * i, &f, 4);
  }
  return NULL;
}

void tda_scoring_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"widenHalfInPlace", NULL, widen_half_in_place, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readStart", NULL, read_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFinish", NULL, read_finish, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmStrided", NULL, sgemm_strided, NULL, NULL, NULL, napi_enumerable, NULL},
      {"widenHalf", NULL, widen_half, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
