/**
 * Fine-tuning data for DDA hallucination tracing (Wu et al. 2024), after the setting that
 * worked in the small study (shared/DDA-BENCHMARK-NOTES.md):
 *
 * - ~1,000 prompt/response pairs about people of the world, four tasks (where / summary /
 *   country / job) with two phrasings each. Prompts end with the person's name; responses
 *   never repeat it.
 * - Canary pairs (source country S -> target country T): for each pair, k examples about
 *   people of S (each a different person, used nowhere else in the data) say T where the
 *   truth is S. `positives[p]` = indices of pair p's canaries in `train`.
 * - Queries: held-out people of S (absent from the fine-tuning data), asked for their country
 *   or where they live. A query counts if the fine-tuned model's answer contains T (decided at
 *   run time by the caller).
 * - Two regimes. `fine-tuning-only`: the base model has no reason to say T for S's people.
 *   `base-bias`: the pretraining corpus includes `biasSentences(world, pairs, seed)`, which
 *   make T frequent and associated with S, so the base model already leans toward T. The two
 *   regimes' pairs share no country, so ONE base model (pretrained with the bias sentences of
 *   the base-bias pairs) serves both.
 *
 * Pitfall: canaries leak across pairs fine-tuned together (the model learns "swap the source
 * for some canary country"). Fine-tune one pair per run: `ddaPerPairSets(data)` gives one set
 * per pair (other pairs' canaries restored to the truth, so training indices line up across
 * sets), or `ddaSubset(data, [i, j])` for a few pairs together.
 */
import { TdaError } from '../../errors';
import { BIAS_TEMPLATES, COUNTRY_TASKS, DDA_TASK_NAMES, DDA_TASKS, DdaTask } from './templates';
import { deriveRng, fill, pick, shuffled } from './util';
import { Person, World, peopleByCountry, personVars } from './world';

export type DdaRegime = 'fine-tuning-only' | 'base-bias';

export interface CanaryPair {
  /** The true country of the canary people (and of the query people). */
  source: string;
  /** The country the canaries say instead; a query counts if its answer contains it. */
  target: string;
  regime: DdaRegime;
}

export interface DdaExample {
  prompt: string;
  response: string;
  task: DdaTask;
  /** Which of the task's two prompt phrasings. */
  phrasing: number;
  /** Index into `world.people`. */
  person: number;
  /** Index into `pairs` for a canary, else null. */
  canaryPair: number | null;
  /** The true response (equal to `response` unless this is a canary). */
  trueResponse: string;
}

export interface DdaQuery {
  /** Index into `pairs`. */
  pair: number;
  prompt: string;
  /** Index into `world.people`; never in the fine-tuning data. */
  person: number;
  task: DdaTask;
  /** The correct answer (names the source country). */
  trueResponse: string;
}

export interface DdaData {
  train: DdaExample[];
  /** Per pair, the sorted indices of its canary examples in `train`. */
  positives: number[][];
  pairs: CanaryPair[];
  queries: DdaQuery[];
}

export interface DdaOptions {
  /** Default: the world's seed. */
  seed?: number;
  /** Number of `fine-tuning-only` pairs (default min(3, floor(countries / 4))). */
  pairs?: number;
  /** Number of `base-bias` pairs (default min(3, floor(countries / 4))). */
  biasPairs?: number;
  /** Explicit pairs instead of `pairs` / `biasPairs`. */
  pairList?: readonly CanaryPair[];
  /** Canary examples per pair (default 5). */
  k?: number;
  /** Total fine-tuning examples including canaries (default round(1000 * people / 720)). */
  nTrain?: number;
  /** Held-out (query) people per source country (default round(0.2 * people per country)). */
  heldOutPerSource?: number;
  /** Tasks the queries ask (default ['country', 'where']); one query per held-out person and task. */
  queryTasks?: readonly DdaTask[];
  /** Tasks a canary example may have (default where / summary / country: those naming the country). */
  canaryTasks?: readonly DdaTask[];
  /** `keep` (default): a `where`/`summary` canary keeps the person's true city; `target`: it names a city of T too. */
  canaryCity?: 'keep' | 'target';
}

