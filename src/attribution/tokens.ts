/**
 * Per-token attribution: how much each token of a training example, and each token of the
 * query, contributes to the pair's score, as two decompositions that each sum to the score.
 *
 * A gradient method scores s = c_q c_i T(g_q) . g_i, with T linear (identity for gradDot,
 * an inverse-Hessian approximation for dataInf, lissa, exact and kronGrad) and c = 1, except
 * gradCos: T = identity, c_q = 1 / |g_q|, c_i = 1 / |g_i|. An example's loss is the mean of
 * its counted tokens' loss terms, so g = sum_t g_t / count, and
 *   training token t:  c_q c_i T(g_q) . g_it / count_i
 *   query token t:     c_q c_i T(g_qt) . g_i / count_q     (T linear: T(g_q) = sum_t T(g_qt) / count_q)
 * each summing exactly to s. A token's contribution is that of its own loss term (the
 * prediction of that token); tokens the label mask does not count have none. gradCos keeps
 * the pair's norms fixed, so its split is of the cosine at those norms. LiSSA's iteration is
 * linear in the vector it starts from, and every call draws the same (seeded) samples.
 */
import { TdaError } from '../errors';
import { TokenGradients } from '../gradients/perToken';
import { GradientSet } from '../gradients/types';
import { withBlocks } from '../gradients/types';
import { exampleNorms } from './gradDot';
import { GradientAttributor } from './gradientAttributor';
import { Scorer } from './method';

/** Methods whose scores split into tokens as above. */
export const TOKEN_METHODS: readonly string[] = ['gradDot', 'gradCos', 'dataInf', 'lissa', 'exact', 'kronGrad'];

/** Refuses, in one line naming the method, a method whose scores do not split into tokens. */
export function checkTokenMethod(method: string, field = 'method'): void {
  if (!TOKEN_METHODS.includes(method)) throw new TdaError(`'${method}' has no per-token attribution (methods that have: ${TOKEN_METHODS.join(', ')})`, { field });
}

/** The scorer as a gradient method that splits into tokens, or a one-line error naming the method. */
export function tokenScorer(scorer: Scorer, field = 'method'): GradientAttributor {
  checkTokenMethod(scorer.name, field);
  if (!(scorer instanceof GradientAttributor)) throw new TdaError(`'${scorer.name}' is not a gradient method`, { field });
  return scorer;
}

/** One side of a pair: contribution of each counted token (aligned with TokenGradients.positions) and their sum. */
export interface TokenSplit {
  positions: number[];
  contributions: Float64Array;
  sum: number;
}

export interface PairTokens {
  /** c_q c_i T(g_q) . g_i, from the query's and the example's own gradients. */
  score: number;
  train: TokenSplit;
  query: TokenSplit;
}

function dot(a: GradientSet, ra: number, b: GradientSet, rb: number): number {
  let s = 0;
  a.blocks.forEach((block, l) => {
    const x = block.data;
    const y = b.blocks[l].data;
    const d = block.dim;
    for (let j = 0; j < d; j++) s += x[ra * d + j] * y[rb * d + j];
  });
  return s;
}

function split(positions: number[], contributions: Float64Array): TokenSplit {
  let sum = 0;
  contributions.forEach((v) => (sum += v));
  return { positions, contributions, sum };
}

function single(set: GradientSet, what: string): void {
  if (set.n !== 1) throw new TdaError(`must hold one example's gradient, got ${set.n}`, { field: what });
}

/**
 * One query, prepared once (T(g_q) and T of each of its token gradients), then split against
 * any number of training examples: `pair` costs a few dot products.
 */
export class QueryTokens {
  private constructor(
    readonly method: string,
    private readonly normalise: boolean,
    /** c_q T(g_q), [1, dim]. */
    private readonly v: GradientSet,
    /** c_q T(g_qt) / count_q, [count_q, dim]. */
    private readonly vTokens: GradientSet,
    readonly positions: number[],
  ) {}

  /**
   * `scorer` cached on the training gradients; `query` the query's per-example gradient
   * (n = 1, as scored by the scorer) and `tokens` its per-token gradients.
   */
  static prepare(scorer: Scorer, query: GradientSet, tokens: TokenGradients): QueryTokens {
    const method = tokenScorer(scorer);
    single(query, 'query');
    const v = method.testVectors(query);
    const count = tokens.count;
    let vTokens: GradientSet;
    if (method.name === 'gradCos') {
      // The query's own norm, not each token's: the tokens split one cosine.
      const norm = exampleNorms(query)[0];
      const f = norm > 0 ? 1 / (norm * count) : 0;
      vTokens = withBlocks(tokens.gradients, tokens.gradients.blocks.map((b) => b.data.map((x) => x * f)));
    } else {
      const t = method.testVectors(tokens.gradients);
      vTokens = withBlocks(t, t.blocks.map((b) => b.data.map((x) => x / count)));
    }
    return new QueryTokens(method.name, method.name === 'gradCos', v, vTokens, tokens.positions);
  }

  /** The split of the score of this query and one training example (`example`: its gradient, n = 1; `tokens`: its per-token gradients). */
  pair(example: GradientSet, tokens: TokenGradients): PairTokens {
    single(example, 'example');
    const c = this.normalise ? 1 / exampleNorms(example)[0] : 1;
    const ci = Number.isFinite(c) ? c : 0; // a zero gradient has no direction: cosine 0
    const train = Float64Array.from({ length: tokens.count }, (_, t) => (ci * dot(this.v, 0, tokens.gradients, t)) / tokens.count);
    const query = Float64Array.from(this.positions, (_, t) => ci * dot(this.vTokens, t, example, 0));
    return { score: ci * dot(this.v, 0, example, 0), train: split(tokens.positions, train), query: split(this.positions, query) };
  }

  /**
   * The query side against a sum of training gradients (e.g. a method's top k): the
   * contribution of each query token to the sum of those pairs' scores. gradCos needs each
   * example's norm: give the gradients already divided by their norms.
   */
  againstSum(sum: GradientSet): TokenSplit {
    single(sum, 'sum');
    return split(this.positions, Float64Array.from(this.positions, (_, t) => dot(this.vTokens, t, sum, 0)));
  }
}
