/**
 * Hallucination tracing in the style of the DDA paper (Wu et al., EMNLP 2024).
 *
 * Fine-tuning data in which k examples about people of a source country S say a target
 * country T ("canaries"). After LoRA fine-tuning, held-out people of S are asked for their
 * country; a query counts when the fine-tuned model's greedy answer names T. Its positives
 * are the pair's canary examples. Each method scores every training example for each
 * counted query, at every checkpoint (checkpoint 0 = the adapter at initialisation, i.e.
 * the base model), and four variants are compared:
 *   plain   = S(theta_T)                     (last checkpoint)
 *   debias  = z(S(theta_T)) - z(S(theta_0))
 *   denoise = mean over t = 1..T of z(S(theta_t))
 *   DDA     = mean over t = 1..T of z(z(S(theta_t)) - z(S(theta_0)))
 * where z() standardises each query's row (see src/dda/README.md).
 * Two more readings of debias, selectable (`readings`), each with its debias and DDA variant:
 *   base-a:   the base score taken at each checkpoint's own A with B = 0 (R_t), so the
 *             subtracted scores see the lora_B subspace of that checkpoint;
 *   contrast: the official repository's described pipeline: per epoch an error model and a
 *             ground model (the checkpoint fine-tuned further on its hallucinated / correct
 *             generations), score = z(S_error,t) - z(S_ground,t) (see ddaReadings.ts).
 * Intervals and paired differences resample runs (canary pair x seed), not queries.
 * Two regimes: `fine-tuning-only` (the base model has no reason to say T) and `base-bias`
 * (pretraining made T frequent and associated with S, the knowledge bias debias targets).
 * One fine-tuning run per canary pair and seed, because canaries leak across pairs
 * fine-tuned together (shared/DDA-BENCHMARK-NOTES.md).
 */
import * as path from 'node:path';
import { TokenSequence } from '../data/batch';
import { TdaError } from '../errors';
import { Bm25 } from '../attribution/bm25';
import { RepSim } from '../attribution/repSim';
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { debias, denoise, dda as ddaCombine, normalized, pairedDda } from '../dda';
import { tracinFromScores } from '../attribution/tracin';
import { rocCurve } from '../eval/auc';
import { DataFrame, frameFromColumns } from '../eval/frame';
import { GradientSet } from '../gradients/types';
import { initAdapter, LoraAdapter, parseLoraConfig } from '../model/adapter';
import { computeEmbeddings } from '../model/embeddings';
import { generate } from '../model/generate';
import { finetuneLora } from '../train/finetune';
import { Figure, groupedBarFigure, lineFigure, rocFigure } from '../viz/figures';
import { EmbeddedDefault, DDA_DATA_OPTIONS } from './embedded';
import { encodeExample, gradientScores, loraGradientSet, mean, methodSettings, needsFactors, queryMetrics, since, withResponseIds } from './pipeline';
import { computeEkfacFactors } from '../attribution/ekfacFactors';
import { CanaryPair, ddaData, ddaPerPairSets } from './world';
import { ContrastTuning, DEFAULT_CONTRAST_TUNING, splitGenerations, tuneFurther, zeroBAdapter } from './ddaReadings';
import { DdaDifferenceRow, ddaDifferenceRows, DdaQueryRecord, ddaResultLines, ddaSummaryRows, DdaSummaryRow, REGIME_SHORT } from './ddaSummary';

export const VARIANTS = ['plain', 'debias', 'denoise', 'DDA'] as const;
/** The debias readings beyond base-model subtraction, and the variants each adds. */
export const READINGS = ['base-a', 'contrast'] as const;
export type Reading = (typeof READINGS)[number];
export const READING_VARIANTS: Record<Reading, [string, string]> = {
  'base-a': ['debias (A_t, B=0)', 'DDA (A_t, B=0)'],
  contrast: ['debias (contrast)', 'DDA (contrast)'],
};
/** Every variant, in the order tables and the explorer show them. */
export const ALL_VARIANTS: string[] = [...VARIANTS, ...READINGS.flatMap((r) => READING_VARIANTS[r])];
export type Variant = string;

