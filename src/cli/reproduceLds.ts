/** `tda-lab reproduce lds`: the run folder, the printed table and the report of the LDS experiment. */
import * as path from 'node:path';
import { EmbeddedDefault } from '../experiments/embedded';
import { LdsExperimentOptions, LdsExperimentResult, runLdsExperiment } from '../experiments/lds';
import { readCompletedRuns, writeLdsRun, writeLdsSummary } from '../experiments/ldsFiles';
import { writeRunReport } from '../experiments/output';
import { groupedBarFigure, lineFigure } from '../viz/figures';
import { formatTable } from './table';

export interface LdsReproduceOptions {
  quick?: boolean;
  seeds?: number[];
  subsets?: number;
  fraction?: number;
  workers?: number;
  /** `dir` is a run folder to finish: its complete seeds are reused, not run again. */
  resume?: boolean;
  /** Further experiment settings (the tests use a smaller configuration than --quick). */
  experiment?: Partial<Omit<LdsExperimentOptions, 'workDir' | 'onRun'>>;
  log: (line: string) => void;
  progress: (label: string, done: number, total: number) => void;
}

export async function reproduceLds(env: EmbeddedDefault, dir: string, o: LdsReproduceOptions, meta: Record<string, unknown>): Promise<{ table: string; report: string; result: LdsExperimentResult }> {
  const r = await runLdsExperiment(env, {
    quick: o.quick,
    seeds: o.seeds,
    subsets: o.subsets,
    fraction: o.fraction,
    workers: o.workers,
    ...o.experiment,
    workDir: path.join(dir, 'checkpoints'),
    log: o.log,
    progress: o.progress,
    onRun: (run) => writeLdsRun(dir, run),
    completed: o.resume ? readCompletedRuns(dir) : undefined,
  });
  writeLdsSummary(dir, r, meta);
  const seeds = r.runs.map((x) => x.seed).join(',');
  const rows = [...r.lds].sort((a, b) => b.lds - a.lds);
  const looBy = new Map(r.loo.map((x) => [x.method, x]));
  const flipsBy = (m: string) => {
    const rs = r.brittleness.filter((b) => b.method === m);
    return rs.length ? `${rs.filter((b) => b.kFlip !== null).length}/${rs.length}` : '';
  };
  const tableRows = rows.map((x) => ({
    method: x.method,
    LDS: x.lds,
    '95% CI': `[${x.lds_lo.toFixed(3)}, ${x.lds_hi.toFixed(3)}]`,
    LOO: looBy.get(x.method)?.loo ?? NaN,
    flipped: flipsBy(x.method),
  }));
  const ks = (r.settings.brittleKs as number[]) ?? [];
  const table = `LDS by method (seeds ${seeds}; mean over queries; interval: bootstrap over runs, then queries); LOO = mean Spearman with leave-one-out loss changes; flipped = hallucinated queries whose answer no longer names the target after removing the method's top k <= ${ks[ks.length - 1]} and retraining\n${formatTable(tableRows, 3)}`;
  const methods = rows.map((x) => x.method);
  const report = writeRunReport(dir, {
    title: 'Ground truth by retraining: LDS, leave-one-out and brittleness',
    subtitle: `embedded default model; seeds ${seeds}; ${new Date().toISOString()}`,
    sections: [
      {
        heading: 'Linear datamodeling score',
        text: [
          'Per query: Spearman correlation, over the retraining subsets, between the sum of the method\'s scores over the subset and minus the query\'s loss after retraining on it; mean over queries. Intervals: 95% bootstrap, resampling runs (seeds), then queries within each run.',
        ],
        table: tableRows,
        figures: [groupedBarFigure('LDS by method', methods, [{ name: 'LDS', values: rows.map((x) => x.lds), lo: rows.map((x) => x.lds_lo), hi: rows.map((x) => x.lds_hi) }], 'LDS')],
      },
      {
        heading: 'Brittleness',
        text: ['Share of the tested hallucinated queries whose greedy answer no longer names the target country after removing the method\'s top k training examples (or k random ones) and retraining.'],
        figures: [
          lineFigure(
            'Answers flipped by removing the top k',
            ks,
            [...new Set(r.flipCurve.map((f) => f.method))].map((m) => ({ name: m, values: ks.map((k) => r.flipCurve.find((f) => f.method === m && f.k === k)?.flipped ?? NaN) })),
            'k removed',
            'share of queries flipped',
          ),
        ],
        table: r.flipCurve,
      },
      { heading: 'Leave-one-out', table: r.loo },
      { heading: 'Settings', text: [JSON.stringify({ ...meta, ...r.settings })] },
    ],
  });
  return { table, report, result: r };
}
