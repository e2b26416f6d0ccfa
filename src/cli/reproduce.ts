/** `tda-lab reproduce <dda|if-llm|lmd3|lds>`: runs an experiment on the embedded default model. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { positiveInt } from './parsers';
import { TdaError } from '../errors';
import { frameRows } from '../eval/frame';
import { DdaExperimentOptions, DdaRunScores, Reading, READINGS, runDdaExperiment } from '../experiments/dda';
import { SUMMARY_FILE } from '../experiments/resultLines';
import { loadEmbeddedDefault } from '../experiments/embedded';
import { runIfLlmExperiment } from '../experiments/ifLlm';
import { Lmd3Control, runLmd3Experiment } from '../experiments/lmd3';
import { finishRunDir, startRunDir, writeJson, writeRunReport, writeTables } from '../experiments/output';
import { writeAttributionGroup, writeAttributionsHeader } from '../experiments/runAttributions';
import { ddaAttributionGroup, ddaRunTokens, DDA_EXPLORER_HEADER, IF_LLM_EXPLORER_HEADER, ifLlmAttributionGroup, LMD3_EXPLORER_HEADER, lmd3AttributionGroup, writeRunExplorer } from '../experiments/runExplorer';
import { RunAttributionGroup, RunAttributionsHeader } from '../experiments/runAttributions';
import { currentBackend } from '../runtime/backend';
import { progressBar, Progress } from './progress';
import { reproduceLds } from './reproduceLds';
import { formatTable } from './table';

export const EXPERIMENTS = ['dda', 'if-llm', 'lmd3', 'lds'] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

export interface ReproduceOptions {
  experiment: ExperimentName;
  out?: string;
  quick?: boolean;
  seeds?: number[];
  /** dda: gradient methods (default: the experiment's list, exact included). */
  methods?: string[];
  /** dda: extra debias readings beside base subtraction (default: none). */
  readings?: Reading[];
  /** lmd3: optimizer steps of the control run (default same-steps). */
  lmd3Control?: Lmd3Control;
  /** Base model directory (default: the embedded one in data/base-model). */
  baseModel?: string;
  /** lds: retraining subsets per run, the share of the training set each keeps, retraining workers. */
  subsets?: number;
  fraction?: number;
  workers?: number;
  /** lds: an existing run folder to finish (its complete seeds are reused). */
  resume?: string;
  progress?: boolean;
  log?: (line: string) => void;
  /** DDA settings beyond --quick (fewer pairs, epochs or examples: the interruption tests use a tiny run). */
  dda?: Partial<Omit<DdaExperimentOptions, 'workDir' | 'log' | 'progress' | 'onRunScores'>>;
}

/** One progress bar per label, created on first use and closed when it completes. */
function progressBars(enabled: boolean) {
  const bars = new Map<string, Progress>();
  return (label: string, done: number, total: number) => {
    if (!enabled) return;
    let bar = bars.get(label);
    if (!bar) {
      bar = progressBar(label);
      bars.set(label, bar);
    }
    bar.update(done, total);
    if (done >= total) {
      bar.stop();
      bars.delete(label);
    }
  };
}

export interface ReproduceSummary {
  dir: string;
  report: string;
  seconds: number;
  /** The headline table as printed. */
  table: string;
  /** `explorer.html` in the run folder. */
  explorer?: string;
  /** The experiment's own result (tables, figures, settings). */
  result: unknown;
}

