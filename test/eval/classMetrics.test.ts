import * as assert from 'node:assert/strict';
import { scoreMatrix } from '../../src/attribution/types';
import { classAccCover, defaultCoverK, perQueryClassMetrics } from '../../src/eval/classMetrics';
import { frameColumn } from '../../src/eval/frame';
import { throwsTda } from '../helpers/errors';

describe('eval: class attribution Acc and Cover (Li et al. 2024)', () => {
  // 6 training examples in 3 classes (2 each), so the default k = 6 / 3 = 2.
  const train = ['a', 'a', 'b', 'b', 'c', 'c'];
  const scores = scoreMatrix(
    3,
    6,
    Float32Array.from([
      // query 0 (class a): top-2 = 0 (a), 2 (b) -> Acc 1, Cover 1/2
      0.9, 0.1, 0.5, 0.2, 0.0, 0.3,
      // query 1 (class b): top-2 = 3 (b), 2 (b) -> Acc 1, Cover 1
      0.0, 0.1, 0.5, 0.6, 0.2, 0.3,
      // query 2 (class c): top-2 = 0 (a), 1 (a) -> Acc 0, Cover 0
      0.9, 0.8, 0.1, 0.2, 0.3, 0.4,
    ]),
  );

  it('hand case with the default k = nTrain / nClasses', () => {
    const r = classAccCover(scores, ['a', 'b', 'c'], train);
    assert.equal(r.k, 2);
    assert.equal(r.nClasses, 3);
    assert.deepEqual(r.accPerQuery, [1, 1, 0]);
    assert.deepEqual(r.coverPerQuery, [0.5, 1, 0]);
    assert.equal(r.acc, 2 / 3);
    assert.equal(r.cover, 0.5);
  });

  it('explicit k; k beyond nTrain is capped', () => {
    const r = classAccCover(scores, ['a', 'b', 'c'], train, { k: 3 });
    // query 0 top-3: 0 (a), 2 (b), 5 (c); query 1: 3, 2, 5; query 2: 0, 1, 5.
    assert.deepEqual(r.coverPerQuery, [1 / 3, 2 / 3, 1 / 3]);
    const all = classAccCover(scores, ['a', 'b', 'c'], train, { k: 100 });
    assert.equal(all.k, 6);
    assert.deepEqual(all.coverPerQuery, [1 / 3, 1 / 3, 1 / 3]);
  });

  it('ties go to the lower training index; numeric labels work', () => {
    const tied = scoreMatrix(1, 4, Float32Array.from([1, 1, 1, 1]));
    assert.equal(classAccCover(tied, [1], [1, 0, 0, 1]).acc, 1);
    assert.equal(classAccCover(tied, [0], [1, 0, 0, 1]).acc, 0);
    assert.equal(classAccCover(tied, [0], [1, 0, 0, 1]).cover, 1 / 2);
  });

  it('defaultCoverK rounds down and is at least 1', () => {
    assert.equal(defaultCoverK(10, 3), 3);
    assert.equal(defaultCoverK(2, 5), 1);
    assert.equal(defaultCoverK(100, 10), 10);
  });

  it('per-query DataFrame', () => {
    const df = perQueryClassMetrics(scores, ['a', 'b', 'c'], train);
    assert.deepEqual(df.columns, ['query', 'acc', 'cover']);
    assert.deepEqual(frameColumn(df, 'query'), [0, 1, 2]);
    assert.deepEqual(frameColumn(df, 'cover'), [0.5, 1, 0]);
  });

  it('rejects mismatched labels, bad labels, bad k and NaN scores', () => {
    throwsTda(() => classAccCover(scores, ['a', 'b'], train), "'testClasses'", '2 labels', '3 queries');
    throwsTda(() => classAccCover(scores, ['a', 'b', 'c'], ['a']), "'trainClasses'");
    throwsTda(() => classAccCover(scores, ['a', NaN, 'c'], train), "'testClasses'", 'index 1');
    throwsTda(() => classAccCover(scores, ['a', 'b', 'c'], train, { k: 0 }), "'k'");
    const bad = scoreMatrix(1, 2, Float32Array.from([0, NaN]));
    throwsTda(() => classAccCover(bad, ['a'], ['a', 'b']), "'scores'", '[0, 1]');
  });
});
