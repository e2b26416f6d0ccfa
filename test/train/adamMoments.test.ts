import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adamMoments } from '../../src/train/adamMoments';
import { adamStep, createAdam } from '../../src/train/common';

describe('train/adamMoments: reading tfjs AdamOptimizer moments (relies on tfjs 4.22 internals)', () => {
  it('null before the first step, then m and v of Adam\'s recurrence per variable position, without bias correction', () => {
    const [b1, b2] = [0.7, 0.9];
    const opt = createAdam(0.1, { betas: [b1, b2], eps: 1e-8 });
    const x = tf.variable(tf.tensor1d([1, -2, 3]));
    const y = tf.variable(tf.tensor2d([0.5, 1, -1, 2], [2, 2]));
    try {
      assert.equal(adamMoments(opt, 0), null);
      // Loss sum(c1 * x) + sum(y^2): gradients c1 and 2y (y changes between steps, so read it first).
      const c1 = [0.3, -0.1, 2];
      const m = [new Float64Array(3), new Float64Array(4)];
      const v = [new Float64Array(3), new Float64Array(4)];
      for (let step = 0; step < 3; step++) {
        const gy = Array.from(y.dataSync(), (u) => 2 * u);
        [c1, gy].forEach((g, i) =>
          g.forEach((gj, j) => {
            m[i][j] = b1 * m[i][j] + (1 - b1) * gj;
            v[i][j] = b2 * v[i][j] + (1 - b2) * gj * gj;
          }),
        );
        adamStep(opt, [x, y], () => tf.add(tf.sum(tf.mul(x, tf.tensor1d(c1))), tf.sum(tf.square(y))) as tf.Scalar, 0.1);
      }
      [0, 1].forEach((i) => {
        const got = adamMoments(opt, i)!;
        assert.deepEqual(got.m.shape, i === 0 ? [3] : [2, 2]);
        Array.from(got.m.dataSync()).forEach((g, j) => assert.ok(Math.abs(g - m[i][j]) < 1e-5, `m[${i}][${j}] ${g} vs ${m[i][j]}`));
        Array.from(got.v.dataSync()).forEach((g, j) => assert.ok(Math.abs(g - v[i][j]) < 1e-5, `v[${i}][${j}] ${g} vs ${v[i][j]}`));
      });
      assert.equal(adamMoments(opt, 2), null, 'no variable at that position');
    } finally {
      opt.dispose();
      tf.dispose([x, y]);
    }
  });
});
