import * as assert from 'node:assert/strict';
import { scoreMatrix, scoreRow } from '../../src/attribution/types';
import { averagePrecision, recallAtK, rocAuc } from '../../src/eval/auc';
import { bootstrapMeanCI } from '../../src/eval/bootstrap';
import { danfo, frameColumn } from '../../src/eval/frame';
import { metricMeans, metricSummary, perQueryColumns, perQueryMetrics, pooledAuc } from '../../src/eval/perQuery';
import { Rng } from '../../src/random';
import { throwsTda } from '../helpers/errors';
import { bruteAp, bruteAuc, close } from './reference';

function randomProblem(seed: number, nTest: number, nTrain: number) {
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: nTest * nTrain }, () => rng.int(4) + 0.5 * rng.int(2));
  const positives = Array.from({ length: nTest }, (_, q) => (q === 1 ? [] : [...new Set(Array.from({ length: 1 + rng.int(4) }, () => rng.int(nTrain)))]));
  return { scores: scoreMatrix(nTest, nTrain, data), positives };
}

describe('eval: per-query metrics of a score matrix', () => {
  it('returns a danfo DataFrame with one row per query and the expected columns and values', () => {
    const { scores, positives } = randomProblem(1, 6, 20);
    const df = perQueryMetrics(scores, positives, { k: 3 });
    assert.ok(df instanceof danfo().DataFrame);
    assert.deepEqual(df.columns, ['query', 'auc', 'ap', 'recall_at_k']);
    assert.deepEqual(df.shape, [6, 4]);
    assert.deepEqual(frameColumn(df, 'query'), [0, 1, 2, 3, 4, 5]);
    for (let q = 0; q < 6; q++) {
      const row = Array.from(scoreRow(scores, q));
      const mask = row.map((_, i) => positives[q].includes(i));
      assert.ok(close(frameColumn(df, 'auc')[q], bruteAuc(row, mask)), `auc ${q}`);
      assert.ok(close(frameColumn(df, 'ap')[q], bruteAp(row, mask)), `ap ${q}`);
      assert.ok(close(frameColumn(df, 'recall_at_k')[q], recallAtK(row, mask, 3)), `recall ${q}`);
    }
  });

  it('a query without positives gets NaN and is excluded from the means', () => {
    const { scores, positives } = randomProblem(2, 5, 12);
    const cols = perQueryColumns(scores, positives);
    assert.ok(Number.isNaN(cols.auc[1]) && Number.isNaN(cols.ap[1]) && Number.isNaN(cols.recall_at_k[1]));
    const df = perQueryMetrics(scores, positives);
    const means = metricMeans(df);
    assert.deepEqual(means.columns, ['metric', 'mean', 'n']);
    assert.deepEqual(means.column('metric').values, ['auc', 'ap', 'recall_at_k']);
    assert.deepEqual(frameColumn(means, 'n'), [4, 4, 4]);
    const others = [0, 2, 3, 4];
    const want = (xs: number[]) => others.reduce((a, q) => a + xs[q], 0) / others.length;
    assert.ok(close(frameColumn(means, 'mean')[0], want(cols.auc)));
    assert.ok(close(frameColumn(means, 'mean')[1], want(cols.ap)));
    assert.ok(close(frameColumn(means, 'mean')[2], want(cols.recall_at_k)));
  });

  it('default k is 10; k is capped at nTrain', () => {
    const { scores, positives } = randomProblem(3, 4, 30);
    const cols = perQueryColumns(scores, positives);
    for (const q of [0, 2, 3]) {
      const row = scoreRow(scores, q);
      const mask = Array.from(row, (_, i) => positives[q].includes(i));
      assert.equal(cols.recall_at_k[q], recallAtK(row, mask, 10));
      assert.equal(cols.auc[q], rocAuc(row, mask));
      assert.equal(cols.ap[q], averagePrecision(row, mask));
    }
    const capped = perQueryColumns(scores, positives, { k: 1000 });
    assert.deepEqual(capped.recall_at_k.filter((v) => !Number.isNaN(v)), [1, 1, 1]);
  });

  it('metricSummary adds seeded bootstrap intervals per metric', () => {
    const { scores, positives } = randomProblem(4, 30, 25);
    const df = perQueryMetrics(scores, positives);
    const s = metricSummary(df, { seed: 5 });
    assert.deepEqual(s.columns, ['metric', 'mean', 'lo', 'hi', 'n']);
    const ci = bootstrapMeanCI(frameColumn(df, 'ap'), { seed: 5 });
    assert.deepEqual([frameColumn(s, 'mean')[1], frameColumn(s, 'lo')[1], frameColumn(s, 'hi')[1], frameColumn(s, 'n')[1]], [ci.mean, ci.lo, ci.hi, 29]);
    assert.deepEqual(frameColumn(metricSummary(df, { seed: 5 }), 'lo'), frameColumn(s, 'lo'));
  });

  it('pooledAuc ranks all query x training pairs together', () => {
    const { scores, positives } = randomProblem(5, 7, 15);
    const mask = Array.from(scores.data, (_, j) => positives[Math.floor(j / 15)].includes(j % 15));
    assert.ok(close(pooledAuc(scores, positives), bruteAuc(scores.data, mask)));
    // Each row perfectly ranked, but query 1's scores are on a larger scale: per-query AUC 1, pooled < 1.
    const s = scoreMatrix(2, 3, Float32Array.from([1, 0, 0, 10, 5, 5]));
    assert.deepEqual(perQueryColumns(s, [[0], [0]]).auc, [1, 1]);
    assert.ok(pooledAuc(s, [[0], [0]]) < 1);
  });

  it('rejects bad ground truth and NaN scores, naming the query or position', () => {
    const s = scoreMatrix(2, 3, Float32Array.from([1, 2, 3, 4, 5, 6]));
    throwsTda(() => perQueryMetrics(s, [[0]]), "'positives'", '1 entries', '2 queries');
    throwsTda(() => perQueryMetrics(s, [[0], [3]]), "'positives[1]'", 'query 1', 'index 3', 'out of range');
    throwsTda(() => perQueryMetrics(s, [[0.5], [1]]), "'positives[0]'", 'query 0', 'not an integer');
    throwsTda(() => perQueryMetrics(s, [[0], [-1]]), "'positives[1]'", 'out of range');
    throwsTda(() => perQueryMetrics(s, [[0], [1]], { k: 0 }), "'k'");
    throwsTda(() => pooledAuc(s, [[0], 'x' as never]), "'positives[1]'");
    const nan = scoreMatrix(2, 3, Float32Array.from([1, 2, 3, 4, NaN, 6]));
    throwsTda(() => perQueryMetrics(nan, [[0], [1]]), "'scores'", 'NaN at [1, 1]');
    throwsTda(() => perQueryMetrics({ nTest: 2, nTrain: 3, data: new Float32Array(5) }, [[0], [1]]), "'scores'", '5 values');
  });
});