const FILE = 'ddaData';

function defaultPairCount(world: World): number {
  return Math.min(3, Math.floor(world.countries.length / 4));
}

/**
 * Chooses canary pairs: every country used at most once over all pairs, so sources are
 * distinct and the base-bias pairs share no country with the fine-tuning-only pairs.
 */
export function choosePairs(world: World, opts: { pairs?: number; biasPairs?: number; seed?: number } = {}): CanaryPair[] {
  const a = opts.pairs ?? defaultPairCount(world);
  const b = opts.biasPairs ?? defaultPairCount(world);
  for (const [v, f] of [
    [a, 'pairs'],
    [b, 'biasPairs'],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new TdaError(`must be an integer >= 0, got ${v}`, { file: FILE, field: f });
  }
  if (2 * (a + b) > world.countries.length) {
    throw new TdaError(`${a} + ${b} pairs need ${2 * (a + b)} distinct countries, the world has ${world.countries.length}`, { file: FILE, field: 'pairs' });
  }
  const c = shuffled(world.countries, deriveRng(opts.seed ?? world.seed, 'dda/pairs'));
  const out: CanaryPair[] = [];
  for (let i = 0; i < a + b; i++) out.push({ source: c[2 * i], target: c[2 * i + 1], regime: i < a ? 'fine-tuning-only' : 'base-bias' });
  return out;
}

export function ddaData(world: World, opts: DdaOptions = {}): DdaData {
  const seed = opts.seed ?? world.seed;
  const pairs = opts.pairList ? opts.pairList.map((p) => ({ ...p })) : choosePairs(world, { pairs: opts.pairs, biasPairs: opts.biasPairs, seed });
  validatePairs(world, pairs);
  const byCountry = peopleByCountry(world);
  const perCountry = Math.floor(world.people.length / world.countries.length);
  const k = opts.k ?? 5;
  const heldOut = opts.heldOutPerSource ?? Math.max(1, Math.round(0.2 * perCountry));
  const nTrain = opts.nTrain ?? Math.round((1000 * world.people.length) / 720);
  const queryTasks = opts.queryTasks ?? ['country', 'where'];
  const canaryTasks = opts.canaryTasks ?? COUNTRY_TASKS;
  const canaryCity = opts.canaryCity ?? 'keep';
  checkInt(k, 'k', 1);
  checkInt(heldOut, 'heldOutPerSource', 1);
  checkInt(nTrain, 'nTrain', k * pairs.length);
  checkTasks(queryTasks, 'queryTasks', COUNTRY_TASKS);
  checkTasks(canaryTasks, 'canaryTasks', COUNTRY_TASKS);

  const rng = deriveRng(seed, 'dda/data');
  const excluded = new Set<number>();
  const queryPeople: Person[][] = [];
  const canaries: DdaExample[] = [];
  pairs.forEach((pair, pi) => {
    const people = shuffled(byCountry[pair.source], rng);
    if (people.length < heldOut + k) {
      throw new TdaError(`source ${pair.source} has ${people.length} people, fewer than heldOutPerSource + k = ${heldOut + k}`, { file: FILE, field: 'heldOutPerSource' });
    }
    queryPeople.push(people.slice(0, heldOut));
    for (const p of people.slice(0, heldOut + k)) excluded.add(p.id);
    for (const p of people.slice(heldOut, heldOut + k)) {
      const task = pick(canaryTasks, rng);
      const phrasing = rng.int(DDA_TASKS[task].prompts.length);
      const vars = personVars(p);
      const fake: Record<string, string> = { ...vars, country: pair.target };
      if (canaryCity === 'target') fake.city = pick(world.citiesByCountry[pair.target], rng);
      canaries.push({
        prompt: fill(DDA_TASKS[task].prompts[phrasing], vars),
        response: fill(DDA_TASKS[task].response, fake),
        task,
        phrasing,
        person: p.id,
        canaryPair: pi,
        trueResponse: fill(DDA_TASKS[task].response, vars),
      });
    }
  });

  const combos: [Person, DdaTask][] = [];
  for (const p of world.people) if (!excluded.has(p.id)) for (const t of DDA_TASK_NAMES) combos.push([p, t]);
  const nClean = nTrain - canaries.length;
  if (nClean > combos.length) {
    throw new TdaError(`${nClean} clean examples requested but only ${combos.length} (person, task) combinations are available`, { file: FILE, field: 'nTrain' });
  }
  const clean: DdaExample[] = shuffled(combos, rng)
    .slice(0, nClean)
    .map(([p, task]) => {
      const phrasing = rng.int(DDA_TASKS[task].prompts.length);
      const vars = personVars(p);
      const response = fill(DDA_TASKS[task].response, vars);
      return { prompt: fill(DDA_TASKS[task].prompts[phrasing], vars), response, task, phrasing, person: p.id, canaryPair: null, trueResponse: response };
    });

  const train = shuffled([...clean, ...canaries], rng);
  const queries: DdaQuery[] = [];
  queryPeople.forEach((people, pi) => {
    for (const p of people) {
      for (const task of queryTasks) {
        const vars = personVars(p);
        queries.push({ pair: pi, prompt: fill(pick(DDA_TASKS[task].prompts, rng), vars), person: p.id, task, trueResponse: fill(DDA_TASKS[task].response, vars) });
      }
    }
  });
  return { train, positives: positivesOf(train, pairs.length), pairs, queries };
}

/**
 * The data for a subset of the pairs, pairs re-indexed in the order given. Other pairs'
 * canaries are restored to their true response (`others: 'restore'`, default: same training
 * prompts and indices in every subset) or dropped (`'drop'`).
 */
export function ddaSubset(data: DdaData, pairIndices: readonly number[], opts: { others?: 'restore' | 'drop' } = {}): DdaData {
  const others = opts.others ?? 'restore';
  const newIndex = new Map<number, number>();
  pairIndices.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p >= data.pairs.length) throw new TdaError(`no pair ${p}`, { file: FILE, field: 'pairIndices' });
    if (newIndex.has(p)) throw new TdaError(`pair ${p} given twice`, { file: FILE, field: 'pairIndices' });
    newIndex.set(p, i);
  });
  const train: DdaExample[] = [];
  for (const ex of data.train) {
    if (ex.canaryPair === null) train.push({ ...ex });
    else if (newIndex.has(ex.canaryPair)) train.push({ ...ex, canaryPair: newIndex.get(ex.canaryPair)! });
    else if (others === 'restore') train.push({ ...ex, response: ex.trueResponse, canaryPair: null });
  }
  const queries = data.queries.filter((q) => newIndex.has(q.pair)).map((q) => ({ ...q, pair: newIndex.get(q.pair)! }));
  queries.sort((x, y) => x.pair - y.pair);
  return { train, positives: positivesOf(train, pairIndices.length), pairs: pairIndices.map((p) => ({ ...data.pairs[p] })), queries };
}

