/**
 * Ground truth by retraining on the embedded default model: the linear datamodeling score
 * (LDS) of every method, leave-one-out, and brittleness.
 *
 * Task: the DDA fine-tuning data of one `fine-tuning-only` canary pair (S -> T), cut to a
 * small set (default 120 examples, 16 of them canaries saying T for people of S) so that a
 * LoRA fine-tune takes seconds; queries are the pair's held-out people of S asked for
 * their country or city (48), and each query's output is the greedy answer of the model
 * fine-tuned on the full set (T for the hallucinated ones). Per seed (a run: its own
 * fine-tuning, subsets and removals):
 *  1. fine-tune on the full set (checkpoint per epoch, Adam's moments saved) and score
 *     every method there (ldsScores.ts);
 *  2. LDS: retrain on M random subsets of round(fraction * n) examples, measure each
 *     query's loss on its answer; per query, Spearman over subsets of the score sum against
 *     minus the loss (eval/lds.ts);
 *  3. leave-one-out: retrain without each of a random sample of examples; per query,
 *     Spearman over the sample of the score against the loss increase;
 *  4. brittleness: for a few hallucinated queries (answer names T), remove each method's top
 *     k and retrain; the smallest k after which the greedy answer no longer names T, against
 *     random removal.
 * Every retraining uses the run's seed for the adapter's initialisation and the data order,
 * like the full-set run, on worker threads.
 */
import * as path from 'node:path';
import { ScoreMatrix } from '../attribution/types';
import { TdaError } from '../errors';
import { settingAt, settingsDifference } from '../settings';
import { ldsInterval, ldsPerQuery } from '../eval/lds';
import { spearman } from '../eval/correlation';
import { initAdapter, parseLoraConfig } from '../model/adapter';
import { generate } from '../model/generate';
import { Rng } from '../random';
import { availableCores } from '../runtime/workers';
import { finetuneLora } from '../train/finetune';
import { BrittlenessRecord, brittlenessSearch, flipCurve } from './brittleness';
import { DDA_DATA_OPTIONS, EmbeddedDefault } from './embedded';
import { LDS_GRADIENT_METHODS, plainMethods, RunCheckpoint, runScores } from './ldsScores';
import { encodeExample, PromptResponse, since, withResponseIds } from './pipeline';
import { RetrainData, Retrainer, RetrainRecipe } from './retrain';
import { choosePairs, ddaData } from './world';

