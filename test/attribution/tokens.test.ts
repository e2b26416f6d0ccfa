import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { TokenSequence } from '../../src/data/batch';
import { computeLoraGradients } from '../../src/gradients/compute';
import { computeTokenGradients, meanOfTokens, TokenGradients } from '../../src/gradients/perToken';
import { GradientSet, inMemorySource, sliceExamples } from '../../src/gradients/types';
import { createScorer } from '../../src/attribution/registry';
import { QueryTokens, TOKEN_METHODS, tokenScorer } from '../../src/attribution/tokens';
import { Scorer } from '../../src/attribution/method';
import { GradientAttributor } from '../../src/attribution/gradientAttributor';
import { LoraAdapter, loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { Rng } from '../../src/random';
import { FIXTURE_DIR, fixtureSequences, relativeL2 } from '../helpers/fixtures';
import { throwsTda } from '../helpers/errors';

/** Fixture sequences plus seeded random ones over the fixture's vocabulary (97). */
function sequences(n: number, seed: number): TokenSequence[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const len = 6 + rng.int(6);
    return { inputIds: [1, ...Array.from({ length: len - 1 }, () => 3 + rng.int(90))], promptLength: 2 + rng.int(3) };
  });
}

/** Block rows as float64 arrays, concatenated over blocks. */
function flat(set: GradientSet, i: number): number[] {
  return set.blocks.flatMap((b) => Array.from(b.data.subarray(i * b.dim, (i + 1) * b.dim)));
}
const dot = (a: number[], b: number[]) => a.reduce((s, x, j) => s + x * b[j], 0);

/**
 * Brute force: token t's loss term alone is the loss of the prefix ending at t with every
 * earlier token as prompt (the model is causal), so its gradient is that prefix's
 * per-example gradient, computed by the ordinary per-example path.
 */
async function prefixGradients(model: LlamaModel, adapter: LoraAdapter, seq: TokenSequence, positions: number[]): Promise<GradientSet> {
  const prefixes = positions.map((t) => ({ inputIds: seq.inputIds.slice(0, t + 1), promptLength: t }));
  return computeLoraGradients(model, adapter, prefixes, { mask: 'response', batchSize: 3, workers: 0 });
}

/** DataInf's T(g) transcribed from the paper per block: (g - (1/n) sum_i g_i (g_i . g) / (lambda + |g_i|^2)) / lambda. */
function dataInfVector(train: GradientSet, g: number[]): number[] {
  const out: number[] = [];
  let offset = 0;
  for (const b of train.blocks) {
    const v = g.slice(offset, offset + b.dim);
    offset += b.dim;
    const rows = Array.from({ length: train.n }, (_, i) => Array.from(b.data.subarray(i * b.dim, (i + 1) * b.dim)));
    const lambda = (0.1 * rows.flat().reduce((s, x) => s + x * x, 0)) / (train.n * b.dim);
    const acc = new Array(b.dim).fill(0);
    for (const gi of rows) {
      const w = dot(gi, v) / (lambda + dot(gi, gi)) / train.n;
      gi.forEach((x, j) => (acc[j] += w * x));
    }
    out.push(...v.map((x, j) => (x - acc[j]) / lambda));
  }
  return out;
}

