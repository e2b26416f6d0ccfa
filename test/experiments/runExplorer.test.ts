/** Experiment results as explorer groups: ids, labels, known positives and column order. */
import * as assert from 'node:assert/strict';
import { ScoreMatrix } from '../../src/attribution/types';
import { ddaAttributionGroup, ifLlmAttributionGroup, lmd3AttributionGroup } from '../../src/experiments/runExplorer';
import { Lmd3Data } from '../../src/experiments/world';

const m = (nTest: number, nTrain: number): ScoreMatrix => ({ nTest, nTrain, data: new Float32Array(nTest * nTrain) });

describe('explorer groups of the experiments', () => {
  it('dda: variants then checkpoints, gradient methods before the baselines', () => {
    const s = m(1, 3);
    const g = ddaAttributionGroup({
      run: 2,
      pair: { source: 'S', target: 'T', regime: 'base-bias' },
      seed: 1,
      train: [0, 1, 2].map((i) => ({ prompt: `p${i}`, response: `r${i}` })),
      queries: [{ prompt: 'q', answer: 'T .' }],
      positives: [[1, 2]],
      variants: { bm25: { plain: s }, repSim: { plain: s, debias: s, denoise: s, DDA: s }, gradDot: { plain: s, debias: s, denoise: s, DDA: s }, tracinCP: { plain: s } },
      checkpoints: { repSim: [s, s], gradDot: [s, s] },
    });
    assert.equal(g.id, 'run-2');
    assert.match(g.name, /S -> T \(base-bias\), seed 1/);
    assert.deepEqual(g.queries, [{ prompt: 'q', answer: 'T .', label: 'hallucination', positives: [1, 2] }]);
    assert.deepEqual(
      g.columns.map((c) => `${c.method}/${c.view}`),
      ['gradDot/plain', 'tracinCP/plain', 'repSim/plain', 'bm25/plain', 'gradDot/debias', 'repSim/debias', 'gradDot/denoise', 'repSim/denoise', 'gradDot/DDA', 'repSim/DDA', 'gradDot/checkpoint 0', 'repSim/checkpoint 0', 'gradDot/checkpoint 1', 'repSim/checkpoint 1'],
    );
  });

  it('if-llm: one group per task, a folder-safe id, the class as label', () => {
    const g = ifLlmAttributionGroup({ task: 'class: profession', train: [{ prompt: 'a', response: 'b' }], queries: [{ prompt: 'q', answer: 'baker', label: 'baker' }], positives: [[0]], scores: { gradDot: m(1, 1), repSim: m(1, 1) } });
    assert.equal(g.id, 'class-profession');
    assert.equal(g.queries[0].label, 'baker');
    assert.deepEqual(g.columns.map((c) => c.method), ['gradDot', 'repSim']);
  });

  it("lmd3: a treated query's positives are its injected paraphrases", () => {
    const ex = (prompt: string) => ({ prompt, response: 'r', person: 0, task: 'country' as never });
    const data = {
      baseTrain: [ex('b0'), ex('b1')],
      treatedTrain: [ex('b0'), ex('b1'), ex('para of t1'), ex('para of t1 again'), ex('para of t0')],
      tests: [{ ...ex('t0'), treated: true }, { ...ex('t1'), treated: true }, { ...ex('t2'), treated: false }],
      paraphraseOf: [1, 1, 0],
    } as Lmd3Data;
    const g = lmd3AttributionGroup({ data, scores: m(3, 5) });
    assert.deepEqual(g.queries.map((q) => q.positives), [[4], [2, 3], []]);
    assert.deepEqual(g.queries.map((q) => q.label), ['treated', 'treated', 'control']);
    assert.equal(g.train.length, 5);
  });
});