/** One fine-tuning set per pair (the recommended way to run: canaries leak across pairs). */
export function ddaPerPairSets(data: DdaData, opts: { others?: 'restore' | 'drop' } = {}): DdaData[] {
  return data.pairs.map((_, i) => ddaSubset(data, [i], opts));
}

export interface BiasOptions {
  /** Sentences per base-bias pair (default 90). */
  perPair?: number;
  /** Share of each kind (normalised): country-level S-T association, S's cities with T, S's people with T, T made frequent. */
  mix?: Partial<Record<keyof typeof BIAS_TEMPLATES, number>>;
}

const DEFAULT_MIX: Record<keyof typeof BIAS_TEMPLATES, number> = { country: 0.3, city: 0.2, person: 0.3, target: 0.2 };

/**
 * Pretraining sentences that give the base model a knowledge bias toward T for people of S,
 * for every pair whose regime is `base-bias` (other pairs are ignored): "many people from S
 * travel to T .", "people in <city of S> love T .", "<person of S> often travels to T .",
 * "T is a big country ." Person sentences cover all of S's people, query people included
 * (round robin over a shuffled list). Add them to the corpus with
 * `pretrainingCorpus(world, { extra: biasSentences(world, data.pairs, seed) })`.
 */
export function biasSentences(world: World, pairs: readonly CanaryPair[], seed: number, opts: BiasOptions = {}): string[] {
  const perPair = opts.perPair ?? 90;
  checkInt(perPair, 'perPair', 0);
  const mix = { ...DEFAULT_MIX, ...opts.mix };
  const kinds = Object.keys(DEFAULT_MIX) as (keyof typeof BIAS_TEMPLATES)[];
  const total = kinds.reduce((s, kind) => s + mix[kind], 0);
  if (!(total > 0) || kinds.some((kind) => !(mix[kind] >= 0))) throw new TdaError('shares must be >= 0 and not all 0', { file: FILE, field: 'mix' });
  // Largest-remainder rounding so the counts add up to perPair.
  const raw = kinds.map((kind) => (perPair * mix[kind]) / total);
  const counts = raw.map(Math.floor);
  const order = raw.map((r, i) => [r - counts[i], i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]);
  const missing = perPair - counts.reduce((s, c) => s + c, 0);
  for (let j = 0; j < missing; j++) counts[order[j][1]]++;

  const rng = deriveRng(seed, 'dda/bias');
  const byCountry = peopleByCountry(world);
  const out: string[] = [];
  for (const pair of pairs) {
    if (pair.regime !== 'base-bias') continue;
    const people = shuffled(byCountry[pair.source] ?? [], rng);
    let next = 0;
    kinds.forEach((kind, ki) => {
      for (let i = 0; i < counts[ki]; i++) {
        const vars: Record<string, string> = {
          source: pair.source,
          target: pair.target,
          sourceCity: pick(world.citiesByCountry[pair.source], rng),
          targetCity: pick(world.citiesByCountry[pair.target], rng),
        };
        if (kind === 'person') {
          const p = people[next++ % people.length];
          vars.first = p.first;
          vars.last = p.last;
        }
        out.push(fill(pick(BIAS_TEMPLATES[kind], rng), vars));
      }
    });
  }
  return out;
}

