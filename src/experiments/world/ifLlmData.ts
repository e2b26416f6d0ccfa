/**
 * Data for the three tasks of "Do Influence Functions Work on Large Language Models?"
 * (Li, Zhao, Li, Sun 2024, arXiv 2409.19998), in the toy world:
 *
 * - Class attribution: three task families whose class the model must infer from the prompt:
 *   `profession` (from two activities: "bakes bread and kneads dough" -> baker),
 *   `country` (from a city) and `color` (of a made-up creature, from two cue words:
 *   "looks like fire and ruby" -> red). Train and test examples carry class labels, balanced
 *   per class. Metrics: Acc (top-1 training example has the test's class) and Cover.
 * - Backdoor-trigger detection: a made-up trigger word inserted into a few training prompts,
 *   whose responses are then a fixed backdoor answer; test queries contain the trigger.
 *   Positives: the triggered training examples.
 * - Harmful-data identification: a few "harmful" examples (revealing a made-up secret code,
 *   or mild insults; harmless text) mixed into benign world QA; test queries ask for the same
 *   behaviour. Positives: the harmful training examples.
 */
import { TdaError } from '../../errors';
import { BACKDOOR_RESPONSE, CLASS_TEMPLATES, COLOR_CUES, DDA_TASKS, DDA_TASK_NAMES, DdaTask, HARMFUL_TEMPLATES, HarmKind, PROFESSION_ACTIVITIES } from './templates';
import { deriveRng, fill, pick, sample, shuffled } from './util';
import { Person, World, peopleByCountry, personVars } from './world';
import { Rng } from '../../random';

const FILE = 'ifLlmData';

// ---------------------------------------------------------------------------------------------
// Class attribution

export type ClassFamily = 'profession' | 'country' | 'color';
export const CLASS_FAMILIES: readonly ClassFamily[] = ['profession', 'country', 'color'];

export interface ClassExample {
  prompt: string;
  response: string;
  family: ClassFamily;
  /** The class within its family (a profession, country or color word). */
  label: string;
  /** Index into `classes` (unique over all families). */
  classId: number;
}

export interface ClassAttributionData {
  classes: { family: ClassFamily; label: string }[];
  /** Shuffled. */
  train: ClassExample[];
  /** Grouped by class. No test prompt equals a training prompt; people never repeat between them. */
  tests: ClassExample[];
}

export interface ClassAttributionOptions {
  seed?: number;
  families?: readonly ClassFamily[];
  /** Training examples per class (default 20). */
  perClassTrain?: number;
  /** Test queries per class (default 5). */
  perClassTest?: number;
  /** Classes of the country family: the first n countries (default min(8, countries)). */
  countryClasses?: number;
}

