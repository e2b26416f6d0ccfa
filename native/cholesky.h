/* Cholesky factorization and solves through LAPACK (see cholesky.c). */
#ifndef TDA_NATIVE_CHOLESKY_H
#define TDA_NATIVE_CHOLESKY_H
#include <node_api.h>

/* Adds cholesky.c's exports (choleskyFactor, choleskySolve) to `exports`. */
void tda_cholesky_register(napi_env env, napi_value exports);

#endif
