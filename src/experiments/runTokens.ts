/**
 * Per-token heatmaps for a run's explorer: for each query, one method's top k training
 * examples, each with its tokens' contributions to the pair's score, and the query's answer
 * with its tokens' contributions to the sum of those k scores (attribution/tokens.ts).
 * The gradients are taken again at the given adapter (the run's last checkpoint), and the
 * per-token gradients only for the examples some query's top k holds.
 */
import { Scorer } from '../attribution/method';
import { createScorer } from '../attribution/registry';
import { TokenExplainer, TokenSide } from '../attribution/tokenExplainer';
import { checkTokenMethod } from '../attribution/tokens';
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { TokenSequence } from '../data/batch';
import { TextTokenizer } from '../data/tokenizer';
import { TdaError } from '../errors';
import { GradientSet, inMemorySource } from '../gradients/types';
import { LoraAdapter } from '../model/adapter';
import { LlamaModel } from '../model/llama';
import { TokenAttribution } from '../viz/explorer/model';
import { loraGradientSet } from './pipeline';

/** What `attributions/<group>/tokens.json` holds. */
export interface GroupTokens {
  method: string;
  /** The explorer setting whose rows carry the heatmaps (e.g. plain). */
  view: string;
  k: number;
  /** Per query: the answer's token weights, and per training index (as a string key) that example's. */
  queries: { answer: TokenAttribution; rows: Record<string, TokenAttribution> }[];
}

export interface GroupTokensOptions {
  method?: string;
  view?: string;
  k?: number;
  padId?: number;
  /** Options of the method, as createScorer takes them. */
  options?: Record<string, unknown>;
  /** The examples' gradients at `adapter` (response mask), when already computed. */
  gradients?: { train: GradientSet; queries: GradientSet };
}

/** Indices of the k highest scores of row q (ties: lower index first, as top-k files order them). */
export function topIndices(scores: ScoreMatrix, q: number, k: number): number[] {
  const row = scoreRow(scores, q);
  return Array.from(row.keys())
    .sort((a, b) => row[b] - row[a] || a - b)
    .slice(0, Math.min(k, row.length));
}

/** The tokens of a side from position `from` on, weights = contributions (0 where the mask counts none). */
export function tokenWeights(side: TokenSide, from: number): TokenAttribution {
  const rows = side.tokens.slice(from);
  const tokens = rows.map((t, j) => (j === 0 ? t.text.replace(/^\s+/, '') : t.text));
  return { tokens, weights: rows.map((t) => (t.contribution === null ? 0 : Number(t.contribution.toPrecision(4)))) };
}

/**
 * `scores` picks each query's top k (the method's own scores of these examples, e.g. from the
 * run); null: the method scores them here.
 */
export async function groupTokens(
  model: LlamaModel,
  adapter: LoraAdapter,
  tokenizer: TextTokenizer,
  train: TokenSequence[],
  queries: TokenSequence[],
  scores: ScoreMatrix | null,
  o: GroupTokensOptions = {},
): Promise<GroupTokens> {
  const method = o.method ?? 'dataInf';
  const k = o.k ?? 10;
  if (scores && (scores.nTest !== queries.length || scores.nTrain !== train.length)) {
    throw new TdaError(`scores are [${scores.nTest}, ${scores.nTrain}] but there are ${queries.length} queries and ${train.length} training examples`, { field: 'scores' });
  }
  checkTokenMethod(method);
  const padId = o.padId ?? tokenizer.padId ?? 0;
  const trainGrads = o.gradients?.train ?? (await loraGradientSet(model, adapter, train, 32, padId));
  const queryGrads = o.gradients?.queries ?? (await loraGradientSet(model, adapter, queries, 32, padId));
  const scorer: Scorer = createScorer(method, o.options ?? {});
  scorer.cache(inMemorySource(trainGrads));
  const ranked = scores ?? scorer.attribute(queryGrads);
  const explainer = new TokenExplainer(model, adapter, scorer, { examples: train, gradients: trainGrads }, { examples: queries, gradients: queryGrads }, { mask: 'response', padId, tokenizer });
  try {
    return {
      method,
      view: o.view ?? 'plain',
      k,
      queries: queries.map((seq, q) => {
        const top = topIndices(ranked, q, k);
        const rows: Record<string, TokenAttribution> = {};
        // Position 0 (BOS) is never a loss term: the shown text starts after it.
        for (const i of top) rows[String(i)] = tokenWeights(explainer.pair(q, i).example, 1);
        return { answer: tokenWeights(explainer.queryAgainst(q, top), seq.promptLength), rows };
      }),
    };
  } finally {
    explainer.dispose();
  }
}
