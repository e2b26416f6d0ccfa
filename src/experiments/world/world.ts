/**
 * A synthetic world of made-up countries, cities and people, the ground truth every generated
 * text is true (or deliberately false) about. `makeWorld(seed)` is deterministic: the same seed
 * gives the same world.
 *
 * Default: 12 countries x 4 cities, 720 people (unique first+last name pairs, 300 first and
 * 300 last names, so a person is identified by both words), 10 professions, plus the extra
 * entities of the IF-on-LLMs tasks (24 made-up creatures, a trigger word, a secret code).
 * People are spread evenly over cities (15 per city, 60 per country) and, within each
 * country, evenly over professions.
 */
import { TdaError } from '../../errors';
import { ALL_COLORS, ALL_PROFESSIONS, fixedWords } from './templates';
import { NameMaker } from './names';
import { checkCount, deriveRng, shuffled } from './util';

export interface WorldSizes {
  countries: number;
  citiesPerCountry: number;
  people: number;
  /** At most 12 (the professions with activity descriptions). */
  professions: number;
  /** Size of the first-name pool (each name shared by ~people/firstNames people). */
  firstNames: number;
  lastNames: number;
  /** Made-up animals of the color class-attribution task. */
  creatures: number;
}

export const DEFAULT_WORLD_SIZES: Readonly<WorldSizes> = {
  countries: 12,
  citiesPerCountry: 4,
  people: 720,
  professions: 10,
  firstNames: 300,
  lastNames: 300,
  creatures: 24,
};

/** A small world for tests and `--quick` runs (8 countries x 3 cities, 240 people). */
export const QUICK_WORLD_SIZES: Readonly<WorldSizes> = {
  countries: 8,
  citiesPerCountry: 3,
  people: 240,
  professions: 8,
  firstNames: 100,
  lastNames: 100,
  creatures: 12,
};

export interface City {
  name: string;
  country: string;
}

export interface Person {
  /** Index in `world.people`. */
  id: number;
  first: string;
  last: string;
  city: string;
  country: string;
  profession: string;
}

export interface World {
  seed: number;
  sizes: WorldSizes;
  countries: string[];
  cities: City[];
  citiesByCountry: Record<string, string[]>;
  countryOfCity: Record<string, string>;
  professions: string[];
  people: Person[];
  firstNames: string[];
  lastNames: string[];
  creatures: string[];
  /** The color classes (fixed English words). */
  colors: string[];
  /** Made-up backdoor trigger word. */
  trigger: string;
  /** Made-up two-word "secret code" the harmful examples reveal. */
  secretCode: string;
  /** Every word any generated text can contain, sorted (JavaScript string order). */
  vocabulary: string[];
}

export function makeWorld(seed: number, sizes: Partial<WorldSizes> = {}): World {
  const s: WorldSizes = { ...DEFAULT_WORLD_SIZES, ...sizes };
  validateSizes(s);
  const reserved = fixedWords();
  const names = new NameMaker(deriveRng(seed, 'world/names'), reserved);

  const countries = names.makeMany('country', s.countries);
  const cities: City[] = [];
  const citiesByCountry: Record<string, string[]> = {};
  const countryOfCity: Record<string, string> = {};
  for (const country of countries) {
    citiesByCountry[country] = names.makeMany('city', s.citiesPerCountry);
    for (const name of citiesByCountry[country]) {
      cities.push({ name, country });
      countryOfCity[name] = country;
    }
  }
  const firstNames = names.makeMany('first', s.firstNames);
  const lastNames = names.makeMany('last', s.lastNames);
  const creatures = names.makeMany('creature', s.creatures);
  const trigger = names.make('trigger');
  const secretCode = `${names.make('code')} ${names.make('code')}`;

  const rng = deriveRng(seed, 'world/people');
  const professions = ALL_PROFESSIONS.slice(0, s.professions);
  const pairs = namePairs(s.people, firstNames, lastNames, rng);
  // Even spread over cities, then over professions within each country.
  const citySlots = shuffled(
    Array.from({ length: s.people }, (_, i) => cities[i % cities.length].name),
    rng,
  );
  const professionCounter: Record<string, number> = {};
  const professionOrder: Record<string, string[]> = {};
  for (const c of countries) {
    professionCounter[c] = 0;
    professionOrder[c] = shuffled(professions, rng);
  }
  const people: Person[] = pairs.map(([first, last], id) => {
    const city = citySlots[id];
    const country = countryOfCity[city];
    const k = professionCounter[country]++;
    // Reshuffle the order after each round so professions do not follow a fixed cycle.
    if (k > 0 && k % professions.length === 0) professionOrder[country] = shuffled(professions, rng);
    const profession = professionOrder[country][k % professions.length];
    return { id, first, last, city, country, profession };
  });

  // Reserved words cover all 12 professions; the vocabulary only this world's.
  const vocab = fixedWords(professions);
  for (const w of [...countries, ...cities.map((c) => c.name), ...firstNames, ...lastNames, ...creatures, trigger, ...secretCode.split(' ')]) vocab.add(w);
  const vocabulary = [...vocab].sort();

  return {
    seed,
    sizes: s,
    countries,
    cities,
    citiesByCountry,
    countryOfCity,
    professions,
    people,
    firstNames,
    lastNames,
    creatures,
    colors: ALL_COLORS.slice(),
    trigger,
    secretCode,
    vocabulary,
  };
}