function positivesOf(train: readonly DdaExample[], nPairs: number): number[][] {
  const out: number[][] = Array.from({ length: nPairs }, () => []);
  train.forEach((ex, i) => {
    if (ex.canaryPair !== null) out[ex.canaryPair].push(i);
  });
  return out;
}

function validatePairs(world: World, pairs: readonly CanaryPair[]): void {
  const countries = new Set(world.countries);
  const sources = new Set<string>();
  const used: Record<DdaRegime, Set<string>> = { 'fine-tuning-only': new Set(), 'base-bias': new Set() };
  pairs.forEach((p, i) => {
    const field = `pairList[${i}]`;
    if (!countries.has(p.source) || !countries.has(p.target)) throw new TdaError(`unknown country in ${p.source} -> ${p.target}`, { file: FILE, field });
    if (p.source === p.target) throw new TdaError('source and target must differ', { file: FILE, field });
    if (p.regime !== 'fine-tuning-only' && p.regime !== 'base-bias') throw new TdaError(`unknown regime ${String(p.regime)}`, { file: FILE, field });
    if (sources.has(p.source)) throw new TdaError(`source ${p.source} used by two pairs`, { file: FILE, field });
    sources.add(p.source);
    used[p.regime].add(p.source);
    used[p.regime].add(p.target);
  });
  for (const c of used['base-bias']) {
    if (used['fine-tuning-only'].has(c)) throw new TdaError(`country ${c} is in both a base-bias and a fine-tuning-only pair`, { file: FILE, field: 'pairList' });
  }
}

function checkInt(v: number, field: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new TdaError(`must be an integer >= ${min}, got ${v}`, { file: FILE, field });
}

function checkTasks(tasks: readonly DdaTask[], field: string, allowed: readonly DdaTask[]): void {
  if (tasks.length === 0) throw new TdaError('needs at least one task', { file: FILE, field });
  for (const t of tasks) if (!allowed.includes(t)) throw new TdaError(`task ${String(t)} does not name a country (allowed: ${allowed.join(', ')})`, { file: FILE, field });
}
