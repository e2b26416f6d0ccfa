/**
 * `tda-lab metrics`: evaluate a score matrix against ground truth.
 *
 *   --scores  safetensors file with a tensor `scores` of shape [nTest, nTrain] (F32; other
 *             float types are converted), rows are queries, higher = more helpful.
 *   --labels  JSON `{"positives": [[training indices relevant to query 0], ...]}`.
 *   --out     CSV with one row per query: query,auc,ap,recall_at_k (NaN where undefined).
 *   --k       k of recall@k, default 10 (capped at nTrain).
 *   --seed    seed of the bootstrap intervals, default 0.
 *
 * Prints the mean of each metric over the queries that have positives, with a 95%
 * percentile-bootstrap interval over queries, and the pooled AUC. Needs no tfjs backend.
 * Every bad input is a TdaError naming the file and field, raised before anything is
 * written; the CSV is written atomically (temp file + rename).
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { TdaError } from '../errors';
import { writeFileAtomic, writeFully } from '../io/fsutil';
import { SafetensorsFile } from '../io/safetensors';
import { bootstrapMeanCI } from '../eval/bootstrap';
import { danfo, DataFrame, frameColumn, frameFromColumns } from '../eval/frame';
import { DEFAULT_RECALL_K, perQueryMetrics, pooledAuc } from '../eval/perQuery';
import { checkPositives, checkScoresForMetrics } from '../eval/validate';
import { ScoreMatrix } from '../attribution/types';
import { formatTable } from './table';
import { refuseTopK } from '../attribution/scoreFile';

export const SCORES_TENSOR = 'scores';
const RESAMPLES = 1000;
const LEVEL = 0.95;

export interface MetricsOptions {
  /** Safetensors file holding `scores` [nTest, nTrain]. */
  scores: string;
  /** JSON file `{"positives": [[...], ...]}`. */
  labels: string;
  /** Output CSV path. */
  out: string;
  /** k of recall@k (default 10). */
  k?: number;
  /** Seed of the bootstrap intervals (default 0). */
  seed?: number;
}

export interface MetricsResult {
  /** One row per query: query, auc, ap, recall_at_k (what the CSV holds). */
  rows: DataFrame;
  /** One row per metric: metric, mean, lo, hi, n (queries counted; NaN rows excluded). */
  means: DataFrame;
  pooledAuc: number;
  k: number;
  /** Seed of the bootstrap intervals. */
  seed: number;
  nTest: number;
  nTrain: number;
}

/** Read `scores` [nTest, nTrain] from a safetensors file, checking shape and NaNs. */
export function readScoreMatrix(file: string): ScoreMatrix {
  const st = SafetensorsFile.open(file);
  try {
    // AUC and AP need every training example's rank; a top-k file has only the first k.
    refuseTopK(st, 'metrics');
    if (!st.has(SCORES_TENSOR)) {
      const names = st.names();
      const have = names.length ? `it has ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}` : 'it has no tensors';
      throw new TdaError(`no tensor named '${SCORES_TENSOR}' (${have})`, { file, field: SCORES_TENSOR });
    }
    const shape = st.info(SCORES_TENSOR).shape;
    if (shape.length !== 2) throw new TdaError(`must be 2-D [nTest, nTrain], got shape [${shape.join(', ')}]`, { file, field: SCORES_TENSOR });
    const scores: ScoreMatrix = { nTest: shape[0], nTrain: shape[1], data: st.readFloat32(SCORES_TENSOR) };
    checkScoresForMetrics(scores, { file, field: SCORES_TENSOR });
    return scores;
  } finally {
    st.close();
  }
}

/** Read the positives lists of labels.json, checked against the score matrix's shape. */
export function readPositives(file: string, nTest: number, nTrain: number): number[][] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new TdaError(`cannot read labels file: ${(e as Error).message}`, { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TdaError(`is not valid JSON: ${(e as Error).message}`, { file });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json) || !('positives' in json)) {
    throw new TdaError('missing: expected {"positives": [[indices for query 0], ...]}', { file, field: 'positives' });
  }
  return checkPositives((json as { positives: unknown }).positives, nTest, nTrain, { file });
}

