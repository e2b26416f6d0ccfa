/**
 * The files of a `reproduce lds` run folder, written so that anyone can recompute the LDS:
 *   lds.csv            method,lds,lds_lo,lds_hi (all runs; run-then-query bootstrap)
 *   loo.csv            method,loo,loo_lo,loo_hi (leave-one-out Spearman, same intervals)
 *   brittleness.csv    seed,query,method,k_flip,tried (k_flip empty: no k of the grid flipped)
 *   flip_curve.csv     method,k,flipped,queries (share of queries flipped removing <= k)
 *   seed-<s>/          one run:
 *     subsets.json     {"subsets": [[kept training indices], ...]}
 *     outcomes.csv     subset,query,loss (after retraining on the subset)
 *     scores/<method>.safetensors   `scores` [nQuery, nTrain] at the model trained on the full set
 *     lds.csv, lds_per_query.csv    this run alone (query-level bootstrap), query,method,lds
 *     loo.csv          example,query,loss (example -1: retrained on the full set)
 *     run.json         the run's settings and per-query results, written last: a folder
 *                      with it is complete, and `--resume` reuses it
 *     train.jsonl, queries.jsonl    the texts (label: canary or clean; for queries, response = the answer
 *                      explained, label hallucination or other)
 * Each file is written atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeScoreFile } from '../attribution/scoreFile';
import { ldsInterval } from '../eval/lds';
import { writeJson } from './output';
import { TdaError } from '../errors';
import type { LdsExperimentResult, LdsRun, LdsRunSummary } from './lds';

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const num = (v: number) => (Number.isNaN(v) ? 'NaN' : String(v));

function csv(header: string[], rows: (string | number)[][]): string {
  return [header.join(','), ...rows.map((r) => r.map((v) => (typeof v === 'number' ? num(v) : v)).join(','))].join('\n') + '\n';
}

/** A method name as a file name (names are identifiers with dots already; keep it that way). */
export function scoreFileName(method: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(method)) throw new Error(`method name '${method}' is not a safe file name`);
  return `${method}.safetensors`;
}

export function runDirName(seed: number): string {
  return `seed-${seed}`;
}

/** Writes one run's folder (see the module comment). */
export function writeLdsRun(dir: string, run: LdsRun): string {
  const d = path.join(dir, runDirName(run.seed));
  fs.mkdirSync(path.join(d, 'scores'), { recursive: true });
  writeJson(path.join(d, 'subsets.json'), { subsets: run.subsets });
  const outcomes: (string | number)[][] = [];
  run.outcomes.forEach((row, m) => row.forEach((loss, q) => outcomes.push([m, q, loss])));
  writeAtomic(path.join(d, 'outcomes.csv'), csv(['subset', 'query', 'loss'], outcomes));
  for (const [method, s] of Object.entries(run.scores)) writeScoreFile(path.join(d, 'scores', scoreFileName(method)), s, { method, seed: String(run.seed) });
  const methods = Object.keys(run.lds);
  writeAtomic(
    path.join(d, 'lds.csv'),
    csv(['method', 'lds', 'lds_lo', 'lds_hi'], methods.map((m) => {
      const ci = ldsInterval([run.lds[m]], { seed: 0, resamples: 2000 });
      return [m, ci.lds, ci.lo, ci.hi];
    })),
  );
  writeAtomic(path.join(d, 'lds_per_query.csv'), csv(['query', 'method', 'lds'], methods.flatMap((m) => run.lds[m].map((v, q) => [q, m, v]))));
  const loo: (string | number)[][] = [];
  run.fullLosses.forEach((loss, q) => loo.push([-1, q, loss]));
  run.looLosses.forEach((row, j) => row.forEach((loss, q) => loo.push([run.looExamples[j], q, loss])));
  writeAtomic(path.join(d, 'loo.csv'), csv(['example', 'query', 'loss'], loo));
  writeAtomic(path.join(d, 'train.jsonl'), run.train.map((t) => JSON.stringify({ prompt: t.prompt, response: t.response, label: t.canary ? 'canary' : 'clean' })).join('\n') + '\n');
  writeAtomic(
    path.join(d, 'queries.jsonl'),
    run.queries.map((q) => JSON.stringify({ prompt: q.prompt, response: q.answer, label: q.hallucinated ? 'hallucination' : 'other' })).join('\n') + '\n',
  );
  // NaN is not JSON: per-query values without a correlation are stored as null.
  const nulled = (byMethod: Record<string, number[]>) => Object.fromEntries(Object.entries(byMethod).map(([m, v]) => [m, v.map((x) => (Number.isNaN(x) ? null : x))]));
  const summary = { seed: run.seed, settings: run.settings, queries: run.queries, lds: nulled(run.lds), loo: nulled(run.loo), brittleness: run.brittleness, seconds: run.seconds };
  writeJson(path.join(d, RUN_FILE), summary);
  return d;
}

