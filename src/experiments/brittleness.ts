/**
 * Brittleness by retraining (after Ilyas et al. 2022): for a query, remove the k training
 * examples a method says help it most, retrain, and see whether the greedy answer flips
 * (the caller says what counts: for a hallucinated answer, that it no longer names the
 * hallucinated country).
 * The smallest k of a grid that flips the answer measures how well the method found what
 * the answer rests on; random removal of k examples is the baseline. The grid is tried
 * from small to large and stops at the first flip; retrainings that remove the same set
 * (methods often agree on the top few) are run once.
 */
import { ScoreMatrix, scoreRow } from '../attribution/types';
import { descendingOrder } from '../eval/ranking';
import { Rng } from '../random';

export const RANDOM_REMOVAL = 'random';

export interface BrittlenessRecord {
  query: number;
  method: string;
  /** Smallest k of the grid whose removal changed the answer; null if none did. */
  kFlip: number | null;
  /** The ks retrained for this query and method. */
  tried: number[];
}

export interface BrittlenessInput {
  /** Query indices to test. */
  queries: number[];
  /** Plain score matrices [nQuery, nTrain] by method. */
  scores: Record<string, ScoreMatrix>;
  /** Ascending removal sizes. */
  ks: number[];
  nTrain: number;
  /** Whether a retrained model's answer to query q counts as flipped. */
  flipped: (q: number, answer: string) => boolean;
  /** Seeds the random removals. */
  seed: number;
  /** Retrains without `removed` and returns the answers of `queries`, by query index. */
  retrain: (removed: number[]) => Promise<Map<number, string>>;
}

/** The removal order of a method for one query: most helpful first. */
function removalOrder(s: ScoreMatrix, q: number): number[] {
  return Array.from(descendingOrder(scoreRow(s, q)));
}

function randomOrder(n: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx;
}

export async function brittlenessSearch(input: BrittlenessInput): Promise<BrittlenessRecord[]> {
  const cache = new Map<string, Promise<Map<number, string>>>();
  const retrain = (removed: number[]) => {
    const sorted = [...removed].sort((a, b) => a - b);
    const key = sorted.join(',');
    let p = cache.get(key);
    if (!p) {
      p = input.retrain(sorted);
      cache.set(key, p);
    }
    return p;
  };
  const jobs: Promise<BrittlenessRecord>[] = [];
  for (const q of input.queries) {
    const rng = new Rng(input.seed * 1000003 + q);
    const orders: [string, number[]][] = [...Object.entries(input.scores).map(([m, s]) => [m, removalOrder(s, q)] as [string, number[]]), [RANDOM_REMOVAL, randomOrder(input.nTrain, rng)]];
    for (const [method, order] of orders) {
      jobs.push(
        (async () => {
          const tried: number[] = [];
          for (const k of input.ks) {
            tried.push(k);
            const answers = await retrain(order.slice(0, Math.min(k, input.nTrain)));
            if (input.flipped(q, answers.get(q) ?? '')) return { query: q, method, kFlip: k, tried };
          }
          return { query: q, method, kFlip: null, tried };
        })(),
      );
    }
  }
  return Promise.all(jobs);
}

/** Share of queries flipped by removing at most k examples, per method and k of the grid. */
export function flipCurve(records: readonly BrittlenessRecord[], ks: readonly number[]): { method: string; k: number; flipped: number; queries: number }[] {
  const methods = [...new Set(records.map((r) => r.method))];
  return methods.flatMap((method) => {
    const rs = records.filter((r) => r.method === method);
    return ks.map((k) => ({ method, k, flipped: rs.filter((r) => r.kFlip !== null && r.kFlip <= k).length / rs.length, queries: rs.length }));
  });
}
