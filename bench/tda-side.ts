/**
 * tda-lab side of the side-by-side benchmark (bench/side-by-side.ts runs it, one process
 * per measurement so peak memory is per measurement). Prints one JSON object.
 *
 *   grads    --model DIR --adapter DIR --data tokens.json --examples N --batch-size B --workers W [--pass-rows R] [--dump file]
 *   graddot  --shards DIR --workers W|default [--dump file]
 *   datainf  --shards DIR --workers W|default [--dump file]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataInf } from '../dist/attribution/dataInf';
import { GradDot } from '../dist/attribution/gradDot';
import { adapterKey, loadAdapter } from '../dist/model/adapter';
import { computeLoraGradients, GradientWorkers } from '../dist/gradients/compute';
import { LlamaModel } from '../dist/model/llama';
import { initBackend } from '../dist/runtime/backend';
import { nativeAddon } from '../dist/runtime/nativeAddon';
import { blockByName, OwnedChunksSource } from '../dist/gradients/types';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`missing --${name}`);
  return fallback;
}

const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

export interface ShardMeta {
  dim: number;
  n: number;
  n_test: number;
  test: string;
  shards: { file: string; rows: number }[];
}

/** Rows per piece a shard file is read and multiplied in (half a 500-row shard). */
const PIECE_ROWS = 250;

/**
 * Training gradients streamed from raw float32 shard files, in pieces of up to PIECE_ROWS
 * rows read straight into the arrays the products use. Where the native addon is built,
 * the next piece is read on a thread of its own while the scorer multiplies the current one
 * (two piece buffers in all: no more memory than one whole shard); else each piece is read
 * when it is needed. Buffers are handed over (OwnedChunksSource) and come back through
 * recycle() to be read into again, so memory stays bounded.
 */
export function shardSource(dir: string): { source: OwnedChunksSource; meta: ShardMeta; test: Float32Array } {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as ShardMeta;
  const readFully = (fd: number, out: Float32Array, position: number, file: string) => {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    for (let off = 0; off < bytes.length; ) {
      const n = fs.readSync(fd, bytes, off, bytes.length - off, position + off);
      if (n <= 0) throw new Error(`${file}: short read`);
      off += n;
    }
  };
  const test = new Float32Array(meta.n_test * meta.dim);
  const tfd = fs.openSync(path.join(dir, meta.test), 'r');
  try {
    readFully(tfd, test, 0, meta.test);
  } finally {
    fs.closeSync(tfd);
  }
  const addon = nativeAddon();
  const full = PIECE_ROWS * meta.dim * 4;
  const pool: ArrayBuffer[] = [];
  // Every piece in order: [file, first row, rows, start in the training set].
  const pieces: { file: string; row: number; rows: number; start: number }[] = [];
  let start = 0;
  for (const s of meta.shards) {
    for (let row = 0; row < s.rows; row += PIECE_ROWS) pieces.push({ file: s.file, row, rows: Math.min(PIECE_ROWS, s.rows - row), start: start + row });
    start += s.rows;
  }
  const source: OwnedChunksSource = {
    n: meta.n,
    blocks: [{ name: 'g', shape: [meta.dim], dim: meta.dim }],
    ownedChunks: true,
    // Only full-size buffers are kept for reuse (a shorter last piece has its own).
    recycle: (buffer) => void (buffer.byteLength === full && pool.push(buffer)),
    chunks: function* () {
      const fds = new Map<string, number>();
      const open = (file: string) => {
        let fd = fds.get(file);
        if (fd === undefined) {
          fd = fs.openSync(path.join(dir, file), 'r');
          fds.set(file, fd);
        }
        return fd;
      };
      const close = (file: string) => {
        const fd = fds.get(file);
        if (fd !== undefined) fs.closeSync(fd);
        fds.delete(file);
      };
      const buffer = (rows: number) => (rows === PIECE_ROWS ? new Float32Array(pool.pop() ?? new ArrayBuffer(full)) : new Float32Array(rows * meta.dim));
      // A piece being read: its array and, on the native path, the read's id.
      let ahead: { data: Float32Array; id: number } | null = null;
      const begin = (k: number) => {
        const p = pieces[k];
        const data = buffer(p.rows);
        const position = p.row * meta.dim * 4;
        if (!addon) {
          readFully(open(p.file), data, position, p.file);
          return { data, id: -1 };
        }
        return { data, id: addon.readStart(open(p.file), Float64Array.of(position), [data]) };
      };
      try {
        for (let k = 0; k < pieces.length; k++) {
          const cur = ahead ?? begin(k);
          ahead = null;
          if (cur.id >= 0 && addon!.readFinish(cur.id) !== cur.data.byteLength) throw new Error(`${pieces[k].file}: short read`);
          const p = pieces[k];
          if (k + 1 === pieces.length || pieces[k + 1].file !== p.file) close(p.file);
          if (k + 1 < pieces.length) ahead = begin(k + 1);
          yield { start: p.start, set: { n: p.rows, blocks: [{ name: 'g', shape: [meta.dim], dim: meta.dim, data: cur.data }] } };
        }
      } finally {
        if (ahead && ahead.id >= 0) addon!.readFinish(ahead.id);
        for (const file of [...fds.keys()]) close(file);
      }
    },
  };
  return { source, meta, test };
}