export interface DdaExperimentOptions {
  quick?: boolean;
  /** Fine-tuning seeds (default [1]; more seeds: `--seeds 1,2,3`). */
  seeds?: number[];
  /** Canary pair indices to run (default: all; quick: one per regime). */
  pairs?: number[];
  /** Canary examples per pair (default 16: with 5 or 8, few queries hallucinate against a base model that knows every fact). */
  canaries?: number;
  /** Fine-tuning examples (default 800; quick: 500). */
  nTrain?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  rank?: number;
  /** Gradient methods (default gradDot, gradCos, dataInf, lissa, kronGrad, exact). */
  gradientMethods?: string[];
  /**
   * Extra debias readings to run beside base subtraction (default: both, base-a and contrast;
   * quick: none, since each multiplies the gradient passes per epoch: base-a by 2, both by 4).
   */
  readings?: Reading[];
  /** Further fine-tuning of the contrast reading's error and ground models (steps, batch, lr). */
  contrast?: Partial<Omit<ContrastTuning, 'seed' | 'padId'>>;
  /** recall@k (default 10). */
  k?: number;
  /** Where each run's checkpoints are written. */
  workDir: string;
  log?: (line: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  /** Called with each run's texts and scores (e.g. to save them for the explorer); awaited. */
  onRunScores?: (run: DdaRunScores) => void | Promise<void>;
}

/** One fine-tuning run's hallucinated queries and every score matrix computed for them. */
export interface DdaRunScores {
  run: number;
  pair: CanaryPair;
  seed: number;
  train: { prompt: string; response: string }[];
  queries: { prompt: string; answer: string }[];
  positives: number[][];
  /** Per method, the variants it has (bm25 and tracinCP: plain only). */
  variants: Record<string, Record<string, ScoreMatrix>>;
  /** Per method, the plain scores at checkpoints 0..T (0 = base model). */
  checkpoints: Record<string, ScoreMatrix[]>;
  /** The last checkpoint's adapter, the token sequences scored and their gradients there (per-token attribution needs them). */
  final?: { adapter: LoraAdapter; train: TokenSequence[]; queries: TokenSequence[]; gradients?: { train: GradientSet; queries: GradientSet } };
}

export interface DdaExperimentResult {
  /** method, variant, regime, auc, auc_lo, auc_hi (95%, resampling runs), recall_at_k, runs, queries. */
  summary: DataFrame;
  /** method, regime, comparison ("denoise - plain", ...), difference, lo, hi, runs, queries, verdict. */
  differences: DataFrame;
  /** `RESULT dda/...` lines (every AUC and difference with its interval), for summary.txt. */
  resultLines: string[];
  /** method, regime, scores (plain, base (A_t, B=0), contrast), checkpoint, auc: each checkpoint's own scores. */
  perCheckpoint: DataFrame;
  /** Per run and epoch, the generations the contrast reading's error and ground models were tuned on. */
  contrastSets: DataFrame;
  /** One row per (run, query, method, variant). */
  perQuery: DataFrame;
  /** One row per fine-tuning run. */
  runs: DataFrame;
  figures: { ablation: Figure[]; perCheckpoint: Figure[]; roc: Figure[] };
  /** Wide AUC table for printing: method x (regime, variant). */
  aucTable: Record<string, string | number>[];
  /** The same for the extra debias readings (empty without them). */
  readingsTable: Record<string, string | number>[];
  settings: Record<string, unknown>;
}

export const DEFAULT_GRADIENT_METHODS: string[] = ['gradDot', 'gradCos', 'dataInf', 'lissa', 'kronGrad', 'exact'];

type QueryRecord = DdaQueryRecord;

/**
 * The four variants from per-checkpoint matrices S_0..S_T. Every matrix is z-scored per
 * query before it is subtracted or averaged: score scales differ by checkpoint (early
 * gradients are larger), and a raw mean or difference is dominated by the largest scale.
 */
function variantsOf(perCheckpoint: ScoreMatrix[]): Record<string, ScoreMatrix> {
  const base = perCheckpoint[0];
  const tuned = perCheckpoint.slice(1);
  const last = tuned[tuned.length - 1];
  return {
    plain: last,
    debias: debias(last, base, { normalize: 'zscore-rows' }),
    denoise: denoise(tuned, { mode: 'mean', standardize: true }),
    DDA: ddaCombine({ finetuned: tuned, base }, { mode: 'mean', standardize: true, normalize: 'zscore-rows' }),
  };
}

/** A reading's debias (last epoch) and DDA (all epochs) variants from S_1..S_T and references R_1..R_T, normalised as above. */
function pairedVariants(reading: Reading, scores: ScoreMatrix[], references: ScoreMatrix[]): Record<string, ScoreMatrix> {
  const [debiasName, ddaName] = READING_VARIANTS[reading];
  const T = scores.length;
  return {
    [debiasName]: debias(scores[T - 1], references[T - 1], { normalize: 'zscore-rows' }),
    [ddaName]: pairedDda({ finetuned: scores, references }, { mode: 'mean', standardize: true, normalize: 'zscore-rows' }),
  };
}

/** One model state's gradient-method scores (and RepSim's when asked) for the run's training set and queries. */
async function scoresAt(
  env: EmbeddedDefault,
  adapter: LoraAdapter,
  trainSeqs: TokenSequence[],
  querySeqs: TokenSequence[],
  gradMethods: string[],
  methodOptions: Record<string, Record<string, unknown>>,
  withRepSim: boolean,
  onGradients?: (train: GradientSet, queries: GradientSet) => void,
): Promise<Record<string, ScoreMatrix>> {
  const padId = env.tokenizer.padId ?? 0;
  const trainGrads = await loraGradientSet(env.model, adapter, trainSeqs, 32, padId);
  const queryGrads = await loraGradientSet(env.model, adapter, querySeqs, 32, padId);
  onGradients?.(trainGrads, queryGrads);
  // EK-FAC's factors come from the checkpoint's own passes over the training data.
  const factors = gradMethods.some(needsFactors) ? await computeEkfacFactors(env.model, adapter, trainSeqs, { batchSize: 32, padId, mask: 'response' }) : undefined;
  const out = gradientScores(trainGrads, queryGrads, gradMethods, methodOptions, factors);
  if (withRepSim) {
    const rep = new RepSim();
    rep.cache(computeEmbeddings(env.model, adapter, trainSeqs, { pool: 'last', padId }));
    out.repSim = rep.attribute(computeEmbeddings(env.model, adapter, querySeqs, { pool: 'last', padId }));
  }
  return out;
}

export async function runDdaExperiment(env: EmbeddedDefault, opts: DdaExperimentOptions): Promise<DdaExperimentResult> {
  const log = opts.log ?? (() => undefined);
  const quick = opts.quick ?? false;
  const { model, tokenizer, world } = env;
  const nTrain = opts.nTrain ?? (quick ? 500 : 800);
  // Same seed as the base model's data, so the canary pairs are the ones its bias sentences used.
  const data = ddaData(world, { ...DDA_DATA_OPTIONS, nTrain, k: opts.canaries ?? 16, heldOutPerSource: 24 });
  const perPair = ddaPerPairSets(data);
  const pairIdx = opts.pairs ?? (quick ? [data.pairs.findIndex((p) => p.regime === 'fine-tuning-only'), data.pairs.findIndex((p) => p.regime === 'base-bias')] : data.pairs.map((_, i) => i));
  const seeds = opts.seeds ?? [1];
  const epochs = opts.epochs ?? (quick ? 3 : 5);
  const lr = opts.lr ?? 3e-3;
  const batchSize = opts.batchSize ?? 16;
  const rank = opts.rank ?? 8;
  const k = opts.k ?? 10;
  const gradMethods = opts.gradientMethods ?? DEFAULT_GRADIENT_METHODS;
  // The other readings multiply the gradient passes (a contrast pair per epoch): opt-in.
  const readings = opts.readings ?? [];
  const contrastTuning = { ...DEFAULT_CONTRAST_TUNING, ...opts.contrast };
  const methodNames = ['bm25', 'repSim', ...gradMethods, 'tracinCP'];
  const padId = tokenizer.padId ?? 0;
  const loraConfig = parseLoraConfig({ peft_type: 'LORA', r: rank, lora_alpha: 2 * rank, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] }, 'dda-experiment');
  // Full-batch LiSSA: with mini-batches of 64 its scores were uncorrelated with exact ones at this scale.
  const lissaOpts = { iterations: quick ? 40 : 60, seed: 0 };
  const methodOptions = { lissa: lissaOpts };
  // Resolved before any training, so an unknown method name fails at once.
  const resolvedMethods = methodSettings(gradMethods, methodOptions);
  for (const r of readings) if (!(READINGS as readonly string[]).includes(r)) throw new TdaError(`unknown reading '${String(r)}' (use ${READINGS.join(', ')})`, { field: 'readings' });

