/**
 * `tda-lab score`: a [nTest, nTrain] score matrix, or with `--top-k` the best k training
 * examples per query, for any method of the registry (attribution/registry.ts): gradient
 * methods read gradient files or store directories, embedding methods the files of
 * `tda-lab embed`, text methods JSONL examples. Each method's flags, defaults and help
 * come from its descriptor; the file records the fully resolved settings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { methodByName, METHODS } from '../attribution/registry';
import { MethodDescriptor, optionFlag, resolveOptions, Scorer, Settings } from '../attribution/method';
import { writeScoreFile, writeTopKFile } from '../attribution/scoreFile';
import { TopKAccumulator, TopKScores } from '../attribution/topK';
import { ScoreMatrix } from '../attribution/types';
import { GradientAttributor } from '../attribution/gradientAttributor';
import { checkFactorsMatch } from '../attribution/ekfac';
import { readEkfacFactors } from '../attribution/ekfacFile';
import { readTextsJsonl } from '../data/texts';
import { TdaError } from '../errors';
import { checkCompatible } from '../gradients/checks';
import { readGradientFile } from '../gradients/file';
import { canonicalJson, GradientStore, MANIFEST_FILE, Projector, ProjectionSpec, storeSource } from '../gradients/store';
import { GradientSet, GradientSource, inMemorySource, sliceExamples } from '../gradients/types';
import { EmbeddingSet } from '../model/embeddings';
import { readEmbeddingFile } from './embed';
import { parseShard, shardMetadata, shardRange, ShardSpec } from './shard';
import { withOutputLock } from '../io/lock';

export interface ScoreOptions {
  method: string;
  /** Gradient methods: a gradient file or store directory (streamed); embedding methods: an embeddings file; text methods: a JSONL file. */
  train: string;
  /** The same kinds as `train` (a store is read whole: queries are few). */
  test: string;
  out: string;
  /** The method's own options by key (see its descriptor); defaults fill the rest. */
  options?: Record<string, unknown>;
  /** Score only this slice of the test queries (rows); merge with `tda-lab merge`. */
  shard?: ShardSpec;
  /** Keep only the best k training examples per query (file format tda-lab.topk). */
  topK?: number;
  /** Factors of methods whose input is `gradients+factors` (ekfac: a file of `tda-lab ekfac-factors`). */
  factors?: string;
}

export interface ScoreResult {
  nTest: number;
  nTrain: number;
  /** Entries per query in a top-k file (k clamped to nTrain); undefined for a full matrix. */
  k?: number;
  seconds: number;
  settings: Settings;
}

/** Gradients as the score command reads them: where they come from decides how. */
interface Loaded {
  mask?: string;
  projection: ProjectionSpec | null;
  /** The adapter (checkpoint) the gradients were taken at: a grads file's adapter path, a store's adapter hash. */
  checkpoint?: string;
}

function isStore(p: string): boolean {
  return fs.existsSync(p) && fs.statSync(p).isDirectory();
}

/** Training side: a store is streamed (fixed memory); a file is read whole. */
function loadTrain(p: string): Loaded & { source: GradientSource } {
  if (isStore(p)) {
    const store = GradientStore.openExisting(p);
    return { source: storeSource(store), mask: store.settings.mask, projection: store.settings.projection, checkpoint: `sha256:${store.settings.adapterHash}` };
  }
  const f = readGradientFile(p);
  return { source: inMemorySource(f.set), mask: f.metadata.mask, projection: null, checkpoint: f.metadata.adapter };
}

function loadTest(p: string): Loaded & { set: GradientSet } {
  if (isStore(p)) {
    const store = GradientStore.openExisting(p);
    return { set: store.readAll(), mask: store.settings.mask, projection: store.settings.projection, checkpoint: `sha256:${store.settings.adapterHash}` };
  }
  const f = readGradientFile(p);
  return { set: f.set, mask: f.metadata.mask, projection: null, checkpoint: f.metadata.adapter };
}

/**
 * Test blocks in the training side's order (a grads file lists tensors sorted by name, a
 * store in adapter order), projected like a projected training store when they are not yet.
 */
