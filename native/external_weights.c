/*
 * Frozen weights read in place from memory-mapped safetensors files, outside the wasm heap.
 *
 * A model's linear weights stay in the checkpoint file, in their stored dtype (F32, BF16,
 * F16), mapped read-only once per process: every worker thread of the process maps the same
 * file to the same pages (the table below is process-wide), so a model is in memory once
 * however many threads use it, and two-byte weights stay two bytes. The products widen a
 * block of weight rows at a time to float32 in a scratch buffer and hand it to OpenBLAS.
 *
 * Exports (registered by tda_native.c):
 *   mapFile(path) -> id           maps a file (or takes another reference to its mapping)
 *   unmapFile(id)                 drops a reference; the last one unmaps
 *   externalLinear(memory, xOffset, outOffset, rows, id, wOffset, dtype, outFeatures, inFeatures, transpose)
 *     transpose false: out [rows, outF] = x [rows, inF] @ W^T (the forward pass)
 *     transpose true:  out [rows, inF]  = x [rows, outF] @ W  (the input's gradient)
 *     W [outF, inF] row-major at byte wOffset of mapping `id`; x and out at byte offsets of
 *     `memory` (the wasm heap's ArrayBuffer), all bounds-checked.
 *   externalRows(memory, idsOffset, count, outOffset, id, wOffset, dtype, tableRows, cols)
 *     out [count, cols] = rows ids[i] (int32 at idsOffset) of the table at wOffset.
 */
#define _GNU_SOURCE
#include "external_weights.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "napi_args.h"

#define MAX_MAPPINGS 1024
/* Weight values widened per block: 4 MB of float32, small next to a layer's product. */
#define BLOCK_VALUES (1 << 20)

struct mapping {
  int used;
  int refs;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  const unsigned char *data;
};

static struct mapping table[MAX_MAPPINGS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* Maps `path`, or takes a reference to the mapping of the same file (same inode, size and mtime). */
static int map_file(const char *path, char *err, size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, err_len, "cannot stat %s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  pthread_mutex_lock(&table_lock);
  int free_slot = -1;
  for (int i = 0; i < MAX_MAPPINGS; i++) {
    struct mapping *m = &table[i];
    if (!m->used) {
      if (free_slot < 0) free_slot = i;
      continue;
    }
    if (m->dev == st.st_dev && m->ino == st.st_ino && m->size == st.st_size && m->mtime.tv_sec == st.st_mtim.tv_sec &&
        m->mtime.tv_nsec == st.st_mtim.tv_nsec) {
      m->refs++;
      pthread_mutex_unlock(&table_lock);
      close(fd);
      return i;
    }
  }
  if (free_slot < 0) {
    pthread_mutex_unlock(&table_lock);
    close(fd);
    snprintf(err, err_len, "cannot map %s: %d files are mapped already", path, MAX_MAPPINGS);
    return -1;
  }
  void *data = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0) : NULL;
  close(fd);
  if (st.st_size > 0 && data == MAP_FAILED) {
    pthread_mutex_unlock(&table_lock);
    snprintf(err, err_len, "cannot map %s: %s", path, strerror(errno));
    return -1;
  }
  struct mapping *m = &table[free_slot];
  m->used = 1;
  m->refs = 1;
  m->dev = st.st_dev;
  m->ino = st.st_ino;
  m->size = st.st_size;
  m->mtime = st.st_mtim;
  m->data = (const unsigned char *)data;
  pthread_mutex_unlock(&table_lock);
  return free_slot;
}

static int unmap_file(int id) {
  if (id < 0 || id >= MAX_MAPPINGS) return -1;
  pthread_mutex_lock(&table_lock);
  struct mapping *m = &table[id];
  if (!m->used) {
    pthread_mutex_unlock(&table_lock);
    return -1;
  }
  if (--m->refs == 0) {
    if (m->data) munmap((void *)m->data, (size_t)m->size);
    memset(m, 0, sizeof(*m));
  }
  pthread_mutex_unlock(&table_lock);
  return 0;
}

