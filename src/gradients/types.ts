/**
 * Per-example gradients, the one representation from computation to scoring: a set of
 * blocks (one per LoRA tensor, or a projection of one), each [n, dim] row-major, plus the
 * examples' losses. The gradient computation yields them batch by batch, files and stores
 * hold them, and scorers read them as a GradientSource, chunk by chunk.
 */

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

/** Gradients as computed: the losses are always there. */
export type ComputedGradients = GradientSet & { losses: Float32Array };

/** A block's name and shape without its data. */
export type BlockLayout = Omit<GradientBlock, 'data'>;

/**
 * Training gradients that may not fit in memory: read in chunks of consecutive examples
 * (an in-memory GradientSet, a grads file, or a gradient store's shards).
 */
export interface GradientSource {
  n: number;
  blocks: BlockLayout[];
  chunks(): Iterable<{ start: number; set: GradientSet }>;
}

/**
 * A source whose chunks are handed over: every block array of every chunk owns its whole
 * ArrayBuffer, which the source never touches again until it comes back through
 * `recycle` (so it can read the next shard into it). Scorers can then move chunks to
 * worker threads without copying them. A plain GradientSource is copied instead.
 */
export interface OwnedChunksSource extends GradientSource {
  ownedChunks: true;
  recycle?(buffer: ArrayBuffer): void;
}

export function ownsChunks(train: GradientSource): train is OwnedChunksSource {
  return (train as Partial<OwnedChunksSource>).ownedChunks === true;
}

/** The block named `name` of a set (an Error if it has none). */
export function blockByName(set: GradientSet, name: string): GradientBlock {
  const b = set.blocks.find((x) => x.name === name);
  if (!b) throw new Error(`no gradient block '${name}' (blocks: ${set.blocks.map((x) => x.name).join(', ')})`);
  return b;
}

/** A GradientSet seen as a source with one chunk. */
export function inMemorySource(set: GradientSet): GradientSource {
  return {
    n: set.n,
    blocks: set.blocks.map((b) => ({ name: b.name, shape: b.shape, dim: b.dim })),
    chunks: () => [{ start: 0, set }],
  };
}

/** Examples [start, end) of a gradient set (copies). */
export function sliceExamples(set: GradientSet, start: number, end: number): GradientSet {
  return {
    n: end - start,
    blocks: set.blocks.map((b) => ({ ...b, data: b.data.slice(start * b.dim, end * b.dim) })),
    losses: set.losses?.slice(start, end),
  };
}

/** A copy of a GradientSet's structure with new block data. */
export function withBlocks(set: GradientSet, data: Float32Array[]): GradientSet {
  return { n: set.n, blocks: set.blocks.map((b, l) => ({ ...b, data: data[l] })) };
}
