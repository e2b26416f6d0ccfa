/**
 * The LMD3 paraphrase-leakage intervention (Kirchenbauer et al. 2024) on the embedded
 * default model. Paraphrases of some test queries ("treated") are added to the fine-tuning
 * data; the rest are controls. For every query we measure
 *   - the change in log-density of the query among the training embeddings (Gaussian KDE
 *     over prompt embeddings; one bandwidth for both training sets, fitted on the original
 *     one), and
 *   - the change in performance: loss of the expected response under the adapter trained
 *     without the paraphrases minus under the adapter trained with them (positive = better),
 *     and greedy exact-match accuracy,
 * then regress the performance change on the density change (slope, R^2, p-value).
 *
 * The control adapter gets as many optimizer steps as the treated one (`control:
 * 'same-steps'`, the default): its set is padded to the treated set's size with a seeded
 * draw of its own examples, so a better treated model cannot come from longer training.
 * `'same-epochs'` is the earlier protocol (the treated run then trains 25% longer).
 *
 * Embeddings (all reported side by side; none depends on the fine-tuned adapters):
 *   base-last  the base model's hidden state at the end of the prompt (the main table);
 *   base-mean  the base model's hidden states mean-pooled over the prompt;
 *   tfidf      a TF-IDF bag of words of the prompt (no model at all).
 * Bandwidths: Scott's rule (the main table) and leave-one-out likelihood (looBandwidth.ts).
 * Several seeds: each seed fine-tunes both adapters again; a run is a seed.
 */
import { KernelDensity, kdeBandwidth } from '../attribution/density';
import { ScoreMatrix } from '../attribution/types';
import { TokenSequence } from '../data/batch';
import { normalMeanCI } from '../eval/bootstrap';
import { runBootstrapMeanCI } from '../eval/runBootstrap';
import { describeDifference } from '../eval/claims';
import { DataFrame, frameFromColumns } from '../eval/frame';
import { linearRegression, LinearFit } from '../eval/regression';
import { initAdapter, LoraAdapter, parseLoraConfig } from '../model/adapter';
import { computeEmbeddings, EmbeddingSet } from '../model/embeddings';
import { generate } from '../model/generate';
import { computeLosses } from '../model/loss';
import { Rng } from '../random';
import { TdaError } from '../errors';
import { finetuneLora } from '../train/finetune';
import { Figure, scatterFigure } from '../viz/figures';
import { EmbeddedDefault } from './embedded';
import { looBandwidth } from './looBandwidth';
import { encodeExample, mean, since } from './pipeline';
import { resultLine } from './resultLines';
import { fitTfidf, tfidfEmbeddings } from './tfidf';
import { Lmd3Data, lmd3Data, ParaphraseDiversity } from './world';

export const LMD3_EMBEDDINGS = ['base-last', 'base-mean', 'tfidf'] as const;
export type Lmd3Embedding = (typeof LMD3_EMBEDDINGS)[number];
export type Lmd3Control = 'same-steps' | 'same-epochs';

