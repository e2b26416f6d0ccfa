import { GradientSource } from '../gradients/types';
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
  const scale = opts.dampingScale ?? DEFAULT_DAMPING_SCALE;
  const sums = new Float64Array(train.blocks.length);
  for (const { set } of train.chunks()) {
    set.blocks.forEach((b, l) => {
      let s = 0;
      for (let i = 0; i < b.data.length; i++) s += b.data[i] * b.data[i];
      sums[l] += s;
    });
  }
  return Float64Array.from(train.blocks, (b, l) => opts.dampingValues?.[b.name] ?? (scale * sums[l]) / (train.n * b.dim));
}
