/**
 * Z-scoring of score matrices. Score scales differ by method and by checkpoint (DataInf's
 * spread at the last checkpoint was 3-17x that at the base model), so raw differences and
 * averages are dominated by whichever matrix is widest; z-scoring puts them on one scale.
 *
 * Population statistics (divide by the count, not count - 1). A row (or matrix) with zero
 * spread has no scale to remove: it becomes all zeros (centred) instead of NaN.
 */
import type { ScoreMatrix } from '../attribution/types';

export type Normalization = 'none' | 'zscore-rows' | 'zscore-all';

export const NORMALIZATIONS: readonly Normalization[] = ['none', 'zscore-rows', 'zscore-all'];

/** Float64 copy of s.data ([nTest, nTrain] row-major), normalised as asked. */
export function normalized(s: Pick<ScoreMatrix, 'nTest' | 'nTrain'> & { data: ArrayLike<number> }, how: Normalization): Float64Array {
  const out = Float64Array.from(s.data);
  if (how === 'zscore-all') zscoreInPlace(out);
  else if (how === 'zscore-rows') for (let q = 0; q < s.nTest; q++) zscoreInPlace(out.subarray(q * s.nTrain, (q + 1) * s.nTrain));
  return out;
}

/** (v - mean) / std in place; zeros when std is 0. */
function zscoreInPlace(v: Float64Array): void {
  if (v.length === 0) return;
  let mean = 0;
  for (let i = 0; i < v.length; i++) mean += v[i];
  mean /= v.length;
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += (v[i] - mean) ** 2;
  const std = Math.sqrt(ss / v.length);
  const inv = std > 0 ? 1 / std : 0;
  for (let i = 0; i < v.length; i++) v[i] = (v[i] - mean) * inv;
}
