/*
 * tda_native: OpenBLAS matrix products on memory owned by JavaScript (in practice the
 * heap of tfjs-backend-wasm), as a Node-API addon.
 *
 * Every call names an ArrayBuffer and byte offsets into it; the pointer is taken from the
 * buffer during the call and never kept, because the wasm heap is replaced by a larger
 * buffer when it grows. Every matrix a call touches is checked to lie inside the buffer.
 *
 * Exports:
 *   sgemmBatch(memory, transA, transB, m, n, k, alpha, beta, aOffsets, bOffsets, cOffsets)
 *     For each i: C_i = alpha * op(A_i) @ op(B_i) + beta * C_i, row-major and packed
 *     (op(A) is m x k, op(B) k x n, C m x n), the matrices at the byte offsets
 *     aOffsets[i], bOffsets[i], cOffsets[i] (Float64Arrays of equal length) of `memory`.
 *   sgemmArrays(transA, transB, m, n, k, alpha, A, B, beta, C)
 *     C = alpha * op(A) @ op(B) + beta * C on three Float32Arrays (packed row-major), for
 *     products on JavaScript memory (gradient shards) without copying it into the wasm heap.
 *   rowSquaredNorms(A, rows, cols, out)
 *     out[i] = sum_j A[i, j]^2 in double, A a Float32Array, out a Float64Array.
 *   elementwise(op, memory, offsets, dims, scalar)
 *     The fused elementwise kernels of native_elementwise.c (op codes and operand lists
 *     there), on float32 arrays at the byte offsets of `memory` (a Float64Array), with the
 *     sizes in `dims` (a Float64Array); every operand is checked against the memory.
 *   mapFile, unmapFile, externalLinear, externalRows
 *     Frozen weights read in place from memory-mapped safetensors files (external_weights.c).
 *   choleskyFactor, choleskySolve
 *     Float64 Cholesky factorization and solves through LAPACK (cholesky.c).
 *   info() -> { config, corename, threads, library }
 *   setThreads(n)
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "external_weights.h"
#include "napi_args.h"
#include "native_elementwise.h"
#include "scoring.h"
#include "cholesky.h"


/* Each offset a whole multiple of 4 with `bytes` bytes from it inside a buffer of `size` bytes. */
static int offsets_in_bounds(const double *offsets, size_t count, uint64_t bytes, uint64_t size) {
  for (size_t i = 0; i < count; i++) {
    double o = offsets[i];
    if (!isfinite(o) || o < 0 || floor(o) != o || o > (double)size) return 0;
    uint64_t off = (uint64_t)o;
    if (off % 4 != 0 || bytes > size - off) return 0;
  }
  return 1;
}

