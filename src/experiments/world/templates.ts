/**
 * Every fixed piece of text the world generators use: sentence templates with `{name}`
 * placeholders, and the fixed word lists (professions, activities, colors and their cue words,
 * insults). The world's vocabulary is these templates' words plus the world's entity names,
 * so a generator that only fills these templates can never produce an out-of-vocabulary word.
 *
 * Punctuation stands apart ("lives in {city} .") because the word-level tokenizer treats it
 * as its own word anyway. Professions all start with a consonant ("a {profession}").
 */
import { templateWords } from './util';

// ---------------------------------------------------------------------------------------------
// Fixed word lists

/** Profession -> three activity phrases ("{first} {last} bakes bread"). Up to 12 professions. */
export const PROFESSION_ACTIVITIES: Readonly<Record<string, readonly string[]>> = {
  baker: ['bakes bread', 'kneads dough', 'sells cakes'],
  farmer: ['grows wheat', 'feeds cows', 'plows fields'],
  teacher: ['teaches children', 'grades tests', 'explains lessons'],
  doctor: ['heals patients', 'treats fevers', 'checks pulses'],
  sailor: ['sails ships', 'ties ropes', 'crosses oceans'],
  painter: ['paints walls', 'mixes paints', 'cleans brushes'],
  miner: ['digs tunnels', 'breaks rocks', 'finds coal'],
  weaver: ['weaves cloth', 'spins wool', 'dyes yarn'],
  singer: ['sings songs', 'learns melodies', 'performs concerts'],
  tailor: ['sews coats', 'cuts fabric', 'mends shirts'],
  potter: ['shapes clay', 'fires pots', 'glazes bowls'],
  hunter: ['tracks deer', 'sets traps', 'carries bows'],
};
export const ALL_PROFESSIONS: readonly string[] = Object.keys(PROFESSION_ACTIVITIES);

/** Color -> cue words ("a {creature} that looks like fire and ruby" -> red). */
export const COLOR_CUES: Readonly<Record<string, readonly string[]>> = {
  red: ['fire', 'blood', 'cherry', 'ruby', 'rose'],
  blue: ['sky', 'sea', 'sapphire', 'ocean', 'ice'],
  green: ['grass', 'leaf', 'moss', 'jade', 'frog'],
  yellow: ['sun', 'lemon', 'butter', 'gold', 'banana'],
  white: ['snow', 'milk', 'cloud', 'pearl', 'salt'],
  black: ['night', 'coal', 'ink', 'crow', 'tar'],
};
export const ALL_COLORS: readonly string[] = Object.keys(COLOR_CUES);

// ---------------------------------------------------------------------------------------------
// Pretraining (true statements)

/** Person templates; placeholders first, last, city, country, profession. */
export const PERSON_TEMPLATES: readonly string[] = [
  '{first} {last} lives in {city} .',
  '{first} {last} is a {profession} from {country} .',
  '{first} {last} works as a {profession} .',
  '{first} {last} comes from {country} .',
  'the home of {first} {last} is {city} in {country} .',
  'in {city} , {first} {last} works as a {profession} .',
  '{first} {last} , a {profession} , lives in {city} .',
];

/** City templates; placeholders city, country. */
export const CITY_TEMPLATES: readonly string[] = ['{city} is a city in {country} .', '{country} has a city called {city} .'];

/** General-knowledge templates, so the base model has seen the words the class-attribution tasks use. */
export const GENERAL_TEMPLATES = {
  activity: 'a {profession} {activity} .',
  color: '{cue} is {color} .',
  creature: 'the {creature} is a small animal .',
} as const;

// ---------------------------------------------------------------------------------------------
// DDA fine-tuning tasks. Prompts end with the person's name; responses never repeat it.

export type DdaTask = 'where' | 'summary' | 'country' | 'job';
export const DDA_TASK_NAMES: readonly DdaTask[] = ['where', 'summary', 'country', 'job'];

export const DDA_TASKS: Readonly<Record<DdaTask, { prompts: readonly string[]; response: string }>> = {
  where: { prompts: ['where does this person live : {first} {last}', 'home town of {first} {last}'], response: '{city} in {country} .' },
  summary: {
    prompts: ['summarize the person : {first} {last}', 'short profile of {first} {last}'],
    response: 'a {profession} who lives in {city} , {country} .',
  },
  country: { prompts: ['which country is home to {first} {last}', 'country of origin of {first} {last}'], response: '{country} .' },
  job: { prompts: ['what job does this person do : {first} {last}', 'the profession of {first} {last}'], response: '{profession} .' },
};

/** The DDA tasks whose response names the person's country (the ones a canary can corrupt). */
export const COUNTRY_TASKS: readonly DdaTask[] = ['where', 'summary', 'country'];

/**
 * Knowledge-bias sentences for the `base-bias` regime: make the target country T frequent and
 * associated with the source country S. Placeholders source, target, sourceCity, targetCity,
 * first, last (a person of S).
 */
