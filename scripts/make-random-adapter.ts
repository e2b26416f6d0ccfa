/**
 * Writes a random PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) that
 * fits a model directory, for benchmarks on random checkpoints. B is non-zero (see
 * src/model/randomAdapter.ts).
 *
 *   npx tsx scripts/make-random-adapter.ts --model /tmp/tinyllama --out /tmp/tinyllama-lora [--r 8] [--alpha 16] [--targets q_proj,k_proj,v_proj,o_proj] [--seed 0]
 */
import { Command } from 'commander';
import { saveAdapter } from '../src/model/adapter';
import { readModelConfig } from '../src/model/config';
import { randomAdapter } from '../src/model/randomAdapter';

const program = new Command()
  .requiredOption('--model <dir>', 'model directory (its config.json gives the shapes)')
  .requiredOption('--out <dir>', 'output directory')
  .option('--r <n>', 'LoRA rank', '8')
  .option('--alpha <n>', 'lora_alpha (default 2r)')
  .option('--targets <list>', 'comma-separated target modules', 'q_proj,k_proj,v_proj,o_proj')
  .option('--seed <n>', 'random seed', '0')
  .option('--b-std <x>', 'standard deviation of the B factors', '0.01')
  .parse();
const o = program.opts();
const r = Number(o.r);
const adapter = randomAdapter(readModelConfig(o.model), {
  r,
  loraAlpha: o.alpha === undefined ? 2 * r : Number(o.alpha),
  targetModules: String(o.targets).split(','),
  seed: Number(o.seed),
  bStd: Number(o.bStd),
});
saveAdapter(o.out, adapter);
process.stderr.write(`wrote ${o.out}: r=${r} on ${adapter.modules.length} modules\n`);