/* The mapping's bytes [offset, offset + bytes), or NULL when the id or the range is wrong. */
static const unsigned char *mapped_range(int id, uint64_t offset, uint64_t bytes) {
  if (id < 0 || id >= MAX_MAPPINGS) return NULL;
  pthread_mutex_lock(&table_lock);
  const struct mapping *m = &table[id];
  const unsigned char *p = NULL;
  if (m->used && m->data && offset <= (uint64_t)m->size && bytes <= (uint64_t)m->size - offset) p = m->data + offset;
  pthread_mutex_unlock(&table_lock);
  return p;
}

/* out = x @ W^T (transpose 0) or x @ W (transpose 1); W [out_f, in_f] of `dtype` at `w`. */
static const char *linear(const float *x, float *out, int64_t rows, const unsigned char *w, int dtype, int64_t out_f, int64_t in_f,
                          int transpose) {
  if (rows == 0 || out_f == 0 || in_f == 0) {
    if (in_f == 0 || out_f == 0) memset(out, 0, 4 * (size_t)rows * (size_t)(transpose ? in_f : out_f));
    return NULL;
  }
  if (dtype == TDA_F32 && (uintptr_t)w % 4 == 0) {
    const float *wf = (const float *)w;
    if (!transpose)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out_f, (int)in_f, 1.0f, x, (int)in_f, wf, (int)in_f, 0.0f,
                  out, (int)out_f);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in_f, (int)out_f, 1.0f, x, (int)out_f, wf, (int)in_f, 0.0f,
                  out, (int)in_f);
    return NULL;
  }
  int64_t block = BLOCK_VALUES / in_f;
  if (block < 1) block = 1;
  if (block > out_f) block = out_f;
  float *buf = (float *)malloc(4 * (size_t)block * (size_t)in_f);
  if (!buf) return "externalLinear: out of memory for the widening buffer";
  const size_t bytes = tda_dtype_bytes(dtype);
  for (int64_t j0 = 0; j0 < out_f; j0 += block) {
    const int64_t nb = out_f - j0 < block ? out_f - j0 : block;
    tda_widen(w + (size_t)j0 * (size_t)in_f * bytes, dtype, (size_t)nb * (size_t)in_f, buf);
    if (!transpose)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nb, (int)in_f, 1.0f, x, (int)in_f, buf, (int)in_f, 0.0f,
                  out + j0, (int)out_f);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in_f, (int)nb, 1.0f, x + j0, (int)out_f, buf, (int)in_f,
                  j0 == 0 ? 0.0f : 1.0f, out, (int)in_f);
  }
  free(buf);
  return NULL;
}

/* ---------------------------------------------------------------- Node-API */



static const double INT_LIMIT = 2147483647.0;  /* BLAS dimensions are C ints */
static const double BYTE_LIMIT = 9007199254740991.0; /* offsets: exact doubles */

/* The ArrayBuffer's memory, or NULL (an exception is pending). */
static char *buffer_of(napi_env env, napi_value v, size_t *size, const char *what) {
  bool is_ab = false;
  void *base = NULL;
  if (napi_is_arraybuffer(env, v, &is_ab) != napi_ok || !is_ab || napi_get_arraybuffer_info(env, v, &base, size) != napi_ok) {
    throw_range(env, what);
    return NULL;
  }
  return (char *)base;
}

/* Whether [offset, offset + bytes) lies in a buffer of `size` bytes, offset a multiple of 4. */
static int in_heap(int64_t offset, uint64_t bytes, size_t size) {
  return offset >= 0 && offset % 4 == 0 && (uint64_t)offset <= size && bytes <= size - (uint64_t)offset;
}

napi_value tda_map_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1) return throw_range(env, "mapFile: expects a path");
  char path[4096];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len == 0 || len >= sizeof(path) - 1) {
    return throw_range(env, "mapFile: the path must be a non-empty string shorter than 4096 bytes");
  }
  char err[4600];
  int id = map_file(path, err, sizeof(err));
  if (id < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_int32(env, id, &out));
  return out;
}

napi_value tda_unmap_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t id = argc == 1 ? whole(env, argv[0], MAX_MAPPINGS - 1) : -1;
  if (id < 0 || unmap_file((int)id) != 0) return throw_range(env, "unmapFile: not a mapped file's id");
  return NULL;
}