export interface Lmd3Options {
  quick?: boolean;
  /** One fine-tuning seed (default 1); `seeds` takes precedence. */
  seed?: number;
  seeds?: number[];
  /** Optimizer steps of the control run: 'same-steps' as the treated run (default) or 'same-epochs'. */
  control?: Lmd3Control;
  epochs?: number;
  /** Paraphrases per treated query (default 3). */
  k?: number;
  diversity?: ParaphraseDiversity;
  log?: (line: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  /** Called with the log-kernel matrix of the queries against the treated training set (e.g. for the explorer). */
  onKernelScores?: (k: { data: Lmd3Data; scores: ScoreMatrix }) => void;
}

export interface Lmd3Result {
  /** One row per (seed, test query): treated, density before/after/change, loss before/after, correct before/after. */
  perQuery: DataFrame;
  /** group (treated/control/all), queries, runs, mean density change, mean loss change (interval over runs), accuracy before/after. */
  summary: DataFrame;
  /** Per embedding and bandwidth rule: h, density change of treated and control queries, the regression of loss improvement on density change. */
  densityByEmbedding: DataFrame;
  /** Performance change regressed on density change over all queries and runs (main embedding). */
  regression: LinearFit;
  /** Per-query loss (control model) regressed on log-density (original data): density predicts performance. */
  densityPredictsLoss: LinearFit;
  /** Treated minus control loss improvement, per run, with an interval over runs (the wider of a bootstrap over runs and a t interval). */
  treatedMinusControl: { estimate: number; lo: number; hi: number; runs: number; verdict: string };
  /** `RESULT lmd3/...` lines for summary.txt. */
  resultLines: string[];
  figures: Figure[];
  settings: Record<string, unknown>;
}

/** The prompts alone, as sequences whose last token is the prompt's end. */
function promptOnly(seqs: TokenSequence[]): TokenSequence[] {
  return seqs.map((s) => ({ inputIds: s.inputIds.slice(0, s.promptLength), promptLength: s.promptLength - 1 }));
}

/** The control set padded to `size` with a seeded draw (without replacement) of its own examples. */
export function padToSize<T>(xs: readonly T[], size: number, seed: number): T[] {
  const extra = size - xs.length;
  if (extra <= 0) return [...xs];
  const rng = new Rng(seed);
  const order = Array.from(xs.keys());
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return [...xs, ...Array.from({ length: extra }, (_, i) => xs[order[i % order.length]])];
}

/**
 * Loss improvement regressed on density change, or null when the density change is the same
 * for every query (an embedding and bandwidth under which the added examples are too far from
 * every query to count: each log-density then falls by log(n / n') alike), where a slope means
 * nothing.
 */
export function densityChangeFit(change: number[], improvement: number[]): LinearFit | null {
  const finite = change.filter((x) => Number.isFinite(x));
  // Equal up to rounding counts as constant: a regression on float noise means nothing.
  if (finite.length > 0 && Math.max(...finite) - Math.min(...finite) <= 1e-9 * Math.max(1, ...finite.map(Math.abs))) return null;
  return linearRegression(change, improvement);
}

/** The text of a `RESULT lmd3/density <embedding> <bandwidth>` line. */
export function densityLineText(r: { treated_density_change: number; control_density_change: number; slope: number; r2: number; p_value: number }): string {
  const groups = `treated ${r.treated_density_change.toFixed(2)}, control ${r.control_density_change.toFixed(2)}`;
  if (Number.isNaN(r.slope)) return `${groups}; the density change is the same for every query, so no regression`;
  return `${groups}; loss improvement ~ density change: slope ${r.slope.toFixed(4)}, R^2 ${r.r2.toFixed(3)}, p ${r.p_value.toExponential(2)}`;
}

interface DensityView {
  embedding: Lmd3Embedding;
  bandwidth: 'scott' | 'loo';
  h: number;
  before: Float64Array;
  after: Float64Array;
}

/** Log-densities of the queries among the original and the treated training set, per embedding and bandwidth rule. */
function densityViews(env: EmbeddedDefault, data: Lmd3Data, baseSeqs: TokenSequence[], treatedSeqs: TokenSequence[], testSeqs: TokenSequence[]): { views: DensityView[]; mainKernel: ScoreMatrix } {
  const padId = env.tokenizer.padId ?? 0;
  const tfidf = fitTfidf(data.baseTrain.map((e) => e.prompt));
  const embed: Record<Lmd3Embedding, (seqs: TokenSequence[], texts: string[]) => EmbeddingSet> = {
    // Prompts end with the person's name: the last state carries it, while mean-pooled states
    // are dominated by the template words.
    'base-last': (seqs) => computeEmbeddings(env.model, null, promptOnly(seqs), { pool: 'last', padId }),
    'base-mean': (seqs) => computeEmbeddings(env.model, null, promptOnly(seqs), { pool: 'mean', padId }),
    tfidf: (_seqs, texts) => tfidfEmbeddings(tfidf, texts),
  };
  const views: DensityView[] = [];
  let mainKernel: ScoreMatrix | undefined;
  for (const embedding of LMD3_EMBEDDINGS) {
    const baseEmb = embed[embedding](baseSeqs, data.baseTrain.map((e) => e.prompt));
    const treatedEmb = embed[embedding](treatedSeqs, data.treatedTrain.map((e) => e.prompt));
    const testEmb = embed[embedding](testSeqs, data.tests.map((e) => e.prompt));
    for (const bandwidth of ['scott', 'loo'] as const) {
      const h = bandwidth === 'scott' ? kdeBandwidth(baseEmb, 'scott') : looBandwidth(baseEmb).h;
      const density = (train: EmbeddingSet) => {
        const kde = new KernelDensity({ bandwidth: h });
        kde.cache(train);
        return kde.logDensity(testEmb);
      };
      views.push({ embedding, bandwidth, h, before: density(baseEmb), after: density(treatedEmb) });
      if (embedding === 'base-last' && bandwidth === 'scott') {
        const kde = new KernelDensity({ bandwidth: h });
        kde.cache(treatedEmb);
        mainKernel = kde.attribute(testEmb);
      }
    }
  }
  return { views, mainKernel: mainKernel! };
}

interface SeedRun {
  seed: number;
  lossBefore: Float32Array | number[];
  lossAfter: Float32Array | number[];
  correctBefore: number[];
  correctAfter: number[];
}

export async function runLmd3Experiment(env: EmbeddedDefault, opts: Lmd3Options = {}): Promise<Lmd3Result> {
  const log = opts.log ?? (() => undefined);
  const quick = opts.quick ?? false;
  const seeds = opts.seeds ?? [opts.seed ?? 1];
  const control = opts.control ?? 'same-steps';
  if (control !== 'same-steps' && control !== 'same-epochs') throw new TdaError(`unknown control '${String(control)}' (use same-steps or same-epochs)`, { field: 'control' });
  const epochs = opts.epochs ?? (quick ? 3 : 4);
  const { model, tokenizer, world } = env;
  const padId = tokenizer.padId ?? 0;
  const data = lmd3Data(world, { nTrain: quick ? 300 : 600, nTests: quick ? 40 : 100, k: opts.k ?? 3, diversity: opts.diversity ?? 'high' });
  const encode = (xs: { prompt: string; response: string }[]) => xs.map((e) => encodeExample(tokenizer, e));
  const baseSeqs = encode(data.baseTrain);
  const treatedSeqs = encode(data.treatedTrain);
  const testSeqs = encode(data.tests);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'lmd3');

