import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { DataInf } from '../../src/attribution/dataInf';
import { GradCos, GradDot } from '../../src/attribution/gradDot';
import { StreamedProducts } from '../../src/attribution/linalg';
import { chunked, dot, maxRelativeError, randomGradients, row } from './helpers';
import { GradientSet, GradientSource, inMemorySource } from '../../src/gradients/types';
import { OwnedChunksSource } from '../../src/gradients/types';


// One block longer than a slab (4096 columns), so the slab splitting is exercised.
const SHAPES = [[5000], [3, 4]];
const train = randomGradients(23, SHAPES, 11, 0.1);
const test = randomGradients(3, SHAPES, 12, 0.1);

describe('scoring as blocked products, in this thread and on worker threads', function () {
  this.timeout(60000);

  it('StreamedProducts: slabs of any width give V G^T and the DataInf update', () => {
    const before = tf.memory().numTensors;
    const blocks = test.blocks.map((b) => ({ data: b.data, rows: test.n, dim: b.dim }));
    const wide = new StreamedProducts(blocks);
    const narrow = new StreamedProducts(blocks, 7);
    const chunk = train.blocks.map((b) => b.data);
    const want: number[] = [];
    for (let q = 0; q < test.n; q++) for (let i = 0; i < train.n; i++) want.push(dot(row(test, 0, q), row(train, 0, i)) + dot(row(test, 1, q), row(train, 1, i)));
    assert.ok(maxRelativeError(wide.dot(chunk, train.n), want) < 1e-5);
    assert.ok(maxRelativeError(narrow.dot(chunk, train.n), want) < 1e-5);
    narrow.accumulateDataInf(chunk, train.n, [0.5, 0]);
    wide.accumulateDataInf(chunk, train.n, [0.5, 0]);
    const [a0, a1] = narrow.takeUpdates();
    const [b0] = wide.takeUpdates();
    assert.ok(maxRelativeError(a0, Array.from(b0)) < 1e-5);
    assert.ok(a1.every((v) => v === 0), 'a block with lambda 0 gets no update');
    // Direct formula for one entry: sum_i (v_q . g_i) / (lambda + |g_i|^2) g_i[j].
    let direct = 0;
    for (let i = 0; i < train.n; i++) {
      const g = row(train, 0, i);
      direct += (dot(row(test, 0, 1), g) / (0.5 + dot(g, g))) * g[17];
    }
    assert.ok(Math.abs(a0[1 * 5000 + 17] - direct) < 1e-5 * Math.max(1, Math.abs(direct)));
    wide.dispose();
    narrow.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  });

  it('gradDot and gradCos on 2 workers give exactly the in-process scores', () => {
    for (const make of [(w: number) => new GradDot({ workers: w }), (w: number) => new GradCos({ workers: w })]) {
      const local = make(0);
      local.cache(chunked(train, 5));
      const want = local.attribute(test);
      const remote = make(2);
      remote.cache(chunked(train, 5));
      const got = remote.attribute(test);
      assert.ok(got.data.every((v, i) => Object.is(v, want.data[i])), `${local.name} differs on workers`);
    }
  });

  it('DataInf on 2 workers gives exactly the in-process scores (chunk updates summed in chunk order)', () => {
    const local = new DataInf({ workers: 0 });
    local.cache(chunked(train, 4));
    const want = local.attribute(test);
    const remote = new DataInf({ workers: 2 });
    remote.cache(chunked(train, 4));
    const got = remote.attribute(test);
    assert.ok(got.data.every((v, i) => Object.is(v, want.data[i])), `max relative error ${maxRelativeError(got.data, Array.from(want.data))}`);
  });

  it('moves the chunks of an OwnedChunksSource to the workers without copies, and gives the buffers back', () => {
    const base = chunked(train, 5);
    const given: ArrayBuffer[] = [];
    const back: ArrayBuffer[] = [];
    const owned: OwnedChunksSource = {
      ...base,
      ownedChunks: true,
      recycle: (b) => back.push(b),
      chunks: function* () {
        for (const c of base.chunks()) {
          c.set.blocks.forEach((b) => given.push(b.data.buffer as ArrayBuffer));
          yield c;
        }
      },
    };
    for (const workers of [0, 2]) {
      given.length = 0;
      back.length = 0;
      const want = new GradDot({ workers: 0 });
      want.cache(chunked(train, 5));
      const m = new GradDot({ workers });
      m.cache(owned);
      const got = m.attribute(test);
      assert.ok(got.data.every((v, i) => Object.is(v, want.attribute(test).data[i])), `workers ${workers}`);
      assert.equal(back.length, given.length, 'every buffer comes back');
      assert.ok(back.every((b, i) => b.byteLength === given[i].byteLength || given.some((g) => g.byteLength === 0)), 'buffers of the right sizes');
      // In this thread the very same buffers come back; moved to workers, the source's ones are detached (not copied).
      if (workers === 0) assert.ok(back.every((b) => given.includes(b)));
      else assert.ok(given.every((g) => g.byteLength === 0), 'moved, not copied');
    }
    const di = new DataInf({ workers: 2 });
    di.cache(owned);
    const local = new DataInf({ workers: 0 });
    local.cache(chunked(train, 5));
    assert.ok(maxRelativeError(di.attribute(test).data, Array.from(local.attribute(test).data)) < 1e-5);
  });

  it('rejects a bad worker count', () => {
    const m = new GradDot({ workers: 1.5 });
    m.cache(inMemorySource(train));
    assert.throws(() => m.attribute(test), /'workers'/);
  });
});