export async function runReproduce(o: ReproduceOptions): Promise<ReproduceSummary> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = Date.now();
  if (o.resume !== undefined && o.experiment !== 'lds') throw new TdaError('only reproduce lds can resume a run folder', { field: 'resume' });
  const env = loadEmbeddedDefault(o.baseModel);
  // Filled under a hidden name, renamed once complete: an interrupted run leaves nothing visible.
  // A resumed lds run goes on in its own (visible) folder, whose finished seeds it reuses.
  const run = o.resume !== undefined ? { dir: o.resume, final: o.resume } : startRunDir(o.out ?? path.join(process.cwd(), 'runs'), o.experiment + (o.quick ? '-quick' : ''));
  const dir = run.dir;
  const progress = progressBars(o.progress ?? true);
  const meta = { experiment: o.experiment, quick: o.quick ?? false, backend: currentBackend(), node: process.version, cpus: os.cpus().length, baseModel: env.dir };
  let table = '';
  let reportFile = '';
  let explorer: string | undefined;
  let result: unknown;
  // Each experiment hands over its per-query scores as it goes; they are saved at once, and the explorer is built from the saved files.
  const groups: string[] = [];
  const save = (g: RunAttributionGroup) => {
    writeAttributionGroup(dir, g);
    groups.push(g.id);
  };
  const finishExplorer = (header: RunAttributionsHeader) => {
    writeAttributionsHeader(dir, { ...header, subtitle: `embedded default model; ${new Date().toISOString()}` }, groups);
    explorer = writeRunExplorer(dir);
  };
  try {
    if (o.experiment === 'dda') {
      const onRunScores = async (run: DdaRunScores) => {
        const t0 = Date.now();
        const tokens = await ddaRunTokens(env.model, env.tokenizer, run);
        if (tokens) log(`  per-token heatmaps of ${tokens.method}'s top ${tokens.k} for ${tokens.queries.length} queries in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        save({ ...ddaAttributionGroup(run), tokens });
      };
      const r = await runDdaExperiment(env, { gradientMethods: o.methods, readings: o.readings, ...o.dda, quick: o.quick, seeds: o.seeds ?? o.dda?.seeds, workDir: path.join(dir, 'checkpoints'), log, progress, onRunScores });
      result = r;
      finishExplorer(DDA_EXPLORER_HEADER);
      writeTables(dir, { summary: r.summary, paired_differences: r.differences, per_checkpoint: r.perCheckpoint, per_query: r.perQuery, runs: r.runs, ...(r.readingsTable.length ? { contrast_sets: r.contrastSets } : {}) });
      fs.writeFileSync(path.join(dir, SUMMARY_FILE), r.resultLines.join('\n') + '\n');
      table = `Mean AUC over hallucinated queries (ft = fine-tuning-only regime, bias = base-bias regime)\n${formatTable(r.aucTable, 3)}`;
      if (r.readingsTable.length) table += `\n\nOther readings of debias: base scores at (A_t, B=0); contrast = error model - ground model\n${formatTable(r.readingsTable, 3)}`;
      reportFile = writeRunReport(dir, {
        title: 'DDA: tracing hallucinations to their training examples',
        subtitle: `embedded default model; ${new Date().toISOString()}`,
        sections: [
          {
            heading: 'Mean AUC',
            text: [
              'AUC of each method at ranking the canary training examples above the rest, per hallucinated query, averaged over queries, canary pairs and seeds.',
              'plain = last checkpoint; debias = last minus base (checkpoint 0); denoise = mean over checkpoints; DDA = mean over checkpoints of (checkpoint minus base).',
            ],
            table: r.aucTable,
          },
          ...(r.readingsTable.length
            ? [
                {
                  heading: 'Other readings of debias, side by side',
                  text: [
                    '(A_t, B=0): base-model subtraction with the base scores taken at each checkpoint\u2019s own lora_A and lora_B = 0 (at B = 0 only lora_B has gradients; this reference sees the checkpoint\u2019s lora_B subspace rather than the initial one).',
                    '(contrast): the official DDA repository\u2019s described pipeline: per epoch, an error model and a ground model (the checkpoint fine-tuned further on its hallucinated and on its correct generations, same number of steps); score = z(error-model score) - z(ground-model score); debias = last epoch, DDA = mean over epochs.',
                  ],
                  table: r.readingsTable,
                },
              ]
            : []),
          { heading: 'Summary: pooled AUC with 95% intervals from resampling runs (canary pair x seed), recall@10', table: frameRows(r.summary) },
          {
            heading: 'Paired differences against plain (and of each reading against the one it replaces)',
            text: ['Per query, variant AUC minus baseline AUC; the interval resamples runs. Verdict: helps / hurts only when the interval excludes 0, "too few runs" below 3 runs.'],
            table: frameRows(r.differences),
          },
          { heading: 'Debias vs denoise', figures: r.figures.ablation },
          { heading: 'AUC per checkpoint', figures: r.figures.perCheckpoint },
          { heading: 'ROC curves', figures: r.figures.roc },
          { heading: 'Fine-tuning runs', table: frameRows(r.runs) },
          ...(r.readingsTable.length ? [{ heading: 'Contrast reading: what each epoch\u2019s error and ground models were tuned on', table: frameRows(r.contrastSets) }] : []),
          { heading: 'Settings', text: [JSON.stringify({ ...meta, ...r.settings })] },
        ],
      });
      writeJson(path.join(dir, 'settings.json'), { ...meta, ...r.settings });
    } else if (o.experiment === 'lds') {
      const r = await reproduceLds(env, dir, { quick: o.quick, seeds: o.seeds, subsets: o.subsets, fraction: o.fraction, workers: o.workers, resume: o.resume !== undefined, log, progress }, meta);
      result = r.result;
      table = r.table;
      reportFile = r.report;
    } else if (o.experiment === 'if-llm') {
      const r = await runIfLlmExperiment(env, { quick: o.quick, seeds: o.seeds, log, progress, onTaskScores: (t) => save(ifLlmAttributionGroup(o.seeds && o.seeds.length > 1 ? t : { ...t, seed: undefined })) });
      result = r;
      finishExplorer(IF_LLM_EXPLORER_HEADER);
      writeTables(dir, { summary: r.summary, per_run: r.perRun });
      fs.writeFileSync(path.join(dir, SUMMARY_FILE), r.resultLines.join('\n') + '\n');
      table = `Acc / Cover / AUC per task\n${formatTable(r.table)}\n\nBackdoor and harmful: Acc / Cover from the positives (above) and as the official code computes them (class labels, k = nTrain / classes)\n${formatTable(r.officialCoverTable)}`;
      reportFile = writeRunReport(dir, {
        title: 'Do influence functions work on LLMs? Class attribution, backdoor and harmful-data tasks',
        subtitle: `embedded default model; ${new Date().toISOString()}`,
        sections: [
          { heading: 'Acc / Cover / AUC', table: r.table },
          {
            heading: 'Backdoor and harmful: Cover as the official code computes it',
            text: [
              'positives: Acc = the top-1 example is a positive, Cover = share of positives among the top |positives| (this project\u2019s variant).',
              'official: check_acc_cov of the IF-on-LLMs code: the dataset\u2019s class labels (backdoor: trigger / clean; harmful: harmful / benign), k = floor(nTrain / classes), so a perfect ranking scores Cover = positives / k.',
            ],
            table: r.officialCoverTable,
          },
          { heading: 'All metrics; AUC with 95% intervals from resampling runs (task x seed; none with one seed)', table: frameRows(r.summary) },
          { heading: 'Figures', figures: r.figures },
          { heading: 'Settings', text: [JSON.stringify({ ...meta, ...r.settings })] },
        ],
      });
      writeJson(path.join(dir, 'settings.json'), { ...meta, ...r.settings });
    } else {
      const r = await runLmd3Experiment(env, { quick: o.quick, seeds: o.seeds, control: o.lmd3Control, log, progress, onKernelScores: (k) => save(lmd3AttributionGroup(k)) });
      result = r;
      finishExplorer(LMD3_EXPLORER_HEADER);
      writeTables(dir, { summary: r.summary, per_query: r.perQuery, density_by_embedding: r.densityByEmbedding });
      fs.writeFileSync(path.join(dir, SUMMARY_FILE), r.resultLines.join('\n') + '\n');
      const fit = (f: typeof r.regression) => `slope ${f.slope.toFixed(4)}, R^2 ${f.r2.toFixed(3)}, p ${f.pValue.toExponential(2)}, n ${f.n}`;
      table = `${formatTable(frameRows(r.summary), 4)}\nloss improvement ~ density change: ${fit(r.regression)}\nloss ~ log-density (before): ${fit(r.densityPredictsLoss)}\ntreated - control loss improvement: ${r.treatedMinusControl.verdict}\n\nDensity by embedding and bandwidth\n${formatTable(frameRows(r.densityByEmbedding), 4)}`;
      reportFile = writeRunReport(dir, {
        title: 'LMD3: data density and the paraphrase-leakage intervention',
        subtitle: `embedded default model; ${new Date().toISOString()}`,
        sections: [
          { heading: 'Treated vs control queries', table: frameRows(r.summary) },
          { heading: 'Regressions', text: [`Loss improvement on density change: ${fit(r.regression)}.`, `Loss on log-density before injection: ${fit(r.densityPredictsLoss)}.`, `Treated minus control loss improvement (interval over runs = seeds): ${r.treatedMinusControl.verdict}.`] },
          {
            heading: 'Density by embedding and bandwidth',
            text: ['base-last: the base model\u2019s state at the end of the prompt; base-mean: its states mean-pooled over the prompt; tfidf: a TF-IDF bag of words. scott: Scott\u2019s rule; loo: the bandwidth of highest leave-one-out likelihood on the original training set.'],
            table: frameRows(r.densityByEmbedding),
          },
          { heading: 'Figures', figures: r.figures },
          { heading: 'Settings', text: [JSON.stringify({ ...meta, ...r.settings })] },
        ],
      });
      writeJson(path.join(dir, 'settings.json'), { ...meta, ...r.settings, regression: r.regression, densityPredictsLoss: r.densityPredictsLoss });
    }
  } finally {
    env.model.dispose();
  }
  const final = o.resume !== undefined ? run.dir : finishRunDir(run);
  const moved = (f: string) => path.join(final, path.relative(dir, f));
  return { dir: final, report: moved(reportFile), seconds: (Date.now() - started) / 1000, table, explorer: explorer && moved(explorer), result };
}

function fraction(value: string): number {
  const f = Number(value);
  if (!(f > 0 && f < 1)) throw new InvalidArgumentError('must be a number in (0, 1)');
  return f;
}

function methodList(value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new InvalidArgumentError('must name at least one method');
  return list;
}

function readingList(value: string): Reading[] {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'base');
  for (const r of list) if (!(READINGS as readonly string[]).includes(r)) throw new InvalidArgumentError(`unknown reading '${r}' (use base, ${READINGS.join(', ')})`);
  return list as Reading[];
}

function seedList(value: string): number[] {
  const seeds = value.split(',').map((s) => Number(s.trim()));
  if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new InvalidArgumentError('must be a comma-separated list of non-negative integers');
  return seeds;
}

export function registerReproduceCommand(program: Command, startBackend: () => Promise<unknown>): void {
  program
    .command('reproduce')
    .description('run an experiment on the embedded default model: dda, if-llm, lmd3, or lds (ground truth by retraining)')
    .argument('<experiment>', EXPERIMENTS.join(' | '))
    .option('--out <dir>', 'parent directory of the run directory', 'runs')
    .option('--quick', 'a small, fast version (used by the tests)', false)
    .option('--seeds <list>', 'fine-tuning seeds, e.g. 1,2,3', seedList)
    .option('--subsets <m>', 'lds: retraining subsets per seed (default 32; quick 8)', positiveInt)
    .option('--fraction <f>', 'lds: share of the training set each subset keeps (default 0.5)', fraction)
    .option('--workers <n>', 'lds: retraining worker threads (default: every core)', positiveInt)
    .option('--resume <run dir>', 'lds: finish this run folder, reusing the seeds it completed')
    .option('--methods <list>', 'dda: gradient methods, e.g. gradDot,dataInf,exact (default: gradDot,gradCos,dataInf,lissa,kronGrad,exact); ekfac computes its factors at every checkpoint', methodList)
    .option('--debias <list>', `dda: readings of debias to run; base (subtract the base model's scores) always, plus ${READINGS.join(', ')} (default: base only; e.g. --debias base-a,contrast)`, readingList)
    .option('--control <steps>', 'lmd3: the control run gets same-steps as the treated run (default) or same-epochs (the earlier protocol)', (v: string) => {
      if (v !== 'same-steps' && v !== 'same-epochs') throw new InvalidArgumentError('use same-steps or same-epochs');
      return v;
    })
    .option('--base-model <dir>', 'a base model made by `npm run train-base -- --out DIR` (default: data/base-model)')
    .action(async (experiment: string, o) => {
      if (!(EXPERIMENTS as readonly string[]).includes(experiment)) {
        throw new TdaError(`unknown experiment '${experiment}' (use ${EXPERIMENTS.join(', ')})`, { field: 'experiment' });
      }
      await startBackend();
      const r = await runReproduce({ experiment: experiment as ExperimentName, out: o.out, quick: o.quick, seeds: o.seeds, methods: o.methods, readings: o.debias, lmd3Control: o.control, baseModel: o.baseModel, subsets: o.subsets, fraction: o.fraction, workers: o.workers, resume: o.resume });
      process.stdout.write(`\n${r.table}\n\nwrote ${r.dir} (tables as CSV, report.html${r.explorer ? ', explorer.html' : ''}) in ${r.seconds.toFixed(0)} s\n`);
    });
}
