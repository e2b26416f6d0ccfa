import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { CHUNK_ROWS, Projector, ProjectionSpec, projectionChunk, projectionMatrix, validateProjectionSpec } from '../../src/gradients/store';
import { TdaError } from '../../src/errors';
import { Rng } from '../../src/random';
import { GradientBlock } from '../../src/gradients/types';
import { assertAllClose } from '../helpers/fixtures';

/** n random rows of dimension dim sharing a common direction, so their cosines vary (0 to ~0.8). */
function correlatedBlock(n: number, dim: number, seed: number, name = 'block'): GradientBlock {
  const rng = new Rng(seed);
  const common = Float32Array.from({ length: dim }, () => rng.normal());
  const data = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const w = (2 * i) / n;
    for (let j = 0; j < dim; j++) data[i * dim + j] = w * common[j] + rng.normal();
  }
  return { name, shape: [dim], dim, data };
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) s += a[i * dim + t] * b[j * dim + t];
  return s;
}

/** Project with a fresh projector and free it. */
function project(spec: ProjectionSpec, block: GradientBlock): GradientBlock {
  const p = new Projector(spec);
  try {
    return p.project(block);
  } finally {
    p.dispose();
  }
}

function rows(block: GradientBlock, lo: number, hi: number): GradientBlock {
  return { ...block, data: block.data.slice(lo * block.dim, hi * block.dim) };
}

