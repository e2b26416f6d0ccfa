/**
 * A KDE bandwidth chosen by leave-one-out likelihood: among candidate bandwidths, the one
 * that maximises the mean over training points of log p_{-i}(x_i), the density of each point
 * under the kernels of all the others. Rules of thumb (Scott, Silverman) assume roughly
 * Gaussian data; hidden states and bags of words are not, and in high dimensions the rules
 * give bandwidths far larger than the gaps between neighbours.
 *
 * Candidates: Scott's h times 2^(k/2) for k = -12 .. 4 (1/64 to 4 times Scott's).
 */
import { KernelDensity, kdeBandwidth } from '../attribution/density';
import { TdaError } from '../errors';
import { EmbeddingSet } from '../model/embeddings';

export interface LooBandwidth {
  h: number;
  /** Mean leave-one-out log-density at h. */
  meanLogDensity: number;
  /** Every candidate tried, with its mean leave-one-out log-density. */
  candidates: { h: number; meanLogDensity: number }[];
}

export const LOO_FACTORS: number[] = Array.from({ length: 17 }, (_, i) => Math.pow(2, (i - 12) / 2));

/** Mean leave-one-out log-density of the training points at bandwidth h. */
export function meanLooLogDensity(train: EmbeddingSet, h: number): number {
  const kde = new KernelDensity({ bandwidth: h, leaveOneOut: true });
  kde.cache(train);
  const lp = kde.logDensity(train);
  let s = 0;
  for (const v of lp) s += v;
  return s / lp.length;
}

export function looBandwidth(train: EmbeddingSet, candidates?: number[]): LooBandwidth {
  const hs = candidates ?? LOO_FACTORS.map((f) => f * kdeBandwidth(train, 'scott'));
  if (hs.length === 0 || hs.some((h) => !(Number.isFinite(h) && h > 0))) throw new TdaError('candidate bandwidths must be finite and > 0', { field: 'bandwidth' });
  const tried = hs.map((h) => ({ h, meanLogDensity: meanLooLogDensity(train, h) }));
  let best = tried[0];
  for (const c of tried) if (c.meanLogDensity > best.meanLogDensity) best = c;
  return { h: best.h, meanLogDensity: best.meanLogDensity, candidates: tried };
}
