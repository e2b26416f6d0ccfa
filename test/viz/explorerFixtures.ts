/** Synthetic explorer inputs: seeded texts and top-k scores at any size. */
import { TopKScores } from '../../src/attribution/topK';
import { Rng } from '../../src/random';
import { ExplorerInput } from '../../src/viz/explorer/model';

const WORDS = ['alpha', 'bravo', 'canary', 'delta', 'echo', 'falcon', 'garnet', 'harbor', 'indigo', 'juniper', 'kestrel', 'lumen', 'meadow', 'nectar', 'onyx', 'pepper'];

function sentence(rng: Rng, n: number): string {
  return Array.from({ length: n }, () => WORDS[rng.int(WORDS.length)]).join(' ');
}

/** Top-k rows of random scores: distinct indices, descending scores. */
function randomTopK(rng: Rng, nTest: number, nTrain: number, k: number): TopKScores {
  const indices = new Int32Array(nTest * k);
  const scores = new Float32Array(nTest * k);
  for (let q = 0; q < nTest; q++) {
    const seen = new Set<number>();
    let s = 1 + rng.next();
    for (let r = 0; r < k; r++) {
      let i = rng.int(nTrain);
      while (seen.has(i)) i = rng.int(nTrain);
      seen.add(i);
      s -= rng.next() * 0.1;
      indices[q * k + r] = i;
      scores[q * k + r] = s;
    }
  }
  return { nTest, k, nTrain, indices, scores };
}

export interface SyntheticOptions {
  nQueries: number;
  nTrain: number;
  methods?: string[];
  views?: string[];
  k?: number;
  /** Give every query per-token weights. */
  tokens?: boolean;
  seed?: number;
}

/** Queries "query <i>: ..." labelled by i % 3 (class-0/1/2), two groups; top-k columns per method and view. */
export function syntheticExplorerInput(o: SyntheticOptions): ExplorerInput {
  const rng = new Rng(o.seed ?? 7);
  const k = o.k ?? 10;
  const methods = o.methods ?? ['gradDot', 'dataInf', 'repSim'];
  const views = o.views ?? ['plain'];
  const words = (text: string) => text.split(' ').map((t, j) => (j === 0 ? t : ` ${t}`));
  const weights = (n: number) => Array.from({ length: n }, () => rng.uniform(-1, 1));
  const train = Array.from({ length: o.nTrain }, (_, i) => {
    const text = `train ${i}: ${sentence(rng, 10)}`;
    // With tokens: every other training example has its own token weights.
    return o.tokens && i % 2 === 0 ? { text, tokens: { tokens: words(text), weights: weights(12) } } : { text };
  });
  const queries = Array.from({ length: o.nQueries }, (_, i) => {
    const prompt = `query ${i}: ${sentence(rng, 6)}?`;
    const q = { prompt, answer: sentence(rng, 3), label: `class-${i % 3}`, positives: [rng.int(o.nTrain), rng.int(o.nTrain)] };
    if (!o.tokens) return q;
    const toks = words(prompt);
    return { ...q, tokens: { tokens: toks, weights: weights(toks.length) } };
  });
  const half = Math.ceil(o.nQueries / 2);
  const split = (from: number, to: number, name: string) => {
    const scores = views.flatMap((view) => methods.map((method) => ({ method, view, topK: randomTopK(rng, to - from, o.nTrain, k) })));
    // The first column's best example is a known positive too, so positives show up with ranks.
    const qs = queries.slice(from, to).map((q, j) => ({ ...q, positives: [scores[0].topK.indices[j * k], ...q.positives] }));
    return { name, train, queries: qs, scores };
  };
  return { title: 'synthetic explorer', subtitle: `${o.nQueries} queries x ${o.nTrain} training examples`, k, groups: [split(0, half, 'group A'), split(half, o.nQueries, 'group B')] };
}