function checkInt(value: number, field: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TdaError(`must be ${min > 0 ? 'a positive' : 'a non-negative'} integer, got ${value}`, { field });
  }
}

export function runMetrics(opts: MetricsOptions): MetricsResult {
  const k = opts.k ?? DEFAULT_RECALL_K;
  checkInt(k, '--k', 1);
  const seed = opts.seed ?? 0;
  checkInt(seed, '--seed', 0);
  const scores = readScoreMatrix(opts.scores);
  const positives = readPositives(opts.labels, scores.nTest, scores.nTrain);

  const rows = perQueryMetrics(scores, positives, { k });
  const metrics = rows.columns.filter((c) => c !== 'query');
  const cis = metrics.map((m) => bootstrapMeanCI(frameColumn(rows, m), { resamples: RESAMPLES, level: LEVEL, seed }));
  const means = frameFromColumns({
    metric: metrics,
    mean: cis.map((c) => c.mean),
    lo: cis.map((c) => c.lo),
    hi: cis.map((c) => c.hi),
    n: cis.map((c) => c.n),
  });

  let csv = danfo().toCSV(rows) as string;
  if (!csv.endsWith('\n')) csv += '\n';
  writeFileAtomic(opts.out, (fd) => writeFully(fd, Buffer.from(csv, 'utf8')));
  return { rows, means, pooledAuc: pooledAuc(scores, positives), k, seed, nTest: scores.nTest, nTrain: scores.nTrain };
}

/** The stdout report: means with intervals, pooled AUC, and what they were computed over. */
export function formatMetricsReport(r: MetricsResult): string {
  const f = (v: number) => (Number.isNaN(v) ? 'NaN' : v.toFixed(4));
  const pct = `${Math.round(LEVEL * 100)}%`;
  const names = r.means.column('metric').values as string[];
  const col = (c: string) => frameColumn(r.means, c);
  const [mean, lo, hi, n] = [col('mean'), col('lo'), col('hi'), col('n')];
  const table = formatTable(names.map((m, j) => ({ metric: m, mean: f(mean[j]), [`${pct} lo`]: f(lo[j]), [`${pct} hi`]: f(hi[j]), queries: n[j] })));
  const without = r.nTest - Math.max(...n);
  return [
    `Metrics over ${r.nTest} queries x ${r.nTrain} training examples (recall at k = ${r.k})`,
    table,
    `pooled AUC (all query x training pairs ranked together): ${f(r.pooledAuc)}`,
    `intervals: ${pct} percentile bootstrap over queries (${RESAMPLES} resamples, seed ${r.seed})` +
      (without > 0 ? `; ${without} ${without === 1 ? 'query without positives is' : 'queries without positives are'} left out of the means` : ''),
  ].join('\n');
}

/** Parse an integer option strictly (no '1e1', '', '2.5'); range checks are runMetrics's. */
function intOption(value: string | undefined, field: string, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new TdaError(`must be ${what} integer, got '${value}'`, { field });
  return Number(value);
}

/** Adds `tda-lab metrics` to the program. */
export function registerMetricsCommand(program: Command): Command {
  program
    .command('metrics')
    .description('AUC, average precision and recall@k of a score matrix against ground-truth positives, per query (CSV) and averaged')
    .requiredOption('--scores <file>', "safetensors file with a 'scores' tensor [nTest, nTrain]; higher = more helpful")
    .requiredOption('--labels <file>', 'JSON {"positives": [[training indices relevant to query 0], ...]}')
    .requiredOption('--out <file>', 'output CSV: query,auc,ap,recall_at_k (one row per query)')
    .option('--k <n>', `k of recall@k (default ${DEFAULT_RECALL_K})`)
    .option('--seed <n>', 'seed of the bootstrap intervals (default 0)')
    .action((o: { scores: string; labels: string; out: string; k?: string; seed?: string }) => {
      const k = intOption(o.k, '--k', 'a positive');
      const seed = intOption(o.seed, '--seed', 'a non-negative');
      const r = runMetrics({ scores: o.scores, labels: o.labels, out: o.out, k, seed });
      process.stdout.write(formatMetricsReport(r) + '\n');
      process.stderr.write(`wrote ${o.out}: ${r.nTest} rows\n`);
    });
  return program;
}
