import * as assert from 'node:assert/strict';
import { CholeskyDecomposition, Matrix, QrDecomposition } from 'ml-matrix';
import { choleskyFactor } from '../../src/attribution/cholesky';
import { nativeAddon } from '../../src/runtime/nativeAddon';
import { Rng } from '../../src/random';

/** A = Q diag(eigs) Q^T with Q orthogonal (QR of a Gaussian matrix): a known spectrum. */
function spd(n: number, eigs: (i: number) => number, seed: number): Float64Array {
  const rng = new Rng(seed);
  const q = new QrDecomposition(new Matrix(Array.from({ length: n }, () => Array.from({ length: n }, () => rng.normal())))).orthogonalMatrix;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q.get(i, k) * eigs(k) * q.get(j, k);
      a[i * n + j] = s;
      a[j * n + i] = s;
    }
  }
  return a;
}

function matVec(a: Float64Array, n: number, x: Float64Array, offset: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) out[i] += a[i * n + k] * x[offset + k];
  return out;
}

describe('Cholesky factorization and solves (LAPACK through the addon, ml-matrix otherwise)', function () {
  this.timeout(60000);

  it('solves a 300 x 300 system of condition number 1e6 for several right-hand sides to 1e-9', () => {
    const n = 300;
    const nrhs = 5;
    const a = spd(n, (k) => 10 ** ((6 * k) / (n - 1)), 1);
    const rng = new Rng(2);
    const x = Float64Array.from({ length: n * nrhs }, () => rng.normal());
    const b = new Float64Array(n * nrhs);
    for (let r = 0; r < nrhs; r++) b.set(matVec(a, n, x, r * n), r * n);
    const got = choleskyFactor(Float64Array.from(a), n, 'test matrix').solve(b, nrhs);
    let num = 0;
    let den = 0;
    got.forEach((v, i) => {
      num += (v - x[i]) ** 2;
      den += x[i] ** 2;
    });
    assert.ok(Math.sqrt(num / den) < 1e-9, `relative error ${Math.sqrt(num / den)}`);
    assert.deepEqual([...b.slice(0, 3)], [...matVec(a, n, x, 0).slice(0, 3)], 'the right-hand sides are left as they were');
    // The same solutions as ml-matrix's own decomposition.
    const ml = new CholeskyDecomposition(Matrix.from1DArray(n, n, a)).solve(Matrix.from1DArray(nrhs, n, b).transpose()).transpose().to1DArray();
    ml.forEach((v, i) => assert.ok(Math.abs(v - got[i]) <= 1e-8 * (1 + Math.abs(v)), `entry ${i}: ${v} vs ${got[i]}`));
  });

  it('refuses a matrix that is not positive definite, naming it', () => {
    const a = spd(40, (k) => (k === 17 ? -1 : 1 + k), 3);
    assert.throws(() => choleskyFactor(a, 40, "Hessian block 'q_proj.A'"), /Hessian block 'q_proj.A' is not positive definite \(increase the damping\)/);
    assert.throws(() => choleskyFactor(new Float64Array(5), 2, 'x'), /5 values for a 2 x 2 matrix/);
  });

  if (nativeAddon()) {
    it('checks the sizes it is given against the arrays (native)', () => {
      const addon = nativeAddon()!;
      assert.throws(() => addon.choleskyFactor(new Float64Array(3), 2), /fewer than n \* n/);
      assert.throws(() => addon.choleskySolve(new Float64Array(4), 2, new Float64Array(3), 2), /fewer than n \* nrhs/);
      assert.throws(() => addon.choleskyFactor(new Float32Array(4) as unknown as Float64Array, 2), /Float64Array/);
    });
  }
});