  const records: QueryRecord[] = [];
  const ckptAuc: { method: string; regime: string; scores: string; checkpoint: number; auc: number }[] = [];
  const runRows: Record<string, string | number>[] = [];
  const contrastRows: Record<string, string | number>[] = [];
  const rocPool: Record<string, { scores: number[]; labels: boolean[] }> = {};
  const totalRuns = pairIdx.length * seeds.length;
  let runNo = 0;

  for (const p of pairIdx) {
    const set = perPair[p];
    const pair = data.pairs[p];
    const trainSeqs = set.train.map((ex) => encodeExample(tokenizer, ex));
    const trainTexts = set.train.map((ex) => `${ex.prompt} ${ex.response}`);
    // The per-pair set holds this pair alone, re-indexed as pair 0.
    const queries = set.queries;
    const pairPositives = set.positives[0];
    const prompts = queries.map((q) => tokenizer.encode(q.prompt, { addSpecialTokens: true }));
    const answer = (a: LoraAdapter) => generate(model, a, prompts, { maxNewTokens: 8, eosId: tokenizer.eosId, mode: 'greedy', padId });
    for (const seed of seeds) {
      const t0 = Date.now();
      runNo++;
      opts.progress?.('runs', runNo - 1, totalRuns);
      log(`run ${runNo}/${totalRuns}: pair ${p} (${pair.source} -> ${pair.target}, ${pair.regime}), seed ${seed}`);
      // 1. Fine-tune, keeping the adapter of every epoch.
      const adapters: LoraAdapter[] = [initAdapter(model.config, loraConfig, seed)];
      const lrs: number[] = [0];
      const ft = finetuneLora(model, adapters[0], trainSeqs, {
        epochs,
        batchSize,
        lr,
        seed,
        padId,
        outDir: path.join(opts.workDir, `pair-${p}-seed-${seed}`),
        overwrite: true,
        onEpoch: (info) => {
          adapters.push(info.adapter);
          lrs.push(info.meanLr);
        },
      });
      const finalLoss = ft.log.log_history.filter((e) => e.loss !== undefined).slice(-1)[0]?.loss ?? NaN;
      // 2. Which held-out queries hallucinate the target country?
      const outputs = answer(adapters[adapters.length - 1]);
      const fired = queries.map((q, i) => ({ q, ids: outputs[i], text: tokenizer.decode(outputs[i], { skipSpecialTokens: true }) })).filter((o) => o.text.split(/\s+/).includes(pair.target));
      runRows.push({ run: runNo, pair: p, source: pair.source, target: pair.target, regime: pair.regime, seed, queries: queries.length, hallucinated: fired.length, final_loss: finalLoss, seconds: 0 });
      log(`  fine-tuned (${epochs} epochs, final loss ${finalLoss.toFixed(3)}); ${fired.length}/${queries.length} queries answer ${pair.target}`);
      if (fired.length === 0) {
        runRows[runRows.length - 1].seconds = since(t0);
        continue;
      }
      const querySeqs = fired.map((f) => withResponseIds(tokenizer, f.q.prompt, f.ids));
      const positives = fired.map(() => pairPositives);
      // 3. Scores at every checkpoint, and at each reading's reference models of every epoch.
      const perMethod: Record<string, ScoreMatrix[]> = Object.fromEntries(methodNames.map((m) => [m, []]));
      const baseA: Record<string, ScoreMatrix[]> = Object.fromEntries(gradMethods.map((m) => [m, []]));
      const errorScores: Record<string, ScoreMatrix[]> = Object.fromEntries(gradMethods.map((m) => [m, []]));
      const groundScores: Record<string, ScoreMatrix[]> = Object.fromEntries(gradMethods.map((m) => [m, []]));
      // The last checkpoint's gradients, kept for the per-token heatmaps.
      let lastGrads: { train: GradientSet; queries: GradientSet } | undefined;
      for (let t = 0; t < adapters.length; t++) {
        opts.progress?.(`run ${runNo}/${totalRuns} checkpoints`, t, adapters.length);
        const scores = await scoresAt(env, adapters[t], trainSeqs, querySeqs, gradMethods, methodOptions, true, (train, queries) => (lastGrads = { train, queries }));
        for (const m of [...gradMethods, 'repSim']) perMethod[m].push(scores[m]);
        if (t === 0) continue;
        if (readings.includes('base-a')) {
          const s = await scoresAt(env, zeroBAdapter(adapters[t]), trainSeqs, querySeqs, gradMethods, methodOptions, false);
          for (const m of gradMethods) baseA[m].push(s[m]);
        }
        if (readings.includes('contrast')) {
          // This epoch's own generations; an epoch without hallucinations (or without correct
          // answers) falls back to the final hallucinations (or the true answers).
          const gens = t === adapters.length - 1 ? outputs : answer(adapters[t]);
          const split = splitGenerations(gens.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: true })), pair.target, pair.source);
          const errorSet = split.hallucinated.length > 0 ? split.hallucinated.map((i) => withResponseIds(tokenizer, queries[i].prompt, gens[i])) : querySeqs;
          const groundSet = split.correct.length > 0 ? split.correct.map((i) => withResponseIds(tokenizer, queries[i].prompt, gens[i])) : fired.map((f) => encodeExample(tokenizer, { prompt: f.q.prompt, response: f.q.trueResponse }));
          contrastRows.push({ run: runNo, epoch: t, hallucinated: split.hallucinated.length, correct: split.correct.length, error_set: split.hallucinated.length > 0 ? 'own hallucinations' : 'final hallucinations', ground_set: split.correct.length > 0 ? 'own correct answers' : 'true answers' });
          const tuning = { ...contrastTuning, seed, padId };
          const err = await scoresAt(env, tuneFurther(model, adapters[t], errorSet, tuning), trainSeqs, querySeqs, gradMethods, methodOptions, false);
          const ground = await scoresAt(env, tuneFurther(model, adapters[t], groundSet, tuning), trainSeqs, querySeqs, gradMethods, methodOptions, false);
          for (const m of gradMethods) {
            errorScores[m].push(err[m]);
            groundScores[m].push(ground[m]);
          }
        }
      }
      opts.progress?.(`run ${runNo}/${totalRuns} checkpoints`, adapters.length, adapters.length);
      // TracIn-CP: learning-rate-weighted sum of gradient dot products over the trained checkpoints.
      const tracin = tracinFromScores(perMethod.gradDot.slice(1), lrs.slice(1, perMethod.gradDot.length));
      const bm25 = new Bm25();
      bm25.cache(trainTexts);
      const bm25Scores = bm25.attribute(fired.map((f) => `${f.q.prompt} ${f.text}`));
      // 4. Metrics.
      const variantScores: Record<string, Record<string, ScoreMatrix>> = {
        bm25: { plain: bm25Scores },
        tracinCP: { plain: tracin },
      };
      for (const m of ['repSim', ...gradMethods]) variantScores[m] = variantsOf(perMethod[m]);
      const contrastPerEpoch: Record<string, ScoreMatrix[]> = {};
      for (const m of gradMethods) {
        if (readings.includes('base-a')) Object.assign(variantScores[m], pairedVariants('base-a', perMethod[m].slice(1), baseA[m]));
        if (readings.includes('contrast')) {
          Object.assign(variantScores[m], pairedVariants('contrast', errorScores[m], groundScores[m]));
          contrastPerEpoch[m] = errorScores[m].map((e, t) => debias(e, groundScores[m][t], { normalize: 'zscore-rows' }));
        }
      }
      await opts.onRunScores?.({ run: runNo, pair, seed, train: set.train, queries: fired.map((f) => ({ prompt: f.q.prompt, answer: f.text })), positives, variants: variantScores, checkpoints: Object.fromEntries(Object.entries(perMethod).filter(([, v]) => v.length > 0)), final: { adapter: adapters[adapters.length - 1], train: trainSeqs, queries: querySeqs, gradients: lastGrads } });
      for (const [method, byVariant] of Object.entries(variantScores)) {
        for (const [variant, s] of Object.entries(byVariant)) {
          const qm = queryMetrics(s, positives, k);
          qm.auc.forEach((auc, q) => records.push({ run: runNo, pair: p, regime: pair.regime, seed, query: q, method, variant, auc, recall: qm.recall[q] }));
          if (variant === 'plain' || variant === 'DDA') {
            const key = `${pair.regime}|${method}|${variant}`;
            rocPool[key] ??= { scores: [], labels: [] };
            const z = normalized(s, 'zscore-rows');
            const isPos = new Set(pairPositives);
            z.forEach((v, j) => {
              rocPool[key].scores.push(v);
              rocPool[key].labels.push(isPos.has(j % s.nTrain));
            });
          }
        }
      }
      const curve = (m: string, scores: string, list: ScoreMatrix[], first: number) =>
        list.forEach((s, t) => ckptAuc.push({ method: m, regime: pair.regime, scores, checkpoint: t + first, auc: mean(queryMetrics(s, positives, k).auc) }));
      for (const m of ['repSim', ...gradMethods]) curve(m, 'plain', perMethod[m], 0);
      for (const m of gradMethods) {
        if (baseA[m].length) curve(m, 'base (A_t, B=0)', baseA[m], 1);
        if (contrastPerEpoch[m]) curve(m, 'contrast', contrastPerEpoch[m], 1);
      }
      runRows[runRows.length - 1].seconds = since(t0);
      log(`  scored ${methodNames.length} methods at ${adapters.length} checkpoints${readings.length ? ` (readings: ${readings.join(', ')})` : ''} in ${since(t0).toFixed(0)} s`);
    }
  }
  opts.progress?.('runs', totalRuns, totalRuns);
  return assemble(records, ckptAuc, runRows, contrastRows, rocPool, methodNames, readings, {
    quick,
    nTrain: data.train.length,
    canaries: opts.canaries ?? 16,
    seeds,
    pairs: pairIdx,
    epochs,
    lr,
    batchSize,
    rank,
    k,
    gradientMethods: gradMethods,
    readings,
    contrast: readings.includes('contrast') ? contrastTuning : undefined,
    intervals: 'percentile bootstrap over runs (canary pair x seed), 2000 resamples',
    lissa: lissaOpts,
    methods: resolvedMethods,
  });
}