function alignTest(test: Loaded & { set: GradientSet }, train: Loaded & { source: GradientSource }, o: ScoreOptions): GradientSet {
  let set = test.set;
  const byName = new Map(set.blocks.map((b) => [b.name, b]));
  if (set.blocks.length === train.source.blocks.length && train.source.blocks.every((b) => byName.has(b.name))) {
    set = { ...set, blocks: train.source.blocks.map((b) => byName.get(b.name)!) };
  }
  const same = canonicalJson(test.projection) === canonicalJson(train.projection);
  if (!same && test.projection === null && train.projection) {
    const projector = new Projector(train.projection);
    try {
      set = projector.projectSet(set);
    } finally {
      projector.dispose();
    }
  } else if (!same) {
    throw new TdaError(`projection ${canonicalJson(test.projection)} differs from the training store's ${canonicalJson(train.projection)} (${o.train})`, {
      file: o.test,
      field: 'projection',
    });
  }
  return set;
}

/** What a method scores, read for it: the training side, the queries, and what the inputs were made with. */
interface Inputs {
  train: unknown;
  nTest: number;
  /** Queries [start, end) in the form the method takes. */
  queries(start: number, end: number): unknown;
  inputSettings: Settings;
}

function gradientInputs(o: ScoreOptions): Inputs {
  const train = loadTrain(o.train);
  const test = loadTest(o.test);
  if (train.mask && test.mask && train.mask !== test.mask) {
    throw new TdaError(`label mask '${test.mask}' differs from the training gradients' '${train.mask}' (${o.train})`, { file: o.test, field: 'mask' });
  }
  // Both sides at one checkpoint (comparable when both are files, or both stores).
  const sameKind = (a?: string, b?: string) => a !== undefined && b !== undefined && a.startsWith('sha256:') === b.startsWith('sha256:');
  if (sameKind(train.checkpoint, test.checkpoint) && train.checkpoint !== test.checkpoint) {
    throw new TdaError(`gradients were taken at adapter ${test.checkpoint} but the training gradients at ${train.checkpoint} (${o.train})`, { file: o.test, field: 'adapter' });
  }
  const testSet = alignTest(test, train, o);
  checkCompatible(train.source, testSet, { test: o.test });
  return {
    train: train.source,
    nTest: testSet.n,
    queries: (start, end) => (start === 0 && end === testSet.n ? testSet : sliceExamples(testSet, start, end)),
    inputSettings: { mask: train.mask ?? 'unknown', projection: train.projection, ...(train.checkpoint ? { checkpoint: train.checkpoint } : {}) },
  };
}

function embeddingInputs(o: ScoreOptions): Inputs {
  const train = readEmbeddingFile(o.train);
  const test = readEmbeddingFile(o.test);
  for (const key of ['pool', 'mask'] as const) {
    if (train.metadata[key] !== test.metadata[key]) {
      throw new TdaError(`'${key}' is ${JSON.stringify(test.metadata[key])} but ${JSON.stringify(train.metadata[key])} in the training embeddings (${o.train})`, { file: o.test, field: key });
    }
  }
  if (train.set.dim !== test.set.dim) throw new TdaError(`has dimension ${test.set.dim} but the training embeddings have ${train.set.dim} (${o.train})`, { file: o.test, field: 'embeddings' });
  const q = test.set;
  return {
    train: train.set,
    nTest: q.n,
    queries: (start, end): EmbeddingSet => ({ n: end - start, dim: q.dim, data: q.data.slice(start * q.dim, end * q.dim) }),
    inputSettings: { pool: train.metadata.pool ?? 'unknown', mask: train.metadata.mask ?? 'unknown' },
  };
}

function textInputs(o: ScoreOptions): Inputs {
  const test = readTextsJsonl(o.test);
  return { train: readTextsJsonl(o.train), nTest: test.length, queries: (start, end) => test.slice(start, end), inputSettings: {} };
}

/** Methods that need each checkpoint's gradients and optimizer state are library-only for now. */
function checkpointInputs(o: ScoreOptions): Inputs {
  throw new TdaError(
    `${o.method} scores from per-checkpoint gradients with the optimizer state saved at each checkpoint, which tda-lab score does not read; ` +
      `use the library: createScorer('${o.method}').cache(checkpoints) with { train, optimizer: readOptimizerState(dir) } per checkpoint (README, Attribution)`,
    { field: '--method' },
  );
}

