import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { matMulABt } from '../src/attribution/linalg';
async function main() {
  await initBackend('wasm');
  const nT = 100, D = 100000, m = 500;
  const V = new Float32Array(nT * D).map(() => Math.random() - 0.5);
  const G = new Float32Array(m * D).map(() => Math.random() - 0.5);
  let t0 = performance.now();
  matMulABt(V, nT, G, m, D);
  const cur = performance.now() - t0;
  console.log('current matMulABt', cur.toFixed(0), 'ms', ((nT * m) / cur * 1000).toFixed(0), 'pairs/s');
  for (const KB of [8192, 16384, 32768, 100000]) {
    const nb = Math.ceil(D / KB);
    // cached V^T blocks [KB, nT]
    const vT: tf.Tensor2D[] = [];
    for (let k = 0; k < nb; k++) {
      const w = Math.min(KB, D - k * KB);
      const buf = new Float32Array(nT * w);
      for (let q = 0; q < nT; q++) buf.set(V.subarray(q * D + k * KB, q * D + k * KB + w), q * w);
      vT.push(tf.tidy(() => tf.transpose(tf.tensor2d(buf, [nT, w]))));
    }
    for (let rep = 0; rep < 3; rep++) {
      t0 = performance.now();
      let tUp = 0, tMm = 0;
      const slab = new Float32Array(m * KB);
      let acc: tf.Tensor2D | null = null;
      for (let k = 0; k < nb; k++) {
        const w = Math.min(KB, D - k * KB);
        const u0 = performance.now();
        for (let i = 0; i < m; i++) slab.set(G.subarray(i * D + k * KB, i * D + k * KB + w), i * w);
        const g = tf.tensor2d(slab.subarray(0, m * w), [m, w]);
        const u1 = performance.now();
        const p = tf.matMul(g, vT[k]);
        const next: tf.Tensor2D = acc ? tf.add(acc, p) : p;
        if (acc) { acc.dispose(); p.dispose(); }
        acc = next;
        g.dispose();
        tUp += u1 - u0; tMm += performance.now() - u1;
      }
      acc!.dataSync(); acc!.dispose();
      const ms = performance.now() - t0;
      console.log(`KB=${KB} rep${rep}: ${ms.toFixed(0)} ms (upload ${tUp.toFixed(0)}, matmul ${tMm.toFixed(0)}) ${((nT * m) / ms * 1000).toFixed(0)} pairs/s, ${(2 * nT * m * D / ms / 1e6).toFixed(1)} GFLOP/s`);
    }
    vT.forEach((t) => t.dispose());
  }
}
main();
