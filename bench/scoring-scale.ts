/**
 * Scoring at scale in fixed memory: gradDot top-k (k = 10) of 1,000 queries against
 * 100,000 training gradients streamed from a gradient store, and the same against 10,000,
 * each in its own child process so that peak RSS (process.resourceUsage().maxRSS, worker
 * threads included) is per run. With top-k the peak should not grow with nTrain; the full
 * [nTest, nTrain] matrix is run alongside for contrast.
 *
 * The stores are written through GradientStore.importShard (the real shard writer and
 * manifest) under os.tmpdir() and deleted afterwards; at the default 2,048 dimensions the
 * 100k store is ~820 MB.
 *
 * Run: `npm run bench:scale` (options: --train 100000,10000 --test 1000 --dim 2048 --k 10
 * --workers 2 --shard-size 1024 --no-full).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GradDot } from '../src/attribution/gradDot';
import { GradientStore, sha256Hex, storeSource } from '../src/gradients/store';
import { formatTable } from '../src/cli/table';
import { Rng } from '../src/random';
import { initBackend } from '../src/runtime/backend';
import { GradientSet } from '../src/gradients/types';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const num = (name: string, fallback: number) => Number(arg(name, String(fallback)));

/** LoRA-like layout: an A [r, dim/2/r] and a B [dim/2/r, r] block, r = 8. */
function layout(dim: number): { name: string; shape: number[]; dim: number }[] {
  const r = 8;
  const side = dim / 2 / r;
  if (!Number.isInteger(side)) throw new Error(`--dim must be a multiple of ${2 * r}`);
  return [
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', shape: [r, side], dim: dim / 2 },
    { name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', shape: [side, r], dim: dim / 2 },
  ];
}

/** Seeded uniform values in [-0.5, 0.5): the same numbers for the same seed. */
function randomSet(n: number, dim: number, seed: number): GradientSet {
  const rng = new Rng(seed);
  return {
    n,
    losses: new Float32Array(n),
    blocks: layout(dim).map((b) => {
      const data = new Float32Array(n * b.dim);
      for (let i = 0; i < data.length; i++) data[i] = rng.next() - 0.5;
      return { ...b, data };
    }),
  };
}

function writeStore(dir: string, n: number, dim: number, shardSize: number): number {
  const store = GradientStore.open(dir, {
    modelHash: sha256Hex('synthetic model'),
    adapterHash: sha256Hex('synthetic adapter'),
    datasetHash: sha256Hex(`synthetic dataset ${n}`),
    n,
    mask: 'response',
    shardSize,
  });
  let bytes = 0;
  for (let i = 0; i < store.shardCount; i++) {
    const m = Math.min(shardSize, n - i * shardSize);
    bytes += store.importShard(i, randomSet(m, dim, 1000 + i)).bytes;
  }
  return bytes;
}

interface RunResult {
  mode: string;
  n_train: number;
  n_test: number;
  seconds: number;
  pairs_per_s: number;
  peak_rss_mb: number;
  checksum: number;
}

/** Child: one scoring run over the store, printed as one JSON line. */
async function child(): Promise<void> {
  await initBackend('wasm');
  const store = GradientStore.openExisting(arg('store', ''));
  const nTest = num('test', 1000);
  const dim = num('dim', 2048);
  const mode = arg('mode', 'topk');
  const test = randomSet(nTest, dim, 7);
  const method = new GradDot({ workers: num('workers', 2) });
  const t0 = performance.now();
  method.cache(storeSource(store));
  let checksum = 0;
  if (mode === 'topk') {
    const top = method.attributeTopK(test, num('k', 10));
    top.scores.forEach((v) => (checksum += v));
  } else {
    const s = method.attribute(test);
    s.data.forEach((v) => (checksum += v));
  }
  const seconds = (performance.now() - t0) / 1000;
  const r: RunResult = {
    mode,
    n_train: store.n,
    n_test: nTest,
    seconds,
    pairs_per_s: (store.n * nTest) / seconds,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    checksum,
  };
  console.log(JSON.stringify(r));
}

function runChild(dir: string, mode: string): RunResult {
  const pass = ['test', 'dim', 'k', 'workers'].flatMap((o) => (process.argv.includes(`--${o}`) ? [`--${o}`, arg(o, '')] : []));
  const r = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), __filename, '--child', '--store', dir, '--mode', mode, ...pass], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`child (${mode}, ${dir}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as RunResult;
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return child();
  await initBackend('wasm');
  const sizes = arg('train', '100000,10000').split(',').map(Number);
  const dim = num('dim', 2048);
  const k = num('k', 10);
  const workers = num('workers', 2);
  const shardSize = num('shard-size', 1024);
  const modes = process.argv.includes('--no-full') ? ['topk'] : ['topk', 'full'];
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-scoring-scale-'));
  const results: (RunResult & { store_mb: number; write_s: number })[] = [];
  try {
    for (const n of sizes) {
      const dir = path.join(root, `train-${n}`);
      const w0 = performance.now();
      const bytes = writeStore(dir, n, dim, shardSize);
      const writeSeconds = (performance.now() - w0) / 1000;
      process.stderr.write(`wrote ${n} x ${dim} gradients (${(bytes / 2 ** 20).toFixed(0)} MB) in ${writeSeconds.toFixed(1)} s\n`);
      for (const mode of modes) {
        const r = runChild(dir, mode);
        process.stderr.write(`${mode} ${n}: ${r.seconds.toFixed(1)} s, peak RSS ${r.peak_rss_mb.toFixed(0)} MB\n`);
        results.push({ ...r, store_mb: bytes / 2 ** 20, write_s: writeSeconds });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`gradDot on ${workers} workers: ${results[0]?.n_test} queries x nTrain training gradients of ${dim} dims, store shards of ${shardSize}, top-k k = ${k}`);
  console.log(
    formatTable(
      results.map((r) => ({
        result: r.mode === 'topk' ? `top-${k}` : 'full matrix',
        'nTrain': r.n_train,
        'store MB': Math.round(r.store_mb),
        seconds: r.seconds.toFixed(1),
        'pairs/s': Math.round(r.pairs_per_s),
        'peak RSS MB': Math.round(r.peak_rss_mb),
      })),
    ),
  );
  const top = results.filter((r) => r.mode === 'topk').sort((a, b) => b.n_train - a.n_train);
  if (top.length >= 2) {
    const [big, small] = [top[0], top[top.length - 1]];
    const ratio = big.peak_rss_mb / small.peak_rss_mb;
    console.log(
      `top-${k} peak RSS at ${big.n_train} / at ${small.n_train}: ${ratio.toFixed(3)} (${ratio <= 1.25 ? 'within' : 'NOT within'} 1.25x: memory ${ratio <= 1.25 ? 'does not grow' : 'grows'} with nTrain)`,
    );
  }
  const outDir = path.join(__dirname, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(
    path.join(outDir, 'scoring-scale.csv'),
    ['mode,n_train,n_test,dim,k,workers,seconds,pairs_per_s,peak_rss_mb,store_mb', ...results.map((r) => [r.mode, r.n_train, r.n_test, dim, k, workers, r.seconds, r.pairs_per_s, r.peak_rss_mb, r.store_mb].join(','))].join('\n') + '\n',
  );
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
