/**
 * Influence by conjugate gradients: per block l, x_q = (G_l^T G_l / n + lambda_l I)^-1 g_q
 * solved iteratively, every query its own CG run (all queries of a block share each
 * product with the training gradients), until the worst relative residual is below the
 * tolerance. CG needs about sqrt(condition number) iterations where LiSSA's Neumann
 * series needs about the condition number, and needs no scale.
 *
 * The iterations run in float32 on the backend. Their recursively updated residual drifts
 * from the true one, and at condition numbers of 1e4 float32 alone limits the residual to
 * about the default tolerance, so CG runs inside iterative refinement: the residual of the
 * current solution is recomputed in float64, CG solves for the correction, which is added
 * in float64, until the float64 residual is below the tolerance, the cap is spent, or a
 * round stops improving. The score is then sum_l x_ql . g_il, as for exact influence.
 * Sign: positive = the training example helps the test output.
 */
import * as tf from '@tensorflow/tfjs';
import { DAMPING_SCALE_OPTION } from './damping';
import { relativeResiduals } from './dampedResidual';
import { BlockProblem, BlockSolution, IterativeSolver, IterativeSolverOptions, MAX_ITERATIONS_OPTION, DEFAULT_MAX_ITERATIONS, TOLERANCE_OPTION, Unconverged, UNCONVERGED_OPTION } from './iterativeSolver';
import { MethodDescriptor, Settings, WORKERS_OPTION } from './method';
import { download } from '../runtime/ops';

/** Refinement rounds at most; one is usually enough, a second fixes float32 drift. */
const MAX_ROUNDS = 8;

export class ConjugateGradient extends IterativeSolver {
  readonly name = 'cg';

  constructor(opts: IterativeSolverOptions = {}) {
    super(opts, DEFAULT_MAX_ITERATIONS.cg);
  }

  protected override methodSettings(): Settings {
    return { ...super.methodSettings(), maxIterations: this.maxIterations };
  }

  protected solveBlock(p: BlockProblem): BlockSolution {
    const { d, nT } = p;
    const x64 = new Float64Array(nT * d);
    let x32 = new Float32Array(nT * d);
    const r64 = Float64Array.from(p.v);
    // At x = 0 the residual is v itself: relative residual 1 (0 for a zero query).
    let res = Float64Array.from({ length: nT }, (_, q) => (rowNorm(r64, q, d) > 0 ? 1 : 0));
    let iterations = 0;
    for (let round = 0; round < MAX_ROUNDS && iterations < this.maxIterations; round++) {
      if (res.every((r) => r <= this.tolerance)) break;
      // Each unconverged query's residual, scaled to unit norm (float32 keeps its range),
      // is solved until it shrinks by the factor that takes the query below half the tolerance.
      const norms = Float64Array.from({ length: nT }, (_, q) => rowNorm(r64, q, d));
      const rhs = new Float32Array(nT * d);
      const targets = new Float64Array(nT).fill(Infinity);
      for (let q = 0; q < nT; q++) {
        if (res[q] <= this.tolerance) continue;
        for (let j = q * d; j < (q + 1) * d; j++) rhs[j] = r64[j] / norms[q];
        targets[q] = (0.5 * this.tolerance) / res[q];
      }
      const step = cgRows(p, rhs, targets, this.maxIterations - iterations);
      iterations += step.iterations;
      const cand64 = Float64Array.from(x64);
      for (let q = 0; q < nT; q++) for (let j = q * d; j < (q + 1) * d; j++) cand64[j] += norms[q] * step.x[j];
      const cand32 = Float32Array.from(cand64);
      const candR = new Float64Array(nT * d);
      const candRes = relativeResiduals(p.G, p.n, d, p.lambda, p.v, cand32, nT, candR);
      // Keep, query by query, whichever solution has the smaller residual.
      let improved = false;
      for (let q = 0; q < nT; q++) {
        if (!(candRes[q] < res[q])) continue;
        if (candRes[q] < 0.5 * res[q]) improved = true;
        res[q] = candRes[q];
        for (let j = q * d; j < (q + 1) * d; j++) {
          x64[j] = cand64[j];
          r64[j] = candR[j];
        }
      }
      x32 = Float32Array.from(x64);
      if (!improved || step.iterations === 0) break;
    }
    return { x: x32, iterations };
  }
}

