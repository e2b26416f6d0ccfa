/**
 * DDA, Debias and Denoise Attribution (Wu et al., EMNLP 2024, arXiv 2410.01285), over any
 * scorer's [nTest, nTrain] matrices:
 *
 *   S_DDA = denoise_t( N(S(theta_t)) - lambda * N(S(theta_0)) )
 *
 * i.e. debias every checkpoint's scores against the base model's, then combine the
 * checkpoints (mean / EMA / median, optionally z-scored per row first). A reconstruction:
 * the paper's code was never released, so every choice is an option (see README.md).
 */
import { ScoreMatrix, scoreMatrix } from '../attribution/types';
import { DebiasOptions, debiasedValues, debiasSettings } from './debias';
import { checkCheckpoints, combineCheckpoints, DenoiseOptions, denoiseSettings } from './denoise';
import { normalized } from './standardize';
import { checkSameShape, checkScoreMatrix, checkpointName } from './validate';

export interface DdaInput {
  /** One matrix per fine-tuning checkpoint, in training order. */
  finetuned: ScoreMatrix[];
  /** The same scorer at the base model theta_0 (no adapter, or the adapter at initialisation). */
  base: ScoreMatrix;
}

export type DdaOptions = DebiasOptions & DenoiseOptions;

export function dda(input: DdaInput, opts: DdaOptions = {}): ScoreMatrix {
  const d = debiasSettings(opts);
  const n = denoiseSettings(opts);
  checkCheckpoints(input.finetuned, 'finetuned');
  const baseName = { field: 'base', label: 'base-model scores' };
  checkScoreMatrix(input.base, baseName);
  checkSameShape(input.base, baseName, input.finetuned[0], checkpointName('finetuned', 0));
  const { nTest, nTrain } = input.base;
  const base = normalized(input.base, d.normalize);
  const debiased = input.finetuned.map((s) => debiasedValues(s, base, d.lambda, d.normalize));
  return scoreMatrix(nTest, nTrain, Float32Array.from(combineCheckpoints(debiased, nTest, nTrain, n)));
}
