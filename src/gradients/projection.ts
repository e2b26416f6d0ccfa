/**
 * Seeded random projections of gradient blocks (Johnson-Lindenstrauss).
 *
 * A block of per-example gradients G [n, dim] becomes G P with P [dim, k] random:
 *   - `gaussian`:   P_ij ~ N(0, 1/k)
 *   - `rademacher`: P_ij = +-1/sqrt(k), each with probability 1/2
 * Both have E[P P^T] = I, so E[<g P, h P>] = <g, h>: dot products (and norms) are preserved
 * in expectation, with relative spread ~ sqrt(2/k) (see the tests for the bound used).
 *
 * Every block is projected when a projection is configured, whatever its size (even a
 * block with dim <= k): one rule, no special cases, and every stored block has dim k.
 *
 * The matrix is a pure function of (seed, block name, k): it is generated in chunks of
 * CHUNK_ROWS rows, chunk c from an Rng seeded by sha256(seed, block name, c). So train and
 * test gradients, any batch or shard boundaries, and any process get the same matrix, and
 * no more than one chunk (CHUNK_ROWS x k floats) has to exist at a time: a 100k x 1024
 * block never needs its 400 MB matrix in memory. Products are 2-D tfjs matMuls (the fast
 * path on wasm) accumulated chunk by chunk in a fixed order, so each output row depends on
 * its input row only: projecting rows in two halves gives exactly the same numbers as
 * projecting them all at once (on a given backend).
 */
import * as tf from '@tensorflow/tfjs';
import { showValue, TdaError } from '../errors';
import { Rng } from '../random';
import { canonicalJson, sha256Hex } from './store/hash';
import { GradientBlock, GradientSet } from './types';

export type ProjectionKind = 'gaussian' | 'rademacher';

export interface ProjectionSpec {
  kind: ProjectionKind;
  /** Target dimension k of every block. */
  dim: number;
  seed: number;
}

/** Rows of the projection matrix generated from one seed. Part of the matrix's definition: changing it changes every projection. */
export const CHUNK_ROWS = 1024;

/** Default memory a Projector may keep generated chunks in (per Projector, never global). */
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;

export function validateProjectionSpec(spec: unknown, where: { file?: string; field?: string } = { field: 'projection' }): ProjectionSpec {
  const s = spec as Partial<ProjectionSpec> | null;
  if (typeof s !== 'object' || s === null || Array.isArray(s)) {
    throw new TdaError(`must be null or {kind: 'gaussian' | 'rademacher', dim, seed}, got ${showValue(spec)}`, where);
  }
  if (s.kind !== 'gaussian' && s.kind !== 'rademacher') {
    throw new TdaError(`kind must be 'gaussian' or 'rademacher', got ${showValue(s.kind)}`, where);
  }
  if (typeof s.dim !== 'number' || !Number.isSafeInteger(s.dim) || s.dim <= 0) {
    throw new TdaError(`dim must be a positive integer, got ${showValue(s.dim)}`, where);
  }
  if (typeof s.seed !== 'number' || !Number.isSafeInteger(s.seed)) throw new TdaError(`seed must be an integer, got ${showValue(s.seed)}`, where);
  return { kind: s.kind, dim: s.dim, seed: s.seed };
}

/** `gaussian(dim=1024, seed=0)`, or `none`. */
export function describeProjection(spec: ProjectionSpec | null): string {
  return spec ? `${spec.kind}(dim=${spec.dim}, seed=${spec.seed})` : 'none';
}

/** The Rng seed of one chunk of one block's matrix: 48 bits of sha256(seed, name, chunk). */
export function chunkSeed(seed: number, blockName: string, chunk: number): number {
  const hex = sha256Hex(canonicalJson(['tda-lab-projection', seed, blockName, chunk]));
  return parseInt(hex.slice(0, 12), 16);
}

/** Rows [chunk * CHUNK_ROWS, chunk * CHUNK_ROWS + rows) of a block's [dim, k] projection matrix, row-major. */
export function projectionChunk(spec: ProjectionSpec, blockName: string, chunk: number, rows: number): Float32Array {
  const k = spec.dim;
  const rng = new Rng(chunkSeed(spec.seed, blockName, chunk));
  const out = new Float32Array(rows * k);
  const scale = 1 / Math.sqrt(k);
  const n = out.length;
  let i = 0;
  if (spec.kind === 'gaussian') {
    // Marsaglia's polar method: two N(0, 1) values per accepted point of the unit disc.
    while (i < n) {
      const x = 2 * rng.next() - 1;
      const y = 2 * rng.next() - 1;
      const s = x * x + y * y;
      if (s >= 1 || s === 0) continue;
      const f = Math.sqrt((-2 * Math.log(s)) / s) * scale;
      out[i++] = x * f;
      if (i < n) out[i++] = y * f;
    }
  } else {
    // 32 signs per draw; arithmetic rather than a branch (random bits defeat branch prediction).
    while (i < n) {
      let bits = rng.nextUint32();
      const end = Math.min(i + 32, n);
      for (; i < end; i++) {
        out[i] = ((bits & 1) * 2 - 1) * scale;
        bits >>>= 1;
      }
    }
  }
  return out;
}

