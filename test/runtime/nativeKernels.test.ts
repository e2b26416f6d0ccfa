/**
 * The native OpenBLAS kernels (native/tda_native.c, src/runtime/nativeKernels.ts) against
 * XNNPACK (the wasm backend's own kernels) and against float64 brute force: every transpose
 * form and batch shape, the reference fixture's losses and gradients, gradDot and DataInf
 * scores; the addon's bounds checks; concurrent calls from two threads; the switch, worker
 * threads, and the fallback where the addon is absent.
 *
 * Where the addon is not built (no compiler or OpenBLAS), the tests that need it check that
 * forcing the native path is refused with what to install; CI sets TDA_LAB_REQUIRE_NATIVE=1,
 * which makes an absent addon a failure.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { DataInf } from '../../src/attribution/dataInf';
import { GradDot } from '../../src/attribution/gradDot';
import { StreamedProducts } from '../../src/attribution/linalg';
import { loadAdapter } from '../../src/model/adapter';
import { computeLoraGradients } from '../../src/gradients/compute';
import { blockByName } from '../../src/gradients/types';
import { computeLosses } from '../../src/model/loss';
import { LlamaModel } from '../../src/model/llama';
import { Rng } from '../../src/random';
import { bf16ToF32, f16ToF32 } from '../../src/io/half';
import { initBackend, nativeActive, NativeChoice } from '../../src/runtime/backend';
import { NativeAddon, nativeAddon, nativeAddonError, nativeAddonPath } from '../../src/runtime/nativeAddon';
import { QUERY_BLOCK } from '../../src/runtime/nativeProducts';
import { FIXTURE_DIR, fixtureSequences, relativeL2 } from '../helpers/fixtures';
import { chunked, randomGradients } from '../attribution/helpers';

const ROOT = path.join(__dirname, '..', '..');

/** Runs `f` with the native path on or off, then puts the default (auto) back. */
async function withNative<T>(choice: NativeChoice, f: () => T | Promise<T>): Promise<T> {
  await initBackend('wasm', { native: choice });
  try {
    return await f();
  } finally {
    await initBackend('wasm', { native: 'auto' });
  }
}

/**
 * The addon, or null after checking that the native path is refused with what to install
 * (the only thing to test where it is not built).
 */
async function addonOrRefusal(): Promise<NativeAddon | null> {
  const addon = nativeAddon();
  if (addon) return addon;
  await assert.rejects(initBackend('wasm', { native: 'on' }), /apt-get install gcc libopenblas-dev/);
  return null;
}

/** Float64 op(a) @ op(b) with numpy broadcasting of the batch dimensions, written out index by index. */
function referenceMatMul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], tA: boolean, tB: boolean): { data: Float64Array; shape: number[] } {
  const ra = aShape.length;
  const rb = bShape.length;
  const [ar, ac] = [aShape[ra - 2], aShape[ra - 1]];
  const [br, bc] = [bShape[rb - 2], bShape[rb - 1]];
  const m = tA ? ac : ar;
  const k = tA ? ar : ac;
  const n = tB ? br : bc;
  const outerA = aShape.slice(0, -2);
  const outerB = bShape.slice(0, -2);
  const rank = Math.max(outerA.length, outerB.length);
  const padA = [...new Array(rank - outerA.length).fill(1), ...outerA];
  const padB = [...new Array(rank - outerB.length).fill(1), ...outerB];
  const outer = padA.map((d, i) => Math.max(d, padB[i]));
  const count = outer.reduce((p, d) => p * d, 1);
  const data = new Float64Array(count * m * n);
  const flat = (idx: number[], dims: number[]) => idx.reduce((acc, v, i) => acc * dims[i] + (dims[i] === 1 ? 0 : v), 0);
  for (let o = 0; o < count; o++) {
    const idx: number[] = [];
    for (let d = rank - 1, rest = o; d >= 0; d--) {
      idx.unshift(rest % outer[d]);
      rest = Math.floor(rest / outer[d]);
    }
    const aBase = flat(idx, padA) * ar * ac;
    const bBase = flat(idx, padB) * br * bc;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[aBase + (tA ? p * ac + i : i * ac + p)] * b[bBase + (tB ? j * bc + p : p * bc + j)];
        data[(o * m + i) * n + j] = s;
      }
    }
  }
  return { data, shape: [...outer, m, n] };
}

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const size = shape.reduce((p, d) => p * d, 1);
  return tf.tensor(Float32Array.from({ length: size }, () => rng.normal()), shape);
}

/** [a shape, b shape] as stored (before the transpose flags), for m x k times k x n. */
function operandShapes(outerA: number[], outerB: number[], m: number, k: number, n: number, tA: boolean, tB: boolean): [number[], number[]] {
  return [
    [...outerA, ...(tA ? [k, m] : [m, k])],
    [...outerB, ...(tB ? [n, k] : [k, n])],
  ];
}

