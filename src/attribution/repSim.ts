/**
 * RepSim: representation similarity, score[q][i] = cos(h(test_q), h(train_i)).
 *
 * The method "Do Influence Functions Work on LLMs?" (Li et al. 2024) found best at harmful
 * data identification, class attribution and backdoor detection. Sign: a training example
 * whose representation points the same way as the query's gets a positive score, read as
 * "helps the test output" (a heuristic, not a measured effect on the loss).
 *
 * Which token represents an example is chosen when embedding (model/embeddings.ts pooling):
 * `last-prompt` (the IF-on-LLMs code), `last` (the end of the response) or `mean`; the
 * score file records it (settings.inputs.pool).
 *
 * Arithmetic is float64 (norms and dot products); the result is stored as float32.
 * A zero vector has no direction: its cosine with anything is defined here as 0.
 */
import { TdaError } from '../errors';
import { MethodDescriptor, Scorer, Settings } from './method';
import { ScoreMatrix, scoreMatrix } from './types';
import { checkEmbeddingSet as checkEmbeddings, EmbeddingSet } from '../model/embeddings';

/** `cosine` (default, the paper's RepSim) or the raw `dot` product. */
export type RepSimKind = 'cosine' | 'dot';

export class RepSim implements Scorer<EmbeddingSet> {
  readonly name: string;
  private train?: { n: number; dim: number; rows: Float64Array };

  constructor(readonly kind: RepSimKind = 'cosine') {
    if (kind !== 'cosine' && kind !== 'dot') throw new TdaError(`unknown similarity '${String(kind)}' (use cosine or dot)`, { field: 'kind' });
    this.name = kind === 'cosine' ? 'repsim' : 'repsim-dot';
  }

  settings(): Settings {
    return { method: 'repSim', kind: this.kind };
  }

  /** Keeps the training representations, unit-normalised for cosine. */
  cache(train: EmbeddingSet): void {
    checkEmbeddings(train, 'train');
    this.train = { n: train.n, dim: train.dim, rows: this.prepare(train) };
  }

  attribute(test: EmbeddingSet): ScoreMatrix {
    if (!this.train) throw new TdaError('call cache(train) before attribute(test)', { field: 'train' });
    checkEmbeddings(test, 'test');
    const { n, dim, rows: x } = this.train;
    if (test.dim !== dim) throw new TdaError(`test embeddings have dim ${test.dim}, training embeddings ${dim}`, { field: 'dim' });
    const q = this.prepare(test);
    const out = scoreMatrix(test.n, n);
    const block = new Float64Array(QUERY_BLOCK * n);
    for (let a0 = 0; a0 < test.n; a0 += QUERY_BLOCK) {
      const a1 = Math.min(a0 + QUERY_BLOCK, test.n);
      crossDots(q, a0, a1, x, n, dim, block);
      out.data.set(block.subarray(0, (a1 - a0) * n), a0 * n);
    }
    return out;
  }

  /** Float64 copy of the rows, each divided by its norm for cosine (zero rows stay zero). */
  private prepare(e: EmbeddingSet): Float64Array {
    const rows = Float64Array.from(e.data);
    if (this.kind === 'dot') return rows;
    for (let r = 0; r < e.n; r++) {
      const row = rows.subarray(r * e.dim, (r + 1) * e.dim);
      let ss = 0;
      for (let k = 0; k < e.dim; k++) ss += row[k] * row[k];
      if (ss > 0) {
        const inv = 1 / Math.sqrt(ss);
        for (let k = 0; k < e.dim; k++) row[k] *= inv;
      }
    }
    return rows;
  }
}

const QUERY_BLOCK = 64;

/**
 * out[(a - a0) * n + i] = q_a . x_i for queries a in [a0, a1) and all n rows of x (both
 * row-major with d columns), in float64. Four queries share each pass over a training row,
 * so every loaded x value serves four products: ~3x faster than one pair at a time in V8.
 * Also used by the density estimator for its squared distances.
 */
export function crossDots(q: Float64Array, a0: number, a1: number, x: Float64Array, n: number, d: number, out: Float64Array): void {
  let a = a0;
  for (; a + 4 <= a1; a += 4) {
    const q0 = a * d;
    const q1 = q0 + d;
    const q2 = q1 + d;
    const q3 = q2 + d;
    const o = (a - a0) * n;
    for (let i = 0; i < n; i++) {
      const xi = i * d;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let k = 0; k < d; k++) {
        const v = x[xi + k];
        s0 += q[q0 + k] * v;
        s1 += q[q1 + k] * v;
        s2 += q[q2 + k] * v;
        s3 += q[q3 + k] * v;
      }
      out[o + i] = s0;
      out[o + n + i] = s1;
      out[o + 2 * n + i] = s2;
      out[o + 3 * n + i] = s3;
    }
  }
  for (; a < a1; a++) {
    const qa = a * d;
    const o = (a - a0) * n;
    for (let i = 0; i < n; i++) {
      const xi = i * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += q[qa + k] * x[xi + k];
      out[o + i] = s;
    }
  }
}

/** RepSim scores in one call: cos(test_q, train_i) as an [nTest, nTrain] matrix. */
export function repSimScores(train: EmbeddingSet, test: EmbeddingSet, kind: RepSimKind = 'cosine'): ScoreMatrix {
  const r = new RepSim(kind);
  r.cache(train);
  return r.attribute(test);
}


export const repSimMethod: MethodDescriptor = {
  name: 'repSim',
  summary: 'representation similarity: cosine (or dot product) of per-example embeddings (tda-lab embed --pool last-prompt|last|mean)',
  input: 'embeddings',
  options: [{ key: 'kind', description: 'similarity of the embeddings', type: 'choice', choices: ['cosine', 'dot'], default: 'cosine' }],
  create: (o) => new RepSim(o.kind as RepSimKind),
};
