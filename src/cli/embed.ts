/**
 * `tda-lab embed`: per-example representations (the final hidden state at the last prompt
 * token, at the last token, or the mean over the tokens) of a JSONL dataset, written as safetensors `embeddings` [n, dim] for the
 * embedding methods of `tda-lab score` (repSim, density).
 */
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { positiveInt } from './parsers';
import { TdaError } from '../errors';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors';
import { checkEmbeddingSet, computeEmbeddings, EmbeddingSet, Pooling, POOLINGS } from '../model/embeddings';
import { loadModelInputs } from './grads';

export const EMBEDDINGS_FORMAT = 'tda-lab.embeddings';

export interface EmbedOptions {
  model: string;
  /** A PEFT adapter directory, or none for the base model. */
  adapter?: string;
  data: string;
  out: string;
  pool?: Pooling;
  batchSize?: number;
}

export function runEmbed(o: EmbedOptions): { n: number; dim: number } {
  const { model, adapter, tokenizer, examples } = loadModelInputs(o.model, o.adapter ?? null, o.data);
  try {
    const pool = o.pool ?? 'last';
    const set = computeEmbeddings(model, adapter, examples, { pool, batchSize: o.batchSize, padId: tokenizer?.padId ?? 0 });
    writeSafetensors(o.out, { embeddings: { shape: [set.n, set.dim], data: set.data } }, {
      format: EMBEDDINGS_FORMAT,
      pool,
      // Hidden states cover prompt and response alike: no label mask applies.
      mask: 'none',
      model: path.resolve(o.model),
      adapter: o.adapter ? path.resolve(o.adapter) : 'none',
      data: path.resolve(o.data),
    });
    return { n: set.n, dim: set.dim };
  } finally {
    model.dispose();
  }
}

export function readEmbeddingFile(file: string): { set: EmbeddingSet; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(file);
  try {
    if (!f.has('embeddings')) throw new TdaError(`holds no 'embeddings' tensor (write one with tda-lab embed)`, { file, field: 'embeddings' });
    const shape = f.info('embeddings').shape;
    if (shape.length !== 2 || shape[0] < 1 || shape[1] < 1) throw new TdaError(`must be [n, dim] with n, dim >= 1, got [${shape}]`, { file, field: 'embeddings' });
    const set = { n: shape[0], dim: shape[1], data: f.readFloat32('embeddings') };
    checkEmbeddingSet(set, 'embeddings', file);
    return { set, metadata: f.metadata };
  } finally {
    f.close();
  }
}

function pooling(value: string): Pooling {
  if (!(POOLINGS as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${POOLINGS.join(', ')}`);
  return value as Pooling;
}

export function registerEmbedCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('embed')
    .description('per-example embeddings (final hidden states) of a JSONL dataset, for score --method repSim|density')
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .option('--adapter <dir>', 'PEFT LoRA adapter directory (default: the base model alone)')
    .requiredOption('--data <file>', 'JSONL examples')
    .requiredOption('--out <file>', 'output .safetensors with embeddings [n, dim]')
    .option('--pool <how>', 'last-prompt (the last prompt token, as the IF-on-LLMs code), last (the last token: the end of the response) or mean (over the real tokens)', pooling, 'last')
    .option('--batch-size <n>', 'examples per forward pass', positiveInt, 8)
    .action(async (o) => {
      await startBackend();
      const r = runEmbed({ model: o.model, adapter: o.adapter, data: o.data, out: o.out, pool: o.pool, batchSize: o.batchSize });
      process.stderr.write(`wrote ${o.out}: ${r.n} x ${r.dim} embeddings\n`);
    });
}