  // Densities depend on the data and the base model only, not on the fine-tuning seed.
  const { views, mainKernel } = densityViews(env, data, baseSeqs, treatedSeqs, testSeqs);
  opts.onKernelScores?.({ data, scores: mainKernel });
  const main = views[0];

  const t0 = Date.now();
  const prompts = data.tests.map((t) => tokenizer.encode(t.prompt, { addSpecialTokens: true }));
  const answer = (a: LoraAdapter) =>
    generate(model, a, prompts, { maxNewTokens: 8, eosId: tokenizer.eosId, mode: 'greedy', padId }).map((ids, i) => (tokenizer.decode(ids, { skipSpecialTokens: true }).trim() === data.tests[i].response.trim() ? 1 : 0));
  const runs: SeedRun[] = [];
  for (const [si, seed] of seeds.entries()) {
    const train = (seqs: TokenSequence[], label: string, step: number): LoraAdapter => {
      opts.progress?.('fine-tuning', 2 * si + step, 2 * seeds.length);
      const a = finetuneLora(model, initAdapter(model.config, lora, seed), seqs, { epochs, batchSize: 16, lr: 3e-3, seed, padId }).adapter;
      log(`seed ${seed}: fine-tuned ${label} adapter on ${seqs.length} examples (${since(t0).toFixed(0)} s)`);
      return a;
    };
    const controlSeqs = control === 'same-steps' ? padToSize(baseSeqs, treatedSeqs.length, seed) : baseSeqs;
    const controlAdapter = train(controlSeqs, `control (${control})`, 0);
    const treatedAdapter = train(treatedSeqs, 'treated', 1);
    runs.push({
      seed,
      lossBefore: computeLosses(model, controlAdapter, testSeqs, { padId }),
      lossAfter: computeLosses(model, treatedAdapter, testSeqs, { padId }),
      correctBefore: answer(controlAdapter),
      correctAfter: answer(treatedAdapter),
    });
  }
  opts.progress?.('fine-tuning', 2 * seeds.length, 2 * seeds.length);

