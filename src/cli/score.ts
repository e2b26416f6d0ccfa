/** `tda-lab score`: a [nTest, nTrain] score matrix from two gradient files. */
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { readGradientFile, writeScoreFile } from '../attribution/gradientFile';
import { createGradientAttributor, GRADIENT_METHODS, MethodOptions } from '../attribution/methods';
import { inMemorySource } from '../attribution/types';
import { TdaError } from '../errors';
import { DampedAttributor } from '../attribution/gradientAttributor';
import { GradientSet } from '../attribution/types';
import { parseShard, shardMetadata, shardRange, ShardSpec } from './shard';
import { checkCompatible } from '../attribution/gradientChecks';

export interface ScoreOptions extends MethodOptions {
  method: string;
  train: string;
  test: string;
  out: string;
  /** Score only this slice of the test queries (rows); merge with `tda-lab merge`. */
  shard?: ShardSpec;
}

export function runScore(o: ScoreOptions): { nTest: number; nTrain: number; seconds: number } {
  const started = Date.now();
  const train = readGradientFile(o.train);
  const test = readGradientFile(o.test);
  const maskTrain = train.metadata.mask;
  const maskTest = test.metadata.mask;
  if (maskTrain && maskTest && maskTrain !== maskTest) {
    throw new TdaError(`label mask '${maskTest}' differs from the training gradients' '${maskTrain}' (${o.train})`, { file: o.test, field: 'mask' });
  }
  const method = createGradientAttributor(o.method, o);
  const trainSource = inMemorySource(train.set);
  checkCompatible(trainSource, test.set, { test: o.test });
  method.cache(trainSource);
  // Rows are independent given the whole training set, so shards split the queries.
  const range = o.shard ? shardRange(test.set.n, o.shard) : { start: 0, end: test.set.n };
  if (range.end <= range.start) throw new TdaError(`shard ${o.shard?.index}/${o.shard?.count} of ${test.set.n} queries is empty (use fewer shards)`, { field: '--shard' });
  const queries = o.shard ? sliceExamples(test.set, range.start, range.end) : test.set;
  const scores = method.attribute(queries);
  const metadata: Record<string, string> = {
    method: method.name,
    sign: 'positive = the training example helps the test output',
    train: path.resolve(o.train),
    test: path.resolve(o.test),
    mask: maskTrain ?? 'unknown',
    ...shardMetadata(o.shard, test.set.n, range, 'queries'),
  };
  if (method instanceof DampedAttributor) metadata.damping = JSON.stringify(method.dampingByBlock());
  writeScoreFile(o.out, scores, metadata);
  return { nTest: scores.nTest, nTrain: scores.nTrain, seconds: (Date.now() - started) / 1000 };
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

export function registerScoreCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('score')
    .description('score training examples for each test example from gradient files (positive = helps)')
    .requiredOption('--method <name>', `one of ${GRADIENT_METHODS.join(', ')}`)
    .requiredOption('--train <file>', 'training gradients (from tda-lab grads)')
    .requiredOption('--test <file>', 'test gradients (from tda-lab grads)')
    .requiredOption('--out <file>', 'output .safetensors holding scores [nTest, nTrain]')
    .option('--damping-scale <c>', 'damping lambda_l = c * mean squared gradient of block l', positiveNumber, 0.1)
    .option('--lissa-iterations <n>', 'LiSSA iterations', positiveNumber, 200)
    .option('--max-block-size <n>', 'largest system the exact method solves per block', positiveNumber, 4096)
    .option('--shard <i/n>', 'score only shard i of n of the test queries (0-based); combine with tda-lab merge', parseShard)
    .action(async (o) => {
      await startBackend();
      const r = runScore({ method: o.method, train: o.train, test: o.test, out: o.out, dampingScale: o.dampingScale, iterations: o.lissaIterations, maxBlockSize: o.maxBlockSize, shard: o.shard });
      process.stderr.write(`wrote ${o.out}: ${r.nTest} x ${r.nTrain} scores in ${r.seconds.toFixed(1)} s\n`);
    });
}

/** Examples [start, end) of a gradient set. */
export function sliceExamples(set: GradientSet, start: number, end: number): GradientSet {
  return {
    n: end - start,
    blocks: set.blocks.map((b) => ({ ...b, data: b.data.slice(start * b.dim, end * b.dim) })),
    losses: set.losses?.slice(start, end),
  };
}
