/**
 * The three tasks of "Do Influence Functions Work on Large Language Models?" (Li et al.
 * 2024) at laptop scale, on the embedded default model:
 *   - class attribution: three task families (profession from activities, country from a
 *     city, color of a made-up creature from cue words); Acc = the top-1 training example has
 *     the query's class, Cover = share of same-class examples among the top k
 *     (k = training examples of the family / its classes); AUC with same-class positives;
 *   - backdoor-trigger detection: positives are the triggered training examples;
 *   - harmful-data identification: positives are the harmful training examples of the
 *     query's kind.
 * One LoRA fine-tuning run per task and seed; scores at the final adapter. For the backdoor
 * and harmful tasks, Acc = the top-1 example is a positive and Cover = share of positives
 * among the top (number of positives). Beside it, `acc_official` / `cover_official` as the
 * official code (check_acc_cov in the IF-on-LLMs repository's utils.py) computes them for
 * every task: from the dataset's class labels, k = floor(nTrain / number of classes). Its
 * backdoor data are labelled trigger / clean and its harmful data harmful / benign, so for
 * those two tasks k is half the training set and a perfect ranking has Cover = positives / k.
 * For class tasks the two definitions coincide.
 * With several seeds a run is (task, seed): Acc and Cover are means over runs, and AUC's
 * interval resamples runs (NaN with one seed: one run says nothing about run-to-run spread).
 */
import { RepSim } from '../attribution/repSim';
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { classAccCover } from '../eval/classMetrics';
import { runBootstrapMeanCI } from '../eval/runBootstrap';
import { describeEstimate } from '../eval/claims';
import { resultLine } from './resultLines';
import { DataFrame, frameFromColumns } from '../eval/frame';
import { initAdapter, parseLoraConfig } from '../model/adapter';
import { computeEmbeddings, Pooling } from '../model/embeddings';
import { finetuneLora } from '../train/finetune';
import { Figure, groupedBarFigure } from '../viz/figures';
import { EmbeddedDefault } from './embedded';
import { encodeExample, gradientScores, loraGradientSet, mean, methodSettings, PromptResponse, queryMetrics, since } from './pipeline';
import { backdoorData, CLASS_FAMILIES, classAttributionData, harmfulData } from './world';

export interface IfLlmOptions {
  quick?: boolean;
  /** One fine-tuning seed (default 1); `seeds` takes precedence. */
  seed?: number;
  /** Fine-tuning seeds: each (task, seed) is a run. */
  seeds?: number[];
  epochs?: number;
  gradientMethods?: string[];
  log?: (line: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  /** Called with each task's texts and scores (e.g. to save them for the explorer). */
  onTaskScores?: (t: IfLlmTaskScores) => void;
}

/** One task's queries (with their class or kind as label) and every method's scores. */
export interface IfLlmTaskScores {
  task: string;
  /** The fine-tuning seed (runs of several seeds are told apart by it). */
  seed?: number;
  train: PromptResponse[];
  queries: { prompt: string; answer: string; label: string }[];
  positives: number[][];
  scores: Record<string, ScoreMatrix>;
}

export interface IfLlmResult {
  /** task, method, acc, cover, acc_official, cover_official, auc, auc_lo, auc_hi (over runs), runs, queries. */
  summary: DataFrame;
  /** One row per (task, method, seed). */
  perRun: DataFrame;
  figures: Figure[];
  table: Record<string, string | number>[];
  /** Backdoor and harmful: Acc / Cover as the official code computes them, beside ours. */
  officialCoverTable: Record<string, string | number>[];
  /** `RESULT if-llm/...` lines for summary.txt. */
  resultLines: string[];
  settings: Record<string, unknown>;
}

interface TaskInput {
  task: string;
  train: PromptResponse[];
  tests: PromptResponse[];
  /** Per query, the positive training indices. */
  positives: number[][];
  /** Class ids (class-attribution tasks only), for Acc and Cover. */
  classes?: { train: number[]; tests: number[] };
  /** The dataset's class labels as the official code reads them (its `variation` column). */
  officialLabels: { train: string[]; tests: string[] };
  /** Per query, its class or kind, as people read it. */
  labels: string[];
}

/** Acc and Cover for positive sets: top-1 is a positive; share of positives among the top |positives|. */
function accCoverFromPositives(s: ScoreMatrix, positives: number[][]): { acc: number[]; cover: number[] } {
  const acc: number[] = [];
  const cover: number[] = [];
  for (let q = 0; q < s.nTest; q++) {
    const row = scoreRow(s, q);
    const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b);
    const pos = new Set(positives[q]);
    acc.push(pos.has(order[0]) ? 1 : 0);
    cover.push(order.slice(0, pos.size).filter((i) => pos.has(i)).length / pos.size);
  }
  return { acc, cover };
}

interface RunRow {
  task: string;
  method: string;
  seed: number;
  acc: number;
  cover: number;
  acc_official: number;
  cover_official: number;
  /** Per query. */
  auc: number[];
}