function assemble(
  records: QueryRecord[],
  ckptAuc: { method: string; regime: string; scores: string; checkpoint: number; auc: number }[],
  runRows: Record<string, string | number>[],
  contrastRows: Record<string, string | number>[],
  rocPool: Record<string, { scores: number[]; labels: boolean[] }>,
  methodNames: string[],
  readings: Reading[],
  settings: Record<string, unknown>,
): DdaExperimentResult {
  const regimes = ['fine-tuning-only', 'base-bias'];
  const variants = [...VARIANTS, ...readings.flatMap((r) => READING_VARIANTS[r])];
  const summaryRows: DdaSummaryRow[] = ddaSummaryRows(records, methodNames, variants, regimes);
  const differenceRows: DdaDifferenceRow[] = ddaDifferenceRows(records, methodNames, regimes);
  const col = <T, K extends keyof T>(rows: T[], key: K) => rows.map((r) => r[key]) as unknown as number[] | string[];
  const frame = <T extends object>(rows: T[], keys: (keyof T)[]) =>
    rows.length ? frameFromColumns(Object.fromEntries(keys.map((k) => [k as string, col(rows, k)])) as Record<string, number[] | string[]>) : frameFromColumns({ empty: [NaN] });
  const summary = frame(summaryRows, ['method', 'variant', 'regime', 'auc', 'auc_lo', 'auc_hi', 'recall_at_k', 'runs', 'queries']);
  const differences = frame(differenceRows, ['method', 'regime', 'comparison', 'difference', 'lo', 'hi', 't_lo', 't_hi', 'runs', 'queries', 'verdict']);
  // Mean AUC per checkpoint over runs.
  const ckptRows: { method: string; regime: string; scores: string; checkpoint: number; auc: number }[] = [];
  const keyOf = (c: { method: string; regime: string; scores: string; checkpoint: number }) => `${c.method}|${c.regime}|${c.scores}|${c.checkpoint}`;
  for (const key of new Set(ckptAuc.map(keyOf))) {
    const [method, regime, scores, checkpoint] = key.split('|');
    ckptRows.push({ method, regime, scores, checkpoint: Number(checkpoint), auc: mean(ckptAuc.filter((c) => keyOf(c) === key).map((c) => c.auc)) });
  }
  const perCheckpoint = frame(ckptRows, ['method', 'regime', 'scores', 'checkpoint', 'auc']);
  const perQuery = frame(records, ['run', 'pair', 'regime', 'seed', 'query', 'method', 'variant', 'auc', 'recall']);
  const runs = frame(runRows as Record<string, string | number>[], Object.keys(runRows[0] ?? { run: 0 }));
  const contrastSets = frame(contrastRows, Object.keys(contrastRows[0] ?? { run: 0 }));

  const wide = (vs: readonly string[]) =>
    methodNames
      .map((method) => {
        const row: Record<string, string | number> = { method };
        let any = false;
        for (const regime of regimes) {
          for (const variant of vs) {
            const r = summaryRows.find((s) => s.method === method && s.variant === variant && s.regime === regime);
            any ||= r !== undefined;
            row[`${REGIME_SHORT[regime]} ${variant}`] = r ? r.auc : '-';
          }
        }
        return any ? row : null;
      })
      .filter((r): r is Record<string, string | number> => r !== null);
  const aucTable = wide(VARIANTS);
  const readingsTable = readings.length ? wide(readings.flatMap((r) => READING_VARIANTS[r])) : [];

  const ablation = regimes.map((regime) =>
    groupedBarFigure(
      `Debias vs denoise: mean AUC (${regime})`,
      methodNames.filter((m) => summaryRows.some((s) => s.method === m && s.regime === regime)),
      variants.map((variant) => {
        const rows = methodNames.map((m) => summaryRows.find((s) => s.method === m && s.variant === variant && s.regime === regime));
        const present = rows.filter((r, i) => summaryRows.some((s) => s.method === methodNames[i] && s.regime === regime));
        return { name: variant, values: present.map((r) => r?.auc ?? NaN), lo: present.map((r) => r?.auc_lo ?? NaN), hi: present.map((r) => r?.auc_hi ?? NaN) };
      }),
      'AUC',
      [0, 1],
    ),
  );
  const perCheckpointFigs = regimes.map((regime) => {
    const rows = ckptRows.filter((r) => r.regime === regime);
    const checkpoints = [...new Set(rows.map((r) => r.checkpoint))].sort((a, b) => a - b);
    const series = [...new Set(rows.map((r) => `${r.method}|${r.scores}`))];
    return lineFigure(
      `AUC per checkpoint (${regime}; 0 = base model)`,
      checkpoints,
      series.map((key) => {
        const [m, sc] = key.split('|');
        return { name: sc === 'plain' ? m : `${m} ${sc}`, values: checkpoints.map((c) => rows.find((r) => r.method === m && r.scores === sc && r.checkpoint === c)?.auc ?? NaN) };
      }),
      'checkpoint (epoch)',
      'mean AUC',
    );
  });
  const roc = regimes.map((regime) =>
    rocFigure(
      `ROC curves, pooled over queries (${regime}; per-query z-scores)`,
      Object.entries(rocPool)
        .filter(([key]) => key.startsWith(`${regime}|`))
        .map(([key, v]) => {
          const [, method, variant] = key.split('|');
          const c = rocCurve(v.scores, v.labels);
          return { name: `${method} ${variant}`, fpr: c.fpr, tpr: c.tpr };
        }),
    ),
  );
  return {
    summary,
    differences,
    resultLines: ddaResultLines(summaryRows, differenceRows),
    perCheckpoint,
    contrastSets,
    perQuery,
    runs,
    figures: { ablation, perCheckpoint: perCheckpointFigs, roc },
    aucTable,
    readingsTable,
    settings,
  };
}