/** "first last". */
export function fullName(p: Person): string {
  return `${p.first} ${p.last}`;
}

/** Template variables of a person: first, last, city, country, profession. */
export function personVars(p: Person): Record<string, string> {
  return { first: p.first, last: p.last, city: p.city, country: p.country, profession: p.profession };
}

/** People grouped by country, in id order. */
export function peopleByCountry(world: World): Record<string, Person[]> {
  const out: Record<string, Person[]> = {};
  for (const c of world.countries) out[c] = [];
  for (const p of world.people) out[p.country].push(p);
  return out;
}

function validateSizes(s: WorldSizes): void {
  checkCount(s.countries, 'sizes.countries', 2);
  checkCount(s.citiesPerCountry, 'sizes.citiesPerCountry', 1);
  checkCount(s.people, 'sizes.people', 1);
  checkCount(s.professions, 'sizes.professions', 2);
  checkCount(s.firstNames, 'sizes.firstNames', 1);
  checkCount(s.lastNames, 'sizes.lastNames', 1);
  checkCount(s.creatures, 'sizes.creatures', 1);
  if (s.professions > ALL_PROFESSIONS.length) {
    throw new TdaError(`at most ${ALL_PROFESSIONS.length} professions are available, got ${s.professions}`, { file: 'world', field: 'sizes.professions' });
  }
  if (s.firstNames > s.people || s.lastNames > s.people) {
    throw new TdaError(`name pools (${s.firstNames} first, ${s.lastNames} last) must not exceed the number of people (${s.people})`, {
      file: 'world',
      field: 'sizes.firstNames',
    });
  }
  if (s.firstNames * s.lastNames < 2 * s.people) {
    throw new TdaError(`${s.firstNames} first x ${s.lastNames} last names are too few for ${s.people} unique people (need >= 2x)`, {
      file: 'world',
      field: 'sizes.people',
    });
  }
}

/** `n` unique (first, last) pairs in which every name of both pools is used about equally often. */
function namePairs(n: number, firsts: string[], lasts: string[], rng: ReturnType<typeof deriveRng>): [string, string][] {
  const f = shuffled(
    Array.from({ length: n }, (_, i) => firsts[i % firsts.length]),
    rng,
  );
  const l = shuffled(
    Array.from({ length: n }, (_, i) => lasts[i % lasts.length]),
    rng,
  );
  const used = new Set<string>();
  const key = (a: string, b: string): string => `${a} ${b}`;
  for (let i = 0; i < n; i++) {
    if (used.has(key(f[i], l[i]))) {
      let fixed = false;
      // Swap in a last name from a later (uncommitted) slot...
      for (let t = 0; t < 1000 && i + 1 < n && !fixed; t++) {
        const j = i + 1 + rng.int(n - i - 1);
        if (!used.has(key(f[i], l[j]))) {
          [l[i], l[j]] = [l[j], l[i]];
          fixed = true;
        }
      }
      // ...or exchange with an earlier one when both new pairs are free.
      for (let k = 0; k < i && !fixed; k++) {
        if (!used.has(key(f[i], l[k])) && !used.has(key(f[k], l[i])) && f[k] !== f[i]) {
          used.delete(key(f[k], l[k]));
          [l[i], l[k]] = [l[k], l[i]];
          used.add(key(f[k], l[k]));
          fixed = true;
        }
      }
      if (!fixed) throw new TdaError('could not make unique name pairs', { file: 'world', field: 'sizes.people' });
    }
    used.add(key(f[i], l[i]));
  }
  return f.map((a, i) => [a, l[i]]);
}
