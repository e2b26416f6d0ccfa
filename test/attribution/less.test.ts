import * as assert from 'node:assert/strict';
import { Less } from '../../src/attribution/less';
import { createScorer } from '../../src/attribution/registry';
import { ScoreMatrix } from '../../src/attribution/types';
import { OptimizerCheckpoint } from '../../src/attribution/optimizerCheckpoint';
import { GradientSet, inMemorySource } from '../../src/gradients/types';
import { throwsTda } from '../helpers/errors';
import { randomGradients } from './helpers';
import { chunkedSource, dot, projectConcatenated, randomState, unit } from './optimizerReference';

const SHAPES = [
  [2, 3],
  [4, 2],
];

/** Three checkpoints of 7 training and 3 test examples with nonzero moments and unequal learning rates. */
function problem() {
  const lrs = [0.03, 0.02, 0.005];
  const train = lrs.map((_, c) => randomGradients(7, SHAPES, 1 + c));
  const test = lrs.map((_, c) => randomGradients(3, SHAPES, 11 + c));
  const states = lrs.map((lr, c) => randomState(train[c], 21 + c, lr, 10 * (c + 1)));
  return { lrs, train, test, states };
}

/** LESS written out from its formula in float64. */
function lessReference(train: GradientSet[], test: GradientSet[], states: ReturnType<typeof randomState>[], lrs: number[], k: number, seed: number): number[][] {
  const spec = { kind: 'rademacher' as const, dim: k, seed };
  const total = lrs.reduce((a, b) => a + b, 0);
  const out = Array.from({ length: test[0].n }, () => new Array<number>(train[0].n).fill(0));
  train.forEach((tr, c) => {
    const { beta1, beta2, eps, moments } = states[c];
    const gamma = (l: number, j: number, g: number) => {
      const m = beta1 * moments[l].expAvg[j] + (1 - beta1) * g;
      const v = beta2 * moments[l].expAvgSq[j] + (1 - beta2) * g * g;
      return m / (Math.sqrt(v) + eps);
    };
    const trainVecs = Array.from({ length: tr.n }, (_, i) => unit(projectConcatenated(tr, i, spec, gamma)));
    const testVecs = Array.from({ length: test[c].n }, (_, q) => unit(projectConcatenated(test[c], q, spec, (_l, _j, g) => g)));
    testVecs.forEach((tq, q) => trainVecs.forEach((ti, i) => (out[q][i] += (lrs[c] / total) * dot(tq, ti))));
  });
  return out;
}

function assertClose(got: ScoreMatrix, want: number[][], tol: number, what: string): void {
  assert.equal(got.nTest, want.length);
  assert.equal(got.nTrain, want[0].length);
  want.forEach((row, q) => row.forEach((w, i) => assert.ok(Math.abs(got.data[q * got.nTrain + i] - w) < tol, `${what} [${q}, ${i}]: ${got.data[q * got.nTrain + i]} vs ${w}`)));
}

