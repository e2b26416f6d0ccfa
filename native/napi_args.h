/* Node-API argument checks shared by the addon's source files. */
#ifndef TDA_NATIVE_NAPI_ARGS_H
#define TDA_NATIVE_NAPI_ARGS_H
#include <math.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

#define CHECK(call)                                                                      \
  do {                                                                                   \
    if ((call) != napi_ok) {                                                             \
      napi_throw_error(env, NULL, "tda_native: internal Node-API call failed: " #call); \
      return NULL;                                                                       \
    }                                                                                    \
  } while (0)

/* Throws a RangeError with `msg`; returns NULL for `return throw_range(...)`. */
static inline napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

/* A whole number in [0, limit], or -1. */
static inline int64_t whole(napi_env env, napi_value v, double limit) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!isfinite(d) || d < 0 || d > limit || floor(d) != d) return -1;
  return (int64_t)d;
}

#endif
