import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataInf } from '../../src/attribution/dataInf';
import { GradDot } from '../../src/attribution/gradDot';
import { GradientStore, sha256Hex, StoreDType, storeSettings, storeSource } from '../../src/gradients/store';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/io/safetensors';
import { loadAdapter } from '../../src/model/adapter';
import { LlamaModel } from '../../src/model/llama';
import { tempDirs, throwsTda } from '../helpers/errors';
import { randomGradients } from './helpers';
import { writeStoreFixture } from './storeFixture';
import { assertTopKOfMatrix, rows } from './topKHelpers';
import { GradientSet, GradientSource, inMemorySource } from '../../src/gradients/types';

/** Examples [start, end) of a set, losses included. */
function slice(set: GradientSet, start: number, end: number): GradientSet {
  return {
    n: end - start,
    blocks: set.blocks.map((b) => ({ ...b, data: b.data.slice(start * b.dim, end * b.dim) })),
    losses: Float32Array.from({ length: end - start }, (_, i) => start + i),
  };
}

/** A store of precomputed gradients (synthetic hashes), `shards` of them imported. */
function syntheticStore(dir: string, set: GradientSet, shardSize: number, shards?: number[], dtype?: StoreDType): GradientStore {
  const store = GradientStore.open(dir, {
    modelHash: sha256Hex('model'),
    adapterHash: sha256Hex('adapter'),
    datasetHash: sha256Hex('dataset'),
    n: set.n,
    mask: 'response',
    shardSize,
    dtype,
  });
  for (const i of shards ?? Array.from({ length: store.shardCount }, (_, j) => j)) {
    store.importShard(i, slice(set, i * shardSize, Math.min(set.n, (i + 1) * shardSize)));
  }
  return store;
}