async function grads(workers: number) {
  const model = LlamaModel.load(arg('model'));
  const adapter = loadAdapter(arg('adapter'), model.config);
  const data = JSON.parse(fs.readFileSync(arg('data'), 'utf8')) as { input_ids: number[][]; prompt_length: number };
  const examples = data.input_ids.map((ids) => ({ inputIds: ids, promptLength: data.prompt_length }));
  const n = Math.min(Number(arg('examples')), examples.length);
  const batchSize = Number(arg('batch-size', '8'));
  const t0 = performance.now();
  const pool = workers > 0 ? await GradientWorkers.start(model, adapter, workers) : null;
  const startup = (performance.now() - t0) / 1000;
  const passRows = arg('pass-rows', '');
  const opts = { batchSize, workers: pool ?? 0, ...(passRows ? { passRows: Number(passRows) } : {}) };
  try {
    // Warm-up: one batch per computing thread, the workers' and this one (kernels, memory pools).
    await computeLoraGradients(model, adapter, examples.slice(0, batchSize * (workers + 1)), opts);
    const t1 = performance.now();
    const result = await computeLoraGradients(model, adapter, examples.slice(0, n), opts);
    const seconds = (performance.now() - t1) / 1000;
    const dump = arg('dump', '');
    if (dump) {
      // First examples' gradients, flattened per example in adapter module order, A then B (PEFT layout).
      const k = Number(arg('dump-examples', '2'));
      const parts: Float32Array[] = [];
      for (let e = 0; e < k; e++) {
        for (const m of adapter.modules) {
          for (const which of ['A', 'B'] as const) {
            const t = blockByName(result, adapterKey(m.path, which));
            const per = t.data.length / n;
            parts.push(t.data.subarray(e * per, (e + 1) * per));
          }
        }
      }
      const flat = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        flat.set(p, o);
        o += p.length;
      }
      fs.writeFileSync(dump, Buffer.from(flat.buffer));
    }
    console.log(JSON.stringify({ examples: n, seconds, examples_per_s: n / seconds, startup_seconds: startup, workers, peak_rss_mb: peakRssMb() }));
  } finally {
    await pool?.close();
    model.dispose();
  }
}

/** `workers` undefined: the library's default (on native BLAS, this thread). */
function scoring(mode: 'graddot' | 'datainf', workers: number | undefined) {
  const { source, meta, test } = shardSource(arg('shards'));
  const testSet = { n: meta.n_test, blocks: [{ name: 'g', shape: [meta.dim], dim: meta.dim, data: test }] };
  const method = mode === 'graddot' ? new GradDot({ workers }) : new DataInf({ workers });
  const t0 = performance.now();
  method.cache(source);
  const s = method.attribute(testSet);
  const seconds = (performance.now() - t0) / 1000;
  const dump = arg('dump', '');
  if (dump) fs.writeFileSync(dump, Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength));
  console.log(JSON.stringify({ seconds, pairs_per_s: (meta.n_test * meta.n) / seconds, workers: workers ?? 'default', peak_rss_mb: peakRssMb() }));
}

async function main() {
  const mode = process.argv[2];
  await initBackend('wasm');
  const w = arg('workers', '0');
  if (mode === 'grads') await grads(Number(w));
  else if (mode === 'graddot' || mode === 'datainf') scoring(mode, w === 'default' ? undefined : Number(w));
  else throw new Error(`unknown mode '${mode}'`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
