/**
 * A 0.5B-parameter LLaMA-shaped checkpoint (random weights, Hugging Face layout, BF16,
 * two shard files) loaded lazily, with per-example LoRA gradients (r=8 on q/v) streamed
 * into a gradient store. Reports load time, resident memory after loading, peak resident
 * memory while 10x more examples stream through, and throughput, against the model's
 * float32 weight size. Each configuration runs in its own process, so peaks are its own.
 *
 *   npm run bench:large [-- --examples 4,40 --seq-len 32 --preset 0.5b]
 *
 * The checkpoint is written once to $TMPDIR/tda-lab-random-<preset>-bf16 (1 GB for 0.5b)
 * and reused.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GradientStore, storeSettings } from '../src/gradients/store';
import { formatTable } from '../src/cli/table';
import { initAdapter, parseLoraConfig, saveAdapter } from '../src/model/adapter';
import { LlamaModel } from '../src/model/llama';
import { keepsBothLayouts } from '../src/model/baseWeights';
import { Rng } from '../src/random';
import { llamaConfig, parameterCount, SIZE_PRESETS, writeLargeRandomCheckpoint } from '../src/model/synthetic';
import { initBackend } from '../src/runtime/backend';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Peak resident set size of this process so far, in MB (getrusage ru_maxrss). */
function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

interface ChildResult {
  examples: number;
  loadSeconds: number;
  rssAfterLoadMb: number;
  peakRssMb: number;
  gradSeconds: number;
  storeMb: number;
  singleLayout: boolean;
}

/** One configuration: load the model, stream `examples` gradients into a fresh store. */
async function child(dir: string, examples: number, seqLen: number): Promise<ChildResult> {
  await initBackend('wasm');
  const t0 = Date.now();
  const model = LlamaModel.load(dir);
  const loadSeconds = (Date.now() - t0) / 1000;
  const rssAfterLoadMb = process.memoryUsage().rss / 2 ** 20;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-large-'));
  try {
    const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'bench');
    const adapter = initAdapter(model.config, lora, 1);
    const rng = new Rng(2);
    for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01)); // trained-looking B
    const adapterDir = path.join(work, 'adapter');
    saveAdapter(adapterDir, adapter);
    const seqs = Array.from({ length: examples }, () => ({
      inputIds: Array.from({ length: seqLen }, () => rng.int(model.config.vocabSize)),
      promptLength: seqLen / 4,
    }));
    const storeDir = path.join(work, 'store');
    const store = GradientStore.open(storeDir, storeSettings({ modelDir: dir, adapterDir, examples: seqs, shardSize: 4 }));
    const t1 = Date.now();
    await store.compute(model, { ...adapter, dir: adapterDir }, seqs, { batchSize: 4 });
    const gradSeconds = (Date.now() - t1) / 1000;
    const storeMb = fs.readdirSync(storeDir).reduce((a, f) => a + fs.statSync(path.join(storeDir, f)).size, 0) / 2 ** 20;
    return { examples, loadSeconds, rssAfterLoadMb, peakRssMb: peakRssMb(), gradSeconds, storeMb, singleLayout: !keepsBothLayouts(model.config) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function main() {
  const preset = arg('preset', '0.5b');
  const seqLen = Number(arg('seq-len', '32'));
  const cfg = llamaConfig(SIZE_PRESETS[preset]);
  const dir = path.join(os.tmpdir(), `tda-lab-random-${preset}-bf16`);
  if (process.argv.includes('--child')) {
    console.log(JSON.stringify(await child(dir, Number(arg('examples', '4')), seqLen)));
    return;
  }
  if (!fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    process.stderr.write(`writing the random ${preset} checkpoint to ${dir} ...\n`);
    writeLargeRandomCheckpoint(dir, cfg, 0, { dtype: 'BF16' });
  }
  const f32Mb = (parameterCount(cfg) * 4) / 2 ** 20;
  const bf16Mb = fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0) / 2 ** 20;
  console.log(`model: ${(parameterCount(cfg) / 1e6).toFixed(0)}M parameters, ${bf16Mb.toFixed(0)} MB on disk (BF16), ${f32Mb.toFixed(0)} MB in float32; seq ${seqLen}, batch 4, LoRA r=8 on q/v`);
  const rows = [];
  for (const n of arg('examples', '4,40').split(',').map(Number)) {
    const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--child', '--examples', String(n), '--preset', preset, '--seq-len', String(seqLen)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
    rows.push({
      examples: r.examples,
      'load s': r.loadSeconds,
      'RSS after load MB': r.rssAfterLoadMb,
      'peak RSS MB': r.peakRssMb,
      'peak / f32 weights': r.peakRssMb / f32Mb,
      'grads s': r.gradSeconds,
      'examples/s': r.examples / r.gradSeconds,
      'store MB': r.storeMb,
    });
  }
  console.log(formatTable(rows, 2));
  const outDir = path.join(__dirname, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const keys = Object.keys(rows[0]);
  fs.writeFileSync(path.join(outDir, `large-model-${preset}.csv`), [keys.join(','), ...rows.map((r) => keys.map((k) => (r as Record<string, number>)[k]).join(','))].join('\n') + '\n');
  console.log(`peak RSS bound (2x float32 weights): ${(2 * f32Mb).toFixed(0)} MB; machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB, node ${process.version}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
