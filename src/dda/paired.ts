/**
 * DDA with a reference per checkpoint instead of one base matrix:
 *
 *   S = denoise_t( N(S_t) - lambda * N(R_t) )
 *
 * Two readings of "debias" use it (see README.md):
 *   - base subtraction with each checkpoint's own A and B = 0 (R_t = scores at (A_t, 0)):
 *     the reference sees the same lora_B subspace as S_t instead of the initial A's;
 *   - contrast (Ladhak et al. 2023 style): S_t = scores at the "error model" (checkpoint t
 *     fine-tuned further on its hallucinated generations), R_t = scores at the "ground
 *     model" (fine-tuned further on its correct generations).
 * With every R_t equal to one base matrix it is exactly `dda`.
 */
import { ScoreMatrix, scoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';
import { debiasedValues, debiasSettings } from './debias';
import { DdaOptions } from './dda';
import { checkCheckpoints, combineCheckpoints, denoiseSettings } from './denoise';
import { normalized } from './standardize';
import { checkSameShape, checkpointName } from './validate';

export interface PairedDdaInput {
  /** One matrix per checkpoint, in training order. */
  finetuned: ScoreMatrix[];
  /** The reference matrix of each checkpoint, same order and shape. */
  references: ScoreMatrix[];
}

export function pairedDda(input: PairedDdaInput, opts: DdaOptions = {}): ScoreMatrix {
  const d = debiasSettings(opts);
  const n = denoiseSettings(opts);
  checkCheckpoints(input.finetuned, 'finetuned');
  checkCheckpoints(input.references, 'references');
  if (input.references.length !== input.finetuned.length) {
    throw new TdaError(`${input.references.length} reference matrices for ${input.finetuned.length} checkpoints`, { field: 'references' });
  }
  input.references.forEach((r, t) => checkSameShape(r, checkpointName('references', t), input.finetuned[0], checkpointName('finetuned', 0)));
  const { nTest, nTrain } = input.finetuned[0];
  const debiased = input.finetuned.map((s, t) => debiasedValues(s, normalized(input.references[t], d.normalize), d.lambda, d.normalize));
  return scoreMatrix(nTest, nTrain, Float32Array.from(combineCheckpoints(debiased, nTest, nTrain, n)));
}
