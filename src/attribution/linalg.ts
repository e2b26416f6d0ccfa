/**
 * Dense products on row-major Float32Arrays, run as tfjs 2-D matmuls (the fast path on
 * wasm: explicit transposes, never the transposeA/B flags).
 */
import * as tf from '@tensorflow/tfjs';
import { download } from '../runtime/ops';

/** A @ B^T for A [a, d] and B [b, d]: [a, b]. Transposes whichever operand is smaller. */
export function matMulABt(A: Float32Array, a: number, B: Float32Array, b: number, d: number): Float32Array {
  return download(() => {
    const ta = tf.tensor2d(A, [a, d]);
    const tb = tf.tensor2d(B, [b, d]);
    if (a <= b) return tf.transpose(tf.matMul(tb, tf.transpose(ta)));
    return tf.matMul(ta, tf.transpose(tb));
  });
}

/** A @ M for A [a, k] and M [k, d]: [a, d]. */
export function matMul(A: Float32Array, a: number, k: number, M: Float32Array, d: number): Float32Array {
  return download(() => tf.matMul(tf.tensor2d(A, [a, k]), tf.tensor2d(M, [k, d])));
}

/** A^T A for A [m, d]: [d, d]. */
export function gram(A: Float32Array, m: number, d: number): Float32Array {
  return download(() => {
    const t = tf.tensor2d(A, [m, d]);
    return tf.matMul(tf.transpose(t), t);
  });
}

/** Squared L2 norm of each row of A [m, d], in float64. */
export function rowSquaredNorms(A: Float32Array, m: number, d: number): Float64Array {
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    let s = 0;
    for (let j = i * d, end = j + d; j < end; j++) s += A[j] * A[j];
    out[i] = s;
  }
  return out;
}

/** Adds a [nTest, m] block of scores into columns [start, start + m) of a [nTest, nTrain] matrix. */
export function addColumns(target: Float32Array, nTrain: number, block: Float32Array, nTest: number, start: number, m: number): void {
  for (let q = 0; q < nTest; q++) {
    const row = q * nTrain + start;
    for (let i = 0; i < m; i++) target[row + i] += block[q * m + i];
  }
}
