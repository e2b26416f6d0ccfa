/**
 * DDA's debias step (Wu et al. 2024): remove what the base model already "knew" by
 * subtracting the scores computed at the base model theta_0:
 *
 *   S_debias = N(S_ft) - lambda * N(S_base)
 *
 * N is the optional normalisation (`none`, `zscore-rows`, `zscore-all`), applied to each
 * matrix separately before the subtraction because score scales differ per method and
 * checkpoint. Works on any scorer's [nTest, nTrain] matrix.
 *
 * Caution (DDA-BENCHMARK-NOTES): when the base model's scores already rank the true sources
 * above chance, subtracting them removes signal; check the base scores' AUC first.
 */
import { ScoreMatrix, scoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';
import { Normalization, normalized, NORMALIZATIONS } from './standardize';
import { checkSameShape, checkScoreMatrix, MatrixName } from './validate';

export interface DebiasOptions {
  /** Weight of the base-model scores (default 1; 0 turns debias off). */
  lambda?: number;
  /** Applied to each matrix before subtracting (default `none`). */
  normalize?: Normalization;
}

export function debias(scoresFinetuned: ScoreMatrix, scoresBase: ScoreMatrix, opts: DebiasOptions = {}): ScoreMatrix {
  const ft: MatrixName = { field: 'scoresFinetuned', label: 'fine-tuned scores' };
  const base: MatrixName = { field: 'scoresBase', label: 'base-model scores' };
  checkScoreMatrix(scoresFinetuned, ft);
  checkScoreMatrix(scoresBase, base);
  checkSameShape(scoresBase, base, scoresFinetuned, ft);
  const { lambda, normalize } = debiasSettings(opts);
  const out = debiasedValues(scoresFinetuned, normalized(scoresBase, normalize), lambda, normalize);
  return scoreMatrix(scoresFinetuned.nTest, scoresFinetuned.nTrain, Float32Array.from(out));
}

/** Options with defaults, validated. */
export function debiasSettings(opts: DebiasOptions): { lambda: number; normalize: Normalization } {
  const lambda = opts.lambda ?? 1;
  const normalize = opts.normalize ?? 'none';
  if (!Number.isFinite(lambda)) throw new TdaError(`must be a finite number, got ${lambda}`, { field: 'lambda' });
  if (!NORMALIZATIONS.includes(normalize)) throw new TdaError(`unknown normalisation '${String(normalize)}' (use ${NORMALIZATIONS.join(', ')})`, { field: 'normalize' });
  return { lambda, normalize };
}

/** N(S_ft) - lambda * baseNormalized, in float64; inputs already checked. */
export function debiasedValues(scoresFinetuned: ScoreMatrix, baseNormalized: Float64Array, lambda: number, normalize: Normalization): Float64Array {
  const out = normalized(scoresFinetuned, normalize);
  for (let k = 0; k < out.length; k++) out[k] -= lambda * baseNormalized[k];
  return out;
}
