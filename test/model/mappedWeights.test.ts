import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../../src/data/batch';
import { DType, SafetensorsFile, TensorToWrite, writeSafetensors } from '../../src/io/safetensors';
import { loadAdapter } from '../../src/model/adapter';
import { isMapped } from '../../src/model/baseWeights';
import { readModelConfig } from '../../src/model/config';
import { disposeBatchConstants, LlamaModel } from '../../src/model/llama';
import { computeLoraGradients } from '../../src/gradients/compute';
import { blockByName } from '../../src/gradients/types';
import { nativeAddon } from '../../src/runtime/nativeAddon';
import { nativeActive } from '../../src/runtime/backend';
import { FIXTURE_DIR, fixtureSequences, fixtureTensors, relativeL2, Tensors, tmpDir } from '../helpers/fixtures';

/** A checkpoint of the fixture's weights in `dtype`; `extra` tensors are stored beside them. */
function writeCheckpoint(dir: string, tensors: Tensors, dtype: DType, extra: Record<string, TensorToWrite> = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(FIXTURE_DIR, 'config.json'), path.join(dir, 'config.json'));
  const out: Record<string, TensorToWrite> = { ...extra };
  for (const [n, t] of tensors) out[n] = { dtype, shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, 'model.safetensors'), out);
  return dir;
}

function logitsOf(model: LlamaModel): Float32Array {
  const c = model.batchConstants(makeBatch(fixtureSequences(), 'full'));
  const out = tf.tidy(() => model.logits(model.hidden(c)).dataSync() as Float32Array);
  disposeBatchConstants(c);
  return Float32Array.from(out);
}

/** The weights in the heap (read and widened in JavaScript) against the same file mapped (widened natively). */
async function compareStorages(dir: string): Promise<{ logits: number; grads: number }> {
  const heap = LlamaModel.load(dir, { storage: 'heap' });
  const mapped = LlamaModel.load(dir, { storage: 'mapped' });
  try {
    assert.ok(isMapped(mapped.weights) && !isMapped(heap.weights));
    const logits = relativeL2(logitsOf(mapped), logitsOf(heap));
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), heap.config);
    const a = await computeLoraGradients(heap, adapter, fixtureSequences(), { workers: 0 });
    const b = await computeLoraGradients(mapped, adapter, fixtureSequences(), { workers: 0 });
    return { logits, grads: Math.max(...a.blocks.map((blk) => relativeL2(blockByName(b, blk.name).data, blk.data))) };
  } finally {
    heap.dispose();
    mapped.dispose();
  }
}

