/**
 * Side-by-side benchmark: the same computation in tda-lab (wasm, worker threads) and in
 * PyTorch (bench/reference_torch.py, Debian's python3-torch), on the same inputs, in the
 * same run. Run: `npm run bench` (bench/setup.sh first installs python3-torch if missing).
 *
 *  - per-example LoRA gradients (examples/s) for LLaMA-shaped models of ~5M and ~50M
 *    parameters at sequence lengths 64 and 256, LoRA r=8 on q/v. PyTorch's three ways
 *    (loop, vmap, bmm) are timed once per case and the fastest one is the baseline;
 *  - gradDot and DataInf scoring (pairs/s) of 10,000 training x 100 test gradients of
 *    100k dimensions, streamed from shard files on both sides;
 *  - peak resident memory of each measurement (one process per measurement).
 *
 * Each comparison alternates A/B processes (tda-lab first in odd rounds, PyTorch first in
 * even ones) and reports the ratio of the medians. Both sides may use every core: tda-lab
 * computes gradients on the calling thread and one worker thread per other core (its
 * default), and scores with its default (workers on every
 * core with the wasm backend's own kernels, this thread on native BLAS, where starting
 * workers costs more than they save); `tda-lab info` in the log says which path ran.
 * PyTorch is tried with every core (torch.set_num_threads, a
 * multi-threaded BLAS, sleeping OpenMP waits) and with one thread, with the system BLAS and
 * with OpenBLAS when the system one is another (Debian's default libblas.so.3 is the
 * netlib reference BLAS; `bench/setup.sh --openblas` installs OpenBLAS), and the fastest
 * set-up and way is the baseline.
 *
 * Options: --quick (tiny sizes, a smoke test), --rounds N, --only grads|scoring,
 * --cases 5m-64,50m-256 (subset), --train N --dim D (scoring size), --keep (keep files).
 * Writes bench/results/side-by-side.csv and side-by-side-rounds.csv, prints the table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initAdapter, parseLoraConfig, saveAdapter } from '../src/model/adapter';
import { Rng } from '../src/random';
import { llamaConfig, parameterCount, writeRandomCheckpoint } from '../src/model/synthetic';
import { ModelConfig } from '../src/model/types';
import { formatTable } from '../src/cli/table';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
function opt(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}

const QUICK = flag('quick');
const ROUNDS = Number(opt('rounds', QUICK ? '1' : '3'));
const CORES = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const PYTHON = opt('python', '/usr/bin/python3');
/** tda-lab's gradient workers: one per core besides the calling thread's, which computes too. */
const WORKERS = Math.max(1, CORES - 1);
const HERE = __dirname;
const RESULTS = path.join(HERE, 'results');

// ---------------------------------------------------------------- environment

interface TorchConfig {
  name: string;
  threads: number;
  env: NodeJS.ProcessEnv;
}

/** Real path of a shared library, or '' if missing. */
function realLib(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return '';
  }
}

/**
 * The PyTorch set-ups to try; each case is measured with the fastest. Threads: every core
 * (OpenMP told to sleep rather than spin while waiting, OMP_WAIT_POLICY=PASSIVE: spinning
 * threads slow PyTorch ~10x on a machine with any other load) or a single thread. BLAS: the
 * system's libblas.so.3, and OpenBLAS too if the system one is another (e.g. Debian's
 * default netlib reference BLAS) and OpenBLAS is at hand (bench/setup.sh --openblas).
 */
