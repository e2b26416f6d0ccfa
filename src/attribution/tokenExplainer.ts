/**
 * Per-token attribution of (query, training example) pairs of one dataset, as readable rows:
 * every token of both texts with its decoded piece and its contribution (null where the label
 * mask does not count the token). Per-token gradients are computed when a pair first needs
 * them and kept, so the top k of many queries share their training examples' work.
 */
import { LabelMask, TokenSequence } from '../data/batch';
import { tokenPieces } from '../data/tokenPieces';
import type { TextTokenizer } from '../data/tokenizer';
import { TdaError } from '../errors';
import { computeTokenGradients, TokenGradients } from '../gradients/perToken';
import { GradientSet, sliceExamples } from '../gradients/types';
import type { LoraAdapter } from '../model/adapter';
import type { LlamaModel } from '../model/llama';
import { disposeLoraState, LoraState, loraStateFromAdapter } from '../model/loraState';
import { exampleNorms } from './gradDot';
import { Scorer } from './method';
import { QueryTokens, tokenScorer, TokenSplit } from './tokens';

export interface TokenRow {
  /** Index in the example's input ids. */
  position: number;
  id: number;
  /** Decoded text of the token (see data/tokenPieces.ts). */
  text: string;
  /** Contribution of this token's loss term to the score; null where the mask does not count it. */
  contribution: number | null;
}

export interface TokenSide {
  /** Index of the example in its dataset. */
  index: number;
  /** Sum of the contributions: equals the score (up to rounding). */
  sum: number;
  tokens: TokenRow[];
}

export interface PairTokenReport {
  method: string;
  /** The pair's score, c_q c_i T(g_q) . g_i (what the method's attribute() gives, in float64). */
  score: number;
  query: TokenSide;
  example: TokenSide;
}

/** One dataset's examples with their per-example gradients, taken with the explainer's label mask. */
export interface ExamplesWithGradients {
  examples: TokenSequence[];
  gradients: GradientSet;
}

export interface TokenExplainerOptions {
  mask?: LabelMask;
  padId?: number;
  tokenizer?: TextTokenizer;
  /** Token copies per backward pass. */
  batchSize?: number;
}

function sideRows(seq: TokenSequence, split: TokenSplit, pieces: string[]): TokenRow[] {
  const at = new Map(split.positions.map((p, t) => [p, split.contributions[t]]));
  return seq.inputIds.map((id, position) => ({ position, id, text: pieces[position], contribution: at.get(position) ?? null }));
}

export class TokenExplainer {
  private readonly lora: LoraState;
  private readonly trainTokens = new Map<number, TokenGradients>();
  private readonly prepared = new Map<number, QueryTokens>();
  /** gradCos: every training gradient's norm, once. */
  private trainNorms?: Float64Array;

  /** `scorer` is cached on `train.gradients` (or on gradients it takes the same scores from). */
  constructor(
    private readonly model: LlamaModel,
    adapter: LoraAdapter,
    private readonly scorer: Scorer,
    private readonly train: ExamplesWithGradients,
    private readonly queries: ExamplesWithGradients,
    private readonly opts: TokenExplainerOptions = {},
  ) {
    tokenScorer(scorer);
    for (const [what, d] of [['train', train], ['queries', queries]] as const) {
      if (d.examples.length !== d.gradients.n) throw new TdaError(`${d.examples.length} examples but ${d.gradients.n} gradients`, { field: what });
    }
    this.lora = loraStateFromAdapter(adapter);
  }

  get method(): string {
    return this.scorer.name;
  }

  private tokens(seq: TokenSequence): TokenGradients {
    return computeTokenGradients(this.model, this.lora, seq, { mask: this.opts.mask, padId: this.opts.padId, batchSize: this.opts.batchSize });
  }

  private check(i: number, n: number, field: string): void {
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new TdaError(`index ${i} is out of range (${n} examples: 0 to ${n - 1})`, { field });
  }

  private query(q: number): QueryTokens {
    this.check(q, this.queries.examples.length, 'query');
    let p = this.prepared.get(q);
    if (!p) {
      p = QueryTokens.prepare(this.scorer, sliceExamples(this.queries.gradients, q, q + 1), this.tokens(this.queries.examples[q]));
      this.prepared.set(q, p);
    }
    return p;
  }

  private example(i: number): TokenGradients {
    this.check(i, this.train.examples.length, 'example');
    let t = this.trainTokens.get(i);
    if (!t) {
      t = this.tokens(this.train.examples[i]);
      this.trainTokens.set(i, t);
    }
    return t;
  }

  private pieces(seq: TokenSequence): string[] {
    return tokenPieces(seq.inputIds, this.opts.tokenizer);
  }

  /** Every token of query q and of training example i with its contribution to their score. */
  pair(q: number, i: number): PairTokenReport {
    const prepared = this.query(q);
    const p = prepared.pair(sliceExamples(this.train.gradients, i, i + 1), this.example(i));
    const qSeq = this.queries.examples[q];
    const iSeq = this.train.examples[i];
    return {
      method: this.method,
      score: p.score,
      query: { index: q, sum: p.query.sum, tokens: sideRows(qSeq, p.query, this.pieces(qSeq)) },
      example: { index: i, sum: p.train.sum, tokens: sideRows(iSeq, p.train, this.pieces(iSeq)) },
    };
  }

  /**
   * The query's tokens against several training examples at once (e.g. a method's top k):
   * each token's contribution to the sum of the pairs' scores.
   */
  queryAgainst(q: number, examples: number[]): TokenSide {
    const prepared = this.query(q);
    const g = this.train.gradients;
    examples.forEach((i) => this.check(i, g.n, 'example'));
    if (this.scorer.name === 'gradCos') this.trainNorms ??= exampleNorms(g);
    const norms = this.trainNorms;
    const sum: GradientSet = {
      n: 1,
      blocks: g.blocks.map((b) => {
        const data = new Float32Array(b.dim);
        for (const i of examples) {
          const f = norms ? (norms[i] > 0 ? 1 / norms[i] : 0) : 1;
          for (let j = 0; j < b.dim; j++) data[j] += f * b.data[i * b.dim + j];
        }
        return { ...b, data };
      }),
    };
    const split = prepared.againstSum(sum);
    const seq = this.queries.examples[q];
    return { index: q, sum: split.sum, tokens: sideRows(seq, split, this.pieces(seq)) };
  }

  /** Frees the adapter's tensors and the kept per-token gradients. */
  dispose(): void {
    disposeLoraState(this.lora);
    this.trainTokens.clear();
    this.prepared.clear();
  }
}