describe('memory-mapped weights (read in place by the native kernels)', function () {
  let work: string;
  before(function () {
    if (!nativeActive()) this.skip();
    work = tmpDir();
  });
  after(() => work && fs.rmSync(work, { recursive: true, force: true }));

  it('hold no linear or embedding weight in the heap, and give the reference fixture gradients', async () => {
    const before = tf.memory().numBytes;
    const model = LlamaModel.load(FIXTURE_DIR, { storage: 'mapped' });
    const cfg = model.config;
    const heapBytes = tf.memory().numBytes - before;
    // Norms, plus the [d, d] rotate-half matrix and its transpose: nothing else.
    assert.equal(heapBytes, 4 * (cfg.hiddenSize * (1 + 2 * cfg.numLayers) + 2 * cfg.headDim * cfg.headDim));
    const heapModel = LlamaModel.load(FIXTURE_DIR, { storage: 'heap' });
    assert.ok(relativeL2(logitsOf(model), logitsOf(heapModel)) < 1e-6);
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), cfg);
    const got = await computeLoraGradients(model, adapter, fixtureSequences(), { workers: 0 });
    const want = await computeLoraGradients(heapModel, adapter, fixtureSequences(), { workers: 0 });
    for (const b of want.blocks) assert.ok(relativeL2(blockByName(got, b.name).data, b.data) < 1e-5, b.name);
    model.dispose();
    heapModel.dispose();
  });

  for (const dtype of ['BF16', 'F16'] as const) {
    it(`${dtype} weights widened natively equal the JavaScript decoder's`, async () => {
      const r = await compareStorages(writeCheckpoint(path.join(work, dtype), fixtureTensors(), dtype));
      assert.ok(r.logits < 1e-6, `logits ${r.logits}`);
      assert.ok(r.grads < 1e-5, `gradients ${r.grads}`);
    });
  }

  it('float32 weights at offsets that are not a multiple of 4 are read correctly', async () => {
    // A one-byte tensor sorted first shifts every later tensor's data by one byte.
    const dir = writeCheckpoint(path.join(work, 'misaligned'), fixtureTensors(), 'F32', { '0.pad': { dtype: 'U8', shape: [1], data: new Uint8Array([7]) } });
    const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    assert.ok(f.names().some((n) => f.info(n).dtype === 'F32' && f.info(n).byteOffset % 4 !== 0), 'the test checkpoint must hold misaligned float32 data');
    f.close();
    const r = await compareStorages(dir);
    assert.ok(r.logits < 1e-6 && r.grads < 1e-5, JSON.stringify(r));
  });

  it('worker threads read the same mapping and give the same gradients', async () => {
    const model = LlamaModel.load(FIXTURE_DIR, { storage: 'mapped' });
    const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), readModelConfig(FIXTURE_DIR));
    const seqs = [...fixtureSequences(), ...fixtureSequences(), ...fixtureSequences()];
    const alone = await computeLoraGradients(model, adapter, seqs, { workers: 0, batchSize: 2 });
    const pooled = await computeLoraGradients(model, adapter, seqs, { workers: 2, batchSize: 2 });
    for (const b of alone.blocks) assert.deepEqual(blockByName(pooled, b.name).data, b.data);
    // One mapping per file per process: mapping the file again returns the model's id.
    const addon = nativeAddon()!;
    const id = addon.mapFile(path.join(FIXTURE_DIR, 'model.safetensors'));
    assert.deepEqual(model.weights.mappings, [id]);
    addon.unmapFile(id);
    model.dispose();
    // Disposing released the model's reference: the id is no longer mapped.
    assert.throws(() => addon.unmapFile(id), /not a mapped file/);
  });

  it('the native entry points refuse ranges outside the heap or the file, and name a missing file', () => {
    const addon = nativeAddon()!;
    const file = path.join(FIXTURE_DIR, 'model.safetensors');
    const size = fs.statSync(file).size;
    const id = addon.mapFile(file);
    const heap = new ArrayBuffer(4096);
    try {
      // W [16, 16] float32 = 1 KB: inside the file at 8, outside it near the end.
      assert.doesNotThrow(() => addon.externalLinear(heap, 0, 1024, 4, id, 8, 0, 16, 16, false));
      assert.throws(() => addon.externalLinear(heap, 0, 1024, 4, id, size - 512, 0, 16, 16, false), /outside its mapped file/);
      assert.throws(() => addon.externalLinear(heap, 0, 4000, 4, id, 8, 0, 16, 16, false), /output lies outside/);
      assert.throws(() => addon.externalLinear(heap, 2, 1024, 4, id, 8, 0, 16, 16, false), /input lies outside/);
      assert.throws(() => addon.externalLinear(heap, 0, 1024, 4, 999, 8, 0, 16, 16, false), /not mapped/);
      new Int32Array(heap, 0, 2).set([3, 16]);
      assert.throws(() => addon.externalRows(heap, 0, 2, 1024, id, 8, 0, 16, 16), /row id is outside/);
      new Int32Array(heap, 0, 2).set([3, 15]);
      addon.externalRows(heap, 0, 2, 1024, id, 8, 0, 16, 16);
      const bytes = fs.readFileSync(file);
      const row15 = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + 15 * 64, bytes.byteOffset + 8 + 16 * 64));
      assert.deepEqual(new Float32Array(heap, 1024 + 64, 16), row15);
    } finally {
      addon.unmapFile(id);
    }
    assert.throws(() => addon.mapFile(path.join(work, 'no-such.safetensors')), /cannot open .*no-such\.safetensors/);
  });
});
