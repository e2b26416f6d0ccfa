/**
 * How well x solves (G^T G / n + lambda I) x = v, per query row, in float64: the relative
 * residual ||v_q - (G^T G / n + lambda I) x_q|| / ||v_q||.
 *
 * The iterative solvers run in float32 on the backend, where the residual they track
 * drifts from the true one and, at condition numbers of 1e4, float32 rounding alone is of
 * the order of the tolerance. So what they report is this: the residual of the float32
 * solution actually returned, recomputed in float64 from the float32 gradients.
 */

/**
 * Relative residual of each of the nT rows of x ([nT, d]) for right-hand sides v ([nT, d]);
 * G is [n, d]. A zero right-hand side has residual 0 when x is zero there, else +Infinity.
 * `residualOut` ([nT, d]), when given, receives v - (G^T G / n + lambda I) x.
 */
export function relativeResiduals(
  G: Float32Array,
  n: number,
  d: number,
  lambda: number,
  v: Float32Array,
  x: ArrayLike<number>,
  nT: number,
  residualOut?: Float64Array,
): Float64Array {
  const x64 = Float64Array.from(x);
  const gtgx = new Float64Array(nT * d);
  for (let i = 0; i < n; i++) {
    const gi = i * d;
    for (let q = 0; q < nT; q++) {
      const xq = q * d;
      let s = 0;
      for (let j = 0; j < d; j++) s += G[gi + j] * x64[xq + j];
      if (s === 0) continue;
      for (let j = 0; j < d; j++) gtgx[xq + j] += s * G[gi + j];
    }
  }
  const out = new Float64Array(nT);
  for (let q = 0; q < nT; q++) {
    let rr = 0;
    let vv = 0;
    for (let j = q * d; j < (q + 1) * d; j++) {
      const r = v[j] - gtgx[j] / n - lambda * x64[j];
      if (residualOut) residualOut[j] = r;
      rr += r * r;
      vv += v[j] * v[j];
    }
    out[q] = vv > 0 ? Math.sqrt(rr / vv) : rr > 0 ? Infinity : 0;
  }
  return out;
}

/** The worst (largest) entry, 0 for none. */
export function worst(residuals: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < residuals.length; i++) m = Math.max(m, residuals[i]);
  return m;
}
