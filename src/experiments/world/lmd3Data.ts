/**
 * Data for LMD3, "LMD3: Language Model Data Density Dependence" (Kirchenbauer et al. 2024,
 * arXiv 2405.06331): a base fine-tuning set of question/answer pairs about the world, a test
 * set of questions about other people, and for a treated subset of the tests k paraphrases
 * each (same answer) injected into the fine-tuning data. Controls are untouched. Training
 * density around a treated test rises; the experiment checks that per-example performance
 * follows.
 *
 * Base training questions and tests use each task's canonical phrasing. Paraphrases come from
 * the task's other phrasings: `low` diversity (same word order, a synonym or two), `high`
 * (low plus different word order / wording) or `exact` (copies of the test question itself,
 * the degenerate case). If k exceeds the phrasings available, they repeat in turn.
 */
import { TdaError } from '../../errors';
import { LMD3_TASK_NAMES, LMD3_TEMPLATES, Lmd3Task } from './templates';
import { deriveRng, fill, pick, sample, shuffled } from './util';
import { World, personVars } from './world';

export interface Lmd3Example {
  prompt: string;
  response: string;
  person: number;
  task: Lmd3Task;
}

export interface Lmd3Test extends Lmd3Example {
  treated: boolean;
}

export interface Lmd3Data {
  baseTrain: Lmd3Example[];
  /** `baseTrain` followed by the injected paraphrases (in test order, k per treated test). */
  treatedTrain: Lmd3Example[];
  /** People of the tests never appear in `baseTrain`. */
  tests: Lmd3Test[];
  /** For each injected example `treatedTrain[baseTrain.length + j]`, the index of the test it paraphrases. */
  paraphraseOf: number[];
}

export type ParaphraseDiversity = 'exact' | 'low' | 'high';

export interface Lmd3Options {
  seed?: number;
  /** Base fine-tuning examples (default round(600 * people / 720)). */
  nTrain?: number;
  /** Test queries, one person each (default round(100 * people / 720)). */
  nTests?: number;
  /** Share of tests treated (default 0.5; the count is rounded). */
  treatedFraction?: number;
  /** Paraphrases per treated test (default 3). */
  k?: number;
  /** Default `high`. */
  diversity?: ParaphraseDiversity;
  tasks?: readonly Lmd3Task[];
}

const FILE = 'lmd3Data';

export function lmd3Data(world: World, opts: Lmd3Options = {}): Lmd3Data {
  const nPeople = world.people.length;
  const nTrain = opts.nTrain ?? Math.round((600 * nPeople) / 720);
  const nTests = opts.nTests ?? Math.max(1, Math.round((100 * nPeople) / 720));
  const fraction = opts.treatedFraction ?? 0.5;
  const k = opts.k ?? 3;
  const diversity = opts.diversity ?? 'high';
  const tasks = opts.tasks ?? LMD3_TASK_NAMES;
  checkInt(nTrain, 'nTrain', 0);
  checkInt(nTests, 'nTests', 1);
  checkInt(k, 'k', 1);
  if (!(fraction >= 0 && fraction <= 1)) throw new TdaError(`must be in [0, 1], got ${fraction}`, { file: FILE, field: 'treatedFraction' });
  if (!['exact', 'low', 'high'].includes(diversity)) throw new TdaError(`must be exact, low or high, got ${String(diversity)}`, { file: FILE, field: 'diversity' });
  if (tasks.length === 0 || tasks.some((t) => !LMD3_TASK_NAMES.includes(t))) {
    throw new TdaError(`tasks must be a non-empty subset of ${LMD3_TASK_NAMES.join(', ')}`, { file: FILE, field: 'tasks' });
  }
  if (nTests >= nPeople) throw new TdaError(`${nTests} test people leave none for training (world has ${nPeople})`, { file: FILE, field: 'nTests' });

  const rng = deriveRng(opts.seed ?? world.seed, 'lmd3');
  const people = shuffled(world.people, rng);
  const testPeople = people.slice(0, nTests);
  const trainPeople = people.slice(nTests);
  const combos: [number, Lmd3Task][] = [];
  for (const p of trainPeople) for (const t of tasks) combos.push([p.id, t]);
  if (nTrain > combos.length) throw new TdaError(`${nTrain} examples requested, only ${combos.length} (person, task) combinations`, { file: FILE, field: 'nTrain' });

  const example = (person: number, task: Lmd3Task, template: string): Lmd3Example => {
    const vars = personVars(world.people[person]);
    return { prompt: fill(template, vars), response: fill(LMD3_TEMPLATES[task].response, vars), person, task };
  };
  const baseTrain = sample(combos, nTrain, rng).map(([p, t]) => example(p, t, LMD3_TEMPLATES[t].canonical));
  const treatedIds = new Set(sample(testPeople.map((_, i) => i), Math.round(fraction * nTests), rng));
  const tests: Lmd3Test[] = testPeople.map((p, i) => {
    const task = pick(tasks, rng);
    return { ...example(p.id, task, LMD3_TEMPLATES[task].canonical), treated: treatedIds.has(i) };
  });

  const injected: Lmd3Example[] = [];
  const paraphraseOf: number[] = [];
  tests.forEach((t, i) => {
    if (!t.treated) return;
    const tpl = LMD3_TEMPLATES[t.task];
    const pool = diversity === 'exact' ? [tpl.canonical] : diversity === 'low' ? tpl.low : [...tpl.low, ...tpl.high];
    const order = shuffled(pool, rng);
    for (let j = 0; j < k; j++) {
      injected.push(example(t.person, t.task, order[j % order.length]));
      paraphraseOf.push(i);
    }
  });
  return { baseTrain, treatedTrain: [...baseTrain, ...injected], tests, paraphraseOf };
}

function checkInt(v: number, field: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new TdaError(`must be an integer >= ${min}, got ${v}`, { file: FILE, field });
}
