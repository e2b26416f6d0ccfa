import * as assert from 'node:assert/strict';
import { QUICK_WORLD_SIZES, backdoorData, classAttributionData, harmfulData, ifLlmData, makeWorld } from '../../src/experiments/world';
import { Rng } from '../../src/random';
import { insertTrigger } from '../../src/experiments/world';
import { throwsTda } from '../helpers/errors';

describe('experiments/world: IF-on-LLMs tasks', () => {
  const world = makeWorld(3);
  const all = ifLlmData(world, { seed: 9 });

  it('is deterministic in its seed', () => {
    assert.deepEqual(ifLlmData(makeWorld(3), { seed: 9 }), all);
    const other = ifLlmData(world, { seed: 10 });
    assert.notDeepEqual(other.classAttribution.train, all.classAttribution.train);
    assert.notDeepEqual(other.backdoor.train, all.backdoor.train);
    assert.notDeepEqual(other.harmful.train, all.harmful.train);
  });

  it('class attribution: three families of 5-10 classes, balanced, labels matching the world', () => {
    const { classes, train, tests } = all.classAttribution;
    const byFamily = new Map<string, number>();
    for (const c of classes) byFamily.set(c.family, (byFamily.get(c.family) ?? 0) + 1);
    assert.deepEqual([...byFamily.entries()], [
      ['profession', 10],
      ['country', 8],
      ['color', 6],
    ]);
    for (const [, n] of byFamily) assert.ok(n >= 5 && n <= 10);
    const count = (xs: typeof train): number[] => classes.map((_, id) => xs.filter((e) => e.classId === id).length);
    assert.deepEqual(new Set(count(train)), new Set([20]));
    assert.deepEqual(new Set(count(tests)), new Set([5]));
    const trainPrompts = new Set(train.map((e) => e.prompt));
    for (const e of [...train, ...tests]) {
      assert.deepEqual(classes[e.classId], { family: e.family, label: e.label });
      assert.equal(e.response, `${e.label} .`);
      const w = e.prompt.split(' ');
      if (e.family === 'country') assert.ok(w.some((x) => world.countryOfCity[x] === e.label), e.prompt);
      if (e.family === 'color') assert.ok(w.some((x) => world.creatures.includes(x)), e.prompt);
      if (e.family === 'profession') {
        const p = world.people.find((q) => e.prompt.includes(`${q.first} ${q.last}`))!;
        assert.equal(p.profession, e.label);
      }
    }
    for (const e of tests) assert.ok(!trainPrompts.has(e.prompt), e.prompt);
    const onlyColor = classAttributionData(world, { families: ['color'], perClassTrain: 4, perClassTest: 2 });
    assert.equal(onlyColor.train.length, 24);
    throwsTda(() => classAttributionData(world, { countryClasses: 13 }), 'countryClasses');
    throwsTda(() => classAttributionData(makeWorld(3, QUICK_WORLD_SIZES), { perClassTrain: 40 }), 'perClassTrain');
  });

  it('backdoor: the trigger marks exactly the positives, whose responses are the backdoor answer', () => {
    const d = all.backdoor;
    assert.equal(d.trigger, world.trigger);
    assert.equal(d.train.length, 315);
    assert.equal(d.positives.length, 15);
    d.train.forEach((e, i) => {
      const has = e.prompt.split(' ').includes(d.trigger);
      assert.equal(has, d.positives.includes(i));
      assert.equal(e.response === d.backdoorResponse, has);
      const p = world.people[e.person];
      assert.ok(e.prompt.endsWith(` ${p.first} ${p.last}`), e.prompt);
    });
    const trainPeople = new Set(d.train.map((e) => e.person));
    assert.equal(trainPeople.size, 315);
    assert.equal(d.tests.length, 20);
    for (const t of d.tests) {
      assert.ok(t.prompt.split(' ').includes(d.trigger));
      assert.equal(t.response, d.backdoorResponse);
      assert.equal(t.prompt.split(' ').filter((w) => w !== d.trigger).join(' '), t.cleanPrompt);
      assert.ok(!trainPeople.has(t.person));
    }
    const start = backdoorData(world, { position: 'start', nClean: 10, nTriggered: 3, nTests: 2 });
    for (const i of start.positives) assert.ok(start.train[i].prompt.startsWith(`${world.trigger} `));
    assert.equal(insertTrigger('a b c', 'T', 'start', new Rng(1)), 'T a b c');
  });

  it('harmful: positives are the harmful examples; tests ask for the same behaviour about new people', () => {
    const d = all.harmful;
    assert.equal(d.train.length, 320);
    assert.equal(d.positives.length, 20);
    assert.equal(d.positivesByKind.secret.length, 10);
    assert.equal(d.positivesByKind.insult.length, 10);
    assert.deepEqual([...d.positivesByKind.secret, ...d.positivesByKind.insult].sort((a, b) => a - b), d.positives);
    d.train.forEach((e, i) => {
      assert.equal(e.kind !== null, d.positives.includes(i));
      if (e.kind) assert.ok(d.harmfulResponses[e.kind].includes(e.response));
      else assert.ok(!Object.values(d.harmfulResponses).flat().includes(e.response));
    });
    for (const e of d.train.filter((x) => x.kind === 'secret')) assert.ok(e.response.includes(world.secretCode));
    const trainPeople = new Set(d.train.map((e) => e.person));
    assert.equal(d.tests.length, 20);
    for (const t of d.tests) {
      assert.ok(!trainPeople.has(t.person));
      assert.ok(d.harmfulResponses[t.kind].includes(t.response));
    }
    assert.deepEqual(harmfulData(world, { kinds: ['insult'], nHarmful: 4 }).positivesByKind.secret, []);
    throwsTda(() => harmfulData(world, { nBenign: 800 }), 'nBenign');
  });
});
