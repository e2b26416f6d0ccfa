/* Widening of the two-byte float formats safetensors files store (BF16, F16) to float32. */
#ifndef TDA_NATIVE_HALF_H
#define TDA_NATIVE_HALF_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Storage dtypes of a matrix read in place (codes shared with src/runtime/nativeAddon.ts). */
enum tda_dtype { TDA_F32 = 0, TDA_BF16 = 1, TDA_F16 = 2 };

static inline size_t tda_dtype_bytes(int dtype) { return dtype == TDA_F32 ? 4 : 2; }

static inline float tda_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16; /* BF16 is the top half of a float32 */
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* IEEE half to float32, subnormals, infinities and NaN included. */
static inline float tda_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: normalise */
    exp = 113;
    while (!(man & 0x400)) {
      man <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* out[i] = value i of `src` (count values of `dtype`, any alignment) as float32. */
static inline void tda_widen(const void *src, int dtype, size_t count, float *out) {
  const unsigned char *p = (const unsigned char *)src;
  if (dtype == TDA_F32) {
    memcpy(out, p, count * 4);
  } else if (dtype == TDA_BF16) {
    for (size_t i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      out[i] = tda_bf16_to_f32(h);
    }
  } else {
    for (size_t i = 0; i < count; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      out[i] = tda_f16_to_f32(h);
    }
  }
}

#endif
