/**
 * `tda-lab ekfac-factors`: EK-FAC factors of a LoRA adapter over a JSONL dataset (the
 * training data), for `tda-lab score --method ekfac --factors <file>`. The file records the
 * model, adapter (path and content hash), data, label mask and Fisher it was made with;
 * `score` refuses it for gradients taken at another adapter or with another mask.
 */
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { computeEkfacFactors, FISHER_KINDS, FisherKind } from '../attribution/ekfacFactors';
import { writeEkfacFactors } from '../attribution/ekfacFile';
import { LabelMask } from '../data/batch';
import { TdaError } from '../errors';
import { hashAdapterDir } from '../gradients/store';
import { outputLockFile, withLock } from '../io/lock';
import { DEFAULT_BATCH_SIZE, GradsOptions, loadGradsInputs } from './grads';
import { positiveInt } from './parsers';
import { progressBar } from './progress';

/** What `grads --out` reads and writes, plus the Fisher's labels. */
export interface EkfacFactorsCommandOptions extends Pick<GradsOptions, 'model' | 'adapter' | 'data' | 'out' | 'mask' | 'batchSize' | 'progress'> {
  fisher?: FisherKind;
  seed?: number;
}

export interface EkfacFactorsSummary {
  examples: number;
  tokens: number;
  tensors: number;
  seconds: number;
}

/** One writer per output file: a second run to the same --out is refused, naming the first. */
export async function runEkfacFactors(o: EkfacFactorsCommandOptions): Promise<EkfacFactorsSummary> {
  return withLock(outputLockFile(o.out), `output ${o.out}`, () => computeFactorsFile(o));
}

async function computeFactorsFile(o: EkfacFactorsCommandOptions): Promise<EkfacFactorsSummary> {
  const started = Date.now();
  const mask = o.mask ?? 'response';
  if (mask !== 'response' && mask !== 'full') throw new TdaError(`unknown mask '${mask}' (use response or full)`, { field: '--mask' });
  const fisher = o.fisher ?? 'empirical';
  if (!FISHER_KINDS.includes(fisher)) throw new TdaError(`must be one of ${FISHER_KINDS.join(', ')}, got ${JSON.stringify(fisher)}`, { field: '--fisher' });
  const { model, adapter, tokenizer, examples } = loadGradsInputs(o.model, o.adapter, o.data);
  try {
    const bars = { 1: progressBar('ekfac covariances', o.progress ?? true), 2: progressBar('ekfac eigenvalues', o.progress ?? true) };
    const factors = await computeEkfacFactors(model, adapter, examples, {
      mask,
      batchSize: o.batchSize ?? DEFAULT_BATCH_SIZE,
      padId: tokenizer?.padId ?? 0,
      fisher,
      seed: o.seed,
      onProgress: (done, total, pass) => {
        if (pass === 2) bars[1].stop();
        bars[pass].update(done, total);
      },
    });
    bars[2].stop();
    factors.settings = { ...factors.settings, model: path.resolve(o.model), adapter: path.resolve(o.adapter), adapterHash: hashAdapterDir(o.adapter), data: path.resolve(o.data) };
    writeEkfacFactors(o.out, factors);
    return { examples: examples.length, tokens: factors.settings.tokens, tensors: factors.tensors.length, seconds: (Date.now() - started) / 1000 };
  } finally {
    model.dispose();
  }
}

function fisherKind(value: string): FisherKind {
  if (!(FISHER_KINDS as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${FISHER_KINDS.join(', ')}`);
  return value as FisherKind;
}

function maskChoice(value: string): LabelMask {
  if (value !== 'response' && value !== 'full') throw new InvalidArgumentError("must be 'response' or 'full'");
  return value;
}

function seedValue(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('must be a whole number >= 0');
  return Number(value);
}

export function registerEkfacFactorsCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('ekfac-factors')
    .description('EK-FAC factors of every LoRA tensor over the training data (for score --method ekfac --factors)')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors)')
    .requiredOption('--adapter <dir>', 'PEFT LoRA adapter directory: the checkpoint the training gradients were taken at')
    .requiredOption('--data <file>', 'the training data, JSONL as for tda-lab grads')
    .requiredOption('--out <file>', 'output .safetensors: covariances, eigenbases and corrected eigenvalues per LoRA tensor')
    .option('--mask <mask>', 'which tokens the loss counts: response or full (as for the gradients)', maskChoice, 'response' as LabelMask)
    .option('--fisher <kind>', 'empirical (the data\'s labels) or sampled (labels drawn from the model, the true Fisher)', fisherKind, 'empirical' as FisherKind)
    .option('--seed <n>', 'seed of the sampled labels (--fisher sampled)', seedValue, 0)
    .option('--batch-size <n>', 'examples per pass', positiveInt, DEFAULT_BATCH_SIZE)
    .action(async (o) => {
      if (o.fisher !== 'sampled' && o.seed !== 0) throw new TdaError('--seed applies to --fisher sampled only', { field: '--seed' });
      await startBackend();
      const s = await runEkfacFactors({ model: o.model, adapter: o.adapter, data: o.data, out: o.out, mask: o.mask, batchSize: o.batchSize, fisher: o.fisher, seed: o.seed });
      process.stderr.write(`wrote ${o.out}: factors of ${s.tensors} LoRA tensors from ${s.examples} examples (${s.tokens} tokens) in ${s.seconds.toFixed(1)} s\n`);
    });
}