const SUMMARY_COLUMNS = ['task', 'method', 'acc', 'cover', 'acc_official', 'cover_official', 'auc', 'auc_lo', 'auc_hi', 'runs', 'queries'] as const;
type SummaryRow = { task: string; method: string; acc: number; cover: number; acc_official: number; cover_official: number; auc: number; auc_lo: number; auc_hi: number; runs: number; queries: number };

/** RepSim's scores by pooling: the paper's last prompt token first. */
export const REPSIM_POOLINGS: readonly [string, Pooling][] = [
  ['repSim', 'last-prompt'],
  ['repSim-last', 'last'],
  ['repSim-mean', 'mean'],
];

/** Means over runs (seeds) per task and method; AUC pooled over queries with an interval over runs. */
function summarizeRuns(rows: RunRow[], tasks: string[], methods: string[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const task of tasks) {
    for (const method of methods) {
      const rs = rows.filter((r) => r.task === task && r.method === method);
      if (rs.length === 0) continue;
      const ci = runBootstrapMeanCI(rs.map((r) => r.auc), { seed: 0, resamples: 2000 });
      out.push({
        task,
        method,
        acc: mean(rs.map((r) => r.acc)),
        cover: mean(rs.map((r) => r.cover)),
        acc_official: mean(rs.map((r) => r.acc_official)),
        cover_official: mean(rs.map((r) => r.cover_official)),
        auc: ci.estimate,
        auc_lo: ci.lo,
        auc_hi: ci.hi,
        runs: ci.runs,
        queries: ci.queries,
      });
    }
  }
  return out;
}

