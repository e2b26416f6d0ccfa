/**
 * Every method's scores for one fine-tuning run, as the LDS experiment compares them: the
 * gradient methods and RepSim at each checkpoint (0 = the base model) with their DDA
 * variants, TracIn-CP, BM25, LESS over the trained checkpoints with their Adam moments, and
 * TrackStar at the last checkpoint. Names: `<method>` is the plain score at the last
 * checkpoint, `<method>.<variant>` a DDA variant (z-scored per query, as in the DDA
 * experiment).
 */
import { Bm25 } from '../attribution/bm25';
import { Less } from '../attribution/less';
import { RepSim } from '../attribution/repSim';
import { tracinFromScores } from '../attribution/tracin';
import { TrackStar } from '../attribution/trackstar';
import { ScoreMatrix } from '../attribution/types';
import type { TokenSequence } from '../data/batch';
import { dda, debias, denoise } from '../dda';
import { GradientSet, inMemorySource } from '../gradients/types';
import { LoraAdapter } from '../model/adapter';
import { computeEmbeddings } from '../model/embeddings';
import { LlamaModel } from '../model/llama';
import { readOptimizerState } from '../model/optimizerState';
import { gradientScores, loraGradientSet } from './pipeline';

export const LDS_GRADIENT_METHODS = ['gradDot', 'gradCos', 'dataInf', 'lissa', 'kronGrad', 'exact'] as const;
export const DDA_VARIANT_NAMES = ['debias', 'denoise', 'DDA'] as const;

export interface RunCheckpoint {
  adapter: LoraAdapter;
  /** Mean learning rate of the epoch that ended here (0 for checkpoint 0). */
  lr: number;
  /** The saved checkpoint folder (with optimizer_state.safetensors), null for checkpoint 0. */
  dir: string | null;
}

export interface RunInputs {
  model: LlamaModel;
  padId: number;
  /** Checkpoint 0 (the initial adapter) then one per epoch. */
  checkpoints: RunCheckpoint[];
  train: TokenSequence[];
  queries: TokenSequence[];
  trainTexts: string[];
  queryTexts: string[];
  /** Gradient methods to run (default LDS_GRADIENT_METHODS). */
  gradientMethods?: readonly string[];
  lissa: Record<string, unknown>;
  /** LESS's projection dimension. */
  lessDim: number;
  /** Called between steps, so that worker pools on the event loop keep running. */
  yieldNow?: () => Promise<void>;
  progress?: (label: string, done: number, total: number) => void;
}

/** The plain methods (one matrix each at the final model), before DDA variants. */
export function plainMethods(gradientMethods: readonly string[] = LDS_GRADIENT_METHODS): string[] {
  return ['bm25', 'repSim', ...gradientMethods, 'tracinCP', 'less', 'trackStar'];
}

/** Every method's score matrix [nQuery, nTrain], by name (plain methods first, then the variants). */
export async function runScores(r: RunInputs): Promise<Record<string, ScoreMatrix>> {
  const tick = r.yieldNow ?? (() => Promise.resolve());
  const gradMethods = r.gradientMethods ?? LDS_GRADIENT_METHODS;
  // TracIn-CP is built from gradDot's per-checkpoint scores.
  const perCheckpointMethods = [...new Set([...gradMethods, 'gradDot'])];
  const perCheckpoint: Record<string, ScoreMatrix[]> = Object.fromEntries([...perCheckpointMethods, 'repSim'].map((m) => [m, []]));
  const grads: { train: GradientSet; test: GradientSet }[] = [];
  for (let t = 0; t < r.checkpoints.length; t++) {
    r.progress?.('scores', t, r.checkpoints.length);
    const adapter = r.checkpoints[t].adapter;
    const train = await loraGradientSet(r.model, adapter, r.train, 32, r.padId);
    const test = await loraGradientSet(r.model, adapter, r.queries, 32, r.padId);
    grads.push({ train, test });
    await tick();
    for (const m of perCheckpointMethods) {
      perCheckpoint[m].push(gradientScores(train, test, [m], { lissa: r.lissa })[m]);
      await tick();
    }
    const rep = new RepSim();
    rep.cache(computeEmbeddings(r.model, adapter, r.train, { pool: 'last', padId: r.padId }));
    perCheckpoint.repSim.push(rep.attribute(computeEmbeddings(r.model, adapter, r.queries, { pool: 'last', padId: r.padId })));
  }
  r.progress?.('scores', r.checkpoints.length, r.checkpoints.length);
  const T = r.checkpoints.length - 1;
  const out: Record<string, ScoreMatrix> = {};
  const bm25 = new Bm25();
  bm25.cache(r.trainTexts);
  out.bm25 = bm25.attribute(r.queryTexts);
  out.repSim = perCheckpoint.repSim[T];
  for (const m of gradMethods) out[m] = perCheckpoint[m][T];
  out.tracinCP = tracinFromScores(perCheckpoint.gradDot.slice(1), r.checkpoints.slice(1).map((c) => c.lr));
  const trained = r.checkpoints.map((c, t) => ({ c, t })).filter(({ c }) => c.dir !== null);
  const less = new Less({ projectionDim: r.lessDim, workers: 0 });
  less.cache(trained.map(({ c, t }) => ({ train: inMemorySource(grads[t].train), optimizer: readOptimizerState(c.dir!) })));
  out.less = less.attribute(trained.map(({ t }) => grads[t].test));
  await tick();
  const ts = new TrackStar({ workers: 0 });
  ts.cache({ train: inMemorySource(grads[T].train), optimizer: readOptimizerState(r.checkpoints[T].dir!) });
  out.trackStar = ts.attribute(grads[T].test);
  await tick();
  for (const m of ['repSim', ...gradMethods]) {
    const base = perCheckpoint[m][0];
    const tuned = perCheckpoint[m].slice(1);
    out[`${m}.debias`] = debias(tuned[tuned.length - 1], base, { normalize: 'zscore-rows' });
    out[`${m}.denoise`] = denoise(tuned, { mode: 'mean', standardize: true });
    out[`${m}.DDA`] = dda({ finetuned: tuned, base }, { mode: 'mean', standardize: true, normalize: 'zscore-rows' });
  }
  return out;
}
