/** The explorer of a `reproduce` run: its attributions saved in the run folder, then `explorer.html` built from them. */
import * as path from 'node:path';
import { buildExplorerData } from '../viz/explorer/model';
import { writeExplorer } from '../viz/explorer/page';
import { ScoreMatrix } from '../attribution/types';
import { ALL_VARIANTS, DdaRunScores } from './dda';
import { IfLlmTaskScores } from './ifLlm';
import { Lmd3Data } from './world';
import { readRunAttributions, RunAttributionGroup } from './runAttributions';
import { GroupTokens, groupTokens } from './runTokens';
import { TextTokenizer } from '../data/tokenizer';
import { LlamaModel } from '../model/llama';

export const EXPLORER_FILE = 'explorer.html';

/** The method whose per-token attribution shades a DDA run's explorer. */
export const DDA_TOKEN_METHOD = 'dataInf';

export const DDA_EXPLORER_HEADER = {
  title: 'DDA explorer: which training examples do the methods blame for each hallucination?',
  notes: [
    'Each query is a held-out person whose country the fine-tuned model answered with the target country planted by the canary training examples (the known positives).',
    'Settings: plain = scores at the last checkpoint; debias = last minus checkpoint 0 (the base model); denoise = mean over the epoch checkpoints; DDA = both; (A_t, B=0) = the same with the base scores taken at each checkpoint\u2019s own A and B = 0; (contrast) = error model minus ground model (each checkpoint fine-tuned further on its hallucinated / correct generations); checkpoint t = plain scores at epoch t (0 = before fine-tuning). BM25 and TracIn-CP have plain scores only.',
    `Token shading (setting plain): ${DDA_TOKEN_METHOD} at the last checkpoint. A training example's token carries the contribution of its own loss term to the example's ${DDA_TOKEN_METHOD} score for the query (those of an example sum to its score); an answer token carries its contribution to the sum of the ${DDA_TOKEN_METHOD} top 10. Rows outside ${DDA_TOKEN_METHOD}'s top 10 are not shaded.`,
  ],
};

/**
 * Per-token heatmaps of a DDA run: the token method's top k per query at the last checkpoint
 * (the plain setting). On the quick run this takes a few seconds per fine-tuning run.
 */
export async function ddaRunTokens(model: LlamaModel, tokenizer: TextTokenizer, r: DdaRunScores, k = 10): Promise<GroupTokens | undefined> {
  const scores = r.variants[DDA_TOKEN_METHOD]?.plain;
  if (!r.final || !scores) return undefined;
  return groupTokens(model, r.final.adapter, tokenizer, r.final.train, r.final.queries, scores, { method: DDA_TOKEN_METHOD, view: 'plain', k, gradients: r.final.gradients });
}

/** One DDA fine-tuning run as an attribution group: variants first, then every checkpoint. */
export function ddaAttributionGroup(r: DdaRunScores): RunAttributionGroup {
  // Gradient methods first (the first column is the page's default sort), baselines last.
  const baseline = (m: string) => ['tracinCP', 'repSim', 'bm25'].indexOf(m);
  const methods = Object.keys(r.variants).sort((a, b) => baseline(a) - baseline(b));
  const nCheckpoints = Math.max(0, ...Object.values(r.checkpoints).map((c) => c.length));
  const columns: RunAttributionGroup['columns'] = [];
  for (const view of ALL_VARIANTS) for (const m of methods) if (r.variants[m][view]) columns.push({ method: m, view, scores: r.variants[m][view]! });
  for (let t = 0; t < nCheckpoints; t++) for (const m of methods) if (r.checkpoints[m]?.[t]) columns.push({ method: m, view: `checkpoint ${t}`, scores: r.checkpoints[m][t] });
  return {
    id: `run-${r.run}`,
    name: `run ${r.run}: ${r.pair.source} -> ${r.pair.target} (${r.pair.regime}), seed ${r.seed}`,
    train: r.train,
    queries: r.queries.map((q, i) => ({ prompt: q.prompt, answer: q.answer, label: 'hallucination', positives: r.positives[i] })),
    columns,
  };
}

export const IF_LLM_EXPLORER_HEADER = {
  title: 'IF-on-LLMs explorer: which training examples do the methods credit for each test output?',
  notes: [
    'Class tasks: the label is the query\u2019s class, and the known positives are training examples of the same class (Acc asks whether the top one is). Backdoor: the positives are the triggered training examples. Harmful: the harmful training examples of the query\u2019s kind.',
    'Scores at the final adapter of each task\u2019s fine-tuning run; the answer shown is the expected test output whose loss the methods explain.',
  ],
};

export const LMD3_EXPLORER_HEADER = {
  title: 'LMD3 explorer: which training examples make each query dense?',
  notes: [
    'Score = log-kernel value -||q - x||^2 / (2 h^2) of the query against each training example of the treated training set, in the base model\u2019s representation space: the closer the example, the more it adds to the query\u2019s density (a similarity, not an effect on the loss).',
    'Treated queries had paraphrases injected into the training set (their known positives); control queries had none.',
  ],
};

/** One IF-on-LLMs task as an attribution group. */
export function ifLlmAttributionGroup(t: IfLlmTaskScores): RunAttributionGroup {
  return {
    id: (t.seed === undefined ? t.task : `${t.task} seed ${t.seed}`).replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, ''),
    name: t.seed === undefined ? t.task : `${t.task}, seed ${t.seed}`,
    train: t.train,
    queries: t.queries.map((q, i) => ({ ...q, positives: t.positives[i] })),
    columns: Object.entries(t.scores).map(([method, scores]) => ({ method, view: 'final adapter', scores })),
  };
}

/** The LMD3 queries against the treated training set (base examples plus injected paraphrases). */
export function lmd3AttributionGroup(k: { data: Lmd3Data; scores: ScoreMatrix }): RunAttributionGroup {
  const { data } = k;
  const positives = data.tests.map(() => [] as number[]);
  data.paraphraseOf.forEach((test, j) => positives[test].push(data.baseTrain.length + j));
  return {
    id: 'treated-training-set',
    name: 'treated training set',
    train: data.treatedTrain,
    queries: data.tests.map((t, i) => ({ prompt: t.prompt, answer: t.response, label: t.treated ? 'treated' : 'control', positives: positives[i] })),
    columns: [{ method: 'density kernel', view: 'base model embeddings', scores: k.scores }],
  };
}

/** Builds `explorer.html` in the run folder from what `attributions/` holds; returns its path. */
export function writeRunExplorer(runDir: string, k = 10): string {
  return writeExplorer(path.join(runDir, EXPLORER_FILE), buildExplorerData({ ...readRunAttributions(runDir), k }));
}