export async function runIfLlmExperiment(env: EmbeddedDefault, opts: IfLlmOptions = {}): Promise<IfLlmResult> {
  const log = opts.log ?? (() => undefined);
  const quick = opts.quick ?? false;
  const seeds = opts.seeds ?? [opts.seed ?? 1];
  const epochs = opts.epochs ?? (quick ? 3 : 5);
  const gradMethods = opts.gradientMethods ?? (['gradDot', 'dataInf', 'lissa', 'exact'] as string[]);
  const methodOptions = { lissa: { iterations: quick ? 50 : 100, seed: 0 } };
  const { model, tokenizer, world } = env;
  const padId = tokenizer.padId ?? 0;
  const scale = quick ? 0.5 : 1;

  const cls = classAttributionData(world, { perClassTrain: Math.round(20 * scale), perClassTest: quick ? 2 : 5 });
  const bd = backdoorData(world, quick ? { nClean: 150, nTriggered: 10, nTests: 8 } : {});
  const hm = harmfulData(world, quick ? { nBenign: 150, nHarmful: 10, nTests: 8 } : {});
  const tasks: TaskInput[] = [
    ...CLASS_FAMILIES.map((family) => {
      const train = cls.train.filter((e) => e.family === family);
      const tests = cls.tests.filter((e) => e.family === family);
      return {
        task: `class: ${family}`,
        train,
        tests,
        positives: tests.map((t) => train.flatMap((e, i) => (e.classId === t.classId ? [i] : []))),
        classes: { train: train.map((e) => e.classId), tests: tests.map((e) => e.classId) },
        officialLabels: { train: train.map((e) => String(e.classId)), tests: tests.map((e) => String(e.classId)) },
        labels: tests.map((e) => e.label),
      };
    }),
    {
      task: 'backdoor',
      train: bd.train,
      tests: bd.tests,
      positives: bd.tests.map(() => bd.positives),
      officialLabels: { train: bd.train.map((e) => (e.triggered ? 'trigger' : 'clean')), tests: bd.tests.map(() => 'trigger') },
      labels: bd.tests.map(() => 'backdoor trigger'),
    },
    {
      task: 'harmful',
      train: hm.train,
      tests: hm.tests,
      positives: hm.tests.map((t) => hm.positivesByKind[t.kind]),
      officialLabels: { train: hm.train.map((e) => (e.kind === null ? 'benign' : 'harmful')), tests: hm.tests.map(() => 'harmful') },
      labels: hm.tests.map((t) => `harmful: ${t.kind}`),
    },
  ];
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'if-llm');
  const rows: RunRow[] = [];
  const nRuns = tasks.length * seeds.length;
  let done = 0;
  for (const seed of seeds) {
    for (const t of tasks) {
      const t0 = Date.now();
      opts.progress?.('runs', done++, nRuns);
      // The class families are fine-tuned together, as one task mixture; the others alone.
      const trainSeqs = t.train.map((e) => encodeExample(tokenizer, e));
      const testSeqs = t.tests.map((e) => encodeExample(tokenizer, e));
      const adapter = finetuneLora(model, initAdapter(model.config, lora, seed), trainSeqs, { epochs, batchSize: 16, lr: 3e-3, seed, padId }).adapter;
      const trainGrads = await loraGradientSet(model, adapter, trainSeqs, 32, padId);
      const testGrads = await loraGradientSet(model, adapter, testSeqs, 32, padId);
      const scores: Record<string, ScoreMatrix> = gradientScores(trainGrads, testGrads, gradMethods, methodOptions);
      // RepSim as the IF-on-LLMs code embeds: the last prompt token (`repSim`); the end of the
      // response and the mean over tokens beside it.
      for (const [name, pool] of REPSIM_POOLINGS) {
        const rep = new RepSim();
        rep.cache(computeEmbeddings(model, adapter, trainSeqs, { pool, padId }));
        scores[name] = rep.attribute(computeEmbeddings(model, adapter, testSeqs, { pool, padId }));
      }
      opts.onTaskScores?.({ task: t.task, seed, train: t.train, queries: t.tests.map((e, i) => ({ prompt: e.prompt, answer: e.response, label: t.labels[i] })), positives: t.positives, scores });
      for (const [method, s] of Object.entries(scores)) {
        const { auc } = queryMetrics(s, t.positives, 10);
        let acc: number;
        let cover: number;
        if (t.classes) {
          const m = classAccCover(s, t.classes.tests, t.classes.train);
          acc = m.acc;
          cover = m.cover;
        } else {
          const m = accCoverFromPositives(s, t.positives);
          acc = mean(m.acc);
          cover = mean(m.cover);
        }
        const official = classAccCover(s, t.officialLabels.tests, t.officialLabels.train);
        rows.push({ task: t.task, method, seed, acc, cover, acc_official: official.acc, cover_official: official.cover, auc });
      }
      log(`${t.task}, seed ${seed}: ${t.train.length} training examples, ${t.tests.length} queries, ${since(t0).toFixed(0)} s`);
    }
  }
  opts.progress?.('runs', nRuns, nRuns);

  const methods = [...new Set(rows.map((r) => r.method))];
  const taskNames = tasks.map((t) => t.task);
  const summaryRows = summarizeRuns(rows, taskNames, methods);
  const summary = frameFromColumns(Object.fromEntries(SUMMARY_COLUMNS.map((c) => [c, summaryRows.map((r) => r[c])])) as Record<string, number[] | string[]>);
  const perRun = frameFromColumns({
    task: rows.map((r) => r.task),
    method: rows.map((r) => r.method),
    seed: rows.map((r) => r.seed),
    acc: rows.map((r) => r.acc),
    cover: rows.map((r) => r.cover),
    acc_official: rows.map((r) => r.acc_official),
    cover_official: rows.map((r) => r.cover_official),
    auc: rows.map((r) => mean(r.auc)),
  });
  const metricFigure = (metric: 'acc' | 'cover' | 'auc', title: string) =>
    groupedBarFigure(
      title,
      taskNames,
      methods.map((m) => ({ name: m, values: taskNames.map((t) => summaryRows.find((r) => r.task === t && r.method === m)?.[metric] ?? NaN) })),
      metric,
      [0, 1],
    );
  const table = methods.map((m) => {
    const row: Record<string, string | number> = { method: m };
    for (const t of taskNames) {
      const r = summaryRows.find((x) => x.task === t && x.method === m);
      row[`${t} acc/cover/auc`] = r ? `${r.acc.toFixed(2)}/${r.cover.toFixed(2)}/${r.auc.toFixed(2)}` : '-';
    }
    return row;
  });
  const officialCoverTable = methods.map((m) => {
    const row: Record<string, string | number> = { method: m };
    for (const t of ['backdoor', 'harmful']) {
      const r = summaryRows.find((x) => x.task === t && x.method === m);
      row[`${t} acc/cover (positives)`] = r ? `${r.acc.toFixed(2)}/${r.cover.toFixed(2)}` : '-';
      row[`${t} acc/cover (official: class labels)`] = r ? `${r.acc_official.toFixed(2)}/${r.cover_official.toFixed(2)}` : '-';
    }
    return row;
  });
  return {
    summary,
    figures: [metricFigure('acc', 'Acc: top-1 training example is relevant'), metricFigure('cover', 'Cover: share of relevant examples in the top k'), metricFigure('auc', 'AUC')],
    table,
    officialCoverTable,
    perRun,
    resultLines: summaryRows.map((r) =>
      resultLine(
        'if-llm',
        `${r.method} ${r.task.replace(': ', ' ')}`,
        `acc ${r.acc.toFixed(2)}, cover ${r.cover.toFixed(2)}, official acc ${r.acc_official.toFixed(2)}, official cover ${r.cover_official.toFixed(2)}, auc ${describeEstimate({ estimate: r.auc, lo: r.auc_lo, hi: r.auc_hi, runs: r.runs, queries: r.queries, level: 0.95, weighting: 'queries' }, 2)}`,
      ),
    ),
    settings: { quick, seeds, epochs, intervals: 'AUC: percentile bootstrap over runs (task x seed), 2000 resamples; NaN with one seed', coverOfficial: 'check_acc_cov of the official code: class labels, k = floor(nTrain / classes); backdoor trigger/clean, harmful harmful/benign', gradientMethods: gradMethods, methods: methodSettings(gradMethods, methodOptions) },
  };
}
