/** `tda-lab score`: a [nTest, nTrain] score matrix from two gradient files. */
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { readGradientFile, writeScoreFile } from '../attribution/gradientFile';
import { createGradientAttributor, GRADIENT_METHODS, MethodOptions } from '../attribution/methods';
import { inMemorySource } from '../attribution/types';
import { TdaError } from '../errors';
import { DampedAttributor } from '../attribution/gradientAttributor';
import { checkCompatible } from '../attribution/gradientChecks';

export interface ScoreOptions extends MethodOptions {
  method: string;
  train: string;
  test: string;
  out: string;
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
  const scores = method.attribute(test.set);
  const metadata: Record<string, string> = {
    method: method.name,
    sign: 'positive = the training example helps the test output',
    train: path.resolve(o.train),
    test: path.resolve(o.test),
    mask: maskTrain ?? 'unknown',
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
    .action(async (o) => {
      await startBackend();
      const r = runScore({ method: o.method, train: o.train, test: o.test, out: o.out, dampingScale: o.dampingScale, iterations: o.lissaIterations, maxBlockSize: o.maxBlockSize });
      process.stderr.write(`wrote ${o.out}: ${r.nTest} x ${r.nTrain} scores in ${r.seconds.toFixed(1)} s\n`);
    });
}