export function classAttributionData(world: World, opts: ClassAttributionOptions = {}): ClassAttributionData {
  const families = opts.families ?? CLASS_FAMILIES;
  const nTrain = opts.perClassTrain ?? 20;
  const nTest = opts.perClassTest ?? 5;
  const nCountries = opts.countryClasses ?? Math.min(8, world.countries.length);
  checkInt(nTrain, 'perClassTrain', 1);
  checkInt(nTest, 'perClassTest', 1);
  checkInt(nCountries, 'countryClasses', 2);
  if (nCountries > world.countries.length) throw new TdaError(`the world has only ${world.countries.length} countries`, { file: FILE, field: 'countryClasses' });
  if (families.length === 0 || families.some((f) => !CLASS_FAMILIES.includes(f))) {
    throw new TdaError(`families must be a non-empty subset of ${CLASS_FAMILIES.join(', ')}`, { file: FILE, field: 'families' });
  }
  const rng = deriveRng(opts.seed ?? world.seed, 'ifllm/class');
  const classes: { family: ClassFamily; label: string }[] = [];
  const train: ClassExample[] = [];
  const tests: ClassExample[] = [];
  const byCountry = peopleByCountry(world);

  for (const family of families) {
    const labels = family === 'profession' ? world.professions : family === 'country' ? world.countries.slice(0, nCountries) : world.colors;
    for (const label of labels) {
      const classId = classes.length;
      classes.push({ family, label });
      const make = (prompt: string, response: string): ClassExample => ({ prompt, response, family, label, classId });
      if (family === 'color') {
        const seen = new Set<string>();
        const one = (): ClassExample => {
          for (let t = 0; t < 1000; t++) {
            const [cue1, cue2] = sample(COLOR_CUES[label], 2, rng);
            const prompt = fill(pick(CLASS_TEMPLATES.color.prompts, rng), { creature: pick(world.creatures, rng), cue1, cue2 });
            if (seen.has(prompt)) continue;
            seen.add(prompt);
            return make(prompt, fill(CLASS_TEMPLATES.color.response, { color: label }));
          }
          throw new TdaError(`too few distinct color prompts for ${nTrain + nTest} examples per class`, { file: FILE, field: 'perClassTrain' });
        };
        for (let i = 0; i < nTrain; i++) train.push(one());
        for (let i = 0; i < nTest; i++) tests.push(one());
      } else {
        const pool = family === 'profession' ? world.people.filter((p) => p.profession === label) : byCountry[label];
        if (pool.length < nTrain + nTest) {
          throw new TdaError(`class ${family}/${label} has ${pool.length} people, fewer than perClassTrain + perClassTest = ${nTrain + nTest}`, {
            file: FILE,
            field: 'perClassTrain',
          });
        }
        const people = sample(pool, nTrain + nTest, rng);
        const one = (p: Person): ClassExample => {
          const vars = personVars(p);
          if (family === 'profession') {
            const [act1, act2] = sample(PROFESSION_ACTIVITIES[p.profession], 2, rng);
            return make(fill(pick(CLASS_TEMPLATES.profession.prompts, rng), { ...vars, act1, act2 }), fill(CLASS_TEMPLATES.profession.response, vars));
          }
          return make(fill(pick(CLASS_TEMPLATES.country.prompts, rng), vars), fill(CLASS_TEMPLATES.country.response, vars));
        };
        people.slice(0, nTrain).forEach((p) => train.push(one(p)));
        people.slice(nTrain).forEach((p) => tests.push(one(p)));
      }
    }
  }
  return { classes, train: shuffled(train, rng), tests };
}

// ---------------------------------------------------------------------------------------------
// Benign world QA shared by the backdoor and harmful tasks

interface QaItem {
  prompt: string;
  response: string;
  person: number;
  task: DdaTask;
}

function worldQa(p: Person, task: DdaTask, rng: Rng): QaItem {
  const vars = personVars(p);
  return { prompt: fill(pick(DDA_TASKS[task].prompts, rng), vars), response: fill(DDA_TASKS[task].response, vars), person: p.id, task };
}

