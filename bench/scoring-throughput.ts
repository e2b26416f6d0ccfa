/**
 * Scoring throughput (train x test pairs per second) and peak memory for gradDot and
 * DataInf on 10,000 training x 100 test gradients of 100k dimensions. Training gradients
 * are streamed in chunks (as from a gradient store), so memory stays bounded.
 * One thread. Run: `npm run bench:scoring` (options: --train N --test N --dim D --chunk C).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataInf } from '../src/attribution/dataInf';
import { GradDot } from '../src/attribution/gradDot';
import { GradientAttributor } from '../src/attribution/gradientAttributor';
import { formatTable } from '../src/cli/table';
import { Rng } from '../src/random';
import { initBackend } from '../src/runtime/backend';
import { GradientSet, GradientSource } from '../src/gradients/types';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function randomSet(n: number, dim: number, seed: number): GradientSet {
  const rng = new Rng(seed);
  const data = new Float32Array(n * dim);
  for (let i = 0; i < data.length; i++) data[i] = rng.next() - 0.5;
  return { n, blocks: [{ name: 'g', shape: [dim], dim, data }] };
}

/** Deterministic synthetic chunks: the same numbers on every pass, never all in memory. */
function streamedSource(n: number, dim: number, chunk: number): GradientSource {
  return {
    n,
    blocks: [{ name: 'g', shape: [dim], dim }],
    chunks: function* () {
      for (let start = 0; start < n; start += chunk) yield { start, set: randomSet(Math.min(chunk, n - start), dim, 1000 + start) };
    },
  };
}

function measure(method: GradientAttributor, train: GradientSource, test: GradientSet) {
  const t0 = process.hrtime.bigint();
  method.cache(train);
  const s = method.attribute(test);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, checksum: s.data.reduce((a, b) => a + b, 0) };
}

async function main() {
  const nTrain = arg('train', 10000);
  const nTest = arg('test', 100);
  const dim = arg('dim', 100000);
  const chunk = arg('chunk', 500);
  await initBackend('wasm');
  const test = randomSet(nTest, dim, 7);
  const train = streamedSource(nTrain, dim, chunk);
  // Generating the synthetic chunks costs time too; measure it to subtract.
  const g0 = process.hrtime.bigint();
  for (const c of train.chunks()) void c;
  const genSeconds = Number(process.hrtime.bigint() - g0) / 1e9;
  const rows = [];
  // One thread: the synthetic chunks are generated in this thread, and their time is
  // subtracted, which is only right when nothing runs alongside (workers would overlap it).
  // bench/side-by-side.ts measures the worker threads, on shard files.
  for (const method of [new GradDot({ workers: 0 }), new DataInf({ workers: 0 })]) {
    const passes = method instanceof DataInf ? 3 : 1; // damping, transform, score
    const r = measure(method, train, test);
    const compute = r.seconds - passes * genSeconds;
    rows.push({
      method: method.name,
      seconds: r.seconds,
      'data gen s': passes * genSeconds,
      'pairs/s': (nTrain * nTest) / compute,
      'peak RSS MB': process.resourceUsage().maxRSS / 1024,
    });
  }
  console.log(`scoring ${nTrain} train x ${nTest} test gradients of ${dim} dims, chunks of ${chunk}`);
  console.log(formatTable(rows, 1));
  const outDir = path.join(__dirname, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(
    path.join(outDir, 'scoring-throughput.csv'),
    ['method,seconds,data_gen_seconds,pairs_per_s,peak_rss_mb', ...rows.map((r) => `${r.method},${r.seconds},${r['data gen s']},${r['pairs/s']},${r['peak RSS MB']}`)].join('\n') + '\n',
  );
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