/** Gradients with the factors computed at the same adapter and label mask (ekfac). */
function factoredInputs(o: ScoreOptions): Inputs {
  if (o.factors === undefined) throw new TdaError(`${o.method} needs --factors <file>: make it with tda-lab ekfac-factors on the training data and adapter`, { field: '--factors' });
  const g = gradientInputs(o);
  const factors = readEkfacFactors(o.factors);
  checkFactorsMatch(factors.settings, g.inputSettings, { factorsFile: o.factors, train: o.train });
  const factorsFile = path.resolve(o.factors);
  return { ...g, train: { train: g.train, factors, factorsFile }, inputSettings: { ...g.inputSettings, factors: factorsFile } };
}

const INPUTS: Record<MethodDescriptor['input'], (o: ScoreOptions) => Inputs> = {
  gradients: gradientInputs,
  embeddings: embeddingInputs,
  texts: textInputs,
  checkpoints: checkpointInputs,
  'gradients+factors': factoredInputs,
};

/** Top-k: streamed in fixed memory by gradient methods, else taken from the full matrix. */
function topK(scorer: Scorer, queries: unknown, k: number): TopKScores {
  if (scorer instanceof GradientAttributor) return scorer.attributeTopK(queries as GradientSet, k);
  const s: ScoreMatrix = scorer.attribute(queries);
  const acc = new TopKAccumulator(s.nTest, s.nTrain, Math.min(k, s.nTrain));
  acc.add(s.data, 0, s.nTrain);
  return acc.result();
}

/** Rows [first, first + count) of a score matrix or top-k result (itself when that is every row). */
function keepRows<T extends ScoreMatrix | TopKScores>(r: T, first: number, count: number): T {
  if (first === 0 && count === r.nTest) return r;
  if ('indices' in r) {
    const k = r.k;
    return { ...r, nTest: count, indices: r.indices.slice(first * k, (first + count) * k), scores: r.scores.slice(first * k, (first + count) * k) };
  }
  return { ...r, nTest: count, data: r.data.slice(first * r.nTrain, (first + count) * r.nTrain) };
}

/** One writer per output file: a second `score` to the same --out is refused, naming the first. */
export function runScore(o: ScoreOptions): ScoreResult {
  return withOutputLock(o.out, () => score(o));
}

function score(o: ScoreOptions): ScoreResult {
  const started = Date.now();
  const method = methodByName(o.method);
  const scorer: Scorer = method.create(resolveOptions(method, o.options ?? {}));
  if (o.factors !== undefined && method.input !== 'gradients+factors') {
    throw new TdaError(`${method.name} does not read factors (only ${METHODS.filter((m) => m.input === 'gradients+factors').map((m) => m.name).join(', ')})`, { field: '--factors' });
  }
  const inputs = INPUTS[method.input](o);
  scorer.cache(inputs.train);
  // Rows are independent given the whole training set, so shards split the queries.
  const range = o.shard ? shardRange(inputs.nTest, o.shard) : { start: 0, end: inputs.nTest };
  if (range.end <= range.start) throw new TdaError(`shard ${o.shard?.index}/${o.shard?.count} of ${inputs.nTest} queries is empty (use fewer shards)`, { field: '--shard' });
  // Scorers that take queries in fixed blocks (native products) score whole blocks, so a
  // shard's queries get exactly the arithmetic of a single run; its own rows are kept.
  const align = scorer instanceof GradientAttributor ? scorer.queryAlignment() : 1;
  const outer = { start: Math.floor(range.start / align) * align, end: Math.min(inputs.nTest, Math.ceil(range.end / align) * align) };
  const queries = inputs.queries(outer.start, outer.end);
  const scored = o.topK === undefined ? scorer.attribute(queries) : topK(scorer, queries, o.topK);
  const result = keepRows(scored, range.start - outer.start, range.end - range.start);
  // Settings after scoring: damping, convergence and bandwidths are known by now.
  const settings: Settings = { ...scorer.settings(), inputs: inputs.inputSettings };
  const metadata: Record<string, string> = {
    method: method.name,
    sign: 'positive = the training example helps the test output',
    train: path.resolve(o.train),
    test: path.resolve(o.test),
    mask: String(inputs.inputSettings.mask ?? 'none'),
    settings: canonicalJson(settings),
    ...(settings.damping ? { damping: JSON.stringify(settings.damping) } : {}),
    ...shardMetadata(o.shard, inputs.nTest, range, 'queries'),
  };
  const seconds = () => (Date.now() - started) / 1000;
  if ('indices' in result) {
    writeTopKFile(o.out, result, { ...metadata, order: 'descending score; ties: lower training index first' });
    return { nTest: result.nTest, nTrain: result.nTrain, k: result.k, seconds: seconds(), settings };
  }
  writeScoreFile(o.out, result, metadata);
  return { nTest: result.nTest, nTrain: result.nTrain, seconds: seconds(), settings };
}

