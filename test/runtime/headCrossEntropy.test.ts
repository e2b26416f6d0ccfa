import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeActive, NativeChoice } from '../../src/runtime/backend';
import { nativeAddon } from '../../src/runtime/nativeAddon';
import { crossEntropyRows, FrozenMatrix, frozenLinear, headCrossEntropyRows } from '../../src/runtime/ops';
import { LlamaModel } from '../../src/model/llama';
import { llamaConfig, writeRandomCheckpoint } from '../../src/model/synthetic';
import { Rng } from '../../src/random';
import { assertAllClose, tmpDir } from '../helpers/fixtures';

/**
 * Float64 transcription of the definition: loss_i = logsumexp(h_i W^T) - (h_i W^T)[y_i] and
 * d(sum_i dy_i loss_i)/dh_i = dy_i (softmax(h_i W^T) - onehot(y_i)) W.
 */
function reference(h: Float32Array, w: Float32Array, labels: Int32Array, dy: Float32Array, n: number, d: number, V: number) {
  const loss = new Float64Array(n);
  const grad = new Float64Array(n * d);
  const z = new Float64Array(V);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += h[i * d + k] * w[v * d + k];
      z[v] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v] - max);
    loss[i] = max + Math.log(sum) - z[labels[i]];
    for (let v = 0; v < V; v++) {
      const g = (Math.exp(z[v] - max) / sum - (v === labels[i] ? 1 : 0)) * dy[i];
      for (let k = 0; k < d; k++) grad[i * d + k] += g * w[v * d + k];
    }
  }
  return { loss, grad };
}

const PATHS: NativeChoice[] = nativeAddon() ? ['on', 'off'] : ['off'];

for (const path of PATHS) describe(`headCrossEntropyRows (${path === 'on' ? 'native BLAS' : 'XNNPACK'} path)`, function () {
  this.timeout(120000);
  before(async () => {
    await initBackend('wasm', { native: path });
    assert.equal(nativeActive(), path === 'on');
  });
  after(async () => initBackend('wasm', { native: 'auto' }));

  // 400 rows of a 24,000-token vocabulary: three blocks of rows (174 per block), the last short.
  const n = 400;
  const d = 24;
  const V = 24000;
  const rng = new Rng(11);
  const h = Float32Array.from({ length: n * d }, () => rng.normal());
  const w = Float32Array.from({ length: V * d }, () => rng.normal() * 0.3);
  const labels = Int32Array.from({ length: n }, () => rng.int(V));
  const dy = Float32Array.from({ length: n }, () => rng.normal());
  const want = reference(h, w, labels, dy, n, d, V);

  for (const layout of ['wT', 'w', 'both'] as const) {
    it(`gives each row's loss and its gradient, block by block (head stored as ${layout})`, () => {
      const wTensor = tf.tensor2d(w, [V, d]);
      const head: FrozenMatrix = layout === 'w' ? { w: wTensor } : layout === 'wT' ? { wT: tf.transpose(wTensor) as tf.Tensor2D } : { w: wTensor, wT: tf.transpose(wTensor) as tf.Tensor2D };
      const before = tf.memory().numTensors;
      const hidden = tf.tensor2d(h, [n, d]);
      const upstream = tf.tensor1d(dy);
      const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => tf.sum(tf.mul(headCrossEntropyRows(x as tf.Tensor2D, head, labels), upstream)) as tf.Scalar)([hidden]);
      const loss = tf.tidy(() => headCrossEntropyRows(hidden, head, labels));
      assertAllClose(loss.dataSync(), want.loss, 'loss', 1e-5);
      assertAllClose(grads[0].dataSync(), want.grad, 'gradient', 1e-5);
      // The unfused form (logits, then crossEntropyRows) gives the same numbers to float32
      // rounding (the upstream scale is applied after the product instead of before).
      const plain = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(crossEntropyRows(frozenLinear(x as tf.Tensor2D, head), labels), upstream)) as tf.Scalar)([hidden]);
      assertAllClose(grads[0].dataSync(), plain[0].dataSync(), 'against crossEntropyRows', 1e-5);
      tf.dispose([value, ...grads, loss, ...plain, hidden, upstream]);
      assert.equal(tf.memory().numTensors, before, 'no tensor is left behind');
      tf.dispose([head.w, head.wT].filter((t): t is tf.Tensor2D => t !== undefined && !t.isDisposed));
    });
  }

  it('refuses labels outside the vocabulary and a label count that does not match', () => {
    const head: FrozenMatrix = { w: tf.zeros([5, 3]) as tf.Tensor2D };
    const x = tf.zeros([2, 3]) as tf.Tensor2D;
    assert.throws(() => headCrossEntropyRows(x, head, Int32Array.from([0, 5])), /label 5 is outside \[0, 5\)/);
    assert.throws(() => headCrossEntropyRows(x, head, Int32Array.from([0])), /1 labels for 2 rows/);
    tf.dispose([x, head.w!]);
  });
});

// Mapped weights exist on the native path only (CI builds it).
if (nativeAddon()) describe('headCrossEntropyRows with a memory-mapped LM head', function () {
  this.timeout(120000);
  before(async () => initBackend('wasm'));

  it('reads the head in place (BF16) and agrees with the float64 reference on its widened values', () => {
    const dir = tmpDir();
    try {
      const cfg = llamaConfig({ hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 8, vocabSize: 9000 });
      writeRandomCheckpoint(dir, cfg, 4, 'BF16');
      const model = LlamaModel.load(dir, { storage: 'mapped' });
      const heap = LlamaModel.load(dir, { storage: 'heap' });
      assert.ok(model.weights.lmHead.ext, 'the head stays in its file');
      const w = heap.weights.lmHead.w ? heap.weights.lmHead.w.dataSync() : (tf.transpose(heap.weights.lmHead.wT!).dataSync() as Float32Array);
      const n = 700; // two blocks of 466 rows
      const rng = new Rng(5);
      const h = Float32Array.from({ length: n * 16 }, () => rng.normal());
      const labels = Int32Array.from({ length: n }, () => rng.int(9000));
      const dy = Float32Array.from({ length: n }, () => rng.normal());
      const want = reference(h, Float32Array.from(w), labels, dy, n, 16, 9000);
      const hidden = tf.tensor2d(h, [n, 16]);
      const upstream = tf.tensor1d(dy);
      const grads = tf.grads((x: tf.Tensor) => tf.sum(tf.mul(headCrossEntropyRows(x as tf.Tensor2D, model.weights.lmHead, labels), upstream)) as tf.Scalar)([hidden]);
      assertAllClose(grads[0].dataSync(), want.grad, 'gradient', 1e-5);
      tf.dispose([...grads, hidden, upstream]);
      model.dispose();
      heap.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