// Batch shapes: none, equal, broadcast either way, different ranks, and broadcast in two
// dimensions, which the wasm backend's own kernel gets wrong (it flattens the batch
// dimensions and so returns 3 matrices instead of 2 x 3): float64 is the only reference there.
const BATCHES: [number[], number[], boolean][] = [
  [[], [], true],
  [[3], [3], true],
  [[1], [4], true],
  [[4], [1], true],
  [[3], [], true],
  [[], [2, 2], true],
  [[2, 1], [1, 3], false],
];
const DIMS: [number, number, number][] = [
  [7, 5, 3],
  [1, 9, 4],
  [33, 1, 17],
  [64, 48, 80],
];

describe('native BLAS kernels', function () {
  this.timeout(300000);

  before(() => {
    if (process.env.TDA_LAB_REQUIRE_NATIVE === '1') assert.ok(nativeAddon(), `the native addon is required here: ${nativeAddonError()}`);
  });
  after(async () => initBackend('wasm', { native: 'auto' }));

  it('matmul: every transpose form and batch shape agrees with XNNPACK and float64 within 1e-5', async () => {
    if (!(await addonOrRefusal())) return;
    let cases = 0;
    let seed = 1;
    for (const [outerA, outerB, xnnpackBroadcasts] of BATCHES) {
      for (const [m, k, n] of DIMS) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            const [sa, sb] = operandShapes(outerA, outerB, m, k, n, tA, tB);
            const a = randomTensor(sa, seed++);
            const b = randomTensor(sb, seed++);
            const want = referenceMatMul(a.dataSync() as Float32Array, sa, b.dataSync() as Float32Array, sb, tA, tB);
            const run = (choice: NativeChoice) =>
              withNative(choice, () => {
                assert.equal(nativeActive(), choice === 'on');
                const c = tf.matMul(a, b, tA, tB);
                const out = { data: c.dataSync() as Float32Array, shape: c.shape };
                c.dispose();
                return out;
              });
            const native = await run('on');
            const label = `a ${sa}${tA ? 'ᵀ' : ''} b ${sb}${tB ? 'ᵀ' : ''}`;
            assert.deepEqual(native.shape, want.shape, label);
            assert.ok(relativeL2(native.data, want.data) < 1e-5, `${label}: native vs float64 ${relativeL2(native.data, want.data)}`);
            if (xnnpackBroadcasts) {
              const xnn = await run('off');
              assert.ok(relativeL2(native.data, xnn.data) < 1e-5, `${label}: native vs XNNPACK ${relativeL2(native.data, xnn.data)}`);
            }
            a.dispose();
            b.dispose();
            cases++;
          }
        }
      }
    }
    assert.equal(cases, BATCHES.length * DIMS.length * 4);
  });

  it('matmul gradients (which use the transpose flags) agree with XNNPACK within 1e-5', async () => {
    if (!(await addonOrRefusal())) return;
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      // Equal batches: tfjs's BatchMatMul gradient does not sum over broadcast dimensions.
      const [sa, sb] = operandShapes([3], [3], 12, 10, 6, tA, tB);
      const a = randomTensor(sa, 40);
      const b = randomTensor(sb, 41);
      const seedT = randomTensor([3, 12, 6], 42);
      const grads = (choice: NativeChoice) =>
        withNative(choice, () => {
          const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), seedT)))([a, b]);
          const out = g.map((t) => t.dataSync() as Float32Array);
          g.forEach((t) => t.dispose());
          return out;
        });
      const native = await grads('on');
      const xnn = await grads('off');
      native.forEach((g, i) => assert.ok(relativeL2(g, xnn[i]) < 1e-5, `transposeA=${tA} transposeB=${tB} input ${i}: ${relativeL2(g, xnn[i])}`));
    }
  });

  it('_FusedMatMul: native with a bias, the original kernel for activations; both match float64', async () => {
    if (!(await addonOrRefusal())) return;
    await initBackend('wasm', { native: 'on' });
    const a = randomTensor([2, 5, 7], 50);
    const b = randomTensor([2, 4, 7], 51); // used transposed: [2, 7, 4]
    const product = referenceMatMul(a.dataSync() as Float32Array, [2, 5, 7], b.dataSync() as Float32Array, [2, 4, 7], false, true).data;
    for (const biasLength of [4, 1]) {
      const bias = randomTensor([biasLength], 52 + biasLength);
      const bv = bias.dataSync();
      const got = tf.fused.matMul({ a: a as tf.Tensor3D, b: b as tf.Tensor3D, transposeB: true, bias }).dataSync();
      const want = product.map((v, i) => v + bv[biasLength === 1 ? 0 : i % 4]);
      assert.ok(relativeL2(got, want) < 1e-6, `bias of length ${biasLength}: ${relativeL2(got, want)}`);
    }
    // An activation goes to the wasm backend's own kernel.
    const c = randomTensor([2, 7, 4], 55);
    const relu = tf.fused.matMul({ a: a as tf.Tensor3D, b: c as tf.Tensor3D, activation: 'relu' }).dataSync();
    const plain = referenceMatMul(a.dataSync() as Float32Array, [2, 5, 7], c.dataSync() as Float32Array, [2, 7, 4], false, false).data.map((v) => Math.max(0, v));
    assert.ok(relativeL2(relu, plain) < 1e-6);
  });

  it('the reference fixture: losses and per-example gradients agree with XNNPACK within 1e-5', async () => {
    if (!(await addonOrRefusal())) return;
    const sequences = fixtureSequences();
    const run = (choice: NativeChoice) =>
      withNative(choice, async () => {
        const model = LlamaModel.load(FIXTURE_DIR);
        try {
          const adapter = loadAdapter(path.join(FIXTURE_DIR, 'adapter'), model.config);
          const losses = computeLosses(model, adapter, sequences, { batchSize: 3 });
          const grads = await computeLoraGradients(model, adapter, sequences, { batchSize: 3, workers: 0 });
          return { losses, grads };
        } finally {
          model.dispose();
        }
      });
    const native = await run('on');
    const xnn = await run('off');
    assert.ok(relativeL2(native.losses, xnn.losses) < 1e-5, `losses ${native.losses} vs ${xnn.losses}`);
    assert.ok(relativeL2(native.grads.losses, xnn.grads.losses) < 1e-5);
    assert.equal(native.grads.blocks.length, 8);
    for (const t of native.grads.blocks) {
      const key = t.name;
      const other = blockByName(xnn.grads, key);
      assert.ok(relativeL2(t.data, other.data) < 1e-5, `${key}: ${relativeL2(t.data, other.data)}`);
    }
  });

  it('gradDot and DataInf scores agree with XNNPACK within 1e-5', async () => {
    if (!(await addonOrRefusal())) return;
    const shapes = [[5000], [3, 4]]; // one block longer than a scoring slab
    const train = randomGradients(23, shapes, 61, 0.1);
    const test = randomGradients(3, shapes, 62, 0.1);
    const scores = (choice: NativeChoice) =>
      withNative(choice, () => {
        // On the native path the products are direct BLAS calls on the arrays.
        const probe = new StreamedProducts([{ data: new Float32Array(4), rows: 2, dim: 2 }]);
        assert.equal(probe.isNative, choice === 'on');
        probe.dispose();
        return [new GradDot({ workers: 0 }), new DataInf({ workers: 0 })].map((method) => {
          method.cache(chunked(train, 5));
          return method.attribute(test).data;
        });
      });
    const native = await scores('on');
    const xnn = await scores('off');
    assert.ok(relativeL2(native[0], xnn[0]) < 1e-5, `gradDot ${relativeL2(native[0], xnn[0])}`);
    assert.ok(relativeL2(native[1], xnn[1]) < 1e-5, `DataInf ${relativeL2(native[1], xnn[1])}`);
  });

  it('native scoring gives each query the same bits in any run that scores its whole query block (score --shard)', async () => {
    if (!(await addonOrRefusal())) return;
    await initBackend('wasm', { native: 'on' });
    const shapes = [[300], [7, 5]];
    const train = randomGradients(37, shapes, 71, 0.1);
    const B = QUERY_BLOCK;
    const nT = 2 * B + 44; // blocks of B, B and 44 queries
    const test = randomGradients(nT, shapes, 72, 0.1);
    const rows = (lo: number, hi: number) => test.blocks.map((b) => ({ data: b.data.slice(lo * b.dim, hi * b.dim), rows: hi - lo, dim: b.dim }));
    const chunk = train.blocks.map((b) => b.data);
    const run = (lo: number, hi: number) => {
      const p = new StreamedProducts(rows(lo, hi));
      assert.ok(p.isNative);
      const dot = p.dot(chunk, train.n);
      // dotInto writes the same numbers into columns of a wider matrix.
      const wide = new Float32Array((hi - lo) * (train.n + 5)).fill(7);
      p.dotInto(chunk, train.n, wide, train.n + 5, 3);
      for (let q = 0; q < hi - lo; q++) {
        assert.ok(wide.subarray(q * (train.n + 5) + 3, q * (train.n + 5) + 3 + train.n).every((v, i) => Object.is(v, dot[q * train.n + i])), 'dotInto');
        assert.deepEqual([wide[q * (train.n + 5)], wide[q * (train.n + 5) + 1], wide[q * (train.n + 5) + 2], wide[(q + 1) * (train.n + 5) - 2], wide[(q + 1) * (train.n + 5) - 1]], [7, 7, 7, 7, 7]);
      }
      p.accumulateDataInf(chunk, train.n, [0.3, 0.2]);
      p.accumulateDataInf(chunk, train.n, [0.3, 0.2]); // a second chunk adds to the first
      const updates = p.takeUpdates();
      p.dispose();
      return { dot, updates };
    };
    const whole = run(0, nT);
    for (const cuts of [[B, nT], [2 * B, nT], [B, 2 * B, nT]]) {
      let lo = 0;
      for (const hi of cuts) {
        const part = run(lo, hi);
        const n = train.n;
        assert.ok(part.dot.every((v, i) => Object.is(v, whole.dot[lo * n + i])), `dot, queries ${lo}..${hi}`);
        part.updates.forEach((u, l) => {
          const dim = test.blocks[l].dim;
          assert.ok(u.every((v, i) => Object.is(v, whole.updates[l][lo * dim + i])), `DataInf update of block ${l}, queries ${lo}..${hi}`);
        });
        lo = hi;
      }
    }
    // And the values themselves, against float64 sums.
    const d = (q: number, i: number) => test.blocks.reduce((s, b, l) => s + b.data.subarray(q * b.dim, (q + 1) * b.dim).reduce((t, x, j) => t + x * train.blocks[l].data[i * b.dim + j], 0), 0);
    for (const [q, i] of [[0, 0], [B + 3, 17], [nT - 1, 36]]) assert.ok(Math.abs(whole.dot[q * train.n + i] - d(q, i)) < 1e-5);
    const u = (l: number, lambda: number, q: number, j: number) => {
      const b = train.blocks[l];
      let s = 0;
      for (let i = 0; i < train.n; i++) {
        const g = b.data.subarray(i * b.dim, (i + 1) * b.dim);
        const dotq = test.blocks[l].data.subarray(q * b.dim, (q + 1) * b.dim).reduce((t, x, k) => t + x * g[k], 0);
        const sq = g.reduce((t, x) => t + x * x, 0);
        s += (2 * dotq * g[j]) / (lambda + sq);
      }
      return s;
    };
    for (const [l, lambda, q, j] of [[0, 0.3, 5, 100], [1, 0.2, nT - 1, 34]]) {
      const got = whole.updates[l][q * test.blocks[l].dim + j];
      assert.ok(Math.abs(got - u(l, lambda, q, j)) < 1e-5 * Math.max(1, Math.abs(got)), `update ${got} vs ${u(l, lambda, q, j)}`);
    }
  });

  it('the addon rejects matrices outside the memory, misaligned or malformed arguments, and touches nothing then', async () => {
    const addon = await addonOrRefusal();
    if (!addon) return;
    const mem = new ArrayBuffer(64);
    const f = new Float32Array(mem);
    f.set([1, 2, 3, 4], 0); // A at byte 0, [[1, 2], [3, 4]]
    f.set([5, 6, 7, 8], 4); // B at byte 16
    const off = (...o: number[]) => Float64Array.from(o);
    addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0), off(16), off(32));
    assert.deepEqual([...f.subarray(8, 12)], [19, 22, 43, 50]);
    addon.sgemmBatch(mem, true, false, 2, 2, 2, 1, 0, off(0), off(16), off(48));
    assert.deepEqual([...f.subarray(12, 16)], [26, 30, 38, 44], 'A transposed');
    const snapshot = Float32Array.from(f);
    const bad: [string, () => void][] = [
      ['C past the end', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0), off(16), off(52))],
      ['A past the end', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(56), off(16), off(32))],
      ['B far outside', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0), off(2 ** 40), off(32))],
      ['one bad offset among several', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0, 0), off(16, 16), off(32, 60))],
      ['misaligned', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(2), off(16), off(32))],
      ['negative offset', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(-4), off(16), off(32))],
      ['NaN offset', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(NaN), off(16), off(32))],
      ['fractional offset', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0.5), off(16), off(32))],
      ['offset arrays of different lengths', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, off(0, 0), off(16), off(32))],
      ['dimensions larger than the memory', () => addon.sgemmBatch(mem, false, false, 65536, 65536, 65536, 1, 0, off(0), off(0), off(0))],
      ['a dimension of 2^31', () => addon.sgemmBatch(mem, false, false, 2 ** 31, 1, 1, 1, 0, off(0), off(0), off(0))],
      ['a negative dimension', () => addon.sgemmBatch(mem, false, false, -1, 2, 2, 1, 0, off(0), off(16), off(32))],
      ['a fractional dimension', () => addon.sgemmBatch(mem, false, false, 1.5, 2, 2, 1, 0, off(0), off(16), off(32))],
      ['a typed array as the memory', () => addon.sgemmBatch(f as unknown as ArrayBuffer, false, false, 2, 2, 2, 1, 0, off(0), off(16), off(32))],
      ['offsets as a plain array', () => addon.sgemmBatch(mem, false, false, 2, 2, 2, 1, 0, [0] as unknown as Float64Array, off(16), off(32))],
      ['a missing argument', () => (addon.sgemmBatch as unknown as (...a: unknown[]) => void)(mem, false, false, 2, 2, 2, 1, 0, off(0), off(16))],
      ['zero threads', () => addon.setThreads(0)],
      // The fused elementwise kernels: op 0 is swiGlu (g, u -> out, [n]), op 6 cross-entropy
      // (logits, int32 labels -> loss, probs, [rows, V]).
      ['an elementwise output past the end', () => addon.elementwise(0, mem, off(0, 16, 56), Float64Array.of(4), 0)],
      ['an elementwise size larger than the memory', () => addon.elementwise(0, mem, off(0, 16, 32), Float64Array.of(2 ** 30), 0)],
      ['an unknown elementwise op', () => addon.elementwise(99, mem, off(0, 16, 32), Float64Array.of(4), 0)],
      ['too few elementwise operands', () => addon.elementwise(0, mem, off(0, 16), Float64Array.of(4), 0)],
      ['a fractional elementwise size', () => addon.elementwise(0, mem, off(0, 16, 32), Float64Array.of(1.5), 0)],
      ['sgemmArrays: C shorter than its matrix', () => addon.sgemmArrays(false, false, 2, 2, 2, 1, f.subarray(0, 4), f.subarray(4, 8), 0, f.subarray(8, 11))],
      ['sgemmArrays: A shorter than its matrix', () => addon.sgemmArrays(true, false, 2, 2, 3, 1, f.subarray(0, 4), f.subarray(4, 10), 0, f.subarray(10, 14))],
      ['sgemmArrays: a Float64Array', () => addon.sgemmArrays(false, false, 1, 1, 1, 1, new Float64Array(1) as unknown as Float32Array, f, 0, f)],
      ['rowSquaredNorms: out shorter than the rows', () => addon.rowSquaredNorms(f, 4, 4, new Float64Array(3))],
      ['rowSquaredNorms: A shorter than its size', () => addon.rowSquaredNorms(f.subarray(0, 15), 4, 4, new Float64Array(4))],
      ['a cross-entropy label outside the vocabulary', () => addon.elementwise(6, mem, off(0, 56, 48, 32), Float64Array.of(1, 2), 0)],
    ];
    new Int32Array(mem, 56, 1)[0] = 7; // the label that last case reads: 7 is not below V = 2
    snapshot.set(f);
    for (const [what, call] of bad) {
      assert.throws(call, RangeError, what);
      assert.deepEqual(f, snapshot, `${what}: the memory changed`);
    }
    // sgemmArrays on separate arrays: [[1, 2], [3, 4]] @ [[5, 6], [7, 8]]^T.
    const c = new Float32Array(4);
    addon.sgemmArrays(false, true, 2, 2, 2, 1, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), 0, c);
    assert.deepEqual([...c], [17, 23, 39, 53]);
    const norms = new Float64Array(2);
    addon.rowSquaredNorms(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 2, 5, norms);
    assert.deepEqual([...norms], [55, 330]);
    // A correct elementwise call does run: swiGlu of g = [1, 2] (byte 0), u = [5, 6] (byte 16) into bytes 32..40.
    addon.elementwise(0, mem, off(0, 16, 32), Float64Array.of(2), 0);
    const silu = (x: number) => x / (1 + Math.exp(-x));
    assert.ok(Math.abs(f[8] - silu(1) * 5) < 1e-5 && Math.abs(f[9] - silu(2) * 6) < 1e-5, `swiGlu ${f[8]}, ${f[9]}`);
    const info = addon.info();
    assert.match(info.config, /OpenBLAS/);
    assert.ok(info.threads >= 1 && info.library.length > 0);
  });

  it('sgemmStrided multiplies sub-matrices at offsets and leading dimensions as a float64 loop does, and rejects any outside its array', async () => {
    const addon = await addonOrRefusal();
    if (!addon) return;
    const rng = new Rng(81);
    const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]]) {
      const [m, n, k] = [5, 7, 9];
      // Stored shapes: A is m x k (k x m transposed), B k x n (n x k), each inside a wider array.
      const [aRows, aCols] = tA ? [k, m] : [m, k];
      const [bRows, bCols] = tB ? [n, k] : [k, n];
      const [lda, ldb, ldc] = [aCols + 3, bCols + 1, n + 4];
      const [ao, bo, co] = [2, 5, 3];
      const A = fill(ao + aRows * lda);
      const B = fill(bo + bRows * ldb);
      const C = fill(co + m * ldc + 2);
      const before = Float32Array.from(C);
      const [alpha, beta] = [0.5, 2];
      addon.sgemmStrided(tA, tB, m, n, k, alpha, A, ao, lda, B, bo, ldb, beta, C, co, ldc);
      const a = (i: number, p: number) => (tA ? A[ao + p * lda + i] : A[ao + i * lda + p]);
      const b = (p: number, j: number) => (tB ? B[bo + j * ldb + p] : B[bo + p * ldb + j]);
      for (let idx = 0; idx < C.length; idx++) {
        const r = idx - co;
        const [i, j] = [Math.floor(r / ldc), r - Math.floor(r / ldc) * ldc];
        if (r < 0 || i >= m || j >= n) {
          assert.equal(C[idx], before[idx], `element ${idx} outside C changed (tA ${tA}, tB ${tB})`);
          continue;
        }
        let want = beta * before[idx];
        for (let p = 0; p < k; p++) want += alpha * a(i, p) * b(p, j);
        assert.ok(Math.abs(C[idx] - want) < 1e-5 * (1 + Math.abs(want)), `C[${i}, ${j}] = ${C[idx]}, want ${want} (tA ${tA}, tB ${tB})`);
      }
    }
    // Large products are cut into parts shared by threads: the float64 result, and the same
    // bits with any number of threads (scores: the inner dimension is cut; updates: columns).
    for (const [tB, m, n, k] of [[true, 7, 300, 16384], [false, 7, 16384, 300]] as const) {
      const A = fill(m * k);
      const B = fill(n * k);
      const C0 = fill(m * n);
      const runs = [1, 2, 3, 8].map((threads) => {
        const C = Float32Array.from(C0);
        addon.sgemmStrided(false, tB, m, n, k, 0.5, A, 0, k, B, 0, tB ? k : n, 2, C, 0, n, threads);
        return C;
      });
      for (const [i, j] of [[0, 0], [3, 149], [3, 150], [6, n - 1]]) {
        let want = 2 * C0[i * n + j];
        for (let p = 0; p < k; p++) want += 0.5 * A[i * k + p] * (tB ? B[j * k + p] : B[p * n + j]);
        assert.ok(Math.abs(runs[0][i * n + j] - want) < 1e-3, `parts (tB ${tB}) C[${i}, ${j}] = ${runs[0][i * n + j]}, want ${want}`);
      }
      for (const C of runs.slice(1)) assert.ok(C.every((v, i) => Object.is(v, runs[0][i])), `tB ${tB}: the same bits with any number of threads`);
    }
    // k = 0: C = beta C on the sub-matrix only.
    const C0 = Float32Array.of(1, 2, 3, 4, 5, 6);
    addon.sgemmStrided(false, false, 2, 1, 0, 1, new Float32Array(0), 0, 1, new Float32Array(0), 0, 1, 3, C0, 1, 3);
    assert.deepEqual([...C0], [1, 6, 3, 4, 15, 6]);

    const f = Float32Array.from({ length: 16 }, (_, i) => i);
    const snapshot = Float32Array.from(f);
    const A = f.subarray(0, 8);
    const bad: [string, () => void][] = [
      ['C past the end', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 13, 2)],
      ['C rows past the end through ldc', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 0, 15)],
      ['A past the end through its offset', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 5, 2, A, 0, 2, 0, f, 8, 2)],
      ['A transposed past the end', () => addon.sgemmStrided(true, false, 2, 2, 3, 1, A, 0, 4, A, 0, 2, 0, f, 8, 2)],
      ['B transposed past the end', () => addon.sgemmStrided(false, true, 2, 3, 2, 1, A, 0, 2, A, 3, 2, 0, f, 8, 3)],
      ['lda below the row length', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 1, A, 0, 2, 0, f, 8, 2)],
      ['ldc below the row length', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 8, 1)],
      ['ldb of zero', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 0, 0, f, 8, 2)],
      ['a negative offset', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, -1, 2, A, 0, 2, 0, f, 8, 2)],
      ['a fractional offset', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0.5, 2, A, 0, 2, 0, f, 8, 2)],
      ['a huge offset', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 2 ** 60, 2, A, 0, 2, 0, f, 8, 2)],
      ['a dimension of 2^31', () => addon.sgemmStrided(false, false, 2 ** 31, 1, 1, 1, A, 0, 1, A, 0, 1, 0, f, 8, 1)],
      ['an empty C at an offset past the end', () => addon.sgemmStrided(false, false, 0, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 17, 2)],
      ['a Float64Array', () => addon.sgemmStrided(false, false, 1, 1, 1, 1, new Float64Array(1) as unknown as Float32Array, 0, 1, A, 0, 1, 0, f, 8, 1)],
      ['a missing argument', () => (addon.sgemmStrided as unknown as (...a: unknown[]) => void)(false, false, 1, 1, 1, 1, A, 0, 1, A, 0, 1, 0, f, 8)],
      ['zero threads', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 8, 2, 0)],
      ['65 threads', () => addon.sgemmStrided(false, false, 2, 2, 2, 1, A, 0, 2, A, 0, 2, 0, f, 8, 2, 65)],
      ['widenHalf: out shorter than src', () => addon.widenHalf(new Uint16Array(17), 1, f)],
      ['widenHalf: a Float32Array as BF16', () => addon.widenHalf(f, 1, new Float32Array(16))],
      ['widenHalf: an Int16Array', () => addon.widenHalf(new Int16Array(4) as unknown as Uint16Array, 2, f)],
      ['widenHalf: an unknown dtype', () => addon.widenHalf(new Uint16Array(4), 3 as 1, f)],
    ];
    for (const [what, call] of bad) {
      assert.throws(call, RangeError, what);
      assert.deepEqual(f, snapshot, `${what}: the memory changed`);
    }
  });

  it('widenHalf and widenHalfInPlace turn every BF16 and F16 bit pattern into the float32 the JavaScript decoders give', async () => {
    const addon = await addonOrRefusal();
    if (!addon) return;
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    for (const [dtype, ref] of [[1, bf16ToF32], [2, f16ToF32]] as const) {
      const out = new Float32Array(65536 + 3).fill(9);
      addon.widenHalf(all, dtype, out);
      for (let i = 0; i < 65536; i++) {
        const want = Math.fround(ref(i));
        assert.ok(Object.is(out[i], want) || (Number.isNaN(out[i]) && Number.isNaN(want)), `dtype ${dtype}, bits ${i.toString(16)}: ${out[i]} vs ${want}`);
      }
      assert.deepEqual([...out.subarray(65536)], [9, 9, 9], 'past the source: untouched');
    }
    // In place: the bit patterns in the second half of the array's bytes.
    for (const [dtype, ref] of [[1, bf16ToF32], [2, f16ToF32]] as const) {
      const out = new Float32Array(65536);
      new Uint16Array(out.buffer, 2 * 65536, 65536).set(all);
      addon.widenHalfInPlace(out, dtype);
      for (let i = 0; i < 65536; i++) {
        const want = Math.fround(ref(i));
        assert.ok(Object.is(out[i], want) || (Number.isNaN(out[i]) && Number.isNaN(want)), `in place, dtype ${dtype}, bits ${i.toString(16)}`);
      }
    }
    assert.throws(() => addon.widenHalfInPlace(new Float32Array(2), 0 as 1), RangeError);
    assert.throws(() => addon.widenHalfInPlace(new Uint16Array(4) as unknown as Float32Array, 1), RangeError);
    const f32 = Float32Array.of(1.5, -2, 3e-40);
    const copy = new Float32Array(3);
    addon.widenHalf(f32, 0, copy);
    assert.deepEqual(copy, f32);
  });

  it('readStart/readFinish read file ranges into arrays on a thread of their own, report short reads and errors, and refuse bad arguments', async () => {
    const addon = await addonOrRefusal();
    if (!addon) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tda-read-'));
    const at = (...p: number[]) => Float64Array.from(p);
    try {
      const file = path.join(dir, 'data.f32');
      const values = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5 - 7);
      fs.writeFileSync(file, Buffer.from(values.buffer));
      const fd = fs.openSync(file, 'r');
      try {
        // Two reads in flight at once; the first one fills two arrays, in order.
        const a = new Float32Array(300);
        const a2 = new Uint16Array(4);
        const b = new Float32Array(200);
        const ia = addon.readStart(fd, at(100 * 4, 0), [a, a2]);
        const ib = addon.readStart(fd, at(700 * 4), [b]);
        assert.equal(addon.readFinish(ib), 800);
        assert.equal(addon.readFinish(ia), 1208);
        assert.deepEqual(a, values.subarray(100, 400));
        assert.deepEqual(new Float32Array(a2.buffer), values.subarray(0, 2));
        assert.deepEqual(b, values.subarray(700, 900));
        // Past the end: the bytes that were there, the rest untouched.
        const c = new Float32Array(10).fill(3);
        assert.equal(addon.readFinish(addon.readStart(fd, at(995 * 4), [c])), 20);
        assert.deepEqual([...c], [...values.subarray(995), 3, 3, 3, 3, 3]);
        // A view into a larger buffer is filled at its own offset only.
        const big = new Float32Array(8).fill(-1);
        assert.equal(addon.readFinish(addon.readStart(fd, at(0), [big.subarray(2, 5)])), 12);
        assert.deepEqual([...big], [-1, -1, ...values.subarray(0, 3), -1, -1, -1]);
        assert.equal(addon.readFinish(addon.readStart(fd, at(0), [new Float32Array(0)])), 0);
        assert.equal(addon.readFinish(addon.readStart(fd, at(), [])), 0);
        // Many reads one after the other: each slot is given back.
        for (let i = 0; i < 40; i++) assert.equal(addon.readFinish(addon.readStart(fd, at(i * 4), [new Float32Array(1)])), 4);
      } finally {
        fs.closeSync(fd);
      }
      // A closed descriptor: the error comes from readFinish, with the system's message.
      assert.throws(() => addon.readFinish(addon.readStart(fd, at(0), [new Float32Array(4)])), /read failed: Bad file descriptor/);
      const bad: [string, () => void][] = [
        ['a negative fd', () => addon.readStart(-1, at(0), [new Float32Array(1)])],
        ['a fractional position', () => addon.readStart(0, at(0.5), [new Float32Array(1)])],
        ['a negative position', () => addon.readStart(0, at(-4), [new Float32Array(1)])],
        ['positions as a plain array', () => addon.readStart(0, [0] as unknown as Float64Array, [new Float32Array(1)])],
        ['more targets than positions', () => addon.readStart(0, at(0), [new Float32Array(1), new Float32Array(1)])],
        ['a plain array as a target', () => addon.readStart(0, at(0), [[0] as unknown as Float32Array])],
        ['an ArrayBuffer as a target', () => addon.readStart(0, at(0), [new ArrayBuffer(4) as unknown as Float32Array])],
        ['targets not an array', () => addon.readStart(0, at(0), new Float32Array(1) as unknown as Float32Array[])],
        ['a missing argument', () => (addon.readStart as unknown as (...a: unknown[]) => number)(0, at(0))],
        ['an id never started', () => addon.readFinish(15)],
        ['an id out of range', () => addon.readFinish(16)],
      ];
      for (const [what, call] of bad) assert.throws(call, RangeError, what);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two threads multiplying at once with one BLAS thread each get exact float64-checked results', async () => {
    const addon = await addonOrRefusal();
    if (!addon) return;
    // Each worker loads the addon itself and checks its own products many times over.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.file);
      addon.setThreads(1);
      const { m, n, k, seed } = workerData;
      const mem = new ArrayBuffer(4 * (m * k + k * n + m * n));
      const A = new Float32Array(mem, 0, m * k), B = new Float32Array(mem, 4 * m * k, k * n), C = new Float32Array(mem, 4 * (m * k + k * n), m * n);
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
      A.forEach((_, i) => (A[i] = rnd()));
      B.forEach((_, i) => (B[i] = rnd()));
      const ref = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) ref[i * n + j] += A[i * k + p] * B[p * n + j];
      let worst = 0;
      for (let it = 0; it < 300; it++) {
        C.fill(NaN);
        addon.sgemmBatch(mem, false, false, m, n, k, 1, 0, Float64Array.of(0), Float64Array.of(4 * m * k), Float64Array.of(4 * (m * k + k * n)));
        for (let i = 0; i < m * n; i++) { const e = Math.abs(C[i] - ref[i]); if (!(e <= worst)) worst = e; }
      }
      parentPort.postMessage(worst);
    `;
    const run = (seed: number) =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { file: nativeAddonPath(), m: 96 + seed, n: 80, k: 200, seed } });
        w.once('message', resolve);
        w.once('error', reject);
      });
    const worst = await Promise.all([run(1), run(2)]);
    worst.forEach((e, i) => assert.ok(e < 1e-4, `thread ${i}: largest error ${e}`));
  });

  it('the switch: off restores the wasm kernels, on replaces them, and worker threads take the same path', async () => {
    if (!(await addonOrRefusal())) return;
    const probe = () =>
      new Promise<{ native?: boolean; error?: string }>((resolve, reject) => {
        const w = new Worker(path.join(__dirname, 'nativeWorkerProbe.ts'), { execArgv: ['--require', require.resolve('tsx/cjs')] });
        w.once('message', (m) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      });
    await withNative('off', async () => {
      const xnnpack = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
      assert.equal(nativeActive(), false);
      assert.equal(process.env.TDA_LAB_NATIVE, '0');
      assert.deepEqual(await probe(), { native: false });
      await initBackend('wasm', { native: 'on' });
      assert.notEqual(tf.getKernel('BatchMatMul', 'wasm').kernelFunc, xnnpack);
      assert.deepEqual(await probe(), { native: true });
      await initBackend('wasm', { native: 'off' });
      assert.equal(tf.getKernel('BatchMatMul', 'wasm').kernelFunc, xnnpack);
    });
    await assert.rejects(initBackend('cpu', { native: 'on' }), /native kernels run on the wasm backend/);
    await initBackend('wasm');
  });

  it('without the addon: auto falls back to XNNPACK, on is refused with what to install, results still come', () => {
    const script = `
      const { initBackend, nativeActive } = require('./src/runtime/backend');
      const tf = require('@tensorflow/tfjs');
      (async () => {
        await initBackend('wasm');
        const out = { auto: nativeActive(), env: process.env.TDA_LAB_NATIVE };
        out.product = Array.from(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]]), false, true).dataSync());
        try { await initBackend('wasm', { native: 'on' }); out.on = 'accepted'; } catch (e) { out.on = e.message; }
        console.log(JSON.stringify(out));
      })();
    `;
    const r = spawnSync(process.execPath, ['--require', require.resolve('tsx/cjs'), '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, TDA_LAB_NATIVE: 'auto', TDA_LAB_NATIVE_ADDON: path.join(ROOT, 'native', 'build', 'absent.node') },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.auto, false);
    assert.equal(out.env, '0', 'workers started from there take the XNNPACK path too');
    assert.deepEqual(out.product, [17, 23, 39, 53]);
    assert.match(out.on, /native BLAS kernels are not available .*absent\.node was not built.*apt-get install gcc libopenblas-dev/);
  });

  it('TDA_LAB_NATIVE takes 0, 1, on, off, auto and refuses anything else, naming the variable', async () => {
    const saved = process.env.TDA_LAB_NATIVE;
    try {
      process.env.TDA_LAB_NATIVE = 'yes';
      await assert.rejects(initBackend('wasm'), /environment: 'TDA_LAB_NATIVE': must be 0, 1, on, off or auto/);
      process.env.TDA_LAB_NATIVE = 'off';
      await initBackend('wasm');
      assert.equal(nativeActive(), false);
      process.env.TDA_LAB_NATIVE = 'auto';
      await initBackend('wasm');
      assert.equal(nativeActive(), nativeAddon() !== null);
    } finally {
      process.env.TDA_LAB_NATIVE = saved;
      await initBackend('wasm', { native: 'auto' });
    }
  });
});