describe('attribution/less: LESS against a direct transcription', () => {
  it('equals the float64 transcription over three checkpoints with nonzero moments (training side streamed in chunks)', () => {
    const { lrs, train, test, states } = problem();
    for (const k of [6, 40]) {
      const less = new Less({ projectionDim: k, projectionSeed: 3, workers: 0 });
      less.cache(train.map((t, c) => ({ train: chunkedSource(t, 3), optimizer: states[c] })));
      const got = less.attribute(test);
      assertClose(got, lessReference(train, test, states, lrs, k, 3), 2e-5, `k=${k}`);
      // Unit vectors and weights summing to 1: every score is a convex mix of cosines.
      assert.ok(got.data.every((s) => Math.abs(s) <= 1 + 1e-6));
      const settings = less.settings();
      assert.deepEqual(
        (settings.checkpoints as { step: number; learningRate: number }[]).map((c) => [c.step, c.learningRate]),
        [
          [10, 0.03],
          [20, 0.02],
          [30, 0.005],
        ],
      );
      assert.ok(Math.abs((settings.checkpoints as { weight: number }[]).reduce((a, c) => a + c.weight, 0) - 1) < 1e-12);
    }
  });

  it('learning rates weight the checkpoints relative to each other: given ones override the state, a common factor changes nothing, a zero drops a checkpoint', () => {
    const { train, test, states } = problem();
    const run = (lrs: (number | undefined)[], pick = [0, 1, 2]) => {
      const less = new Less({ projectionDim: 8, projectionSeed: 1, workers: 0 });
      less.cache(pick.map((c, k) => ({ train: inMemorySource(train[c]), optimizer: states[c], learningRate: lrs[k] })));
      return less.attribute(pick.map((c) => test[c]));
    };
    const given = run([1, 2, 3]);
    assertClose(given, lessReference(train, test, states, [1, 2, 3], 8, 1), 2e-5, 'given rates');
    assertClose(run([10, 20, 30]), toRows(given), 1e-6, 'scaled rates');
    assertClose(run([5, 0, 0]), toRows(run([undefined], [0])), 1e-6, 'zero rates');
    // The state's own rates (0.03, 0.02, 0.005) differ from 1:2:3, so the scores do too.
    const own = run([undefined, undefined, undefined]);
    assert.ok(own.data.some((s, j) => Math.abs(s - given.data[j]) > 1e-3));
  });

  it('is a registry method: createScorer builds it with its options, and the default settings are reported', () => {
    const { lrs, train, test, states } = problem();
    const scorer = createScorer('less', { projectionDim: 6, projectionSeed: 3, workers: 0 });
    scorer.cache(train.map((t, c) => ({ train: inMemorySource(t), optimizer: states[c] })));
    assertClose(scorer.attribute(test), lessReference(train, test, states, lrs, 6, 3), 2e-5, 'registry');
    const d = createScorer('less').settings();
    assert.equal(d.projectionDim, 8192);
    assert.equal(d.projectionSeed, 0);
  });

  it('refuses bad input, naming the field', () => {
    const { train, test, states } = problem();
    const cps = (): OptimizerCheckpoint[] => train.map((t, c) => ({ train: inMemorySource(t), optimizer: states[c] }));
    const less = () => new Less({ projectionDim: 4, workers: 0 });
    throwsTda(() => less().attribute(test), 'cache(checkpoints)');
    throwsTda(() => less().cache([]), 'at least one checkpoint');
    throwsTda(() => new Less({ projectionDim: 0 }), "'projectionDim'");
    const l = less();
    l.cache(cps());
    throwsTda(() => l.attribute(test.slice(0, 2)), 'each of the 3 checkpoints', "'test'");
    throwsTda(() => l.attribute([test[0], test[1], randomGradients(2, SHAPES, 9)]), 'checkpoint 2 has 2 queries');
    throwsTda(() => l.attribute([test[0], test[1], randomGradients(3, [[2, 3]], 9)]), 'test gradients have blocks');
    throwsTda(() => less().cache(cps().map((c, k) => ({ ...c, learningRate: k === 1 ? -1 : c.learningRate }))), 'checkpoint 1 learning rate', "'learningRate'");
    throwsTda(() => less().cache(cps().map((c) => ({ ...c, learningRate: 0 }))), 'sum to 0');
    throwsTda(() => less().cache([cps()[0], { ...cps()[1], train: inMemorySource(randomGradients(6, SHAPES, 2)) }]), 'checkpoint 1 has 6 training examples');
    // Moments of another adapter (other keys), or gradients that are not the adapter tensors (projected).
    const renamed = { ...states[0], moments: states[0].moments.map((m) => ({ ...m, key: `${m.key}.other` })) };
    throwsTda(() => less().cache([{ train: inMemorySource(train[0]), optimizer: renamed }]), "'block0'", 'no moments');
    const projected: GradientSet = { n: 7, blocks: train[0].blocks.map((b) => ({ ...b, shape: [2], dim: 2, data: b.data.slice(0, 14) })) };
    throwsTda(() => less().cache([{ train: inMemorySource(projected), optimizer: states[0] }]), "'block0'", 'act elementwise');
    const nan = randomGradients(7, SHAPES, 1);
    nan.blocks[1].data[5] = NaN;
    throwsTda(() => less().cache([{ train: inMemorySource(nan), optimizer: states[0] }]), "'block1'", 'NaN');
  });
});

function toRows(s: ScoreMatrix): number[][] {
  return Array.from({ length: s.nTest }, (_, q) => Array.from(s.data.subarray(q * s.nTrain, (q + 1) * s.nTrain)));
}