static napi_value sgemm_batch(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 11) return throw_range(env, "sgemmBatch: expects 11 arguments");

  bool is_ab = false;
  CHECK(napi_is_arraybuffer(env, argv[0], &is_ab));
  if (!is_ab) return throw_range(env, "sgemmBatch: memory must be an ArrayBuffer");
  void *base;
  size_t size;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &base, &size));

  bool trans_a, trans_b;
  if (napi_get_value_bool(env, argv[1], &trans_a) != napi_ok || napi_get_value_bool(env, argv[2], &trans_b) != napi_ok) {
    return throw_range(env, "sgemmBatch: transA and transB must be booleans");
  }
  const double dim_limit = 2147483647.0; /* BLAS dimensions are C ints */
  int64_t m = whole(env, argv[3], dim_limit), n = whole(env, argv[4], dim_limit), k = whole(env, argv[5], dim_limit);
  if (m < 0 || n < 0 || k < 0) return throw_range(env, "sgemmBatch: m, n and k must be whole numbers in [0, 2^31)");
  double alpha, beta;
  if (napi_get_value_double(env, argv[6], &alpha) != napi_ok || napi_get_value_double(env, argv[7], &beta) != napi_ok) {
    return throw_range(env, "sgemmBatch: alpha and beta must be numbers");
  }

  size_t na, nb, nc;
  const double *ao = typed_array(env, argv[8], napi_float64_array, &na);
  const double *bo = typed_array(env, argv[9], napi_float64_array, &nb);
  const double *co = typed_array(env, argv[10], napi_float64_array, &nc);
  if (!ao || !bo || !co) return throw_range(env, "sgemmBatch: offsets must be Float64Arrays");
  if (na != nb || na != nc) return throw_range(env, "sgemmBatch: the three offset arrays must have the same length");

  /* Sizes in 64 bits: each factor is below 2^31, so a product of two cannot overflow. */
  const uint64_t a_bytes = 4 * (uint64_t)m * (uint64_t)k;
  const uint64_t b_bytes = 4 * (uint64_t)k * (uint64_t)n;
  const uint64_t c_bytes = 4 * (uint64_t)m * (uint64_t)n;
  if (!offsets_in_bounds(ao, na, a_bytes, size)) return throw_range(env, "sgemmBatch: an A matrix lies outside the memory (or is misaligned)");
  if (!offsets_in_bounds(bo, nb, b_bytes, size)) return throw_range(env, "sgemmBatch: a B matrix lies outside the memory (or is misaligned)");
  if (!offsets_in_bounds(co, nc, c_bytes, size)) return throw_range(env, "sgemmBatch: a C matrix lies outside the memory (or is misaligned)");
  if (m == 0 || n == 0) return NULL;

  char *mem = (char *)base;
  const int lda = (int)(trans_a ? (m > 0 ? m : 1) : (k > 0 ? k : 1));
  const int ldb = (int)(trans_b ? (k > 0 ? k : 1) : (n > 0 ? n : 1));
  for (size_t i = 0; i < na; i++) {
    float *c = (float *)(mem + (uint64_t)co[i]);
    if (k == 0) {
      /* Nothing to sum: C = beta * C (OpenBLAS's handling of k = 0 varies by version). */
      for (uint64_t j = 0; j < (uint64_t)m * (uint64_t)n; j++) c[j] = beta == 0 ? 0.0f : (float)(beta * c[j]);
      continue;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                (float)alpha, (const float *)(mem + (uint64_t)ao[i]), lda, (const float *)(mem + (uint64_t)bo[i]), ldb, (float)beta, c,
                (int)n);
  }
  return NULL;
}


static napi_value sgemm_arrays(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 10) return throw_range(env, "sgemmArrays: expects 10 arguments");
  bool trans_a, trans_b;
  if (napi_get_value_bool(env, argv[0], &trans_a) != napi_ok || napi_get_value_bool(env, argv[1], &trans_b) != napi_ok) {
    return throw_range(env, "sgemmArrays: transA and transB must be booleans");
  }
  const double dim_limit = 2147483647.0;
  int64_t m = whole(env, argv[2], dim_limit), n = whole(env, argv[3], dim_limit), k = whole(env, argv[4], dim_limit);
  if (m < 0 || n < 0 || k < 0) return throw_range(env, "sgemmArrays: m, n and k must be whole numbers in [0, 2^31)");
  double alpha, beta;
  if (napi_get_value_double(env, argv[5], &alpha) != napi_ok || napi_get_value_double(env, argv[8], &beta) != napi_ok) {
    return throw_range(env, "sgemmArrays: alpha and beta must be numbers");
  }
  size_t la, lb, lc;
  const float *a = typed_array(env, argv[6], napi_float32_array, &la);
  const float *b = typed_array(env, argv[7], napi_float32_array, &lb);
  float *c = typed_array(env, argv[9], napi_float32_array, &lc);
  if (!a || !b || !c) return throw_range(env, "sgemmArrays: A, B and C must be Float32Arrays");
  if ((uint64_t)la < (uint64_t)m * (uint64_t)k || (uint64_t)lb < (uint64_t)k * (uint64_t)n || (uint64_t)lc < (uint64_t)m * (uint64_t)n) {
    return throw_range(env, "sgemmArrays: an array is shorter than its matrix");
  }
  if (m == 0 || n == 0) return NULL;
  if (k == 0) {
    for (uint64_t j = 0; j < (uint64_t)m * (uint64_t)n; j++) c[j] = beta == 0 ? 0.0f : (float)(beta * c[j]);
    return NULL;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, (float)alpha, a,
              (int)(trans_a ? m : k), b, (int)(trans_b ? k : n), (float)beta, c, (int)n);
  return NULL;
}