describe('attribution/store: random projection', () => {
  const g: ProjectionSpec = { kind: 'gaussian', dim: 64, seed: 1 };
  const r: ProjectionSpec = { kind: 'rademacher', dim: 64, seed: 1 };

  it('is deterministic per (seed, block name) and differs across seeds, names and kinds', () => {
    const block = correlatedBlock(5, 300, 2);
    for (const spec of [g, r]) {
      const a = project(spec, block);
      const b = project({ ...spec }, block);
      assert.deepEqual(a.data, b.data);
      assert.deepEqual(a.shape, [64]);
      assert.equal(a.dim, 64);
      assert.equal(a.name, 'block');
      assert.notDeepEqual(project({ ...spec, seed: 2 }, block).data, a.data);
      assert.notDeepEqual(project(spec, { ...block, name: 'other' }).data, a.data);
    }
    assert.notDeepEqual(project(g, block).data, project(r, block).data);
    assert.deepEqual(projectionMatrix(g, 'x', 10), projectionMatrix(g, 'x', 10));
  });

  it('draws N(0, 1/k) or +-1/sqrt(k) entries', () => {
    const k = 256;
    const gm = projectionMatrix({ ...g, dim: k }, 'w', 200); // 51,200 entries
    const mean = gm.reduce((a, v) => a + v, 0) / gm.length;
    const variance = gm.reduce((a, v) => a + v * v, 0) / gm.length;
    // Sampling sd of the mean is sqrt(1/k / N) = 2.8e-4 and of the variance ~ sqrt(2/N)/k = 2.4e-5: 6 sd bounds.
    assert.ok(Math.abs(mean) < 6 * Math.sqrt(1 / k / gm.length), `mean ${mean}`);
    assert.ok(Math.abs(variance - 1 / k) < (6 * Math.sqrt(2 / gm.length)) / k, `variance ${variance}`);
    const rm = projectionMatrix({ ...r, dim: k }, 'w', 200);
    const s = Math.fround(1 / Math.sqrt(k));
    assert.ok(rm.every((v) => v === s || v === -s));
    const plus = rm.filter((v) => v > 0).length / rm.length;
    assert.ok(Math.abs(plus - 0.5) < 6 * Math.sqrt(0.25 / rm.length), `share of +: ${plus}`);
  });

  it('equals the dense product G P, generated chunk by chunk', () => {
    const dim = CHUNK_ROWS * 2 + 300; // three chunks, the last one partial
    const block = correlatedBlock(4, dim, 3);
    for (const spec of [g, r]) {
      const P = projectionMatrix(spec, block.name, dim);
      assert.deepEqual(P.subarray(CHUNK_ROWS * spec.dim, CHUNK_ROWS * spec.dim + 5 * spec.dim), projectionChunk(spec, block.name, 1, 5));
      const out = project(spec, block).data;
      for (let i = 0; i < 4; i++) {
        for (let c = 0; c < spec.dim; c++) {
          let want = 0;
          for (let t = 0; t < dim; t++) want += block.data[i * dim + t] * P[t * spec.dim + c];
          assert.ok(Math.abs(out[i * spec.dim + c] - want) < 1e-4 * (1 + Math.abs(want)), `row ${i} col ${c}: ${out[i * spec.dim + c]} vs ${want}`);
        }
      }
    }
  });

  it('is independent of how rows are batched and of the chunk cache', () => {
    const dim = CHUNK_ROWS + 500;
    const block = correlatedBlock(10, dim, 4);
    for (const spec of [g, r]) {
      const whole = project(spec, block).data;
      const p = new Projector(spec, { cacheBytes: 0 });
      const halves = [p.project(rows(block, 0, 3)).data, p.project(rows(block, 3, 10)).data];
      // Equal to float rounding: products of other shapes may sum in another order on native BLAS.
      assertAllClose(Float32Array.from([...halves[0], ...halves[1]]), whole, 'rows 0-3 and 3-10');
      // One row at a time, and a second call served from the cache, give the same numbers too.
      const cached = new Projector(spec);
      cached.project(block);
      assert.deepEqual(cached.project(block).data, whole);
      for (let i = 0; i < 10; i++) assertAllClose(cached.project(rows(block, i, i + 1)).data, whole.subarray(i * spec.dim, (i + 1) * spec.dim), `row ${i}`);
      cached.dispose();
      p.dispose();
    }
  });

  it('preserves dot products within the Johnson-Lindenstrauss bound (k = 2048)', () => {
    // For unit u, v and P with iid N(0, 1/k) or +-1/sqrt(k) entries, the norm bound
    //   P(| ||Px||^2 / ||x||^2 - 1 | > eps) <= 2 exp(-k (eps^2 - eps^3) / 4)
    // (Dasgupta & Gupta for Gaussian, Achlioptas 2003 for Rademacher) applied to u + v and
    // u - v and polarisation give P(|<Pu, Pv> - <u, v>| > eps) <= 4 exp(-k (eps^2 - eps^3) / 4).
    // With k = 2048 and eps = 0.2 that is 3e-7 per pair, so < 1e-4 over all 190 pairs + 20 norms.
    // The typical error is much smaller: its sd is sqrt((1 + cos^2) / k) <= sqrt(2 / k) = 0.031,
    // so the RMS error must also sit in [0.5 / sqrt(k), 1.5 sqrt(2 / k)]: a projection that
    // were accidentally exact (or scaled wrong) would fail that.
    const k = 2048;
    const n = 20;
    const dim = 3000;
    const block = correlatedBlock(n, dim, 5);
    for (const kind of ['gaussian', 'rademacher'] as const) {
      const out = new Projector({ kind, dim: k, seed: 1 }, { cacheBytes: 0 }).project(block).data;
      let worst = 0;
      let sq = 0;
      let pairs = 0;
      for (let i = 0; i < n; i++) {
        const ni = Math.sqrt(dot(block.data, i, block.data, i, dim));
        for (let j = i; j < n; j++) {
          const nj = Math.sqrt(dot(block.data, j, block.data, j, dim));
          const err = (dot(out, i, out, j, k) - dot(block.data, i, block.data, j, dim)) / (ni * nj);
          worst = Math.max(worst, Math.abs(err));
          if (j > i) {
            sq += err * err;
            pairs++;
          }
        }
      }
      const rms = Math.sqrt(sq / pairs);
      assert.ok(worst < 0.2, `${kind}: worst relative dot-product error ${worst}`);
      assert.ok(rms > 0.5 / Math.sqrt(k) && rms < 1.5 * Math.sqrt(2 / k), `${kind}: RMS error ${rms}`);
    }
  });

  it('projects every block, even one smaller than k, and an empty block', () => {
    const small: GradientBlock = { name: 's', shape: [2, 3], dim: 6, data: Float32Array.from({ length: 12 }, (_, i) => i) };
    const out = project(g, small);
    assert.deepEqual([out.dim, out.data.length], [64, 128]);
    const empty = project(g, { ...small, data: new Float32Array(0) });
    assert.deepEqual([empty.dim, empty.data.length], [64, 0]);
  });

  it('rejects bad specs and blocks, and leaks no tensors', () => {
    assert.throws(() => new Projector({ kind: 'sparse' as 'gaussian', dim: 4, seed: 0 }), TdaError);
    assert.throws(() => validateProjectionSpec({ kind: 'gaussian', dim: 0, seed: 0 }), /dim must be a positive integer/);
    assert.throws(() => validateProjectionSpec({ kind: 'gaussian', dim: 8, seed: 0.5 }), /seed must be an integer/);
    assert.throws(() => new Projector(g).project({ name: 'b', shape: [5], dim: 5, data: new Float32Array(7) }), /not a multiple/);
    const before = tf.memory().numTensors;
    const p = new Projector(g);
    p.project(correlatedBlock(3, CHUNK_ROWS + 10, 6));
    p.dispose();
    new Projector(r, { cacheBytes: 0 }).project(correlatedBlock(3, CHUNK_ROWS + 10, 6));
    assert.equal(tf.memory().numTensors, before);
  });
});