function wholeNumber(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < min) throw new InvalidArgumentError(`must be a whole number >= ${min}`);
    return Number(value);
  };
}

/** Every option of every method, once, with the methods that take it (the command's flags). */
function methodOptionFlags(): Option[] {
  const seen = new Map<string, { description: string; methods: string[]; defaults: Set<string> }>();
  for (const m of METHODS) {
    for (const spec of m.options) {
      const e = seen.get(spec.key) ?? { description: spec.description, methods: [], defaults: new Set<string>() };
      e.methods.push(m.name);
      if (spec.default !== undefined) e.defaults.add(String(spec.default));
      seen.set(spec.key, e);
    }
  }
  return [...seen].map(([key, e]) => {
    const dflt = e.defaults.size === 1 ? `; default ${[...e.defaults][0]}` : '';
    return new Option(`${optionFlag(key)} <value>`, `${e.description} (${e.methods.join(', ')}${dflt})`);
  });
}

const methodList = () => METHODS.map((m) => `  ${m.name.padEnd(9)} ${m.summary} [${m.input}]`).join('\n');

export function registerScoreCommand(program: Command, startBackend: () => Promise<unknown>): void {
  const command = program
    .command('score')
    .description('score training examples for each test example (positive = helps), with any method below')
    .requiredOption('--method <name>', `one of ${METHODS.map((m) => m.name).join(', ')}`)
    .requiredOption('--train <path>', `training side: gradients (a file from tda-lab grads, or a store directory with ${MANIFEST_FILE}, streamed), embeddings (tda-lab embed) or JSONL texts, as the method needs`)
    .requiredOption('--test <path>', 'test side, of the same kind as --train (a store is read whole)')
    .requiredOption('--out <file>', 'output .safetensors: scores [nTest, nTrain], or with --top-k indices and scores [nTest, k]')
    .option('--top-k <k>', 'keep only the k most helpful training examples per query (fixed memory in nTrain for gradient methods); k above nTrain keeps all, ranked', wholeNumber(1))
    .option('--shard <i/n>', 'score only shard i of n of the test queries (0-based); combine with tda-lab merge', parseShard)
    .option('--factors <file>', 'ekfac: EK-FAC factors of the training data at the same adapter and mask (tda-lab ekfac-factors)')
    .addHelpText('after', `\nMethods:\n${methodList()}\n`);
  for (const option of methodOptionFlags()) command.addOption(option);
  command.action(async (o) => {
    await startBackend();
    const keys = [...new Set(METHODS.flatMap((m) => m.options.map((s) => s.key)))];
    const given = Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
    const r = runScore({ method: o.method, train: o.train, test: o.test, out: o.out, topK: o.topK, shard: o.shard, factors: o.factors, options: given });
    if (r.k === undefined) process.stderr.write(`wrote ${o.out}: ${r.nTest} x ${r.nTrain} scores in ${r.seconds.toFixed(1)} s\n`);
    else {
      const clamped = r.k < o.topK ? ` (--top-k ${o.topK} clamped to the ${r.nTrain} training examples)` : '';
      process.stderr.write(`wrote ${o.out}: top ${r.k} of ${r.nTrain} training examples for ${r.nTest} queries in ${r.seconds.toFixed(1)} s${clamped}\n`);
    }
  });
}
