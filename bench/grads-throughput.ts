/**
 * Per-example LoRA gradient throughput (examples/s) on a LLaMA-shaped model of ~5M
 * parameters at sequence length 64 (LoRA r=8 on q/v), wasm backend vs cpu backend, in the
 * same process. Run: `npm run bench:grads` (options: --examples N --seq-len T --batch-size B).
 * Machines are shared and noisy, so the figure to quote is the wasm/cpu ratio.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeBatch } from '../src/data/batch';
import { initAdapter, parseLoraConfig } from '../src/model/adapter';
import { batchLoraGradients } from '../src/gradients/compute';
import { LlamaModel } from '../src/model/llama';
import { disposeLoraState, loraStateFromAdapter } from '../src/model/loraState';
import { Rng } from '../src/random';
import { llamaConfig, parameterCount, writeRandomCheckpoint } from '../src/model/synthetic';
import { BackendName, initBackend } from '../src/runtime/backend';
import { formatTable } from '../src/cli/table';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function measure(backend: BackendName, dir: string, examples: number, seqLen: number, batchSize: number) {
  await initBackend(backend);
  const model = LlamaModel.load(dir);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'bench');
  const adapter = initAdapter(model.config, lora, 1);
  const rng = new Rng(2);
  for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01)); // trained-looking B
  const state = loraStateFromAdapter(adapter);
  const seqs = Array.from({ length: batchSize }, () => ({
    inputIds: Array.from({ length: seqLen }, () => rng.int(model.config.vocabSize)),
    promptLength: seqLen / 4,
  }));
  const batch = makeBatch(seqs);
  batchLoraGradients(model, state, batch); // warm-up: kernels, memory pools
  const batches = Math.max(1, Math.round(examples / batchSize));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < batches; i++) batchLoraGradients(model, state, batch);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  disposeLoraState(state);
  model.dispose();
  return { backend, examples: batches * batchSize, seconds, examplesPerSecond: (batches * batchSize) / seconds };
}

async function main() {
  const seqLen = arg('seq-len', 64);
  const batchSize = arg('batch-size', 8);
  const examples = arg('examples', 64);
  const cfg = llamaConfig({ hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, vocabSize: 4000 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-bench-'));
  writeRandomCheckpoint(dir, cfg, 0);
  console.log(`model: ${(parameterCount(cfg) / 1e6).toFixed(2)}M parameters, hidden ${cfg.hiddenSize}, ${cfg.numLayers} layers; seq ${seqLen}, batch ${batchSize}, LoRA r=8 on q/v`);
  const wasm = await measure('wasm', dir, examples, seqLen, batchSize);
  // cpu is ~30x slower: fewer examples keep the run short; throughput is per example anyway.
  const cpu = await measure('cpu', dir, Math.max(batchSize, examples / 8), seqLen, batchSize);
  fs.rmSync(dir, { recursive: true, force: true });
  const rows = [wasm, cpu].map((r) => ({
    backend: r.backend,
    examples: r.examples,
    seconds: r.seconds,
    'examples/s': r.examplesPerSecond,
    'vs cpu': r.examplesPerSecond / cpu.examplesPerSecond,
  }));
  console.log(formatTable(rows, 2));
  const outDir = path.join(__dirname, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const csv = ['backend,examples,seconds,examples_per_s,ratio_vs_cpu', ...rows.map((r) => `${r.backend},${r.examples},${r.seconds},${r['examples/s']},${r['vs cpu']}`)];
  fs.writeFileSync(path.join(outDir, 'grads-throughput.csv'), csv.join('\n') + '\n');
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
