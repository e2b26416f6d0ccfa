/**
 * Adam's running moments read out of a tfjs AdamOptimizer, for saving them with a
 * checkpoint. tfjs keeps them in private fields (`accumulatedFirstMoment`,
 * `accumulatedSecondMoment`: one `{ variable }` per position of the variable list given to
 * applyGradients, created at the first step); 4.22 is pinned and the test suite checks the
 * values against Adam's recurrence, since this relies on those internals. Reading them
 * copies the values and changes nothing in the optimizer.
 */
import * as tf from '@tensorflow/tfjs';
import { TdaError } from '../errors';

interface MomentSlot {
  variable: tf.Variable;
}

interface AdamInternals {
  accumulatedFirstMoment?: unknown;
  accumulatedSecondMoment?: unknown;
}

/**
 * The first and second moments (m, v; no bias correction) of the variable at `index` of the
 * list the optimizer steps, or null before its first step (Adam's moments start at zero).
 * The tensors belong to the optimizer: read them, do not dispose them.
 */
export function adamMoments(opt: tf.AdamOptimizer, index: number): { m: tf.Tensor; v: tf.Tensor } | null {
  const o = opt as unknown as AdamInternals;
  const first = o.accumulatedFirstMoment;
  const second = o.accumulatedSecondMoment;
  if (!Array.isArray(first) || !Array.isArray(second)) {
    throw new TdaError('this AdamOptimizer keeps no moment lists (tfjs internals changed?)', { field: 'optimizer' });
  }
  const m = first[index] as MomentSlot | undefined;
  const v = second[index] as MomentSlot | undefined;
  if (m == null && v == null) return null;
  if (!(m?.variable instanceof tf.Variable) || !(v?.variable instanceof tf.Variable)) {
    throw new TdaError(`moment slot ${index} holds no variable (tfjs internals changed?)`, { field: 'optimizer' });
  }
  return { m: m.variable, v: v.variable };
}