  const n = data.tests.length;
  const treatedFlags = data.tests.map((t) => t.treated);
  const perfByRun = new Map(runs.map((r) => [r, Array.from({ length: n }, (_, i) => r.lossBefore[i] - r.lossAfter[i])]));
  const dPerfOf = (r: SeedRun) => perfByRun.get(r)!;
  const changeOf = (v: DensityView) => Array.from({ length: n }, (_, i) => v.after[i] - v.before[i]);
  const dDensity = changeOf(main);
  // Over all (seed, query) pairs: each seed's loss change against the same density change.
  const allDensity = runs.flatMap(() => dDensity);
  const allPerf = runs.flatMap(dPerfOf);
  const regression = linearRegression(allDensity, allPerf);
  const densityPredictsLoss = linearRegression(runs.flatMap(() => Array.from(main.before)), runs.flatMap((r) => Array.from(r.lossBefore)));
  log(`regression of loss improvement on density change: slope ${regression.slope.toFixed(4)}, R^2 ${regression.r2.toFixed(3)}, p ${regression.pValue.toExponential(2)}`);

  const perQuery = frameFromColumns({
    seed: runs.flatMap((r) => data.tests.map(() => r.seed)),
    query: runs.flatMap(() => data.tests.map((_, i) => i)),
    treated: runs.flatMap(() => treatedFlags.map((t) => (t ? 1 : 0))),
    log_density_before: runs.flatMap(() => Array.from(main.before)),
    log_density_after: runs.flatMap(() => Array.from(main.after)),
    density_change: allDensity,
    loss_before: runs.flatMap((r) => Array.from(r.lossBefore)),
    loss_after: runs.flatMap((r) => Array.from(r.lossAfter)),
    loss_improvement: allPerf,
    correct_before: runs.flatMap((r) => r.correctBefore),
    correct_after: runs.flatMap((r) => r.correctAfter),
  });
  const indices = (pick: (i: number) => boolean) => Array.from({ length: n }, (_, i) => i).filter(pick);
  const group = (pick: (i: number) => boolean) => {
    const idx = indices(pick);
    const perRun = runs.map((r) => idx.map((i) => dPerfOf(r)[i]));
    const ci = runBootstrapMeanCI(perRun, { seed: 0, resamples: 2000 });
    return {
      queries: idx.length,
      runs: runs.length,
      density_change: mean(idx.map((i) => dDensity[i])),
      loss_improvement: ci.estimate,
      loss_improvement_lo: ci.lo,
      loss_improvement_hi: ci.hi,
      accuracy_before: mean(runs.flatMap((r) => idx.map((i) => r.correctBefore[i]))),
      accuracy_after: mean(runs.flatMap((r) => idx.map((i) => r.correctAfter[i]))),
    };
  };
  const groups = { treated: group((i) => treatedFlags[i]), control: group((i) => !treatedFlags[i]), all: group(() => true) };
  const columns = ['queries', 'runs', 'density_change', 'loss_improvement', 'loss_improvement_lo', 'loss_improvement_hi', 'accuracy_before', 'accuracy_after'] as const;
  const summary = frameFromColumns({ group: Object.keys(groups), ...Object.fromEntries(columns.map((c) => [c, Object.values(groups).map((g) => g[c])])) });

