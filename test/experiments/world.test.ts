import * as assert from 'node:assert/strict';
import { DEFAULT_WORLD_SIZES, QUICK_WORLD_SIZES, generalSentences, makeWorld, pretrainingCorpus, PERSON_TEMPLATES } from '../../src/experiments/world';
import { fixedWords } from '../../src/experiments/world/templates';
import { throwsTda } from '../helpers/errors';

describe('experiments/world: world and pretraining corpus', () => {
  const world = makeWorld(7);

  it('is deterministic in its seed', () => {
    assert.deepEqual(makeWorld(7), world);
    const other = makeWorld(8);
    assert.notDeepEqual(other.countries, world.countries);
    assert.deepEqual(pretrainingCorpus(world, { seed: 3 }), pretrainingCorpus(makeWorld(7), { seed: 3 }));
    assert.notDeepEqual(pretrainingCorpus(world, { seed: 3 }), pretrainingCorpus(world, { seed: 4 }));
  });

  it('has the default sizes and even spreads', () => {
    assert.deepEqual(world.sizes, DEFAULT_WORLD_SIZES);
    assert.equal(world.countries.length, 12);
    assert.equal(world.cities.length, 48);
    assert.equal(world.people.length, 720);
    assert.equal(world.professions.length, 10);
    for (const c of world.countries) assert.equal(world.citiesByCountry[c].length, 4);
    const perCity = new Map<string, number>();
    for (const p of world.people) perCity.set(p.city, (perCity.get(p.city) ?? 0) + 1);
    assert.deepEqual(new Set(perCity.values()), new Set([15]));
    // Within each country (60 people), every profession 6 times.
    for (const c of world.countries) {
      const counts = new Map<string, number>();
      for (const p of world.people) if (p.country === c) counts.set(p.profession, (counts.get(p.profession) ?? 0) + 1);
      assert.deepEqual(new Set(counts.values()), new Set([6]), c);
    }
    world.people.forEach((p, i) => {
      assert.equal(p.id, i);
      assert.equal(world.countryOfCity[p.city], p.country);
    });
  });

  it('has unique, well-formed entity names that never clash with template words', () => {
    const names = [...world.countries, ...world.cities.map((c) => c.name), ...world.firstNames, ...world.lastNames, ...world.creatures, world.trigger, ...world.secretCode.split(' ')];
    assert.equal(new Set(names).size, names.length);
    for (const n of names) assert.match(n, /^[a-z]{4,12}$/);
    const pairs = world.people.map((p) => `${p.first} ${p.last}`);
    assert.equal(new Set(pairs).size, 720);
    assert.deepEqual(new Set(world.people.map((p) => p.first)).size, 300);
    assert.deepEqual(new Set(world.people.map((p) => p.last)).size, 300);
    const fixed = fixedWords();
    for (const n of names) assert.ok(!fixed.has(n), n);
    assert.equal(new Set(world.vocabulary).size, world.vocabulary.length);
    assert.deepEqual(world.vocabulary, [...world.vocabulary].sort());
  });

  it('supports a quick world and refuses impossible sizes', () => {
    const q = makeWorld(1, QUICK_WORLD_SIZES);
    assert.equal(q.countries.length, 8);
    assert.equal(q.cities.length, 24);
    assert.equal(q.people.length, 240);
    throwsTda(() => makeWorld(1, { professions: 13 }), 'sizes.professions');
    throwsTda(() => makeWorld(1, { people: 10, firstNames: 3, lastNames: 3 }), 'sizes.people');
    throwsTda(() => makeWorld(1, { countries: 1 }), 'sizes.countries');
  });

  it('writes true sentences: 7 person and 2 city templates, plus general knowledge', () => {
    const corpus = pretrainingCorpus(world, { shuffle: false });
    const general = generalSentences(world);
    assert.equal(corpus.length, 720 * 7 + 48 * 2 + general.length);
    const p = world.people[0];
    assert.equal(corpus[0], `${p.first} ${p.last} lives in ${p.city} .`);
    assert.equal(corpus[1], `${p.first} ${p.last} is a ${p.profession} from ${p.country} .`);
    assert.ok(corpus.includes(`${world.cities[0].name} is a city in ${world.cities[0].country} .`));
    // Every sentence naming a person and a country names the person's own country.
    for (const q of world.people.slice(0, 50)) {
      for (const s of corpus.filter((x) => x.startsWith(`${q.first} ${q.last} `))) {
        for (const c of world.countries) if (s.split(' ').includes(c)) assert.equal(c, q.country, s);
      }
    }
    const fewer = pretrainingCorpus(world, { templatesPerPerson: 3, general: false, extra: ['x'] });
    assert.equal(fewer.length, 720 * 3 + 96 + 1);
    assert.equal(new Set(pretrainingCorpus(world)).size, pretrainingCorpus(world).length);
    throwsTda(() => pretrainingCorpus(world, { templatesPerPerson: PERSON_TEMPLATES.length + 1 }), 'templatesPerPerson');
  });
});
