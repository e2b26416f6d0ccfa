import * as assert from 'node:assert/strict';
import { LMD3_TEMPLATES, lmd3Data, makeWorld } from '../../src/experiments/world';
import { throwsTda } from '../helpers/errors';

describe('experiments/world: LMD3 data', () => {
  const world = makeWorld(4);
  const data = lmd3Data(world, { seed: 2 });

  it('is deterministic in its seed', () => {
    assert.deepEqual(lmd3Data(makeWorld(4), { seed: 2 }), data);
    assert.notDeepEqual(lmd3Data(world, { seed: 3 }).tests, data.tests);
  });

  it('has a base set, tests on other people, and half of them treated', () => {
    assert.equal(data.baseTrain.length, 600);
    assert.equal(data.tests.length, 100);
    assert.equal(data.tests.filter((t) => t.treated).length, 50);
    const basePeople = new Set(data.baseTrain.map((e) => e.person));
    for (const t of data.tests) {
      assert.ok(!basePeople.has(t.person));
      assert.equal(t.prompt.replace(`${world.people[t.person].first} ${world.people[t.person].last}`, '{first} {last}'), LMD3_TEMPLATES[t.task].canonical);
    }
    assert.deepEqual(data.treatedTrain.slice(0, 600), data.baseTrain);
    assert.equal(data.treatedTrain.length, 600 + 50 * 3);
    assert.equal(data.paraphraseOf.length, 150);
  });

  it('paraphrases differ from the test question but keep its answer; controls get none', () => {
    for (const diversity of ['low', 'high'] as const) {
      const d = diversity === 'high' ? data : lmd3Data(world, { seed: 2, diversity, k: 3 });
      const injected = d.treatedTrain.slice(d.baseTrain.length);
      const perTest = new Map<number, string[]>();
      injected.forEach((e, j) => {
        const t = d.tests[d.paraphraseOf[j]];
        assert.ok(t.treated);
        assert.equal(e.person, t.person);
        assert.equal(e.response, t.response);
        assert.notEqual(e.prompt, t.prompt);
        perTest.set(d.paraphraseOf[j], [...(perTest.get(d.paraphraseOf[j]) ?? []), e.prompt]);
      });
      assert.equal(perTest.size, d.tests.filter((t) => t.treated).length);
      for (const prompts of perTest.values()) assert.equal(new Set(prompts).size, prompts.length, diversity);
      if (diversity === 'low') {
        // Low diversity keeps the word order: the name stays at the end.
        for (const e of injected) assert.ok(e.prompt.endsWith(`${world.people[e.person].first} ${world.people[e.person].last}`));
      }
    }
    // More paraphrases than phrasings: they repeat in turn.
    const many = lmd3Data(world, { seed: 2, diversity: 'low', k: 7 });
    const first = many.treatedTrain.slice(many.baseTrain.length, many.baseTrain.length + 7).map((e) => e.prompt);
    assert.equal(new Set(first).size, 3);
    assert.equal(first[3], first[0]);
    const exact = lmd3Data(world, { seed: 2, diversity: 'exact', k: 2, treatedFraction: 0.2 });
    exact.paraphraseOf.forEach((ti, j) => assert.equal(exact.treatedTrain[exact.baseTrain.length + j].prompt, exact.tests[ti].prompt));
    assert.equal(exact.tests.filter((t) => t.treated).length, 20);
    throwsTda(() => lmd3Data(world, { treatedFraction: 1.5 }), 'treatedFraction');
    throwsTda(() => lmd3Data(world, { nTrain: 5000 }), 'nTrain');
  });
});
