/**
 * A gradient store as the training side of scoring: its shards, one at a time, as the
 * chunks of a GradientSource, so a pass over the store holds the shard being scored and the
 * next one being read (plus what the scorer has in flight), never the whole store.
 */
import { checkFinite } from '../checks';
import { GradientStore } from './gradientStore';
import { type OwnedChunksSource } from '../types';

/**
 * Streams a complete store's shards in order. Each block of a shard is decoded into an
 * ArrayBuffer of its own (the safetensors reader allocates one per tensor) that nothing
 * else references, so the chunks are handed over (OwnedChunksSource) and scorers move them
 * to worker threads without copying. Spent buffers are simply dropped: a shard is small
 * next to the products it feeds. Non-finite gradients are an error naming the shard file
 * and the example. An incomplete store is refused here, before any work.
 */
export function storeSource(store: GradientStore): OwnedChunksSource {
  store.requireComplete();
  const blocks = store.blocks ?? [];
  return {
    n: store.n,
    blocks: blocks.map((b) => ({ name: b.name, shape: b.shape, dim: b.dim })),
    ownedChunks: true,
    chunks: function* () {
      for (const { index, start, set } of store.iterateShards()) {
        checkFinite(set, store.shardFile(index), start);
        yield { start, set };
      }
    },
  };
}
