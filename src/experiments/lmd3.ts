/**
 * The LMD3 paraphrase-leakage intervention (Kirchenbauer et al. 2024) on the embedded
 * default model. Paraphrases of some test queries ("treated") are added to the fine-tuning
 * data; the rest are controls. For every query we measure
 *   - the change in log-density of the query among the training embeddings (Gaussian KDE,
 *     base-model hidden state at the end of the prompt, bandwidth fixed by Scott's rule on the original
 *     training set so both densities use the same kernel), and
 *   - the change in performance: loss of the expected response under the adapter trained
 *     without the paraphrases minus under the adapter trained with them (positive = better),
 *     and greedy exact-match accuracy,
 * then regress the performance change on the density change (slope, R^2, p-value).
 */
import { KernelDensity, kdeBandwidth } from '../attribution/density';
import { ScoreMatrix } from '../attribution/types';
import { DataFrame, frameFromColumns } from '../eval/frame';
import { linearRegression, LinearFit } from '../eval/regression';
import { initAdapter, LoraAdapter, parseLoraConfig } from '../model/adapter';
import { computeEmbeddings } from '../model/embeddings';
import { generate } from '../model/generate';
import { computeLosses } from '../model/loss';
import { finetuneLora } from '../train/finetune';
import { Figure, scatterFigure } from '../viz/figures';
import { EmbeddedDefault } from './embedded';
import { encodeExample, mean, since } from './pipeline';
import { Lmd3Data, lmd3Data, ParaphraseDiversity } from './world';

export interface Lmd3Options {
  quick?: boolean;
  seed?: number;
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
  /** One row per test query: treated, density before/after/change, loss before/after, correct before/after. */
  perQuery: DataFrame;
  /** group (treated/control/all), queries, mean density change, mean loss change, accuracy change. */
  summary: DataFrame;
  /** Performance change regressed on density change over all queries. */
  regression: LinearFit;
  /** Per-query loss (control model) regressed on log-density (original data): density predicts performance. */
  densityPredictsLoss: LinearFit;
  figures: Figure[];
  settings: Record<string, unknown>;
}

