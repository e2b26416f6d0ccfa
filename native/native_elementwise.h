/* Fused elementwise kernels of the model's layers (see native_elementwise.c). */
#ifndef TDA_NATIVE_ELEMENTWISE_H
#define TDA_NATIVE_ELEMENTWISE_H
#include <stddef.h>
#include <stdint.h>

#define TDA_EW_MAX_OPERANDS 8
#define TDA_EW_MAX_DIMS 4

/*
 * Bytes of each operand of `op` for these dims, into bytes[0 .. n_operands); NULL, or a
 * message when the op code, the number of operands or the number of dims is wrong.
 */
const char *tda_ew_operand_bytes(int op, const int64_t *dims, size_t n_dims, size_t n_operands, uint64_t *bytes);

/* Runs `op` on operands already checked by tda_ew_operand_bytes; NULL, or a message. */
const char *tda_ew_run(int op, char **operands, const int64_t *dims, float scalar);

/* out[i] = sum_j a[i * cols + j]^2, accumulated in double. */
void tda_row_squared_norms(const float *a, int64_t rows, int64_t cols, double *out);

#endif
