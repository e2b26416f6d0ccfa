/* Frozen weights read in place from memory-mapped files (see external_weights.c). */
#ifndef TDA_NATIVE_EXTERNAL_WEIGHTS_H
#define TDA_NATIVE_EXTERNAL_WEIGHTS_H
#include <node_api.h>

napi_value tda_map_file(napi_env env, napi_callback_info info);
napi_value tda_unmap_file(napi_env env, napi_callback_info info);
napi_value tda_external_linear(napi_env env, napi_callback_info info);
napi_value tda_external_rows(napi_env env, napi_callback_info info);

#endif
