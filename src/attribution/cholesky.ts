/**
 * Float64 Cholesky factorization of a symmetric positive definite matrix and solves with
 * it: LAPACK (dpotrf/dpotrs through the native addon) where it is built, ml-matrix
 * otherwise. The exact-influence method factors one damped block per LoRA tensor per
 * checkpoint (800 x 800 in the DDA experiment: ~1 s each in JavaScript, milliseconds in
 * LAPACK).
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { TdaError } from '../errors';
import { nativeAddon } from '../runtime/nativeAddon';

export interface CholeskyFactor {
  readonly n: number;
  /** x = A^-1 b for nrhs right-hand sides stored one after the other ([nrhs, n]). */
  solve(b: Float64Array, nrhs: number): Float64Array;
}

/**
 * Factors the n x n symmetric matrix `a` (row-major; consumed: it holds the factor after).
 * `what` names the matrix in the error raised when it is not positive definite.
 */
export function choleskyFactor(a: Float64Array, n: number, what: string): CholeskyFactor {
  if (a.length !== n * n) throw new Error(`choleskyFactor: ${a.length} values for a ${n} x ${n} matrix`);
  const notPositive = () => new TdaError(`${what} is not positive definite (increase the damping)`, { field: 'damping' });
  const addon = nativeAddon();
  if (addon) {
    if (addon.choleskyFactor(a, n) !== 0) throw notPositive();
    return {
      n,
      solve: (b, nrhs) => {
        const x = Float64Array.from(b);
        addon.choleskySolve(a, n, x, nrhs);
        return x;
      },
    };
  }
  const c = new CholeskyDecomposition(Matrix.from1DArray(n, n, a));
  if (!c.isPositiveDefinite()) throw notPositive();
  return {
    n,
    // ml-matrix solves for the columns of an [n, nrhs] matrix: the right-hand sides transposed.
    solve: (b, nrhs) => Float64Array.from(c.solve(Matrix.from1DArray(nrhs, n, b).transpose()).transpose().to1DArray()),
  };
}
