import { GradientSource, ownsChunks } from '../gradients/types';
import { rowSquaredNorms } from './linalg';
import { OptionSpec } from './method';
/**
 * Damping per gradient block l: lambda_l = scale * mean_i mean_j g_ilj^2 (DataInf's default,
 * scale 0.1). It is scale x the mean eigenvalue of the block's Gauss-Newton matrix G^T G / n,
 * so it adapts to each block's gradient magnitude.
 */

export const DEFAULT_DAMPING_SCALE = 0.1;

export const DAMPING_SCALE_OPTION: OptionSpec = {
  key: 'dampingScale',
  description: 'damping lambda_l = c x the mean squared gradient of block l (ekfac: c x the mean of its corrected eigenvalues)',
  type: 'number',
  default: DEFAULT_DAMPING_SCALE,
  min: 0,
  exclusiveMin: true,
};

export interface DampingOptions {
  /** Multiplier of the mean squared gradient (default 0.1). */
  dampingScale?: number;
  /** Explicit lambda per block name, overriding the rule. */
  dampingValues?: Record<string, number>;
}

export function blockDamping(train: GradientSource, opts: DampingOptions = {}): Float64Array {
  return blockDampingAndNorms(train, opts, false).damping;
}

/** Per-example norms are kept only up to this many values (8 bytes each). */
export const KEPT_NORMS_LIMIT = 1 << 23;

/**
 * The damping of each block and, when `keepNorms` is set and nTrain x blocks is at most
 * KEPT_NORMS_LIMIT, each block's squared per-example norms |g_il|^2 [nTrain] (else null),
 * from one pass over the training set. Row norms are summed in float64 (natively where the
 * addon is built).
 */
export function blockDampingAndNorms(train: GradientSource, opts: DampingOptions = {}, keepNorms = false): { damping: Float64Array; norms: Float64Array[] | null } {
  const scale = opts.dampingScale ?? DEFAULT_DAMPING_SCALE;
  const sums = new Float64Array(train.blocks.length);
  const keep = keepNorms && train.n * train.blocks.length <= KEPT_NORMS_LIMIT;
  const norms = keep ? train.blocks.map(() => new Float64Array(train.n)) : null;
  for (const { start, set } of train.chunks()) {
    set.blocks.forEach((b, l) => {
      const rows = rowSquaredNorms(b.data, set.n, b.dim);
      let s = 0;
      for (let i = 0; i < rows.length; i++) s += rows[i];
      sums[l] += s;
      norms?.[l].set(rows, start);
    });
    if (ownsChunks(train)) for (const b of set.blocks) if (b.data.buffer instanceof ArrayBuffer) train.recycle?.(b.data.buffer);
  }
  const damping = Float64Array.from(train.blocks, (b, l) => opts.dampingValues?.[b.name] ?? (scale * sums[l]) / (train.n * b.dim));
  return { damping, norms };
}