function torchConfigs(): TorchConfig[] {
  const check = spawnSync(PYTHON, ['-c', 'import torch, functorch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
  if (check.status !== 0) {
    console.error(`PyTorch is not importable with ${PYTHON}: run bench/setup.sh (installs Debian's python3-torch).\n${check.stderr}`);
    process.exit(1);
  }
  const systemBlas = realLib('/usr/lib/x86_64-linux-gnu/libblas.so.3');
  const blasEnvs: { name: string; env: NodeJS.ProcessEnv }[] = [{ name: /openblas/i.test(systemBlas) ? 'OpenBLAS' : `system BLAS`, env: {} }];
  if (!/openblas/i.test(systemBlas)) {
    const dirs = [path.join(HERE, '.cache', 'openblas', 'usr', 'lib', 'x86_64-linux-gnu', 'openblas-pthread'), '/usr/lib/x86_64-linux-gnu/openblas-pthread'];
    const dir = dirs.find((d) => fs.existsSync(path.join(d, 'libblas.so.3')));
    if (dir) blasEnvs.push({ name: 'OpenBLAS', env: { LD_LIBRARY_PATH: [dir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') } });
  }
  const threadEnvs = [
    { name: `${CORES} threads`, threads: CORES, env: { OMP_NUM_THREADS: String(CORES), OPENBLAS_NUM_THREADS: String(CORES), OMP_WAIT_POLICY: 'PASSIVE' } },
    { name: '1 thread', threads: 1, env: { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } },
  ];
  return blasEnvs.flatMap((b) => threadEnvs.map((t) => ({ name: `${b.name}, ${t.name}`, threads: t.threads, env: { ...process.env, ...b.env, ...t.env } })));
}

function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

/**
 * The tda-lab side as plain JavaScript against the built library (dist/, `npm run build`),
 * run by node itself: its peak memory is then the library's. Run through a TypeScript
 * loader (tsx) every process would carry ~95 MB of the loader's own.
 */
function buildTdaSide(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const file = path.join(HERE, 'tda-side.ts');
  const out = path.join(HERE, '.tda-side.build.js');
  const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
  fs.writeFileSync(out, js);
  return out;
}

let tdaSide = '';
const tda = (args: string[]) => runJson(process.execPath, [(tdaSide ||= buildTdaSide()), ...args]);
const torch = (cfg: TorchConfig, args: string[]) => runJson(PYTHON, [path.join(HERE, 'reference_torch.py'), ...args, '--threads', String(cfg.threads)], cfg.env);

/** A CSV field, quoted when it holds a comma or a quote. */
function csvField(v: string | number): string {
  const t = String(v);
  return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

const csvRow = (...fields: (string | number)[]) => fields.map(csvField).join(',');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Largest |a - b| / max|b| over the arrays (a scale-aware agreement check). */
function maxRelDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

// ---------------------------------------------------------------- results

/** One measurement: a throughput and the process's peak resident memory. */
interface Run {
  rate: number;
  rss: number;
}

/** Runs a then b on odd rounds, b then a on even ones, so neither always goes first. */
function alternate(round: number, a: () => void, b: () => void): void {
  if (round % 2) {
    a();
    b();
  } else {
    b();
    a();
  }
}

/** A comparison's table row: medians of the rounds, the largest peak memory of each side. */
function resultRow(benchmark: string, unit: string, tda: Run[], torch: Run[], torchWay: string, torchBlas: string, agreement: number): Row {
  return {
    benchmark,
    unit,
    tdaMedian: median(tda.map((r) => r.rate)),
    torchMedian: median(torch.map((r) => r.rate)),
    torchWay,
    torchBlas,
    tdaRssMb: Math.max(...tda.map((r) => r.rss)),
    torchRssMb: Math.max(...torch.map((r) => r.rss)),
    agreement,
    rounds: ROUNDS,
  };
}

interface Row {
  benchmark: string;
  unit: string;
  tdaMedian: number;
  torchMedian: number;
  torchWay: string;
  torchBlas: string;
  tdaRssMb: number;
  torchRssMb: number;
  agreement: number;
  rounds: number;
}
const rows: Row[] = [];
const roundRows: string[] = ['benchmark,side,round,value,unit,peak_rss_mb,detail'];

// ---------------------------------------------------------------- gradients

interface GradCase {
  id: string;
  config: ModelConfig;
  seqLen: number;
  /** Examples per timed measurement. */
  examples: number;
  /** Examples for choosing PyTorch's fastest way and for tda-lab on one thread. */
  calib: number;
}

function gradCases(): GradCase[] {
  const small = llamaConfig({ hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 4, numKvHeads: 4, headDim: 64, vocabSize: 4000 });
  const large = llamaConfig({ hiddenSize: 512, intermediateSize: 1376, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 64, vocabSize: 24000 });
  const tiny = llamaConfig({ hiddenSize: 64, intermediateSize: 160, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, vocabSize: 300 });
  if (QUICK) return [{ id: 'tiny-32', config: tiny, seqLen: 32, examples: 16, calib: 8 }];
  const all: GradCase[] = [
    { id: '5m-64', config: small, seqLen: 64, examples: 64, calib: 16 },
    { id: '5m-256', config: small, seqLen: 256, examples: 32, calib: 16 },
    { id: '50m-64', config: large, seqLen: 64, examples: 16, calib: 8 },
    { id: '50m-256', config: large, seqLen: 256, examples: 16, calib: 8 },
  ];
  const only = opt('cases', '');
  return only ? all.filter((c) => only.split(',').includes(c.id)) : all;
}

function gradsBenchmark(work: string, configs: TorchConfig[]) {
  for (const c of gradCases()) {
    const dir = path.join(work, c.id);
    const modelDir = path.join(dir, 'model');
    const adapterDir = path.join(dir, 'adapter');
    fs.mkdirSync(modelDir, { recursive: true });
    writeRandomCheckpoint(modelDir, c.config, 0);
    const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'bench');
    const adapter = initAdapter(c.config, lora, 1);
    const rng = new Rng(2);
    for (const m of adapter.modules) m.B.forEach((_, i) => (m.B[i] = rng.normal() * 0.01)); // a trained-looking B
    saveAdapter(adapterDir, adapter);
    const data = path.join(dir, 'tokens.json');
    const count = Math.max(c.examples, 8 * CORES);
    fs.writeFileSync(
      data,
      JSON.stringify({ prompt_length: c.seqLen / 4, input_ids: Array.from({ length: count }, () => Array.from({ length: c.seqLen }, () => rng.int(c.config.vocabSize))) }),
    );
    const label = `grads ${(parameterCount(c.config) / 1e6).toFixed(1)}M seq ${c.seqLen}`;
    console.log(`\n${label}: ${c.examples} examples per measurement`);
    const common = ['--model', modelDir, '--adapter', adapterDir, '--data', data, '--batch-size', '8'];

    // Which PyTorch way and BLAS is fastest: each once, on fewer examples.
    const calib = c.calib;
    let best = { cfg: configs[0], way: 'bmm', eps: 0 };
    const tdaDump = path.join(dir, 'tda.f32');
    for (const cfg of configs) {
      const dump = path.join(dir, `torch-${cfg.name.replace(/\W+/g, '')}.f32`);
      const r = torch(cfg, ['grads', ...common, '--examples', String(calib), '--methods', 'bmm,vmap,loop', '--dump', dump]);
      const methods = r.methods as Record<string, { examples_per_s: number }>;
      console.log(`  PyTorch (${cfg.name}: ${r.blas}): ${Object.entries(methods).map(([k, v]) => `${k} ${v.examples_per_s.toFixed(2)}`).join(', ')} examples/s`);
      for (const [way, v] of Object.entries(methods)) {
        roundRows.push(csvRow(label, `pytorch ${way} (${cfg.name})`, 0, v.examples_per_s, 'examples/s', r.peak_rss_mb as number, 'calibration'));
        if (v.examples_per_s > best.eps) best = { cfg, way, eps: v.examples_per_s };
      }
    }
    // Per core: tda-lab in this thread only, for the record (not a ratio in the table).
    const single = tda(['grads', ...common, '--examples', String(calib), '--workers', '0']);
    roundRows.push(csvRow(label, 'tda-lab 1 thread', 0, single.examples_per_s as number, 'examples/s', single.peak_rss_mb as number, 'in-process'));
    console.log(`  tda-lab on one thread: ${(single.examples_per_s as number).toFixed(2)} examples/s`);
    console.log(`  baseline: PyTorch ${best.way} with ${best.cfg.name}`);

    const tdaRuns: Run[] = [];
    const torchRuns: Run[] = [];
    let agreement = NaN;
    for (let round = 1; round <= ROUNDS; round++) {
      const runTda = () => {
        // Round 1 also writes the first examples' gradients, to check against PyTorch's.
        const r = tda(['grads', ...common, '--examples', String(c.examples), '--workers', String(WORKERS), ...(round === 1 ? ['--dump', tdaDump] : [])]);
        if (round === 1) {
          // Same computation: tda-lab's gradients against PyTorch's (its first way, bmm).
          agreement = maxRelDiff(readF32(tdaDump), readF32(path.join(dir, `torch-${configs[0].name.replace(/\W+/g, '')}.f32`)));
          console.log(`  gradients agree to ${agreement.toExponential(2)} (max |diff| / max |value|); tda-lab worker start-up ${(r.startup_seconds as number).toFixed(2)} s`);
        }
        tdaRuns.push({ rate: r.examples_per_s as number, rss: r.peak_rss_mb as number });
        roundRows.push(csvRow(label, 'tda-lab', round, r.examples_per_s as number, 'examples/s', r.peak_rss_mb as number, `workers=${WORKERS} + this thread`));
      };
      const runTorch = () => {
        const r = torch(best.cfg, ['grads', ...common, '--examples', String(c.examples), '--methods', best.way]);
        const eps = (r.methods as Record<string, { examples_per_s: number }>)[best.way].examples_per_s;
        torchRuns.push({ rate: eps, rss: r.peak_rss_mb as number });
        roundRows.push(csvRow(label, 'pytorch', round, eps, 'examples/s', r.peak_rss_mb as number, `${best.way} (${best.cfg.name})`));
      };
      alternate(round, runTda, runTorch);
      console.log(`  round ${round}: tda-lab ${tdaRuns[tdaRuns.length - 1].rate.toFixed(2)}, PyTorch ${torchRuns[torchRuns.length - 1].rate.toFixed(2)} examples/s (load ${load()})`);
    }
    rows.push(resultRow(label, 'examples/s', tdaRuns, torchRuns, best.way, best.cfg.name, agreement));
  }
}

// ---------------------------------------------------------------- scoring

/** Deterministic pseudo-random values in [-0.5, 0.5) from a 32-bit hash of (seed, index). */
function fillHashed(out: Float32Array, seed: number, offset: number): void {
  for (let i = 0; i < out.length; i++) {
    let h = Math.imul((offset + i) ^ seed, 0x9e3779b1);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    out[i] = (h >>> 8) / 16777216 - 0.5;
  }
}

function writeShards(dir: string, n: number, nTest: number, dim: number, shard: number) {
  fs.mkdirSync(dir, { recursive: true });
  const test = new Float32Array(nTest * dim);
  fillHashed(test, 0x5eed, 0);
  fs.writeFileSync(path.join(dir, 'test.f32'), Buffer.from(test.buffer));
  const shards: { file: string; rows: number }[] = [];
  const buf = new Float32Array(shard * dim);
  for (let start = 0, k = 0; start < n; start += shard, k++) {
    const rows = Math.min(shard, n - start);
    const part = buf.subarray(0, rows * dim);
    // Rows of one shard are (start + i): the index runs over the whole training matrix.
    fillHashed(part, 0x7a11, (start * dim) | 0);
    const file = `train-${String(k).padStart(5, '0')}.f32`;
    fs.writeFileSync(path.join(dir, file), Buffer.from(part.buffer, 0, part.byteLength));
    shards.push({ file, rows });
  }
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ dim, n, n_test: nTest, test: 'test.f32', shards }));
}

function scoringBenchmark(work: string, configs: TorchConfig[]) {
  const n = Number(opt('train', QUICK ? '600' : '10000'));
  const nTest = Number(opt('test', QUICK ? '10' : '100'));
  const dim = Number(opt('dim', QUICK ? '5000' : '100000'));
  const shard = Number(opt('shard', QUICK ? '128' : '500'));
  const dir = path.join(work, 'shards');
  const t0 = performance.now();
  writeShards(dir, n, nTest, dim, shard);
  console.log(`\nscoring: ${n} train x ${nTest} test gradients of ${dim} dims in shards of ${shard} (written in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  for (const mode of ['graddot', 'datainf'] as const) {
    const label = `${mode === 'graddot' ? 'gradDot' : 'DataInf'} ${n / 1000}k x ${nTest} x ${dim / 1000}k`;
    // Fastest PyTorch set-up for this method, on the first 2,000 training examples.
    let best = configs[0];
    let bestRate = 0;
    const calibShards = String(Math.max(1, Math.ceil(2000 / shard)));
    for (const cfg of configs) {
      const r = torch(cfg, [mode, '--shards', dir, '--max-shards', calibShards]);
      console.log(`  ${label}: PyTorch (${cfg.name}: ${r.blas}) ${(r.pairs_per_s as number).toFixed(0)} pairs/s on ${r.n_train} training examples`);
      roundRows.push(csvRow(label, `pytorch (${cfg.name})`, 0, r.pairs_per_s as number, 'pairs/s', r.peak_rss_mb as number, `calibration on ${r.n_train}`));
      if ((r.pairs_per_s as number) > bestRate) {
        bestRate = r.pairs_per_s as number;
        best = cfg;
      }
    }
    console.log(`  baseline: PyTorch with ${best.name}`);
    const tdaDump = path.join(dir, `tda-${mode}.f32`);
    const torchDump = path.join(dir, `torch-${mode}.f32`);
    let agreement = NaN;
    const tdaRuns: Run[] = [];
    const torchRuns: Run[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const runTda = () => {
        // The library's default: worker threads on every core with the wasm backend's own
        // kernels, this thread on native BLAS (where workers cost more than they save).
        const r = tda([mode, '--shards', dir, '--workers', 'default', ...(round === 1 ? ['--dump', tdaDump] : [])]);
        tdaRuns.push({ rate: r.pairs_per_s as number, rss: r.peak_rss_mb as number });
        roundRows.push(csvRow(label, 'tda-lab', round, r.pairs_per_s as number, 'pairs/s', r.peak_rss_mb as number, 'workers=default'));
      };
      const runTorch = () => {
        const r = torch(best, [mode, '--shards', dir, ...(round === 1 ? ['--dump', torchDump] : [])]);
        torchRuns.push({ rate: r.pairs_per_s as number, rss: r.peak_rss_mb as number });
        roundRows.push(csvRow(label, 'pytorch', round, r.pairs_per_s as number, 'pairs/s', r.peak_rss_mb as number, best.name));
      };
      alternate(round, runTda, runTorch);
      if (round === 1) {
        agreement = maxRelDiff(readF32(tdaDump), readF32(torchDump));
        console.log(`  scores agree to ${agreement.toExponential(2)} (max |diff| / max |score|)`);
      }
      console.log(`  round ${round}: tda-lab ${tdaRuns[tdaRuns.length - 1].rate.toFixed(0)}, PyTorch ${torchRuns[torchRuns.length - 1].rate.toFixed(0)} pairs/s (load ${load()})`);
    }
    rows.push(resultRow(label, 'pairs/s', tdaRuns, torchRuns, 'torch.mm', best.name, agreement));
  }
}

// ---------------------------------------------------------------- main

function machine(): string {
  let blas = '';
  try {
    blas = execFileSync('readlink', ['-f', '/usr/lib/x86_64-linux-gnu/libblas.so.3'], { encoding: 'utf8' }).trim();
  } catch {
    /* not Debian-like */
  }
  return `${CORES} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB, Node ${process.version}, system libblas ${blas || 'unknown'}`;
}

/** The 1-minute load average: other processes on the machine skew both sides. */
function load(): string {
  return os.loadavg()[0].toFixed(1);
}

function main() {
  const configs = torchConfigs();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-side-by-side-'));
  const only = opt('only', '');
  console.log(`machine: ${machine()}; load average ${load()} at the start`);
  console.log(`PyTorch BLAS configurations: ${configs.map((c) => c.name).join(', ')}; ${ROUNDS} alternating rounds per comparison`);
  try {
    if (only !== 'scoring') gradsBenchmark(work, configs);
    if (only !== 'grads') scoringBenchmark(work, configs);
  } finally {
    if (!flag('keep')) fs.rmSync(work, { recursive: true, force: true });
    else console.log(`files kept in ${work}`);
  }
  const table = rows.map((r) => ({
    benchmark: r.benchmark,
    unit: r.unit,
    'tda-lab': r.tdaMedian,
    PyTorch: r.torchMedian,
    'tda/PyTorch': r.tdaMedian / r.torchMedian,
    'PyTorch way': `${r.torchWay} (${r.torchBlas})`,
    'tda-lab peak MB': Math.round(r.tdaRssMb),
    'PyTorch peak MB': Math.round(r.torchRssMb),
  }));
  console.log(`\nmedians of ${ROUNDS} alternating rounds; machine: ${machine()}; load average ${load()} at the end`);
  console.log(formatTable(table, 2));
  fs.mkdirSync(RESULTS, { recursive: true });
  const csv = [
    'benchmark,unit,tda_lab_median,pytorch_median,ratio,pytorch_way,pytorch_blas,tda_lab_peak_rss_mb,pytorch_peak_rss_mb,agreement_max_rel_diff,rounds,machine',
    ...rows.map((r) =>
      csvRow(r.benchmark, r.unit, r.tdaMedian, r.torchMedian, r.tdaMedian / r.torchMedian, r.torchWay, r.torchBlas, r.tdaRssMb, r.torchRssMb, r.agreement, r.rounds, machine()),
    ),
  ];
  fs.writeFileSync(path.join(RESULTS, QUICK ? 'side-by-side-quick.csv' : 'side-by-side.csv'), csv.join('\n') + '\n');
  fs.writeFileSync(path.join(RESULTS, QUICK ? 'side-by-side-quick-rounds.csv' : 'side-by-side-rounds.csv'), roundRows.join('\n') + '\n');
}

main();
