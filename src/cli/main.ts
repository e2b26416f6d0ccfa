/** The `tda-lab` command line. */
import { Command, InvalidArgumentError } from 'commander';
import { positiveInt } from './parsers';
import { LabelMask } from '../data/batch';
import { WeightStorage } from '../model/baseWeights';
import { BackendChoice, initBackend, NativeChoice } from '../runtime/backend';
import { runDemo } from './demo';
import { computePathLines } from './info';
import { DEFAULT_BATCH_SIZE, runGrads } from './grads';
import { runGradsToStore } from './gradsStore';
import { STORE_DTYPES, StoreDType } from '../gradients/store/manifest';
import { TdaError } from '../errors';
import { registerMergeCommand } from './merge';
import { parseShard } from './shard';
import { registerMetricsCommand } from './metrics';
import { registerScoreCommand } from './score';
import { registerEmbedCommand } from './embed';
import { registerReproduceCommand } from './reproduce';
import { registerExploreCommand } from './explore';
import { registerTokensCommand } from './tokens';
import { registerEkfacFactorsCommand } from './ekfacFactors';

function storeDType(value: string): StoreDType {
  if (!(STORE_DTYPES as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${STORE_DTYPES.join(', ')}`);
  return value as StoreDType;
}

function nativeChoice(value: string): NativeChoice {
  if (value !== 'auto' && value !== 'on' && value !== 'off') throw new InvalidArgumentError("must be 'auto', 'on' or 'off'");
  return value;
}

function mask(value: string): LabelMask {
  if (value !== 'response' && value !== 'full') throw new InvalidArgumentError("must be 'response' or 'full'");
  return value;
}

function weightStorage(value: string): WeightStorage {
  if (value !== 'auto' && value !== 'heap' && value !== 'mapped') throw new InvalidArgumentError("must be 'auto', 'heap' or 'mapped'");
  return value;
}

function recomputeChoice(value: string): boolean | 'auto' {
  if (value === 'auto') return 'auto';
  if (value === 'on' || value === 'off') return value === 'on';
  throw new InvalidArgumentError("must be 'on', 'off' or 'auto'");
}

export function buildProgram(): Command {
  const program = new Command('tda-lab')
    .description('Training data attribution for LoRA-tuned language models')
    .option('--backend <name>', 'tfjs backend: auto, wasm, cpu or tensorflow', 'auto')
    .option('--native <mode>', 'matrix products on native OpenBLAS (wasm backend): auto (when built), on or off; default: TDA_LAB_NATIVE, else auto', nativeChoice)
    .showHelpAfterError();

  const backend = async () => initBackend(program.opts().backend as BackendChoice, { native: program.opts().native as NativeChoice | undefined });

  program
    .command('grads')
    .description('per-example LoRA gradients of a JSONL dataset, written to a safetensors file (--out) or streamed into a resumable gradient store (--store)')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, model.safetensors)')
    .requiredOption('--adapter <dir>', 'PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--data <file>', 'JSONL: {"prompt","response"} or {"input_ids","prompt_length"} per line')
    .option('--out <file>', 'output .safetensors: one [nExamples, ...] tensor per adapter tensor, plus loss (held in memory)')
    .option('--store <dir>', 'gradient store directory instead: shards written as they are computed, resumed on re-run')
    .option('--store-shard-size <n>', 'with --store: examples per shard file', positiveInt, 256)
    .option('--store-dtype <dtype>', 'with --store: F32, F16 or BF16', storeDType, 'F32')
    .option('--project <k>', 'with --store: random projection (gaussian, seed 0) of every block to k dimensions', positiveInt)
    .option('--mask <mask>', 'which tokens the loss counts: response or full', mask, 'response' as LabelMask)
    .option('--batch-size <n>', 'examples per backward pass', positiveInt, DEFAULT_BATCH_SIZE)
    .option('--shard <i/n>', 'compute only shard i of n of the examples (0-based); combine with tda-lab merge', parseShard)
    .option('--weights <where>', 'frozen weights: mapped (left in the checkpoint files in their dtype, read in place by the native kernels; no size limit), heap (float32 in the wasm heap, at most ~0.9B parameters) or auto (mapped on the native path)', weightStorage, 'auto' as WeightStorage)
    .option('--recompute <mode>', 'recompute each layer in the backward pass (activation checkpointing: ~1.5x the work, a fraction of the memory): on, off or auto (when one pass of a batch would not fit the heap)', recomputeChoice, 'auto' as const)
    .action(async (o) => {
      if ((o.out === undefined) === (o.store === undefined)) throw new TdaError('give exactly one of --out <file> and --store <dir>', { field: '--out' });
      await backend();
      if (o.store !== undefined) {
        if (o.shard) throw new TdaError('--shard applies to --out files; a store is already written shard by shard (use --store-shard-size)', { field: '--shard' });
        // Ctrl-C and SIGTERM (a scheduler's stop) both end after the current batch, keeping every finished shard.
        const stop = new AbortController();
        const onInterrupt = () => stop.abort();
        process.once('SIGINT', onInterrupt);
        process.once('SIGTERM', onInterrupt);
        try {
          const s = await runGradsToStore({ model: o.model, adapter: o.adapter, data: o.data, store: o.store, mask: o.mask, batchSize: o.batchSize, shardSize: o.storeShardSize, dtype: o.storeDtype, projectDim: o.project, signal: stop.signal, weights: o.weights, recompute: o.recompute });
          process.stderr.write(`${o.store}: ${s.examples} examples; ${s.computedShards} shards computed, ${s.reusedShards} reused, in ${s.seconds.toFixed(1)} s\n`);
        } finally {
          process.off('SIGINT', onInterrupt);
          process.off('SIGTERM', onInterrupt);
        }
        return;
      }
      if (o.project !== undefined) throw new TdaError('--project needs --store', { field: '--project' });
      const s = await runGrads({ model: o.model, adapter: o.adapter, data: o.data, out: o.out, mask: o.mask, batchSize: o.batchSize, shard: o.shard, weights: o.weights, recompute: o.recompute });
      process.stderr.write(`wrote ${o.out}: ${s.examples} examples, ${s.tensors} tensors in ${s.seconds.toFixed(1)} s\n`);
    });

  program
    .command('demo')
    .description('end-to-end run on the bundled reference checkpoint')
    .action(async () => {
      await backend();
      await runDemo();
    });

  registerEmbedCommand(program, backend);
  program
    .command('info')
    .description('the compute path in use: backend, native BLAS (library, version, threads), worker threads, heap limits')
    .action(async () => {
      await backend();
      for (const line of await computePathLines()) console.log(line);
    });

  registerEkfacFactorsCommand(program, backend);
  registerScoreCommand(program, backend);
  registerMetricsCommand(program);
  registerReproduceCommand(program, backend);
  registerMergeCommand(program);
  registerExploreCommand(program, backend);
  registerTokensCommand(program, backend);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
