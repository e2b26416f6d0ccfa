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
    const s = dot.attribute(c.test);
    for (let i = 0; i < total.data.length; i++) total.data[i] += c.learningRate * s.data[i];
  });
  return total;
}
