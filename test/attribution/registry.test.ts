import * as assert from 'node:assert/strict';
import { createGradientAttributor, createScorer, methodByName, METHODS } from '../../src/attribution/registry';
import { parseOption, resolveOptions } from '../../src/attribution/method';
import { DataInf } from '../../src/attribution/dataInf';
import { blockDamping } from '../../src/attribution/damping';
import { inMemorySource } from '../../src/gradients/types';
import { throwsTda } from '../helpers/errors';
import { randomGradients } from './helpers';

describe('attribution/registry: one descriptor per method', () => {
  it('names are unique; each method builds with its defaults and reports its own name in its settings', () => {
    assert.equal(new Set(METHODS.map((m) => m.name)).size, METHODS.length);
    for (const m of METHODS) {
      const scorer = createScorer(m.name);
      assert.equal(scorer.settings().method, m.name, m.name);
      for (const o of m.options) if (o.default !== undefined) assert.equal(scorer.settings()[o.key], o.default, `${m.name} ${o.key}`);
    }
  });

  it('options are checked against the descriptor: unknown ones, wrong types and out-of-range values are refused, naming the flag', () => {
    throwsTda(() => createScorer('nope'), 'unknown method', 'gradDot');
    throwsTda(() => createScorer('gradDot', { iterations: 5 }), '--iterations', 'gradDot does not take this option');
    throwsTda(() => createScorer('lissa', { iterations: 0 }), '--iterations', '>= 1');
    throwsTda(() => createScorer('lissa', { iterations: 2.5 }), '--iterations', 'whole number');
    throwsTda(() => createScorer('dataInf', { dampingScale: 0 }), '--damping-scale', '> 0');
    throwsTda(() => createScorer('repSim', { kind: 'l2' }), '--kind', 'cosine, dot');
    throwsTda(() => createGradientAttributor('bm25'), 'scores from texts');
    const density = methodByName('density');
    assert.equal(parseOption(density.options[0], '0.5', 'density'), 0.5);
    assert.equal(parseOption(density.options[0], 'silverman', 'density'), 'silverman');
    throwsTda(() => parseOption(density.options[0], '-1', 'density'), 'scott, silverman or a positive number');
    assert.deepEqual(resolveOptions(methodByName('lissa'), { iterations: '7' }), {
      dampingScale: 0.1,
      workers: undefined,
      tolerance: 1e-3,
      maxIterations: undefined,
      unconverged: 'warn',
      iterations: 7,
      seed: 0,
    });
    throwsTda(() => createScorer('cg', { tolerance: 0 }), '--tolerance', '> 0');
    throwsTda(() => createScorer('cg', { unconverged: 'ignore' }), '--unconverged', 'warn, fail');
    throwsTda(() => createScorer('lissa', { iterations: 5, maxIterations: 10 }), "'maxIterations'", 'not both');
  });

  it("a damped method's settings after cache() hold the damping it used for each block", () => {
    const train = randomGradients(12, [[2, 3], [3, 2]], 3);
    const m = createGradientAttributor('dataInf', { dampingScale: 0.3 });
    assert.ok(m instanceof DataInf);
    m.cache(inMemorySource(train));
    const want = blockDamping(inMemorySource(train), { dampingScale: 0.3 });
    assert.deepEqual(m.settings().damping, Object.fromEntries(train.blocks.map((b, l) => [b.name, want[l]])));
  });
});
