/**
 * Shared shapes of the attribution engine.
 *
 * Score sign, everywhere: a POSITIVE score means the training example HELPS the test
 * output, i.e. upweighting it lowers the test loss (minus the classic influence on test
 * loss). A score matrix is [nTest, nTrain]; rows are queries.
 */

/** A dense row-major [nTest, nTrain] score matrix. */
export interface ScoreMatrix {
  nTest: number;
  nTrain: number;
  data: Float32Array;
}

/** One block of per-example gradients: a LoRA tensor (or a projected one) flattened, [n, dim]. */
export interface GradientBlock {
  name: string;
  /** Original tensor shape of one example's gradient (e.g. [r, in]); [dim] after projection. */
  shape: number[];
  dim: number;
  /** [n, dim] row-major. */
  data: Float32Array;
}

/** Per-example gradients of n examples at one checkpoint, split in blocks. */
export interface GradientSet {
  n: number;
  blocks: GradientBlock[];
  /** Per-example losses, when known. */
  losses?: Float32Array;
}

/** Per-example representations (hidden states) of n examples, [n, dim]. */
export interface EmbeddingSet {
  n: number;
  dim: number;
  data: Float32Array;
}

/**
 * An attribution method in two phases: `cache` does the work that depends on the
 * training set only (damping, inverse-Hessian factors, norms), `attribute` scores queries.
 */
export interface Attributor<TTrain, TTest = TTrain> {
  readonly name: string;
  cache(train: TTrain): void;
  attribute(test: TTest): ScoreMatrix;
}

/**
 * Training gradients that may not fit in memory: read in chunks of consecutive examples
 * (an in-memory GradientSet, a grads file, or a gradient store's shards).
 */
export interface GradientSource {
  n: number;
  blocks: { name: string; shape: number[]; dim: number }[];
  chunks(): Iterable<{ start: number; set: GradientSet }>;
}

/** A GradientSet seen as a source with one chunk. */
export function inMemorySource(set: GradientSet): GradientSource {
  return {
    n: set.n,
    blocks: set.blocks.map((b) => ({ name: b.name, shape: b.shape, dim: b.dim })),
    chunks: () => [{ start: 0, set }],
  };
}

export function scoreMatrix(nTest: number, nTrain: number, data?: Float32Array): ScoreMatrix {
  const d = data ?? new Float32Array(nTest * nTrain);
  if (d.length !== nTest * nTrain) throw new Error(`score matrix data has ${d.length} values, expected ${nTest} x ${nTrain}`);
  return { nTest, nTrain, data: d };
}

/** Row q of a score matrix (a view). */
export function scoreRow(s: ScoreMatrix, q: number): Float32Array {
  return s.data.subarray(q * s.nTrain, (q + 1) * s.nTrain);
}
