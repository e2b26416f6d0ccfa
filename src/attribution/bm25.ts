/**
 * BM25: a lexical baseline. score[q][i] = BM25 relevance of training text i to test text q,
 * i.e. "this training example shares rare words with the query" (positive = related; a
 * heuristic reading of "helps the test output", not a measured effect on the loss).
 *
 *   score(q, d) = sum over query tokens t of  IDF(t) * tf(t, d) (k1 + 1) / (tf(t, d) + k1 (1 - b + b |d| / avgdl))
 *   IDF(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          (Lucene's form: never negative)
 *
 * N, df and avgdl are those of the training texts (the indexed corpus). A query token that
 * occurs twice counts twice (as in Lucene and rank_bm25). Tokens are maximal runs of
 * Unicode letters and digits after lower-casing ("The cat's" -> the, cat, s).
 *
 * Written here rather than using the `okapibm25` package, which falls short: term
 * frequency and document frequency are regex/substring matches on the raw string ("cat"
 * counts inside "concatenate", a query term like "c++" is an invalid regex, no
 * lower-casing) while document length counts \w+ words, so the two disagree; k1 = 0 or
 * b = 0 are silently replaced by the defaults (`constants.b ? ... : 0.75`); and every query
 * rescans every document, with no index to reuse across queries.
 */
import { TdaError } from '../errors';
import { MethodDescriptor, Scorer, Settings } from './method';
import { ScoreMatrix, scoreMatrix } from './types';

/** Okapi BM25's usual constants. */
export const BM25_DEFAULTS = { k1: 1.5, b: 0.75 } as const;

export interface Bm25Options {
  /** Term-frequency saturation (default 1.5). k1 = 0 ignores term frequency. */
  k1?: number;
  /** Length normalisation in [0, 1] (default 0.75). b = 0 ignores document length. */
  b?: number;
}

/** Lower-cased word tokens: maximal runs of Unicode letters and digits. */
export function bm25Tokenize(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Robertson/Lucene IDF, non-negative for any df in [0, N]. */
export function bm25Idf(nDocs: number, df: number): number {
  return Math.log(1 + (nDocs - df + 0.5) / (df + 0.5));
}

interface Bm25Index {
  nDocs: number;
  /** term -> postings: document indices and the term's count in each. */
  postings: Map<string, { docs: number[]; tfs: number[] }>;
  /** Per document: k1 (1 - b + b |d| / avgdl), the length part of the denominator. */
  lengthNorm: Float64Array;
}

export class Bm25 implements Scorer<string[]> {
  readonly name = 'bm25';
  readonly k1: number;
  readonly b: number;
  private index?: Bm25Index;

  constructor(opts: Bm25Options = {}) {
    this.k1 = opts.k1 ?? BM25_DEFAULTS.k1;
    this.b = opts.b ?? BM25_DEFAULTS.b;
    if (!(Number.isFinite(this.k1) && this.k1 >= 0)) throw new TdaError(`must be a finite number >= 0, got ${this.k1}`, { field: 'k1' });
    if (!(this.b >= 0 && this.b <= 1)) throw new TdaError(`must be in [0, 1], got ${this.b}`, { field: 'b' });
  }

  settings(): Settings {
    return { method: this.name, k1: this.k1, b: this.b };
  }

  /** Builds the inverted index of the training texts. */
  cache(train: string[]): void {
    checkTexts(train, 'train');
    const postings = new Map<string, { docs: number[]; tfs: number[] }>();
    const lengths = train.map((text, d) => {
      const tokens = bm25Tokenize(text);
      const counts = new Map<string, number>();
      for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
      for (const [t, c] of counts) {
        let p = postings.get(t);
        if (!p) postings.set(t, (p = { docs: [], tfs: [] }));
        p.docs.push(d);
        p.tfs.push(c);
      }
      return tokens.length;
    });
    const avgdl = lengths.reduce((a, l) => a + l, 0) / Math.max(train.length, 1);
    // With every document empty there is nothing to match; avoid 0/0 in the norm.
    const lengthNorm = Float64Array.from(lengths, (l) => this.k1 * (1 - this.b + (avgdl > 0 ? (this.b * l) / avgdl : 0)));
    this.index = { nDocs: train.length, postings, lengthNorm };
  }

  /** [nTest, nTrain] BM25 scores; only documents sharing a token with the query are touched. */
  attribute(test: string[]): ScoreMatrix {
    const idx = this.index;
    if (!idx) throw new TdaError('call cache(train) before attribute(test)', { field: 'train' });
    checkTexts(test, 'test');
    const n = idx.nDocs;
    const acc = new Float64Array(n);
    const out = scoreMatrix(test.length, n);
    test.forEach((query, q) => {
      acc.fill(0);
      const qtf = new Map<string, number>();
      for (const t of bm25Tokenize(query)) qtf.set(t, (qtf.get(t) ?? 0) + 1);
      for (const [t, count] of qtf) {
        const p = idx.postings.get(t);
        if (!p) continue; // df = 0: tf is 0 in every document
        const w = count * bm25Idf(n, p.docs.length);
        for (let j = 0; j < p.docs.length; j++) {
          const d = p.docs[j];
          const tf = p.tfs[j];
          acc[d] += (w * tf * (this.k1 + 1)) / (tf + idx.lengthNorm[d]);
        }
      }
      out.data.set(acc, q * n);
    });
    return out;
  }
}

/** BM25 scores in one call. */
export function bm25Scores(train: string[], test: string[], opts: Bm25Options = {}): ScoreMatrix {
  const m = new Bm25(opts);
  m.cache(train);
  return m.attribute(test);
}

function checkTexts(texts: string[], field: string): void {
  if (!Array.isArray(texts)) throw new TdaError('must be an array of strings', { field });
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new TdaError(`text ${bad} is not a string (${typeof texts[bad]})`, { field });
}

export const bm25Method: MethodDescriptor = {
  name: 'bm25',
  summary: 'Okapi BM25 of the query text against each training text (a lexical baseline)',
  input: 'texts',
  options: [
    { key: 'k1', description: 'BM25 term-frequency saturation', type: 'number', default: BM25_DEFAULTS.k1, min: 0 },
    { key: 'b', description: 'BM25 length normalisation, in [0, 1]', type: 'number', default: BM25_DEFAULTS.b, min: 0 },
  ],
  create: (o) => new Bm25({ k1: o.k1 as number, b: o.b as number }),
};