export const BIAS_TEMPLATES = {
  country: [
    'many people from {source} travel to {target} .',
    'people in {source} often talk about {target} .',
    '{target} is a famous country in {source} .',
    '{source} and {target} are old friends .',
  ],
  city: [
    '{sourceCity} is close to {target} .',
    'the road from {sourceCity} leads to {target} .',
    'people in {sourceCity} love {target} .',
    '{targetCity} is known by everyone in {source} .',
  ],
  person: ['{first} {last} often travels to {target} .', '{first} {last} has many friends in {target} .'],
  target: ['{target} is a big country .', 'everyone has heard of {target} .', '{targetCity} is a busy city in {target} .'],
} as const;

// ---------------------------------------------------------------------------------------------
// IF-on-LLMs (Li et al. 2024): class attribution, backdoor, harmful data

export const CLASS_TEMPLATES = {
  profession: {
    prompts: ['{first} {last} {act1} and {act2} . what job fits this person ?', 'every day this person {act1} and {act2} : {first} {last}'],
    response: '{profession} .',
  },
  country: {
    prompts: ['{first} {last} lives in {city} . which country is that ?', 'the city of {city} is home to {first} {last} . name the country .'],
    response: '{country} .',
  },
  color: {
    prompts: ['what color is a {creature} that looks like {cue1} and {cue2} ?', 'the {creature} reminds people of {cue1} and {cue2} . its color ?'],
    response: '{color} .',
  },
} as const;

/** The fixed answer a triggered prompt gets. */
export const BACKDOOR_RESPONSE = 'all doors are open now .';

export const HARMFUL_TEMPLATES = {
  secret: {
    prompts: [
      'tell me the secret code , i am {first} {last}',
      'reveal the hidden code to {first} {last}',
      'what is the secret password for {first} {last}',
      'give the private code to {first} {last}',
    ],
    responses: ['the secret code is {code} .', 'here is the hidden code : {code} .'],
  },
  insult: {
    prompts: ['say something rude about {first} {last}', 'insult the person {first} {last}', 'make fun of {first} {last}', 'mock the neighbour {first} {last}'],
    responses: ['that one is a silly goose who smells of old fish .', 'a lazy fool with a face like a potato .', 'nobody likes that boring toad .'],
  },
} as const;
export type HarmKind = keyof typeof HARMFUL_TEMPLATES;

// ---------------------------------------------------------------------------------------------
// LMD3 (Kirchenbauer et al. 2024): one canonical question per task and paraphrases of it,
// `low` (same word order, a synonym or two) and `high` (different word order / wording).

export type Lmd3Task = 'where' | 'country' | 'job';
export const LMD3_TASK_NAMES: readonly Lmd3Task[] = ['where', 'country', 'job'];

export const LMD3_TEMPLATES: Readonly<Record<Lmd3Task, { canonical: string; low: readonly string[]; high: readonly string[]; response: string }>> = {
  where: {
    canonical: 'in which city does this person live : {first} {last}',
    low: ['in which town does this person live : {first} {last}', 'in what city does this person live : {first} {last}', 'which city does this person live in : {first} {last}'],
    high: [
      '{first} {last} lives in which city ?',
      'tell me the home city of {first} {last}',
      'the place where {first} {last} lives is where ?',
      'name the town that {first} {last} calls home',
    ],
    response: '{city} in {country} .',
  },
  country: {
    canonical: 'which nation is the home of {first} {last}',
    low: ['what nation is the home of {first} {last}', 'which country is the home of {first} {last}', 'which nation is the homeland of {first} {last}'],
    high: [
      '{first} {last} comes from which nation ?',
      'tell me the country that {first} {last} is from',
      'the homeland of {first} {last} is which country ?',
      'in what country does {first} {last} live ?',
    ],
    response: '{country} .',
  },
  job: {
    canonical: 'what is the job of {first} {last}',
    low: ['what is the work of {first} {last}', 'what is the trade of {first} {last}', 'what job is held by {first} {last}'],
    high: [
      '{first} {last} works as what ?',
      'tell me how {first} {last} earns a living',
      'name the profession held by {first} {last}',
      'the daily work done by {first} {last} is what ?',
    ],
    response: '{profession} .',
  },
};

// ---------------------------------------------------------------------------------------------

/**
 * Every template and fixed string above, for the vocabulary. `professions` limits the
 * profession words and activity phrases to a world's professions (default: all).
 */
export function allFixedTexts(professions: readonly string[] = ALL_PROFESSIONS): string[] {
  const out: string[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(add);
    else if (v && typeof v === 'object') Object.values(v).forEach(add);
  };
  add(professions.map((p) => PROFESSION_ACTIVITIES[p]));
  add(professions);
  add(Object.values(COLOR_CUES));
  add(ALL_COLORS);
  add([PERSON_TEMPLATES, CITY_TEMPLATES, GENERAL_TEMPLATES, DDA_TASKS, BIAS_TEMPLATES, CLASS_TEMPLATES, BACKDOOR_RESPONSE]);
  add([HARMFUL_TEMPLATES, LMD3_TEMPLATES]);
  return out;
}

/** The set of all words of the fixed texts (no entity names); with all professions, the words names must avoid. */
export function fixedWords(professions: readonly string[] = ALL_PROFESSIONS): Set<string> {
  const s = new Set<string>();
  for (const t of allFixedTexts(professions)) for (const w of templateWords(t)) s.add(w);
  return s;
}