export interface LdsExperimentOptions {
  quick?: boolean;
  /** One run per seed (default [1, 2, 3]; quick: [1]). */
  seeds?: number[];
  /** Retraining subsets per run (default 32; quick: 8). */
  subsets?: number;
  /** Share of the training set each subset keeps (default 0.5). */
  fraction?: number;
  /** Fine-tuning examples including the 16 canaries (default 120). */
  nTrain?: number;
  /** Examples left out one at a time per run (default 12; quick: 4). */
  looExamples?: number;
  /** Hallucinated queries tested for brittleness per run (default 4; quick: 1). */
  brittleQueries?: number;
  /** Removal sizes, ascending (default 1, 2, 4, 8; quick: 2, 8). Small: removing 4 random examples already flips most hallucinated answers. */
  brittleKs?: number[];
  epochs?: number;
  /** Gradient methods (default: gradDot, gradCos, dataInf, lissa, kronGrad, exact). */
  gradientMethods?: string[];
  /** Retraining worker threads (default: every core). */
  workers?: number;
  /** Where each run's checkpoints go. */
  workDir: string;
  log?: (line: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  /** Called with each run as soon as it is complete (to write it at once). */
  onRun?: (run: LdsRun) => void;
  /** Runs already complete (from a run folder being resumed): their seeds are not run again. */
  completed?: LdsRunSummary[];
}

export interface LdsRun {
  seed: number;
  /** Everything that determines the run besides its seed (a resumed run must match it). */
  settings: Record<string, unknown>;
  /** The training texts; `canary` marks the examples that say the target country for people of the source. */
  train: (PromptResponse & { canary: boolean })[];
  /** Each query's prompt and the full-set model's answer (the output explained). */
  queries: { prompt: string; answer: string; hallucinated: boolean }[];
  subsets: number[][];
  /** [subset][query] losses after retraining on the subset. */
  outcomes: Float64Array[];
  /** Every method's scores at the model trained on the full set. */
  scores: Record<string, ScoreMatrix>;
  /** Per method, per query LDS. */
  lds: Record<string, number[]>;
  /** Queries' losses retrained on the full set (the leave-one-out baseline). */
  fullLosses: Float64Array;
  looExamples: number[];
  /** [example of the sample][query] losses without that example. */
  looLosses: Float64Array[];
  /** Per method, per query Spearman of scores against the loss increases. */
  loo: Record<string, number[]>;
  brittleness: BrittlenessRecord[];
  seconds: { finetune: number; scores: number; retrain: number; total: number; retrainings: number };
}

/** What the pooled tables need of a run (kept in seed-<s>/run.json). */
export type LdsRunSummary = Pick<LdsRun, 'seed' | 'settings' | 'queries' | 'lds' | 'loo' | 'brittleness' | 'seconds'>;

export interface LdsSummaryRow {
  method: string;
  lds: number;
  lds_lo: number;
  lds_hi: number;
  runs: number;
  queries: number;
}

export interface LdsExperimentResult {
  runs: LdsRunSummary[];
  lds: LdsSummaryRow[];
  loo: { method: string; loo: number; loo_lo: number; loo_hi: number; runs: number; queries: number }[];
  brittleness: BrittlenessRecord[];
  flipCurve: { method: string; k: number; flipped: number; queries: number }[];
  settings: Record<string, unknown>;
}

/** `count` distinct indices of [0, n), sorted (partial Fisher-Yates). */
export function sampleIndices(n: number, count: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(n - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, count).sort((a, b) => a - b);
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function checkOptions(o: { subsets: number; fraction: number; nTrain: number; looExamples: number; brittleQueries: number; brittleKs: number[]; epochs: number; workers: number; seeds: number[] }): void {
  const int = (v: number, field: string, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new TdaError(`must be an integer >= ${min}, got ${v}`, { field });
  };
  int(o.subsets, 'subsets', 3);
  if (!(o.fraction > 0 && o.fraction < 1)) throw new TdaError(`must be in (0, 1), got ${o.fraction}`, { field: 'fraction' });
  int(o.nTrain, 'nTrain', 32);
  int(o.looExamples, 'looExamples', 0);
  if (o.looExamples > o.nTrain) throw new TdaError(`${o.looExamples} exceeds the ${o.nTrain} training examples`, { field: 'looExamples' });
  int(o.brittleQueries, 'brittleQueries', 0);
  o.brittleKs.forEach((k, i) => {
    int(k, 'brittleKs', 1);
    if (i > 0 && k <= o.brittleKs[i - 1]) throw new TdaError(`must be ascending, got ${o.brittleKs.join(',')}`, { field: 'brittleKs' });
  });
  int(o.epochs, 'epochs', 1);
  int(o.workers, 'workers', 1);
  if (o.seeds.length === 0) throw new TdaError('no seeds', { field: 'seeds' });
  o.seeds.forEach((s) => int(s, 'seeds', 0));
  if (new Set(o.seeds).size !== o.seeds.length) throw new TdaError(`a seed is given twice: ${o.seeds.join(',')}`, { field: 'seeds' });
}

export async function runLdsExperiment(env: EmbeddedDefault, opts: LdsExperimentOptions): Promise<LdsExperimentResult> {
  const log = opts.log ?? (() => undefined);
  const quick = opts.quick ?? false;
  const o = {
    seeds: opts.seeds ?? (quick ? [1] : [1, 2, 3]),
    subsets: opts.subsets ?? (quick ? 8 : 32),
    fraction: opts.fraction ?? 0.5,
    nTrain: opts.nTrain ?? 120,
    looExamples: opts.looExamples ?? (quick ? 4 : 12),
    brittleQueries: opts.brittleQueries ?? (quick ? 1 : 4),
    brittleKs: opts.brittleKs ?? (quick ? [2, 8] : [1, 2, 4, 8]),
    epochs: opts.epochs ?? 3,
    workers: opts.workers ?? availableCores(),
    gradientMethods: opts.gradientMethods ?? [...LDS_GRADIENT_METHODS],
  };
  checkOptions(o);
  const { model, tokenizer, world } = env;
  const padId = tokenizer.padId ?? 0;
  const canaries = 16;
  // The DDA experiment's first fine-tuning-only pair, alone in its data (canaries of other pairs would leak).
  const pair = choosePairs(world, { seed: DDA_DATA_OPTIONS.seed }).find((p) => p.regime === 'fine-tuning-only')!;
  const set = ddaData(world, { ...DDA_DATA_OPTIONS, pairList: [pair], nTrain: o.nTrain, k: canaries, heldOutPerSource: 24 });
  const trainSeqs = set.train.map((ex) => encodeExample(tokenizer, ex));
  const loraJson = { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] };
  const recipe: RetrainRecipe = { lora: loraJson, epochs: o.epochs, batchSize: 16, lr: 6e-3, padId, eosId: tokenizer.eosId, maxNewTokens: 8 };
  const lissa = { iterations: 60, seed: 0 };
  const lessDim = 2048;
  const n = trainSeqs.length;
  const subsetSize = Math.round(o.fraction * n);
  if (subsetSize < 1 || subsetSize >= n) throw new TdaError(`keeps ${subsetSize} of ${n} examples; choose a fraction that keeps some but not all`, { field: 'fraction' });

  const runSettings: Record<string, unknown> = JSON.parse(
    JSON.stringify({ subsets: o.subsets, fraction: o.fraction, nTrain: o.nTrain, looExamples: o.looExamples, brittleQueries: o.brittleQueries, brittleKs: o.brittleKs, epochs: o.epochs, gradientMethods: o.gradientMethods, task: { pair, canaries, heldOutPerSource: 24, queries: set.queries.length, subsetSize }, recipe, lissa, lessDim }),
  );
  const runs: LdsRunSummary[] = [];
  let retrainer: Retrainer | null = null;
  try {
    for (const seed of o.seeds) {
      const done = opts.completed?.find((r) => r.seed === seed);
      if (done) {
        const differs = settingsDifference(done.settings, runSettings);
        if (differs) throw new TdaError(`was made with other settings (${differs}: ${JSON.stringify(settingAt(done.settings, differs))}, now ${JSON.stringify(settingAt(runSettings, differs))})`, { file: `seed-${seed}/run.json`, field: `settings.${differs}` });
        log(`run seed ${seed}: complete in the run folder, reused`);
        runs.push(done);
        continue;
      }
      const t0 = Date.now();
      log(`run seed ${seed}: ${n} training examples (${canaries} canaries: ${pair.source} -> ${pair.target}), ${set.queries.length} queries`);
      // 1. The full-set run: checkpoints with Adam's moments, then the answers it gives.
      const checkpoints: RunCheckpoint[] = [];
      const start = initAdapter(model.config, parseLoraConfig(loraJson, 'lds'), seed);
      checkpoints.push({ adapter: start, lr: 0, dir: null });
      finetuneLora(model, start, trainSeqs, {
        epochs: o.epochs,
        batchSize: recipe.batchSize,
        lr: recipe.lr,
        seed,
        padId,
        outDir: path.join(opts.workDir, `seed-${seed}`),
        overwrite: true,
        onEpoch: (info) => checkpoints.push({ adapter: info.adapter, lr: info.meanLr, dir: info.checkpointDir }),
      });
      const final = checkpoints[checkpoints.length - 1].adapter;
      const promptIds = set.queries.map((q) => tokenizer.encode(q.prompt, { addSpecialTokens: true }));
      const answerIds = generate(model, final, promptIds, { maxNewTokens: recipe.maxNewTokens, eosId: tokenizer.eosId, mode: 'greedy', padId });
      const answers = answerIds.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
      const querySeqs = set.queries.map((q, i) => withResponseIds(tokenizer, q.prompt, answerIds[i]));
      const hallucinated = answers.map((a) => a.split(/\s+/).includes(pair.target));
      const tFinetune = since(t0);
      log(`  fine-tuned in ${tFinetune.toFixed(0)} s; ${hallucinated.filter(Boolean).length}/${answers.length} queries answer ${pair.target}`);

      // 2. Retrainings that need no scores start now, on the workers, while the scores are computed here.
      const retrainData: RetrainData = { train: trainSeqs, queries: querySeqs, recipe };
      if (retrainer) await retrainer.close();
      retrainer = await Retrainer.start(model, retrainData, o.workers);
      const rng = new Rng(seed);
      const subsets = Array.from({ length: o.subsets }, () => sampleIndices(n, subsetSize, rng));
      const looExamples = sampleIndices(n, o.looExamples, rng);
      const all = Array.from({ length: n }, (_, i) => i);
      const tRetrain0 = Date.now();
      let retrainings = 0;
      const counted = <T>(p: Promise<T>) => p.then((v) => (retrainings++, v));
      const pool = retrainer;
      let ldsDone = 0;
      const subsetRuns = Promise.all(
        subsets.map((kept) =>
          counted(pool.run({ kept, seed, generate: [] })).then((r) => {
            opts.progress?.(`seed ${seed} subsets`, ++ldsDone, subsets.length);
            return r.losses;
          }),
        ),
      );
      const looRuns = Promise.all([all, ...looExamples.map((i) => all.filter((j) => j !== i))].map((kept) => counted(pool.run({ kept, seed, generate: [] })).then((r) => r.losses)));
      const tScores = Date.now();
      const scores = await runScores({
        model,
        padId,
        checkpoints,
        train: trainSeqs,
        queries: querySeqs,
        trainTexts: set.train.map((ex) => `${ex.prompt} ${ex.response}`),
        queryTexts: set.queries.map((q, i) => `${q.prompt} ${answers[i]}`),
        gradientMethods: o.gradientMethods,
        lissa,
        lessDim,
        yieldNow: tick,
        progress: (label, done, total) => opts.progress?.(`seed ${seed} ${label}`, done, total),
      });
      const secondsScores = since(tScores);
      log(`  scored ${Object.keys(scores).length} methods in ${secondsScores.toFixed(0)} s`);

      // 3. Brittleness on hallucinated queries: their answer rests on the fine-tuning data.
      const brittleQueries = answers.map((_, q) => q).filter((q) => hallucinated[q]).slice(0, o.brittleQueries);
      const plain = Object.fromEntries(plainMethods(o.gradientMethods).map((m) => [m, scores[m]]));
      const brittleness = await brittlenessSearch({
        queries: brittleQueries,
        scores: plain,
        ks: o.brittleKs,
        nTrain: n,
        flipped: (_q, answer) => !answer.split(/\s+/).includes(pair.target),
        seed,
        retrain: async (removed) => {
          const drop = new Set(removed);
          const r = await counted(pool.run({ kept: all.filter((i) => !drop.has(i)), seed, generate: brittleQueries }));
          return new Map(brittleQueries.map((q, j) => [q, tokenizer.decode(r.answers[j], { skipSpecialTokens: true })]));
        },
      });
      const outcomes = await subsetRuns;
      const [fullLosses, ...looLosses] = await looRuns;
      const secondsRetrain = since(tRetrain0);

      const lds: Record<string, number[]> = {};
      const loo: Record<string, number[]> = {};
      for (const [m, s] of Object.entries(scores)) {
        lds[m] = ldsPerQuery(s, subsets, outcomes);
        loo[m] = set.queries.map((_, q) =>
          looExamples.length < 3 ? NaN : spearman(looExamples.map((i) => s.data[q * n + i]), looLosses.map((l) => l[q] - fullLosses[q])),
        );
      }
      const run: LdsRun = {
        seed,
        settings: runSettings,
        train: set.train.map((ex) => ({ prompt: ex.prompt, response: ex.response, canary: ex.canaryPair !== null })),
        queries: set.queries.map((q, i) => ({ prompt: q.prompt, answer: answers[i], hallucinated: hallucinated[i] })),
        subsets,
        outcomes,
        scores,
        lds,
        fullLosses,
        looExamples,
        looLosses,
        loo,
        brittleness,
        seconds: { finetune: tFinetune, scores: secondsScores, retrain: secondsRetrain, total: since(t0), retrainings },
      };
      log(`  ${retrainings} retrainings in ${secondsRetrain.toFixed(0)} s; run done in ${run.seconds.total.toFixed(0)} s`);
      opts.onRun?.(run);
      runs.push({ seed, settings: runSettings, queries: run.queries, lds: run.lds, loo: run.loo, brittleness: run.brittleness, seconds: run.seconds });
    }
  } finally {
    if (retrainer) await retrainer.close();
  }
  return summarize(runs, { quick, ...o, ...runSettings });
}

/** Pools runs into the tables: LDS and leave-one-out per method with run-then-query bootstrap intervals, flip curves. */
export function summarize(runs: LdsRunSummary[], settings: Record<string, unknown>): LdsExperimentResult {
  const methods = Object.keys(runs[0]?.lds ?? {});
  const lds = methods.map((method) => {
    const ci = ldsInterval(runs.map((r) => r.lds[method]), { seed: 0, resamples: 2000 });
    return { method, lds: ci.lds, lds_lo: ci.lo, lds_hi: ci.hi, runs: ci.runs, queries: ci.queries };
  });
  const loo = methods.map((method) => {
    const ci = ldsInterval(runs.map((r) => r.loo[method]), { seed: 0, resamples: 2000 });
    return { method, loo: ci.lds, loo_lo: ci.lo, loo_hi: ci.hi, runs: ci.runs, queries: ci.queries };
  });
  const brittleness = runs.flatMap((r) => r.brittleness.map((b) => ({ ...b, seed: r.seed })));
  const ks = (settings.brittleKs as number[] | undefined) ?? [...new Set(brittleness.flatMap((b) => b.tried))].sort((a, b) => a - b);
  return { runs, lds, loo, brittleness, flipCurve: flipCurve(brittleness, ks), settings };
}
