import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeActive, NativeChoice } from '../../src/runtime/backend';
import { nativeAddon } from '../../src/runtime/nativeAddon';
import { attentionCore } from '../../src/runtime/attention';
import {
  batchMatMul,
  crossEntropyRows,
  download,
  frozenLinear,
  frozenFromHf,
  gatherRows,
  matMul2d,
  oneHotFloat,
  perExampleLowRank,
  addSame,
  readFloat32,
  rmsNorm,
  rotary,
  swiGlu,
  readInt32,
  transpose2d,
} from '../../src/runtime/ops';
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

// Ops with two arrangements (explicit transposes and per-pair attention on XNNPACK;
// transpose flags, one weight layout and batched attention on native BLAS) are checked on
// both paths; the native one where the addon is built (CI requires it).
const PATHS: NativeChoice[] = nativeAddon() ? ['on', 'off'] : ['off'];

for (const path of PATHS) describe(`runtime ops (${path === 'on' ? 'native BLAS' : 'XNNPACK'} path)`, () => {
  before(async () => {
    await initBackend('wasm', { native: path });
    assert.equal(nativeActive(), path === 'on');
  });
  after(async () => initBackend('wasm', { native: 'auto' }));

  it('matMul2d and batchMatMul give the same values and gradients as tf.matMul', () => {
    const a = tf.randomNormal([5, 7], 0, 1, 'float32', 1);
    const b = tf.randomNormal([7, 3], 0, 1, 'float32', 2);
    compareGrads((x, y) => matMul2d(x as tf.Tensor2D, y as tf.Tensor2D), (x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), [a, b]);
    const a3 = tf.randomNormal([4, 5, 7], 0, 1, 'float32', 3);
    const b3 = tf.randomNormal([4, 7, 3], 0, 1, 'float32', 4);
    compareGrads((x, y) => batchMatMul(x as tf.Tensor3D, y as tf.Tensor3D), (x, y) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D), [a3, b3]);
  });

  it('frozenLinear is x @ W^T with a gradient for x only, in both stored layouts', () => {
    const w = tf.randomNormal([6, 4], 0, 1, 'float32', 5) as tf.Tensor2D;
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 6);
    const plain = (xx: tf.Tensor) => tf.matMul(xx as tf.Tensor2D, tf.transpose(w));
    const stored = frozenFromHf(tf.clone(w), false);
    assert.deepStrictEqual(stored.wT?.shape, [4, 6]);
    compareGrads((xx) => frozenLinear(xx as tf.Tensor2D, stored), plain, [x]);
    compareGrads((xx) => frozenLinear(xx as tf.Tensor2D, { w }), plain, [x]);
    const pair = frozenFromHf(tf.clone(w), true);
    compareGrads((xx) => frozenLinear(xx as tf.Tensor2D, pair), plain, [x]);
  });

  it('gatherRows selects rows and scatters gradients back, repeated ids included', () => {
    const table = tf.randomNormal([6, 3], 0, 1, 'float32', 8);
    const ids = tf.tensor1d([4, 0, 4, 2], 'int32');
    const plain = (t: tf.Tensor) => tf.matMul(oneHotFloat(ids, 6), t as tf.Tensor2D); // selection as a product
    compareGrads((t) => gatherRows(t as tf.Tensor2D, ids), plain, [table]);
  });

  it('perExampleLowRank (2-D products with a block mask) equals the batched per-example product, values and gradients', () => {
    const [B, T, inF, r, out] = [3, 4, 5, 2, 6];
    const x = tf.randomNormal([B * T, inF], 0, 1, 'float32', 11);
    const aT = tf.randomNormal([B, inF, r], 0, 1, 'float32', 12); // distinct copies: the arrangement must not assume equal ones
    const bT = tf.randomNormal([B, r, out], 0, 1, 'float32', 13);
    compareGrads(
      (xx, a, b) => perExampleLowRank(xx as tf.Tensor2D, a as tf.Tensor3D, b as tf.Tensor3D, T),
      (xx, a, b) => tf.reshape(tf.matMul(tf.matMul(tf.reshape(xx, [B, T, inF]) as tf.Tensor3D, a as tf.Tensor3D), b as tf.Tensor3D), [B * T, out]),
      [x, aT, bT],
    );
  });

  it('perExampleLowRank with the shared factors the copies equal gives the same values and per-example gradients', () => {
    const [B, T, inF, r, out] = [3, 4, 5, 2, 6];
    const x = tf.randomNormal([B * T, inF], 0, 1, 'float32', 14);
    const a = tf.randomNormal([inF, r], 0, 1, 'float32', 15) as tf.Tensor2D;
    const b = tf.randomNormal([r, out], 0, 1, 'float32', 16) as tf.Tensor2D;
    const aT = tf.tile(tf.expandDims(a, 0), [B, 1, 1]);
    const bT = tf.tile(tf.expandDims(b, 0), [B, 1, 1]);
    compareGrads(
      (xx, aa, bb) => perExampleLowRank(xx as tf.Tensor2D, aa as tf.Tensor3D, bb as tf.Tensor3D, T, 0.5, { aT: a, bT: b }),
      (xx, aa, bb) => perExampleLowRank(xx as tf.Tensor2D, aa as tf.Tensor3D, bb as tf.Tensor3D, T, 0.5),
      [x, aT, bT],
    );
  });

  for (const [H, Hkv] of [
    [4, 4],
    [4, 2],
    [6, 1],
  ]) {
    it(`attentionCore equals softmax(q k^T / sqrt(d) + bias) v per example and head, values and gradients (H=${H}, Hkv=${Hkv})`, () => {
      const [B, T, d] = [2, 5, 4];
      const g = H / Hkv;
      const q = tf.randomNormal([B * T, H * d], 0, 1, 'float32', 21);
      const k = tf.randomNormal([B * T, Hkv * d], 0, 1, 'float32', 22);
      const v = tf.randomNormal([B * T, Hkv * d], 0, 1, 'float32', 23);
      const biasData = new Float32Array(B * T * T);
      for (let b = 0; b < B; b++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) biasData[(b * T + i) * T + j] = j <= i && j < T - b ? 0 : -1e9;
      const bias = tf.tensor4d(biasData, [B, 1, T, T]);
      const plain = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => {
        const q4 = tf.transpose(tf.reshape(qq, [B, T, H, d]), [0, 2, 1, 3]); // [B, H, T, d]
        // Head h reads K/V head floor(h / g): an expansion matrix [Hkv, H] applied on the head axis.
        const expand = tf.tensor2d(Array.from({ length: Hkv * H }, (_, i) => (Math.floor((i % H) / g) === Math.floor(i / H) ? 1 : 0)), [Hkv, H]);
        const rep = (t: tf.Tensor) => {
          const cols = tf.reshape(tf.transpose(tf.reshape(t, [B, T, Hkv, d]), [0, 1, 3, 2]), [B * T * d, Hkv]) as tf.Tensor2D;
          return tf.transpose(tf.reshape(tf.matMul(cols, expand), [B, T, d, H]), [0, 3, 1, 2]); // [B, H, T, d]
        };
        const s = tf.add(tf.div(tf.matMul(q4 as tf.Tensor4D, rep(kk) as tf.Tensor4D, false, true), Math.sqrt(d)), bias);
        const o = tf.matMul(tf.softmax(s) as tf.Tensor4D, rep(vv) as tf.Tensor4D);
        return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * T, H * d]);
      };
      const shape = { batchSize: B, seqLen: T, numHeads: H, numKvHeads: Hkv, headDim: d };
      compareGrads((qq, kk, vv) => attentionCore(qq as tf.Tensor2D, kk as tf.Tensor2D, vv as tf.Tensor2D, bias, shape), plain, [q, k, v]);
    });
  }

  it('fused layer ops (addSame, rmsNorm, swiGlu, rotary) equal their plain tfjs expressions, values and gradients', () => {
    const x = tf.randomNormal([5, 6], 0, 1, 'float32', 51);
    const y = tf.randomNormal([5, 6], 0, 1, 'float32', 52);
    const w = tf.randomNormal([6], 1, 0.3, 'float32', 53) as tf.Tensor1D;
    compareGrads((a, b) => addSame(a, b), (a, b) => tf.add(a, b), [x, y]);
    const plainNorm = (a: tf.Tensor, ww: tf.Tensor) => tf.mul(tf.mul(a, tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), 1e-5))), ww);
    compareGrads((a) => rmsNorm(a as tf.Tensor2D, w, 1e-5), (a) => plainNorm(a, w), [x]);
    compareGrads((a, ww) => rmsNorm(a as tf.Tensor2D, ww as tf.Tensor1D, 1e-5, true), plainNorm, [x, w]);
    compareGrads((g, u) => swiGlu(g as tf.Tensor2D, u as tf.Tensor2D), (g, u) => tf.mul(tf.mul(g, tf.sigmoid(g)), u), [x, y]);
    const [B, T, heads, d] = [2, 3, 2, 4];
    const q = tf.randomNormal([B * T, heads * d], 0, 1, 'float32', 54);
    const cos = tf.randomNormal([1, T, 1, d], 0, 1, 'float32', 55) as tf.Tensor4D;
    const sin = tf.randomNormal([1, T, 1, d], 0, 1, 'float32', 56) as tf.Tensor4D;
    const r = tf.randomNormal([d, d], 0, 1, 'float32', 57) as tf.Tensor2D;
    const rot = { r: tf.transpose(r) as tf.Tensor2D, rT: r };
    compareGrads(
      (a) => rotary(a as tf.Tensor2D, cos, sin, rot, B, T, heads),
      (a) => {
        const a4 = tf.reshape(a, [B, T, heads, d]);
        const rotated = tf.reshape(tf.matMul(tf.reshape(a, [-1, d]) as tf.Tensor2D, r, false, true), [B, T, heads, d]);
        return tf.reshape(tf.add(tf.mul(a4, cos), tf.mul(rotated, sin)), [B * T, heads * d]);
      },
      [q],
    );
    // The rotate-half matrix the model uses (applied by index on the native path).
    const half = new Float32Array(d * d);
    for (let j = 0; j < d / 2; j++) {
      half[(j + d / 2) * d + j] = -1;
      half[j * d + j + d / 2] = 1;
    }
    const rh = tf.tensor2d(half, [d, d]);
    const halfRotation = { r: rh, rT: tf.transpose(rh) as tf.Tensor2D, rotateHalf: true };
    compareGrads(
      (a) => rotary(a as tf.Tensor2D, cos, sin, halfRotation, B, T, heads),
      (a) => {
        const a4 = tf.reshape(a, [B, T, heads, d]);
        const [x1, x2] = tf.split(a4, 2, 3);
        return tf.reshape(tf.add(tf.mul(a4, cos), tf.mul(tf.concat([tf.neg(x2), x1], 3), sin)), [B * T, heads * d]);
      },
      [q],
    );
  });

  it('crossEntropyRows equals -log softmax at the target, with its gradient', () => {
    const logits = tf.mul(tf.randomNormal([4, 9], 0, 1, 'float32', 31), 5);
    const labels = Int32Array.from([3, 0, 8, 3]);
    const targets = oneHotFloat(tf.tensor1d(labels, 'int32'), 9);
    compareGrads(
      (l) => crossEntropyRows(l as tf.Tensor2D, labels),
      (l) => tf.neg(tf.sum(tf.mul(tf.logSoftmax(l), targets), 1)),
      [logits],
    );
    assert.throws(() => crossEntropyRows(logits as tf.Tensor2D, Int32Array.from([0, 1, 9, 2])), /label 9/);
  });

  it('readFloat32, readInt32, download and transpose2d agree with dataSync and tf.transpose', () => {
    const a = tf.randomNormal([7, 5], 0, 1, 'float32', 41);
    assert.deepEqual([...readFloat32(a)], [...a.dataSync()]);
    const i = tf.tensor1d([3, -1, 7], 'int32');
    assert.deepEqual([...readInt32(i)], [3, -1, 7]);
    assert.deepEqual([...download(() => transpose2d(a as tf.Tensor2D))], [...tf.transpose(a).dataSync()]);
    const copy = readFloat32(a);
    copy[0] = 123;
    assert.notEqual(a.dataSync()[0], 123, 'readFloat32 returns a copy');
  });

  it('the new ops leak no tensors', () => {
    const before = tf.memory().numTensors;
    const x = tf.randomNormal([6, 5]);
    const aT = tf.randomNormal([2, 5, 2]);
    const bT = tf.randomNormal([2, 2, 4]);
    const q = tf.randomNormal([6, 8]);
    const bias = tf.zeros([2, 1, 3, 3]) as tf.Tensor4D;
    const g = tf.grads((xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor, qq: tf.Tensor) =>
      tf.add(
        tf.sum(crossEntropyRows(qq as tf.Tensor2D, Int32Array.from([1, 2, 3, 4, 5, 6]))),
        tf.add(
          tf.sum(perExampleLowRank(xx as tf.Tensor2D, a as tf.Tensor3D, b as tf.Tensor3D, 3)),
          tf.sum(attentionCore(qq as tf.Tensor2D, qq as tf.Tensor2D, qq as tf.Tensor2D, bias, { batchSize: 2, seqLen: 3, numHeads: 2, numKvHeads: 2, headDim: 4 })),
        ),
      ) as tf.Scalar,
    )([x, aT, bT, q]);
    g.forEach((t) => t.dispose());
    [x, aT, bT, q, bias].forEach((t) => t.dispose());
    assert.equal(tf.memory().numTensors, before);
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