napi_value tda_external_linear(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 10) return throw_range(env, "externalLinear: expects 10 arguments");
  size_t size;
  char *mem = buffer_of(env, argv[0], &size, "externalLinear: memory must be an ArrayBuffer");
  if (!mem) return NULL;
  int64_t x_off = whole(env, argv[1], BYTE_LIMIT), out_off = whole(env, argv[2], BYTE_LIMIT);
  int64_t rows = whole(env, argv[3], INT_LIMIT), id = whole(env, argv[4], MAX_MAPPINGS - 1);
  int64_t w_off = whole(env, argv[5], BYTE_LIMIT), dtype = whole(env, argv[6], 2);
  int64_t out_f = whole(env, argv[7], INT_LIMIT), in_f = whole(env, argv[8], INT_LIMIT);
  bool transpose;
  if (napi_get_value_bool(env, argv[9], &transpose) != napi_ok) return throw_range(env, "externalLinear: transpose must be a boolean");
  if (x_off < 0 || out_off < 0 || rows < 0 || id < 0 || w_off < 0 || dtype < 0 || out_f < 0 || in_f < 0) {
    return throw_range(env, "externalLinear: offsets, sizes, id and dtype must be whole numbers in range");
  }
  const uint64_t x_cols = transpose ? out_f : in_f, out_cols = transpose ? in_f : out_f;
  if (!in_heap(x_off, 4 * (uint64_t)rows * x_cols, size)) return throw_range(env, "externalLinear: the input lies outside the memory (or is misaligned)");
  if (!in_heap(out_off, 4 * (uint64_t)rows * out_cols, size)) return throw_range(env, "externalLinear: the output lies outside the memory (or is misaligned)");
  const unsigned char *w = mapped_range((int)id, (uint64_t)w_off, tda_dtype_bytes((int)dtype) * (uint64_t)out_f * (uint64_t)in_f);
  if (!w) return throw_range(env, "externalLinear: the weight lies outside its mapped file (or the file is not mapped)");
  const char *err = linear((const float *)(mem + x_off), (float *)(mem + out_off), rows, w, (int)dtype, out_f, in_f, transpose);
  if (err) return throw_range(env, err);
  return NULL;
}

napi_value tda_external_rows(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 9) return throw_range(env, "externalRows: expects 9 arguments");
  size_t size;
  char *mem = buffer_of(env, argv[0], &size, "externalRows: memory must be an ArrayBuffer");
  if (!mem) return NULL;
  int64_t ids_off = whole(env, argv[1], BYTE_LIMIT), count = whole(env, argv[2], INT_LIMIT), out_off = whole(env, argv[3], BYTE_LIMIT);
  int64_t id = whole(env, argv[4], MAX_MAPPINGS - 1), w_off = whole(env, argv[5], BYTE_LIMIT), dtype = whole(env, argv[6], 2);
  int64_t table_rows = whole(env, argv[7], INT_LIMIT), cols = whole(env, argv[8], INT_LIMIT);
  if (ids_off < 0 || count < 0 || out_off < 0 || id < 0 || w_off < 0 || dtype < 0 || table_rows < 0 || cols < 0) {
    return throw_range(env, "externalRows: offsets, sizes, id and dtype must be whole numbers in range");
  }
  if (!in_heap(ids_off, 4 * (uint64_t)count, size)) return throw_range(env, "externalRows: the ids lie outside the memory (or are misaligned)");
  if (!in_heap(out_off, 4 * (uint64_t)count * (uint64_t)cols, size)) return throw_range(env, "externalRows: the output lies outside the memory (or is misaligned)");
  const size_t bytes = tda_dtype_bytes((int)dtype);
  const unsigned char *w = mapped_range((int)id, (uint64_t)w_off, bytes * (uint64_t)table_rows * (uint64_t)cols);
  if (!w) return throw_range(env, "externalRows: the table lies outside its mapped file (or the file is not mapped)");
  const int32_t *ids = (const int32_t *)(mem + ids_off);
  float *out = (float *)(mem + out_off);
  for (int64_t i = 0; i < count; i++) {
    if (ids[i] < 0 || ids[i] >= table_rows) return throw_range(env, "externalRows: a row id is outside the table");
  }
  for (int64_t i = 0; i < count; i++) tda_widen(w + (size_t)ids[i] * (size_t)cols * bytes, (int)dtype, (size_t)cols, out + (size_t)i * (size_t)cols);
  return NULL;
}
