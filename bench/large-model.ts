/**
 * Real LLM sizes on a CPU machine: per-example LoRA gradients of checkpoints with public
 * model shapes (random BF16 weights, Hugging Face layout, sharded), streamed into a gradient
 * store, with time and peak resident memory.
 *
 *   npm run bench:large [-- --only 1.1b|7b] [--examples 64] [--seq-len 128] [--batch-size 4]
 *                       [--recompute on|off|auto] [--workers 1] [--no-torch]
 *
 * - TinyLlama-1.1B shape, LoRA r=8 on q/k/v/o, 64 examples of 128 tokens: tda-lab and
 *   PyTorch (bench/reference_torch.py, float32 weights, its faster of one backward per
 *   example and per-example LoRA copies with bmm on 4 examples, then the full run) on the
 *   same checkpoint, adapter and examples, each in its own process, so each peak is its own.
 * - LLaMA2-7B shape (13.5 GB in BF16), 8 examples of 64 tokens: tda-lab alone. PyTorch is
 *   not started on it: its float32 weights alone (computed from the config) exceed this
 *   machine's memory, and the kernel's out-of-memory killer would end the run.
 *
 * tda-lab keeps the weights memory-mapped in BF16 (runtime/externalWeights.ts), shared by the
 * calling thread and its worker, and runs each batch in passes within its memory budget
 * (recomputing layers in the backward pass only where one example would not fit the heap).
 * Checkpoints are written once to $TMPDIR/tda-lab-random-<preset>-bf16 and reused.
 * Results: bench/results/large-model.csv.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GradientStore, storeSettings } from '../src/gradients/store';
import { formatTable } from '../src/cli/table';
import { initAdapter, LoraAdapter, parseLoraConfig, saveAdapter } from '../src/model/adapter';
import { isMapped } from '../src/model/baseWeights';
import { LlamaModel } from '../src/model/llama';
import { Rng } from '../src/random';
import { llamaConfig, parameterCount, SIZE_PRESETS, writeLargeRandomCheckpoint } from '../src/model/synthetic';
import { initBackend, nativeActive } from '../src/runtime/backend';
import { ModelConfig } from '../src/model/types';

const argv = process.argv.slice(2);
function arg(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const HERE = __dirname;

interface Case {
  key: string;
  preset: string;
  examples: number;
  seqLen: number;
  torch: boolean;
}

const CASES: Case[] = [
  { key: '1.1b', preset: 'tinyllama-1.1b', examples: 64, seqLen: 128, torch: true },
  { key: '7b', preset: 'llama2-7b', examples: 8, seqLen: 64, torch: false },
];

interface Inputs {
  modelDir: string;
  adapterDir: string;
  dataFile: string;
  examples: { inputIds: number[]; promptLength: number }[];
}

/** The checkpoint (written once), a LoRA r=8 adapter on q/k/v/o with trained-looking B, and the examples. */
function inputs(c: Case, work: string): Inputs {
  const cfg = llamaConfig(SIZE_PRESETS[c.preset]);
  const modelDir = path.join(os.tmpdir(), `tda-lab-random-${c.preset}-bf16`);
  if (!fs.existsSync(path.join(modelDir, 'model.safetensors.index.json'))) {
    process.stderr.write(`writing the random ${c.preset} checkpoint (BF16) to ${modelDir} ...\n`);
    writeLargeRandomCheckpoint(modelDir, cfg, 0, { dtype: 'BF16', maxShardBytes: 5e9 });
  }
  const adapter = randomAdapter(cfg);
  const adapterDir = path.join(work, `adapter-${c.key}`);
  saveAdapter(adapterDir, adapter);
  const rng = new Rng(2);
  const prompt = c.seqLen / 4;
  const examples = Array.from({ length: c.examples }, () => ({ inputIds: Array.from({ length: c.seqLen }, () => rng.int(cfg.vocabSize)), promptLength: prompt }));
  const dataFile = path.join(work, `data-${c.key}.json`);
  fs.writeFileSync(dataFile, JSON.stringify({ input_ids: examples.map((e) => e.inputIds), prompt_length: prompt }));
  return { modelDir, adapterDir, dataFile, examples };
}

function randomAdapter(cfg: ModelConfig): LoraAdapter {
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }, 'bench');
  const adapter = initAdapter(cfg, lora, 1);
  const rng = new Rng(3);
  for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01));
  return adapter;
}

/** Peak resident set size of this process so far (all its threads), in MB. */
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

interface TdaResult {
  loadSeconds: number;
  gradSeconds: number;
  peakRssMb: number;
  rssAfterLoadMb: number;
  mapped: boolean;
  workers: number;
}

/** The tda-lab side, in a child process of its own. */
async function tdaChild(c: Case, work: string): Promise<TdaResult> {
  await initBackend('wasm');
  if (!nativeActive()) throw new Error('the large-model benchmark needs the native kernels (npm install with gcc and libopenblas-dev)');
  const inp = inputs(c, work);
  const t0 = Date.now();
  const model = LlamaModel.load(inp.modelDir);
  const loadSeconds = (Date.now() - t0) / 1000;
  const rssAfterLoadMb = process.memoryUsage().rss / 2 ** 20;
  const adapter = { ...randomAdapter(model.config), dir: inp.adapterDir };
  const storeDir = path.join(work, `store-${c.key}`);
  const batchSize = Number(arg('batch-size', '4'));
  // The library's defaults: the calling thread and one worker per other core; layers
  // recomputed only where even one example's activations would not fit the heap.
  const workers = Number(arg('workers', String(Math.max(1, os.cpus().length - 1))));
  const recompute = ({ on: true, off: false, auto: 'auto' } as const)[arg('recompute', 'auto') as 'on' | 'off' | 'auto'];
  const store = GradientStore.open(storeDir, storeSettings({ modelDir: inp.modelDir, adapterDir: inp.adapterDir, examples: inp.examples, shardSize: c.examples }));
  const t1 = Date.now();
  await store.compute(model, adapter, inp.examples, {
    batchSize,
    workers,
    recompute,
    onProgress: (d, n) => process.stderr.write(`\r  ${c.preset}: ${d}/${n} examples, ${((Date.now() - t1) / 1000).toFixed(0)} s`),
  });
  process.stderr.write('\n');
  const gradSeconds = (Date.now() - t1) / 1000;
  const mapped = isMapped(model.weights);
  model.dispose();
  return { loadSeconds, gradSeconds, peakRssMb: peakRssMb(), rssAfterLoadMb, mapped, workers };
}

