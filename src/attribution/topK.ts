/**
 * The k best training examples per query, in fixed memory: a [nTest, k] accumulator that
 * streamed [nTest, m] score blocks are folded into and then dropped, so scoring 100,000 x
 * 1,000 pairs never holds the [nTest, nTrain] matrix.
 *
 * Order: higher score first (positive = helps); equal scores go to the lower training
 * index. The order is total, so the result does not depend on the order in which chunks
 * arrive (worker threads finish out of order) or on the chunk sizes.
 */
import { TdaError } from '../errors';

export interface TopKScores {
  nTest: number;
  /** Entries per query: the k asked for, or nTrain when there are fewer training examples. */
  k: number;
  nTrain: number;
  /** [nTest, k] training indices, each row sorted by descending score (most helpful first). */
  indices: Int32Array;
  /** [nTest, k] the matching scores. */
  scores: Float32Array;
}

/** Refuses anything but a positive whole number. */
export function checkK(k: number, field = 'k'): void {
  if (!Number.isSafeInteger(k) || k < 1) throw new TdaError(`must be a whole number >= 1, got ${k}`, { field });
}

/**
 * Per query, a binary heap of the best k seen so far whose root is the worst of them, so a
 * candidate is usually rejected by one comparison with the root.
 */
export class TopKAccumulator {
  readonly k: number;
  private readonly idx: Int32Array;
  private readonly val: Float32Array;
  private readonly count: Int32Array;
  /** Training examples folded in so far, to catch a source that yields fewer than it says. */
  private seen = 0;

  /** `k` above nTrain is clamped to nTrain: every training example is kept, ranked. */
  constructor(
    readonly nTest: number,
    readonly nTrain: number,
    k: number,
  ) {
    checkK(k);
    if (nTrain < 1) throw new TdaError('the training set has no examples', { field: 'train' });
    this.k = Math.min(k, nTrain);
    this.idx = new Int32Array(nTest * this.k);
    this.val = new Float32Array(nTest * this.k);
    this.count = new Int32Array(nTest);
  }

  /** Folds in scores [nTest, m] (row-major) of training examples [start, start + m). */
  add(block: Float32Array, start: number, m: number): void {
    const { k, idx, val } = this;
    if (block.length !== this.nTest * m) throw new Error(`top-k: block has ${block.length} values, expected ${this.nTest} x ${m}`);
    for (let q = 0; q < this.nTest; q++) {
      const o = q * k;
      const row = q * m;
      let c = this.count[q];
      for (let j = 0; j < m; j++) {
        const s = block[row + j];
        const i = start + j;
        if (c < k) {
          if (s !== s) throw nanError(q, i, start, m);
          this.push(o, c++, s, i);
          continue;
        }
        // Full: only a candidate better than the root (the worst kept) gets in.
        const worst = val[o];
        if (s < worst || (s === worst && i > idx[o])) continue;
        if (s !== s) throw nanError(q, i, start, m);
        val[o] = s;
        idx[o] = i;
        this.siftDown(o, 0, k);
      }
      this.count[q] = c;
    }
    this.seen += m;
  }

  /** Rows sorted by descending score, ties by ascending training index. */
  result(): TopKScores {
    if (this.seen !== this.nTrain) throw new TdaError(`the training source yielded ${this.seen} examples but says it has ${this.nTrain}`, { field: 'train' });
    const { k } = this;
    const indices = new Int32Array(this.nTest * k);
    const scores = new Float32Array(this.nTest * k);
    const order = Array.from({ length: k }, (_, j) => j);
    for (let q = 0; q < this.nTest; q++) {
      const o = q * k;
      order.sort((a, b) => this.val[o + b] - this.val[o + a] || this.idx[o + a] - this.idx[o + b]);
      order.forEach((j, r) => {
        indices[o + r] = this.idx[o + j];
        scores[o + r] = this.val[o + j];
      });
    }
    return { nTest: this.nTest, k, nTrain: this.nTrain, indices, scores };
  }

  /** a is worse than b: lower score, or the same score and a higher index. */
  private worse(a: number, b: number): boolean {
    const va = this.val[a];
    const vb = this.val[b];
    return va < vb || (va === vb && this.idx[a] > this.idx[b]);
  }

  private swap(a: number, b: number): void {
    const v = this.val[a];
    this.val[a] = this.val[b];
    this.val[b] = v;
    const i = this.idx[a];
    this.idx[a] = this.idx[b];
    this.idx[b] = i;
  }

  /** Appends at heap position `pos` of the heap at offset o and restores the heap. */
  private push(o: number, pos: number, s: number, i: number): void {
    this.val[o + pos] = s;
    this.idx[o + pos] = i;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!this.worse(o + pos, o + parent)) break;
      this.swap(o + pos, o + parent);
      pos = parent;
    }
  }

  private siftDown(o: number, pos: number, size: number): void {
    for (;;) {
      const l = 2 * pos + 1;
      if (l >= size) return;
      const r = l + 1;
      const child = r < size && this.worse(o + r, o + l) ? r : l;
      if (!this.worse(o + child, o + pos)) return;
      this.swap(o + child, o + pos);
      pos = child;
    }
  }
}

function nanError(q: number, i: number, start: number, m: number): TdaError {
  return new TdaError(
    `score of query ${q} and training example ${i} is NaN (training examples [${start}, ${start + m}) of this chunk); check those gradients for NaN or infinite values`,
    { field: 'scores' },
  );
}

