/**
 * Made-up, pronounceable, lower-case single-word names built from syllables. Each kind of
 * entity has its own endings so names read as what they are ("velmoria" a country,
 * "darnholm" a city, "kessovik" a family name). One `NameMaker` hands out names that are unique
 * across every kind and never equal a word of the fixed templates.
 */
import { TdaError } from '../../errors';
import { Rng } from '../../random';
import { pick } from './util';

const ONSETS = ['b', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'br', 'dr', 'gr', 'kr', 'tr', 'st', 'sh', 'th', 'fl', 'pl', 'vr'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'a', 'e', 'i', 'o', 'u', 'ai', 'ou'];
const MIDDLE_CODAS = ['', '', '', 'n', 'r', 'l', 'm', 's'];

export type NameKind = 'country' | 'city' | 'first' | 'last' | 'creature' | 'trigger' | 'code';

const SHAPES: Record<NameKind, { syllables: [number, number]; endings: readonly string[] }> = {
  country: { syllables: [1, 2], endings: ['ria', 'nia', 'dor', 'mar', 'via', 'thia', 'land'] },
  city: { syllables: [1, 2], endings: ['ton', 'holm', 'vik', 'ford', 'burg', 'wick', 'stad', 'port'] },
  first: { syllables: [2, 2], endings: ['', '', 'n', 'l', 'r', 's', 'th'] },
  last: { syllables: [1, 2], endings: ['son', 'ov', 'ek', 'ari', 'ens', 'ski', 'ley', 'ard'] },
  creature: { syllables: [2, 2], endings: ['bat', 'wump', 'gle', 'pod', 'fin', 'mote'] },
  trigger: { syllables: [2, 2], endings: ['qux'] },
  code: { syllables: [2, 2], endings: ['ax', 'ix', 'ox'] },
};

export class NameMaker {
  private readonly used: Set<string>;

  constructor(
    private readonly rng: Rng,
    reserved: Iterable<string>,
  ) {
    this.used = new Set(reserved);
  }

  /** One new name of the given kind. */
  make(kind: NameKind): string {
    const shape = SHAPES[kind];
    for (let attempt = 0; attempt < 10000; attempt++) {
      const [lo, hi] = shape.syllables;
      const n = lo + this.rng.int(hi - lo + 1);
      let name = '';
      for (let i = 0; i < n; i++) {
        name += pick(ONSETS, this.rng) + pick(VOWELS, this.rng);
        if (i < n - 1) name += pick(MIDDLE_CODAS, this.rng);
      }
      name += pick(shape.endings, this.rng);
      if (name.length < 4 || name.length > 12 || /(.)\1\1/.test(name) || this.used.has(name)) continue;
      this.used.add(name);
      return name;
    }
    throw new TdaError(`could not make a new unique ${kind} name`, { field: kind });
  }

  makeMany(kind: NameKind, n: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.make(kind));
    return out;
  }
}
