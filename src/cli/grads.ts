/** `tda-lab grads`: per-example LoRA gradients of a JSONL dataset, written as one safetensors file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LabelMask } from '../data/batch';
import { readExamplesJsonl, validateTokenIds } from '../data/examples';
import { loadTokenizer, TOKENIZER_FILE } from '../data/tokenizer';
import { TdaError } from '../errors';
import { loadAdapter, LoraAdapter } from '../model/adapter';
import { computeLoraGradients } from '../gradients/compute';
import { WeightStorage } from '../model/baseWeights';
import { writeGradientFile } from '../gradients/file';
import { outputLockFile, withLock } from '../io/lock';
import { LlamaModel } from '../model/llama';
import { progressBar } from './progress';
import { shardMetadata, shardRange, ShardSpec } from './shard';

export const DEFAULT_BATCH_SIZE = 8;

export interface GradsOptions {
  model: string;
  adapter: string;
  data: string;
  out: string;
  mask?: LabelMask;
  batchSize?: number;
  progress?: boolean;
  /** Compute only this slice of the examples (merge the slices with `tda-lab merge`). */
  shard?: ShardSpec;
  /** Where frozen weights live (model/baseWeights.ts WeightStorage; default auto). */
  weights?: WeightStorage;
  /** Layer recomputation in the backward pass (gradients/compute.ts; default auto). */
  recompute?: boolean | 'auto';
}

export interface GradsSummary {
  examples: number;
  tensors: number;
  seconds: number;
  losses: Float32Array;
}

/**
 * What a gradient run reads: the model, the adapter (checked against it), the model
 * directory's tokenizer if it has one, and the examples (token ids checked against the
 * vocabulary). The caller disposes the model.
 */
export function loadGradsInputs(modelDir: string, adapterDir: string, dataFile: string, weights: WeightStorage = 'auto') {
  const inputs = loadModelInputs(modelDir, adapterDir, dataFile, weights);
  return { ...inputs, adapter: inputs.adapter as LoraAdapter };
}

/** The same with the adapter optional (null: the base model alone). */
export function loadModelInputs(modelDir: string, adapterDir: string | null, dataFile: string, weights: WeightStorage = 'auto') {
  const model = LlamaModel.load(modelDir, { storage: weights });
  try {
    const adapter = adapterDir === null ? null : loadAdapter(adapterDir, model.config);
    const tokenizer = fs.existsSync(path.join(modelDir, TOKENIZER_FILE)) ? loadTokenizer(modelDir) : undefined;
    const examples = readExamplesJsonl(dataFile, tokenizer);
    validateTokenIds(examples, model.config.vocabSize, dataFile);
    return { model, adapter, tokenizer, examples };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** One writer per output file: a second `grads` to the same --out is refused, naming the first. */
export async function runGrads(opts: GradsOptions): Promise<GradsSummary> {
  return withLock(outputLockFile(opts.out), `output ${opts.out}`, () => computeGradsFile(opts));
}

async function computeGradsFile(opts: GradsOptions): Promise<GradsSummary> {
  const mask = opts.mask ?? 'response';
  if (mask !== 'response' && mask !== 'full') throw new TdaError(`unknown mask '${mask}' (use response or full)`, { field: '--mask' });
  const started = Date.now();
  const { model, adapter, tokenizer, examples: all } = loadGradsInputs(opts.model, opts.adapter, opts.data, opts.weights);
  try {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    const range = opts.shard ? shardRange(all.length, opts.shard, batchSize) : { start: 0, end: all.length };
    const examples = all.slice(range.start, range.end);
    if (examples.length === 0) throw new TdaError(`shard ${opts.shard?.index}/${opts.shard?.count} of ${all.length} examples is empty (use fewer shards)`, { field: '--shard' });
    const bar = progressBar('gradients', opts.progress ?? true);
    const grads = await computeLoraGradients(model, adapter, examples, {
      mask,
      batchSize,
      padId: tokenizer?.padId ?? 0,
      recompute: opts.recompute,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.stop();
    writeGradientFile(opts.out, grads, {
      mask,
      model: path.resolve(opts.model),
      adapter: path.resolve(opts.adapter),
      data: path.resolve(opts.data),
      lora_scaling: String(adapter.config.scaling),
      batch_size: String(batchSize),
      ...shardMetadata(opts.shard, all.length, range, 'examples'),
    });
    return { examples: examples.length, tensors: grads.blocks.length, seconds: (Date.now() - started) / 1000, losses: grads.losses };
  } finally {
    model.dispose();
  }
}
