/**
 * TracIn-CP (Pruthi et al. 2020): the sum over training checkpoints c of the learning
 * rate at c times the gradient dot product at c. Positive = the example helped.
 */
import { TdaError } from '../errors';
import { GradDot } from './gradDot';
import { ScoreMatrix, scoreMatrix } from './types';
import { GradientSet, GradientSource } from '../gradients/types';

export interface TracInCheckpoint {
  train: GradientSource;
  test: GradientSet;
  /** Learning rate in effect around this checkpoint (weights its contribution). */
  learningRate: number;
}

export function tracinCP(checkpoints: TracInCheckpoint[]): ScoreMatrix {
  if (checkpoints.length === 0) throw new TdaError('TracIn-CP needs at least one checkpoint', { field: 'checkpoints' });
  const { n: nTest } = checkpoints[0].test;
  const nTrain = checkpoints[0].train.n;
  const total = scoreMatrix(nTest, nTrain);
  checkpoints.forEach((c, k) => {
    if (c.test.n !== nTest || c.train.n !== nTrain) {
      throw new TdaError(`checkpoint ${k} has ${c.test.n} x ${c.train.n} examples, expected ${nTest} x ${nTrain}`, { field: 'checkpoints' });
    }
    if (!Number.isFinite(c.learningRate)) throw new TdaError(`checkpoint ${k} learning rate is ${c.learningRate}`, { field: 'learningRate' });
    const dot = new GradDot();
    dot.cache(c.train);
    addScaled(total, dot.attribute(c.test), c.learningRate);
  });
  return total;
}

/** TracIn-CP from gradient dot products already computed at each checkpoint: sum_c lr_c x S_c. */
export function tracinFromScores(perCheckpoint: readonly ScoreMatrix[], learningRates: readonly number[]): ScoreMatrix {
  if (perCheckpoint.length === 0) throw new TdaError('TracIn-CP needs at least one checkpoint', { field: 'checkpoints' });
  if (learningRates.length !== perCheckpoint.length) throw new TdaError(`${learningRates.length} learning rates for ${perCheckpoint.length} checkpoints`, { field: 'learningRate' });
  const { nTest, nTrain } = perCheckpoint[0];
  const total = scoreMatrix(nTest, nTrain);
  perCheckpoint.forEach((s, k) => {
    if (s.nTest !== nTest || s.nTrain !== nTrain) throw new TdaError(`checkpoint ${k} has ${s.nTest} x ${s.nTrain} scores, expected ${nTest} x ${nTrain}`, { field: 'checkpoints' });
    if (!Number.isFinite(learningRates[k])) throw new TdaError(`checkpoint ${k} learning rate is ${learningRates[k]}`, { field: 'learningRate' });
    addScaled(total, s, learningRates[k]);
  });
  return total;
}

/** total += lr x s, entry by entry. */
function addScaled(total: ScoreMatrix, s: ScoreMatrix, lr: number): void {
  for (let i = 0; i < total.data.length; i++) total.data[i] += lr * s.data[i];
}