static napi_value row_squared_norms(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_range(env, "rowSquaredNorms: expects 4 arguments");
  size_t la, lo;
  const float *a = typed_array(env, argv[0], napi_float32_array, &la);
  int64_t rows = whole(env, argv[1], 2147483647.0), cols = whole(env, argv[2], 2147483647.0);
  double *out = (double *)typed_array(env, argv[3], napi_float64_array, &lo);
  if (!a || !out) return throw_range(env, "rowSquaredNorms: A must be a Float32Array and out a Float64Array");
  if (rows < 0 || cols < 0) return throw_range(env, "rowSquaredNorms: rows and cols must be whole numbers in [0, 2^31)");
  if ((uint64_t)la < (uint64_t)rows * (uint64_t)cols || (uint64_t)lo < (uint64_t)rows) return throw_range(env, "rowSquaredNorms: an array is shorter than its size");
  tda_row_squared_norms(a, rows, cols, out);
  return NULL;
}

static napi_value elementwise(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5) return throw_range(env, "elementwise: expects 5 arguments");
  int64_t op = whole(env, argv[0], 1000);
  bool is_ab = false;
  CHECK(napi_is_arraybuffer(env, argv[1], &is_ab));
  if (!is_ab) return throw_range(env, "elementwise: memory must be an ArrayBuffer");
  void *base;
  size_t size;
  CHECK(napi_get_arraybuffer_info(env, argv[1], &base, &size));
  size_t n_off, n_dims;
  const double *offsets = typed_array(env, argv[2], napi_float64_array, &n_off);
  const double *dims_in = typed_array(env, argv[3], napi_float64_array, &n_dims);
  if (!offsets || !dims_in) return throw_range(env, "elementwise: offsets and dims must be Float64Arrays");
  double scalar;
  if (napi_get_value_double(env, argv[4], &scalar) != napi_ok) return throw_range(env, "elementwise: scalar must be a number");
  int64_t dims[TDA_EW_MAX_DIMS];
  if (n_dims > TDA_EW_MAX_DIMS) return throw_range(env, "elementwise: too many dims");
  for (size_t i = 0; i < n_dims; i++) {
    double d = dims_in[i];
    if (!isfinite(d) || d < 0 || d > 2147483647.0 || floor(d) != d) return throw_range(env, "elementwise: dims must be whole numbers in [0, 2^31)");
    dims[i] = (int64_t)d;
  }
  /* The operand sizes this op reads and writes, each checked against the memory. */
  uint64_t bytes[TDA_EW_MAX_OPERANDS];
  const char *err = tda_ew_operand_bytes((int)op, dims, n_dims, n_off, bytes);
  if (err) return throw_range(env, err);
  for (size_t i = 0; i < n_off; i++) {
    if (!offsets_in_bounds(&offsets[i], 1, bytes[i], size)) return throw_range(env, "elementwise: an operand lies outside the memory (or is misaligned)");
  }
  char *ptrs[TDA_EW_MAX_OPERANDS];
  for (size_t i = 0; i < n_off; i++) ptrs[i] = (char *)base + (uint64_t)offsets[i];
  err = tda_ew_run((int)op, ptrs, dims, (float)scalar);
  if (err) return throw_range(env, err);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t n = argc == 1 ? whole(env, argv[0], 1024) : -1;
  if (n < 1) return throw_range(env, "setThreads: expects a whole number of threads in [1, 1024]");
  openblas_set_num_threads((int)n);
  return NULL;
}

static napi_value string_value(napi_env env, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

static napi_value blas_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, threads;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_set_named_property(env, out, "config", string_value(env, openblas_get_config())));
  CHECK(napi_set_named_property(env, out, "corename", string_value(env, openblas_get_corename())));
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &threads));
  CHECK(napi_set_named_property(env, out, "threads", threads));
  /* The shared library cblas_sgemm resolved to, for `tda-lab info`. */
  Dl_info where;
  const char *library = dladdr((void *)cblas_sgemm, &where) && where.dli_fname ? where.dli_fname : "";
  CHECK(napi_set_named_property(env, out, "library", string_value(env, library)));
  return out;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"sgemmBatch", NULL, sgemm_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmArrays", NULL, sgemm_arrays, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rowSquaredNorms", NULL, row_squared_norms, NULL, NULL, NULL, napi_enumerable, NULL},
      {"elementwise", NULL, elementwise, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, blas_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapFile", NULL, tda_map_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmapFile", NULL, tda_unmap_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"externalLinear", NULL, tda_external_linear, NULL, NULL, NULL, napi_enumerable, NULL},
      {"externalRows", NULL, tda_external_rows, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  tda_scoring_register(env, exports);
  tda_cholesky_register(env, exports);
  return exports;
}