describe('gradient store as a streamed training source', function () {
  this.timeout(120000);
  const tmp = tempDirs('tda-store-source-');
  after(() => tmp.cleanup());
  // Store order on purpose not sorted by name (a grads file sorts its tensors).
  const train = randomGradients(29, [[3, 4], [5]], 41);
  train.blocks[0].name = 'z.lora_A.weight';
  train.blocks[1].name = 'a.lora_B.weight';
  const test = randomGradients(3, [[3, 4], [5]], 42);
  test.blocks.forEach((b, l) => (b.name = train.blocks[l].name));

  it('F32, BF16 and F16 shards stream (each read while the one before is used) to the stored values, and a pass stopped early leaves no read behind', () => {
    const round: Record<StoreDType, (x: number) => number> = {
      F32: (x) => Math.fround(x),
      BF16: (x) => bf16ToF32(f32ToBf16Bits(x)),
      F16: (x) => f16ToF32(f32ToF16Bits(x)),
    };
    for (const dtype of ['F32', 'BF16', 'F16'] as StoreDType[]) {
      const store = syntheticStore(tmp.make(), train, 8, undefined, dtype);
      const chunks = [...storeSource(store).chunks()];
      assert.deepEqual(chunks.map((c) => c.start), [0, 8, 16, 24]);
      for (const { start, set } of chunks) {
        set.blocks.forEach((b, l) => {
          const want = Float32Array.from(train.blocks[l].data.subarray(start * b.dim, (start + set.n) * b.dim), round[dtype]);
          assert.deepEqual(b.data, want, `${dtype}, block ${l}, chunk at ${start}`);
          assert.equal(b.data.byteOffset, 0);
          assert.equal(b.data.byteLength, b.data.buffer.byteLength, 'each block owns its buffer');
        });
        assert.deepEqual(set.losses, Float32Array.from({ length: set.n }, (_, i) => start + i));
      }
      // Stopping after the first shard, many times over: the read ahead is always finished.
      for (let i = 0; i < 40; i++) {
        for (const c of storeSource(store).chunks()) {
          assert.equal(c.start, 0);
          break;
        }
      }
      assert.equal(store.readShard(3).n, 5);
    }
  });

  it('streams the shards in order as owned chunks, equal to the imported gradients', () => {
    const store = syntheticStore(tmp.make(), train, 8);
    const src = storeSource(store);
    assert.equal(src.n, 29);
    assert.equal(src.ownedChunks, true);
    assert.deepEqual(src.blocks, [
      { name: 'z.lora_A.weight', shape: [3, 4], dim: 12 },
      { name: 'a.lora_B.weight', shape: [5], dim: 5 },
    ]);
    const chunks = [...src.chunks()];
    assert.deepEqual(
      chunks.map((c) => [c.start, c.set.n]),
      [
        [0, 8],
        [8, 8],
        [16, 8],
        [24, 5],
      ],
    );
    for (const { start, set } of chunks) {
      set.blocks.forEach((b, l) => {
        assert.deepEqual(b.data, train.blocks[l].data.subarray(start * b.dim, (start + set.n) * b.dim));
        // Each block owns its whole buffer: it can be moved to a worker as it is.
        assert.equal(b.data.byteOffset, 0);
        assert.equal(b.data.byteLength, b.data.buffer.byteLength);
      });
    }
  });

  it('top-k through the store equals the in-memory top-k and the sorted full matrix, in this thread and on 2 workers', () => {
    const store = syntheticStore(tmp.make(), train, 8);
    const memory = new GradDot({ workers: 0 });
    memory.cache(inMemorySource(train));
    const full = memory.attribute(test);
    for (const workers of [0, 2]) {
      // Record the chunk buffers to see that the workers got them moved, not copied.
      const src = storeSource(store);
      const buffers: ArrayBufferLike[] = [];
      const watched: GradientSource & { ownedChunks: true } = {
        ...src,
        chunks: function* () {
          for (const c of src.chunks()) {
            c.set.blocks.forEach((b) => buffers.push(b.data.buffer));
            yield c;
          }
        },
      };
      const m = new GradDot({ workers });
      m.cache(watched);
      const top = m.attributeTopK(test, 6);
      assert.deepEqual(rows(top).indices, rows(memory.attributeTopK(test, 6)).indices, `workers ${workers}`);
      assertTopKOfMatrix(top, m.attribute(test), 6, `workers ${workers}`);
      assert.ok(Array.from(top.scores).every((v, j) => Math.abs(v - full.data[Math.floor(j / 6) * 29 + top.indices[j]]) <= 1e-5 * Math.abs(v) + 1e-6));
      if (workers === 2) assert.ok(buffers.length > 0 && buffers.every((b) => b.byteLength === 0), 'chunks moved to the workers');
    }
  });

  it('an incomplete store is refused before any work, naming the directory and the missing shards', () => {
    const dir = tmp.make();
    const store = syntheticStore(dir, train, 8, [0, 2]);
    throwsTda(() => storeSource(store), dir, 'gradient store is incomplete: 2 of 4 shards missing (1, 3)');
  });

  it('non-finite gradients in a shard are an error naming the shard file and the example', () => {
    const bad = { ...train, blocks: train.blocks.map((b) => ({ ...b, data: b.data.slice() })) };
    bad.blocks[1].data[19 * 5 + 2] = Infinity;
    const dir = tmp.make();
    const m = new GradDot({ workers: 0 });
    m.cache(storeSource(syntheticStore(dir, bad, 8)));
    throwsTda(() => m.attributeTopK(test, 3), path.join(dir, 'shard-00002.safetensors'), "'a.lora_B.weight'", 'gradient of example 19 is Infinity');
  });

  it('importShard refuses shards of the wrong size, layout or without losses', () => {
    const dir = tmp.make();
    const store = syntheticStore(dir, train, 8, [0]);
    throwsTda(() => store.importShard(1, slice(train, 8, 15)), dir, "'n'", '8 examples, got 7');
    throwsTda(() => store.importShard(4, slice(train, 8, 16)), "'index'", 'in [0, 3]');
    throwsTda(() => store.importShard(1, { ...slice(train, 8, 16), losses: undefined }), "'losses'");
    const renamed = slice(train, 8, 16);
    renamed.blocks[0] = { ...renamed.blocks[0], name: 'other' };
    throwsTda(() => store.importShard(1, renamed), 'manifest.json', "'blocks'");
    assert.deepEqual(store.missingShards(), [1, 2, 3]);
    assert.ok(!fs.readdirSync(dir).some((f) => f.startsWith('shard-00001')), 'nothing written');
  });

  it('a store computed from a model: DataInf top-k through it equals the top-k of DataInf on all its gradients', async () => {
    const root = tmp.make();
    const fx = writeStoreFixture(root);
    const model = LlamaModel.load(fx.modelDir);
    try {
      const adapter = loadAdapter(fx.adapterDir, model.config);
      const store = GradientStore.open(path.join(root, 'store'), storeSettings({ modelDir: fx.modelDir, adapterDir: fx.adapterDir, examples: fx.examples, shardSize: 6 }));
      await store.compute(model, adapter, fx.examples, { batchSize: 3 });
      const all = store.readAll();
      const queries: GradientSet = { n: 3, blocks: all.blocks.map((b) => ({ ...b, data: b.data.slice(0, 3 * b.dim) })) };
      const streamed = new DataInf({ workers: 0 });
      streamed.cache(storeSource(store));
      const whole = new DataInf({ workers: 0 });
      whole.cache(inMemorySource(all));
      const top = streamed.attributeTopK(queries, 5);
      assertTopKOfMatrix(top, streamed.attribute(queries), 5);
      assert.deepEqual(rows(top).indices, rows(whole.attributeTopK(queries, 5)).indices);
      // Each query's own training example helps it most (it is the same example).
      assert.deepEqual(
        rows(top).indices.map((r) => r[0]),
        [0, 1, 2],
      );
    } finally {
      model.dispose();
    }
  });
});