/** The whole [dim, k] matrix of a block. For small blocks (tests, teaching); project() never builds it. */
export function projectionMatrix(spec: ProjectionSpec, blockName: string, dim: number): Float32Array {
  const out = new Float32Array(dim * spec.dim);
  for (let c = 0; c * CHUNK_ROWS < dim; c++) {
    const rows = Math.min(CHUNK_ROWS, dim - c * CHUNK_ROWS);
    out.set(projectionChunk(spec, blockName, c, rows), c * CHUNK_ROWS * spec.dim);
  }
  return out;
}

export interface ProjectorOptions {
  /** Bytes of generated matrix chunks to keep for reuse across calls (default 256 MB; 0 disables). */
  cacheBytes?: number;
}

/**
 * Projects gradient blocks with one ProjectionSpec. Use the same spec (e.g. the one a
 * gradient store recorded, see GradientStore.projector()) for train and test gradients.
 * Holds tfjs tensors for its chunk cache: call dispose() when done.
 */
export class Projector {
  readonly spec: ProjectionSpec;
  private readonly cacheBytes: number;
  private readonly cache = new Map<string, tf.Tensor2D>();
  private cachedBytes = 0;

  constructor(spec: ProjectionSpec, opts: ProjectorOptions = {}) {
    this.spec = validateProjectionSpec(spec);
    this.cacheBytes = Math.max(0, opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  /** G [n, dim] -> G P [n, k]; the result has shape [k] and dim k. */
  project(block: GradientBlock): GradientBlock {
    const { name, dim } = block;
    const k = this.spec.dim;
    if (!Number.isSafeInteger(dim) || dim <= 0 || block.data.length % dim !== 0) {
      throw new TdaError(`block data has ${block.data.length} values, not a multiple of its dim ${dim}`, { field: name });
    }
    const n = block.data.length / dim;
    if (n === 0) return { name, shape: [k], dim: k, data: new Float32Array(0) };
    const chunks = Math.ceil(dim / CHUNK_ROWS);
    let acc: tf.Tensor2D | null = null;
    for (let c = 0; c < chunks; c++) {
      const lo = c * CHUNK_ROWS;
      const rows = Math.min(CHUNK_ROWS, dim - lo);
      const g = chunks === 1 ? block.data : columns(block.data, n, dim, lo, rows);
      const { matrix, cached } = this.chunkTensor(name, c, rows);
      const prev: tf.Tensor2D | null = acc;
      const next: tf.Tensor2D = tf.tidy(() => {
        const prod = tf.matMul(tf.tensor2d(g, [n, rows]), matrix) as tf.Tensor2D;
        return prev ? (tf.add(prev, prod) as tf.Tensor2D) : prod;
      });
      if (prev) prev.dispose();
      if (!cached) matrix.dispose();
      acc = next;
    }
    const out = acc as tf.Tensor2D;
    const data = new Float32Array(out.dataSync());
    out.dispose();
    return { name, shape: [k], dim: k, data };
  }

  /** Every block of a set projected; losses carried over. */
  projectSet(set: GradientSet): GradientSet {
    return { n: set.n, blocks: set.blocks.map((b) => this.project(b)), losses: set.losses };
  }

  /** Frees the cached matrix chunks. The projector stays usable (it regenerates them). */
  dispose(): void {
    this.cache.forEach((t) => t.dispose());
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /**
   * A chunk as a tensor, from the cache when present. The cache fills first-come and never
   * evicts: blocks are projected in the same order shard after shard, and under that cyclic
   * access an LRU would miss every time once the budget is exceeded.
   */
  private chunkTensor(name: string, chunk: number, rows: number): { matrix: tf.Tensor2D; cached: boolean } {
    const key = `${name}\u0000${chunk}\u0000${rows}`;
    const hit = this.cache.get(key);
    if (hit) return { matrix: hit, cached: true };
    const matrix = tf.tensor2d(projectionChunk(this.spec, name, chunk, rows), [rows, this.spec.dim]);
    const bytes = rows * this.spec.dim * 4;
    if (this.cachedBytes + bytes <= this.cacheBytes) {
      this.cache.set(key, matrix);
      this.cachedBytes += bytes;
      return { matrix, cached: true };
    }
    return { matrix, cached: false };
  }
}

/** Columns [lo, lo + rows) of a row-major [n, dim] matrix, as a row-major [n, rows] copy. */
function columns(data: Float32Array, n: number, dim: number, lo: number, rows: number): Float32Array {
  const out = new Float32Array(n * rows);
  for (let i = 0; i < n; i++) out.set(data.subarray(i * dim + lo, i * dim + lo + rows), i * rows);
  return out;
}
