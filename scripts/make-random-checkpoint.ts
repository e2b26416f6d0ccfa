/**
 * Writes a random LLaMA-shaped checkpoint in the Hugging Face layout (config.json, sharded
 * safetensors and their index), for benchmarks and scale tests: hubs are out of reach here.
 *
 *   npx tsx scripts/make-random-checkpoint.ts --preset 0.5b --out /tmp/llama-0.5b [--dtype BF16] [--seed 0] [--shard-bytes 1e9]
 *
 * Presets: see SIZE_PRESETS in src/model/synthetic.ts (5m, 50m, 0.5b, and the public shapes
 * tinyllama-1.1b, llama-3.2-1b, qwen2.5-1.5b, llama2-7b). One tensor is in
 * memory at a time, so any size can be written.
 */
import { Command } from 'commander';
import { progressBar } from '../src/cli/progress';
import { isDType } from '../src/io/dtype';
import { llamaConfig, parameterCount, SIZE_PRESETS, writeLargeRandomCheckpoint } from '../src/model/synthetic';

const program = new Command()
  .requiredOption('--out <dir>', 'output directory')
  .option('--preset <name>', `model size: ${Object.keys(SIZE_PRESETS).join(', ')}`, '0.5b')
  .option('--dtype <dtype>', 'F32, F16 or BF16', 'BF16')
  .option('--seed <n>', 'random seed', '0')
  .option('--shard-bytes <n>', 'largest shard file', '1e9')
  .parse();
const o = program.opts();
const preset = SIZE_PRESETS[o.preset];
if (!preset) throw new Error(`unknown preset '${o.preset}' (use ${Object.keys(SIZE_PRESETS).join(', ')})`);
if (!isDType(o.dtype) || !['F32', 'F16', 'BF16'].includes(o.dtype)) throw new Error(`--dtype must be F32, F16 or BF16, got '${o.dtype}'`);
const cfg = llamaConfig(preset);
const bar = progressBar(`writing ${(parameterCount(cfg) / 1e6).toFixed(0)}M parameters (${o.dtype})`);
const started = Date.now();
const { shards } = writeLargeRandomCheckpoint(o.out, cfg, Number(o.seed), {
  dtype: o.dtype,
  maxShardBytes: Number(o.shardBytes),
  onTensor: (made, total) => bar.update(made, total),
});
bar.stop();
process.stderr.write(`wrote ${o.out}: ${shards.length} shards in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
