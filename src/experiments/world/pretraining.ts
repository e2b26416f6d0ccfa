/**
 * The base model's pretraining corpus: true sentences about the world (7 person templates,
 * 2 city templates), optional general-knowledge sentences (what each profession does, which
 * color each cue word has, that creatures are animals) and optional extra sentences such as
 * the DDA knowledge-bias sentences (`biasSentences` in ddaData.ts).
 */
import { TdaError } from '../../errors';
import { CITY_TEMPLATES, COLOR_CUES, GENERAL_TEMPLATES, PERSON_TEMPLATES, PROFESSION_ACTIVITIES } from './templates';
import { deriveRng, fill, sample, shuffled } from './util';
import { World, personVars } from './world';

export interface PretrainingOptions {
  seed?: number;
  /** Person templates used per person (sampled without replacement); default all 7. */
  templatesPerPerson?: number;
  /** Times each city sentence is repeated (default 1). */
  cityRepeats?: number;
  /** Add the general-knowledge sentences (default true). */
  general?: boolean;
  /** Extra sentences appended before shuffling, e.g. `biasSentences(...)`. */
  extra?: readonly string[];
  /** Shuffle the sentences (default true); false keeps generation order. */
  shuffle?: boolean;
}

export function pretrainingCorpus(world: World, opts: PretrainingOptions = {}): string[] {
  const seed = opts.seed ?? world.seed;
  const perPerson = opts.templatesPerPerson ?? PERSON_TEMPLATES.length;
  const cityRepeats = opts.cityRepeats ?? 1;
  if (!Number.isInteger(perPerson) || perPerson < 0 || perPerson > PERSON_TEMPLATES.length) {
    throw new TdaError(`must be an integer in [0, ${PERSON_TEMPLATES.length}], got ${perPerson}`, { file: 'pretraining', field: 'templatesPerPerson' });
  }
  if (!Number.isInteger(cityRepeats) || cityRepeats < 0) {
    throw new TdaError(`must be an integer >= 0, got ${cityRepeats}`, { file: 'pretraining', field: 'cityRepeats' });
  }
  const rng = deriveRng(seed, 'pretraining');
  const out: string[] = [];
  for (const p of world.people) {
    const templates = perPerson === PERSON_TEMPLATES.length ? PERSON_TEMPLATES : sample(PERSON_TEMPLATES, perPerson, rng);
    for (const t of templates) out.push(fill(t, personVars(p)));
  }
  for (let r = 0; r < cityRepeats; r++) {
    for (const c of world.cities) for (const t of CITY_TEMPLATES) out.push(fill(t, { city: c.name, country: c.country }));
  }
  if (opts.general ?? true) out.push(...generalSentences(world));
  if (opts.extra) out.push(...opts.extra);
  return (opts.shuffle ?? true) ? shuffled(out, rng) : out;
}

/** What each profession does, which color each cue word has, that each creature is an animal. */
export function generalSentences(world: World): string[] {
  const out: string[] = [];
  for (const profession of world.professions) {
    for (const activity of PROFESSION_ACTIVITIES[profession]) out.push(fill(GENERAL_TEMPLATES.activity, { profession, activity }));
  }
  for (const color of world.colors) for (const cue of COLOR_CUES[color]) out.push(fill(GENERAL_TEMPLATES.color, { cue, color }));
  for (const creature of world.creatures) out.push(fill(GENERAL_TEMPLATES.creature, { creature }));
  return out;
}