  // Treated minus control, per run: a difference of two group means from the same two models.
  const diffPerRun = runs.map((r) => {
    const d = dPerfOf(r);
    return [mean(indices((i) => treatedFlags[i]).map((i) => d[i])) - mean(indices((i) => !treatedFlags[i]).map((i) => d[i]))];
  });
  // As for DDA's paired differences: the wider of the bootstrap over runs and a t interval over
  // the runs' differences, since a bootstrap over 3 runs has only 10 distinct resamples.
  const boot = runBootstrapMeanCI(diffPerRun, { seed: 0, resamples: 2000 });
  const t = normalMeanCI(diffPerRun.map((d) => d[0]));
  const tmc = { ...boot, lo: Number.isNaN(t.lo) ? boot.lo : Math.min(boot.lo, t.lo), hi: Number.isNaN(t.hi) ? boot.hi : Math.max(boot.hi, t.hi) };
  const treatedMinusControl = { estimate: tmc.estimate, lo: tmc.lo, hi: tmc.hi, runs: tmc.runs, verdict: describeDifference({ ...tmc, queries: n }) };

  const byEmbedding = views.map((v) => {
    const change = changeOf(v);
    const fit = densityChangeFit(runs.flatMap(() => change), allPerf);
    return {
      embedding: v.embedding,
      bandwidth: v.bandwidth,
      h: v.h,
      treated_density_change: mean(indices((i) => treatedFlags[i]).map((i) => change[i])),
      control_density_change: mean(indices((i) => !treatedFlags[i]).map((i) => change[i])),
      slope: fit?.slope ?? NaN,
      r2: fit?.r2 ?? NaN,
      p_value: fit?.pValue ?? NaN,
    };
  });
  const densityByEmbedding = frameFromColumns(Object.fromEntries(Object.keys(byEmbedding[0]).map((c) => [c, byEmbedding.map((r) => r[c as keyof (typeof byEmbedding)[number]])])) as Record<string, number[] | string[]>);
  const resultLines = [
    resultLine('lmd3', `loss improvement treated - control (${control})`, treatedMinusControl.verdict),
    ...byEmbedding.map((r) => resultLine('lmd3', `density ${r.embedding} ${r.bandwidth}`, densityLineText(r))),
  ];

  const figures = [
    scatterFigure(
      'Paraphrase injection: performance change vs density change',
      [true, false].map((t) => {
        const idx = indices((i) => treatedFlags[i] === t);
        return { name: t ? 'treated (paraphrases added)' : 'control', x: runs.flatMap(() => idx.map((i) => dDensity[i])), y: runs.flatMap((r) => idx.map((i) => dPerfOf(r)[i])) };
      }),
      { x: 'change in log-density', y: 'loss improvement' },
      { slope: regression.slope, intercept: regression.intercept, label: `fit: slope ${regression.slope.toFixed(3)}, R² ${regression.r2.toFixed(2)}` },
    ),
    scatterFigure(
      'Density predicts performance (before injection)',
      [{ name: 'queries', x: runs.flatMap(() => Array.from(main.before)), y: runs.flatMap((r) => Array.from(r.lossBefore)) }],
      { x: 'log-density among training examples', y: 'loss of the expected answer' },
      { slope: densityPredictsLoss.slope, intercept: densityPredictsLoss.intercept, label: `fit: R² ${densityPredictsLoss.r2.toFixed(2)}` },
    ),
  ];
  return {
    perQuery,
    summary,
    densityByEmbedding,
    regression,
    densityPredictsLoss,
    treatedMinusControl,
    resultLines,
    figures,
    settings: { quick, seeds, epochs, control, k: opts.k ?? 3, diversity: opts.diversity ?? 'high', bandwidth: main.h, embeddings: views.map((v) => ({ embedding: v.embedding, bandwidth: v.bandwidth, h: v.h })) },
  };
}
