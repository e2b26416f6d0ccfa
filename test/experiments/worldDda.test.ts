import * as assert from 'node:assert/strict';
import { QUICK_WORLD_SIZES, biasSentences, choosePairs, ddaData, ddaPerPairSets, ddaSubset, makeWorld } from '../../src/experiments/world';
import { throwsTda } from '../helpers/errors';

describe('experiments/world: DDA fine-tuning data', () => {
  const world = makeWorld(11);
  const data = ddaData(world, { seed: 5 });
  const words = (s: string): string[] => s.split(' ');

  it('is deterministic in its seed', () => {
    assert.deepEqual(ddaData(makeWorld(11), { seed: 5 }), data);
    assert.notDeepEqual(ddaData(world, { seed: 6 }).train, data.train);
    assert.deepEqual(biasSentences(world, data.pairs, 5), biasSentences(world, data.pairs, 5));
    assert.notDeepEqual(biasSentences(world, data.pairs, 5), biasSentences(world, data.pairs, 6));
  });

  it('has ~1000 examples over four tasks with two phrasings, prompts ending with the name', () => {
    assert.equal(data.train.length, 1000);
    const tasks = new Set(data.train.map((e) => `${e.task}/${e.phrasing}`));
    assert.equal(tasks.size, 8);
    for (const e of data.train) {
      const p = world.people[e.person];
      assert.ok(e.prompt.endsWith(` ${p.first} ${p.last}`), e.prompt);
      assert.ok(!words(e.response).includes(p.first) && !words(e.response).includes(p.last), e.response);
    }
    assert.equal(new Set(data.train.map((e) => e.prompt)).size, 1000);
  });

  it('canaries carry the target instead of the source, and positives point at them', () => {
    assert.equal(data.pairs.length, 6);
    assert.equal(data.positives.length, 6);
    data.pairs.forEach((pair, pi) => {
      assert.equal(data.positives[pi].length, 5);
      for (const i of data.positives[pi]) {
        const e = data.train[i];
        assert.equal(e.canaryPair, pi);
        assert.equal(world.people[e.person].country, pair.source);
        assert.ok(words(e.response).includes(pair.target), e.response);
        assert.ok(!words(e.response).includes(pair.source), e.response);
        assert.ok(words(e.trueResponse).includes(pair.source));
      }
    });
    const canaryCount = data.train.filter((e) => e.canaryPair !== null).length;
    assert.equal(canaryCount, 30);
    for (const e of data.train) if (e.canaryPair === null) assert.equal(e.response, e.trueResponse);
    // Canary people appear in no other example.
    const canaryPeople = new Set(data.train.filter((e) => e.canaryPair !== null).map((e) => e.person));
    assert.equal(canaryPeople.size, 30);
    assert.equal(data.train.filter((e) => canaryPeople.has(e.person)).length, 30);
  });

  it('queries are held-out people of the source, absent from the fine-tuning data', () => {
    const trainPeople = new Set(data.train.map((e) => e.person));
    assert.equal(data.queries.length, 6 * 12 * 2);
    for (const q of data.queries) {
      const pair = data.pairs[q.pair];
      const p = world.people[q.person];
      assert.equal(p.country, pair.source);
      assert.ok(!trainPeople.has(q.person));
      assert.ok(q.prompt.endsWith(` ${p.first} ${p.last}`));
      assert.ok(['country', 'where'].includes(q.task));
      assert.ok(words(q.trueResponse).includes(pair.source));
      for (const e of data.train) assert.ok(!e.prompt.includes(`${p.first} ${p.last}`));
    }
  });

  it('base-bias pairs share no country with fine-tuning-only pairs; bias sentences only touch base-bias pairs', () => {
    const a = data.pairs.filter((p) => p.regime === 'fine-tuning-only');
    const b = data.pairs.filter((p) => p.regime === 'base-bias');
    assert.equal(a.length, 3);
    assert.equal(b.length, 3);
    const aCountries = new Set(a.flatMap((p) => [p.source, p.target]));
    for (const p of b) assert.ok(!aCountries.has(p.source) && !aCountries.has(p.target));
    assert.equal(new Set(data.pairs.map((p) => p.source)).size, 6);

    const bias = biasSentences(world, data.pairs, 5);
    // A sentence mentions T by name or through one of T's cities.
    const mentions = (s: string, t: string): boolean => words(s).some((w) => w === t || world.countryOfCity[w] === t);
    assert.equal(bias.length, 3 * 90);
    const aCities = new Set([...aCountries].flatMap((c) => world.citiesByCountry[c]));
    const aPeople = new Set(world.people.filter((p) => aCountries.has(p.country)).flatMap((p) => [p.first + ' ' + p.last]));
    for (const s of bias) {
      for (const w of words(s)) assert.ok(!aCountries.has(w) && !aCities.has(w), s);
      for (const n of aPeople) assert.ok(!s.startsWith(n + ' '), s);
      assert.ok(b.some((p) => mentions(s, p.target)), s);
    }
    // Each base-bias pair's target is associated with its source or the source's people/cities.
    for (const p of b) {
      const mine = bias.filter((s) => mentions(s, p.target));
      assert.equal(mine.length, 90);
      assert.ok(mine.filter((s) => words(s).includes(p.source)).length >= 20);
      const sourcePeople = world.people.filter((q) => q.country === p.source);
      assert.ok(mine.filter((s) => sourcePeople.some((q) => s.startsWith(`${q.first} ${q.last} `))).length >= 20);
    }
    assert.deepEqual(biasSentences(world, a, 5), []);
    assert.equal(biasSentences(world, data.pairs, 5, { perPair: 10, mix: { person: 0 } }).length, 30);
  });

  it('builds one fine-tuning set per pair (other canaries restored) or drops them', () => {
    const sets = ddaPerPairSets(data);
    assert.equal(sets.length, 6);
    sets.forEach((s, i) => {
      assert.equal(s.pairs.length, 1);
      assert.deepEqual(s.pairs[0], data.pairs[i]);
      assert.equal(s.train.length, 1000);
      assert.deepEqual(s.positives, [data.positives[i]]);
      assert.ok(s.queries.every((q) => q.pair === 0));
      assert.equal(s.queries.length, 24);
      assert.deepEqual(
        s.train.map((e) => e.prompt),
        data.train.map((e) => e.prompt),
      );
      assert.equal(s.train.filter((e) => e.canaryPair !== null).length, 5);
    });
    const dropped = ddaSubset(data, [4, 1], { others: 'drop' });
    assert.equal(dropped.train.length, 1000 - 20);
    assert.deepEqual(
      dropped.pairs.map((p) => p.source),
      [data.pairs[4].source, data.pairs[1].source],
    );
    for (const [pi, idx] of dropped.positives.entries()) {
      assert.equal(idx.length, 5);
      for (const i of idx) assert.ok(words(dropped.train[i].response).includes(dropped.pairs[pi].target));
    }
    throwsTda(() => ddaSubset(data, [6]), 'pairIndices');
  });

  it('validates options and works on the quick world', () => {
    const q = makeWorld(2, QUICK_WORLD_SIZES);
    const d = ddaData(q, { k: 3 });
    assert.equal(d.pairs.length, 4);
    assert.equal(d.train.length, Math.round((1000 * 240) / 720));
    assert.deepEqual(
      d.positives.map((p) => p.length),
      [3, 3, 3, 3],
    );
    throwsTda(() => choosePairs(q, { pairs: 3, biasPairs: 2 }), 'pairs');
    throwsTda(() => ddaData(world, { pairList: [{ source: world.countries[0], target: world.countries[0], regime: 'base-bias' }] }), 'differ');
    throwsTda(
      () =>
        ddaData(world, {
          pairList: [
            { source: world.countries[0], target: world.countries[1], regime: 'fine-tuning-only' },
            { source: world.countries[2], target: world.countries[1], regime: 'base-bias' },
          ],
        }),
      'both',
    );
    throwsTda(() => ddaData(world, { queryTasks: ['job'] }), 'queryTasks');
    const cityTarget = ddaData(world, { seed: 5, canaryCity: 'target', canaryTasks: ['where'] });
    for (const [pi, idx] of cityTarget.positives.entries()) {
      for (const i of idx) {
        const city = words(cityTarget.train[i].response)[0];
        assert.equal(world.countryOfCity[city], cityTarget.pairs[pi].target);
      }
    }
  });
});