function rowNorm(a: Float64Array, q: number, d: number): number {
  let s = 0;
  for (let j = q * d; j < (q + 1) * d; j++) s += a[j] * a[j];
  return Math.sqrt(s);
}

/**
 * Conjugate gradients for (G^T G / n + lambda I) X_q = B_q, one independent run per row q
 * of B ([nT, d]), in float32 on the backend; row q stops once its recursively updated
 * residual norm is below targets[q] (Infinity: the row is not solved). At most `budget`
 * iterations, each one product of the active directions with G^T and G.
 */
export function cgRows(p: Pick<BlockProblem, 'g' | 'gT' | 'n' | 'lambda' | 'd' | 'nT'>, b: Float32Array, targets: Float64Array, budget: number): BlockSolution {
  const { g, gT, n, lambda, d, nT } = p;
  const active = new Float32Array(nT);
  let x = tf.zeros([nT, d]) as tf.Tensor2D;
  let r = tf.tensor2d(b, [nT, d]);
  let dir = tf.clone(r);
  let rr = tf.tidy(() => tf.sum(tf.square(r), 1, true)) as tf.Tensor2D; // [nT, 1]
  let rrHost: ArrayLike<number> = rr.dataSync();
  for (let q = 0; q < nT; q++) active[q] = rrHost[q] > targets[q] * targets[q] ? 1 : 0;
  let iterations = 0;
  try {
    while (iterations < budget && active.some((a) => a === 1)) {
      const mask = tf.tensor2d(active, [nT, 1]);
      const [xN, rN, dirN, rrN, pAp] = tf.tidy(() => {
        const on = tf.greater(mask, 0);
        const ap = tf.add(tf.div(tf.matMul(tf.matMul(dir, gT), g), n), tf.mul(dir, lambda)); // (G^T G / n + lambda I) p
        const pAp = tf.sum(tf.mul(dir, ap), 1, true);
        const ok = tf.logicalAnd(on, tf.greater(pAp, 0));
        const zero = tf.zerosLike(rr);
        const alpha = tf.where(ok, tf.div(rr, pAp), zero);
        const xN = tf.add(x, tf.mul(alpha, dir));
        const rN = tf.sub(r, tf.mul(alpha, ap));
        const rrN = tf.where(ok, tf.sum(tf.square(rN), 1, true), rr);
        const beta = tf.where(ok, tf.div(rrN, rr), zero);
        const dirN = tf.add(rN, tf.mul(beta, dir));
        return [xN, rN, dirN, rrN, pAp] as tf.Tensor2D[];
      });
      mask.dispose();
      const host = download(() => tf.concat([rrN, pAp], 0));
      pAp.dispose();
      for (const t of [x, r, dir, rr]) t.dispose();
      [x, r, dir, rr] = [xN, rN, dirN, rrN];
      rrHost = host.subarray(0, nT);
      iterations++;
      const pApHost = host.subarray(nT);
      for (let q = 0; q < nT; q++) {
        // A direction with p.Ap <= 0 has broken down (rounding): the row keeps what it has.
        if (active[q] === 1 && (!(pApHost[q] > 0) || rrHost[q] <= targets[q] * targets[q])) active[q] = 0;
      }
    }
    return { x: x.dataSync() as Float32Array, iterations };
  } finally {
    for (const t of [x, r, dir, rr]) t.dispose();
  }
}

export const cgMethod: MethodDescriptor = {
  name: 'cg',
  summary: 'conjugate gradients for the damped inverse-Hessian-vector product per LoRA tensor, to a residual tolerance',
  input: 'gradients',
  options: [DAMPING_SCALE_OPTION, WORKERS_OPTION, TOLERANCE_OPTION, MAX_ITERATIONS_OPTION, UNCONVERGED_OPTION],
  create: (o) =>
    new ConjugateGradient({
      dampingScale: o.dampingScale as number,
      workers: o.workers as number | undefined,
      tolerance: o.tolerance as number,
      maxIterations: o.maxIterations as number | undefined,
      unconverged: o.unconverged as Unconverged,
    }),
};