const RUN_FILE = 'run.json';

/** The complete runs of a run folder (each seed-<s>/ with its run.json), for resuming. */
export function readCompletedRuns(dir: string): LdsRunSummary[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new TdaError('is not a run folder', { file: dir });
  const out: LdsRunSummary[] = [];
  for (const entry of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, entry, RUN_FILE);
    if (!/^seed-\d+$/.test(entry) || !fs.existsSync(file)) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new TdaError(`is not valid JSON (${(e as Error).message})`, { file });
    }
    const r = raw as Record<string, unknown>;
    const isObj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!isObj(r)) throw new TdaError('must be a JSON object', { file });
    if (r.seed !== Number(entry.slice(5))) throw new TdaError(`must be ${entry.slice(5)}, the folder's seed`, { file, field: 'seed' });
    for (const f of ['settings', 'lds', 'loo', 'seconds']) if (!isObj(r[f])) throw new TdaError('must be an object', { file, field: f });
    for (const f of ['queries', 'brittleness']) if (!Array.isArray(r[f])) throw new TdaError('must be an array', { file, field: f });
    const perQuery = (f: 'lds' | 'loo') =>
      Object.fromEntries(
        Object.entries(r[f] as Record<string, unknown>).map(([m, v]) => {
          if (!Array.isArray(v) || v.some((x) => x !== null && typeof x !== 'number')) throw new TdaError('must be an array of numbers or null', { file, field: `${f}.${m}` });
          return [m, v.map((x) => (x === null ? NaN : (x as number)))];
        }),
      );
    out.push({ ...(r as unknown as LdsRunSummary), lds: perQuery('lds'), loo: perQuery('loo') });
  }
  return out;
}

/** Writes the pooled tables and settings. */
export function writeLdsSummary(dir: string, r: LdsExperimentResult, meta: Record<string, unknown>): void {
  writeAtomic(path.join(dir, 'lds.csv'), csv(['method', 'lds', 'lds_lo', 'lds_hi'], r.lds.map((x) => [x.method, x.lds, x.lds_lo, x.lds_hi])));
  writeAtomic(path.join(dir, 'loo.csv'), csv(['method', 'loo', 'loo_lo', 'loo_hi'], r.loo.map((x) => [x.method, x.loo, x.loo_lo, x.loo_hi])));
  writeAtomic(
    path.join(dir, 'brittleness.csv'),
    csv(['seed', 'query', 'method', 'k_flip', 'tried'], r.brittleness.map((b) => [(b as { seed?: number }).seed ?? '', b.query, b.method, b.kFlip === null ? '' : b.kFlip, b.tried.join(' ')])),
  );
  writeAtomic(path.join(dir, 'flip_curve.csv'), csv(['method', 'k', 'flipped', 'queries'], r.flipCurve.map((f) => [f.method, f.k, f.flipped, f.queries])));
  writeJson(path.join(dir, 'settings.json'), {
    ...meta,
    ...r.settings,
    runs: r.runs.map((x) => ({ seed: x.seed, seconds: x.seconds, hallucinated: x.queries.filter((q) => q.hallucinated).length, queries: x.queries.length })),
  });
}