export async function runLmd3Experiment(env: EmbeddedDefault, opts: Lmd3Options = {}): Promise<Lmd3Result> {
  const log = opts.log ?? (() => undefined);
  const quick = opts.quick ?? false;
  const seed = opts.seed ?? 1;
  const epochs = opts.epochs ?? (quick ? 3 : 4);
  const { model, tokenizer, world } = env;
  const padId = tokenizer.padId ?? 0;
  const data = lmd3Data(world, { nTrain: quick ? 300 : 600, nTests: quick ? 40 : 100, k: opts.k ?? 3, diversity: opts.diversity ?? 'high' });
  const encode = (xs: { prompt: string; response: string }[]) => xs.map((e) => encodeExample(tokenizer, e));
  const baseSeqs = encode(data.baseTrain);
  const treatedSeqs = encode(data.treatedTrain);
  const testSeqs = encode(data.tests);
  const lora = parseLoraConfig({ peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }, 'lmd3');

  const t0 = Date.now();
  const train = (seqs: typeof baseSeqs, label: string, step: number): LoraAdapter => {
    opts.progress?.('fine-tuning', step, 2);
    const a = finetuneLora(model, initAdapter(model.config, lora, seed), seqs, { epochs, batchSize: 16, lr: 3e-3, seed, padId }).adapter;
    log(`fine-tuned ${label} adapter on ${seqs.length} examples (${since(t0).toFixed(0)} s)`);
    return a;
  };
  const control = train(baseSeqs, 'control', 0);
  const treated = train(treatedSeqs, 'treated', 1);
  opts.progress?.('fine-tuning', 2, 2);

  // Densities in the base model's representation space, one kernel for both training sets.
  // An example is embedded by the hidden state at the end of its prompt (prompts end with the
  // person's name): mean-pooled states are dominated by the template words, so a paraphrase
  // would look farther from its query than same-template questions about other people.
  const embed = (seqs: typeof baseSeqs) =>
    computeEmbeddings(
      model,
      null,
      seqs.map((s) => ({ inputIds: s.inputIds.slice(0, s.promptLength), promptLength: s.promptLength - 1 })),
      { pool: 'last', padId },
    );
  const baseEmb = embed(baseSeqs);
  const h = kdeBandwidth(baseEmb, 'scott');
  const density = (trainEmb: ReturnType<typeof embed>) => {
    const kde = new KernelDensity({ bandwidth: h });
    kde.cache(trainEmb);
    return kde.logDensity(embed(testSeqs));
  };
  const before = density(baseEmb);
  const after = density(embed(treatedSeqs));
  if (opts.onKernelScores) {
    const kde = new KernelDensity({ bandwidth: h });
    kde.cache(embed(treatedSeqs));
    opts.onKernelScores({ data, scores: kde.attribute(embed(testSeqs)) });
  }
  const lossBefore = computeLosses(model, control, testSeqs, { padId });
  const lossAfter = computeLosses(model, treated, testSeqs, { padId });
  const prompts = data.tests.map((t) => tokenizer.encode(t.prompt, { addSpecialTokens: true }));
  const answer = (a: LoraAdapter) =>
    generate(model, a, prompts, { maxNewTokens: 8, eosId: tokenizer.eosId, mode: 'greedy', padId }).map((ids, i) => (tokenizer.decode(ids, { skipSpecialTokens: true }).trim() === data.tests[i].response.trim() ? 1 : 0));
  const correctBefore = answer(control);
  const correctAfter = answer(treated);

  const n = data.tests.length;
  const dDensity = Array.from({ length: n }, (_, i) => after[i] - before[i]);
  const dPerf = Array.from({ length: n }, (_, i) => lossBefore[i] - lossAfter[i]);
  const regression = linearRegression(dDensity, dPerf);
  const densityPredictsLoss = linearRegression(Array.from(before), Array.from(lossBefore));
  log(`regression of loss improvement on density change: slope ${regression.slope.toFixed(4)}, R^2 ${regression.r2.toFixed(3)}, p ${regression.pValue.toExponential(2)}`);

  const treatedFlags = data.tests.map((t) => t.treated);
  const perQuery = frameFromColumns({
    query: data.tests.map((_, i) => i),
    treated: treatedFlags.map((t) => (t ? 1 : 0)),
    log_density_before: Array.from(before),
    log_density_after: Array.from(after),
    density_change: dDensity,
    loss_before: Array.from(lossBefore),
    loss_after: Array.from(lossAfter),
    loss_improvement: dPerf,
    correct_before: correctBefore,
    correct_after: correctAfter,
  });
  const group = (pick: (i: number) => boolean) => {
    const idx = Array.from({ length: n }, (_, i) => i).filter(pick);
    return {
      queries: idx.length,
      density_change: mean(idx.map((i) => dDensity[i])),
      loss_improvement: mean(idx.map((i) => dPerf[i])),
      accuracy_before: mean(idx.map((i) => correctBefore[i])),
      accuracy_after: mean(idx.map((i) => correctAfter[i])),
    };
  };
  const groups = { treated: group((i) => treatedFlags[i]), control: group((i) => !treatedFlags[i]), all: group(() => true) };
  const summary = frameFromColumns({
    group: Object.keys(groups),
    queries: Object.values(groups).map((g) => g.queries),
    density_change: Object.values(groups).map((g) => g.density_change),
    loss_improvement: Object.values(groups).map((g) => g.loss_improvement),
    accuracy_before: Object.values(groups).map((g) => g.accuracy_before),
    accuracy_after: Object.values(groups).map((g) => g.accuracy_after),
  });
  const idx = (t: boolean) => Array.from({ length: n }, (_, i) => i).filter((i) => treatedFlags[i] === t);
  const figures = [
    scatterFigure(
      'Paraphrase injection: performance change vs density change',
      [true, false].map((t) => ({ name: t ? 'treated (paraphrases added)' : 'control', x: idx(t).map((i) => dDensity[i]), y: idx(t).map((i) => dPerf[i]) })),
      { x: 'change in log-density', y: 'loss improvement' },
      { slope: regression.slope, intercept: regression.intercept, label: `fit: slope ${regression.slope.toFixed(3)}, R² ${regression.r2.toFixed(2)}` },
    ),
    scatterFigure(
      'Density predicts performance (before injection)',
      [{ name: 'queries', x: Array.from(before), y: Array.from(lossBefore) }],
      { x: 'log-density among training examples', y: 'loss of the expected answer' },
      { slope: densityPredictsLoss.slope, intercept: densityPredictsLoss.intercept, label: `fit: R² ${densityPredictsLoss.r2.toFixed(2)}` },
    ),
  ];
  return { perQuery, summary, regression, densityPredictsLoss, figures, settings: { quick, seed, epochs, k: opts.k ?? 3, diversity: opts.diversity ?? 'high', bandwidth: h } };
}