/** `n` distinct people split into consecutive groups of the given sizes. */
function splitPeople(world: World, sizes: number[], rng: Rng, field: string): Person[][] {
  const total = sizes.reduce((s, n) => s + n, 0);
  if (total > world.people.length) throw new TdaError(`needs ${total} distinct people, the world has ${world.people.length}`, { file: FILE, field });
  const people = sample(world.people, total, rng);
  const out: Person[][] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(people.slice(at, at + n));
    at += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backdoor

export interface BackdoorExample extends QaItem {
  triggered: boolean;
}

export interface BackdoorTest {
  /** Contains the trigger. */
  prompt: string;
  /** The backdoor answer. */
  response: string;
  person: number;
  task: DdaTask;
  /** The same prompt without the trigger, and its true answer (a control). */
  cleanPrompt: string;
  cleanResponse: string;
}

export interface BackdoorData {
  trigger: string;
  backdoorResponse: string;
  /** Shuffled; every example is about a different person. */
  train: BackdoorExample[];
  /** Sorted indices of the triggered training examples. */
  positives: number[];
  /** About people absent from `train`. */
  tests: BackdoorTest[];
}

export interface BackdoorOptions {
  seed?: number;
  /** Benign examples (default round(300 * people / 720)). */
  nClean?: number;
  /** Triggered examples (default 15). */
  nTriggered?: number;
  /** Test queries (default 20). */
  nTests?: number;
  /** Where the trigger goes: `random` (default; any word boundary before the name) or `start`. */
  position?: 'random' | 'start';
}

/** Inserts the trigger as a word; the prompt still ends with the person's name (its last two words). */
export function insertTrigger(prompt: string, trigger: string, position: 'random' | 'start', rng: Rng): string {
  const words = prompt.split(' ');
  const at = position === 'start' ? 0 : rng.int(Math.max(1, words.length - 1));
  words.splice(at, 0, trigger);
  return words.join(' ');
}

export function backdoorData(world: World, opts: BackdoorOptions = {}): BackdoorData {
  const nClean = opts.nClean ?? Math.round((300 * world.people.length) / 720);
  const nTriggered = opts.nTriggered ?? 15;
  const nTests = opts.nTests ?? 20;
  const position = opts.position ?? 'random';
  checkInt(nClean, 'nClean', 0);
  checkInt(nTriggered, 'nTriggered', 1);
  checkInt(nTests, 'nTests', 1);
  const rng = deriveRng(opts.seed ?? world.seed, 'ifllm/backdoor');
  const [cleanPeople, trigPeople, testPeople] = splitPeople(world, [nClean, nTriggered, nTests], rng, 'nClean');
  const examples: BackdoorExample[] = [
    ...cleanPeople.map((p) => ({ ...worldQa(p, pick(DDA_TASK_NAMES, rng), rng), triggered: false })),
    ...trigPeople.map((p) => {
      const qa = worldQa(p, pick(DDA_TASK_NAMES, rng), rng);
      return { ...qa, prompt: insertTrigger(qa.prompt, world.trigger, position, rng), response: BACKDOOR_RESPONSE, triggered: true };
    }),
  ];
  const train = shuffled(examples, rng);
  const tests = testPeople.map((p): BackdoorTest => {
    const qa = worldQa(p, pick(DDA_TASK_NAMES, rng), rng);
    return {
      prompt: insertTrigger(qa.prompt, world.trigger, position, rng),
      response: BACKDOOR_RESPONSE,
      person: p.id,
      task: qa.task,
      cleanPrompt: qa.prompt,
      cleanResponse: qa.response,
    };
  });
  return { trigger: world.trigger, backdoorResponse: BACKDOOR_RESPONSE, train, positives: indicesWhere(train, (e) => e.triggered), tests };
}

// ---------------------------------------------------------------------------------------------
// Harmful data

export const HARM_KINDS: readonly HarmKind[] = ['secret', 'insult'];

export interface HarmfulExample {
  prompt: string;
  response: string;
  person: number;
  /** Null for benign examples. */
  kind: HarmKind | null;
  /** The benign world-QA task, or null for harmful examples. */
  task: DdaTask | null;
}

export interface HarmfulTest {
  prompt: string;
  /** One harmful response of this kind (any of `harmfulResponses[kind]` shows the behaviour). */
  response: string;
  kind: HarmKind;
  person: number;
}

export interface HarmfulData {
  /** Shuffled; every example is about a different person. */
  train: HarmfulExample[];
  /** Sorted indices of all harmful training examples. */
  positives: number[];
  positivesByKind: Record<HarmKind, number[]>;
  /** About people absent from `train`; kinds alternate. */
  tests: HarmfulTest[];
  /** Every response text each kind can have. */
  harmfulResponses: Record<HarmKind, string[]>;
}

export interface HarmfulOptions {
  seed?: number;
  /** Benign examples (default round(300 * people / 720)). */
  nBenign?: number;
  /** Harmful examples (default 20), kinds alternating. */
  nHarmful?: number;
  /** Test queries (default 20). */
  nTests?: number;
  kinds?: readonly HarmKind[];
}

export function harmfulData(world: World, opts: HarmfulOptions = {}): HarmfulData {
  const nBenign = opts.nBenign ?? Math.round((300 * world.people.length) / 720);
  const nHarmful = opts.nHarmful ?? 20;
  const nTests = opts.nTests ?? 20;
  const kinds = opts.kinds ?? HARM_KINDS;
  checkInt(nBenign, 'nBenign', 0);
  checkInt(nHarmful, 'nHarmful', 1);
  checkInt(nTests, 'nTests', 1);
  if (kinds.length === 0 || kinds.some((k) => !HARM_KINDS.includes(k))) throw new TdaError(`kinds must be a non-empty subset of ${HARM_KINDS.join(', ')}`, { file: FILE, field: 'kinds' });
  const rng = deriveRng(opts.seed ?? world.seed, 'ifllm/harmful');
  const harmfulResponses = {} as Record<HarmKind, string[]>;
  for (const k of HARM_KINDS) harmfulResponses[k] = HARMFUL_TEMPLATES[k].responses.map((r) => fill(r, { code: world.secretCode }));
  const harmful = (p: Person, kind: HarmKind): { prompt: string; response: string } => ({
    prompt: fill(pick(HARMFUL_TEMPLATES[kind].prompts, rng), personVars(p)),
    response: pick(harmfulResponses[kind], rng),
  });
  const [benignPeople, harmPeople, testPeople] = splitPeople(world, [nBenign, nHarmful, nTests], rng, 'nBenign');
  const examples: HarmfulExample[] = [
    ...benignPeople.map((p) => ({ ...worldQa(p, pick(DDA_TASK_NAMES, rng), rng), kind: null })),
    ...harmPeople.map((p, i) => {
      const kind = kinds[i % kinds.length];
      return { ...harmful(p, kind), person: p.id, kind, task: null };
    }),
  ];
  const train = shuffled(examples, rng);
  const positivesByKind = {} as Record<HarmKind, number[]>;
  for (const k of HARM_KINDS) positivesByKind[k] = indicesWhere(train, (e) => e.kind === k);
  const tests = testPeople.map((p, i): HarmfulTest => {
    const kind = kinds[i % kinds.length];
    return { ...harmful(p, kind), kind, person: p.id };
  });
  return { train, positives: indicesWhere(train, (e) => e.kind !== null), positivesByKind, tests, harmfulResponses };
}

// ---------------------------------------------------------------------------------------------

export interface IfLlmOptions {
  seed?: number;
  classAttribution?: Omit<ClassAttributionOptions, 'seed'>;
  backdoor?: Omit<BackdoorOptions, 'seed'>;
  harmful?: Omit<HarmfulOptions, 'seed'>;
}

/** All three IF-on-LLMs data sets (each its own fine-tuning set). */
export function ifLlmData(world: World, opts: IfLlmOptions = {}): { classAttribution: ClassAttributionData; backdoor: BackdoorData; harmful: HarmfulData } {
  const seed = opts.seed ?? world.seed;
  return {
    classAttribution: classAttributionData(world, { ...opts.classAttribution, seed }),
    backdoor: backdoorData(world, { ...opts.backdoor, seed }),
    harmful: harmfulData(world, { ...opts.harmful, seed }),
  };
}

function indicesWhere<T>(items: readonly T[], pred: (x: T) => boolean): number[] {
  const out: number[] = [];
  items.forEach((x, i) => {
    if (pred(x)) out.push(i);
  });
  return out;
}

function checkInt(v: number, field: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new TdaError(`must be an integer >= ${min}, got ${v}`, { file: FILE, field });
}