describe('per-token attribution on the reference fixture model', function () {
  this.timeout(300000);
  let model: LlamaModel;
  let adapter: LoraAdapter;
  const trainSeqs = [...fixtureSequences(), ...sequences(5, 11)];
  const querySeqs = sequences(2, 23);
  let train: GradientSet;
  let queries: GradientSet;
  const trainTokens: TokenGradients[] = [];
  const queryTokens: TokenGradients[] = [];

  before(async () => {
    model = LlamaModel.load(FIXTURE_DIR);
    adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
    train = await computeLoraGradients(model, adapter, trainSeqs, { batchSize: 4, workers: 0 });
    queries = await computeLoraGradients(model, adapter, querySeqs, { batchSize: 4, workers: 0 });
    for (const s of trainSeqs) trainTokens.push(computeTokenGradients(model, adapter, s, { batchSize: 3 }));
    for (const s of querySeqs) queryTokens.push(computeTokenGradients(model, adapter, s, { batchSize: 3 }));
  });
  after(() => model.dispose());

  it('gives each counted token the gradient of its own loss term (prefix gradients), averaging to the example gradient', async () => {
    for (const [i, s] of trainSeqs.entries()) {
      const tg = trainTokens[i];
      assert.equal(tg.count, s.inputIds.length - s.promptLength);
      assert.deepEqual(tg.positions, Array.from({ length: tg.count }, (_, k) => s.promptLength + k));
      const brute = await prefixGradients(model, adapter, s, tg.positions);
      tg.gradients.blocks.forEach((b, l) => assert.ok(relativeL2(b.data, brute.blocks[l].data) < 1e-4, `example ${i} ${b.name}: ${relativeL2(b.data, brute.blocks[l].data)}`));
      tg.gradients.losses.forEach((v, t) => assert.ok(Math.abs(v - brute.losses![t]) < 1e-5 * Math.max(1, Math.abs(v))));
      const mean = meanOfTokens(tg);
      mean.blocks.forEach((b, l) => assert.ok(relativeL2(b.data, sliceExamples(train, i, i + 1).blocks[l].data) < 1e-5, `mean of tokens, example ${i} ${b.name}`));
    }
  });

  it('the "full" mask counts every token after the first', () => {
    const s = trainSeqs[0];
    const tg = computeTokenGradients(model, adapter, s, { mask: 'full' });
    assert.deepEqual(tg.positions, Array.from({ length: s.inputIds.length - 1 }, (_, k) => k + 1));
  });

  /**
   * gradDot, gradCos and dataInf: within 1e-5 of |score|. lissa, exact and kronGrad apply a
   * badly conditioned inverse, so their float32 scores are sums of terms up to ~1,000x the
   * score itself, and the scorer's own result carries that cancellation (the same pair's dot
   * product summed in float64 differs from it by up to 2e-4 relative here): for them the 1e-5 is relative to
   * the size of the terms summed, sum_t |contribution_t|.
   */
  const STRICT = ['gradDot', 'gradCos', 'dataInf'];
  for (const name of TOKEN_METHODS) {
    it(`${name}: both sides sum to the pair's score from the scorer (1e-5 relative${STRICT.includes(name) ? '' : ' to the terms'})`, () => {
      const scorer = createScorer(name) as Scorer<unknown, GradientSet>;
      scorer.cache(inMemorySource(train));
      const scores = scorer.attribute(queries);
      let worst = 0;
      for (let q = 0; q < queries.n; q++) {
        const prepared = QueryTokens.prepare(scorer, sliceExamples(queries, q, q + 1), queryTokens[q]);
        for (let i = 0; i < train.n; i++) {
          const s = scores.data[q * train.n + i];
          const p = prepared.pair(sliceExamples(train, i, i + 1), trainTokens[i]);
          assert.equal(p.train.contributions.length, trainTokens[i].count);
          assert.equal(p.query.contributions.length, queryTokens[q].count);
          const terms = Math.max(...[p.train, p.query].map((side) => side.contributions.reduce((a, c) => a + Math.abs(c), 0)));
          const scale = STRICT.includes(name) ? Math.abs(s) : terms;
          for (const sum of [p.train.sum, p.query.sum, p.score]) worst = Math.max(worst, Math.abs(sum - s) / scale);
        }
      }
      assert.ok(worst < 1e-5, `${name}: worst relative difference ${worst}`);
    });
  }

  it("gradDot and dataInf: each token's contribution equals a brute-force computation from prefix gradients", async () => {
    const dataInf = createScorer('dataInf') as GradientAttributor;
    dataInf.cache(inMemorySource(train));
    const gradDot = createScorer('gradDot') as GradientAttributor;
    gradDot.cache(inMemorySource(train));
    for (let q = 0; q < queries.n; q++) {
      const gq = flat(queries, q);
      const qPrefix = await prefixGradients(model, adapter, querySeqs[q], queryTokens[q].positions);
      const countQ = queryTokens[q].count;
      for (const i of [0, 3, 7]) {
        const gi = flat(train, i);
        const iPrefix = await prefixGradients(model, adapter, trainSeqs[i], trainTokens[i].positions);
        const countI = trainTokens[i].count;
        for (const [scorer, T] of [
          [gradDot, (g: number[]) => g],
          [dataInf, (g: number[]) => dataInfVector(train, g)],
        ] as const) {
          const p = QueryTokens.prepare(scorer, sliceExamples(queries, q, q + 1), queryTokens[q]).pair(sliceExamples(train, i, i + 1), trainTokens[i]);
          const vq = T(gq);
          const wantTrain = Array.from({ length: countI }, (_, t) => dot(vq, flat(iPrefix, t)) / countI);
          const wantQuery = Array.from({ length: countQ }, (_, t) => dot(T(flat(qPrefix, t)), gi) / countQ);
          for (const [got, want] of [
            [p.train.contributions, wantTrain],
            [p.query.contributions, wantQuery],
          ] as const) {
            const scale = Math.max(...want.map(Math.abs));
            want.forEach((w, t) => assert.ok(Math.abs(got[t] - w) <= 1e-3 * scale, `${scorer.name} q${q} i${i} token ${t}: ${got[t]} vs ${w}`));
          }
        }
      }
    }
  });

  it('gradCos splits the cosine with the pair norms held fixed', () => {
    const scorer = createScorer('gradCos') as GradientAttributor;
    scorer.cache(inMemorySource(train));
    const q = 1;
    const i = 4;
    const p = QueryTokens.prepare(scorer, sliceExamples(queries, q, q + 1), queryTokens[q]).pair(sliceExamples(train, i, i + 1), trainTokens[i]);
    const gq = flat(queries, q);
    const gi = flat(train, i);
    const norms = Math.sqrt(dot(gq, gq)) * Math.sqrt(dot(gi, gi));
    const tg = trainTokens[i];
    tg.positions.forEach((_, t) => {
      const want = dot(gq, flat(tg.gradients, t)) / tg.count / norms;
      assert.ok(Math.abs(p.train.contributions[t] - want) < 1e-4 * Math.abs(p.score), `token ${t}`);
    });
  });

  it('refuses a method without per-token attribution, and a set of more than one example, in one line', () => {
    const e = throwsTda(() => tokenScorer(createScorer('bm25')), "'bm25' has no per-token attribution", 'dataInf', "'method'");
    assert.ok(!e.message.includes('\n'));
    const scorer = createScorer('gradDot');
    scorer.cache(inMemorySource(train));
    throwsTda(() => QueryTokens.prepare(scorer, queries, queryTokens[0]), 'one example', "'query'");
  });
});
