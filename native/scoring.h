/* Scoring kernels (see scoring.c). */
#ifndef TDA_NATIVE_SCORING_H
#define TDA_NATIVE_SCORING_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Adds scoring.c's exports (sgemmStrided, widenHalf) to `exports`. */
void tda_scoring_register(napi_env env, napi_value exports);

/* Whether a rows x cols row-major matrix with leading dimension ld at element offset lies in `length` elements. */
int tda_strided_in_bounds(uint64_t offset, uint64_t rows, uint64_t cols, uint64_t ld, uint64_t length);

/* out[i] = value i of src (dtype TDA_F32, TDA_BF16 or TDA_F16, 2-byte aligned) as float32. */
void tda_widen_fast(const void *src, int dtype, size_t count, float *out);

#endif
