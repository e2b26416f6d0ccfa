import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend';
import { batchMatMul, frozenLinear, frozenMatrix, gatherRows, matMul2d, oneHotFloat } from '../../src/runtime/ops';
import { relativeL2 } from '../helpers/fixtures';

/** Reference gradients from tfjs's own (flag-based) autodiff of the plain expression. */
function compareGrads(custom: (...xs: tf.Tensor[]) => tf.Tensor, plain: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]) {
  const seed = tf.randomNormal(tf.tidy(() => plain(...inputs)).shape, 0, 1, 'float32', 7);
  const loss = (f: (...xs: tf.Tensor[]) => tf.Tensor) => (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), seed)) as tf.Scalar;
  const got = tf.grads(loss(custom))(inputs);
  const want = tf.grads(loss(plain))(inputs);
  got.forEach((g, i) => assert.ok(relativeL2(g.dataSync(), want[i].dataSync()) < 1e-5, `input ${i}`));
  assert.ok(relativeL2(custom(...inputs).dataSync(), plain(...inputs).dataSync()) < 1e-6);
}

describe('runtime ops (gradients with explicit transposes)', () => {
  it('matMul2d and batchMatMul give the same values and gradients as tf.matMul', () => {
    const a = tf.randomNormal([5, 7], 0, 1, 'float32', 1);
    const b = tf.randomNormal([7, 3], 0, 1, 'float32', 2);
    compareGrads((x, y) => matMul2d(x as tf.Tensor2D, y as tf.Tensor2D), (x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), [a, b]);
    const a3 = tf.randomNormal([4, 5, 7], 0, 1, 'float32', 3);
    const b3 = tf.randomNormal([4, 7, 3], 0, 1, 'float32', 4);
    compareGrads((x, y) => batchMatMul(x as tf.Tensor3D, y as tf.Tensor3D), (x, y) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D), [a3, b3]);
  });

  it('frozenLinear is x @ W^T with a gradient for x only', () => {
    const w = tf.randomNormal([6, 4], 0, 1, 'float32', 5) as tf.Tensor2D;
    const m = frozenMatrix(w);
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 6);
    compareGrads((xx) => frozenLinear(xx as tf.Tensor2D, m), (xx) => tf.matMul(xx as tf.Tensor2D, tf.transpose(w)), [x]);
  });

  it('gatherRows selects rows and scatters gradients back, repeated ids included', () => {
    const table = tf.randomNormal([6, 3], 0, 1, 'float32', 8);
    const ids = tf.tensor1d([4, 0, 4, 2], 'int32');
    const plain = (t: tf.Tensor) => tf.matMul(oneHotFloat(ids, 6), t as tf.Tensor2D); // selection as a product
    compareGrads((t) => gatherRows(t as tf.Tensor2D, ids), plain, [table]);
  });

  it('oneHotFloat holds real 0/1 floats (the wasm kernel writes integer bits for float dtype)', () => {
    assert.deepEqual([...oneHotFloat(tf.tensor1d([2, 0], 'int32'), 3).dataSync()], [0, 0, 1, 1, 0, 0]);
  });
});

describe('backend selection', () => {
  after(async () => initBackend('wasm'));

  it('starts the requested backend and reports it', async () => {
    assert.equal(await initBackend('cpu'), 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(await initBackend('wasm'), 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
  });

  it('refuses a backend that is not installed instead of falling back', async () => {
    await assert.rejects(initBackend('tensorflow'), /backend 'tensorflow' is not available/);
  });
});