interface TorchResult {
  seconds: number;
  examplesPerS: number;
  peakRssMb: number;
  way: string;
}

function torchRun(inp: Inputs, methods: string, examples: number, batchSize: number): { methods: Record<string, { seconds: number; examples_per_s: number }>; peak_rss_mb: number } {
  const cores = os.cpus().length;
  const env = { ...process.env, OMP_NUM_THREADS: String(cores), OPENBLAS_NUM_THREADS: String(cores), OMP_WAIT_POLICY: 'PASSIVE' };
  const args = [path.join(HERE, 'reference_torch.py'), 'grads', '--model', inp.modelDir, '--adapter', inp.adapterDir, '--data', inp.dataFile];
  const r = spawnSync(PYTHON, [...args, '--examples', String(examples), '--batch-size', String(batchSize), '--methods', methods, '--warmup', '0', '--threads', String(cores)], {
    encoding: 'utf8',
    env,
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`PyTorch failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** PyTorch's faster way on a few examples, then the full run with it. */
function torchSide(c: Case, inp: Inputs): TorchResult {
  const batchSize = Number(arg('batch-size', '4'));
  const calib = torchRun(inp, 'loop,bmm', batchSize, batchSize);
  const way = Object.entries(calib.methods).sort((a, b) => b[1].examples_per_s - a[1].examples_per_s)[0][0];
  const full = torchRun(inp, way, c.examples, batchSize);
  const m = full.methods[way];
  return { seconds: m.seconds, examplesPerS: m.examples_per_s, peakRssMb: full.peak_rss_mb, way };
}

async function main() {
  const only = arg('only', '');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-large-'));
  const examplesOverride = argv.includes('--examples') ? Number(arg('examples', '0')) : 0;
  const seqOverride = argv.includes('--seq-len') ? Number(arg('seq-len', '0')) : 0;
  const cases = CASES.filter((c) => !only || c.key === only).map((c) => ({ ...c, examples: examplesOverride || c.examples, seqLen: seqOverride || c.seqLen }));
  if (argv.includes('--child')) {
    const c = cases[0];
    console.log(JSON.stringify(await tdaChild(c, arg('work', work))));
    return;
  }
  try {
    const rows: Record<string, string | number>[] = [];
    for (const c of cases) {
      const cfg = llamaConfig(SIZE_PRESETS[c.preset]);
      const params = parameterCount(cfg);
      const f32Gb = (params * 4) / 2 ** 30;
      const inp = inputs(c, work); // writes the checkpoint once, before anything is timed
      const diskGb = fs.readdirSync(inp.modelDir).reduce((a, f) => a + fs.statSync(path.join(inp.modelDir, f)).size, 0) / 2 ** 30;
      console.log(`${c.preset}: ${(params / 1e9).toFixed(2)}B parameters, ${diskGb.toFixed(1)} GiB on disk (BF16), ${f32Gb.toFixed(1)} GiB in float32; ${c.examples} examples x ${c.seqLen} tokens, LoRA r=8 on q/k/v/o`);
      const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--child', '--only', c.key, '--work', work, ...argv.filter((a, i) => !['--only'].includes(a) && argv[i - 1] !== '--only')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const t = JSON.parse(out.trim().split('\n').pop()!) as TdaResult;
      const row: Record<string, string | number> = {
        model: c.preset,
        examples: `${c.examples} x ${c.seqLen}`,
        'tda-lab s': t.gradSeconds.toFixed(1),
        's / example': (t.gradSeconds / c.examples).toFixed(2),
        'tda-lab peak RSS GiB': (t.peakRssMb / 1024).toFixed(2),
        'peak / f32 weights': (t.peakRssMb / 1024 / f32Gb).toFixed(2),
        'load s': t.loadSeconds.toFixed(1),
      };
      if (c.torch && !argv.includes('--no-torch')) {
        const p = torchSide(c, inp);
        Object.assign(row, {
          'PyTorch s': p.seconds.toFixed(1),
          'PyTorch way': p.way,
          'PyTorch peak RSS GiB': (p.peakRssMb / 1024).toFixed(2),
          'tda-lab / PyTorch speed': (p.seconds / t.gradSeconds).toFixed(2),
          'RSS tda-lab / PyTorch': (t.peakRssMb / p.peakRssMb).toFixed(2),
        });
      } else {
        Object.assign(row, { 'PyTorch s': '-', 'PyTorch way': `not run: float32 weights alone ${f32Gb.toFixed(1)} GiB`, 'PyTorch peak RSS GiB': `> ${f32Gb.toFixed(1)}` });
      }
      rows.push(row);
      console.log(formatTable([row], 2));
    }
    console.log(formatTable(rows, 2));
    const outDir = path.join(HERE, 'results');
    fs.mkdirSync(outDir, { recursive: true });
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    fs.writeFileSync(path.join(outDir, 'large-model.csv'), [keys.join(','), ...rows.map((r) => keys.map((k) => JSON.stringify(r[k] ?? '')).join(','))].join('\n') + '\n');
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
