/**
 * A TF-IDF bag of words, an embedding that no model shapes: LMD3's density computed on it
 * cannot be an artefact of the model being evaluated.
 *
 *   tokens: lower-cased runs of letters and digits
 *   idf(w) = ln((1 + N) / (1 + df(w))) + 1   (N fitting documents; smoothed, as scikit-learn's default)
 *   x_d(w) = count of w in d * idf(w), then each row scaled to unit L2 norm
 *
 * The vocabulary and idf come from the fitting documents; words outside it are ignored, so a
 * document of unseen words is the zero vector.
 */
import { TdaError } from '../errors';
import { EmbeddingSet } from '../model/embeddings';

export function tokenizeWords(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export interface TfidfModel {
  vocabulary: Map<string, number>;
  idf: Float64Array;
}

export function fitTfidf(docs: readonly string[]): TfidfModel {
  if (docs.length === 0) throw new TdaError('needs at least one document', { field: 'docs' });
  const df = new Map<string, number>();
  for (const d of docs) for (const w of new Set(tokenizeWords(d))) df.set(w, (df.get(w) ?? 0) + 1);
  const words = [...df.keys()].sort();
  const vocabulary = new Map(words.map((w, i) => [w, i]));
  const n = docs.length;
  const idf = Float64Array.from(words, (w) => Math.log((1 + n) / (1 + df.get(w)!)) + 1);
  return { vocabulary, idf };
}

export function tfidfEmbeddings(model: TfidfModel, docs: readonly string[]): EmbeddingSet {
  const dim = model.vocabulary.size;
  const data = new Float32Array(docs.length * dim);
  docs.forEach((d, i) => {
    const row = new Float64Array(dim);
    for (const w of tokenizeWords(d)) {
      const j = model.vocabulary.get(w);
      if (j !== undefined) row[j] += model.idf[j];
    }
    const norm = Math.sqrt(row.reduce((a, v) => a + v * v, 0));
    if (norm > 0) for (let j = 0; j < dim; j++) data[i * dim + j] = row[j] / norm;
  });
  return { n: docs.length, dim, data };
}
