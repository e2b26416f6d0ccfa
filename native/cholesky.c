/*
 * Cholesky factorization and solves in float64 through OpenBLAS's LAPACK (dpotrf, dpotrs),
 * for the exact-influence method's damped Hessian and kernel blocks (hundreds to a few
 * thousand rows: milliseconds here, seconds in JavaScript).
 *
 *   choleskyFactor(a: Float64Array, n) -> info
 *     a: n x n symmetric positive definite, factored in place (either triangle may be
 *     read: the matrix is symmetric, so row- and column-major are the same). info is 0, or
 *     k > 0 when the leading minor of order k is not positive definite.
 *   choleskySolve(l: Float64Array, n, b: Float64Array, nrhs)
 *     solves A x = b for nrhs right-hand sides with the factor of choleskyFactor; b holds
 *     them one after the other (row-major [nrhs, n]) and is overwritten by the solutions.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include "cholesky.h"
#include "napi_args.h"

/* LAPACK's Fortran interface, with the hidden lengths of the character arguments. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b, const int *ldb, int *info, size_t uplo_len);

static napi_value cholesky_factor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) return throw_range(env, "choleskyFactor: expects (a: Float64Array, n)");
  size_t length = 0;
  double *a = typed_array(env, argv[0], napi_float64_array, &length);
  int64_t n = whole(env, argv[1], 46340.0); /* n * n stays a C int */
  if (!a || n < 1) return throw_range(env, "choleskyFactor: a must be a Float64Array and n a whole number in [1, 46340]");
  if ((uint64_t)n * (uint64_t)n > length) return throw_range(env, "choleskyFactor: a holds fewer than n * n values");
  const int ni = (int)n;
  int status = 0;
  dpotrf_("L", &ni, a, &ni, &status, 1);
  napi_value out;
  CHECK(napi_create_int32(env, status, &out));
  return out;
}

static napi_value cholesky_solve(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4) return throw_range(env, "choleskySolve: expects (l: Float64Array, n, b: Float64Array, nrhs)");
  size_t ll = 0, lb = 0;
  const double *l = typed_array(env, argv[0], napi_float64_array, &ll);
  double *b = typed_array(env, argv[2], napi_float64_array, &lb);
  int64_t n = whole(env, argv[1], 46340.0);
  int64_t nrhs = whole(env, argv[3], 2147483647.0);
  if (!l || !b || n < 1 || nrhs < 0) return throw_range(env, "choleskySolve: l and b must be Float64Arrays, n a whole number in [1, 46340], nrhs a whole number");
  if ((uint64_t)n * (uint64_t)n > ll) return throw_range(env, "choleskySolve: l holds fewer than n * n values");
  if ((uint64_t)n * (uint64_t)nrhs > lb) return throw_range(env, "choleskySolve: b holds fewer than n * nrhs values");
  if ((uint64_t)n * (uint64_t)nrhs > 2147483647ULL) return throw_range(env, "choleskySolve: n * nrhs must stay below 2^31");
  if (nrhs == 0) return NULL;
  const int ni = (int)n, ri = (int)nrhs;
  int status = 0;
  dpotrs_("L", &ni, &ri, l, &ni, b, &ni, &status, 1);
  if (status != 0) return throw_range(env, "choleskySolve: LAPACK dpotrs rejected its arguments");
  return NULL;
}

void tda_cholesky_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"choleskyFactor", NULL, cholesky_factor, NULL, NULL, NULL, napi_enumerable, NULL},
      {"choleskySolve", NULL, cholesky_solve, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
