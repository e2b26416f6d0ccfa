/**
 * One k-dimensional feature per example from all of its gradient blocks, for methods that
 * project the whole (optionally rescaled) gradient vector and compare unit vectors (LESS,
 * TrackStar).
 *
 * The projection of the concatenated vector [g_1 ... g_L] by the stacked matrix
 * [P_1; ...; P_L] is sum_l g_l P_l, so projecting each block with the project's seeded
 * per-block matrices (gradients/projection.ts) and adding the results is an exact
 * projection of the whole vector by a [D, k] matrix of the same kind (Rademacher entries
 * +-1/sqrt(k)): no [D, k] matrix is ever built, and train and test sides with the same
 * spec get the same matrix.
 */
import { Projector } from '../gradients/projection';
import { GradientSet } from '../gradients/types';

/**
 * [n, k] row-major: sum over blocks of map(block) P_block. `map` rewrites a block's
 * [n, dim] data before it is projected (e.g. an elementwise optimizer preconditioner);
 * default: the gradients as they are.
 */
export function projectExamples(set: GradientSet, projector: Projector, map?: (l: number, data: Float32Array) => Float32Array): Float32Array {
  const k = projector.spec.dim;
  const out = new Float32Array(set.n * k);
  set.blocks.forEach((b, l) => {
    const p = projector.project({ ...b, data: map ? map(l, b.data) : b.data }).data;
    for (let j = 0; j < out.length; j++) out[j] += p[j];
  });
  return out;
}

/** Divides each row of an [n, k] matrix by its Euclidean norm, in place (float64 norms); a zero row stays zero. */
export function normalizeRows(x: Float32Array, k: number): Float32Array {
  for (let i = 0; i * k < x.length; i++) {
    let ss = 0;
    for (let j = i * k; j < (i + 1) * k; j++) ss += x[j] * x[j];
    if (ss > 0) {
      const inv = 1 / Math.sqrt(ss);
      for (let j = i * k; j < (i + 1) * k; j++) x[j] *= inv;
    }
  }
  return x;
}
