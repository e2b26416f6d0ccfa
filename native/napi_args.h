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

/* A typed array's elements and length if it has this type, else NULL (an empty array's elements are a dummy). */
static inline void *typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t *length) {
  static float empty[1];
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return NULL;
  napi_typedarray_type type;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, length, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != want) return NULL;
  return data ? data : (*length == 0 ? (void *)empty : NULL);
}

#endif
