/**
 * `tda-lab score`: a [nTest, nTrain] score matrix, or with `--top-k` the best k training
 * examples per query, from gradient files or gradient store directories.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { readGradientFile } from '../gradients/file';
import { createGradientAttributor, GRADIENT_METHODS, MethodOptions } from '../attribution/methods';
import { TdaError } from '../errors';
import { DampedAttributor } from '../attribution/gradientAttributor';
import { parseShard, shardMetadata, shardRange, ShardSpec } from './shard';
import { checkCompatible } from '../gradients/checks';
import { canonicalJson, GradientStore, MANIFEST_FILE, Projector, ProjectionSpec, storeSource } from '../gradients/store';
import { GradientSet, GradientSource, inMemorySource, sliceExamples } from '../gradients/types';
import { writeScoreFile, writeTopKFile } from '../attribution/scoreFile';

export interface ScoreOptions extends MethodOptions {
  method: string;
  /** A gradient file, or a gradient store directory (streamed shard by shard). */
  train: string;
  /** A gradient file, or a gradient store directory (read whole: queries are few). */
  test: string;
  out: string;
  /** Score only this slice of the test queries (rows); merge with `tda-lab merge`. */
  shard?: ShardSpec;
  /** Keep only the best k training examples per query (file format tda-lab.topk). */
  topK?: number;
}

export interface ScoreResult {
  nTest: number;
  nTrain: number;
  /** Entries per query in a top-k file (k clamped to nTrain); undefined for a full matrix. */
  k?: number;
  seconds: number;
}

/** Gradients as the score command reads them: where they come from decides how. */
interface Loaded {
  mask?: string;
  projection: ProjectionSpec | null;
}

function isStore(p: string): boolean {
  return fs.existsSync(p) && fs.statSync(p).isDirectory();
}

/** Training side: a store is streamed (fixed memory); a file is read whole. */
function loadTrain(p: string): Loaded & { source: GradientSource } {
  if (isStore(p)) {
    const store = GradientStore.openExisting(p);
    return { source: storeSource(store), mask: store.settings.mask, projection: store.settings.projection };
  }
  const f = readGradientFile(p);
  return { source: inMemorySource(f.set), mask: f.metadata.mask, projection: null };
}

function loadTest(p: string): Loaded & { set: GradientSet } {
  if (isStore(p)) {
    const store = GradientStore.openExisting(p);
    return { set: store.readAll(), mask: store.settings.mask, projection: store.settings.projection };
  }
  const f = readGradientFile(p);
  return { set: f.set, mask: f.metadata.mask, projection: null };
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

export function runScore(o: ScoreOptions): ScoreResult {
  const started = Date.now();
  const train = loadTrain(o.train);
  const test = loadTest(o.test);
  if (train.mask && test.mask && train.mask !== test.mask) {
    throw new TdaError(`label mask '${test.mask}' differs from the training gradients' '${train.mask}' (${o.train})`, { file: o.test, field: 'mask' });
  }
  const testSet = alignTest(test, train, o);
  const method = createGradientAttributor(o.method, o);
  checkCompatible(train.source, testSet, { test: o.test });
  method.cache(train.source);
  // Rows are independent given the whole training set, so shards split the queries.
  const range = o.shard ? shardRange(testSet.n, o.shard) : { start: 0, end: testSet.n };
  if (range.end <= range.start) throw new TdaError(`shard ${o.shard?.index}/${o.shard?.count} of ${testSet.n} queries is empty (use fewer shards)`, { field: '--shard' });
  const queries = o.shard ? sliceExamples(testSet, range.start, range.end) : testSet;
  const metadata: Record<string, string> = {
    method: method.name,
    sign: 'positive = the training example helps the test output',
    train: path.resolve(o.train),
    test: path.resolve(o.test),
    mask: train.mask ?? 'unknown',
    ...shardMetadata(o.shard, testSet.n, range, 'queries'),
  };
  if (o.topK !== undefined) {
    const top = method.attributeTopK(queries, o.topK);
    if (method instanceof DampedAttributor) metadata.damping = JSON.stringify(method.dampingByBlock());
    writeTopKFile(o.out, top, { ...metadata, order: 'descending score; ties: lower training index first' });
    return { nTest: top.nTest, nTrain: top.nTrain, k: top.k, seconds: (Date.now() - started) / 1000 };
  }
  const scores = method.attribute(queries);
  if (method instanceof DampedAttributor) metadata.damping = JSON.stringify(method.dampingByBlock());
  writeScoreFile(o.out, scores, metadata);
  return { nTest: scores.nTest, nTrain: scores.nTrain, seconds: (Date.now() - started) / 1000 };
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function wholeNumber(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()) || Number(value) < min) throw new InvalidArgumentError(`must be a whole number >= ${min}`);
    return Number(value);
  };
}

export function registerScoreCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('score')
    .description('score training examples for each test example from gradient files or stores (positive = helps)')
    .requiredOption('--method <name>', `one of ${GRADIENT_METHODS.join(', ')}`)
    .requiredOption('--train <path>', `training gradients: a file from tda-lab grads, or a gradient store directory (with ${MANIFEST_FILE}; streamed shard by shard)`)
    .requiredOption('--test <path>', 'test gradients: a file from tda-lab grads, or a gradient store directory (read whole)')
    .requiredOption('--out <file>', 'output .safetensors: scores [nTest, nTrain], or with --top-k indices and scores [nTest, k]')
    .option('--top-k <k>', 'keep only the k most helpful training examples per query (fixed memory in nTrain); k above nTrain keeps all, ranked', wholeNumber(1))
    .option('--damping-scale <c>', 'damping lambda_l = c * mean squared gradient of block l', positiveNumber, 0.1)
    .option('--lissa-iterations <n>', 'LiSSA iterations', positiveNumber, 200)
    .option('--max-block-size <n>', 'largest system the exact method solves per block', positiveNumber, 4096)
    .option('--workers <n>', 'worker threads for the products (0 = this thread; default: every core for large jobs)', wholeNumber(0))
    .option('--shard <i/n>', 'score only shard i of n of the test queries (0-based); combine with tda-lab merge', parseShard)
    .action(async (o) => {
      await startBackend();
      const r = runScore({
        method: o.method,
        train: o.train,
        test: o.test,
        out: o.out,
        topK: o.topK,
        dampingScale: o.dampingScale,
        iterations: o.lissaIterations,
        maxBlockSize: o.maxBlockSize,
        workers: o.workers,
        shard: o.shard,
      });
      if (r.k === undefined) process.stderr.write(`wrote ${o.out}: ${r.nTest} x ${r.nTrain} scores in ${r.seconds.toFixed(1)} s\n`);
      else {
        const clamped = r.k < o.topK ? ` (--top-k ${o.topK} clamped to the ${r.nTrain} training examples)` : '';
        process.stderr.write(`wrote ${o.out}: top ${r.k} of ${r.nTrain} training examples for ${r.nTest} queries in ${r.seconds.toFixed(1)} s${clamped}\n`);
      }
    });
}
